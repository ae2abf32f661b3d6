//! The Vercel AI SDK's own telemetry read as messages, provider and tool calls (the keys are in
//! `conventions::ai_sdk`).

use serde_json::Value;

use super::conventions::ai_sdk;
use super::messages::{messages_from_json, tool_call_from_json};
use super::values::{json_as_text, to_json};
use crate::model::attributes::{KeyValue, find, find_str};
use crate::model::llm::Message;

/// Whether the span is one of the SDK's requests to a model.
pub fn is_model_call(attributes: &[KeyValue]) -> bool {
    find_str(attributes, ai_sdk::OPERATION_ID)
        .is_some_and(|operation| ai_sdk::MODEL_OPERATIONS.contains(&operation))
}

/// Whether the span is the SDK running a tool.
pub fn is_tool_call(attributes: &[KeyValue]) -> bool {
    find_str(attributes, ai_sdk::OPERATION_ID) == Some(ai_sdk::OPERATION_TOOL_CALL)
}

/// The provider without its API: `openai` of `openai.chat`, `anthropic` of `anthropic.messages`.
pub fn provider(attributes: &[KeyValue]) -> Option<String> {
    let provider = find_str(attributes, ai_sdk::MODEL_PROVIDER)?;
    let name = provider.split('.').next().unwrap_or(provider);
    (!name.is_empty()).then(|| name.to_owned())
}

/// The input messages: a model call's `ai.prompt.messages`, else the root's `ai.prompt`
/// (`{"system", "prompt"}` or `{"system", "messages"}`).
pub fn input_messages(attributes: &[KeyValue]) -> Option<Vec<Message>> {
    if let Some(value) = find(attributes, ai_sdk::PROMPT_MESSAGES) {
        return messages_from_json(&to_json(value)).filter(|messages| !messages.is_empty());
    }
    let prompt = to_json(find(attributes, ai_sdk::PROMPT)?);
    let mut messages = Vec::new();
    if let Some(system) = prompt.get("system").and_then(json_as_text) {
        messages.push(Message {
            role: "system".into(),
            content: Some(system),
            ..Default::default()
        });
    }
    match prompt.get("messages").or_else(|| prompt.get("prompt")) {
        Some(Value::String(text)) => messages.push(Message {
            role: "user".into(),
            content: Some(text.clone()),
            ..Default::default()
        }),
        Some(list) => messages.extend(messages_from_json(list).unwrap_or_default()),
        None => {}
    }
    (!messages.is_empty()).then_some(messages)
}

/// The answer: `ai.response.text` (or `generateObject`'s `ai.response.object`) with the tool
/// calls of `ai.response.toolCalls`, as one assistant message.
pub fn output_messages(attributes: &[KeyValue]) -> Option<Vec<Message>> {
    let content = find(attributes, ai_sdk::RESPONSE_TEXT)
        .or_else(|| find(attributes, ai_sdk::RESPONSE_OBJECT))
        .and_then(|value| match value {
            crate::model::AttrValue::String(text) => Some(text.clone()),
            other => json_as_text(&to_json(other)),
        })
        .filter(|text| !text.is_empty());
    let tool_calls: Vec<_> = match find(attributes, ai_sdk::RESPONSE_TOOL_CALLS).map(to_json) {
        Some(Value::Array(calls)) => calls.iter().filter_map(tool_call_from_json).collect(),
        _ => Vec::new(),
    };
    if content.is_none() && tool_calls.is_empty() {
        return None;
    }
    Some(vec![Message {
        role: "assistant".into(),
        content,
        tool_calls,
        finish_reason: find_str(attributes, ai_sdk::RESPONSE_FINISH_REASON).map(str::to_owned),
        ..Default::default()
    }])
}
