//! The OTLP receivers: where spans, log records and metric points enter, over HTTP and gRPC.
//!
//! Every request takes one path, whatever its transport and signal:
//!
//! ```text
//! authenticate (headers or metadata, before a byte of body is read)
//!   → admission: room in the memory budget (within the project's share), a decode slot
//!   → read the body (within a time limit) and decompress it under the budget
//!   → decode (otlp) and ingest (model types from here on)
//! ```
//!
//! `http` and `grpc` are the two transports; `admission` holds the memory budget, the decode
//! slots and the limits; errors are `crate::error::ApiError`, which decides what a client may
//! retry.

pub mod admission;
pub mod grpc;
pub mod http;

use std::sync::Arc;

use crate::auth::Authenticator;
use crate::ingest::Ingest;
use crate::metrics::Metrics;
pub use admission::{Admission, DECODED_SIZE_FACTOR, Reservation};

/// Limits of OTLP requests, on both transports.
#[derive(Debug, Clone, Copy)]
pub struct ReceiverLimits {
    /// Largest request body as sent (compressed), in bytes.
    pub max_body_bytes: usize,
    /// Largest request body after decompression, in bytes.
    pub max_decompressed_bytes: usize,
    /// Longest a client may take to send a request's body (HTTP: 408; gRPC:
    /// `DEADLINE_EXCEEDED`).
    pub body_read_timeout: std::time::Duration,
}

/// What the receivers of both transports share.
#[derive(Clone)]
pub struct Receivers {
    /// Checks the token of every request before its body is read.
    pub auth: Arc<Authenticator>,
    /// Where decoded requests go.
    pub ingest: Arc<Ingest>,
    /// Request latencies by route and status.
    pub metrics: Arc<Metrics>,
    pub limits: ReceiverLimits,
    /// Bounds the request bodies being read and decoded at once.
    pub admission: Admission,
}
