//! spanhouse: an OpenTelemetry trace server for LLM applications.
//!
//! The path of a span through the modules; each imports only those below it:
//!
//! ```text
//! receiver ── receiver::http (OTLP/HTTP) or receiver::grpc (OTLP/gRPC): the token is checked
//!    │        before the body is read; receiver::admission bounds the memory in flight
//!    ▼
//! otlp ────── decompress under the budget, decode protobuf or OTLP/JSON, convert to model
//!    │        types (invalid spans are rejected one by one: partial_success)
//!    ▼
//! ingest ──── redaction first (redact: the project's detectors rewrite every string value),
//!    │        then limits, sampling, filters, rate limit; normalize reads the LLM meaning
//!    │        (model::SpanSemantics); every span is counted (stats)
//!    ▼
//! pipeline ── bounded queue (503 when full); one writer batches concurrent requests
//!    │
//!    ▼
//! store ───── ControlPlane + SpanStore; store::sqlite writes spans and recomputes the
//!             TraceRecords of touched traces in one transaction, then the receiver answers 200
//!
//! insights ── what changed between two periods (SPEC §10): segments tested over the store's
//!             traces; the api serves them
//! api ─────── the query API, UI, sessions, /metrics: reads through the same store
//! alerts ──── one server of a deployment (a lease in the store) evaluates alert rules over
//!             the same reads and POSTs a signed webhook on each change of state
//! error ───── the one edge error and what a client may retry; model: types, no I/O
//! ```
//!
//! `config` resolves flags, environment and file once; `server` wires everything together;
//! `admin` holds the project and token commands; `client` the commands that talk to a running
//! server over HTTP (`import`, `export`). docs/architecture.md says more.

pub mod admin;
pub mod alerts;
pub mod api;
pub mod auth;
pub mod client;
pub mod config;
pub mod error;
pub mod filter;
pub mod ingest;
pub mod insights;
pub mod limits;
pub mod metrics;
pub mod model;
pub mod normalize;
pub mod otlp;
pub mod pipeline;
pub mod ratelimit;
pub mod receiver;
pub mod redact;
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
