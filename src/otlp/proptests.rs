//! Property tests: whatever bytes a client sends, the decoders and the conversions after them
//! answer with a value or an error, never a panic.
//!
//! Random bytes rarely decode, so the conversions are reached through requests that do: valid
//! requests generated whole, their encodings mutated a few bytes at a time, and JSON trees built
//! from OTLP's own keys with values of every shape at every depth.

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as ProtoValue;
use opentelemetry_proto::tonic::common::v1::{AnyValue, ArrayValue, KeyValue, KeyValueList};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, span};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::Index;
use prost::Message;
use serde_json::{Value, json};
use std::io::Write as _;

use super::logs::content_events_from_request;
use super::metrics::decode_data_points;
use super::*;

/// Ids of the right length most of the time, of any length sometimes.
fn id(length: usize) -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        4 => vec(any::<u8>(), length),
        1 => vec(any::<u8>(), 0..length + 4),
    ]
}

fn any_value() -> impl Strategy<Value = AnyValue> {
    let leaf = prop_oneof![
        any::<String>().prop_map(ProtoValue::StringValue),
        any::<bool>().prop_map(ProtoValue::BoolValue),
        any::<i64>().prop_map(ProtoValue::IntValue),
        any::<f64>().prop_map(ProtoValue::DoubleValue),
        vec(any::<u8>(), 0..16).prop_map(ProtoValue::BytesValue),
    ]
    .prop_map(|value| AnyValue { value: Some(value) });
    leaf.prop_recursive(4, 24, 4, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..4)
                .prop_map(|values| ProtoValue::ArrayValue(ArrayValue { values })),
            vec(key_value(inner), 0..4)
                .prop_map(|values| ProtoValue::KvlistValue(KeyValueList { values })),
        ]
        .prop_map(|value| AnyValue { value: Some(value) })
    })
}

fn key_value(value: impl Strategy<Value = AnyValue>) -> impl Strategy<Value = KeyValue> {
    let key = prop_oneof!["gen_ai\\.[a-z_.]{1,24}", "event\\.name", any::<String>()];
    (key, proptest::option::of(value)).prop_map(|(key, value)| KeyValue {
        key,
        value,
        ..Default::default()
    })
}

fn attributes() -> impl Strategy<Value = Vec<KeyValue>> {
    vec(key_value(any_value()), 0..4)
}

fn span() -> impl Strategy<Value = Span> {
    (
        (id(16), id(8), prop_oneof![Just(Vec::new()), id(8)]),
        (any::<String>(), any::<i32>(), any::<u64>(), any::<u64>()),
        attributes(),
        vec((any::<String>(), any::<u64>(), attributes()), 0..3),
        (any::<i32>(), any::<String>()),
    )
        .prop_map(
            |(
                (trace_id, span_id, parent_span_id),
                (name, kind, start, end),
                attributes,
                events,
                status,
            )| Span {
                trace_id,
                span_id,
                parent_span_id,
                name,
                kind,
                start_time_unix_nano: start,
                end_time_unix_nano: end,
                attributes,
                events: events
                    .into_iter()
                    .map(|(name, time_unix_nano, attributes)| span::Event {
                        name,
                        time_unix_nano,
                        attributes,
                        ..Default::default()
                    })
                    .collect(),
                status: Some(opentelemetry_proto::tonic::trace::v1::Status {
                    code: status.0,
                    message: status.1,
                }),
                ..Default::default()
            },
        )
}

fn trace_request() -> impl Strategy<Value = ExportTraceServiceRequest> {
    vec((attributes(), vec(vec(span(), 0..4), 0..3)), 0..3).prop_map(|resources| {
        ExportTraceServiceRequest {
            resource_spans: resources
                .into_iter()
                .map(|(attributes, scopes)| ResourceSpans {
                    resource: Some(opentelemetry_proto::tonic::resource::v1::Resource {
                        attributes,
                        ..Default::default()
                    }),
                    scope_spans: scopes
                        .into_iter()
                        .map(|spans| ScopeSpans {
                            spans,
                            ..Default::default()
                        })
                        .collect(),
                    ..Default::default()
                })
                .collect(),
        }
    })
}

fn log_record() -> impl Strategy<Value = LogRecord> {
    let event_name = prop_oneof![
        "gen_ai\\.(user|assistant|system|tool)\\.message",
        any::<String>()
    ];
    (
        (id(16), id(8), event_name),
        (any::<u64>(), any::<u64>()),
        proptest::option::of(any_value()),
        attributes(),
    )
        .prop_map(
            |((trace_id, span_id, event_name), (time, observed), body, attributes)| LogRecord {
                trace_id,
                span_id,
                event_name,
                time_unix_nano: time,
                observed_time_unix_nano: observed,
                body,
                attributes,
                ..Default::default()
            },
        )
}

fn logs_request() -> impl Strategy<Value = ExportLogsServiceRequest> {
    vec(vec(vec(log_record(), 0..4), 0..3), 0..3).prop_map(|resources| ExportLogsServiceRequest {
        resource_logs: resources
            .into_iter()
            .map(|scopes| ResourceLogs {
                scope_logs: scopes
                    .into_iter()
                    .map(|log_records| ScopeLogs {
                        log_records,
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            })
            .collect(),
    })
}

/// A few byte edits and perhaps a truncation: most results still decode as protobuf.
fn mutate(mut bytes: Vec<u8>, edits: &[(Index, u8)], cut: Option<Index>) -> Vec<u8> {
    if bytes.is_empty() {
        return bytes;
    }
    for (position, byte) in edits {
        let position = position.index(bytes.len());
        bytes[position] = *byte;
    }
    if let Some(cut) = cut {
        bytes.truncate(cut.index(bytes.len()));
    }
    bytes
}

fn span_count(request: &ExportTraceServiceRequest) -> usize {
    request
        .resource_spans
        .iter()
        .flat_map(|resource| &resource.scope_spans)
        .map(|scope| scope.spans.len())
        .sum()
}

fn record_count(request: &ExportLogsServiceRequest) -> usize {
    request
        .resource_logs
        .iter()
        .flat_map(|resource| &resource.scope_logs)
        .map(|scope| scope.log_records.len())
        .sum()
}

/// Every span of a decoded request comes out accepted or rejected, none lost, none invented.
fn check_spans(request: ExportTraceServiceRequest) -> Result<(), TestCaseError> {
    let expected = span_count(&request);
    let converted = spans_from_request(request);
    prop_assert_eq!(converted.spans.len() + converted.rejected.len(), expected);
    Ok(())
}

fn check_logs(request: ExportLogsServiceRequest) -> Result<(), TestCaseError> {
    let expected = record_count(&request);
    let converted = content_events_from_request(request);
    prop_assert_eq!(converted.content.len() + converted.ignored, expected);
    Ok(())
}

/// OTLP/JSON's keys, so that random trees reach the decoders' inner levels.
const OTLP_KEYS: &[&str] = &[
    "resourceSpans",
    "resourceLogs",
    "resourceMetrics",
    "resource",
    "scopeSpans",
    "scopeLogs",
    "scopeMetrics",
    "scope",
    "spans",
    "logRecords",
    "metrics",
    "traceId",
    "spanId",
    "parentSpanId",
    "name",
    "kind",
    "startTimeUnixNano",
    "endTimeUnixNano",
    "timeUnixNano",
    "status",
    "code",
    "events",
    "links",
    "attributes",
    "key",
    "value",
    "stringValue",
    "intValue",
    "doubleValue",
    "boolValue",
    "bytesValue",
    "arrayValue",
    "kvlistValue",
    "values",
    "body",
    "eventName",
    "gauge",
    "sum",
    "histogram",
    "dataPoints",
    "flags",
    "droppedAttributesCount",
];

fn json_tree() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        any::<String>().prop_map(Value::from),
        "[0-9a-fA-F]{0,34}".prop_map(Value::from),
        "-?[0-9]{1,21}(\\.[0-9]+)?|NaN|Infinity|-Infinity".prop_map(Value::from),
        "(SPAN_KIND|STATUS_CODE)_[A-Z]{2,11}".prop_map(Value::from),
    ];
    let key = prop_oneof![4 => proptest::sample::select(OTLP_KEYS).prop_map(str::to_owned), 1 => any::<String>()];
    leaf.prop_recursive(8, 64, 5, move |inner| {
        prop_oneof![
            vec(inner.clone(), 0..4).prop_map(Value::Array),
            vec((key.clone(), inner), 0..5)
                .prop_map(|pairs| Value::Object(pairs.into_iter().collect())),
        ]
    })
}

/// A tree put where each signal's items live, so the decoders reach their item readers.
fn json_body() -> impl Strategy<Value = Value> {
    (json_tree(), 0..4usize).prop_map(|(tree, place)| match place {
        0 => tree,
        1 => json!({"resourceSpans": [{"scopeSpans": [{"spans": [tree]}]}]}),
        2 => json!({"resourceLogs": [{"scopeLogs": [{"logRecords": [tree]}]}]}),
        _ => json!({"resourceMetrics": [{"scopeMetrics": [{"metrics": [tree]}]}]}),
    })
}

fn decode_everything(body: &[u8], encoding: Encoding) -> Result<(), TestCaseError> {
    if let Ok(request) = decode_trace_request(encoding, body) {
        check_spans(request)?;
    }
    if let Ok(request) = decode_logs_request(encoding, body) {
        check_logs(request)?;
    }
    let _points = decode_data_points(encoding, body);
    Ok(())
}

fn compress(compression: Compression, data: &[u8]) -> Vec<u8> {
    let level = flate2::Compression::fast();
    match compression {
        Compression::Identity => data.to_vec(),
        Compression::Gzip => {
            let mut encoder = flate2::write::GzEncoder::new(Vec::new(), level);
            encoder.write_all(data).unwrap();
            encoder.finish().unwrap()
        }
        Compression::Deflate => {
            let mut encoder = flate2::write::ZlibEncoder::new(Vec::new(), level);
            encoder.write_all(data).unwrap();
            encoder.finish().unwrap()
        }
    }
}

fn compression() -> impl Strategy<Value = Compression> {
    proptest::sample::select(vec![
        Compression::Identity,
        Compression::Gzip,
        Compression::Deflate,
    ])
}

proptest! {
    #![proptest_config(crate::test_support::bounded_cases())]

    #[test]
    fn arbitrary_bytes_decode_or_fail(body in vec(any::<u8>(), 0..512)) {
        decode_everything(&body, Encoding::Protobuf)?;
        decode_everything(&body, Encoding::Json)?;
    }

    /// Encoded then decoded, a request is the same request, every span accounted for.
    #[test]
    fn trace_requests_round_trip(request in trace_request()) {
        let body = request.encode_to_vec();
        let decoded = decode_trace_request(Encoding::Protobuf, &body).unwrap();
        prop_assert_eq!(decoded.encode_to_vec(), body);
        check_spans(decoded)?;
    }

    #[test]
    fn mutated_trace_requests_decode_or_fail(
        request in trace_request(),
        edits in vec((any::<Index>(), any::<u8>()), 1..4),
        cut in proptest::option::of(any::<Index>()),
    ) {
        let body = mutate(request.encode_to_vec(), &edits, cut);
        decode_everything(&body, Encoding::Protobuf)?;
    }

    #[test]
    fn logs_requests_round_trip(request in logs_request()) {
        let body = request.encode_to_vec();
        let decoded = decode_logs_request(Encoding::Protobuf, &body).unwrap();
        prop_assert_eq!(decoded.encode_to_vec(), body);
        check_logs(decoded)?;
    }

    #[test]
    fn mutated_logs_requests_decode_or_fail(
        request in logs_request(),
        edits in vec((any::<Index>(), any::<u8>()), 1..4),
        cut in proptest::option::of(any::<Index>()),
    ) {
        let body = mutate(request.encode_to_vec(), &edits, cut);
        decode_everything(&body, Encoding::Protobuf)?;
    }

    /// Structured but wrong JSON: OTLP's keys with values of any shape at any depth.
    #[test]
    fn otlp_shaped_json_decodes_or_fails(body in json_body()) {
        decode_everything(body.to_string().as_bytes(), Encoding::Json)?;
    }

    /// Well-formed OTLP/JSON: every span generated is decoded and accepted.
    #[test]
    fn valid_json_spans_are_all_read(
        resources in vec(vec(("[0-9a-f]{32}", "[0-9a-f]{16}", any::<String>(), any::<u32>()), 0..4), 0..3),
    ) {
        let expected: usize = resources.iter().map(Vec::len).sum();
        let body = json!({"resourceSpans": resources.iter().map(|spans| json!({
            "scopeSpans": [{"spans": spans.iter().map(|(trace_id, span_id, name, start)| json!({
                "traceId": trace_id, "spanId": span_id, "name": name,
                "startTimeUnixNano": start.to_string(), "endTimeUnixNano": u64::from(*start) + 1,
                "attributes": [{"key": "k", "value": {"stringValue": name}}],
            })).collect::<Vec<_>>()}],
        })).collect::<Vec<_>>()});
        let request = decode_trace_request(Encoding::Json, body.to_string().as_bytes()).unwrap();
        prop_assert_eq!(span_count(&request), expected);
        let all_zero = |id: &str| id.bytes().all(|digit| digit == b'0');
        let valid = resources.iter().flatten()
            .filter(|(trace_id, span_id, ..)| !all_zero(trace_id) && !all_zero(span_id))
            .count();
        prop_assert_eq!(spans_from_request(request).spans.len(), valid);
    }

    /// Arbitrary bytes inflate to at most `limit` bytes or fail; never more, never a panic.
    #[test]
    fn decompression_of_garbage_stays_under_the_limit(
        compression in compression(),
        body in vec(any::<u8>(), 0..256),
        limit in 0..128usize,
    ) {
        match decompress(compression, body.into(), limit) {
            Ok(output) => prop_assert!(output.len() <= limit),
            Err(DecodeError::TooLarge { limit: reported }) => prop_assert_eq!(reported, limit),
            Err(DecodeError::Decompress { .. }) => {}
            Err(other) => prop_assert!(false, "unexpected error {}", other),
        }
    }

    /// Whatever was compressed comes back whole within the limit, and is refused beyond it.
    #[test]
    fn decompression_round_trips_within_the_limit(
        compression in compression(),
        data in vec(any::<u8>(), 0..2048),
        limit in 0..4096usize,
    ) {
        let body = compress(compression, &data);
        match decompress(compression, body.into(), limit) {
            Ok(output) => {
                prop_assert!(data.len() <= limit);
                prop_assert_eq!(&output[..], &data[..]);
            }
            Err(DecodeError::TooLarge { .. }) => prop_assert!(data.len() > limit),
            Err(other) => prop_assert!(false, "unexpected error {}", other),
        }
    }
}
