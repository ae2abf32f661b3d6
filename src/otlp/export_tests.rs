//! The export encoding read back by the receivers' decoder gives the same spans.

use std::sync::Arc;

use proptest::collection::vec;
use proptest::prelude::*;

use super::*;
use crate::model::{SpanId, SpanKind, Status, StatusCode, TraceId};
use crate::otlp::json::decode_trace_request;
use crate::otlp::spans_from_request;

/// Exports `spans`, then decodes and converts the JSON as `POST /v1/traces` would.
fn round_trip(spans: &[ExportSpan<'_>]) -> Vec<Span> {
    let body = serde_json::to_vec(&trace_request_json(spans)).unwrap();
    let converted = spans_from_request(decode_trace_request(&body).unwrap());
    assert!(converted.rejected.is_empty(), "{:?}", converted.rejected);
    converted.spans
}

/// What a span should read back as: its own events, then the content events.
fn expected(export: &ExportSpan<'_>) -> Span {
    let mut span = export.span.clone();
    span.events.extend_from_slice(export.content_events);
    span
}

/// Spans compared by their debug text: NaN is not equal to itself, but prints the same.
fn same(left: &[Span], right: &[Span]) -> bool {
    format!("{left:?}") == format!("{right:?}")
}

fn attr_value() -> impl Strategy<Value = AttrValue> {
    let leaf = prop_oneof![
        Just(AttrValue::Empty),
        any::<String>().prop_map(AttrValue::String),
        any::<bool>().prop_map(AttrValue::Bool),
        any::<i64>().prop_map(AttrValue::Int),
        any::<f64>().prop_map(AttrValue::Double),
        (0u64..1_000_000, 1u32..10).prop_map(|(cents, scale)| AttrValue::Double(
            cents as f64 / 10f64.powi(scale as i32) * 0.1
        )),
        vec(any::<u8>(), 0..12).prop_map(AttrValue::Bytes),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..4).prop_map(AttrValue::Array),
            vec(("[a-z.]{1,8}", inner), 0..4).prop_map(|entries| AttrValue::Map(
                entries
                    .into_iter()
                    .map(|(key, value)| KeyValue::new(key, value))
                    .collect()
            )),
        ]
    })
}

fn attributes() -> impl Strategy<Value = Vec<KeyValue>> {
    vec(
        (any::<String>(), attr_value()).prop_map(|(key, value)| KeyValue::new(key, value)),
        0..4,
    )
}

fn nonzero<const N: usize>() -> impl Strategy<Value = [u8; N]>
where
    [u8; N]: proptest::arbitrary::Arbitrary,
{
    any::<[u8; N]>().prop_filter("not all zero", |bytes| bytes.iter().any(|byte| *byte != 0))
}

fn event() -> impl Strategy<Value = Event> {
    (any::<u64>(), any::<String>(), attributes(), any::<u32>()).prop_map(
        |(time_unix_nano, name, attributes, dropped_attributes_count)| Event {
            time_unix_nano,
            name,
            attributes,
            dropped_attributes_count,
        },
    )
}

fn link() -> impl Strategy<Value = Link> {
    (
        nonzero::<16>(),
        nonzero::<8>(),
        any::<String>(),
        attributes(),
        any::<u32>(),
        any::<u32>(),
    )
        .prop_map(
            |(trace, span, trace_state, attributes, dropped, flags)| Link {
                trace_id: TraceId(trace),
                span_id: SpanId(span),
                trace_state,
                attributes,
                dropped_attributes_count: dropped,
                flags,
            },
        )
}

prop_compose! {
    fn resource()(attributes in attributes(), dropped in 0u32..3, schema_url in "(https://x/[0-9])?")
        -> Resource {
        Resource { attributes, dropped_attributes_count: dropped, schema_url }
    }
}

prop_compose! {
    fn scope()(name in "[a-z]{0,6}", version in "[0-9.]{0,4}", attributes in attributes(),
               dropped in 0u32..3, schema_url in "(https://y/[0-9])?") -> Scope {
        Scope { name, version, attributes, dropped_attributes_count: dropped, schema_url }
    }
}

prop_compose! {
    fn span(resources: Vec<Arc<Resource>>, scopes: Vec<Arc<Scope>>)(
        trace in nonzero::<16>(),
        id in nonzero::<8>(),
        parent in proptest::option::of(nonzero::<8>()),
        trace_state in any::<String>(),
        flags in any::<u32>(),
        name in any::<String>(),
        kind in 0i32..6,
        start in any::<u64>(),
        length in any::<u64>(),
        attributes in attributes(),
        counts in any::<(u32, u32, u32)>(),
        events in vec(event(), 0..3),
        links in vec(link(), 0..2),
        status in (0i32..3, any::<String>()),
        resource in any::<prop::sample::Index>(),
        scope in any::<prop::sample::Index>(),
    ) -> Span {
        Span {
            trace_id: TraceId(trace),
            span_id: SpanId(id),
            parent_span_id: parent.map(SpanId),
            trace_state,
            flags,
            name,
            kind: SpanKind::from_otlp(kind),
            start_time_unix_nano: start,
            end_time_unix_nano: start.saturating_add(length),
            attributes,
            dropped_attributes_count: counts.0,
            events,
            dropped_events_count: counts.1,
            links,
            dropped_links_count: counts.2,
            status: Status { code: StatusCode::from_otlp(status.0), message: status.1 },
            resource: Arc::clone(resource.get(&resources)),
            scope: Arc::clone(scope.get(&scopes)),
        }
    }
}

fn spans() -> impl Strategy<Value = (Vec<Span>, Vec<Vec<Event>>)> {
    (
        vec(resource().prop_map(Arc::new), 1..3),
        vec(scope().prop_map(Arc::new), 1..3),
    )
        .prop_flat_map(|(resources, scopes)| {
            vec((span(resources, scopes), vec(event(), 0..2)), 1..6)
        })
        .prop_map(|pairs| pairs.into_iter().unzip())
}

proptest! {
    #![proptest_config(crate::test_support::bounded_cases())]

    /// Every span, with its content events appended to its events, reads back as itself:
    /// whatever the order of resources and scopes, the grouping keeps each span's own.
    #[test]
    fn exported_spans_read_back_as_themselves((spans, content) in spans()) {
        let exports: Vec<ExportSpan<'_>> = spans
            .iter()
            .zip(&content)
            .map(|(span, events)| ExportSpan { span, content_events: events })
            .collect();
        let read_back = round_trip(&exports);
        // Spans come back grouped by resource and scope: compare by id, in that order.
        let mut want: Vec<Span> = exports.iter().map(expected).collect();
        let mut got = read_back;
        let key = |span: &Span| (span.trace_id, span.span_id, format!("{span:?}"));
        want.sort_by_key(key);
        got.sort_by_key(key);
        prop_assert!(same(&got, &want), "{got:#?}\n!=\n{want:#?}");
    }

    /// Any finite double survives, as a number when JSON readers keep it, else as text.
    #[test]
    fn doubles_are_exact(number in any::<f64>()) {
        let json = serde_json::to_string(&any_value_json(&AttrValue::Double(number))).unwrap();
        let value: serde_json::Value = serde_json::from_str(&json).unwrap();
        let read = match &value["doubleValue"] {
            serde_json::Value::Number(number) => number.as_f64().unwrap(),
            serde_json::Value::String(text) => match text.as_str() {
                "NaN" => f64::NAN,
                "Infinity" => f64::INFINITY,
                "-Infinity" => f64::NEG_INFINITY,
                other => other.parse().unwrap(),
            },
            other => panic!("{other}"),
        };
        prop_assert!(read.to_bits() == number.to_bits() || (read.is_nan() && number.is_nan()));
    }
}

#[test]
fn spans_of_one_resource_and_scope_share_one_group() {
    let resource = Arc::new(Resource {
        attributes: vec![KeyValue::new(
            "service.name",
            AttrValue::String("svc".into()),
        )],
        ..Default::default()
    });
    let scope = Arc::new(Scope {
        name: "lib".into(),
        ..Default::default()
    });
    let make = |id: u8| Span {
        resource: Arc::new((*resource).clone()),
        scope: Arc::clone(&scope),
        ..crate::model::span::test_support::make_span(1, id)
    };
    let spans = [make(1), make(2), make(3)];
    let exports: Vec<ExportSpan<'_>> = spans
        .iter()
        .map(|span| ExportSpan {
            span,
            content_events: &[],
        })
        .collect();
    let json = trace_request_json(&exports);
    assert_eq!(json["resourceSpans"].as_array().unwrap().len(), 1);
    let scope_spans = &json["resourceSpans"][0]["scopeSpans"];
    assert_eq!(scope_spans.as_array().unwrap().len(), 1);
    let first = &scope_spans[0]["spans"][0];
    assert_eq!(first["traceId"], "01".repeat(16));
    assert_eq!(first["startTimeUnixNano"], "1700000000000000000");
    assert_eq!(first["kind"], 1);
    assert!(first.get("parentSpanId").is_none());
    assert_eq!(round_trip(&exports), spans.to_vec());
}
