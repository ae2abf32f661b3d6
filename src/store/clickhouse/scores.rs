//! Scores on ClickHouse: a ReplacingMergeTree by project and id (migration 4), so sending an id
//! again replaces its score; a deletion is a newer row marked deleted. One request's scores go
//! in one insert, which ClickHouse takes whole or not at all.

use clickhouse::{Client, Row};
use serde::{Deserialize, Serialize};

use super::hidden::{HORIZON, row_not_deleted};
use super::unavailable;
use crate::model::score::{Score, ScoreValue};
use crate::model::time::now_unix_nano;
use crate::model::{SpanId, TraceId};
use crate::store::{StoreError, StoreResult};

/// A score as stored.
#[derive(Debug, Clone, Row, Serialize, Deserialize)]
pub struct ScoreRow {
    pub project_id: String,
    pub id: String,
    pub trace_id: String,
    pub span_id: Option<String>,
    pub name: String,
    /// `numeric`, `boolean` or `categorical`.
    pub data_type: String,
    /// The number, or 1/0 for a boolean.
    pub number: Option<f64>,
    /// A categorical value.
    pub label: Option<String>,
    pub comment: Option<String>,
    pub source: String,
    pub created_at_ns: u64,
    /// The newest row of an id is the score.
    pub version: u64,
    /// 1 when the score was deleted.
    pub deleted: u8,
}

const COLUMNS: &str = "project_id, id, trace_id, span_id, name, data_type, number, label, \
    comment, source, created_at_ns, version, deleted";

/// A score that is not deleted, by id. Placeholders: project id, score id.
pub fn score_by_id() -> String {
    format!("SELECT {COLUMNS} FROM scores FINAL WHERE project_id = ? AND id = ? AND deleted = 0")
}

/// The numeric and boolean scores of the project's traces that are not deleted. Placeholders:
/// project id, four times.
pub fn numeric_scores() -> String {
    format!(
        "SELECT trace_id, name, assumeNotNull(number) AS value FROM scores FINAL \
         WHERE project_id = ? AND deleted = 0 AND isNotNull(number) AND {}",
        row_not_deleted()
    )
}

/// Where some traces are in time (their rows' timestamps), of those retention does not hide.
/// Placeholders: project id, trace ids (an array), project id.
pub fn timestamps_of_traces() -> String {
    format!(
        "SELECT trace_id, timestamp_ns FROM trace_index FINAL \
         WHERE project_id = ? AND trace_id IN (SELECT arrayJoin(?)) AND timestamp_ns >= {HORIZON}"
    )
}

/// The scores of some traces that are not deleted. Placeholders: project id, trace ids (an
/// array), project id three times.
pub fn scores_of_trace_ids() -> String {
    format!(
        "SELECT {COLUMNS} FROM scores FINAL WHERE project_id = ? \
         AND trace_id IN (SELECT arrayJoin(?)) AND deleted = 0 AND {} \
         ORDER BY trace_id, created_at_ns, id",
        row_not_deleted()
    )
}

fn row(project_id: &str, score: &Score, version: u64) -> ScoreRow {
    let (number, label) = score.value.to_columns();
    ScoreRow {
        project_id: project_id.to_owned(),
        id: score.id.clone(),
        trace_id: score.trace_id.to_hex(),
        span_id: score.span_id.map(|span| span.to_hex()),
        name: score.name.clone(),
        data_type: score.value.data_type().to_owned(),
        number,
        label: label.map(str::to_owned),
        comment: score.comment.clone(),
        source: score.source.clone(),
        created_at_ns: score.created_at_unix_nano,
        version,
        deleted: 0,
    }
}

fn score(row: ScoreRow) -> StoreResult<Score> {
    let corrupt = |what: &str| StoreError::Corrupt(format!("score: bad {what}"));
    let value = ScoreValue::from_columns(&row.data_type, row.number, row.label)
        .ok_or_else(|| corrupt("value"))?;
    Ok(Score {
        id: row.id,
        trace_id: TraceId::parse_hex(&row.trace_id).map_err(|_| corrupt("trace id"))?,
        span_id: row
            .span_id
            .map(|span| SpanId::parse_hex(&span))
            .transpose()
            .map_err(|_| corrupt("span id"))?,
        name: row.name,
        value,
        comment: row.comment,
        source: row.source,
        created_at_unix_nano: row.created_at_ns,
    })
}

pub async fn put_scores(client: &Client, project_id: &str, scores: &[Score]) -> StoreResult<()> {
    let version = now_unix_nano();
    let rows: Vec<ScoreRow> = scores
        .iter()
        .map(|score| row(project_id, score, version))
        .collect();
    super::metadata::insert(client, "scores", &rows).await
}

pub async fn delete_score(client: &Client, project_id: &str, id: &str) -> StoreResult<bool> {
    let current: Option<ScoreRow> = client
        .query(&score_by_id())
        .bind(project_id)
        .bind(id)
        .fetch_optional()
        .await
        .map_err(unavailable)?;
    let Some(mut current) = current else {
        return Ok(false);
    };
    current.version = now_unix_nano().max(current.version + 1);
    current.deleted = 1;
    super::metadata::insert(client, "scores", &[current]).await?;
    Ok(true)
}

pub async fn scores_of_traces(
    client: &Client,
    project_id: &str,
    trace_ids: &[TraceId],
) -> StoreResult<Vec<Score>> {
    if trace_ids.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<String> = trace_ids.iter().map(TraceId::to_hex).collect();
    let rows: Vec<ScoreRow> = client
        .query(&scores_of_trace_ids())
        .bind(project_id)
        .bind(&ids)
        .bind(project_id)
        .bind(project_id)
        .bind(project_id)
        .fetch_all()
        .await
        .map_err(unavailable)?;
    rows.into_iter().map(score).collect()
}

/// The project's scores (few beside its traces) first, then their traces' timestamps by id:
/// a dashboard of a project without scores costs one small query, whatever its traces.
/// Every numeric and boolean score of a project: (trace id, name, value).
pub async fn project_numeric_scores(
    client: &Client,
    project_id: &str,
) -> StoreResult<Vec<(String, String, f64)>> {
    client
        .query(&numeric_scores())
        .bind(project_id)
        .bind(project_id)
        .bind(project_id)
        .bind(project_id)
        .fetch_all()
        .await
        .map_err(unavailable)
}

pub async fn score_values(
    client: &Client,
    project_id: &str,
    start_unix_nano: u64,
    end_unix_nano: u64,
) -> StoreResult<Vec<(u64, String, f64)>> {
    let scores = project_numeric_scores(client, project_id).await?;
    let mut trace_ids: Vec<&str> = scores.iter().map(|(trace, _, _)| trace.as_str()).collect();
    trace_ids.sort_unstable();
    trace_ids.dedup();
    let mut timestamps = std::collections::HashMap::new();
    for chunk in trace_ids.chunks(super::trace_rows::TRACE_IDS_PER_QUERY) {
        let rows: Vec<(String, u64)> = client
            .query(&timestamps_of_traces())
            .bind(project_id)
            .bind(chunk)
            .bind(project_id)
            .fetch_all()
            .await
            .map_err(unavailable)?;
        timestamps.extend(rows);
    }
    Ok(scores
        .into_iter()
        .filter_map(|(trace, name, value)| {
            let timestamp = *timestamps.get(&trace)?;
            (start_unix_nano..end_unix_nano)
                .contains(&timestamp)
                .then_some((timestamp, name, value))
        })
        .collect())
}
