//! Attribute keys, one file per convention, each with a link to its specification.

pub mod ai_sdk;
pub mod genai;
pub mod gentrace;
pub mod langfuse;
pub mod logfire;
pub mod openinference;
pub mod pydantic_ai;
pub mod traceloop;

/// Keys more than one convention uses for the same thing.
pub mod shared {
    /// The end user (OpenInference, Langfuse; OpenTelemetry `user.id`).
    pub const USER_ID: &str = "user.id";
    /// The deprecated OpenTelemetry name of the end user.
    pub const ENDUSER_ID: &str = "enduser.id";
    /// The conversation or session (OpenInference, Langfuse).
    pub const SESSION_ID: &str = "session.id";
}
