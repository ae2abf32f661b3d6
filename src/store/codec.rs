//! The lossless encoding of a span's body (everything not kept in its own column) as JSON text,
//! shared by the storage backends.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::model::attributes::{KeyValue, Stored};
use crate::model::{
    Event, Link, Resource, Scope, Span, SpanId, SpanKind, SpanSemantics, Status, StatusCode,
    TraceId,
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

/// A span as the embedded store keeps it: a format byte (2), then one LZ4 block (its size
/// prepended) holding the body's JSON, a newline, and the span's semantics as JSON. The
/// semantics repeat the span's texts (input, output, messages) that the body's attributes
/// already hold; compressed in one block, the repeat costs next to nothing, where the plain
/// columns it replaces doubled what the store writes per span. (JSON text never holds a raw
/// newline, so the first one separates the two.)
pub fn encode_stored_span(span: &Span, semantics: &SpanSemantics) -> Vec<u8> {
    let mut json = Vec::with_capacity(4096);
    // Writing into a Vec fails only for values serde_json cannot represent, which these
    // types do not hold; an empty object is still a body the reader accepts.
    if serde_json::to_writer(&mut json, &body_out(span)).is_err() {
        json.clear();
        json.extend_from_slice(b"{}");
    }
    json.push(b'\n');
    let body_length = json.len();
    if serde_json::to_writer(&mut json, semantics).is_err() {
        json.truncate(body_length);
        json.extend_from_slice(b"{}");
    }
    // The compressor's buffer has room for incompressible input (larger than the input); the
    // result, held in the ingest queue until written, gets exactly its size.
    let compressed = lz4_flex::block::compress_prepend_size(&json);
    let mut out = Vec::with_capacity(1 + compressed.len());
    out.push(STORED_SPAN_FORMAT);
    out.extend_from_slice(&compressed);
    out
}

/// The format byte of [`encode_stored_span`]. Format 1 (the body alone, LZ4) and plain JSON
/// text (no format byte) are what earlier versions wrote; both are still read.
const STORED_SPAN_FORMAT: u8 = 2;
const BODY_LZ4_FORMAT: u8 = 1;

/// What a stored body holds: the body's JSON and, from format 2 on, the span's semantics.
pub struct StoredBody {
    text: String,
    /// Where the semantics start in `text`, after the newline.
    semantics_at: Option<usize>,
}

impl StoredBody {
    pub fn body_json(&self) -> &str {
        match self.semantics_at {
            Some(at) => &self.text[..at - 1],
            None => &self.text,
        }
    }

    /// The semantics kept with the body; `None` for bodies of earlier formats, whose semantics
    /// are in the columns.
    pub fn semantics(&self) -> Result<Option<SpanSemantics>, StoreError> {
        self.semantics_at
            .map(|at| {
                serde_json::from_str::<SpanSemantics>(&self.text[at..])
                    .map(SpanSemantics::with_llm_texts)
                    .map_err(|error| StoreError::Corrupt(format!("span semantics: {error}")))
            })
            .transpose()
    }

    /// Only the input and output of the semantics, without building the rest.
    pub fn texts(&self) -> Result<(Option<String>, Option<String>), StoreError> {
        #[derive(Deserialize)]
        struct Texts {
            #[serde(default)]
            input: Option<String>,
            #[serde(default)]
            output: Option<String>,
        }
        match self.semantics_at {
            Some(at) => serde_json::from_str::<Texts>(&self.text[at..])
                .map(|texts| (texts.input, texts.output))
                .map_err(|error| StoreError::Corrupt(format!("span semantics: {error}"))),
            None => Ok((None, None)),
        }
    }
}

/// Reads a body written by [`encode_stored_span`], by format 1, or as plain JSON text.
pub fn decode_stored_body(bytes: &[u8]) -> Result<StoredBody, StoreError> {
    let corrupt =
        |error: &dyn std::fmt::Display| StoreError::Corrupt(format!("span body: {error}"));
    let text = match bytes.first() {
        Some(&(STORED_SPAN_FORMAT | BODY_LZ4_FORMAT)) => {
            let json = lz4_flex::block::decompress_size_prepended(&bytes[1..])
                .map_err(|error| corrupt(&error))?;
            String::from_utf8(json).map_err(|error| corrupt(&error))?
        }
        _ => std::str::from_utf8(bytes)
            .map_err(|error| corrupt(&error))?
            .to_owned(),
    };
    let semantics_at = if bytes.first() == Some(&STORED_SPAN_FORMAT) {
        let newline = text
            .find('\n')
            .ok_or_else(|| StoreError::Corrupt("span body: semantics are missing".into()))?;
        Some(newline + 1)
    } else {
        None
    };
    Ok(StoredBody { text, semantics_at })
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

        // Format 2: the body and the semantics, with the LLM texts put back when read.
        let mut semantics = SpanSemantics {
            input: Some("line one\nline two {\"json\": true}".into()),
            output: Some("answer".into()),
            session_id: Some("session".into()),
            llm: Some(crate::model::LlmCall {
                provider: Some("openai".into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        let stored = decode_stored_body(&encode_stored_span(&span, &semantics)).unwrap();
        assert_eq!(
            decode_span(columns_of(&span), stored.body_json()).unwrap(),
            span
        );
        assert_eq!(
            stored.texts().unwrap(),
            (semantics.input.clone(), semantics.output.clone())
        );
        semantics = semantics.with_llm_texts();
        assert_eq!(stored.semantics().unwrap(), Some(semantics));

        // What earlier versions wrote: format 1 (the body alone, LZ4) and plain JSON.
        let plain = encode_body(&span);
        let mut format_1 = vec![1u8];
        format_1.extend(lz4_flex::block::compress_prepend_size(plain.as_bytes()));
        for bytes in [format_1, plain.clone().into_bytes()] {
            let stored = decode_stored_body(&bytes).unwrap();
            assert_eq!(stored.body_json(), plain);
            assert_eq!(stored.semantics().unwrap(), None);
            assert_eq!(stored.texts().unwrap(), (None, None));
        }
    }

    #[test]
    fn damaged_stored_bodies_are_errors() {
        let span = make_span(1, 2);
        let good = encode_stored_span(&span, &SpanSemantics::default());
        for bytes in [
            &good[..good.len() / 2],
            &[2u8, 200, 0, 0, 0, 1][..],
            &[0xff, 0xfe][..],
        ] {
            assert!(matches!(
                decode_stored_body(bytes),
                Err(StoreError::Corrupt(_))
            ));
        }
    }
}
