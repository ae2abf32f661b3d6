//! Langfuse's OpenTelemetry attributes (Langfuse SDK v3 and later).
//! <https://langfuse.com/integrations/native/opentelemetry>

pub const OBSERVATION_TYPE: &str = "langfuse.observation.type";
pub const OBSERVATION_TYPE_GENERATION: &str = "generation";
pub const OBSERVATION_TYPE_TOOL: &str = "tool";
pub const OBSERVATION_INPUT: &str = "langfuse.observation.input";
pub const OBSERVATION_OUTPUT: &str = "langfuse.observation.output";
pub const OBSERVATION_MODEL_NAME: &str = "langfuse.observation.model.name";
/// JSON usage, keys in several spellings (`input`/`output`/`total`, `prompt_tokens`, …).
pub const OBSERVATION_USAGE_DETAILS: &str = "langfuse.observation.usage_details";
/// JSON cost in USD: `input`, `output`, `total`.
pub const OBSERVATION_COST_DETAILS: &str = "langfuse.observation.cost_details";
pub const TRACE_INPUT: &str = "langfuse.trace.input";
pub const TRACE_OUTPUT: &str = "langfuse.trace.output";
pub const SESSION_ID: &str = "langfuse.session.id";
pub const USER_ID: &str = "langfuse.user.id";
pub const TRACE_SESSION_ID: &str = "langfuse.trace.session_id";
pub const TRACE_USER_ID: &str = "langfuse.trace.user_id";

/// Spellings of usage keys, most specific first.
pub const USAGE_INPUT_KEYS: &[&str] = &[
    "input",
    "prompt_tokens",
    "input_tokens",
    "promptTokens",
    "inputTokens",
];
pub const USAGE_OUTPUT_KEYS: &[&str] = &[
    "output",
    "completion_tokens",
    "output_tokens",
    "completionTokens",
    "outputTokens",
];
pub const USAGE_TOTAL_KEYS: &[&str] = &["total", "total_tokens", "totalTokens"];
