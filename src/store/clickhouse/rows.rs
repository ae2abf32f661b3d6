//! Rows as ClickHouse stores them (RowBinary, by position: field order is column order).

use clickhouse::Row;
use serde::{Deserialize, Serialize};

use crate::model::{LlmCall, Span, SpanId, TraceId};
use crate::model::{NormalizedSpan, SpanSemantics};
use crate::store::codec::{Compression, SpanColumns, decode_stored_body, encode_stored_span};
use crate::store::{StoreError, StoreResult};

#[derive(Debug, Clone, Row, Serialize, Deserialize)]
pub struct ProjectRow {
    pub id: String,
    pub name: String,
    pub created_at_ns: u64,
}

#[derive(Debug, Clone, Row, Serialize, Deserialize)]
pub struct TokenRow {
    pub id: String,
    pub project_id: String,
    pub role: String,
    pub name: Option<String>,
    /// Hex of the SHA-256 of the secret.
    pub secret_hash: String,
    pub created_at_ns: u64,
    pub revoked_at_ns: Option<u64>,
    pub version: u64,
}

#[derive(Debug, Clone, Row, Serialize, Deserialize)]
pub struct SettingsRow {
    pub project_id: String,
    pub settings: String,
    pub updated_at_ns: u64,
}

#[derive(Debug, Clone, Row, Serialize, Deserialize)]
pub struct SecretRow {
    pub name: String,
    /// Hex of the secret's bytes.
    pub value: String,
    pub created_at_ns: u64,
}

#[derive(Debug, Clone, Row, Serialize, Deserialize)]
pub struct CountRow {
    pub project_id: String,
    pub bucket_start_ns: u64,
    pub counter: String,
    pub label: String,
    pub value: u64,
}

/// One span. `version` orders rewrites of the same span (its semantics recomputed when log
/// content arrives): the highest wins.
#[derive(Debug, Clone, PartialEq, Row, Serialize, Deserialize)]
pub struct SpanRow {
    pub project_id: String,
    pub trace_id: String,
    pub span_id: String,
    pub parent_span_id: String,
    pub name: String,
    pub kind: i8,
    pub start_ns: u64,
    pub end_ns: u64,
    pub status_code: i8,
    pub service_name: Option<String>,
    /// The span and its semantics in one zstd frame (`codec::stored_span`, format 4), whose
    /// texts are then not repeated in `input`, `output`, `llm` and `tool` (left NULL). Rows
    /// written before keep the body's JSON text here and the semantics in those columns.
    #[serde(with = "serde_bytes")]
    pub body: Vec<u8>,
    pub input: Option<String>,
    pub output: Option<String>,
    pub session_id: Option<String>,
    pub user_id: Option<String>,
    pub pipeline_id: Option<String>,
    pub is_llm: u8,
    pub llm: Option<String>,
    pub model: Option<String>,
    pub prompt_tokens: Option<i64>,
    pub completion_tokens: Option<i64>,
    /// The call's total, or prompt + completion when it reports none (what a trace sums).
    pub total_tokens: Option<i64>,
    pub prompt_cost: Option<f64>,
    pub completion_cost: Option<f64>,
    /// The call's total cost, or prompt + completion cost.
    pub total_cost: Option<f64>,
    pub tool: Option<String>,
    pub tool_name: Option<String>,
    pub version: u64,
}

impl SpanRow {
    pub fn new(project_id: &str, normalized: &NormalizedSpan, version: u64) -> Self {
        let span = &normalized.span;
        let mut row = Self {
            project_id: project_id.to_owned(),
            trace_id: span.trace_id.to_hex(),
            span_id: span.span_id.to_hex(),
            parent_span_id: span
                .parent_span_id
                .map(|parent| parent.to_hex())
                .unwrap_or_default(),
            name: span.name.clone(),
            kind: span.kind.to_otlp() as i8,
            start_ns: span.start_time_unix_nano,
            end_ns: span.end_time_unix_nano,
            status_code: span.status.code.to_otlp() as i8,
            service_name: span.service_name().map(str::to_owned),
            body: Vec::new(),
            input: None,
            output: None,
            session_id: None,
            user_id: None,
            pipeline_id: None,
            is_llm: 0,
            llm: None,
            model: None,
            prompt_tokens: None,
            completion_tokens: None,
            total_tokens: None,
            prompt_cost: None,
            completion_cost: None,
            total_cost: None,
            tool: None,
            tool_name: None,
            version,
        };
        row.set_semantics(span, &normalized.semantics);
        row
    }

    /// The span and its semantics: from the body frame, or for rows written before it from the
    /// body's JSON and the columns.
    pub fn decode(&self) -> StoreResult<(Span, SpanSemantics)> {
        let (span, semantics) = decode_stored_body(&self.body)?.decode(self.columns()?)?;
        let semantics = match semantics {
            Some(semantics) => semantics,
            None => SpanSemantics {
                input: self.input.clone(),
                output: self.output.clone(),
                session_id: self.session_id.clone(),
                user_id: self.user_id.clone(),
                pipeline_id: self.pipeline_id.clone(),
                llm: self
                    .llm
                    .as_deref()
                    .map(serde_json::from_str::<LlmCall>)
                    .transpose()
                    .map_err(|error| StoreError::Corrupt(format!("llm: {error}")))?,
                tool: self
                    .tool
                    .as_deref()
                    .map(serde_json::from_str)
                    .transpose()
                    .map_err(|error| StoreError::Corrupt(format!("tool: {error}")))?,
            }
            .with_llm_texts(),
        };
        Ok((span, semantics))
    }

    /// The span's input and output texts, without decoding the rest.
    pub fn texts(&self) -> StoreResult<(Option<String>, Option<String>)> {
        if self.input.is_some() || self.output.is_some() {
            return Ok((self.input.clone(), self.output.clone()));
        }
        decode_stored_body(&self.body)?.texts()
    }

    /// The columns of the span the body leaves out.
    pub fn columns(&self) -> StoreResult<SpanColumns> {
        let corrupt = |what: &str| StoreError::Corrupt(format!("span row: bad {what}"));
        Ok(SpanColumns {
            trace_id: TraceId::parse_hex(&self.trace_id).map_err(|_| corrupt("trace_id"))?,
            span_id: SpanId::parse_hex(&self.span_id).map_err(|_| corrupt("span_id"))?,
            parent_span_id: if self.parent_span_id.is_empty() {
                None
            } else {
                Some(
                    SpanId::parse_hex(&self.parent_span_id)
                        .map_err(|_| corrupt("parent_span_id"))?,
                )
            },
            name: self.name.clone(),
            kind: i32::from(self.kind),
            start_time_unix_nano: self.start_ns,
            end_time_unix_nano: self.end_ns,
            status_code: i32::from(self.status_code),
        })
    }

    /// Writes the span and what normalization read of it: the body frame, and the columns
    /// queries filter and sum by.
    pub fn set_semantics(&mut self, span: &Span, semantics: &SpanSemantics) {
        self.body = encode_stored_span(span, semantics, Compression::Zstd);
        self.input = None;
        self.output = None;
        self.session_id = semantics.session_id.clone();
        self.user_id = semantics.user_id.clone();
        self.pipeline_id = semantics.pipeline_id.clone();
        let digest = crate::model::NormalizedSpan::digest_llm(semantics);
        self.is_llm = u8::from(semantics.llm.is_some());
        self.llm = None;
        self.model = digest.as_ref().and_then(|llm| llm.model.clone());
        self.prompt_tokens = digest.as_ref().and_then(|llm| llm.usage.prompt);
        self.completion_tokens = digest.as_ref().and_then(|llm| llm.usage.completion);
        self.total_tokens = digest.as_ref().and_then(|llm| llm.effective_total_tokens());
        self.prompt_cost = digest.as_ref().and_then(|llm| llm.cost.prompt);
        self.completion_cost = digest.as_ref().and_then(|llm| llm.cost.completion);
        self.total_cost = digest.as_ref().and_then(|llm| llm.effective_total_cost());
        self.tool = None;
        self.tool_name = semantics.tool.as_ref().map(|tool| tool.name.clone());
    }
}

#[derive(Debug, Clone, PartialEq, Row, Serialize, Deserialize)]
pub struct ContentEventRow {
    pub project_id: String,
    pub trace_id: String,
    pub span_id: String,
    pub time_ns: u64,
    pub name: String,
    /// The stored (lossless) JSON form of the attributes.
    pub attributes: String,
    pub fingerprint: String,
}

/// A TraceRecord in the `traces` table (as `trace_compute` computes it), or a
/// tombstone (`deleted` 1) hiding a version stored under an earlier timestamp.
#[derive(Debug, Clone, Default, Row, Serialize, Deserialize, PartialEq)]
pub struct TraceRow {
    pub project_id: String,
    pub trace_id: String,
    pub timestamp_ns: u64,
    pub trace_input: Option<String>,
    pub trace_output: Option<String>,
    /// OTLP status code of the root span: 0 unset, 1 ok, 2 error.
    pub trace_status_code: i8,
    pub has_root: u8,
    pub duration_ns: u64,
    pub trace_session_id: Option<String>,
    pub trace_user_id: Option<String>,
    pub trace_pipeline_id: Option<String>,
    pub root_span_name: Option<String>,
    pub trace_service_name: Option<String>,
    pub span_count: u64,
    pub models: Vec<String>,
    pub prompt_token_count: Option<i64>,
    pub completion_token_count: Option<i64>,
    pub total_token_count: Option<i64>,
    pub trace_prompt_cost: Option<f64>,
    pub trace_completion_cost: Option<f64>,
    pub trace_total_cost: Option<f64>,
    pub llm_call_count: u64,
    pub tool_call_count: u64,
    pub tool_call_error_count: u64,
    pub tool_names: Vec<String>,
    /// Grows with what the row was computed from: see `trace_rows::trace_version`.
    pub version: u64,
    /// 1 for a tombstone.
    pub deleted: u8,
}

/// A trace's entry in `trace_index`: where its row is, its version, and what the dashboard's
/// rollup counted for it.
#[derive(Debug, Clone, Default, Row, Serialize, Deserialize, PartialEq)]
pub struct TraceIndexRow {
    pub project_id: String,
    pub trace_id: String,
    pub timestamp_ns: u64,
    pub version: u64,
    pub is_error: u8,
    pub duration_ns: u64,
    pub total_tokens: i64,
    pub total_cost: f64,
    pub models: Vec<String>,
}

/// A change to one cell of `trace_rollup` (summed by the engine).
#[derive(Debug, Clone, Row, Serialize, Deserialize)]
pub struct RollupRow {
    pub project_id: String,
    pub minute_ns: u64,
    /// `""` for every trace of the minute.
    pub model: String,
    pub traces: i64,
    pub errors: i64,
    pub tokens: i64,
    pub cost_nanos: i64,
    #[serde(rename = "durationsMap.bin")]
    pub duration_bins: Vec<u16>,
    #[serde(rename = "durationsMap.count")]
    pub duration_counts: Vec<i64>,
}

/// A tombstone of a deleted trace (`deleted_traces`): the newest version of a trace's row says
/// whether the purge that removes its rows is done.
#[derive(Debug, Clone, Row, Serialize, Deserialize, PartialEq)]
pub struct DeletedTraceRow {
    pub project_id: String,
    pub trace_id: String,
    /// When the trace was deleted: spans with a lower `version` (written before) are its own.
    pub deleted_at_ns: u64,
    /// The deleted trace's index version plus one: rows of the trace computed from spans that
    /// came after the deletion get it added to their version, so they replace the deleted ones.
    pub base_version: u64,
    /// 1 once spans that came after the deletion made the id a new trace, which reads show.
    pub reborn: u8,
    /// 1 once a purge removed the deleted trace's rows.
    pub purged: u8,
    pub version: u64,
}
