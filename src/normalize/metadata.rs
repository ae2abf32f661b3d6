//! Trace metadata and tags (SPEC §7): what the conventions attach to a whole interaction for
//! segmenting it — a tenant, an environment, a feature flag — read from any span of the trace.
//!
//! | convention | metadata | tags |
//! |---|---|---|
//! | Langfuse | `langfuse.trace.metadata.<k>`, or `langfuse.trace.metadata` (JSON object) | `langfuse.trace.tags` (list, or JSON list) |
//! | OpenInference | `metadata` (JSON object, or a map) | `tag.tags` (list, or JSON list) |
//! | Vercel AI SDK | `ai.telemetry.metadata.<k>` | — |
//!
//! Values are kept as strings (numbers and booleans in their JSON form), so that
//! `metadata["k"] == "v"` reads the same whichever convention sent it.

use crate::model::attributes::Plain;
use crate::model::{AttrValue, KeyValue};

/// The metadata entries and tags one span carries for its trace.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TraceMetadata {
    /// `(key, value)`, in the order found; a key may repeat with different values.
    pub metadata: Vec<(String, String)>,
    /// Tags, in the order found.
    pub tags: Vec<String>,
}

/// Prefixes under which each attribute is one metadata entry.
const METADATA_PREFIXES: [&str; 2] = ["langfuse.trace.metadata.", "ai.telemetry.metadata."];

/// Attributes holding a whole metadata object.
const METADATA_OBJECTS: [&str; 2] = ["langfuse.trace.metadata", "metadata"];

/// Attributes holding a list of tags.
const TAG_LISTS: [&str; 2] = ["langfuse.trace.tags", "tag.tags"];

/// Reads the metadata and tags of a span's attributes.
pub fn trace_metadata(attributes: &[KeyValue]) -> TraceMetadata {
    let mut found = TraceMetadata::default();
    for attribute in attributes {
        let key = attribute.key.as_str();
        if let Some(name) = METADATA_PREFIXES
            .iter()
            .find_map(|prefix| key.strip_prefix(prefix))
            .filter(|name| !name.is_empty())
        {
            if let Some(value) = scalar_text(&attribute.value) {
                found.metadata.push((name.to_owned(), value));
            }
        } else if METADATA_OBJECTS.contains(&key) {
            object_entries(&attribute.value, &mut found.metadata);
        } else if TAG_LISTS.contains(&key) {
            tag_list(&attribute.value, &mut found.tags);
        }
    }
    found
}

/// A value as metadata text: strings as they are, other scalars and lists as JSON.
fn scalar_text(value: &AttrValue) -> Option<String> {
    match value {
        AttrValue::String(text) => Some(text.clone()),
        AttrValue::Empty | AttrValue::Bytes(_) => None,
        other => serde_json::to_string(&Plain(other)).ok(),
    }
}

fn json_text(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

fn object_entries(value: &AttrValue, into: &mut Vec<(String, String)>) {
    match value {
        AttrValue::Map(entries) => {
            for entry in entries {
                if let Some(text) = scalar_text(&entry.value) {
                    into.push((entry.key.clone(), text));
                }
            }
        }
        AttrValue::String(text) => {
            if let Ok(serde_json::Value::Object(object)) = serde_json::from_str(text) {
                for (key, value) in object {
                    if !value.is_null() {
                        into.push((key, json_text(&value)));
                    }
                }
            }
        }
        _ => {}
    }
}

fn tag_list(value: &AttrValue, into: &mut Vec<String>) {
    match value {
        AttrValue::Array(items) => {
            into.extend(items.iter().filter_map(|item| match item {
                AttrValue::String(tag) => Some(tag.clone()),
                _ => None,
            }));
        }
        AttrValue::String(text) => match serde_json::from_str::<Vec<serde_json::Value>>(text) {
            Ok(items) => into.extend(items.iter().map(json_text)),
            // One tag given as a plain string.
            Err(_) if !text.trim().is_empty() => into.push(text.clone()),
            Err(_) => {}
        },
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(key: &str, value: &str) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: AttrValue::String(value.into()),
        }
    }

    #[test]
    fn every_convention_gives_the_same_entries() {
        let found = trace_metadata(&[
            text("langfuse.trace.metadata.tenant", "acme"),
            text("langfuse.trace.metadata", r#"{"env": "prod", "tries": 3}"#),
            text("metadata", r#"{"flag": true}"#),
            KeyValue {
                key: "ai.telemetry.metadata.region".into(),
                value: AttrValue::Int(7),
            },
            text("langfuse.trace.tags", r#"["beta", "eu"]"#),
            KeyValue {
                key: "tag.tags".into(),
                value: AttrValue::Array(vec![AttrValue::String("vip".into())]),
            },
            text("unrelated", "x"),
        ]);
        assert_eq!(
            found.metadata,
            [
                ("tenant", "acme"),
                ("env", "prod"),
                ("tries", "3"),
                ("flag", "true"),
                ("region", "7")
            ]
            .map(|(key, value)| (key.to_owned(), value.to_owned()))
        );
        assert_eq!(found.tags, ["beta", "eu", "vip"]);
    }

    #[test]
    fn malformed_values_are_skipped() {
        let found = trace_metadata(&[
            text("metadata", "not json"),
            text("langfuse.trace.metadata.", "no name"),
            text("tag.tags", "  "),
        ]);
        assert_eq!(found, TraceMetadata::default());
    }
}
