//! The three export formats (SPEC §9), one page at a time:
//!
//! - `jsonl`: one `{"trace", "spans", "scores"}` per line, the shapes of
//!   `GET /api/v1/traces/{id}`;
//! - `csv`: a header, then one row per trace: the TraceRecord's fields ([`CSV_COLUMNS`]), lists
//!   and objects (`models`, `tool_call_name_counts`, `scores`) as JSON text, absent values as
//!   empty cells; RFC 4180 (quoted where needed, CRLF line ends);
//! - `otlp`: OTLP/JSON `ExportTraceServiceRequest`s, one per line, each holding whole traces
//!   (at most [`OTLP_LINE_TRACES`] traces or, unless one trace alone is more,
//!   [`OTLP_LINE_SPANS`] spans), which `POST /v1/traces` (and `spanhouse import`) reads back.

use std::collections::HashMap;

use super::ApiError;
use super::export::ExportPage;
use super::scores::{ScoreView, ScoredTrace, with_scores};
use super::views::{SpanView, TraceView};
use crate::model::score::Score;
use crate::model::{Event, SpanId, TraceId};
use crate::otlp::export::{ExportSpan, trace_request_json};
use crate::store::StoredSpan;

/// Most traces one line of the `otlp` format holds.
pub const OTLP_LINE_TRACES: usize = 100;
/// Most spans one line of the `otlp` format holds, unless one trace alone has more.
pub const OTLP_LINE_SPANS: usize = 1_000;

/// An export format (`format=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    /// A trace per line, as `GET /api/v1/traces/{id}` shows it.
    Jsonl,
    /// A row per TraceRecord.
    Csv,
    /// OTLP/JSON export requests, a line each.
    Otlp,
}

impl ExportFormat {
    /// The `format` parameter; `jsonl` when absent.
    pub fn parse(value: Option<&str>) -> Result<Self, ApiError> {
        match value {
            None | Some("jsonl") => Ok(Self::Jsonl),
            Some("csv") => Ok(Self::Csv),
            Some("otlp") => Ok(Self::Otlp),
            Some(other) => Err(ApiError::bad_request(format!(
                "format must be jsonl, csv or otlp, got {other:?}"
            ))),
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Self::Jsonl | Self::Otlp => "application/x-ndjson",
            Self::Csv => "text/csv; charset=utf-8",
        }
    }

    pub fn content_disposition(self) -> &'static str {
        match self {
            Self::Jsonl => "attachment; filename=\"spanhouse-export.jsonl\"",
            Self::Csv => "attachment; filename=\"spanhouse-export.csv\"",
            Self::Otlp => "attachment; filename=\"spanhouse-export.otlp.jsonl\"",
        }
    }
}

/// The columns of the `csv` format: a TraceRecord's fields as the API names them, and its
/// scores (name → latest value, as JSON text).
pub const CSV_COLUMNS: &[&str] = &[
    "trace_id",
    "project",
    "timestamp",
    "input",
    "output",
    "status",
    "duration_ms",
    "session_id",
    "user_id",
    "pipeline_id",
    "root_span_name",
    "service_name",
    "span_count",
    "models",
    "prompt_token_count",
    "completion_token_count",
    "total_token_count",
    "prompt_cost",
    "completion_cost",
    "total_cost",
    "llm_call_count",
    "tool_call_count",
    "tool_call_error_count",
    "tool_call_name_counts",
    "scores",
];

/// The bytes of one page in `format`; `header`: the page is the first (CSV's header row).
pub fn render_page(format: ExportFormat, page: ExportPage, header: bool) -> Vec<u8> {
    let mut out = Vec::new();
    match format {
        ExportFormat::Jsonl => jsonl(&mut out, page),
        ExportFormat::Csv => {
            if header {
                let names: Vec<&str> = CSV_COLUMNS.to_vec();
                csv_row(&mut out, &names);
            }
            for trace in with_scores(page.page.traces, &page.scores) {
                csv_trace(&mut out, &trace);
            }
        }
        ExportFormat::Otlp => otlp(&mut out, &page),
    }
    out
}

/// Each trace's items, by trace id, in the order given.
fn by_trace<T>(items: &[T], trace_of: impl Fn(&T) -> TraceId) -> HashMap<TraceId, Vec<&T>> {
    let mut grouped: HashMap<TraceId, Vec<&T>> = HashMap::new();
    for item in items {
        grouped.entry(trace_of(item)).or_default().push(item);
    }
    grouped
}

fn jsonl(out: &mut Vec<u8>, page: ExportPage) {
    let spans = by_trace(&page.spans, |stored| stored.span.trace_id);
    let scores = by_trace(&page.scores, |score: &Score| score.trace_id);
    for trace in with_scores(page.page.traces, &page.scores) {
        let trace_id = TraceId::parse_hex(&trace.record.trace_id).ok();
        let trace_spans = trace_id.and_then(|id| spans.get(&id));
        let trace_scores = trace_id.and_then(|id| scores.get(&id));
        let view = TraceView {
            spans: trace_spans
                .into_iter()
                .flatten()
                .map(|stored| SpanView::from(*stored))
                .collect(),
            scores: trace_scores
                .into_iter()
                .flatten()
                .map(|score| ScoreView::from(*score))
                .collect(),
            trace,
        };
        // Writing JSON of owned values into a Vec cannot fail.
        if serde_json::to_writer(&mut *out, &view).is_ok() {
            out.push(b'\n');
        }
    }
}

fn otlp(out: &mut Vec<u8>, page: &ExportPage) {
    let spans = by_trace(&page.spans, |stored| stored.span.trace_id);
    let mut content: HashMap<(TraceId, SpanId), Vec<Event>> = HashMap::new();
    for event in &page.content {
        content
            .entry((event.trace_id, event.span_id))
            .or_default()
            .push(event.event.clone());
    }
    let mut line: Vec<&StoredSpan> = Vec::new();
    let mut traces_in_line = 0;
    let flush = |line: &mut Vec<&StoredSpan>, out: &mut Vec<u8>| {
        if line.is_empty() {
            return;
        }
        let exports: Vec<ExportSpan<'_>> = line
            .iter()
            .map(|stored| ExportSpan {
                span: &stored.span,
                content_events: content
                    .get(&(stored.span.trace_id, stored.span.span_id))
                    .map_or(&[], Vec::as_slice),
            })
            .collect();
        if serde_json::to_writer(&mut *out, &trace_request_json(&exports)).is_ok() {
            out.push(b'\n');
        }
        line.clear();
    };
    for trace in &page.page.traces {
        let Some(trace_spans) = TraceId::parse_hex(&trace.trace_id)
            .ok()
            .and_then(|id| spans.get(&id))
        else {
            continue;
        };
        let full = traces_in_line == OTLP_LINE_TRACES
            || (!line.is_empty() && line.len() + trace_spans.len() > OTLP_LINE_SPANS);
        if full {
            flush(&mut line, out);
            traces_in_line = 0;
        }
        line.extend(trace_spans.iter().copied());
        traces_in_line += 1;
    }
    flush(&mut line, out);
}

/// One CSV row of a trace: [`CSV_COLUMNS`] of its JSON form.
fn csv_trace(out: &mut Vec<u8>, trace: &ScoredTrace) {
    let Ok(serde_json::Value::Object(fields)) = serde_json::to_value(trace) else {
        return;
    };
    let cells: Vec<String> = CSV_COLUMNS
        .iter()
        .map(|column| match fields.get(*column) {
            None | Some(serde_json::Value::Null) => String::new(),
            Some(serde_json::Value::String(text)) => text.clone(),
            Some(other) => other.to_string(),
        })
        .collect();
    let cells: Vec<&str> = cells.iter().map(String::as_str).collect();
    csv_row(out, &cells);
}

/// One RFC 4180 record: fields separated by commas, ended by CRLF; a field holding a comma, a
/// quote, a CR or a LF (or starting or ending with a space, which some readers trim) is
/// quoted, its quotes doubled.
pub fn csv_row(out: &mut Vec<u8>, fields: &[&str]) {
    for (index, field) in fields.iter().enumerate() {
        if index > 0 {
            out.push(b',');
        }
        let needs_quotes = field.contains([',', '"', '\r', '\n'])
            || field.starts_with(' ')
            || field.ends_with(' ');
        if needs_quotes {
            out.push(b'"');
            out.extend_from_slice(field.replace('"', "\"\"").as_bytes());
            out.push(b'"');
        } else {
            out.extend_from_slice(field.as_bytes());
        }
    }
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
#[path = "export_render_tests.rs"]
mod tests;
