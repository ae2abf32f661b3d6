//! spanhouse's own data types. No I/O here: receivers build these, the store keeps them, the API
//! shows them.

pub mod alert;
pub mod attributes;
pub mod ids;
pub mod llm;
pub mod metric;
pub mod project;
pub mod received;
pub mod score;
pub mod span;
pub mod time;
pub mod trace_record;

pub use attributes::{AttrValue, KeyValue};
pub use ids::{IdError, SpanId, TraceId};
pub use llm::{LlmCall, SpanSemantics};
pub use received::{ConvertedLogs, ConvertedSpans, RejectedSpan};
pub use span::{Event, Link, Resource, Scope, Span, SpanKind, Status, StatusCode};
pub use trace_record::{LlmDigest, SpanDigest, TraceRecord};

/// GenAI content that arrived as a log record, addressed to the span it belongs to. Its
/// event's attributes are the record's attributes and its body under the key `body`.
#[derive(Debug, Clone, PartialEq)]
pub struct ContentEvent {
    /// The trace of the span the content belongs to.
    pub trace_id: TraceId,
    /// The span the content belongs to, which may arrive before or after it.
    pub span_id: SpanId,
    /// The content, as an event of that span.
    pub event: Event,
}

/// A span ready to store: the span as sent, and what normalization read from it.
#[derive(Debug, Clone, PartialEq)]
pub struct NormalizedSpan {
    /// The span exactly as sent.
    pub span: Span,
    /// What normalization read from it.
    pub semantics: SpanSemantics,
    /// The span's lossless body already encoded for storage (`store::codec`), when the
    /// receiver had the CPU to spare: encoding in the receivers' threads keeps it off the
    /// embedded store's single writer. `None`: the store encodes it.
    pub encoded_body: Option<EncodedBody>,
}

/// A span's body as a store encoded it ahead of writing ([`NormalizedSpan::encoded_body`]).
#[derive(Debug, Clone, PartialEq)]
pub enum EncodedBody {
    /// The body as the store writes it, alone.
    Whole(Vec<u8>),
    /// The span's part of a block it shares with other spans of its request, compressed once
    /// for all of them: `len` bytes from `start` of the decompressed block. Spans holding the
    /// same `Arc` share one block.
    Part {
        /// The compressed block.
        block: std::sync::Arc<Vec<u8>>,
        /// Where the span's part starts in the decompressed block, in bytes.
        start: u32,
        /// The part's length in bytes.
        len: u32,
    },
}

impl NormalizedSpan {
    /// The numbers of the span's LLM call that a trace sums, if it is one.
    pub fn digest_llm(semantics: &SpanSemantics) -> Option<LlmDigest> {
        semantics.llm.as_ref().map(|llm| LlmDigest {
            model: llm.model().map(str::to_owned),
            usage: llm.usage,
            cost: llm.cost,
        })
    }
}

impl SpanDigest {
    /// The facts of a span a TraceRecord is computed from, given what normalization read.
    pub fn of(span: &Span, semantics: &SpanSemantics) -> SpanDigest {
        SpanDigest {
            span_id: Some(span.span_id),
            parent_span_id: span.parent_span_id,
            name: span.name.clone(),
            start_time_unix_nano: span.start_time_unix_nano,
            end_time_unix_nano: span.end_time_unix_nano,
            status: span.status.code,
            service_name: span.service_name().map(str::to_owned),
            input: semantics.input.clone(),
            output: semantics.output.clone(),
            session_id: semantics.session_id.clone(),
            user_id: semantics.user_id.clone(),
            pipeline_id: semantics.pipeline_id.clone(),
            llm: NormalizedSpan::digest_llm(semantics),
            tool_name: semantics.tool.as_ref().map(|tool| tool.name.clone()),
        }
    }
}
