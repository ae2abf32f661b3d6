//! Scores (SPEC §8): `POST /api/v1/scores` (ingest or admin token), `DELETE
//! /api/v1/scores/{id}` (admin), and the scores the trace reads show.

use std::collections::BTreeMap;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use serde::Serialize;

use super::{ApiError, AppState, authenticate};
use crate::auth::Access;
use crate::model::TraceRecord;
use crate::model::score::{Score, parse_scores};
use crate::model::time::{format_rfc3339, now_unix_nano};

/// A TraceRecord with its scores: name → the value of the latest score of that name.
#[derive(Debug, Serialize)]
pub struct ScoredTrace {
    /// The TraceRecord's fields.
    #[serde(flatten)]
    pub record: TraceRecord,
    /// Score name → the latest value given under it (`{}` when none).
    pub scores: BTreeMap<String, serde_json::Value>,
}

/// A score as `GET /api/v1/traces/{id}` lists it.
#[derive(Debug, Serialize)]
pub struct ScoreView {
    /// The score's id.
    pub id: String,
    /// What is judged.
    pub name: String,
    /// A number, a boolean or a label.
    pub value: serde_json::Value,
    /// `numeric`, `boolean` or `categorical`.
    pub data_type: &'static str,
    /// The span judged, hex; `None` for the whole trace.
    pub span_id: Option<String>,
    /// Why, in the reviewer's words.
    pub comment: Option<String>,
    /// Who gave it (`api`, `ui` …).
    pub source: String,
    /// When the server took it, RFC 3339.
    pub created_at: String,
}

impl From<&Score> for ScoreView {
    fn from(score: &Score) -> Self {
        Self {
            id: score.id.clone(),
            name: score.name.clone(),
            value: score.value.to_json(),
            data_type: score.value.data_type(),
            span_id: score.span_id.map(|span| span.to_hex()),
            comment: score.comment.clone(),
            source: score.source.clone(),
            created_at: format_rfc3339(score.created_at_unix_nano),
        }
    }
}

/// Gives each record its scores' latest values, from `scores` (each trace's oldest first).
pub fn with_scores(records: Vec<TraceRecord>, scores: &[Score]) -> Vec<ScoredTrace> {
    let mut latest: BTreeMap<String, BTreeMap<String, serde_json::Value>> = BTreeMap::new();
    for score in scores {
        latest
            .entry(score.trace_id.to_hex())
            .or_default()
            .insert(score.name.clone(), score.value.to_json());
    }
    records
        .into_iter()
        .map(|record| ScoredTrace {
            scores: latest.remove(&record.trace_id).unwrap_or_default(),
            record,
        })
        .collect()
}

/// `{"ids": [...]}`: each score's id, in the request's order.
#[derive(Debug, Serialize)]
pub struct ScoreIdsView {
    /// The client's ids, or those the server made.
    pub ids: Vec<String>,
}

fn new_score_id() -> String {
    format!("sc_{:032x}", rand::random::<u128>())
}

/// `POST /api/v1/scores`
pub async fn create(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<ScoreIdsView>, ApiError> {
    let principal = authenticate(&state, &headers, Access::Ingest)?;
    let body: serde_json::Value = serde_json::from_slice(&body)
        .map_err(|error| ApiError::bad_request(format!("the body is not JSON: {error}")))?;
    let scores = parse_scores(&body, now_unix_nano(), &mut new_score_id)
        .map_err(|error| ApiError::bad_request(error.to_string()))?;
    // The last of one id stands, as if sent one after the other.
    let mut last: BTreeMap<&str, &Score> = BTreeMap::new();
    for score in &scores {
        last.insert(score.id.as_str(), score);
    }
    let stored: Vec<Score> = last.into_values().cloned().collect();
    state
        .store
        .put_scores(&principal.project.id, stored)
        .await?;
    Ok(Json(ScoreIdsView {
        ids: scores.into_iter().map(|score| score.id).collect(),
    }))
}

/// `DELETE /api/v1/scores/{id}`
pub async fn remove(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let principal = authenticate(&state, &headers, Access::Admin)?;
    if state.store.delete_score(&principal.project.id, &id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!("score {id:?} not found")))
    }
}
