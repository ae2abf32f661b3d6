//! A span as spanhouse keeps it: everything OTLP sent, in spanhouse's own types.

use std::sync::Arc;

use serde::Serialize;

use super::attributes::{KeyValue, find_str};
use super::ids::{SpanId, TraceId};

/// What kind of operation a span describes (OTLP `Span.SpanKind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SpanKind {
    #[default]
    Unspecified,
    Internal,
    Server,
    Client,
    Producer,
    Consumer,
}

impl SpanKind {
    /// Maps the OTLP enum number; unknown numbers read as unspecified.
    pub fn from_otlp(number: i32) -> Self {
        match number {
            1 => Self::Internal,
            2 => Self::Server,
            3 => Self::Client,
            4 => Self::Producer,
            5 => Self::Consumer,
            _ => Self::Unspecified,
        }
    }

    pub fn to_otlp(self) -> i32 {
        match self {
            Self::Unspecified => 0,
            Self::Internal => 1,
            Self::Server => 2,
            Self::Client => 3,
            Self::Producer => 4,
            Self::Consumer => 5,
        }
    }
}

/// The outcome of a span (OTLP `Status.StatusCode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StatusCode {
    #[default]
    Unset,
    Ok,
    Error,
}

impl StatusCode {
    pub fn from_otlp(number: i32) -> Self {
        match number {
            1 => Self::Ok,
            2 => Self::Error,
            _ => Self::Unset,
        }
    }

    pub fn to_otlp(self) -> i32 {
        match self {
            Self::Unset => 0,
            Self::Ok => 1,
            Self::Error => 2,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unset => "unset",
            Self::Ok => "ok",
            Self::Error => "error",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Status {
    pub code: StatusCode,
    pub message: String,
}

/// The entity that produced the spans (a service), shared by all spans of one `ResourceSpans`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Resource {
    pub attributes: Vec<KeyValue>,
    pub dropped_attributes_count: u32,
    pub schema_url: String,
}

impl Resource {
    /// `service.name`, the name every OpenTelemetry SDK sets.
    pub fn service_name(&self) -> Option<&str> {
        find_str(&self.attributes, "service.name")
    }
}

/// The instrumentation library that made the spans, shared by all spans of one `ScopeSpans`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Scope {
    pub name: String,
    pub version: String,
    pub attributes: Vec<KeyValue>,
    pub dropped_attributes_count: u32,
    pub schema_url: String,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Event {
    pub time_unix_nano: u64,
    pub name: String,
    pub attributes: Vec<KeyValue>,
    pub dropped_attributes_count: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Link {
    pub trace_id: TraceId,
    pub span_id: SpanId,
    pub trace_state: String,
    pub attributes: Vec<KeyValue>,
    pub dropped_attributes_count: u32,
    pub flags: u32,
}

/// One span, with its resource and scope. Ids are valid and `end >= start` by construction:
/// the OTLP decoder rejects spans that break either rule.
#[derive(Debug, Clone, PartialEq)]
pub struct Span {
    pub trace_id: TraceId,
    pub span_id: SpanId,
    /// `None` for a root span.
    pub parent_span_id: Option<SpanId>,
    pub trace_state: String,
    pub flags: u32,
    pub name: String,
    pub kind: SpanKind,
    pub start_time_unix_nano: u64,
    pub end_time_unix_nano: u64,
    pub attributes: Vec<KeyValue>,
    pub dropped_attributes_count: u32,
    pub events: Vec<Event>,
    pub dropped_events_count: u32,
    pub links: Vec<Link>,
    pub dropped_links_count: u32,
    pub status: Status,
    pub resource: Arc<Resource>,
    pub scope: Arc<Scope>,
}

impl Span {
    pub fn service_name(&self) -> Option<&str> {
        self.resource.service_name()
    }

    pub fn duration_ms(&self) -> f64 {
        self.end_time_unix_nano
            .saturating_sub(self.start_time_unix_nano) as f64
            / 1_000_000.0
    }

    /// A rough count of the bytes this span holds, used to bound memory.
    pub fn approximate_size(&self) -> usize {
        let attributes: usize = self
            .attributes
            .iter()
            .map(|entry| entry.key.len() + entry.value.approximate_size())
            .sum();
        let events: usize = self
            .events
            .iter()
            .flat_map(|event| event.attributes.iter())
            .map(|entry| entry.key.len() + entry.value.approximate_size())
            .sum();
        256 + self.name.len() + attributes + events
    }
}

#[cfg(test)]
pub(crate) mod test_support {
    use super::*;

    /// A string attribute.
    pub fn text(key: &str, value: &str) -> KeyValue {
        KeyValue::new(
            key,
            super::super::attributes::AttrValue::String(value.into()),
        )
    }

    /// A small valid span for tests; override fields with struct update syntax.
    pub fn make_span(trace: u8, span: u8) -> Span {
        Span {
            trace_id: TraceId([trace; 16]),
            span_id: SpanId([span; 8]),
            parent_span_id: None,
            trace_state: String::new(),
            flags: 0,
            name: format!("span-{span}"),
            kind: SpanKind::Internal,
            start_time_unix_nano: 1_700_000_000_000_000_000,
            end_time_unix_nano: 1_700_000_000_500_000_000,
            attributes: Vec::new(),
            dropped_attributes_count: 0,
            events: Vec::new(),
            dropped_events_count: 0,
            links: Vec::new(),
            dropped_links_count: 0,
            status: Status::default(),
            resource: Arc::new(Resource::default()),
            scope: Arc::new(Scope::default()),
        }
    }
}
