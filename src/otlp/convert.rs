//! From OTLP protobuf types to spanhouse's model, checking each span on the way.
//!
//! Proto types stop here. A span that breaks OTLP's rules (an id of the wrong length, an end
//! before its start) is rejected on its own; the other spans of the request are kept.

use std::sync::Arc;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1 as proto_common;
use opentelemetry_proto::tonic::common::v1::any_value::Value as ProtoValue;
use opentelemetry_proto::tonic::trace::v1 as proto_trace;

use crate::model::{
    AttrValue, ConvertedSpans, Event, KeyValue, Link, RejectedSpan, Resource, Scope, Span, SpanId,
    SpanKind, Status, StatusCode, TraceId,
};

/// Converts a whole export request.
pub fn spans_from_request(request: ExportTraceServiceRequest) -> ConvertedSpans {
    let mut converted = ConvertedSpans::default();
    // Sized up front: growing a vector of a thousand spans one doubling at a time copies them.
    converted.spans.reserve(
        request
            .resource_spans
            .iter()
            .flat_map(|resource_spans| &resource_spans.scope_spans)
            .map(|scope_spans| scope_spans.spans.len())
            .sum(),
    );
    for resource_spans in request.resource_spans {
        let resource = Arc::new(resource_from_otlp(
            resource_spans.resource,
            resource_spans.schema_url,
        ));
        for scope_spans in resource_spans.scope_spans {
            let scope = Arc::new(scope_from_otlp(scope_spans.scope, scope_spans.schema_url));
            for span in scope_spans.spans {
                match span_from_otlp(span, &resource, &scope) {
                    Ok(span) => converted.spans.push(span),
                    Err(reason) => converted.rejected.push(RejectedSpan { reason }),
                }
            }
        }
    }
    converted
}

fn resource_from_otlp(
    resource: Option<opentelemetry_proto::tonic::resource::v1::Resource>,
    schema_url: String,
) -> Resource {
    let resource = resource.unwrap_or_default();
    Resource {
        attributes: attributes_from_otlp(resource.attributes),
        dropped_attributes_count: resource.dropped_attributes_count,
        schema_url,
    }
}

fn scope_from_otlp(scope: Option<proto_common::InstrumentationScope>, schema_url: String) -> Scope {
    let scope = scope.unwrap_or_default();
    Scope {
        name: scope.name,
        version: scope.version,
        attributes: attributes_from_otlp(scope.attributes),
        dropped_attributes_count: scope.dropped_attributes_count,
        schema_url,
    }
}

/// Converts one span, or says why it is rejected.
fn span_from_otlp(
    span: proto_trace::Span,
    resource: &Arc<Resource>,
    scope: &Arc<Scope>,
) -> Result<Span, String> {
    let describe = |problem: String| {
        format!(
            "span {:?} (trace_id {}, span_id {}): {problem}",
            span.name,
            hex::encode(&span.trace_id),
            hex::encode(&span.span_id)
        )
    };
    let trace_id = TraceId::from_bytes(&span.trace_id)
        .map_err(|error| describe(format!("invalid trace_id: {error}")))?;
    let span_id = SpanId::from_bytes(&span.span_id)
        .map_err(|error| describe(format!("invalid span_id: {error}")))?;
    let parent_span_id = parent_from_otlp(&span.parent_span_id)
        .map_err(|error| describe(format!("invalid parent_span_id: {error}")))?;
    if span.end_time_unix_nano < span.start_time_unix_nano {
        return Err(describe(format!(
            "end_time_unix_nano {} is before start_time_unix_nano {}",
            span.end_time_unix_nano, span.start_time_unix_nano
        )));
    }
    let mut links = Vec::with_capacity(span.links.len());
    for link in span.links {
        let (Ok(linked_trace), Ok(linked_span)) = (
            TraceId::from_bytes(&link.trace_id),
            SpanId::from_bytes(&link.span_id),
        ) else {
            return Err(describe(
                "a link has an invalid trace_id or span_id".to_owned(),
            ));
        };
        links.push(Link {
            trace_id: linked_trace,
            span_id: linked_span,
            trace_state: link.trace_state,
            attributes: attributes_from_otlp(link.attributes),
            dropped_attributes_count: link.dropped_attributes_count,
            flags: link.flags,
        });
    }
    let status = span.status.unwrap_or_default();
    Ok(Span {
        trace_id,
        span_id,
        parent_span_id,
        trace_state: span.trace_state,
        flags: span.flags,
        name: span.name,
        kind: SpanKind::from_otlp(span.kind),
        start_time_unix_nano: span.start_time_unix_nano,
        end_time_unix_nano: span.end_time_unix_nano,
        attributes: attributes_from_otlp(span.attributes),
        dropped_attributes_count: span.dropped_attributes_count,
        events: span
            .events
            .into_iter()
            .map(|event| Event {
                time_unix_nano: event.time_unix_nano,
                name: event.name,
                attributes: attributes_from_otlp(event.attributes),
                dropped_attributes_count: event.dropped_attributes_count,
            })
            .collect(),
        dropped_events_count: span.dropped_events_count,
        links,
        dropped_links_count: span.dropped_links_count,
        status: Status {
            code: StatusCode::from_otlp(status.code),
            message: status.message,
        },
        resource: Arc::clone(resource),
        scope: Arc::clone(scope),
    })
}

/// An empty or all-zero parent id means "no parent" (OTLP says empty; some SDKs send zeroes).
fn parent_from_otlp(bytes: &[u8]) -> Result<Option<SpanId>, crate::model::IdError> {
    if bytes.is_empty() || (bytes.len() == SpanId::LEN && bytes.iter().all(|byte| *byte == 0)) {
        return Ok(None);
    }
    SpanId::from_bytes(bytes).map(Some)
}

pub(crate) fn attributes_from_otlp(attributes: Vec<proto_common::KeyValue>) -> Vec<KeyValue> {
    attributes
        .into_iter()
        .map(|entry| KeyValue {
            key: entry.key,
            value: value_from_otlp(entry.value),
        })
        .collect()
}

fn value_from_otlp(value: Option<proto_common::AnyValue>) -> AttrValue {
    match value.and_then(|value| value.value) {
        // A string-table index only means something in the profiles signal.
        None | Some(ProtoValue::StringValueStrindex(_)) => AttrValue::Empty,
        Some(ProtoValue::StringValue(text)) => AttrValue::String(text),
        Some(ProtoValue::BoolValue(flag)) => AttrValue::Bool(flag),
        Some(ProtoValue::IntValue(number)) => AttrValue::Int(number),
        Some(ProtoValue::DoubleValue(number)) => AttrValue::Double(number),
        Some(ProtoValue::BytesValue(bytes)) => AttrValue::Bytes(bytes),
        Some(ProtoValue::ArrayValue(array)) => AttrValue::Array(
            array
                .values
                .into_iter()
                .map(|item| value_from_otlp(Some(item)))
                .collect(),
        ),
        Some(ProtoValue::KvlistValue(list)) => AttrValue::Map(attributes_from_otlp(list.values)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans};

    fn proto_span(trace_id: Vec<u8>, span_id: Vec<u8>, start: u64, end: u64) -> proto_trace::Span {
        proto_trace::Span {
            trace_id,
            span_id,
            name: "op".into(),
            start_time_unix_nano: start,
            end_time_unix_nano: end,
            ..Default::default()
        }
    }

    fn request(spans: Vec<proto_trace::Span>) -> ExportTraceServiceRequest {
        ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                scope_spans: vec![ScopeSpans {
                    spans,
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
    }

    #[test]
    fn keeps_valid_spans_and_rejects_each_invalid_one() {
        let converted = spans_from_request(request(vec![
            proto_span(vec![1; 16], vec![2; 8], 10, 20),
            proto_span(vec![1; 3], vec![2; 8], 10, 20),
            proto_span(vec![1; 16], vec![0; 8], 10, 20),
            proto_span(vec![1; 16], vec![3; 8], 30, 20),
        ]));
        assert_eq!(converted.spans.len(), 1);
        assert_eq!(converted.rejected.len(), 3);
        assert!(converted.rejected[0].reason.contains("trace_id"));
        assert!(converted.rejected[1].reason.contains("all zero"));
        assert!(converted.rejected[2].reason.contains("before"));
        assert!(converted.error_message().starts_with("3 spans rejected"));
    }

    #[test]
    fn zero_parent_is_a_root() {
        let mut span = proto_span(vec![1; 16], vec![2; 8], 10, 20);
        span.parent_span_id = vec![0; 8];
        let converted = spans_from_request(request(vec![span]));
        assert_eq!(converted.spans[0].parent_span_id, None);
    }
}
