//! The dashboard from the rollup: the cells of the window's minutes, summed by ClickHouse per
//! minute and model, turned into figures by the same code as the embedded store's. Filtered
//! stats read the matching rows of `traces` instead.

use clickhouse::{Client, Row};
use serde::Deserialize;

use std::collections::HashMap;

use super::filter_sql::{Sql, bind, trace_condition, trace_split};
use super::queries::{matching_trace_facts, matching_trace_timestamps, rollup_cells};
use super::read::filter_error;
use super::scores::project_numeric_scores;
use super::trace_rows::TRACE_IDS_PER_QUERY;
use super::unavailable;
use crate::filter::query::TraceFilter;
use crate::store::StoreResult;
use crate::store::rollup::{RollupCell, minute_of, stats_from_cells};
use crate::store::sketch::DurationSketch;
use crate::store::trace_stats::{StatsBuilder, TraceFacts};
use crate::store::trace_stats::{StatsQuery, TraceStats};

/// One cell, in the order of `rollup_cells`.
#[derive(Debug, Row, Deserialize)]
struct CellRow {
    minute_ns: u64,
    model: String,
    traces: i64,
    errors: i64,
    tokens: i64,
    cost_nanos: i64,
    durations: (Vec<u16>, Vec<i64>),
}

pub async fn trace_stats(
    client: &Client,
    project_id: &str,
    query: &StatsQuery,
) -> StoreResult<TraceStats> {
    if let Some(filter) = query.filter.as_deref() {
        return filtered_trace_stats(client, project_id, query, filter).await;
    }
    let rows: Vec<CellRow> = client
        .query(&rollup_cells())
        .bind(project_id)
        .bind(minute_of(query.start_unix_nano))
        .bind(query.end_unix_nano)
        .bind(project_id)
        .fetch_all()
        .await
        .map_err(unavailable)?;
    let cells = rows.into_iter().map(|row| {
        let mut durations = DurationSketch::default();
        for (bin, count) in row.durations.0.into_iter().zip(row.durations.1) {
            durations.add_bin(bin, count);
        }
        let cell = RollupCell {
            traces: row.traces,
            errors: row.errors,
            tokens: row.tokens,
            cost_nanos: row.cost_nanos,
            durations,
        };
        ((row.minute_ns, row.model), cell)
    });
    Ok(stats_from_cells(query, cells))
}

/// What the dashboard counts of a matching trace, in the order of `matching_trace_facts`.
#[derive(Debug, Row, Deserialize)]
struct FactsRow {
    timestamp_ns: u64,
    trace_status_code: i8,
    duration_ns: u64,
    total_token_count: Option<i64>,
    trace_total_cost: Option<f64>,
    models: Vec<String>,
}

/// Filtered stats: the figures of the window's matching trace rows, read one at a time, as
/// `StatsBuilder` makes them of TraceRecords (the rollup knows no filters).
pub async fn filtered_trace_stats(
    client: &Client,
    project_id: &str,
    query: &StatsQuery,
    filter: &TraceFilter,
) -> StoreResult<TraceStats> {
    let split = trace_split(project_id, filter);
    let always = Sql {
        text: "1".into(),
        params: Vec::new(),
    };
    let prewhere = split.prewhere.as_ref().unwrap_or(&always);
    let rest = split.rest.as_ref().unwrap_or(&always);
    let statement = client
        .query(&matching_trace_facts(&prewhere.text, &rest.text))
        .bind(project_id)
        .bind(query.start_unix_nano)
        .bind(query.end_unix_nano);
    let statement = bind(statement, &prewhere.params)
        .bind(project_id)
        .bind(project_id);
    let mut cursor = bind(statement, &rest.params)
        .fetch::<FactsRow>()
        .map_err(unavailable)?;
    let mut builder = StatsBuilder::new(query.clone());
    while let Some(row) = cursor.next().await.map_err(filter_error)? {
        builder.add(&TraceFacts {
            timestamp_unix_nano: row.timestamp_ns,
            is_error: row.trace_status_code == 2,
            duration_ms: row.duration_ns as f64 / 1e6,
            total_tokens: row.total_token_count.unwrap_or(0),
            total_cost: row.trace_total_cost.unwrap_or(0.0),
            models: row.models,
        });
    }
    Ok(builder.finish())
}

/// The numeric and boolean scores of the window's traces that `filter` matches: the project's
/// scores first (few beside its traces), then which of their traces match.
pub async fn filtered_score_values(
    client: &Client,
    project_id: &str,
    query: &StatsQuery,
    filter: &TraceFilter,
) -> StoreResult<Vec<(u64, String, f64)>> {
    let scores = project_numeric_scores(client, project_id).await?;
    let mut trace_ids: Vec<&str> = scores.iter().map(|(trace, _, _)| trace.as_str()).collect();
    trace_ids.sort_unstable();
    trace_ids.dedup();
    let condition = trace_condition(project_id, filter);
    let sql = matching_trace_timestamps(&condition.text);
    let mut timestamps = HashMap::new();
    for chunk in trace_ids.chunks(TRACE_IDS_PER_QUERY) {
        let statement = client
            .query(&sql)
            .bind(project_id)
            .bind(query.start_unix_nano)
            .bind(query.end_unix_nano)
            .bind(project_id)
            .bind(project_id)
            .bind(chunk);
        let rows: Vec<(String, u64)> = bind(statement, &condition.params)
            .fetch_all()
            .await
            .map_err(filter_error)?;
        timestamps.extend(rows);
    }
    Ok(scores
        .into_iter()
        .filter_map(|(trace, name, value)| Some((*timestamps.get(&trace)?, name, value)))
        .collect())
}
