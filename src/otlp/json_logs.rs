//! OTLP/JSON logs into the protobuf types, by the same rules as traces (see `json`).

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use serde_json::Value;

use super::json::{
    JsonError, Result, any_value, array, attributes, field, id, object, resource, scope, string,
    unsigned, unsigned32,
};

/// Decodes an `ExportLogsServiceRequest` from OTLP/JSON bytes.
pub fn decode_logs_request(body: &[u8]) -> Result<ExportLogsServiceRequest> {
    let value: Value = serde_json::from_slice(body).map_err(|error| JsonError {
        path: "$".into(),
        problem: error.to_string(),
    })?;
    logs_request_from_value(&value)
}

/// An `ExportLogsServiceRequest` from an already parsed OTLP/JSON document.
pub fn logs_request_from_value(value: &Value) -> Result<ExportLogsServiceRequest> {
    let root = object(value, "$")?;
    let resource_logs = array(root, "$", "resourceLogs", "resource_logs")?
        .iter()
        .enumerate()
        .map(|(index, item)| resource_logs(item, &format!("$.resourceLogs[{index}]")))
        .collect::<Result<_>>()?;
    Ok(ExportLogsServiceRequest { resource_logs })
}

fn resource_logs(value: &Value, path: &str) -> Result<ResourceLogs> {
    let object = object(value, path)?;
    let scope_logs = array(object, path, "scopeLogs", "scope_logs")?
        .iter()
        .enumerate()
        .map(|(index, item)| scope_logs(item, &format!("{path}.scopeLogs[{index}]")))
        .collect::<Result<_>>()?;
    Ok(ResourceLogs {
        resource: resource(object, path)?,
        scope_logs,
        schema_url: string(object, path, "schemaUrl", "schema_url")?,
    })
}

fn scope_logs(value: &Value, path: &str) -> Result<ScopeLogs> {
    let object = object(value, path)?;
    let log_records = array(object, path, "logRecords", "log_records")?
        .iter()
        .enumerate()
        .map(|(index, item)| log_record(item, &format!("{path}.logRecords[{index}]")))
        .collect::<Result<_>>()?;
    Ok(ScopeLogs {
        scope: scope(object, path)?,
        log_records,
        schema_url: string(object, path, "schemaUrl", "schema_url")?,
    })
}

fn log_record(value: &Value, path: &str) -> Result<LogRecord> {
    let object = object(value, path)?;
    let body = match field(object, "body", "body") {
        None => None,
        Some(value) => Some(any_value(value, &format!("{path}.body"), 0)?),
    };
    let severity_number = match field(object, "severityNumber", "severity_number") {
        None => 0,
        Some(Value::Number(number)) => number.as_i64().unwrap_or(0) as i32,
        // Names like SEVERITY_NUMBER_INFO carry no information spanhouse uses.
        Some(_) => 0,
    };
    Ok(LogRecord {
        time_unix_nano: unsigned(object, path, "timeUnixNano", "time_unix_nano")?,
        observed_time_unix_nano: unsigned(
            object,
            path,
            "observedTimeUnixNano",
            "observed_time_unix_nano",
        )?,
        severity_number,
        severity_text: string(object, path, "severityText", "severity_text")?,
        body,
        attributes: attributes(object, path)?,
        dropped_attributes_count: unsigned32(
            object,
            path,
            "droppedAttributesCount",
            "dropped_attributes_count",
        )?,
        flags: unsigned32(object, path, "flags", "flags")?,
        trace_id: id(object, path, "traceId", "trace_id")?,
        span_id: id(object, path, "spanId", "span_id")?,
        event_name: string(object, path, "eventName", "event_name")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_genai_event_record() {
        let body = br#"{"resourceLogs":[{"scopeLogs":[{"logRecords":[{
            "timeUnixNano":"1700000000000000000","eventName":"gen_ai.choice",
            "traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174",
            "body":{"kvlistValue":{"values":[{"key":"index","value":{"intValue":"0"}}]}},
            "severityNumber":9}]}]}]}"#;
        let request = decode_logs_request(body).unwrap();
        let record = &request.resource_logs[0].scope_logs[0].log_records[0];
        assert_eq!(record.event_name, "gen_ai.choice");
        assert_eq!(record.span_id.len(), 8);
        assert!(record.body.is_some());
    }
}
