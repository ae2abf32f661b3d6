//! Insights' scan on ClickHouse: the window's visible trace rows that a filter matches,
//! streamed, each with its metadata and tags (one grouped read of the window's terms) and its
//! numeric scores (the project's, read once), sent in chunks.

use std::collections::HashMap;

use clickhouse::{Client, Row};
use serde::Deserialize;

use super::filter_sql::{Sql, bind, trace_split};
use super::hidden::visible_trace;
use super::read::filter_error;
use super::scores::project_numeric_scores;
use super::unavailable;
use crate::store::StoreResult;
use crate::store::insight_traces::{CHUNK, InsightSink, InsightTrace};
use crate::store::terms::TermKind;

/// How long before a trace's timestamp (its root's start) a span of it may start, and how
/// long after the window a span of its traces may still start: the terms read around it.
const SPAN_BEFORE_NANOS: u64 = 3_600_000_000_000;
const SPAN_AFTER_NANOS: u64 = 86_400_000_000_000;

/// A trace row, in the order of [`insight_rows`].
#[derive(Debug, Row, Deserialize)]
struct InsightRow {
    trace_id: String,
    timestamp_ns: u64,
    trace_status_code: i8,
    duration_ns: u64,
    total_token_count: Option<i64>,
    trace_total_cost: Option<f64>,
    models: Vec<String>,
    trace_pipeline_id: Option<String>,
    trace_service_name: Option<String>,
    root_span_name: Option<String>,
}

/// The matching traces of a window, one in `sample` by a hash of the trace id. Placeholders:
/// the sample, project, window start, window end, then `prewhere`'s, project twice
/// (deletions), then `condition`'s.
fn insight_rows(prewhere: &str, condition: &str) -> String {
    format!(
        "SELECT trace_id, timestamp_ns, trace_status_code, duration_ns, total_token_count, \
         trace_total_cost, models, trace_pipeline_id, trace_service_name, root_span_name \
         FROM traces FINAL PREWHERE cityHash64(trace_id) % ? = 0 AND project_id = ? \
         AND timestamp_ns >= ? AND timestamp_ns < ? \
         AND {prewhere} WHERE deleted = 0 AND {} AND {condition}",
        visible_trace()
    )
}

/// The metadata and tag terms of the spans that start in a range, per trace. Placeholders:
/// project, the two kinds, range start, range end.
const TRACE_LABELS: &str = "SELECT trace_id, groupArray(kind) AS kinds, groupArray(key) AS keys, groupArray(value) AS values \
     FROM span_terms PREWHERE project_id = ? AND kind IN (?, ?) AND start_ns >= ? AND start_ns < ? \
     GROUP BY trace_id";

type Labels = (Vec<(String, String)>, Vec<String>);

/// A trace's terms, in the order of [`TRACE_LABELS`].
#[derive(Debug, Row, Deserialize)]
struct LabelRow {
    trace_id: String,
    kinds: Vec<u8>,
    keys: Vec<String>,
    values: Vec<String>,
}

pub use crate::store::insight_traces::Scan;

pub async fn insight_traces(
    client: &Client,
    scan: &Scan<'_>,
    sink: &InsightSink,
) -> StoreResult<()> {
    let (project_id, (start, end)) = (scan.project_id, scan.window);
    let mut scores: HashMap<String, Vec<(String, f64)>> = HashMap::new();
    let rows = project_numeric_scores(client, project_id).await?;
    for (trace, name, value) in rows {
        scores.entry(trace).or_default().push((name, value));
    }
    let labels = labels(client, project_id, (start, end)).await?;
    let split = scan.filter.map(|filter| trace_split(project_id, filter));
    let always = Sql {
        text: "1".into(),
        params: Vec::new(),
    };
    let prewhere = split
        .as_ref()
        .and_then(|split| split.prewhere.as_ref())
        .unwrap_or(&always);
    let rest = split
        .as_ref()
        .and_then(|split| split.rest.as_ref())
        .unwrap_or(&always);
    let statement = client
        .query(&insight_rows(&prewhere.text, &rest.text))
        .bind(scan.sample.max(1))
        .bind(project_id)
        .bind(start)
        .bind(end);
    let statement = bind(statement, &prewhere.params)
        .bind(project_id)
        .bind(project_id);
    let mut cursor = bind(statement, &rest.params)
        .fetch::<InsightRow>()
        .map_err(unavailable)?;
    let mut chunk = Vec::with_capacity(CHUNK);
    while let Some(row) = cursor.next().await.map_err(filter_error)? {
        let (metadata, tags) = labels.get(&row.trace_id).cloned().unwrap_or_default();
        chunk.push(InsightTrace {
            timestamp_unix_nano: row.timestamp_ns,
            is_error: row.trace_status_code == 2,
            duration_ms: row.duration_ns as f64 / 1e6,
            total_tokens: row.total_token_count.unwrap_or(0),
            total_cost: row.trace_total_cost.unwrap_or(0.0),
            models: row.models,
            pipeline_id: row.trace_pipeline_id,
            service_name: row.trace_service_name,
            root_span_name: row.root_span_name,
            metadata,
            tags,
            scores: scores.get(&row.trace_id).cloned().unwrap_or_default(),
        });
        if chunk.len() == CHUNK && sink.send(std::mem::take(&mut chunk)).await.is_err() {
            return Ok(());
        }
    }
    if !chunk.is_empty() {
        let _ = sink.send(chunk).await;
    }
    Ok(())
}

/// The metadata and tags of the traces whose spans start around the window, by trace id
/// (a span sent twice leaves its terms twice until a merge: each is kept once).
async fn labels(
    client: &Client,
    project_id: &str,
    (start, end): (u64, u64),
) -> StoreResult<HashMap<String, Labels>> {
    let rows: Vec<LabelRow> = client
        .query(TRACE_LABELS)
        .bind(project_id)
        .bind(TermKind::Metadata.code())
        .bind(TermKind::Tag.code())
        .bind(start.saturating_sub(SPAN_BEFORE_NANOS))
        .bind(end.saturating_add(SPAN_AFTER_NANOS))
        .fetch_all()
        .await
        .map_err(unavailable)?;
    let mut labels = HashMap::with_capacity(rows.len());
    for row in rows {
        let LabelRow {
            trace_id,
            kinds,
            keys,
            values,
        } = row;
        let mut metadata: Vec<(String, String)> = Vec::new();
        let mut tags: Vec<String> = Vec::new();
        for ((kind, key), value) in kinds.into_iter().zip(keys).zip(values) {
            match TermKind::from_code(kind) {
                Some(TermKind::Metadata) => metadata.push((key, value)),
                Some(TermKind::Tag) => tags.push(value),
                _ => {}
            }
        }
        metadata.sort();
        metadata.dedup();
        tags.sort();
        tags.dedup();
        labels.insert(trace_id, (metadata, tags));
    }
    Ok(labels)
}
