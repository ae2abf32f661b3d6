//! JSON shapes of the query API (SPEC §4).

use serde::Serialize;

use super::scores::{ScoreView, ScoredTrace};
use crate::model::attributes::Plain;
use crate::model::time::format_rfc3339;
use crate::model::{KeyValue, LlmCall, SpanKind};
use crate::store::StoredSpan;

/// `GET /api/v1/traces`: one page of the project's traces.
#[derive(Serialize)]
pub struct TraceListView {
    /// The page's traces, newest first, each with its scores.
    pub traces: Vec<ScoredTrace>,
    /// Where the next page starts, to pass back as `cursor`; `None` on the last page.
    pub next_cursor: Option<String>,
}

/// `GET /api/v1/traces/{trace_id}`: a trace and its spans.
#[derive(Serialize)]
pub struct TraceView {
    /// The trace as one LLM interaction, with its scores' latest values.
    pub trace: ScoredTrace,
    /// Every stored span of the trace, by start time.
    pub spans: Vec<SpanView>,
    /// Every score of the trace, oldest first.
    pub scores: Vec<ScoreView>,
}

/// How a span ended.
#[derive(Serialize)]
pub struct StatusView {
    /// `ok`, `error` or `unset`.
    pub code: &'static str,
    /// Why it failed, for a person; empty when the span gave no reason.
    pub message: String,
}

/// The instrumentation library that made a span.
#[derive(Serialize)]
pub struct ScopeView {
    /// The library's name; empty when not given.
    pub name: String,
    /// The library's version; empty when not given.
    pub version: String,
}

/// Something that happened at one moment of a span.
#[derive(Serialize)]
pub struct EventView {
    /// What happened, such as `gen_ai.user.message` or `exception`.
    pub name: String,
    /// When it happened, RFC 3339 UTC with nanoseconds.
    pub time: String,
    /// Its details.
    pub attributes: PlainAttributes,
}

/// A pointer from a span to another span, possibly of another trace.
#[derive(Serialize)]
pub struct LinkView {
    /// The linked span's trace, lowercase hex.
    pub trace_id: String,
    /// The linked span, lowercase hex.
    pub span_id: String,
    /// The linked span's W3C `tracestate`; empty when none.
    pub trace_state: String,
    /// What the link means.
    pub attributes: PlainAttributes,
}

/// Attributes in the plain JSON form: values keep their OTLP types.
pub struct PlainAttributes(
    /// The attributes, in the order sent.
    pub Vec<KeyValue>,
);

impl Serialize for PlainAttributes {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        Plain(&self.0).serialize(serializer)
    }
}

/// The `llm` part of a span as the API shows it.
#[derive(Serialize)]
pub struct LlmView {
    /// What the model was asked to do (`chat`, `text_completion`, `embeddings`, …).
    pub operation: Option<String>,
    /// Who serves the model (`openai`, `anthropic`, …).
    pub provider: Option<String>,
    /// The model the call asked for.
    pub request_model: Option<String>,
    /// The model that answered, often a dated version of the one asked for.
    pub response_model: Option<String>,
    /// The call's input text: the span's `input`.
    pub input: Option<String>,
    /// The call's output text: the span's `output`.
    pub output: Option<String>,
    /// The messages sent to the model, in order.
    pub input_messages: Vec<crate::model::llm::Message>,
    /// What the model answered, as messages.
    pub output_messages: Vec<crate::model::llm::Message>,
    /// Input tokens; `None` when the span did not say.
    pub prompt_tokens: Option<i64>,
    /// Output tokens; `None` when the span did not say.
    pub completion_tokens: Option<i64>,
    /// All tokens of the call: as reported, else prompt + completion.
    pub total_tokens: Option<i64>,
    /// What the whole call cost, in USD: as reported, else from the price table.
    pub cost: Option<f64>,
    /// Cost of the input tokens, in USD.
    pub prompt_cost: Option<f64>,
    /// Cost of the output tokens, in USD.
    pub completion_cost: Option<f64>,
    /// Why the model stopped, one reason per choice (`stop`, `length`, `tool_calls`, …).
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

/// A span as the query API shows it.
#[derive(Serialize)]
pub struct SpanView {
    /// The trace the span belongs to, lowercase hex.
    pub trace_id: String,
    /// The span's id, lowercase hex.
    pub span_id: String,
    /// The parent span's id; `None` for a root span.
    pub parent_span_id: Option<String>,
    /// The operation's name, as the instrumentation chose it.
    pub name: String,
    /// `internal`, `server`, `client`, `producer`, `consumer` or `unspecified`.
    pub kind: SpanKind,
    /// When it started, RFC 3339 UTC with nanoseconds.
    pub start_time: String,
    /// When it ended, RFC 3339 UTC with nanoseconds.
    pub end_time: String,
    /// End minus start, in milliseconds, with a fraction.
    pub duration_ms: f64,
    /// How it ended.
    pub status: StatusView,
    /// The resource's `service.name`.
    pub service_name: Option<String>,
    /// The span's attributes; values keep their OTLP types.
    pub attributes: PlainAttributes,
    /// The attributes of the service that sent it (`service.name`, …).
    pub resource_attributes: PlainAttributes,
    /// The instrumentation library that made it.
    pub scope: ScopeView,
    /// Its events, in the order sent.
    pub events: Vec<EventView>,
    /// Its links to other spans.
    pub links: Vec<LinkView>,
    /// The span's input text, read by the rules of docs/semantic-convention.md.
    pub input: Option<String>,
    /// The span's output text, read by the same rules.
    pub output: Option<String>,
    /// Set when the span is a call of a language model.
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
