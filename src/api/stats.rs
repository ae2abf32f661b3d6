//! `GET /api/v1/stats`: the dashboard's time series of a project's traces.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use serde::{Deserialize, Serialize};

use super::control::parse_bucket;
use super::query::{MAX_TIMESTAMP_NANOS, timestamp_param};
use super::{ApiError, AppState, authenticate};
use crate::auth::Access;
use crate::model::time::{format_rfc3339, now_unix_nano};
use crate::store::trace_stats::StatsFigures;
use crate::store::{StatsQuery, TraceStats};

const DEFAULT_WINDOW_NANOS: u64 = 24 * 3600 * 1_000_000_000;
const DEFAULT_BUCKET: &str = "1h";
const MAX_BUCKETS: u64 = 2_000;
/// The longest window: a year and a day. Both stores read a rollup cell per minute and model
/// of the window, so its length, not only its bucket count, is what a request costs.
const MAX_WINDOW_NANOS: u64 = 366 * 86_400 * 1_000_000_000;

#[derive(Debug, Deserialize)]
pub struct StatsParams {
    start: Option<String>,
    end: Option<String>,
    bucket: Option<String>,
    filter: Option<String>,
}

/// The figures of a set of traces as the API shows them.
#[derive(Debug, Serialize, PartialEq)]
pub struct FiguresView {
    /// Traces counted, by their timestamp.
    traces: u64,
    /// Those whose status is `error`.
    errors: u64,
    /// `errors / traces`; 0 without traces.
    error_rate: f64,
    /// Median of the traces' `duration_ms`, in milliseconds (nearest rank, within 1 %); `None` without
    /// traces.
    p50_duration_ms: Option<f64>,
    /// 95th percentile of the traces' `duration_ms`, in milliseconds (nearest rank, within
    /// 1 %); `None`
    /// without traces.
    p95_duration_ms: Option<f64>,
    /// Sum of the traces' `total_token_count`, in tokens.
    total_tokens: i64,
    /// Sum of the traces' `total_cost`, in USD.
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

/// One time bucket of the window and the figures of its traces.
#[derive(Debug, Serialize)]
pub struct BucketView {
    /// Where the bucket starts, RFC 3339 UTC with nanoseconds; it ends where the next starts.
    start: String,
    /// The figures of its traces, in the bucket's own object.
    #[serde(flatten)]
    figures: FiguresView,
    /// Per score name, the numeric and boolean scores of its traces.
    scores: BTreeMap<String, ScoreMeanView>,
}

/// The scores of one name over a set of traces: how many, and their mean (true = 1).
#[derive(Debug, Serialize, Default, Clone, Copy, PartialEq)]
pub struct ScoreMeanView {
    /// Scores counted.
    count: u64,
    /// Their mean.
    mean: f64,
}

/// The figures of every trace of the window, and their scores.
#[derive(Debug, Serialize)]
pub struct TotalsView {
    /// The figures, in the totals' own object.
    #[serde(flatten)]
    figures: FiguresView,
    /// Per score name, the numeric and boolean scores of the window's traces.
    scores: BTreeMap<String, ScoreMeanView>,
}

/// Counts and sums per score name, made means.
fn score_means(sums: &BTreeMap<String, (u64, f64)>) -> BTreeMap<String, ScoreMeanView> {
    sums.iter()
        .map(|(name, (count, sum))| {
            (
                name.clone(),
                ScoreMeanView {
                    count: *count,
                    mean: sum / *count as f64,
                },
            )
        })
        .collect()
}

/// One model and the figures of the traces that used it.
#[derive(Debug, Serialize)]
pub struct ModelView {
    /// The model's name (response model, else request model).
    model: String,
    /// The figures of the traces that used it, in the model's object.
    #[serde(flatten)]
    figures: FiguresView,
}

/// `GET /api/v1/stats`: the dashboard's figures of a window.
#[derive(Debug, Serialize)]
pub struct StatsView {
    /// The window's start, widened down to a whole bucket; RFC 3339.
    start: String,
    /// The window's end (exclusive), widened up to a whole bucket; RFC 3339.
    end: String,
    /// The width of a bucket, in seconds.
    bucket_seconds: u64,
    /// Every bucket of the window, empty ones included, oldest first.
    buckets: Vec<BucketView>,
    /// The figures of every trace of the window.
    totals: TotalsView,
    /// The figures per model, most traces first; a trace counts for every model it used,
    /// so the rows may add up to more than the totals.
    models: Vec<ModelView>,
}

/// The window of a request: buckets start on whole multiples of their width and the last one
/// holds `end`. `start` and `end` are at most [`MAX_TIMESTAMP_NANOS`] and the width at most
/// `MAX_BUCKET_NANOS`, so widening `end` to a whole bucket cannot overflow; it is checked anyway.
fn stats_query(params: StatsParams) -> Result<StatsQuery, ApiError> {
    let width = parse_bucket(Some(params.bucket.as_deref().unwrap_or(DEFAULT_BUCKET)))?;
    let end = timestamp_param("end", params.end)?
        .unwrap_or_else(|| now_unix_nano().min(MAX_TIMESTAMP_NANOS));
    let start =
        timestamp_param("start", params.start)?.unwrap_or(end.saturating_sub(DEFAULT_WINDOW_NANOS));
    if start >= end {
        return Err(ApiError::bad_request("start must be before end"));
    }
    if end - start > MAX_WINDOW_NANOS {
        return Err(ApiError::bad_request(
            "the window from start to end must be at most 366 days",
        ));
    }
    let aligned_start = start / width * width;
    let aligned_end = end
        .div_ceil(width)
        .max(1)
        .checked_mul(width)
        .ok_or_else(|| ApiError::bad_request("end is too late for a whole bucket"))?;
    if (aligned_end - aligned_start) / width > MAX_BUCKETS {
        return Err(ApiError::bad_request(format!(
            "bucket: more than {MAX_BUCKETS} buckets in the window; use a larger bucket"
        )));
    }
    Ok(StatsQuery {
        start_unix_nano: aligned_start,
        end_unix_nano: aligned_end,
        bucket_nanos: width,
        filter: super::filters::trace_filter_param(params.filter)?,
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
    let scores = state
        .store
        .score_values_matching(&principal.project.id, &query)
        .await?;
    Ok(Json(stats_view(&query, &stats, &scores)))
}

/// The answer for a window's figures: every bucket listed, empty ones with zeros.
/// `scores`: (trace timestamp, score name, value) of the window's numeric and boolean scores.
pub fn stats_view(
    query: &StatsQuery,
    stats: &TraceStats,
    scores: &[(u64, String, f64)],
) -> StatsView {
    let mut bucket_sums: BTreeMap<u64, BTreeMap<String, (u64, f64)>> = BTreeMap::new();
    let mut total_sums: BTreeMap<String, (u64, f64)> = BTreeMap::new();
    for (timestamp, name, value) in scores {
        if *timestamp < query.start_unix_nano || *timestamp >= query.end_unix_nano {
            continue;
        }
        for sums in [
            bucket_sums.entry(query.bucket_of(*timestamp)).or_default(),
            &mut total_sums,
        ] {
            let entry = sums.entry(name.clone()).or_default();
            entry.0 += 1;
            entry.1 += value;
        }
    }
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
                scores: bucket_sums.get(&index).map(score_means).unwrap_or_default(),
            }
        })
        .collect();
    StatsView {
        start: format_rfc3339(query.start_unix_nano),
        end: format_rfc3339(query.end_unix_nano),
        bucket_seconds: query.bucket_nanos / 1_000_000_000,
        buckets,
        totals: TotalsView {
            figures: (&stats.totals).into(),
            scores: score_means(&total_sums),
        },
        models: stats
            .models
            .iter()
            .map(|model| ModelView {
                model: model.model.clone(),
                figures: (&model.figures).into(),
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::StatusCode;
    use proptest::prelude::*;

    fn params(start: &str, end: &str, bucket: &str) -> StatsParams {
        StatsParams {
            start: Some(start.into()),
            end: Some(end.into()),
            bucket: Some(bucket.into()),
            filter: None,
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

    #[test]
    fn windows_and_buckets_are_bounded() {
        for (start, end, bucket, named) in [
            (
                "2024-01-01T00:00:00Z",
                "2025-06-01T00:00:00Z",
                "1d",
                "window",
            ),
            (
                "2024-05-01T00:00:00Z",
                "2024-05-02T00:00:00Z",
                "5é",
                "bucket",
            ),
            (
                "2024-05-01T00:00:00Z",
                "2024-05-02T00:00:00Z",
                "2161727821137838080s",
                "bucket",
            ),
            ("2262-04-01T00:00:00Z", "2262-04-12T00:00:00Z", "1d", "end"),
        ] {
            let error = stats_query(params(start, end, bucket)).unwrap_err();
            assert_eq!(error.status, StatusCode::BAD_REQUEST);
            assert!(error.message.contains(named), "{bucket}: {}", error.message);
        }
        let last_day = stats_query(params("2262-04-10T00:00:00Z", "2262-04-11T23:47:16Z", "1d"));
        assert!(last_day.unwrap().end_unix_nano > MAX_TIMESTAMP_NANOS);
    }

    proptest! {
        #![proptest_config(crate::test_support::bounded_cases())]

        /// Any window and bucket, as numbers near the bounds, is a bounded query or a 400.
        #[test]
        fn windows_are_bounded_or_refused(
            start in prop_oneof![0..=MAX_TIMESTAMP_NANOS, Just(MAX_TIMESTAMP_NANOS)],
            length in prop_oneof![0..=2 * MAX_WINDOW_NANOS, any::<u64>()],
            bucket in "[0-9]{1,20}[smhd]",
        ) {
            let end = start.saturating_add(length).min(MAX_TIMESTAMP_NANOS);
            let query = stats_query(StatsParams {
                start: Some(format_rfc3339(start)),
                end: Some(format_rfc3339(end)),
                bucket: Some(bucket),
                filter: None,
            });
            check(query)?;
        }

        /// Arbitrary text in every parameter is a bounded query or a 400.
        #[test]
        fn arbitrary_parameters_are_bounded_or_refused(
            start in proptest::option::of(any::<String>()),
            end in proptest::option::of(any::<String>()),
            bucket in proptest::option::of(any::<String>()),
            filter in proptest::option::of(any::<String>()),
        ) {
            check(stats_query(StatsParams { start, end, bucket, filter }))?;
        }
    }

    fn check(query: Result<StatsQuery, ApiError>) -> Result<(), TestCaseError> {
        match query {
            Ok(query) => {
                prop_assert!(query.start_unix_nano < query.end_unix_nano);
                prop_assert_eq!(query.start_unix_nano % query.bucket_nanos, 0);
                prop_assert_eq!(query.end_unix_nano % query.bucket_nanos, 0);
                let buckets = (query.end_unix_nano - query.start_unix_nano) / query.bucket_nanos;
                prop_assert!((1..=MAX_BUCKETS).contains(&buckets));
            }
            Err(error) => prop_assert_eq!(error.status, StatusCode::BAD_REQUEST),
        }
        Ok(())
    }
}
