//! A span as spanhouse keeps it: everything OTLP sent, in spanhouse's own types.

use std::sync::Arc;

use serde::Serialize;

use super::attributes::{KeyValue, find_str};
use super::ids::{SpanId, TraceId};

/// What kind of operation a span describes (OTLP `Span.SpanKind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SpanKind {
    /// The SDK did not say.
    #[default]
    Unspecified,
    /// An operation inside the application.
    Internal,
    /// The handling of a request from elsewhere.
    Server,
    /// A request to another service (a model's API, usually).
    Client,
    /// The sending of a message that is handled later (a queue, say).
    Producer,
    /// The handling of such a message.
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
    /// The span set no status: the default, and no failure.
    #[default]
    Unset,
    /// The application marked the span successful.
    Ok,
    /// The operation failed.
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

/// How a span ended (OTLP `Status`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Status {
    /// Ok, error or unset.
    pub code: StatusCode,
    /// Why it failed, for a person; empty when the span gave no reason.
    pub message: String,
}

/// The entity that produced the spans (a service), shared by all spans of one `ResourceSpans`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Resource {
    /// What describes the service: `service.name`, `service.version`, host, SDK, …
    pub attributes: Vec<KeyValue>,
    /// Attributes the SDK dropped (over its limits), as it reported.
    pub dropped_attributes_count: u32,
    /// The semantic conventions schema the attributes follow; empty when none is named.
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
    /// The library's name (`opentelemetry.instrumentation.openai_v2`, say).
    pub name: String,
    /// The library's version; empty when not given.
    pub version: String,
    /// The scope's own attributes; rarely any.
    pub attributes: Vec<KeyValue>,
    /// Attributes the SDK dropped (over its limits), as it reported.
    pub dropped_attributes_count: u32,
    /// The semantic conventions schema the attributes follow; empty when none is named.
    pub schema_url: String,
}

/// Something that happened at one moment of a span (OTLP `Span.Event`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Event {
    /// When it happened, in nanoseconds since the Unix epoch.
    pub time_unix_nano: u64,
    /// What happened, such as `gen_ai.user.message` or `exception`.
    pub name: String,
    /// Its details.
    pub attributes: Vec<KeyValue>,
    /// Attributes the SDK dropped (over its limits), as it reported.
    pub dropped_attributes_count: u32,
}

/// A pointer from a span to another span, possibly of another trace (OTLP `Span.Link`).
#[derive(Debug, Clone, PartialEq)]
pub struct Link {
    /// The trace of the linked span, often another trace.
    pub trace_id: TraceId,
    /// The linked span.
    pub span_id: SpanId,
    /// The linked span's W3C `tracestate`; empty when none.
    pub trace_state: String,
    /// What the link means.
    pub attributes: Vec<KeyValue>,
    /// Attributes the SDK dropped (over its limits), as it reported.
    pub dropped_attributes_count: u32,
    /// OTLP link flags: W3C trace flags in bits 0–7, whether the linked context is remote in
    /// bits 8–9.
    pub flags: u32,
}

/// One span, with its resource and scope. Ids are valid and `end >= start` by construction:
/// the OTLP decoder rejects spans that break either rule.
#[derive(Debug, Clone, PartialEq)]
pub struct Span {
    /// The trace the span belongs to.
    pub trace_id: TraceId,
    /// Unique within its trace: with the trace id and the project, it identifies a stored span,
    /// so a span sent twice is stored once.
    pub span_id: SpanId,
    /// `None` for a root span.
    pub parent_span_id: Option<SpanId>,
    /// The W3C `tracestate` the span was made with; empty when none.
    pub trace_state: String,
    /// OTLP span flags: W3C trace flags in bits 0–7 (bit 0: sampled), whether the parent is
    /// remote in bits 8–9.
    pub flags: u32,
    /// The operation's name, as the instrumentation chose it.
    pub name: String,
    /// What kind of operation it is.
    pub kind: SpanKind,
    /// When it started, in nanoseconds since the Unix epoch.
    pub start_time_unix_nano: u64,
    /// When it ended, in nanoseconds since the Unix epoch; never before the start.
    pub end_time_unix_nano: u64,
    /// Its attributes in the order sent; its LLM meaning is read from them.
    pub attributes: Vec<KeyValue>,
    /// Attributes the SDK dropped (over its limits), as it reported.
    pub dropped_attributes_count: u32,
    /// Its events, in the order sent.
    pub events: Vec<Event>,
    /// Events the SDK dropped, as it reported.
    pub dropped_events_count: u32,
    /// Its links to other spans.
    pub links: Vec<Link>,
    /// Links the SDK dropped, as it reported.
    pub dropped_links_count: u32,
    /// How it ended.
    pub status: Status,
    /// The service that made it; shared by the spans of one `ResourceSpans`.
    pub resource: Arc<Resource>,
    /// The instrumentation library that made it; shared by the spans of one `ScopeSpans`.
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
