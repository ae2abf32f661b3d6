//! From spanhouse's model back to OTLP/JSON: the inverse of [`super::json`] and
//! [`super::convert`], for export (SPEC §9). A stored [`Span`] keeps everything OTLP sent, so
//! the request written here, decoded and converted again, gives the same spans.
//!
//! The JSON follows the OTLP/JSON encoding: lowerCamelCase names, trace and span ids in
//! lowercase hex, enums as numbers, 64-bit integers as strings, bytes as base64; fields at
//! their default value are left out. A double is a JSON number when a JSON reader gives back
//! the same bits, else a string (`"NaN"`, `"Infinity"`, or the shortest exact decimal), which
//! protobuf's JSON mapping also accepts.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Map, Value, json};

use crate::model::{AttrValue, Event, KeyValue, Link, Resource, Scope, Span};

/// One span to export and the events to add to its own: GenAI content that arrived as log
/// records (see [`crate::model::ContentEvent`]). As span events they are normalized exactly
/// as the attached records were, so the spans give the same TraceRecord once imported.
#[derive(Debug, Clone, Copy)]
pub struct ExportSpan<'a> {
    /// The span as stored.
    pub span: &'a Span,
    /// Events appended after the span's own, in the order given.
    pub content_events: &'a [Event],
}

/// The spans of one scope, as JSON.
type ScopeGroup<'a> = (&'a Scope, Vec<Value>);

/// One `ExportTraceServiceRequest` in OTLP/JSON holding `spans`: grouped by resource, then by
/// scope (equal by value, in the order first seen), each group's spans in the order given.
pub fn trace_request_json(spans: &[ExportSpan<'_>]) -> Value {
    let mut groups: Vec<(&Resource, Vec<ScopeGroup<'_>>)> = Vec::new();
    for export in spans {
        let span = export.span;
        let resource_index = match groups
            .iter()
            .position(|(resource, _)| *resource == &*span.resource)
        {
            Some(index) => index,
            None => {
                groups.push((&span.resource, Vec::new()));
                groups.len() - 1
            }
        };
        let scopes = &mut groups[resource_index].1;
        let scope_index = match scopes.iter().position(|(scope, _)| *scope == &*span.scope) {
            Some(index) => index,
            None => {
                scopes.push((&span.scope, Vec::new()));
                scopes.len() - 1
            }
        };
        scopes[scope_index]
            .1
            .push(span_json(span, export.content_events));
    }
    let resource_spans: Vec<Value> = groups
        .into_iter()
        .map(|(resource, scopes)| {
            let mut object = Map::new();
            let mut resource_object = Map::new();
            put_attributes(&mut resource_object, &resource.attributes);
            put_count(
                &mut resource_object,
                "droppedAttributesCount",
                resource.dropped_attributes_count,
            );
            object.insert("resource".into(), Value::Object(resource_object));
            let scope_spans: Vec<Value> = scopes
                .into_iter()
                .map(|(scope, spans)| scope_spans_json(scope, spans))
                .collect();
            object.insert("scopeSpans".into(), Value::Array(scope_spans));
            put_text(&mut object, "schemaUrl", &resource.schema_url);
            Value::Object(object)
        })
        .collect();
    json!({ "resourceSpans": resource_spans })
}

fn scope_spans_json(scope: &Scope, spans: Vec<Value>) -> Value {
    let mut scope_object = Map::new();
    put_text(&mut scope_object, "name", &scope.name);
    put_text(&mut scope_object, "version", &scope.version);
    put_attributes(&mut scope_object, &scope.attributes);
    put_count(
        &mut scope_object,
        "droppedAttributesCount",
        scope.dropped_attributes_count,
    );
    let mut object = Map::new();
    object.insert("scope".into(), Value::Object(scope_object));
    object.insert("spans".into(), Value::Array(spans));
    put_text(&mut object, "schemaUrl", &scope.schema_url);
    Value::Object(object)
}

fn span_json(span: &Span, content_events: &[Event]) -> Value {
    let mut object = Map::new();
    object.insert("traceId".into(), Value::String(span.trace_id.to_hex()));
    object.insert("spanId".into(), Value::String(span.span_id.to_hex()));
    put_text(&mut object, "traceState", &span.trace_state);
    if let Some(parent) = span.parent_span_id {
        object.insert("parentSpanId".into(), Value::String(parent.to_hex()));
    }
    put_count(&mut object, "flags", span.flags);
    object.insert("name".into(), Value::String(span.name.clone()));
    let kind = span.kind.to_otlp();
    if kind != 0 {
        object.insert("kind".into(), Value::from(kind));
    }
    object.insert(
        "startTimeUnixNano".into(),
        Value::String(span.start_time_unix_nano.to_string()),
    );
    object.insert(
        "endTimeUnixNano".into(),
        Value::String(span.end_time_unix_nano.to_string()),
    );
    put_attributes(&mut object, &span.attributes);
    put_count(
        &mut object,
        "droppedAttributesCount",
        span.dropped_attributes_count,
    );
    let events: Vec<Value> = span
        .events
        .iter()
        .chain(content_events)
        .map(event_json)
        .collect();
    if !events.is_empty() {
        object.insert("events".into(), Value::Array(events));
    }
    put_count(&mut object, "droppedEventsCount", span.dropped_events_count);
    if !span.links.is_empty() {
        object.insert(
            "links".into(),
            Value::Array(span.links.iter().map(link_json).collect()),
        );
    }
    put_count(&mut object, "droppedLinksCount", span.dropped_links_count);
    let code = span.status.code.to_otlp();
    if code != 0 || !span.status.message.is_empty() {
        let mut status = Map::new();
        put_text(&mut status, "message", &span.status.message);
        if code != 0 {
            status.insert("code".into(), Value::from(code));
        }
        object.insert("status".into(), Value::Object(status));
    }
    Value::Object(object)
}

fn event_json(event: &Event) -> Value {
    let mut object = Map::new();
    object.insert(
        "timeUnixNano".into(),
        Value::String(event.time_unix_nano.to_string()),
    );
    object.insert("name".into(), Value::String(event.name.clone()));
    put_attributes(&mut object, &event.attributes);
    put_count(
        &mut object,
        "droppedAttributesCount",
        event.dropped_attributes_count,
    );
    Value::Object(object)
}

fn link_json(link: &Link) -> Value {
    let mut object = Map::new();
    object.insert("traceId".into(), Value::String(link.trace_id.to_hex()));
    object.insert("spanId".into(), Value::String(link.span_id.to_hex()));
    put_text(&mut object, "traceState", &link.trace_state);
    put_attributes(&mut object, &link.attributes);
    put_count(
        &mut object,
        "droppedAttributesCount",
        link.dropped_attributes_count,
    );
    put_count(&mut object, "flags", link.flags);
    Value::Object(object)
}

fn put_text(object: &mut Map<String, Value>, name: &str, text: &str) {
    if !text.is_empty() {
        object.insert(name.into(), Value::String(text.to_owned()));
    }
}

fn put_count(object: &mut Map<String, Value>, name: &str, count: u32) {
    if count != 0 {
        object.insert(name.into(), Value::from(count));
    }
}

fn put_attributes(object: &mut Map<String, Value>, attributes: &[KeyValue]) {
    if !attributes.is_empty() {
        object.insert("attributes".into(), key_values_json(attributes));
    }
}

fn key_values_json(attributes: &[KeyValue]) -> Value {
    Value::Array(
        attributes
            .iter()
            .map(|entry| json!({ "key": entry.key, "value": any_value_json(&entry.value) }))
            .collect(),
    )
}

/// An `AnyValue`: one field named by its type; `{}` for a value with none set.
pub fn any_value_json(value: &AttrValue) -> Value {
    match value {
        AttrValue::Empty => json!({}),
        AttrValue::String(text) => json!({ "stringValue": text }),
        AttrValue::Bool(flag) => json!({ "boolValue": flag }),
        AttrValue::Int(number) => json!({ "intValue": number.to_string() }),
        AttrValue::Double(number) => json!({ "doubleValue": double_json(*number) }),
        AttrValue::Bytes(bytes) => json!({ "bytesValue": BASE64.encode(bytes) }),
        AttrValue::Array(items) => {
            let values: Vec<Value> = items.iter().map(any_value_json).collect();
            json!({ "arrayValue": { "values": values } })
        }
        AttrValue::Map(entries) => json!({ "kvlistValue": { "values": key_values_json(entries) } }),
    }
}

/// A double as a JSON number when reading that number gives back the same bits (JSON readers
/// may round the last bit of long decimals), else as a string, which is exact.
fn double_json(number: f64) -> Value {
    if number.is_nan() {
        return Value::String("NaN".into());
    }
    if number.is_infinite() {
        let text = if number > 0.0 {
            "Infinity"
        } else {
            "-Infinity"
        };
        return Value::String(text.into());
    }
    let as_number = Value::from(number);
    let read_back = serde_json::from_str::<f64>(&as_number.to_string()).ok();
    if read_back.is_some_and(|read| read.to_bits() == number.to_bits()) {
        as_number
    } else {
        Value::String(number.to_string())
    }
}

#[cfg(test)]
#[path = "export_tests.rs"]
mod tests;
