//! The read path: pages of TraceRecords from the `traces` table (the keys of the page first,
//! then its rows), and a trace by id: its spans, and its record computed from them.

use std::collections::BTreeMap;

use clickhouse::Client;

use super::queries::{ListFilters, spans_of_trace, trace_keys, traces_by_keys};
use super::rows::{SpanRow, TraceRow};
use super::unavailable;
use crate::model::{SpanDigest, StatusCode, TraceId, TraceRecord};
use crate::store::{StoreError, StoreResult, StoredSpan, TraceCursor, TracePage, TraceQuery};

fn record(project_id: &str, row: TraceRow) -> TraceRecord {
    let input = row.trace_input;
    let output = row.trace_output;
    let status_code = row.trace_status_code;
    let session_id = row.trace_session_id;
    let user_id = row.trace_user_id;
    let pipeline_id = row.trace_pipeline_id;
    let service_name = row.trace_service_name;
    let prompt_cost = row.trace_prompt_cost;
    let completion_cost = row.trace_completion_cost;
    let total_cost = row.trace_total_cost;
    let mut tool_call_name_counts = BTreeMap::new();
    for name in row.tool_names {
        *tool_call_name_counts.entry(name).or_default() += 1;
    }
    TraceRecord {
        trace_id: row.trace_id,
        project: project_id.to_owned(),
        timestamp_unix_nano: row.timestamp_ns,
        input,
        output,
        status: StatusCode::from_otlp(i32::from(status_code))
            .as_str()
            .to_owned(),
        duration_ms: row.duration_ns as f64 / 1e6,
        session_id,
        user_id,
        pipeline_id,
        root_span_name: row.root_span_name,
        service_name,
        span_count: row.span_count,
        models: row.models,
        prompt_token_count: row.prompt_token_count,
        completion_token_count: row.completion_token_count,
        total_token_count: row.total_token_count,
        prompt_cost,
        completion_cost,
        total_cost,
        llm_call_count: row.llm_call_count,
        tool_call_count: row.tool_call_count,
        tool_call_error_count: row.tool_call_error_count,
        tool_call_name_counts,
    }
}

pub async fn query_traces(
    client: &Client,
    project_id: &str,
    query: &TraceQuery,
) -> StoreResult<TracePage> {
    let status = query.status.as_deref().map(|status| match status {
        "ok" => 1i8,
        "error" => 2,
        _ => 0,
    });
    let filters = ListFilters {
        cursor: query.cursor.is_some(),
        text: query.text.is_some(),
        status: status.is_some(),
        session_id: query.session_id.is_some(),
        user_id: query.user_id.is_some(),
        pipeline_id: query.pipeline_id.is_some(),
        model: query.model.is_some(),
    };
    let end = query.end_unix_nano;
    let mut statement = client
        .query(&trace_keys(&filters))
        .bind(project_id)
        .bind(query.start_unix_nano)
        .bind(end);
    if let Some(cursor) = &query.cursor {
        statement = statement
            .bind(cursor.timestamp_unix_nano)
            .bind(cursor.timestamp_unix_nano)
            .bind(cursor.trace_id.to_hex());
    }
    if let Some(text) = &query.text {
        statement = statement.bind(text).bind(text);
    }
    if let Some(status) = status {
        statement = statement.bind(status);
    }
    for value in [
        &query.session_id,
        &query.user_id,
        &query.pipeline_id,
        &query.model,
    ]
    .into_iter()
    .flatten()
    {
        statement = statement.bind(value);
    }
    let keys: Vec<(u64, String)> = statement
        .bind(query.limit as u64 + 1)
        .fetch_all()
        .await
        .map_err(unavailable)?;
    let mut traces = Vec::with_capacity(keys.len());
    if let (Some(newest), Some(oldest)) = (keys.first(), keys.last()) {
        let ids: Vec<&str> = keys.iter().map(|(_, id)| id.as_str()).collect();
        let rows: Vec<TraceRow> = client
            .query(&traces_by_keys())
            .bind(project_id)
            .bind(oldest.0)
            .bind(newest.0)
            .bind(&ids)
            .fetch_all()
            .await
            .map_err(unavailable)?;
        let mut rows: BTreeMap<(u64, String), TraceRow> = rows
            .into_iter()
            .map(|row| ((row.timestamp_ns, row.trace_id.clone()), row))
            .collect();
        for key in &keys {
            if let Some(row) = rows.remove(key) {
                traces.push(record(project_id, row));
            }
        }
    }
    let mut next_cursor = None;
    if traces.len() > query.limit {
        traces.truncate(query.limit);
        let last = traces.last().expect("limit is at least 1");
        next_cursor = Some(TraceCursor {
            timestamp_unix_nano: last.timestamp_unix_nano,
            trace_id: TraceId::parse_hex(&last.trace_id)
                .map_err(|error| StoreError::Corrupt(error.to_string()))?,
        });
    }
    Ok(TracePage {
        traces,
        next_cursor,
    })
}

pub async fn get_trace(
    client: &Client,
    project_id: &str,
    trace_id: TraceId,
) -> StoreResult<Option<(TraceRecord, Vec<StoredSpan>)>> {
    let trace_hex = trace_id.to_hex();
    let rows: Vec<SpanRow> = client
        .query(&spans_of_trace())
        .bind(project_id)
        .bind(&trace_hex)
        .fetch_all()
        .await
        .map_err(unavailable)?;
    if rows.is_empty() {
        return Ok(None);
    }
    // Each body is decompressed once: the record is computed from the decoded spans, as the
    // embedded store computes it.
    let spans = rows
        .iter()
        .map(|row| {
            let (span, semantics) = row.decode()?;
            Ok(StoredSpan { span, semantics })
        })
        .collect::<StoreResult<Vec<_>>>()?;
    let digests: Vec<SpanDigest> = spans
        .iter()
        .map(|stored| SpanDigest::of(&stored.span, &stored.semantics))
        .collect();
    let record = TraceRecord::compute(project_id, trace_id, &digests);
    Ok(Some((record, spans)))
}
