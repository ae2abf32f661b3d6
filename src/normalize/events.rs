//! GenAI content carried by events: span events, or log records of the logs signal attached to
//! their span. A log record arrives here as an [`Event`] whose attributes are the record's
//! attributes plus its body under the key `body`.

use serde_json::Value;

use super::conventions::{genai, pydantic_ai};
use super::messages::messages_from_json;
use super::values::{from_json, json_as_text, to_json};
use crate::model::Event;
use crate::model::attributes::{KeyValue, find};
use crate::model::llm::Message;

/// The key under which a log record's body is kept among its attributes.
pub const LOG_BODY_KEY: &str = "body";

/// Whether an event or log record name carries GenAI content worth attaching to a span.
pub fn is_content_event(name: &str) -> bool {
    name.starts_with("gen_ai.")
}

/// Events carried inside attributes as JSON lists, as pydantic-ai 1.x writes them with
/// `event_mode="attributes"`: each object is one event, named by its `event.name`, its other keys
/// the event's attributes. They take the span's start as their time, in their order.
pub fn events_from_attributes(attributes: &[KeyValue], time_unix_nano: u64) -> Vec<Event> {
    // A model request's span holds `events`, the agent run's span `all_messages_events`.
    let list = find(attributes, pydantic_ai::EVENTS)
        .or_else(|| find(attributes, pydantic_ai::ALL_MESSAGES_EVENTS))
        .map(to_json);
    let Some(Value::Array(items)) = list else {
        return Vec::new();
    };
    items
        .into_iter()
        .filter_map(|item| {
            let Value::Object(mut fields) = item else {
                return None;
            };
            let Some(Value::String(name)) = fields.remove(pydantic_ai::EVENT_NAME) else {
                return None;
            };
            is_content_event(&name).then(|| Event {
                time_unix_nano,
                name,
                attributes: fields
                    .iter()
                    .map(|(key, value)| KeyValue::new(key.clone(), from_json(value)))
                    .collect(),
                dropped_attributes_count: 0,
            })
        })
        .collect()
}

/// Messages read from events, in time order.
#[derive(Debug, Default)]
pub struct EventMessages {
    pub system_instructions: Vec<Message>,
    pub input: Vec<Message>,
    pub output: Vec<Message>,
}

/// A field of an event: its attribute, else the same key inside a map body. Text stays text.
fn field(event: &Event, key: &str) -> Option<Value> {
    if let Some(value) = find(&event.attributes, key) {
        return Some(match value {
            crate::model::AttrValue::String(text) => Value::String(text.clone()),
            other => to_json(other),
        });
    }
    let body = find(&event.attributes, LOG_BODY_KEY).map(to_json)?;
    body.get(key).cloned()
}

/// A structured field (messages, tool calls): JSON text is parsed.
fn structured_field(event: &Event, key: &str) -> Option<Value> {
    match field(event, key)? {
        Value::String(text) => super::values::parse_json_text(&text),
        other => Some(other),
    }
}

fn body_text(event: &Event) -> Option<String> {
    match find(&event.attributes, LOG_BODY_KEY) {
        Some(crate::model::AttrValue::String(text)) => Some(text.clone()),
        _ => None,
    }
}

/// Reads the messages of a span's content events.
pub fn messages_from_events(events: &[&Event]) -> EventMessages {
    let mut messages = EventMessages::default();
    for event in events {
        let role = match event.name.as_str() {
            genai::EVENT_SYSTEM_MESSAGE => Some("system"),
            genai::EVENT_USER_MESSAGE => Some("user"),
            genai::EVENT_ASSISTANT_MESSAGE => Some("assistant"),
            genai::EVENT_TOOL_MESSAGE => Some("tool"),
            _ => None,
        };
        if let Some(role) = role {
            let mut message = Value::Object(Default::default());
            message["role"] = field(event, "role").unwrap_or_else(|| role.into());
            if let Some(content) =
                field(event, "content").or_else(|| body_text(event).map(Value::String))
            {
                message["content"] = content;
            }
            if let Some(calls) = structured_field(event, "tool_calls") {
                message["tool_calls"] = calls;
            }
            if let Some(id) = field(event, "id") {
                message["id"] = id;
            }
            if role == "tool" && message.get("id").is_some() {
                message["tool_call_id"] = message["id"].clone();
            }
            if let Some(parsed) = messages_from_json(&message) {
                let target = if role == "system" {
                    &mut messages.system_instructions
                } else {
                    &mut messages.input
                };
                target.extend(parsed);
            }
            continue;
        }
        match event.name.as_str() {
            genai::EVENT_CHOICE => {
                let mut choice = Value::Object(Default::default());
                choice["message"] = structured_field(event, "message").unwrap_or_else(|| {
                    let mut message = serde_json::json!({"role": "assistant"});
                    if let Some(content) = field(event, "content") {
                        message["content"] = content;
                    }
                    message
                });
                if choice["message"].get("role").is_none() {
                    choice["message"]["role"] = "assistant".into();
                }
                if let Some(reason) = field(event, "finish_reason") {
                    choice["finish_reason"] = reason;
                }
                let wrapped = serde_json::json!({ "choices": [choice] });
                messages
                    .output
                    .extend(messages_from_json(&wrapped).unwrap_or_default());
            }
            genai::EVENT_CONTENT_PROMPT => {
                if let Some(parsed) = structured_field(event, genai::PROMPT)
                    .as_ref()
                    .and_then(messages_from_json)
                {
                    messages.input.extend(parsed);
                }
            }
            genai::EVENT_CONTENT_COMPLETION => {
                if let Some(parsed) = structured_field(event, genai::COMPLETION)
                    .as_ref()
                    .and_then(messages_from_json)
                {
                    messages.output.extend(parsed);
                }
            }
            genai::EVENT_OPERATION_DETAILS => {
                let read = |key: &str| {
                    structured_field(event, key)
                        .as_ref()
                        .and_then(messages_from_json)
                };
                if let Some(system) = read(genai::SYSTEM_INSTRUCTIONS) {
                    messages.system_instructions.extend(system);
                }
                if let Some(input) = read(genai::INPUT_MESSAGES) {
                    messages.input.extend(input);
                }
                if let Some(output) = read(genai::OUTPUT_MESSAGES) {
                    messages.output.extend(output);
                }
            }
            _ => {}
        }
    }
    messages
}

/// The text of a gentrace-style event attribute: `args` or `output`, as JSON text.
pub fn event_value(events: &[&Event], name: &str, key: &str) -> Option<String> {
    events
        .iter()
        .filter(|event| event.name == name)
        .find_map(|event| find(&event.attributes, key))
        .and_then(|value| match value {
            crate::model::AttrValue::String(text) => Some(text.clone()),
            other => json_as_text(&to_json(other)),
        })
}
