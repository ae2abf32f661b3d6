//! `GET /api/v1/stats`: the dashboard's time series of a project's traces.

use axum::Json;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use serde::{Deserialize, Serialize};

use super::control::parse_bucket;
use super::query::timestamp_param;
use super::{ApiError, AppState, authenticate};
use crate::auth::Access;
use crate::model::time::{format_rfc3339, now_unix_nano};
use crate::store::StatsQuery;
use crate::store::trace_stats::StatsFigures;

const DEFAULT_WINDOW_NANOS: u64 = 24 * 3600 * 1_000_000_000;
const DEFAULT_BUCKET: &str = "1h";
const MAX_BUCKETS: u64 = 2_000;

#[derive(Debug, Deserialize)]
pub struct StatsParams {
    start: Option<String>,
    end: Option<String>,
    bucket: Option<String>,
}

/// The figures of a set of traces as the API shows them.
#[derive(Debug, Serialize, PartialEq)]
pub struct FiguresView {
    traces: u64,
    errors: u64,
    /// `errors / traces`; 0 without traces.
    error_rate: f64,
    p50_duration_ms: Option<f64>,
    p95_duration_ms: Option<f64>,
    total_tokens: i64,
    total_cost: f64,
}

impl From<&StatsFigures> for FiguresView {
    fn from(figures: &StatsFigures) -> Self {
        Self {
            traces: figures.traces,
            errors: figures.errors,
            error_rate: if figures.traces == 0 {
                0.0
            } else {
                figures.errors as f64 / figures.traces as f64
            },
            p50_duration_ms: figures.p50_ms,
            p95_duration_ms: figures.p95_ms,
            total_tokens: figures.tokens,
            total_cost: figures.cost,
        }
    }
}

#[derive(Debug, Serialize)]
pub struct BucketView {
    start: String,
    #[serde(flatten)]
    figures: FiguresView,
}

#[derive(Debug, Serialize)]
pub struct ModelView {
    model: String,
    #[serde(flatten)]
    figures: FiguresView,
}

#[derive(Debug, Serialize)]
pub struct StatsView {
    start: String,
    end: String,
    bucket_seconds: u64,
    /// Every bucket of the window, empty ones included, oldest first.
    buckets: Vec<BucketView>,
    totals: FiguresView,
    models: Vec<ModelView>,
}

/// The window of a request: buckets start on whole multiples of their width and the last one
/// holds `end`.
fn stats_query(params: StatsParams) -> Result<StatsQuery, ApiError> {
    let width = parse_bucket(Some(params.bucket.as_deref().unwrap_or(DEFAULT_BUCKET)))?;
    let end = timestamp_param("end", params.end)?.unwrap_or_else(now_unix_nano);
    let start =
        timestamp_param("start", params.start)?.unwrap_or(end.saturating_sub(DEFAULT_WINDOW_NANOS));
    if start >= end {
        return Err(ApiError::bad_request("start must be before end"));
    }
    let aligned_start = start / width * width;
    let aligned_end = end.div_ceil(width).max(1) * width;
    if (aligned_end - aligned_start) / width > MAX_BUCKETS {
        return Err(ApiError::bad_request(format!(
            "more than {MAX_BUCKETS} buckets; use a larger bucket"
        )));
    }
    Ok(StatsQuery {
        start_unix_nano: aligned_start,
        end_unix_nano: aligned_end,
        bucket_nanos: width,
    })
}

/// `GET /api/v1/stats?start=&end=&bucket=1h`
pub async fn stats(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(params): Query<StatsParams>,
) -> Result<Json<StatsView>, ApiError> {
    let principal = authenticate(&state, &headers, Access::Read)?;
    let query = stats_query(params)?;
    let stats = state
        .store
        .trace_stats(&principal.project.id, &query)
        .await?;
    let count = (query.end_unix_nano - query.start_unix_nano) / query.bucket_nanos;
    let mut filled = stats.buckets.iter().peekable();
    let empty = StatsFigures::default();
    let buckets = (0..count)
        .map(|index| {
            let figures = match filled.peek() {
                Some(bucket) if bucket.index == index => {
                    filled.next().map_or(&empty, |bucket| &bucket.figures)
                }
                _ => &empty,
            };
            BucketView {
                start: format_rfc3339(query.start_unix_nano + index * query.bucket_nanos),
                figures: figures.into(),
            }
        })
        .collect();
    Ok(Json(StatsView {
        start: format_rfc3339(query.start_unix_nano),
        end: format_rfc3339(query.end_unix_nano),
        bucket_seconds: query.bucket_nanos / 1_000_000_000,
        buckets,
        totals: (&stats.totals).into(),
        models: stats
            .models
            .iter()
            .map(|model| ModelView {
                model: model.model.clone(),
                figures: (&model.figures).into(),
            })
            .collect(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(start: &str, end: &str, bucket: &str) -> StatsParams {
        StatsParams {
            start: Some(start.into()),
            end: Some(end.into()),
            bucket: Some(bucket.into()),
        }
    }

    #[test]
    fn windows_align_to_buckets() {
        let query =
            stats_query(params("2024-05-01T12:10:00Z", "2024-05-01T14:30:00Z", "1h")).unwrap();
        assert_eq!(
            format_rfc3339(query.start_unix_nano),
            "2024-05-01T12:00:00.000000000Z"
        );
        assert_eq!(
            format_rfc3339(query.end_unix_nano),
            "2024-05-01T15:00:00.000000000Z"
        );
        assert!(stats_query(params("2024-05-02T00:00:00Z", "2024-05-01T00:00:00Z", "1h")).is_err());
        assert!(stats_query(params("2024-01-01T00:00:00Z", "2024-05-01T00:00:00Z", "1m")).is_err());
        assert!(stats_query(params("x", "2024-05-01T00:00:00Z", "1h")).is_err());
    }
}
