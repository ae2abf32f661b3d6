//! JSON shapes of the query API (SPEC §4).

use serde::Serialize;

use crate::model::attributes::Plain;
use crate::model::time::format_rfc3339;
use crate::model::{KeyValue, LlmCall, SpanKind, TraceRecord};
use crate::store::StoredSpan;

#[derive(Serialize)]
pub struct TraceListView {
    pub traces: Vec<TraceRecord>,
    pub next_cursor: Option<String>,
}

#[derive(Serialize)]
pub struct TraceView {
    pub trace: TraceRecord,
    pub spans: Vec<SpanView>,
}

#[derive(Serialize)]
pub struct StatusView {
    pub code: &'static str,
    pub message: String,
}

#[derive(Serialize)]
pub struct ScopeView {
    pub name: String,
    pub version: String,
}

#[derive(Serialize)]
pub struct EventView {
    pub name: String,
    pub time: String,
    pub attributes: PlainAttributes,
}

#[derive(Serialize)]
pub struct LinkView {
    pub trace_id: String,
    pub span_id: String,
    pub trace_state: String,
    pub attributes: PlainAttributes,
}

/// Attributes in the plain JSON form: values keep their OTLP types.
pub struct PlainAttributes(pub Vec<KeyValue>);

impl Serialize for PlainAttributes {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        Plain(&self.0).serialize(serializer)
    }
}

/// The `llm` part of a span as the API shows it.
#[derive(Serialize)]
pub struct LlmView {
    pub operation: Option<String>,
    pub provider: Option<String>,
    pub request_model: Option<String>,
    pub response_model: Option<String>,
    pub input: Option<String>,
    pub output: Option<String>,
    pub input_messages: Vec<crate::model::llm::Message>,
    pub output_messages: Vec<crate::model::llm::Message>,
    pub prompt_tokens: Option<i64>,
    pub completion_tokens: Option<i64>,
    pub total_tokens: Option<i64>,
    pub cost: Option<f64>,
    pub prompt_cost: Option<f64>,
    pub completion_cost: Option<f64>,
    pub finish_reasons: Vec<String>,
}

impl From<&LlmCall> for LlmView {
    fn from(call: &LlmCall) -> Self {
        Self {
            operation: call.operation.clone(),
            provider: call.provider.clone(),
            request_model: call.request_model.clone(),
            response_model: call.response_model.clone(),
            input: call.input.clone(),
            output: call.output.clone(),
            input_messages: call.input_messages.clone(),
            output_messages: call.output_messages.clone(),
            prompt_tokens: call.usage.prompt,
            completion_tokens: call.usage.completion,
            total_tokens: call.usage.total,
            cost: call.cost.total,
            prompt_cost: call.cost.prompt,
            completion_cost: call.cost.completion,
            finish_reasons: call.finish_reasons.clone(),
        }
    }
}

#[derive(Serialize)]
pub struct SpanView {
    pub trace_id: String,
    pub span_id: String,
    pub parent_span_id: Option<String>,
    pub name: String,
    pub kind: SpanKind,
    pub start_time: String,
    pub end_time: String,
    pub duration_ms: f64,
    pub status: StatusView,
    pub service_name: Option<String>,
    pub attributes: PlainAttributes,
    pub resource_attributes: PlainAttributes,
    pub scope: ScopeView,
    pub events: Vec<EventView>,
    pub links: Vec<LinkView>,
    pub input: Option<String>,
    pub output: Option<String>,
    pub llm: Option<LlmView>,
}

impl From<&StoredSpan> for SpanView {
    fn from(stored: &StoredSpan) -> Self {
        let span = &stored.span;
        Self {
            trace_id: span.trace_id.to_hex(),
            span_id: span.span_id.to_hex(),
            parent_span_id: span.parent_span_id.map(|parent| parent.to_hex()),
            name: span.name.clone(),
            kind: span.kind,
            start_time: format_rfc3339(span.start_time_unix_nano),
            end_time: format_rfc3339(span.end_time_unix_nano),
            duration_ms: span.duration_ms(),
            status: StatusView {
                code: span.status.code.as_str(),
                message: span.status.message.clone(),
            },
            service_name: span.service_name().map(str::to_owned),
            attributes: PlainAttributes(span.attributes.clone()),
            resource_attributes: PlainAttributes(span.resource.attributes.clone()),
            scope: ScopeView {
                name: span.scope.name.clone(),
                version: span.scope.version.clone(),
            },
            events: span
                .events
                .iter()
                .map(|event| EventView {
                    name: event.name.clone(),
                    time: format_rfc3339(event.time_unix_nano),
                    attributes: PlainAttributes(event.attributes.clone()),
                })
                .collect(),
            links: span
                .links
                .iter()
                .map(|link| LinkView {
                    trace_id: link.trace_id.to_hex(),
                    span_id: link.span_id.to_hex(),
                    trace_state: link.trace_state.clone(),
                    attributes: PlainAttributes(link.attributes.clone()),
                })
                .collect(),
            input: stored.semantics.input.clone(),
            output: stored.semantics.output.clone(),
            llm: stored.semantics.llm.as_ref().map(LlmView::from),
        }
    }
}
