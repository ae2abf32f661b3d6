//! Logfire's own attributes (the pydantic team's OpenTelemetry SDK), on the spans of its
//! integrations such as `logfire.instrument_openai`.
//! <https://logfire.pydantic.dev/docs/>

/// `span`, or `log` for a zero-length span that stands for a log line.
pub const SPAN_TYPE: &str = "logfire.span_type";
pub const SPAN_TYPE_SPAN: &str = "span";
/// The message template the span's name was made from.
pub const MSG_TEMPLATE: &str = "logfire.msg_template";
