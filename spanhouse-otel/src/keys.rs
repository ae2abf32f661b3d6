//! The attribute, baggage and event names this crate writes, by the convention they belong to.
//! spanhouse reads all of them (`docs/semantic-convention.md`).

/// spanhouse's own sampling entry: `"true"` keeps a trace.
pub const SPANHOUSE_SAMPLE: &str = "spanhouse.sample";
/// Gentrace's sampling entry, which its SDKs copy from baggage onto spans.
/// <https://gentrace.ai/docs>
pub const GENTRACE_SAMPLE: &str = "gentrace.sample";
/// The entries the processor copies and the sampler reads unless told otherwise.
pub const DEFAULT_SAMPLE_KEYS: &[&str] = &[SPANHOUSE_SAMPLE, GENTRACE_SAMPLE];

/// OpenInference: the function's input and output, with their MIME types.
/// <https://github.com/Arize-ai/openinference/blob/main/spec/semantic_conventions.md>
pub const INPUT_VALUE: &str = "input.value";
pub const INPUT_MIME_TYPE: &str = "input.mime_type";
pub const OUTPUT_VALUE: &str = "output.value";
pub const OUTPUT_MIME_TYPE: &str = "output.mime_type";
pub const OPENINFERENCE_SPAN_KIND: &str = "openinference.span.kind";

/// Gentrace: events holding the function's arguments (attribute `args`) and its result
/// (attribute `output`) as JSON.
pub const EVENT_FN_ARGS: &str = "gentrace.fn.args";
pub const EVENT_FN_ARGS_KEY: &str = "args";
pub const EVENT_FN_OUTPUT: &str = "gentrace.fn.output";
pub const EVENT_FN_OUTPUT_KEY: &str = "output";

/// OpenTelemetry exception event, recorded when an interaction fails.
/// <https://opentelemetry.io/docs/specs/semconv/exceptions/exceptions-spans/>
pub const EVENT_EXCEPTION: &str = "exception";
pub const EXCEPTION_MESSAGE: &str = "exception.message";
pub const EXCEPTION_TYPE: &str = "exception.type";
