//! The Vercel AI SDK's own telemetry (`experimental_telemetry`; AI SDK 4–6, and AI SDK 7 in its
//! legacy OpenTelemetry mode).
//! <https://ai-sdk.dev/docs/ai-sdk-core/telemetry>

/// The function the span records: `ai.generateText`, `ai.generateText.doGenerate`, `ai.toolCall` …
pub const OPERATION_ID: &str = "ai.operationId";
/// Calls of a model: the inner spans of each step, one per request to the provider.
pub const MODEL_OPERATIONS: &[&str] = &[
    "ai.generateText.doGenerate",
    "ai.streamText.doStream",
    "ai.generateObject.doGenerate",
    "ai.streamObject.doStream",
    "ai.embed.doEmbed",
    "ai.embedMany.doEmbed",
];
pub const OPERATION_TOOL_CALL: &str = "ai.toolCall";

/// The root span's prompt, JSON: `{"system", "prompt"}` or `{"system", "messages"}`.
pub const PROMPT: &str = "ai.prompt";
/// A model call's messages, JSON `[{role, content}]`; content is text or a list of parts.
pub const PROMPT_MESSAGES: &str = "ai.prompt.messages";
pub const RESPONSE_TEXT: &str = "ai.response.text";
/// `generateObject`'s answer, JSON text.
pub const RESPONSE_OBJECT: &str = "ai.response.object";
/// JSON `[{toolCallId, toolName, args | input}]`.
pub const RESPONSE_TOOL_CALLS: &str = "ai.response.toolCalls";
pub const RESPONSE_FINISH_REASON: &str = "ai.response.finishReason";
pub const RESPONSE_MODEL: &str = "ai.response.model";

pub const MODEL_ID: &str = "ai.model.id";
/// The provider and its API, `openai.chat`, `anthropic.messages`: the provider is the first part.
pub const MODEL_PROVIDER: &str = "ai.model.provider";

/// Usage: AI SDK 5 and later name tokens input/output, AI SDK 4 prompt/completion.
pub const USAGE_INPUT_TOKENS: &str = "ai.usage.inputTokens";
pub const USAGE_PROMPT_TOKENS: &str = "ai.usage.promptTokens";
pub const USAGE_OUTPUT_TOKENS: &str = "ai.usage.outputTokens";
pub const USAGE_COMPLETION_TOKENS: &str = "ai.usage.completionTokens";
pub const USAGE_TOTAL_TOKENS: &str = "ai.usage.totalTokens";

pub const TOOL_CALL_NAME: &str = "ai.toolCall.name";

// `experimental_telemetry.metadata` (AI SDK 4–6) is written as `ai.telemetry.metadata.KEY`,
// AI SDK 7's `runtimeContext` (for the keys `telemetry.includeRuntimeContext` names) as
// `ai.settings.context.KEY`.

/// The end user, as users name it in either of those.
pub const USER_IDS: &[&str] = &[
    "ai.telemetry.metadata.userId",
    "ai.telemetry.metadata.user_id",
    "ai.telemetry.metadata.user.id",
    "ai.settings.context.userId",
    "ai.settings.context.user_id",
];
/// The session, as users name it in either of those.
pub const SESSION_IDS: &[&str] = &[
    "ai.telemetry.metadata.sessionId",
    "ai.telemetry.metadata.session_id",
    "ai.telemetry.metadata.session.id",
    "ai.settings.context.sessionId",
    "ai.settings.context.session_id",
];
