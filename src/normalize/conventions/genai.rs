//! OpenTelemetry GenAI semantic conventions, current and older forms.
//! <https://opentelemetry.io/docs/specs/semconv/gen-ai/>

// Current (JSON message attributes, provider name).
pub const OPERATION_NAME: &str = "gen_ai.operation.name";
pub const PROVIDER_NAME: &str = "gen_ai.provider.name";
pub const REQUEST_MODEL: &str = "gen_ai.request.model";
pub const RESPONSE_MODEL: &str = "gen_ai.response.model";
pub const INPUT_MESSAGES: &str = "gen_ai.input.messages";
pub const OUTPUT_MESSAGES: &str = "gen_ai.output.messages";
pub const SYSTEM_INSTRUCTIONS: &str = "gen_ai.system_instructions";
pub const USAGE_INPUT_TOKENS: &str = "gen_ai.usage.input_tokens";
pub const USAGE_OUTPUT_TOKENS: &str = "gen_ai.usage.output_tokens";
/// Not in the spec, but set by OpenLLMetry and others.
pub const USAGE_TOTAL_TOKENS: &str = "gen_ai.usage.total_tokens";
pub const FINISH_REASONS: &str = "gen_ai.response.finish_reasons";
pub const CONVERSATION_ID: &str = "gen_ai.conversation.id";
pub const TOOL_NAME: &str = "gen_ai.tool.name";
/// Some instrumentations report a cost in USD here.
pub const USAGE_COST: &str = "gen_ai.usage.cost";

// Operation names.
pub const OPERATION_EXECUTE_TOOL: &str = "execute_tool";
/// Operations that are calls of a model.
pub const MODEL_OPERATIONS: &[&str] = &[
    "chat",
    "text_completion",
    "generate_content",
    "completion",
    "embeddings",
];

// Older forms.
pub const SYSTEM: &str = "gen_ai.system";
pub const USAGE_PROMPT_TOKENS: &str = "gen_ai.usage.prompt_tokens";
pub const USAGE_COMPLETION_TOKENS: &str = "gen_ai.usage.completion_tokens";
/// Flattened messages: `gen_ai.prompt.N.role`, `gen_ai.prompt.N.content`, …
pub const PROMPT_PREFIX: &str = "gen_ai.prompt.";
pub const COMPLETION_PREFIX: &str = "gen_ai.completion.";
/// Whole-prompt attributes of the `gen_ai.content.prompt`/`completion` events.
pub const PROMPT: &str = "gen_ai.prompt";
pub const COMPLETION: &str = "gen_ai.completion";

// Events (span events, or log records of the logs signal).
pub const EVENT_SYSTEM_MESSAGE: &str = "gen_ai.system.message";
pub const EVENT_USER_MESSAGE: &str = "gen_ai.user.message";
pub const EVENT_ASSISTANT_MESSAGE: &str = "gen_ai.assistant.message";
pub const EVENT_TOOL_MESSAGE: &str = "gen_ai.tool.message";
pub const EVENT_CHOICE: &str = "gen_ai.choice";
pub const EVENT_CONTENT_PROMPT: &str = "gen_ai.content.prompt";
pub const EVENT_CONTENT_COMPLETION: &str = "gen_ai.content.completion";
/// The current event that carries a whole call's messages.
pub const EVENT_OPERATION_DETAILS: &str = "gen_ai.client.inference.operation.details";
