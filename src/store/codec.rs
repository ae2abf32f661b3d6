//! The lossless encoding of a span's body (everything not kept in its own column), shared by
//! the storage backends: the serde types of the body, written as JSON text by [`encode_body`]
//! (ClickHouse's `body` column) and, with the span's semantics, as the embedded store's stored
//! span ([`stored_span`]).

mod blocks;
mod compressed;
mod stored_span;

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::model::attributes::{KeyValue, Stored};
use crate::model::{
    Event, Link, Resource, Scope, Span, SpanId, SpanKind, Status, StatusCode, TraceId,
};

use super::StoreError;

pub use blocks::{BlockPart, encode_in_blocks};
pub use compressed::Compression;
pub(crate) use compressed::{lz4_behind, unlz4, unzstd, zstd_behind};
#[cfg(test)]
pub(crate) use stored_span::encode_format_2;
pub use stored_span::{StoredBody, decode_stored_body, encode_stored_span};
pub(crate) use stored_span::{compress_packed, decompress_packed};

/// The columns a backend keeps next to the body.
#[derive(Debug, Clone)]
pub struct SpanColumns {
    pub trace_id: TraceId,
    pub span_id: SpanId,
    pub parent_span_id: Option<SpanId>,
    pub name: String,
    pub kind: i32,
    pub start_time_unix_nano: u64,
    pub end_time_unix_nano: u64,
    pub status_code: i32,
}

#[derive(Serialize)]
struct BodyOut<'a> {
    #[serde(skip_serializing_if = "str::is_empty")]
    trace_state: &'a str,
    #[serde(skip_serializing_if = "is_zero")]
    flags: u32,
    #[serde(skip_serializing_if = "str::is_empty")]
    status_message: &'a str,
    attributes: StoredAttributes<'a>,
    #[serde(skip_serializing_if = "is_zero")]
    dropped_attributes_count: u32,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    events: Vec<EventOut<'a>>,
    #[serde(skip_serializing_if = "is_zero")]
    dropped_events_count: u32,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    links: Vec<LinkOut<'a>>,
    #[serde(skip_serializing_if = "is_zero")]
    dropped_links_count: u32,
    resource: ResourceOut<'a>,
    scope: ScopeOut<'a>,
}

fn is_zero(number: &u32) -> bool {
    *number == 0
}

/// Serializes an attribute list in the stored form.
struct StoredAttributes<'a>(&'a [KeyValue]);

impl Serialize for StoredAttributes<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        Stored(self.0).serialize(serializer)
    }
}

#[derive(Serialize)]
struct EventOut<'a> {
    time_unix_nano: u64,
    name: &'a str,
    attributes: StoredAttributes<'a>,
    #[serde(skip_serializing_if = "is_zero")]
    dropped_attributes_count: u32,
}

#[derive(Serialize)]
struct LinkOut<'a> {
    trace_id: String,
    span_id: String,
    #[serde(skip_serializing_if = "str::is_empty")]
    trace_state: &'a str,
    attributes: StoredAttributes<'a>,
    #[serde(skip_serializing_if = "is_zero")]
    dropped_attributes_count: u32,
    #[serde(skip_serializing_if = "is_zero")]
    flags: u32,
}

#[derive(Serialize)]
struct ResourceOut<'a> {
    attributes: StoredAttributes<'a>,
    #[serde(skip_serializing_if = "is_zero")]
    dropped_attributes_count: u32,
    #[serde(skip_serializing_if = "str::is_empty")]
    schema_url: &'a str,
}

#[derive(Serialize)]
struct ScopeOut<'a> {
    #[serde(skip_serializing_if = "str::is_empty")]
    name: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    version: &'a str,
    attributes: StoredAttributes<'a>,
    #[serde(skip_serializing_if = "is_zero")]
    dropped_attributes_count: u32,
    #[serde(skip_serializing_if = "str::is_empty")]
    schema_url: &'a str,
}

/// Encodes the body of a span.
pub fn encode_body(span: &Span) -> String {
    serde_json::to_string(&body_out(span)).unwrap_or_else(|_| "{}".to_owned())
}

fn body_out(span: &Span) -> BodyOut<'_> {
    BodyOut {
        trace_state: &span.trace_state,
        flags: span.flags,
        status_message: &span.status.message,
        attributes: StoredAttributes(&span.attributes),
        dropped_attributes_count: span.dropped_attributes_count,
        events: span
            .events
            .iter()
            .map(|event| EventOut {
                time_unix_nano: event.time_unix_nano,
                name: &event.name,
                attributes: StoredAttributes(&event.attributes),
                dropped_attributes_count: event.dropped_attributes_count,
            })
            .collect(),
        dropped_events_count: span.dropped_events_count,
        links: span
            .links
            .iter()
            .map(|link| LinkOut {
                trace_id: link.trace_id.to_hex(),
                span_id: link.span_id.to_hex(),
                trace_state: &link.trace_state,
                attributes: StoredAttributes(&link.attributes),
                dropped_attributes_count: link.dropped_attributes_count,
                flags: link.flags,
            })
            .collect(),
        dropped_links_count: span.dropped_links_count,
        resource: ResourceOut {
            attributes: StoredAttributes(&span.resource.attributes),
            dropped_attributes_count: span.resource.dropped_attributes_count,
            schema_url: &span.resource.schema_url,
        },
        scope: ScopeOut {
            name: &span.scope.name,
            version: &span.scope.version,
            attributes: StoredAttributes(&span.scope.attributes),
            dropped_attributes_count: span.scope.dropped_attributes_count,
            schema_url: &span.scope.schema_url,
        },
    }
}

#[derive(Deserialize)]
struct BodyIn {
    #[serde(default)]
    trace_state: String,
    #[serde(default)]
    flags: u32,
    #[serde(default)]
    status_message: String,
    #[serde(default)]
    attributes: Stored<Vec<KeyValue>>,
    #[serde(default)]
    dropped_attributes_count: u32,
    #[serde(default)]
    events: Vec<EventIn>,
    #[serde(default)]
    dropped_events_count: u32,
    #[serde(default)]
    links: Vec<LinkIn>,
    #[serde(default)]
    dropped_links_count: u32,
    // An empty body (what the encoders fall back to) reads as a span with nothing but its
    // columns.
    #[serde(default)]
    resource: ResourceIn,
    #[serde(default)]
    scope: ScopeIn,
}

impl Default for Stored<Vec<KeyValue>> {
    fn default() -> Self {
        Stored(Vec::new())
    }
}

#[derive(Deserialize)]
struct EventIn {
    time_unix_nano: u64,
    name: String,
    #[serde(default)]
    attributes: Stored<Vec<KeyValue>>,
    #[serde(default)]
    dropped_attributes_count: u32,
}

#[derive(Deserialize)]
struct LinkIn {
    trace_id: String,
    span_id: String,
    #[serde(default)]
    trace_state: String,
    #[serde(default)]
    attributes: Stored<Vec<KeyValue>>,
    #[serde(default)]
    dropped_attributes_count: u32,
    #[serde(default)]
    flags: u32,
}

#[derive(Deserialize, Default)]
struct ResourceIn {
    #[serde(default)]
    attributes: Stored<Vec<KeyValue>>,
    #[serde(default)]
    dropped_attributes_count: u32,
    #[serde(default)]
    schema_url: String,
}

#[derive(Deserialize, Default)]
struct ScopeIn {
    #[serde(default)]
    name: String,
    #[serde(default)]
    version: String,
    #[serde(default)]
    attributes: Stored<Vec<KeyValue>>,
    #[serde(default)]
    dropped_attributes_count: u32,
    #[serde(default)]
    schema_url: String,
}

/// Rebuilds a span from its columns and its body's JSON text.
pub fn decode_span(columns: SpanColumns, body: &str) -> Result<Span, StoreError> {
    let body: BodyIn =
        serde_json::from_str(body).map_err(|error| StoreError::Corrupt(error.to_string()))?;
    body.into_span(columns)
}

impl BodyIn {
    /// The span of these columns and this body, whichever encoding the body was read from.
    fn into_span(self, columns: SpanColumns) -> Result<Span, StoreError> {
        let mut links = Vec::with_capacity(self.links.len());
        for link in self.links {
            let (Ok(trace_id), Ok(span_id)) = (
                TraceId::parse_hex(&link.trace_id),
                SpanId::parse_hex(&link.span_id),
            ) else {
                return Err(StoreError::Corrupt("invalid link id".into()));
            };
            links.push(Link {
                trace_id,
                span_id,
                trace_state: link.trace_state,
                attributes: link.attributes.0,
                dropped_attributes_count: link.dropped_attributes_count,
                flags: link.flags,
            });
        }
        Ok(Span {
            trace_id: columns.trace_id,
            span_id: columns.span_id,
            parent_span_id: columns.parent_span_id,
            trace_state: self.trace_state,
            flags: self.flags,
            name: columns.name,
            kind: SpanKind::from_otlp(columns.kind),
            start_time_unix_nano: columns.start_time_unix_nano,
            end_time_unix_nano: columns.end_time_unix_nano,
            attributes: self.attributes.0,
            dropped_attributes_count: self.dropped_attributes_count,
            events: self
                .events
                .into_iter()
                .map(|event| Event {
                    time_unix_nano: event.time_unix_nano,
                    name: event.name,
                    attributes: event.attributes.0,
                    dropped_attributes_count: event.dropped_attributes_count,
                })
                .collect(),
            dropped_events_count: self.dropped_events_count,
            links,
            dropped_links_count: self.dropped_links_count,
            status: Status {
                code: StatusCode::from_otlp(columns.status_code),
                message: self.status_message,
            },
            resource: Arc::new(Resource {
                attributes: self.resource.attributes.0,
                dropped_attributes_count: self.resource.dropped_attributes_count,
                schema_url: self.resource.schema_url,
            }),
            scope: Arc::new(Scope {
                name: self.scope.name,
                version: self.scope.version,
                attributes: self.scope.attributes.0,
                dropped_attributes_count: self.scope.dropped_attributes_count,
                schema_url: self.scope.schema_url,
            }),
        })
    }
}

/// The columns of a span.
pub fn columns_of(span: &Span) -> SpanColumns {
    SpanColumns {
        trace_id: span.trace_id,
        span_id: span.span_id,
        parent_span_id: span.parent_span_id,
        name: span.name.clone(),
        kind: span.kind.to_otlp(),
        start_time_unix_nano: span.start_time_unix_nano,
        end_time_unix_nano: span.end_time_unix_nano,
        status_code: span.status.code.to_otlp(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::AttrValue;
    use crate::model::span::test_support::make_span;

    /// Every kind of attribute value, nested where OTLP allows it.
    pub(super) fn attributes_of_every_kind() -> Vec<KeyValue> {
        vec![
            KeyValue::new("string", AttrValue::String("line one\nline \"two\"".into())),
            KeyValue::new("empty_string", AttrValue::String(String::new())),
            KeyValue::new("bool", AttrValue::Bool(false)),
            KeyValue::new("small_int", AttrValue::Int(3)),
            KeyValue::new("negative_int", AttrValue::Int(-300)),
            KeyValue::new("largest_int", AttrValue::Int(i64::MAX)),
            KeyValue::new("smallest_int", AttrValue::Int(i64::MIN)),
            KeyValue::new("whole_double", AttrValue::Double(2.0)),
            KeyValue::new("double", AttrValue::Double(-0.125)),
            KeyValue::new("infinity", AttrValue::Double(f64::INFINITY)),
            KeyValue::new("negative_infinity", AttrValue::Double(f64::NEG_INFINITY)),
            KeyValue::new("bytes", AttrValue::Bytes(vec![0, 159, 255])),
            KeyValue::new("no_bytes", AttrValue::Bytes(Vec::new())),
            KeyValue::new("empty", AttrValue::Empty),
            KeyValue::new(
                "array",
                AttrValue::Array(vec![
                    AttrValue::Int(1),
                    AttrValue::Double(1.0),
                    AttrValue::String("x".into()),
                    AttrValue::Empty,
                    AttrValue::Array(Vec::new()),
                    AttrValue::Map(vec![KeyValue::new("k", AttrValue::Bool(true))]),
                ]),
            ),
            KeyValue::new(
                "kvlist",
                AttrValue::Map(vec![
                    // A key that is also a tag of the stored form.
                    KeyValue::new("bytes", AttrValue::Int(3)),
                    KeyValue::new("nested", AttrValue::Map(Vec::new())),
                    KeyValue::new(
                        "deeper",
                        AttrValue::Map(vec![KeyValue::new(
                            "double",
                            AttrValue::Double(f64::NEG_INFINITY),
                        )]),
                    ),
                ]),
            ),
        ]
    }

    /// A span with something in every part of its body.
    pub(super) fn span_with_every_part() -> Span {
        Span {
            trace_state: "k=v".into(),
            flags: 257,
            attributes: attributes_of_every_kind(),
            dropped_attributes_count: 4,
            events: vec![Event {
                time_unix_nano: 5,
                name: "gen_ai.choice".into(),
                attributes: attributes_of_every_kind(),
                dropped_attributes_count: 1,
            }],
            dropped_events_count: 3,
            links: vec![Link {
                trace_id: TraceId([3; 16]),
                span_id: SpanId([4; 8]),
                trace_state: "a=b".into(),
                attributes: vec![KeyValue::new("link", AttrValue::Int(-1))],
                dropped_attributes_count: 6,
                flags: 1,
            }],
            dropped_links_count: 2,
            status: Status {
                code: StatusCode::Error,
                message: "boom".into(),
            },
            resource: Arc::new(Resource {
                attributes: vec![KeyValue::new(
                    "service.name",
                    AttrValue::String("svc".into()),
                )],
                dropped_attributes_count: 7,
                schema_url: "https://opentelemetry.io/schemas/1.26.0".into(),
            }),
            scope: Arc::new(Scope {
                name: "openinference".into(),
                version: "0.1".into(),
                attributes: vec![KeyValue::new("scope", AttrValue::Bool(true))],
                dropped_attributes_count: 8,
                schema_url: "https://example.com/scope".into(),
            }),
            ..make_span(1, 2)
        }
    }

    #[test]
    fn body_round_trips_losslessly() {
        let span = span_with_every_part();
        let decoded = decode_span(columns_of(&span), &encode_body(&span)).unwrap();
        assert_eq!(decoded, span);
    }

    #[test]
    fn an_empty_body_is_a_span_of_its_columns_alone() {
        let span = make_span(1, 2);
        assert_eq!(decode_span(columns_of(&span), "{}").unwrap(), span);
    }
}
