//! The TraceRecord of a trace from its span rows, computed in the server by
//! `TraceRecord::compute`, as the embedded store computes it: the texts it picks are inside
//! the rows' compressed bodies, which SQL cannot read.

use std::collections::HashMap;

use super::rows::{SpanRow, TraceRow};
use crate::model::{LlmDigest, SpanDigest, SpanId, StatusCode, TraceId, TraceRecord};
use crate::store::StoreError;

fn digest(row: &SpanRow) -> Result<SpanDigest, StoreError> {
    let (input, output) = row.texts()?;
    Ok(SpanDigest {
        span_id: SpanId::parse_hex(&row.span_id).ok(),
        parent_span_id: if row.parent_span_id.is_empty() {
            None
        } else {
            SpanId::parse_hex(&row.parent_span_id).ok()
        },
        name: row.name.clone(),
        start_time_unix_nano: row.start_ns,
        end_time_unix_nano: row.end_ns,
        status: StatusCode::from_otlp(i32::from(row.status_code)),
        service_name: row.service_name.clone(),
        input,
        output,
        session_id: row.session_id.clone(),
        user_id: row.user_id.clone(),
        pipeline_id: row.pipeline_id.clone(),
        llm: (row.is_llm == 1).then(|| LlmDigest {
            model: row.model.clone(),
            usage: crate::model::llm::TokenUsage {
                prompt: row.prompt_tokens,
                completion: row.completion_tokens,
                total: row.total_tokens,
            },
            cost: crate::model::llm::Cost {
                prompt: row.prompt_cost,
                completion: row.completion_cost,
                total: row.total_cost,
            },
        }),
        tool_name: row.tool_name.clone(),
    })
}

/// The row of one trace from all its spans (duplicates allowed: the newest version of a span
/// counts). Its `version` is the newest span version (`trace_rows` makes it the row's version).
pub fn trace_row(
    project_id: &str,
    trace_id: &str,
    spans: &[&SpanRow],
) -> Result<TraceRow, StoreError> {
    let mut newest: HashMap<&str, &SpanRow> = HashMap::new();
    for span in spans {
        match newest.get(span.span_id.as_str()) {
            Some(kept) if kept.version >= span.version => {}
            _ => {
                newest.insert(span.span_id.as_str(), span);
            }
        }
    }
    let mut kept: Vec<&SpanRow> = newest.into_values().collect();
    kept.sort_by(|a, b| a.span_id.cmp(&b.span_id));
    let digests: Vec<SpanDigest> = kept
        .iter()
        .map(|span| digest(span))
        .collect::<Result<_, _>>()?;
    let id =
        TraceId::parse_hex(trace_id).map_err(|error| StoreError::Corrupt(error.to_string()))?;
    let record = TraceRecord::compute(project_id, id, &digests);
    let has_root = kept.iter().any(|span| span.parent_span_id.is_empty());
    let mut tool_names = Vec::new();
    for (name, count) in &record.tool_call_name_counts {
        tool_names.extend(std::iter::repeat_n(name.clone(), *count as usize));
    }
    Ok(TraceRow {
        project_id: project_id.to_owned(),
        trace_id: trace_id.to_owned(),
        timestamp_ns: record.timestamp_unix_nano,
        trace_input: record.input,
        trace_output: record.output,
        trace_status_code: kept
            .iter()
            .filter(|span| span.parent_span_id.is_empty())
            .min_by_key(|span| (span.start_ns, span.span_id.as_str()))
            .map_or(0, |root| root.status_code),
        has_root: u8::from(has_root),
        duration_ns: (record.duration_ms * 1e6).round() as u64,
        trace_session_id: record.session_id,
        trace_user_id: record.user_id,
        trace_pipeline_id: record.pipeline_id,
        root_span_name: record.root_span_name,
        trace_service_name: record.service_name,
        span_count: record.span_count,
        models: record.models,
        prompt_token_count: record.prompt_token_count,
        completion_token_count: record.completion_token_count,
        total_token_count: record.total_token_count,
        trace_prompt_cost: record.prompt_cost,
        trace_completion_cost: record.completion_cost,
        trace_total_cost: record.total_cost,
        llm_call_count: record.llm_call_count,
        tool_call_count: record.tool_call_count,
        tool_call_error_count: record.tool_call_error_count,
        tool_names,
        version: kept.iter().map(|span| span.version).max().unwrap_or(0),
        deleted: 0,
    })
}
