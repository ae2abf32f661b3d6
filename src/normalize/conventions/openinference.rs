//! OpenInference semantic conventions (Arize Phoenix and its instrumentations).
//! <https://github.com/Arize-ai/openinference/blob/main/spec/semantic_conventions.md>

pub const SPAN_KIND: &str = "openinference.span.kind";
pub const SPAN_KIND_LLM: &str = "LLM";
pub const SPAN_KIND_TOOL: &str = "TOOL";
pub const INPUT_VALUE: &str = "input.value";
pub const OUTPUT_VALUE: &str = "output.value";
pub const INPUT_MIME_TYPE: &str = "input.mime_type";
pub const OUTPUT_MIME_TYPE: &str = "output.mime_type";
pub const MODEL_NAME: &str = "llm.model_name";
pub const PROVIDER: &str = "llm.provider";
pub const SYSTEM: &str = "llm.system";
pub const INVOCATION_PARAMETERS: &str = "llm.invocation_parameters";
pub const INPUT_MESSAGES_PREFIX: &str = "llm.input_messages.";
pub const OUTPUT_MESSAGES_PREFIX: &str = "llm.output_messages.";
pub const TOKEN_COUNT_PROMPT: &str = "llm.token_count.prompt";
pub const TOKEN_COUNT_COMPLETION: &str = "llm.token_count.completion";
pub const TOKEN_COUNT_TOTAL: &str = "llm.token_count.total";
pub const COST_PROMPT: &str = "llm.cost.prompt";
pub const COST_COMPLETION: &str = "llm.cost.completion";
pub const COST_TOTAL: &str = "llm.cost.total";
/// Not in the spec, but set by the OpenAI instrumentation.
pub const FINISH_REASON: &str = "llm.finish_reason";
pub const TOOL_NAME: &str = "tool.name";
