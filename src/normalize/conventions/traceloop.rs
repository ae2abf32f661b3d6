//! OpenLLMetry / Traceloop attributes.
//! <https://github.com/traceloop/openllmetry/blob/main/packages/opentelemetry-semantic-conventions-ai>

pub const SPAN_KIND: &str = "traceloop.span.kind";
pub const SPAN_KIND_TOOL: &str = "tool";
pub const ENTITY_NAME: &str = "traceloop.entity.name";
pub const ENTITY_INPUT: &str = "traceloop.entity.input";
pub const ENTITY_OUTPUT: &str = "traceloop.entity.output";
/// Older OpenLLMetry: `chat`, `completion`, `embedding` on model call spans.
pub const LLM_REQUEST_TYPE: &str = "llm.request.type";
pub const LLM_USAGE_TOTAL_TOKENS: &str = "llm.usage.total_tokens";
pub const LLM_USAGE_PROMPT_TOKENS: &str = "llm.usage.prompt_tokens";
pub const LLM_USAGE_COMPLETION_TOKENS: &str = "llm.usage.completion_tokens";
pub const LLM_RESPONSE_MODEL: &str = "llm.response.model";
pub const LLM_REQUEST_MODEL: &str = "llm.request.model";
