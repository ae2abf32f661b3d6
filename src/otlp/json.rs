//! OTLP/JSON (the protobuf JSON mapping with OTLP's exceptions) into the protobuf types.
//!
//! Accepted as real exporters send it: lowerCamelCase or snake_case field names, trace and span
//! ids in hex, enums as numbers or names, 64-bit integers as strings or numbers, doubles as
//! numbers or `"NaN"`/`"Infinity"`. Unknown fields are ignored, as OTLP requires.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as ProtoValue;
use opentelemetry_proto::tonic::common::v1::{
    AnyValue, ArrayValue, InstrumentationScope, KeyValue, KeyValueList,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::span::{Event, Link};
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};
use serde_json::{Map, Value};

/// A JSON body that is not an OTLP export request; says where.
#[derive(Debug, thiserror::Error)]
#[error("invalid OTLP/JSON at {path}: {problem}")]
pub struct JsonError {
    pub path: String,
    pub problem: String,
}

/// Deepest `AnyValue` nesting accepted; deeper values are a client bug or an attack.
const MAX_DEPTH: usize = 32;

pub(super) type Result<T> = std::result::Result<T, JsonError>;

pub(super) fn fail<T>(path: &str, problem: impl Into<String>) -> Result<T> {
    Err(JsonError {
        path: path.to_owned(),
        problem: problem.into(),
    })
}

/// Decodes an `ExportTraceServiceRequest` from OTLP/JSON bytes.
pub fn decode_trace_request(body: &[u8]) -> Result<ExportTraceServiceRequest> {
    let value: Value = serde_json::from_slice(body).map_err(|error| JsonError {
        path: "$".into(),
        problem: error.to_string(),
    })?;
    trace_request_from_value(&value)
}

/// An `ExportTraceServiceRequest` from an already parsed OTLP/JSON document.
pub fn trace_request_from_value(value: &Value) -> Result<ExportTraceServiceRequest> {
    let root = object(value, "$")?;
    let resource_spans = array(root, "$", "resourceSpans", "resource_spans")?
        .iter()
        .enumerate()
        .map(|(index, item)| resource_spans(item, &format!("$.resourceSpans[{index}]")))
        .collect::<Result<_>>()?;
    Ok(ExportTraceServiceRequest { resource_spans })
}

pub(super) fn object<'a>(value: &'a Value, path: &str) -> Result<&'a Map<String, Value>> {
    value
        .as_object()
        .map_or_else(|| fail(path, "expected an object"), Ok)
}

/// Looks a field up by its lowerCamelCase or its original snake_case name.
pub(super) fn field<'a>(
    object: &'a Map<String, Value>,
    camel: &str,
    snake: &str,
) -> Option<&'a Value> {
    object
        .get(camel)
        .or_else(|| object.get(snake))
        .filter(|value| !value.is_null())
}

pub(super) fn array<'a>(
    object: &'a Map<String, Value>,
    path: &str,
    camel: &str,
    snake: &str,
) -> Result<&'a [Value]> {
    match field(object, camel, snake) {
        None => Ok(&[]),
        Some(Value::Array(items)) => Ok(items),
        Some(_) => fail(&format!("{path}.{camel}"), "expected an array"),
    }
}

pub(super) fn string(
    object: &Map<String, Value>,
    path: &str,
    camel: &str,
    snake: &str,
) -> Result<String> {
    match field(object, camel, snake) {
        None => Ok(String::new()),
        Some(Value::String(text)) => Ok(text.clone()),
        Some(_) => fail(&format!("{path}.{camel}"), "expected a string"),
    }
}

pub(super) fn unsigned(
    object: &Map<String, Value>,
    path: &str,
    camel: &str,
    snake: &str,
) -> Result<u64> {
    match field(object, camel, snake) {
        None => Ok(0),
        Some(Value::Number(number)) => number.as_u64().map_or_else(
            || fail(&format!("{path}.{camel}"), "expected an unsigned integer"),
            Ok,
        ),
        Some(Value::String(text)) => text.parse().map_or_else(
            |_| fail(&format!("{path}.{camel}"), "expected an unsigned integer"),
            Ok,
        ),
        Some(_) => fail(&format!("{path}.{camel}"), "expected an unsigned integer"),
    }
}

pub(super) fn unsigned32(
    object: &Map<String, Value>,
    path: &str,
    camel: &str,
    snake: &str,
) -> Result<u32> {
    let number = unsigned(object, path, camel, snake)?;
    u32::try_from(number).map_or_else(|_| fail(&format!("{path}.{camel}"), "out of range"), Ok)
}

/// An enum given as a number or as its name (with or without the `PREFIX_`).
pub(super) fn enumeration(
    object: &Map<String, Value>,
    path: &str,
    camel: &str,
    names: &[(&str, i32)],
) -> Result<i32> {
    match field(object, camel, camel) {
        None => Ok(0),
        Some(Value::Number(number)) => number
            .as_i64()
            .and_then(|number| i32::try_from(number).ok())
            .map_or_else(|| fail(&format!("{path}.{camel}"), "expected an enum"), Ok),
        Some(Value::String(text)) => names
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(text) || text.ends_with(name))
            .map(|(_, number)| *number)
            .or_else(|| text.parse().ok())
            .map_or_else(
                || {
                    fail(
                        &format!("{path}.{camel}"),
                        format!("unknown enum value {text:?}"),
                    )
                },
                Ok,
            ),
        Some(_) => fail(&format!("{path}.{camel}"), "expected an enum"),
    }
}

/// A trace or span id in hex. An id that is not hex is kept as its raw text so that the span
/// is rejected on its own, with the other spans of the request still stored.
pub(super) fn id(
    object: &Map<String, Value>,
    path: &str,
    camel: &str,
    snake: &str,
) -> Result<Vec<u8>> {
    let text = string(object, path, camel, snake)?;
    Ok(hex::decode(&text).unwrap_or_else(|_| text.into_bytes()))
}

/// The `resource` field of a `ResourceSpans` or `ResourceLogs`.
pub(super) fn resource(object: &Map<String, Value>, path: &str) -> Result<Option<Resource>> {
    let Some(value) = field(object, "resource", "resource") else {
        return Ok(None);
    };
    let path = format!("{path}.resource");
    let resource = self::object(value, &path)?;
    Ok(Some(Resource {
        attributes: attributes(resource, &path)?,
        dropped_attributes_count: unsigned32(
            resource,
            &path,
            "droppedAttributesCount",
            "dropped_attributes_count",
        )?,
        ..Default::default()
    }))
}

/// The `scope` field of a `ScopeSpans` or `ScopeLogs`.
pub(super) fn scope(
    object: &Map<String, Value>,
    path: &str,
) -> Result<Option<InstrumentationScope>> {
    let Some(value) = field(object, "scope", "scope") else {
        return Ok(None);
    };
    let path = format!("{path}.scope");
    let scope = self::object(value, &path)?;
    Ok(Some(InstrumentationScope {
        name: string(scope, &path, "name", "name")?,
        version: string(scope, &path, "version", "version")?,
        attributes: attributes(scope, &path)?,
        dropped_attributes_count: unsigned32(
            scope,
            &path,
            "droppedAttributesCount",
            "dropped_attributes_count",
        )?,
    }))
}

fn resource_spans(value: &Value, path: &str) -> Result<ResourceSpans> {
    let object = object(value, path)?;
    let resource = resource(object, path)?;
    let scope_spans = array(object, path, "scopeSpans", "scope_spans")?
        .iter()
        .enumerate()
        .map(|(index, item)| scope_spans(item, &format!("{path}.scopeSpans[{index}]")))
        .collect::<Result<_>>()?;
    Ok(ResourceSpans {
        resource,
        scope_spans,
        schema_url: string(object, path, "schemaUrl", "schema_url")?,
    })
}

fn scope_spans(value: &Value, path: &str) -> Result<ScopeSpans> {
    let object = object(value, path)?;
    let scope = scope(object, path)?;
    let spans = array(object, path, "spans", "spans")?
        .iter()
        .enumerate()
        .map(|(index, item)| span(item, &format!("{path}.spans[{index}]")))
        .collect::<Result<_>>()?;
    Ok(ScopeSpans {
        scope,
        spans,
        schema_url: string(object, path, "schemaUrl", "schema_url")?,
    })
}

const SPAN_KINDS: &[(&str, i32)] = &[
    ("SPAN_KIND_UNSPECIFIED", 0),
    ("SPAN_KIND_INTERNAL", 1),
    ("SPAN_KIND_SERVER", 2),
    ("SPAN_KIND_CLIENT", 3),
    ("SPAN_KIND_PRODUCER", 4),
    ("SPAN_KIND_CONSUMER", 5),
];

const STATUS_CODES: &[(&str, i32)] = &[
    ("STATUS_CODE_UNSET", 0),
    ("STATUS_CODE_OK", 1),
    ("STATUS_CODE_ERROR", 2),
];

fn span(value: &Value, path: &str) -> Result<Span> {
    let object = object(value, path)?;
    let status = match field(object, "status", "status") {
        None => None,
        Some(value) => {
            let path = format!("{path}.status");
            let status = self::object(value, &path)?;
            Some(Status {
                message: string(status, &path, "message", "message")?,
                code: enumeration(status, &path, "code", STATUS_CODES)?,
            })
        }
    };
    let events = array(object, path, "events", "events")?
        .iter()
        .enumerate()
        .map(|(index, item)| event(item, &format!("{path}.events[{index}]")))
        .collect::<Result<_>>()?;
    let links = array(object, path, "links", "links")?
        .iter()
        .enumerate()
        .map(|(index, item)| link(item, &format!("{path}.links[{index}]")))
        .collect::<Result<_>>()?;
    Ok(Span {
        trace_id: id(object, path, "traceId", "trace_id")?,
        span_id: id(object, path, "spanId", "span_id")?,
        trace_state: string(object, path, "traceState", "trace_state")?,
        parent_span_id: id(object, path, "parentSpanId", "parent_span_id")?,
        flags: unsigned32(object, path, "flags", "flags")?,
        name: string(object, path, "name", "name")?,
        kind: enumeration(object, path, "kind", SPAN_KINDS)?,
        start_time_unix_nano: unsigned(object, path, "startTimeUnixNano", "start_time_unix_nano")?,
        end_time_unix_nano: unsigned(object, path, "endTimeUnixNano", "end_time_unix_nano")?,
        attributes: attributes(object, path)?,
        dropped_attributes_count: unsigned32(
            object,
            path,
            "droppedAttributesCount",
            "dropped_attributes_count",
        )?,
        events,
        dropped_events_count: unsigned32(
            object,
            path,
            "droppedEventsCount",
            "dropped_events_count",
        )?,
        links,
        dropped_links_count: unsigned32(object, path, "droppedLinksCount", "dropped_links_count")?,
        status,
    })
}

fn event(value: &Value, path: &str) -> Result<Event> {
    let object = object(value, path)?;
    Ok(Event {
        time_unix_nano: unsigned(object, path, "timeUnixNano", "time_unix_nano")?,
        name: string(object, path, "name", "name")?,
        attributes: attributes(object, path)?,
        dropped_attributes_count: unsigned32(
            object,
            path,
            "droppedAttributesCount",
            "dropped_attributes_count",
        )?,
    })
}

fn link(value: &Value, path: &str) -> Result<Link> {
    let object = object(value, path)?;
    Ok(Link {
        trace_id: id(object, path, "traceId", "trace_id")?,
        span_id: id(object, path, "spanId", "span_id")?,
        trace_state: string(object, path, "traceState", "trace_state")?,
        attributes: attributes(object, path)?,
        dropped_attributes_count: unsigned32(
            object,
            path,
            "droppedAttributesCount",
            "dropped_attributes_count",
        )?,
        flags: unsigned32(object, path, "flags", "flags")?,
    })
}

pub(super) fn attributes(object: &Map<String, Value>, path: &str) -> Result<Vec<KeyValue>> {
    key_values(array(object, path, "attributes", "attributes")?, path, 0)
}

fn key_values(items: &[Value], path: &str, depth: usize) -> Result<Vec<KeyValue>> {
    items
        .iter()
        .enumerate()
        .map(|(index, item)| {
            let path = format!("{path}.attributes[{index}]");
            let entry = object(item, &path)?;
            let value = match field(entry, "value", "value") {
                None => None,
                Some(value) => Some(any_value(value, &format!("{path}.value"), depth + 1)?),
            };
            Ok(KeyValue {
                key: string(entry, &path, "key", "key")?,
                value,
                ..Default::default()
            })
        })
        .collect()
}

pub(super) fn any_value(value: &Value, path: &str, depth: usize) -> Result<AnyValue> {
    if depth > MAX_DEPTH {
        return fail(
            path,
            format!("values nested deeper than {MAX_DEPTH} levels"),
        );
    }
    let fields = object(value, path)?;
    let Some((name, inner)) = fields.iter().find(|(_, inner)| !inner.is_null()) else {
        return Ok(AnyValue { value: None });
    };
    let inner_path = format!("{path}.{name}");
    let value = match name.as_str() {
        "stringValue" | "string_value" => match inner {
            Value::String(text) => ProtoValue::StringValue(text.clone()),
            _ => return fail(&inner_path, "expected a string"),
        },
        "boolValue" | "bool_value" => match inner {
            Value::Bool(flag) => ProtoValue::BoolValue(*flag),
            _ => return fail(&inner_path, "expected a boolean"),
        },
        "intValue" | "int_value" => ProtoValue::IntValue(integer(inner, &inner_path)?),
        "doubleValue" | "double_value" => ProtoValue::DoubleValue(double(inner, &inner_path)?),
        "bytesValue" | "bytes_value" => match inner.as_str().map(|text| BASE64.decode(text)) {
            Some(Ok(bytes)) => ProtoValue::BytesValue(bytes),
            _ => return fail(&inner_path, "expected base64 bytes"),
        },
        "arrayValue" | "array_value" => {
            let values = array(object(inner, &inner_path)?, &inner_path, "values", "values")?
                .iter()
                .enumerate()
                .map(|(index, item)| {
                    any_value(item, &format!("{inner_path}.values[{index}]"), depth + 1)
                })
                .collect::<Result<_>>()?;
            ProtoValue::ArrayValue(ArrayValue { values })
        }
        "kvlistValue" | "kvlist_value" => {
            let items = array(object(inner, &inner_path)?, &inner_path, "values", "values")?;
            ProtoValue::KvlistValue(KeyValueList {
                values: key_values(items, &inner_path, depth + 1)?,
            })
        }
        other => return fail(path, format!("unknown value type {other:?}")),
    };
    Ok(AnyValue { value: Some(value) })
}

fn integer(value: &Value, path: &str) -> Result<i64> {
    let parsed = match value {
        Value::Number(number) => number.as_i64(),
        Value::String(text) => text.parse().ok(),
        _ => None,
    };
    parsed.map_or_else(|| fail(path, "expected a 64-bit integer"), Ok)
}

fn double(value: &Value, path: &str) -> Result<f64> {
    let parsed = match value {
        Value::Number(number) => number.as_f64(),
        Value::String(text) => match text.as_str() {
            "NaN" => Some(f64::NAN),
            "Infinity" => Some(f64::INFINITY),
            "-Infinity" => Some(f64::NEG_INFINITY),
            other => other.parse().ok(),
        },
        _ => None,
    };
    parsed.map_or_else(|| fail(path, "expected a number"), Ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_node_style_json() {
        let body = br#"{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"svc"}}]},
          "scopeSpans":[{"scope":{"name":"s"},"spans":[{"traceId":"5B8EFFF798038103D269B633813FC60C",
          "spanId":"EEE19B7EC3C1B174","kind":3,"name":"chat","startTimeUnixNano":"1700000000000000000",
          "endTimeUnixNano":1700000000500000000,"status":{"code":"STATUS_CODE_ERROR"},
          "attributes":[{"key":"n","value":{"intValue":"12"}},{"key":"d","value":{"doubleValue":"NaN"}},
          {"key":"a","value":{"arrayValue":{"values":[{"boolValue":true}]}}}]}]}]}]}"#;
        let request = decode_trace_request(body).unwrap();
        let span = &request.resource_spans[0].scope_spans[0].spans[0];
        assert_eq!(span.trace_id.len(), 16);
        assert_eq!(span.kind, 3);
        assert_eq!(span.start_time_unix_nano, 1_700_000_000_000_000_000);
        assert_eq!(span.status.as_ref().unwrap().code, 2);
        assert_eq!(
            span.attributes[0].value.as_ref().unwrap().value,
            Some(ProtoValue::IntValue(12))
        );
    }

    #[test]
    fn reports_where_the_body_is_wrong() {
        let error = decode_trace_request(br#"{"resourceSpans":[{"scopeSpans":{}}]}"#).unwrap_err();
        assert_eq!(error.path, "$.resourceSpans[0].scopeSpans");
        assert!(decode_trace_request(b"not json").is_err());
        assert!(decode_trace_request(b"[]").is_err());
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_stack_overflow() {
        let mut value = String::from(r#"{"intValue":1}"#);
        for _ in 0..38 {
            value = format!(r#"{{"arrayValue":{{"values":[{value}]}}}}"#);
        }
        let body = format!(
            r#"{{"resourceSpans":[{{"scopeSpans":[{{"spans":[{{"attributes":[{{"key":"k","value":{value}}}]}}]}}]}}]}}"#
        );
        let error = decode_trace_request(body.as_bytes()).unwrap_err();
        assert!(error.problem.contains("nested"), "{error}");
    }
}
