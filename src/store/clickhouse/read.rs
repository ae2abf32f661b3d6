//! The read path: pages of TraceRecords from the `traces` table (the keys of the page first,
//! then its rows), and a trace by id: its spans, and its record computed from them.

use std::collections::{BTreeMap, HashMap};

use clickhouse::Client;

use super::filter_sql::{Sql, Window, bind, span_split, trace_split};
use super::hidden;
use super::queries::{
    self, ListFilters, span_keys, spans_by_ids, spans_of_trace, trace_keys_where, traces_by_keys,
};
use super::rows::{SpanRow, TraceRow};
use super::unavailable;
use crate::model::{SpanDigest, StatusCode, TraceId, TraceRecord};
use crate::store::terms::TermKind;
use crate::store::{
    FilterKeys, MAX_FILTER_KEYS, SpanCursor, SpanPage, SpanQuery, StoreError, StoreResult,
    StoredSpan, TraceCursor, TracePage, TraceQuery,
};

/// A failed query: a regular expression ClickHouse's RE2 refuses is the filter's fault, any
/// other failure the store's.
pub(super) fn filter_error(error: clickhouse::error::Error) -> StoreError {
    let text = error.to_string();
    if text.contains("CANNOT_COMPILE_REGEXP") || text.contains("Code: 427") {
        StoreError::Conflict(format!(
            "the filter's regular expression is not one ClickHouse (RE2) reads: {text}"
        ))
    } else {
        unavailable(error)
    }
}

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
        oldest_first: query.oldest_first,
    };
    let end = query.end_unix_nano;
    let split = query
        .filter
        .as_deref()
        .map(|filter| trace_split(project_id, filter))
        .unwrap_or_default();
    let sql = trace_keys_where(
        &filters,
        split.prewhere.as_ref().map(|sql| sql.text.as_str()),
        split.rest.as_ref().map(|sql| sql.text.as_str()),
    );
    let mut statement = client
        .query(&sql)
        .bind(project_id)
        .bind(query.start_unix_nano)
        .bind(end);
    if let Some(prewhere) = &split.prewhere {
        statement = bind(statement, &prewhere.params);
    }
    statement = statement.bind(project_id).bind(project_id);
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
    if let Some(rest) = &split.rest {
        statement = bind(statement, &rest.params);
    }
    let keys: Vec<(u64, String)> = statement
        .bind(query.limit as u64 + 1)
        .fetch_all()
        .await
        .map_err(filter_error)?;
    let mut traces = Vec::with_capacity(keys.len());
    let oldest = keys.iter().map(|(timestamp, _)| *timestamp).min();
    let newest = keys.iter().map(|(timestamp, _)| *timestamp).max();
    if let (Some(oldest), Some(newest)) = (oldest, newest) {
        let ids: Vec<&str> = keys.iter().map(|(_, id)| id.as_str()).collect();
        let rows: Vec<TraceRow> = client
            .query(&traces_by_keys())
            .bind(project_id)
            .bind(oldest)
            .bind(newest)
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
    let state = hidden::trace_state_of(client, project_id, &trace_hex).await?;
    if state.hidden > 0 {
        return Ok(None);
    }
    let mut rows: Vec<SpanRow> = client
        .query(&spans_of_trace())
        .bind(project_id)
        .bind(&trace_hex)
        .fetch_all()
        .await
        .map_err(unavailable)?;
    // A trace deleted and sent again: the spans of the new one only.
    rows.retain(|row| row.version > state.deleted_at_ns);
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
    if record.timestamp_unix_nano < state.horizon_ns {
        return Ok(None);
    }
    Ok(Some((record, spans)))
}

/// A page of spans: the keys of the page from the narrow columns of the window's spans (terms
/// looked up by `filter_sql`), then the page's rows by trace id, decoded as `get_trace` does.
pub async fn query_spans(
    client: &Client,
    project_id: &str,
    query: &SpanQuery,
) -> StoreResult<SpanPage> {
    let window = Window {
        start_unix_nano: query.start_unix_nano,
        end_unix_nano: query.end_unix_nano,
    };
    let split = query
        .filter
        .as_deref()
        .map(|filter| span_split(project_id, window, filter))
        .unwrap_or_default();
    let always = Sql {
        text: "1".into(),
        params: Vec::new(),
    };
    let prewhere = split.prewhere.as_ref().unwrap_or(&always);
    let rest = split.rest.as_ref().unwrap_or(&always);
    let statement = client
        .query(&span_keys(
            query.cursor.is_some(),
            &prewhere.text,
            &rest.text,
        ))
        .bind(project_id)
        .bind(query.start_unix_nano)
        .bind(query.end_unix_nano);
    let mut statement = bind(statement, &prewhere.params)
        .bind(project_id)
        .bind(project_id)
        .bind(project_id)
        .bind(project_id);
    if let Some(cursor) = &query.cursor {
        let trace_hex = cursor.trace_id.to_hex();
        statement = statement
            .bind(cursor.start_unix_nano)
            .bind(cursor.start_unix_nano)
            .bind(&trace_hex)
            .bind(&trace_hex)
            .bind(cursor.span_id.to_hex());
    }
    let keys: Vec<(u64, String, String)> = bind(statement, &rest.params)
        .bind(query.limit as u64 + 1)
        .fetch_all()
        .await
        .map_err(filter_error)?;
    let mut trace_ids: Vec<&str> = keys.iter().map(|(_, trace, _)| trace.as_str()).collect();
    trace_ids.sort_unstable();
    trace_ids.dedup();
    let span_ids: Vec<&str> = keys.iter().map(|(_, _, span)| span.as_str()).collect();
    let mut rows: HashMap<(String, String), SpanRow> = HashMap::new();
    // A page is at most 1001 spans: one query.
    {
        let found: Vec<SpanRow> = client
            .query(&spans_by_ids())
            .bind(project_id)
            .bind(&trace_ids)
            .bind(&span_ids)
            .fetch_all()
            .await
            .map_err(unavailable)?;
        for row in found {
            let key = (row.trace_id.clone(), row.span_id.clone());
            match rows.get(&key) {
                Some(kept) if kept.version >= row.version => {}
                _ => {
                    rows.insert(key, row);
                }
            }
        }
    }
    let mut spans = Vec::with_capacity(keys.len());
    for (_, trace_id, span_id) in &keys {
        if let Some(row) = rows.remove(&(trace_id.clone(), span_id.clone())) {
            let (span, semantics) = row.decode()?;
            spans.push(StoredSpan { span, semantics });
        }
    }
    let mut next_cursor = None;
    if spans.len() > query.limit {
        spans.truncate(query.limit);
        let last = &spans.last().expect("limit is at least 1").span;
        next_cursor = Some(SpanCursor {
            start_unix_nano: last.start_time_unix_nano,
            trace_id: last.trace_id,
            span_id: last.span_id,
        });
    }
    Ok(SpanPage { spans, next_cursor })
}

/// The keys a project's filters can name: from `filter_keys` (kept at delivery) and `scores`.
pub async fn filter_keys(client: &Client, project_id: &str) -> StoreResult<FilterKeys> {
    let keys: Vec<(u8, String)> = client
        .query(&queries::filter_keys(MAX_FILTER_KEYS))
        .bind(project_id)
        .fetch_all()
        .await
        .map_err(unavailable)?;
    let scores: Vec<String> = client
        .query(&queries::score_names(MAX_FILTER_KEYS))
        .bind(project_id)
        .fetch_all()
        .await
        .map_err(unavailable)?;
    let mut found = FilterKeys {
        scores,
        ..FilterKeys::default()
    };
    for (kind, key) in keys {
        let list = match TermKind::from_code(kind) {
            Some(TermKind::Attribute) => &mut found.attributes,
            Some(TermKind::Resource) => &mut found.resource_attributes,
            Some(TermKind::Metadata) => &mut found.metadata,
            _ => continue,
        };
        list.push(key);
    }
    Ok(found)
}
