//! The searchable terms of a span: what the filter language's attribute, metadata and tag paths
//! find through an index instead of reading span bodies. Both stores index exactly these, so
//! a filter finds the same traces on either.
//!
//! Indexed: every attribute and resource attribute whose value is a string of at most
//! [`MAX_TERM_TEXT`] characters, an integer, a float or a boolean; the trace metadata and tags
//! of the conventions (`normalize::metadata`). Not indexed, and so never matched by
//! `attributes["k"]` paths: lists, maps, bytes, longer strings (prompts and answers: `input`,
//! `output` and `q` search those) and keys with a numeric segment (`gen_ai.prompt.0.content`,
//! `llm.input_messages.3.message.role`: message lists flattened into attributes).

use crate::model::{AttrValue, KeyValue, Span};
use crate::normalize::metadata::trace_metadata;

/// Longest string value indexed, in characters.
pub const MAX_TERM_TEXT: usize = 256;

/// What a term was read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TermKind {
    /// A span attribute.
    Attribute,
    /// An attribute of the span's resource.
    Resource,
    /// A trace metadata entry; values are strings.
    Metadata,
    /// A trace tag; the key is empty, the value the tag.
    Tag,
}

impl TermKind {
    /// A stable one-byte code, for the stores' columns.
    pub fn code(self) -> u8 {
        match self {
            TermKind::Attribute => 1,
            TermKind::Resource => 2,
            TermKind::Metadata => 3,
            TermKind::Tag => 4,
        }
    }

    pub fn from_code(code: u8) -> Option<Self> {
        Some(match code {
            1 => TermKind::Attribute,
            2 => TermKind::Resource,
            3 => TermKind::Metadata,
            4 => TermKind::Tag,
            _ => return None,
        })
    }
}

/// A value as indexed.
#[derive(Debug, Clone, PartialEq)]
pub enum TermValue {
    Text(String),
    Int(i64),
    Float(f64),
    Bool(bool),
}

/// One term of a span.
#[derive(Debug, Clone, PartialEq)]
pub struct Term {
    pub kind: TermKind,
    /// The attribute's or metadata entry's key; empty for tags.
    pub key: String,
    pub value: TermValue,
}

/// The terms of a span, each (kind, key, value) once.
pub fn span_terms(span: &Span) -> Vec<Term> {
    terms_of(&span.attributes, &span.resource.attributes)
}

/// The terms of a span's attributes and its resource's.
pub fn terms_of(attributes: &[KeyValue], resource_attributes: &[KeyValue]) -> Vec<Term> {
    let mut terms = Vec::new();
    push_attributes(&mut terms, TermKind::Attribute, attributes);
    push_attributes(&mut terms, TermKind::Resource, resource_attributes);
    let found = trace_metadata(attributes);
    for (key, value) in found.metadata {
        push(&mut terms, TermKind::Metadata, key, TermValue::Text(value));
    }
    for tag in found.tags {
        push(
            &mut terms,
            TermKind::Tag,
            String::new(),
            TermValue::Text(tag),
        );
    }
    terms
}

fn push_attributes(terms: &mut Vec<Term>, kind: TermKind, attributes: &[KeyValue]) {
    for attribute in attributes {
        if !searchable_key(&attribute.key) {
            continue;
        }
        let value = match &attribute.value {
            AttrValue::String(text) if text.chars().count() <= MAX_TERM_TEXT => {
                TermValue::Text(text.clone())
            }
            AttrValue::Int(number) => TermValue::Int(*number),
            AttrValue::Double(number) if number.is_finite() => TermValue::Float(*number),
            AttrValue::Bool(flag) => TermValue::Bool(*flag),
            _ => continue,
        };
        push(terms, kind, attribute.key.clone(), value);
    }
}

fn push(terms: &mut Vec<Term>, kind: TermKind, key: String, value: TermValue) {
    let term = Term { kind, key, value };
    if !terms.contains(&term) {
        terms.push(term);
    }
}

/// Keys of flattened message lists (a segment of digits) are not searchable.
fn searchable_key(key: &str) -> bool {
    !key.is_empty()
        && !key
            .split('.')
            .any(|segment| !segment.is_empty() && segment.bytes().all(|byte| byte.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_scalars_are_terms_and_message_lists_are_not() {
        let attributes = vec![
            KeyValue {
                key: "tenant".into(),
                value: AttrValue::String("acme".into()),
            },
            KeyValue {
                key: "retries".into(),
                value: AttrValue::Int(2),
            },
            KeyValue {
                key: "gen_ai.prompt.0.content".into(),
                value: AttrValue::String("hi".into()),
            },
            KeyValue {
                key: "input.value".into(),
                value: AttrValue::String("x".repeat(MAX_TERM_TEXT + 1)),
            },
            KeyValue {
                key: "langfuse.trace.tags".into(),
                value: AttrValue::Array(vec![AttrValue::String("beta".into())]),
            },
        ];
        let terms = terms_of(&attributes, &[]);
        let described: Vec<(TermKind, &str)> = terms
            .iter()
            .map(|term| (term.kind, term.key.as_str()))
            .collect();
        assert_eq!(
            described,
            [
                (TermKind::Attribute, "tenant"),
                (TermKind::Attribute, "retries"),
                (TermKind::Tag, "")
            ]
        );
        assert_eq!(terms[2].value, TermValue::Text("beta".into()));
    }
}
