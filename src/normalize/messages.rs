//! Message lists in every shape conventions write them, and the texts read from them.
//!
//! Shapes understood:
//! - OpenTelemetry GenAI JSON: `[{"role", "parts": [{"type": "text", "content"}, {"type":
//!   "tool_call", ..}, {"type": "tool_call_response", ..}], "finish_reason"}]`, and system
//!   instructions as a bare list of parts;
//! - OpenAI chat JSON: `[{"role", "content": "…" | [{"type": "text", "text"}], "tool_calls"}]`,
//!   a request object holding `"messages"`, a response object holding `"choices"`;
//! - the Vercel AI SDK's messages: OpenAI's shape with `tool-call` and `tool-result` parts;
//! - flattened attributes: `llm.input_messages.N.message.*` (OpenInference) and
//!   `gen_ai.prompt.N.*` / `gen_ai.completion.N.*` (older GenAI, OpenLLMetry).

use std::collections::BTreeMap;

use serde_json::Value;

use super::values::json_as_text;
use crate::model::attributes::{AttrValue, KeyValue};
use crate::model::llm::{Message, ToolCallRequest};

/// Roles as the conventions agree on them.
fn canonical_role(role: &str) -> String {
    match role.to_ascii_lowercase().as_str() {
        "human" => "user".to_owned(),
        "ai" | "model" | "bot" => "assistant".to_owned(),
        "developer" => "system".to_owned(),
        other => other.to_owned(),
    }
}

/// The common GenAI shape read straight from its text, without a JSON tree in between: an
/// array of `{"role", "parts": [{"type": "text", "content": "…"}, …], "finish_reason"}` with
/// text parts only, and no other key. What it reads is what [`messages_from_json`] reads from
/// the same JSON; any other text gives `None`, to be read by that. (The tree cost about two
/// thirds of normalizing a span of GenAI JSON messages.)
pub fn text_messages_from_json(text: &str) -> Option<Vec<Message>> {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct TextMessage {
        role: String,
        parts: Vec<TextPart>,
        #[serde(default)]
        finish_reason: Option<String>,
    }
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct TextPart {
        #[serde(rename = "type")]
        kind: String,
        content: String,
    }
    let messages: Vec<TextMessage> = serde_json::from_str(text).ok()?;
    let text_parts_only = messages
        .iter()
        .flat_map(|message| &message.parts)
        .all(|part| matches!(part.kind.as_str(), "text" | "input_text" | "output_text"));
    if !text_parts_only {
        return None;
    }
    let messages = messages.into_iter().map(|message| {
        let mut texts: Vec<String> = message.parts.into_iter().map(|part| part.content).collect();
        let content = if texts.len() <= 1 {
            texts.pop()
        } else {
            Some(texts.join("\n"))
        };
        Message {
            role: canonical_role(&message.role),
            content,
            finish_reason: message.finish_reason,
            ..Default::default()
        }
    });
    Some(messages.collect())
}

/// Reads a message list from JSON in any of the shapes above; `None` when it is none of them.
pub fn messages_from_json(value: &Value) -> Option<Vec<Message>> {
    match value {
        Value::Array(items) if !items.is_empty() => {
            if items.iter().all(is_message_object) {
                Some(items.iter().filter_map(message_from_json).collect())
            } else if items.iter().all(is_part_object) {
                // A bare list of parts: GenAI system instructions.
                let (content, _) = content_from_parts(items);
                Some(vec![Message {
                    role: "system".into(),
                    content,
                    ..Default::default()
                }])
            } else {
                None
            }
        }
        Value::Object(object) => {
            if let Some(messages) = object.get("messages") {
                return messages_from_json(messages);
            }
            if let Some(Value::Array(choices)) = object.get("choices") {
                let messages: Vec<Message> = choices.iter().filter_map(choice_from_json).collect();
                return (!messages.is_empty()).then_some(messages);
            }
            if is_message_object(value) {
                return message_from_json(value).map(|message| vec![message]);
            }
            None
        }
        _ => None,
    }
}

fn is_message_object(value: &Value) -> bool {
    value.get("role").is_some_and(Value::is_string)
}

fn is_part_object(value: &Value) -> bool {
    value.get("type").is_some_and(Value::is_string)
        && (value.get("content").is_some() || value.get("text").is_some())
}

/// One OpenAI response choice: `{"message": {..}, "finish_reason"}` or `{"text"}` (completions).
fn choice_from_json(choice: &Value) -> Option<Message> {
    let mut message = match choice.get("message").or_else(|| choice.get("delta")) {
        Some(inner) => message_from_json(inner)?,
        None => Message {
            role: "assistant".into(),
            content: choice.get("text").and_then(json_as_text),
            ..Default::default()
        },
    };
    if message.finish_reason.is_none() {
        message.finish_reason = choice
            .get("finish_reason")
            .and_then(Value::as_str)
            .map(str::to_owned);
    }
    Some(message)
}

fn message_from_json(value: &Value) -> Option<Message> {
    let role = canonical_role(value.get("role")?.as_str()?);
    let mut tool_calls = Vec::new();
    let mut tool_call_id = value
        .get("tool_call_id")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let parts = match (value.get("parts"), value.get("content")) {
        (Some(Value::Array(parts)), _) | (_, Some(Value::Array(parts))) => Some(parts),
        _ => None,
    };
    let content = match parts {
        Some(parts) => {
            let (content, parts_info) = content_from_parts(parts);
            tool_calls = parts_info.tool_calls;
            tool_call_id = tool_call_id.or(parts_info.tool_call_id);
            content
        }
        None => value.get("content").and_then(json_as_text),
    };
    if let Some(Value::Array(calls)) = value.get("tool_calls") {
        tool_calls.extend(calls.iter().filter_map(tool_call_from_json));
    }
    if let Some(call) = value.get("function_call").and_then(tool_call_from_json) {
        tool_calls.push(call);
    }
    Some(Message {
        role,
        content,
        tool_calls,
        tool_call_id: tool_call_id.or_else(|| {
            value
                .get("id")
                .and_then(Value::as_str)
                .filter(|_| value.get("role").and_then(Value::as_str) == Some("tool"))
                .map(str::to_owned)
        }),
        finish_reason: value
            .get("finish_reason")
            .and_then(Value::as_str)
            .map(str::to_owned),
    })
}

/// `{"id", "function": {"name", "arguments"}}` (OpenAI), `{"id", "name", "arguments"}`, or the
/// Vercel AI SDK's `{"toolCallId", "toolName", "input" | "args"}`.
pub(super) fn tool_call_from_json(value: &Value) -> Option<ToolCallRequest> {
    let function = value.get("function").unwrap_or(value);
    let name = function
        .get("name")
        .or_else(|| value.get("toolName"))?
        .as_str()?
        .to_owned();
    Some(ToolCallRequest {
        id: value
            .get("id")
            .or_else(|| value.get("toolCallId"))
            .and_then(Value::as_str)
            .map(str::to_owned),
        name,
        arguments: ["arguments", "input", "args"]
            .iter()
            .find_map(|key| function.get(*key))
            .and_then(json_as_text),
    })
}

#[derive(Default)]
struct PartsInfo {
    tool_calls: Vec<ToolCallRequest>,
    tool_call_id: Option<String>,
}

/// Joins the text parts of a message; collects its tool calls. Tool results are the content of
/// a message that has no text of its own (a tool's message); beside text (an agent's whole
/// turn, say) they are not.
fn content_from_parts(parts: &[Value]) -> (Option<String>, PartsInfo) {
    let mut texts = Vec::new();
    let mut results = Vec::new();
    let mut info = PartsInfo::default();
    for part in parts {
        match part.get("type").and_then(Value::as_str).unwrap_or("text") {
            "text" | "input_text" | "output_text" => {
                if let Some(text) = part
                    .get("content")
                    .or_else(|| part.get("text"))
                    .and_then(json_as_text)
                {
                    texts.push(text);
                }
            }
            // GenAI's `tool_call`, the Vercel AI SDK's `tool-call`.
            "tool_call" | "tool-call" => {
                if let Some(call) = tool_call_from_json(part) {
                    info.tool_calls.push(call);
                }
            }
            kind @ ("tool_call_response" | "tool-result") => {
                let (id_key, result_keys) = if kind == "tool-result" {
                    ("toolCallId", ["output", "result"])
                } else {
                    ("id", ["response", "result"])
                };
                info.tool_call_id = part.get(id_key).and_then(Value::as_str).map(str::to_owned);
                if let Some(text) = result_keys
                    .iter()
                    .find_map(|key| part.get(*key))
                    .and_then(json_as_text)
                {
                    results.push(text);
                }
            }
            _ => {}
        }
    }
    if texts.is_empty() {
        texts = results;
    }
    // One text part is the common case: keep it rather than copy it into a joined string.
    let content = if texts.len() <= 1 {
        texts.pop()
    } else {
        Some(texts.join("\n"))
    };
    (content, info)
}

/// Reads flattened messages: every attribute `PREFIX.N.…`, grouped by N.
pub fn messages_from_flattened(attributes: &[KeyValue], prefix: &str) -> Vec<Message> {
    let mut by_index: BTreeMap<usize, Vec<(&str, &AttrValue)>> = BTreeMap::new();
    for entry in attributes {
        let Some(rest) = entry.key.strip_prefix(prefix) else {
            continue;
        };
        let Some((index, field)) = rest.split_once('.') else {
            continue;
        };
        let Ok(index) = index.parse::<usize>() else {
            continue;
        };
        let field = field.strip_prefix("message.").unwrap_or(field);
        by_index
            .entry(index)
            .or_default()
            .push((field, &entry.value));
    }
    by_index
        .into_values()
        .filter_map(|fields| flattened_message(&fields))
        .collect()
}

fn flattened_message(fields: &[(&str, &AttrValue)]) -> Option<Message> {
    let text = |name: &str| {
        fields
            .iter()
            .find(|(field, _)| *field == name)
            .and_then(|(_, value)| value.as_str())
            .map(str::to_owned)
    };
    let mut content = text("content");
    if content.is_none() {
        // OpenInference multi-part content: contents.J.message_content.text
        let parts: BTreeMap<usize, String> = fields
            .iter()
            .filter_map(|(field, value)| {
                let rest = field.strip_prefix("contents.")?;
                let (index, name) = rest.split_once('.')?;
                (name == "message_content.text")
                    .then(|| Some((index.parse().ok()?, value.as_str()?.to_owned())))?
            })
            .collect();
        if !parts.is_empty() {
            content = Some(parts.into_values().collect::<Vec<_>>().join("\n"));
        }
    }
    let mut calls: BTreeMap<usize, ToolCallRequest> = BTreeMap::new();
    for (field, value) in fields {
        let Some(rest) = field.strip_prefix("tool_calls.") else {
            continue;
        };
        let Some((index, name)) = rest.split_once('.') else {
            continue;
        };
        let Ok(index) = index.parse::<usize>() else {
            continue;
        };
        let name = name.strip_prefix("tool_call.").unwrap_or(name);
        let name = name.strip_prefix("function.").unwrap_or(name);
        let call = calls.entry(index).or_default();
        let text = value.as_str().map(str::to_owned);
        match name {
            "name" => call.name = text.unwrap_or_default(),
            "arguments" => call.arguments = text,
            "id" => call.id = text,
            _ => {}
        }
    }
    let role = text("role");
    if role.is_none() && content.is_none() && calls.is_empty() {
        return None;
    }
    Some(Message {
        role: canonical_role(role.as_deref().unwrap_or("user")),
        content,
        tool_calls: calls
            .into_values()
            .filter(|call| !call.name.is_empty())
            .collect(),
        tool_call_id: text("tool_call_id"),
        finish_reason: text("finish_reason"),
    })
}

/// The input text of a conversation: the last user message that has text.
pub fn input_text(messages: &[Message]) -> Option<String> {
    messages
        .iter()
        .rev()
        .find(|message| message.role == "user" && message.content.is_some())
        .and_then(|message| message.content.clone())
}

/// The output text of a response: the first choice that has text.
pub fn output_text(messages: &[Message]) -> Option<String> {
    messages.iter().find_map(|message| message.content.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The direct reading of GenAI text messages gives what the JSON tree gives, takes the
    /// common shapes, and leaves every other one to the tree.
    #[test]
    fn text_messages_read_directly_as_the_tree_reads_them() {
        let taken = [
            r#"[{"role": "user", "parts": [{"type": "text", "content": "Say hi"}]}]"#,
            r#" [{"role": "Human", "parts": [{"type": "text", "content": "a \"quoted\" \u00e9\n"}]},
                {"role": "model", "parts": [{"type": "output_text", "content": "one"},
                 {"type": "text", "content": "two"}], "finish_reason": "stop"}]"#,
            r#"[{"role": "assistant", "parts": [], "finish_reason": null}]"#,
            r#"[{"role": "developer", "parts": [{"type": "input_text", "content": ""}]}]"#,
            "[]",
        ];
        for text in taken {
            let direct = text_messages_from_json(text);
            let tree = messages_from_json(&serde_json::from_str(text).unwrap());
            assert!(direct.is_some(), "{text} not taken");
            assert_eq!(
                direct.filter(|messages| !messages.is_empty()),
                tree,
                "{text}"
            );
        }
        let left = [
            r#"[{"role": "user", "parts": [{"type": "tool_call", "id": "1", "name": "f"}]}]"#,
            r#"[{"role": "user", "parts": [{"type": "text", "content": null}]}]"#,
            r#"[{"role": "user", "parts": [{"content": "no type"}]}]"#,
            r#"[{"role": "user", "name": "x", "parts": [{"type": "text", "content": "hi"}]}]"#,
            r#"[{"role": "user", "parts": [{"type": "text", "content": "hi", "x": 1}]}]"#,
            r#"[{"role": "user", "content": "OpenAI shape"}]"#,
            r#"[{"type": "text", "content": "system instructions"}]"#,
            r#"[{"role": "user", "parts": [], "finish_reason": 3}]"#,
            r#"{"messages": []}"#,
            "not json",
        ];
        for text in left {
            assert_eq!(text_messages_from_json(text), None, "{text} taken");
        }
    }

    #[test]
    fn genai_parts_and_openai_content_read_alike() {
        let genai = json!([
            {"role": "system", "parts": [{"type": "text", "content": "Be terse."}]},
            {"role": "user", "parts": [{"type": "text", "content": "Say hi"}]}
        ]);
        let openai = json!({"model": "m", "messages": [
            {"role": "system", "content": "Be terse."},
            {"role": "user", "content": [{"type": "text", "text": "Say hi"}]}
        ]});
        let from_genai = messages_from_json(&genai).unwrap();
        assert_eq!(from_genai, messages_from_json(&openai).unwrap());
        assert_eq!(input_text(&from_genai).as_deref(), Some("Say hi"));
    }

    #[test]
    fn responses_tool_calls_and_system_instructions() {
        let response = json!({"choices": [{"finish_reason": "tool_calls", "message": {
            "role": "assistant", "content": null,
            "tool_calls": [{"id": "c1", "type": "function",
                            "function": {"name": "search", "arguments": "{\"q\":1}"}}]}}]});
        let messages = messages_from_json(&response).unwrap();
        assert_eq!(messages[0].tool_calls[0].name, "search");
        assert_eq!(messages[0].finish_reason.as_deref(), Some("tool_calls"));
        assert_eq!(output_text(&messages), None);

        let instructions = json!([{"type": "text", "content": "You are kind."}]);
        let system = messages_from_json(&instructions).unwrap();
        assert_eq!(system[0].role, "system");
        assert_eq!(system[0].content.as_deref(), Some("You are kind."));

        assert_eq!(messages_from_json(&json!([{"q": "Say hello"}])), None);
        assert_eq!(messages_from_json(&json!("text")), None);
    }

    #[test]
    fn flattened_openinference_and_genai() {
        let attributes = vec![
            KeyValue::new(
                "llm.input_messages.1.message.role",
                AttrValue::String("user".into()),
            ),
            KeyValue::new(
                "llm.input_messages.1.message.contents.0.message_content.type",
                AttrValue::String("text".into()),
            ),
            KeyValue::new(
                "llm.input_messages.1.message.contents.0.message_content.text",
                AttrValue::String("Hello".into()),
            ),
            KeyValue::new(
                "llm.input_messages.0.message.role",
                AttrValue::String("system".into()),
            ),
            KeyValue::new(
                "llm.input_messages.0.message.content",
                AttrValue::String("Sys".into()),
            ),
            KeyValue::new(
                "gen_ai.completion.0.role",
                AttrValue::String("assistant".into()),
            ),
            KeyValue::new(
                "gen_ai.completion.0.finish_reason",
                AttrValue::String("tool_calls".into()),
            ),
            KeyValue::new(
                "gen_ai.completion.0.tool_calls.0.name",
                AttrValue::String("lookup".into()),
            ),
            KeyValue::new(
                "gen_ai.completion.0.tool_calls.0.arguments",
                AttrValue::String("{}".into()),
            ),
        ];
        let input = messages_from_flattened(&attributes, "llm.input_messages.");
        assert_eq!(input.len(), 2);
        assert_eq!(input[0].role, "system");
        assert_eq!(input_text(&input).as_deref(), Some("Hello"));
        let output = messages_from_flattened(&attributes, "gen_ai.completion.");
        assert_eq!(output[0].tool_calls[0].name, "lookup");
        assert_eq!(output[0].finish_reason.as_deref(), Some("tool_calls"));
    }
}
