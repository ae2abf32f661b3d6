//! The LLM meaning of a span, read from whichever convention its instrumentation used.

use serde::{Deserialize, Serialize};

/// One message of a conversation, in or out of a model.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Message {
    /// `system`, `user`, `assistant`, `tool`, …
    pub role: String,
    /// The text of the message; `None` when it holds only tool calls.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    /// The tools the model asked to call, in its order; empty for most messages.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCallRequest>,
    /// For a tool result: the id of the call it answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
    /// Why the model stopped (`stop`, `length`, `tool_calls`, …), on an output message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finish_reason: Option<String>,
}

/// A model's request to call a tool.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ToolCallRequest {
    /// The call's id, which the tool's answer names in `tool_call_id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The tool's name.
    pub name: String,
    /// The arguments as the model wrote them (usually JSON text).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arguments: Option<String>,
}

/// Token counts of one call. Each is `None` when the span did not say.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct TokenUsage {
    /// Input (prompt) tokens.
    pub prompt: Option<i64>,
    /// Output (completion) tokens.
    pub completion: Option<i64>,
    /// All tokens of the call as reported; else prompt + completion.
    pub total: Option<i64>,
}

/// Cost of one call in USD. Each is `None` when neither the span nor the price table knows it.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Cost {
    /// Cost of the input tokens, in USD.
    pub prompt: Option<f64>,
    /// Cost of the output tokens, in USD.
    pub completion: Option<f64>,
    /// Cost of the whole call, in USD; may be `None` when only the parts were reported.
    pub total: Option<f64>,
}

/// One call of a language model (the `llm` part of a Span in the query API).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct LlmCall {
    /// What the model was asked to do (`chat`, `text_completion`, `embeddings`, …).
    pub operation: Option<String>,
    /// Who serves the model (`openai`, `anthropic`, …).
    pub provider: Option<String>,
    /// The model the call asked for.
    pub request_model: Option<String>,
    /// The model that answered, often a dated version of the one asked for.
    pub response_model: Option<String>,
    /// The call's input text: always the span's input (`SpanSemantics::input`), so it is not
    /// serialized here; stores keep it once, in the span, and [`SpanSemantics::with_llm_texts`]
    /// puts it back when reading.
    #[serde(skip)]
    pub input: Option<String>,
    /// The call's output text; like `input`, kept once in the span.
    #[serde(skip)]
    pub output: Option<String>,
    /// The messages sent to the model, in order.
    pub input_messages: Vec<Message>,
    /// What the model answered, as messages.
    pub output_messages: Vec<Message>,
    /// Tokens the call used.
    pub usage: TokenUsage,
    /// What the call cost, in USD: as reported, else from the price table.
    pub cost: Cost,
    /// Why the model stopped, one reason per choice (`stop`, `length`, `tool_calls`, …).
    pub finish_reasons: Vec<String>,
}

impl LlmCall {
    /// The model that answered, else the one asked for.
    pub fn model(&self) -> Option<&str> {
        self.response_model
            .as_deref()
            .or(self.request_model.as_deref())
    }
}

/// A tool execution span.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ToolExecution {
    /// The tool's name: its name attribute, else the span's name.
    pub name: String,
    /// The span ended with an error status.
    pub failed: bool,
}

/// What normalization reads from one span: the fields a TraceRecord is built from.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct SpanSemantics {
    /// The span's input text, read by the rules of docs/semantic-convention.md.
    pub input: Option<String>,
    /// The span's output text, read by the same rules.
    pub output: Option<String>,
    /// The conversation the span belongs to, as the application names it.
    pub session_id: Option<String>,
    /// The end user the application served.
    pub user_id: Option<String>,
    /// Gentrace's pipeline (`gentrace.pipeline_id`).
    pub pipeline_id: Option<String>,
    /// Set when the span is a call of a language model.
    pub llm: Option<LlmCall>,
    /// Set when the span runs a tool.
    pub tool: Option<ToolExecution>,
}

impl SpanSemantics {
    /// Puts the span's input and output back into its LLM call after reading it from a store,
    /// which keeps them once, in the span.
    pub fn with_llm_texts(mut self) -> Self {
        if let Some(llm) = &mut self.llm {
            llm.input = self.input.clone();
            llm.output = self.output.clone();
        }
        self
    }
}
