//! Gentrace: `@interaction` and `@traced` spans of gentrace-py and gentrace-node.
//! <https://gentrace.ai/docs>

pub const PIPELINE_ID: &str = "gentrace.pipeline_id";
/// The sampling attribute its span processor copies from baggage.
pub const SAMPLE: &str = "gentrace.sample";
/// Event holding the function's arguments as JSON in attribute `args`.
pub const EVENT_FN_ARGS: &str = "gentrace.fn.args";
pub const EVENT_FN_ARGS_KEY: &str = "args";
/// Event holding the function's result as JSON in attribute `output`.
pub const EVENT_FN_OUTPUT: &str = "gentrace.fn.output";
pub const EVENT_FN_OUTPUT_KEY: &str = "output";
