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
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCallRequest>,
    /// For a tool result: the id of the call it answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finish_reason: Option<String>,
}

/// A model's request to call a tool.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ToolCallRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    pub name: String,
    /// The arguments as the model wrote them (usually JSON text).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arguments: Option<String>,
}

/// Token counts of one call. Each is `None` when the span did not say.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct TokenUsage {
    pub prompt: Option<i64>,
    pub completion: Option<i64>,
    pub total: Option<i64>,
}

/// Cost of one call in USD. Each is `None` when neither the span nor the price table knows it.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Cost {
    pub prompt: Option<f64>,
    pub completion: Option<f64>,
    pub total: Option<f64>,
}

/// One call of a language model (the `llm` part of a Span in the query API).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct LlmCall {
    pub operation: Option<String>,
    pub provider: Option<String>,
    pub request_model: Option<String>,
    pub response_model: Option<String>,
    /// The call's input text: always the span's input (`SpanSemantics::input`), so it is not
    /// serialized here; stores keep it once, in the span, and [`SpanSemantics::with_llm_texts`]
    /// puts it back when reading.
    #[serde(skip)]
    pub input: Option<String>,
    /// The call's output text; like `input`, kept once in the span.
    #[serde(skip)]
    pub output: Option<String>,
    pub input_messages: Vec<Message>,
    pub output_messages: Vec<Message>,
    pub usage: TokenUsage,
    pub cost: Cost,
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
    pub name: String,
    /// The span ended with an error status.
    pub failed: bool,
}

/// What normalization reads from one span: the fields a TraceRecord is built from.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct SpanSemantics {
    pub input: Option<String>,
    pub output: Option<String>,
    pub session_id: Option<String>,
    pub user_id: Option<String>,
    pub pipeline_id: Option<String>,
    pub llm: Option<LlmCall>,
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
