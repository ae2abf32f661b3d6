//! The lossless encoding of a span's body (everything not kept in its own column) as JSON text,
//! shared by the storage backends.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::model::attributes::{KeyValue, Stored};
use crate::model::{
    Event, Link, Resource, Scope, Span, SpanId, SpanKind, Status, StatusCode, TraceId,
};

use super::StoreError;

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
    let body = BodyOut {
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
    };
    serde_json::to_string(&body).unwrap_or_else(|_| "{}".to_owned())
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
    resource: ResourceIn,
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

#[derive(Deserialize)]
struct ResourceIn {
    #[serde(default)]
    attributes: Stored<Vec<KeyValue>>,
    #[serde(default)]
    dropped_attributes_count: u32,
    #[serde(default)]
    schema_url: String,
}

#[derive(Deserialize)]
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

/// The body compressed for storage: a format byte (1: LZ4 block with its size prepended), then
/// the compressed JSON. LLM spans are mostly text, which LZ4 shrinks severalfold at a cost far
/// below that of writing it; what the embedded store writes is what limits its throughput.
pub fn encode_body_compressed(span: &Span) -> Vec<u8> {
    let json = encode_body(span);
    let mut out = vec![1u8];
    out.extend(lz4_flex::block::compress_prepend_size(json.as_bytes()));
    out
}

/// Reads a body written by [`encode_body_compressed`], or plain JSON text.
pub fn decode_body_bytes(bytes: &[u8]) -> Result<std::borrow::Cow<'_, str>, StoreError> {
    match bytes.first() {
        Some(1) => {
            let json = lz4_flex::block::decompress_size_prepended(&bytes[1..])
                .map_err(|error| StoreError::Corrupt(format!("span body: {error}")))?;
            String::from_utf8(json)
                .map(std::borrow::Cow::Owned)
                .map_err(|error| StoreError::Corrupt(format!("span body: {error}")))
        }
        _ => std::str::from_utf8(bytes)
            .map(std::borrow::Cow::Borrowed)
            .map_err(|error| StoreError::Corrupt(format!("span body: {error}"))),
    }
}

/// Rebuilds a span from its columns and body.
pub fn decode_span(columns: SpanColumns, body: &str) -> Result<Span, StoreError> {
    let body: BodyIn =
        serde_json::from_str(body).map_err(|error| StoreError::Corrupt(error.to_string()))?;
    let mut links = Vec::with_capacity(body.links.len());
    for link in body.links {
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
        trace_state: body.trace_state,
        flags: body.flags,
        name: columns.name,
        kind: SpanKind::from_otlp(columns.kind),
        start_time_unix_nano: columns.start_time_unix_nano,
        end_time_unix_nano: columns.end_time_unix_nano,
        attributes: body.attributes.0,
        dropped_attributes_count: body.dropped_attributes_count,
        events: body
            .events
            .into_iter()
            .map(|event| Event {
                time_unix_nano: event.time_unix_nano,
                name: event.name,
                attributes: event.attributes.0,
                dropped_attributes_count: event.dropped_attributes_count,
            })
            .collect(),
        dropped_events_count: body.dropped_events_count,
        links,
        dropped_links_count: body.dropped_links_count,
        status: Status {
            code: StatusCode::from_otlp(columns.status_code),
            message: body.status_message,
        },
        resource: Arc::new(Resource {
            attributes: body.resource.attributes.0,
            dropped_attributes_count: body.resource.dropped_attributes_count,
            schema_url: body.resource.schema_url,
        }),
        scope: Arc::new(Scope {
            name: body.scope.name,
            version: body.scope.version,
            attributes: body.scope.attributes.0,
            dropped_attributes_count: body.scope.dropped_attributes_count,
            schema_url: body.scope.schema_url,
        }),
    })
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

    #[test]
    fn body_round_trips_losslessly() {
        let span = Span {
            trace_state: "k=v".into(),
            flags: 257,
            attributes: vec![KeyValue::new("n", AttrValue::Int(3))],
            events: vec![Event {
                time_unix_nano: 5,
                name: "gen_ai.choice".into(),
                attributes: vec![KeyValue::new("b", AttrValue::Bytes(vec![1, 2]))],
                dropped_attributes_count: 1,
            }],
            links: vec![Link {
                trace_id: TraceId([3; 16]),
                span_id: SpanId([4; 8]),
                trace_state: String::new(),
                attributes: Vec::new(),
                dropped_attributes_count: 0,
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
                dropped_attributes_count: 0,
                schema_url: "https://opentelemetry.io/schemas/1.26.0".into(),
            }),
            scope: Arc::new(Scope {
                name: "openinference".into(),
                version: "0.1".into(),
                ..Default::default()
            }),
            ..make_span(1, 2)
        };
        let decoded = decode_span(columns_of(&span), &encode_body(&span)).unwrap();
        assert_eq!(decoded, span);
        let compressed = encode_body_compressed(&span);
        let text = decode_body_bytes(&compressed).unwrap();
        assert_eq!(decode_span(columns_of(&span), &text).unwrap(), span);
        let plain = encode_body(&span);
        assert_eq!(decode_body_bytes(plain.as_bytes()).unwrap(), plain);
    }
}
