//! The filter language of queries (SPEC §7): the OTTL grammar of ingest filters, over
//! TraceRecords (the trace context: `GET /api/v1/traces`, `/stats`) and over stored spans (the
//! span context: `GET /api/v1/spans`), reduced to a typed [`Filter`] that each store compiles
//! to SQL with bound parameters.
//!
//! The reduction checks what SQL could not: a field compared with a value of the wrong type, a
//! field compared with a field, a function the context does not offer — each a [`ParseError`]
//! with its column. What reaches a store is a tree of `and`/`or`/`not` over [`Atom`]s, each one
//! path tested against one literal (or a regular expression).
//!
//! Semantics, as OTTL's: `==` between values of different kinds is false and `!=` true; `nil`
//! is a missing value (`user_id == nil`); ordering a missing value is false. Paths that read
//! many values (`model`, `tags`, the `span.…` paths of the trace context) are true when some
//! value makes the comparison true; there `== nil` means "no value" and `!= nil` "some value".
//! `metadata["k"]` may also hold several values (spans may disagree): `== "v"` is true when one
//! of them is `"v"`, and `!= "v"` is its negation (true when the trace has no `k`).

mod reduce;

use regex::Regex;

pub use super::parser::Comparator;
use super::{ParseError, PathContext, PathShape};

/// A scalar field of the TraceRecord.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TraceField {
    Status,
    DurationMs,
    TotalCost,
    TotalTokenCount,
    PromptTokenCount,
    CompletionTokenCount,
    LlmCallCount,
    ToolCallCount,
    ToolCallErrorCount,
    UserId,
    SessionId,
    PipelineId,
    ServiceName,
    RootSpanName,
    Input,
    Output,
    SpanCount,
}

impl TraceField {
    /// Every field, in the order the API lists them.
    pub const ALL: [TraceField; 17] = [
        Self::Status,
        Self::DurationMs,
        Self::TotalCost,
        Self::TotalTokenCount,
        Self::PromptTokenCount,
        Self::CompletionTokenCount,
        Self::LlmCallCount,
        Self::ToolCallCount,
        Self::ToolCallErrorCount,
        Self::UserId,
        Self::SessionId,
        Self::PipelineId,
        Self::ServiceName,
        Self::RootSpanName,
        Self::Input,
        Self::Output,
        Self::SpanCount,
    ];

    /// The field's name in the TraceRecord and in filters.
    pub fn name(self) -> &'static str {
        match self {
            Self::Status => "status",
            Self::DurationMs => "duration_ms",
            Self::TotalCost => "total_cost",
            Self::TotalTokenCount => "total_token_count",
            Self::PromptTokenCount => "prompt_token_count",
            Self::CompletionTokenCount => "completion_token_count",
            Self::LlmCallCount => "llm_call_count",
            Self::ToolCallCount => "tool_call_count",
            Self::ToolCallErrorCount => "tool_call_error_count",
            Self::UserId => "user_id",
            Self::SessionId => "session_id",
            Self::PipelineId => "pipeline_id",
            Self::ServiceName => "service_name",
            Self::RootSpanName => "root_span_name",
            Self::Input => "input",
            Self::Output => "output",
            Self::SpanCount => "span_count",
        }
    }

    /// What values the field holds.
    pub fn kind(self) -> ValueKind {
        match self {
            Self::Status => ValueKind::Status,
            Self::DurationMs
            | Self::LlmCallCount
            | Self::ToolCallCount
            | Self::ToolCallErrorCount
            | Self::SpanCount => ValueKind::Number,
            Self::TotalCost
            | Self::TotalTokenCount
            | Self::PromptTokenCount
            | Self::CompletionTokenCount => ValueKind::OptionalNumber,
            Self::UserId
            | Self::SessionId
            | Self::PipelineId
            | Self::ServiceName
            | Self::RootSpanName
            | Self::Input
            | Self::Output => ValueKind::Text,
        }
    }
}

/// What a path of the trace context reads.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum TracePath {
    Field(TraceField),
    /// Any model of the trace.
    Model,
    /// A key of the trace's metadata (SPEC §5 conventions); values are strings.
    Metadata(String),
    /// Any tag of the trace (`tags == "x"`, `HasTag("x")`).
    Tags,
    /// The latest score of this name on the trace.
    Score(String),
    /// An attribute of any span of the trace.
    SpanAttribute(String),
    /// A resource attribute of any span of the trace.
    SpanResourceAttribute(String),
    /// The name of any span.
    SpanName,
    /// The status (`ok`, `error`, `unset`) of any span.
    SpanStatus,
    /// The duration of any span, in milliseconds.
    SpanDurationMs,
}

/// A scalar field of a stored span.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SpanField {
    Name,
    /// `internal`, `server`, `client`, `producer`, `consumer` or `unspecified`.
    Kind,
    /// `ok`, `error` or `unset`.
    Status,
    DurationMs,
    ServiceName,
    LlmModel,
    LlmProvider,
    LlmOperation,
    LlmPromptTokens,
    LlmCompletionTokens,
    LlmCost,
}

impl SpanField {
    /// Every field, in the order the API lists them.
    pub const ALL: [SpanField; 11] = [
        Self::Name,
        Self::Kind,
        Self::Status,
        Self::DurationMs,
        Self::ServiceName,
        Self::LlmModel,
        Self::LlmProvider,
        Self::LlmOperation,
        Self::LlmPromptTokens,
        Self::LlmCompletionTokens,
        Self::LlmCost,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::Name => "name",
            Self::Kind => "kind",
            Self::Status => "status",
            Self::DurationMs => "duration_ms",
            Self::ServiceName => "service_name",
            Self::LlmModel => "llm.model",
            Self::LlmProvider => "llm.provider",
            Self::LlmOperation => "llm.operation",
            Self::LlmPromptTokens => "llm.prompt_tokens",
            Self::LlmCompletionTokens => "llm.completion_tokens",
            Self::LlmCost => "llm.cost",
        }
    }

    pub fn kind(self) -> ValueKind {
        match self {
            Self::Name => ValueKind::Text,
            Self::Kind => ValueKind::SpanKind,
            Self::Status => ValueKind::Status,
            Self::DurationMs => ValueKind::Number,
            Self::ServiceName | Self::LlmModel | Self::LlmProvider | Self::LlmOperation => {
                ValueKind::Text
            }
            Self::LlmPromptTokens | Self::LlmCompletionTokens | Self::LlmCost => {
                ValueKind::OptionalNumber
            }
        }
    }
}

/// What a path of the span context reads.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum SpanPath {
    Field(SpanField),
    Attribute(String),
    ResourceAttribute(String),
    /// The span's LLM call: only `llm == nil` and `llm != nil`.
    Llm,
}

/// Status names in OTLP code order: `STATUS_NAMES[code]`.
pub const STATUS_NAMES: [&str; 3] = ["unset", "ok", "error"];

/// Span kind names in OTLP code order: `KIND_NAMES[code]`.
pub const KIND_NAMES: [&str; 6] = [
    "unspecified",
    "internal",
    "server",
    "client",
    "producer",
    "consumer",
];

/// The OTLP code of a status or kind name: its index in `names` (0 when unknown).
pub fn code_of(names: &[&str], name: &str) -> i64 {
    names.iter().position(|known| *known == name).unwrap_or(0) as i64
}

/// What values a path holds, for the checks of the reduction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueKind {
    /// A number that is always there.
    Number,
    /// A number that may be missing.
    OptionalNumber,
    /// A string that may be missing.
    Text,
    /// `ok`, `error` or `unset` (or `STATUS_CODE_*`).
    Status,
    /// A span kind's name (or `SPAN_KIND_*`).
    SpanKind,
    /// Strings only: metadata values, tags.
    Strings,
    /// Any scalar: attributes, scores.
    Any,
    /// Only present or missing (`llm`).
    Presence,
}

/// A literal a path is compared with, after the reduction (status and kind constants are
/// names here, `"error"` or `"client"`).
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Nil,
    Bool(bool),
    Int(i64),
    Float(f64),
    Text(String),
}

impl Value {
    /// The number, for an int or a float.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Int(number) => Some(*number as f64),
            Value::Float(number) => Some(*number),
            _ => None,
        }
    }
}

/// One test of one path.
#[derive(Debug, Clone)]
pub enum Test {
    /// `path <comparator> value`.
    Compare(Comparator, Value),
    /// `IsMatch(path, "regex")`: some part of the (string) value matches.
    Matches(Regex),
}

/// A filter reduced for the stores.
#[derive(Debug, Clone)]
pub enum Filter<P> {
    /// A condition without paths, decided when it was parsed (`1 == 1`).
    Constant(bool),
    And(Vec<Filter<P>>),
    Or(Vec<Filter<P>>),
    Not(Box<Filter<P>>),
    Atom(P, Test),
}

impl<P> Filter<P> {
    /// The terms that must all hold: the members of a top-level `and`, else the filter.
    pub fn conjuncts(&self) -> Vec<&Filter<P>> {
        match self {
            Filter::And(terms) => terms.iter().flat_map(Filter::conjuncts).collect(),
            other => vec![other],
        }
    }
}

/// A filter over TraceRecords.
pub type TraceFilter = Filter<TracePath>;

/// A filter over stored spans.
pub type SpanFilter = Filter<SpanPath>;

/// Parses a filter of the trace context.
pub fn parse_trace_filter(text: &str) -> Result<TraceFilter, ParseError> {
    reduce::reduce(super::parse_in(&TraceContext, text)?)
}

/// Parses a filter of the span context.
pub fn parse_span_filter(text: &str) -> Result<SpanFilter, ParseError> {
    reduce::reduce(super::parse_in(&SpanContext, text)?)
}

/// The names of the trace context, for suggestions: fields, then the other paths.
pub fn trace_context_names() -> Vec<&'static str> {
    let mut names: Vec<&str> = TraceField::ALL.iter().map(|field| field.name()).collect();
    names.extend([
        "model",
        "metadata[\"…\"]",
        "tags",
        "scores[\"…\"]",
        "span.attributes[\"…\"]",
        "span.resource.attributes[\"…\"]",
        "span.name",
        "span.status",
        "span.duration_ms",
    ]);
    names
}

/// The names of the span context, for suggestions.
pub fn span_context_names() -> Vec<&'static str> {
    let mut names: Vec<&str> = SpanField::ALL.iter().map(|field| field.name()).collect();
    names.extend(["attributes[\"…\"]", "resource.attributes[\"…\"]", "llm"]);
    names
}

/// A path and the column where it starts, for the errors of the reduction.
#[derive(Debug, Clone)]
pub struct Located<P> {
    pub path: P,
    pub column: usize,
}

/// The paths of a query context, as the reduction needs them.
pub trait QueryPath: Sized {
    /// What values the path holds.
    fn kind(&self) -> ValueKind;

    /// The path `HasTag` reads, where the context has tags.
    fn tags() -> Option<Self> {
        None
    }
}

impl QueryPath for TracePath {
    fn kind(&self) -> ValueKind {
        match self {
            TracePath::Field(field) => field.kind(),
            TracePath::Model | TracePath::SpanName => ValueKind::Text,
            TracePath::Metadata(_) | TracePath::Tags => ValueKind::Strings,
            TracePath::Score(_)
            | TracePath::SpanAttribute(_)
            | TracePath::SpanResourceAttribute(_) => ValueKind::Any,
            TracePath::SpanStatus => ValueKind::Status,
            TracePath::SpanDurationMs => ValueKind::Number,
        }
    }

    fn tags() -> Option<Self> {
        Some(TracePath::Tags)
    }
}

impl QueryPath for SpanPath {
    fn kind(&self) -> ValueKind {
        match self {
            SpanPath::Field(field) => field.kind(),
            SpanPath::Attribute(_) | SpanPath::ResourceAttribute(_) => ValueKind::Any,
            SpanPath::Llm => ValueKind::Presence,
        }
    }
}

struct TraceContext;

impl PathContext for TraceContext {
    type Path = Located<TracePath>;

    fn resolve(
        &self,
        segments: &[String],
        keys: Vec<String>,
        column: usize,
    ) -> Result<Located<TracePath>, ParseError> {
        let path = resolve_trace_path(segments, keys, column)?;
        Ok(Located { path, column })
    }

    fn has_tag(&self) -> bool {
        true
    }
}

fn resolve_trace_path(
    segments: &[String],
    keys: Vec<String>,
    column: usize,
) -> Result<TracePath, ParseError> {
    {
        let words: Vec<&str> = segments.iter().map(String::as_str).collect();
        let shape = PathShape::new(segments, keys, column);
        if let [word] = words.as_slice()
            && let Some(field) = TraceField::ALL.iter().find(|field| field.name() == *word)
        {
            return shape.plain(TracePath::Field(*field));
        }
        match words.as_slice() {
            ["model"] => shape.plain(TracePath::Model),
            ["tags"] => shape.plain(TracePath::Tags),
            ["metadata"] => shape.one_key(TracePath::Metadata),
            ["scores"] => shape.one_key(TracePath::Score),
            ["span", "attributes"] => shape.one_key(TracePath::SpanAttribute),
            ["span", "resource", "attributes"] => shape.one_key(TracePath::SpanResourceAttribute),
            ["span", "name"] => shape.plain(TracePath::SpanName),
            ["span", "status"] | ["span", "status", "code"] => shape.plain(TracePath::SpanStatus),
            ["span", "duration_ms"] => shape.plain(TracePath::SpanDurationMs),
            ["attributes"] | ["resource", "attributes"] | ["name"] => Err(shape.error(format!(
                "{0} is a span's: write span.{0} (true when some span of the trace matches)",
                segments.join(".")
            ))),
            _ => Err(shape.error(format!(
                "unknown field {:?}; trace filters know {}",
                segments.join("."),
                trace_context_names().join(", ")
            ))),
        }
    }
}

struct SpanContext;

impl PathContext for SpanContext {
    type Path = Located<SpanPath>;

    fn resolve(
        &self,
        segments: &[String],
        keys: Vec<String>,
        column: usize,
    ) -> Result<Located<SpanPath>, ParseError> {
        let path = resolve_span_path(segments, keys, column)?;
        Ok(Located { path, column })
    }
}

fn resolve_span_path(
    segments: &[String],
    keys: Vec<String>,
    column: usize,
) -> Result<SpanPath, ParseError> {
    {
        let mut words: Vec<&str> = segments.iter().map(String::as_str).collect();
        if words.first() == Some(&"span") && words.len() > 1 {
            words.remove(0);
        }
        let joined = words.join(".");
        let shape = PathShape::new(segments, keys, column);
        if let Some(field) = SpanField::ALL.iter().find(|field| field.name() == joined) {
            return shape.plain(SpanPath::Field(*field));
        }
        match words.as_slice() {
            ["status", "code"] => shape.plain(SpanPath::Field(SpanField::Status)),
            ["llm"] => shape.plain(SpanPath::Llm),
            ["attributes"] => shape.one_key(SpanPath::Attribute),
            ["resource", "attributes"] => shape.one_key(SpanPath::ResourceAttribute),
            _ => Err(shape.error(format!(
                "unknown field {joined:?}; span filters know {}",
                span_context_names().join(", ")
            ))),
        }
    }
}

#[cfg(test)]
mod tests;
