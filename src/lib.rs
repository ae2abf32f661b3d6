//! spanhouse: an OpenTelemetry trace server for LLM applications.
//!
//! The path of a span through the modules:
//!
//! ```text
//! receiver ── api::otlp_http (OTLP/HTTP) or grpc (OTLP/gRPC); auth checks the token
//!    │
//!    ▼
//! otlp ────── decompress with limits, decode protobuf or OTLP/JSON, convert to model::Span
//!    │        (invalid spans are rejected one by one: partial_success)
//!    ▼
//! ingest ──── normalize::normalize_span reads the LLM meaning (model::SpanSemantics)
//!    │
//!    ▼
//! pipeline ── bounded queue (503 when full); one writer batches concurrent requests
//!    │
//!    ▼
//! store ───── the Store trait; store::sqlite writes spans and recomputes the TraceRecords of
//!             touched traces in one transaction, then the receiver answers 200
//!
//! api::query ── reads TraceRecords and spans back through the same trait
//! ```
//!
//! `config` resolves flags, environment and file once; `server` wires everything together;
//! `admin` holds the project and token commands.

pub mod admin;
pub mod api;
pub mod auth;
pub mod config;
pub mod error;
pub mod filter;
pub mod ingest;
pub mod limits;
pub mod metrics;
pub mod model;
pub mod normalize;
pub mod otlp;
pub mod pipeline;
pub mod ratelimit;
pub mod receiver;
pub mod server;
pub mod settings;
pub mod stats;
pub mod store;
pub mod synthetic;

/// What the unit tests of several modules share.
#[cfg(test)]
pub(crate) mod test_support {
    /// Property tests' configuration: 256 cases (a few seconds for the whole suite in CI), and
    /// no failure files written into the tree (a failure prints its input; add it as a test).
    pub fn bounded_cases() -> proptest::prelude::ProptestConfig {
        proptest::prelude::ProptestConfig {
            cases: 256,
            failure_persistence: None,
            ..proptest::prelude::ProptestConfig::default()
        }
    }
}
