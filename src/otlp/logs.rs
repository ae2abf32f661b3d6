//! From OTLP log records to the GenAI content events spanhouse attaches to spans.

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::common::v1 as proto_common;

use super::convert::attributes_from_otlp;
use crate::model::attributes::find_str;
use crate::model::{AttrValue, ContentEvent, ConvertedLogs, Event, SpanId, TraceId};
use crate::normalize::events::{LOG_BODY_KEY, is_content_event};

/// Picks the records that carry GenAI content for a span.
pub fn content_events_from_request(request: ExportLogsServiceRequest) -> ConvertedLogs {
    let mut converted = ConvertedLogs::default();
    for resource_logs in request.resource_logs {
        for scope_logs in resource_logs.scope_logs {
            for record in scope_logs.log_records {
                let mut attributes = attributes_from_otlp(record.attributes);
                let name = if record.event_name.is_empty() {
                    find_str(&attributes, "event.name")
                        .unwrap_or_default()
                        .to_owned()
                } else {
                    record.event_name
                };
                let (Ok(trace_id), Ok(span_id)) = (
                    TraceId::from_bytes(&record.trace_id),
                    SpanId::from_bytes(&record.span_id),
                ) else {
                    converted.ignored += 1;
                    continue;
                };
                if !is_content_event(&name) {
                    converted.ignored += 1;
                    continue;
                }
                if let Some(body) = record.body {
                    let body = attributes_from_otlp(vec![proto_common::KeyValue {
                        key: LOG_BODY_KEY.into(),
                        value: Some(body),
                        ..Default::default()
                    }]);
                    attributes.extend(body);
                }
                attributes.retain(|entry| {
                    !(entry.key == LOG_BODY_KEY && entry.value == AttrValue::Empty)
                });
                let time_unix_nano = if record.time_unix_nano == 0 {
                    record.observed_time_unix_nano
                } else {
                    record.time_unix_nano
                };
                converted.content.push(ContentEvent {
                    trace_id,
                    span_id,
                    event: Event {
                        time_unix_nano,
                        name,
                        attributes,
                        dropped_attributes_count: record.dropped_attributes_count,
                    },
                });
            }
        }
    }
    converted
}
