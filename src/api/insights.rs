//! `GET /api/v1/insights`: what changed between a baseline and a window (SPEC §10), found by
//! `crate::insights` over the project's traces.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use serde::{Deserialize, Serialize};

use super::query::{MAX_TIMESTAMP_NANOS, timestamp_param};
use super::{ApiError, AppState, authenticate};
use crate::auth::Access;
use crate::insights::segment::{Field, conjunction};
use crate::insights::{
    Comparison, DEFAULT_ALPHA, DEFAULT_MAX_TRACES, DEFAULT_MIN_TRACES, Insight, StoreSource, find,
};
use crate::model::time::{format_rfc3339, now_unix_nano};

const DEFAULT_WINDOW_NANOS: u64 = 24 * 3600 * 1_000_000_000;
/// The longest window or baseline: each is scanned trace by trace.
const MAX_PERIOD_NANOS: u64 = 31 * 86_400 * 1_000_000_000;
/// Fewest traces per side `min_traces` may ask for: below it the tests' normal
/// approximations do not hold.
const MIN_MIN_TRACES: u64 = 10;
/// The largest `alpha` accepted.
const MAX_ALPHA: f64 = 0.1;
/// The range of `max_traces`, the traces read per period before a sample is read instead.
const MIN_MAX_TRACES: u64 = 1_000;
const MAX_MAX_TRACES: u64 = 1_000_000;

#[derive(Debug, Deserialize)]
pub struct InsightParams {
    start: Option<String>,
    end: Option<String>,
    baseline_start: Option<String>,
    baseline_end: Option<String>,
    filter: Option<String>,
    min_traces: Option<String>,
    alpha: Option<String>,
    max_traces: Option<String>,
}

/// A period as the API shows it.
#[derive(Debug, Serialize)]
pub struct PeriodView {
    /// RFC 3339 UTC, inclusive.
    start: String,
    /// RFC 3339 UTC, exclusive.
    end: String,
}

impl PeriodView {
    fn of((start, end): (u64, u64)) -> Self {
        Self {
            start: format_rfc3339(start),
            end: format_rfc3339(end),
        }
    }
}

/// The segment of an insight: `field` as the filter language names it (`project` for the
/// whole project, whose `value` is `null`).
#[derive(Debug, Serialize)]
pub struct SegmentView {
    field: String,
    value: Option<String>,
}

/// One significant change.
#[derive(Debug, Serialize)]
pub struct InsightView {
    /// `traces`, `error_rate`, `p95_duration_ms`, `cost_per_trace`, `tokens_per_trace` or
    /// `score:<name>`.
    metric: String,
    segment: SegmentView,
    /// The metric over the baseline (`traces`: scaled to the window's length).
    baseline: f64,
    /// The metric over the window.
    current: f64,
    /// `current / baseline − 1`; `null` when the baseline is 0.
    change: Option<f64>,
    /// Holm-corrected p-value.
    p_value: f64,
    /// The test's standard normal deviate (its sign: the direction).
    z: f64,
    /// The effect size (see docs/insights.md).
    effect: f64,
    /// The segment's traces in the window.
    traces: u64,
    /// The segment's traces in the baseline.
    baseline_traces: u64,
    /// The filter (SPEC §7) that selects the segment's traces; with the window's `start` and
    /// `end`, `GET /api/v1/traces` lists them.
    filter: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct InsightsView {
    window: PeriodView,
    baseline: PeriodView,
    /// The significant changes, most significant first.
    insights: Vec<InsightView>,
    /// Comparisons tested, which the p-values are corrected for.
    tests: usize,
    /// Some values of a field were not segmented (more than 500 values, or more than 50
    /// metadata keys).
    truncated: bool,
    /// The family-wise significance level used.
    alpha: f64,
    /// Traces a segment needed on each side.
    min_traces: u64,
    /// One trace in this many was read (1: all; above 100,000 traces in a period, a sample):
    /// `traces` and `baseline_traces` are then estimates.
    sample: u64,
}

fn comparison(params: &InsightParams) -> Result<Comparison, ApiError> {
    let end = timestamp_param("end", params.end.clone())?
        .unwrap_or_else(|| now_unix_nano().min(MAX_TIMESTAMP_NANOS));
    let start = timestamp_param("start", params.start.clone())?
        .unwrap_or(end.saturating_sub(DEFAULT_WINDOW_NANOS));
    if start >= end {
        return Err(ApiError::bad_request("start must be before end"));
    }
    let baseline_end =
        timestamp_param("baseline_end", params.baseline_end.clone())?.unwrap_or(start);
    let baseline_start = timestamp_param("baseline_start", params.baseline_start.clone())?
        .unwrap_or(baseline_end.saturating_sub(end - start));
    if baseline_start >= baseline_end {
        return Err(ApiError::bad_request(
            "baseline_start must be before baseline_end",
        ));
    }
    if baseline_start < end && start < baseline_end {
        return Err(ApiError::bad_request(
            "the baseline must not overlap the window from start to end",
        ));
    }
    if end - start > MAX_PERIOD_NANOS || baseline_end - baseline_start > MAX_PERIOD_NANOS {
        return Err(ApiError::bad_request(
            "the window and the baseline must each be at most 31 days",
        ));
    }
    let min_traces = match params.min_traces.as_deref() {
        None | Some("") => DEFAULT_MIN_TRACES,
        Some(text) => text
            .parse::<u64>()
            .ok()
            .filter(|value| *value >= MIN_MIN_TRACES)
            .ok_or_else(|| {
                ApiError::bad_request(format!(
                    "min_traces must be a whole number of at least {MIN_MIN_TRACES}, got {text:?}"
                ))
            })?,
    };
    let alpha = match params.alpha.as_deref() {
        None | Some("") => DEFAULT_ALPHA,
        Some(text) => text
            .parse::<f64>()
            .ok()
            .filter(|value| *value > 0.0 && *value <= MAX_ALPHA)
            .ok_or_else(|| {
                ApiError::bad_request(format!(
                    "alpha must be a number above 0 and at most {MAX_ALPHA}, got {text:?}"
                ))
            })?,
    };
    let max_traces = match params.max_traces.as_deref() {
        None | Some("") => DEFAULT_MAX_TRACES,
        Some(text) => text
            .parse::<u64>()
            .ok()
            .filter(|value| (MIN_MAX_TRACES..=MAX_MAX_TRACES).contains(value))
            .ok_or_else(|| {
                ApiError::bad_request(format!(
                    "max_traces must be a whole number from {MIN_MAX_TRACES} to {MAX_MAX_TRACES}, \
                     got {text:?}"
                ))
            })?,
    };
    Ok(Comparison {
        window: (start, end),
        baseline: (baseline_start, baseline_end),
        min_traces,
        alpha,
        max_traces,
    })
}

fn insight_view(insight: &Insight, filter: Option<&str>) -> InsightView {
    let field = &insight.segment.field;
    InsightView {
        metric: insight.metric.to_string(),
        segment: SegmentView {
            field: field.to_string(),
            value: (*field != Field::Project).then(|| insight.segment.value.clone()),
        },
        baseline: insight.baseline,
        current: insight.current,
        change: insight.change,
        p_value: insight.p_value,
        z: insight.z,
        effect: insight.effect,
        traces: insight.traces,
        baseline_traces: insight.baseline_traces,
        filter: conjunction(
            filter
                .map(str::to_owned)
                .into_iter()
                .chain(insight.segment.condition()),
        ),
    }
}

/// `GET /api/v1/insights?start=&end=&baseline_start=&baseline_end=&filter=&min_traces=&alpha=&max_traces=`
pub async fn insights(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(params): Query<InsightParams>,
) -> Result<Json<InsightsView>, ApiError> {
    let principal = authenticate(&state, &headers, Access::Read)?;
    let comparison = comparison(&params)?;
    // Parsed here for its 400; the source parses it again with the segments it leaves out.
    super::filters::trace_filter_param(params.filter.clone())?;
    let filter = params.filter.filter(|text| !text.trim().is_empty());
    let source = StoreSource {
        store: Arc::clone(&state.store),
        project_id: principal.project.id.clone(),
        filter: filter.clone(),
    };
    let found = find(&source, &comparison).await?;
    Ok(Json(InsightsView {
        window: PeriodView::of(comparison.window),
        baseline: PeriodView::of(comparison.baseline),
        insights: found
            .insights
            .iter()
            .map(|insight| insight_view(insight, filter.as_deref()))
            .collect(),
        tests: found.tests,
        truncated: found.truncated,
        alpha: comparison.alpha,
        min_traces: comparison.min_traces,
        sample: found.sample,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> InsightParams {
        let get = |name: &str| {
            pairs
                .iter()
                .find(|(key, _)| *key == name)
                .map(|(_, value)| (*value).to_owned())
        };
        InsightParams {
            start: get("start"),
            end: get("end"),
            baseline_start: get("baseline_start"),
            baseline_end: get("baseline_end"),
            filter: get("filter"),
            min_traces: get("min_traces"),
            alpha: get("alpha"),
            max_traces: get("max_traces"),
        }
    }

    #[test]
    fn the_baseline_defaults_to_the_period_before() {
        let comparison = comparison(&params(&[
            ("start", "2026-01-02T00:00:00Z"),
            ("end", "2026-01-02T06:00:00Z"),
        ]))
        .unwrap();
        assert_eq!(comparison.baseline.1, comparison.window.0);
        assert_eq!(
            comparison.baseline.1 - comparison.baseline.0,
            comparison.window.1 - comparison.window.0
        );
        assert_eq!(comparison.alpha, DEFAULT_ALPHA);
    }

    #[test]
    fn bad_parameters_are_named() {
        for (pairs, named) in [
            (vec![("start", "yesterday")], "start"),
            (
                vec![
                    ("start", "2026-01-02T00:00:00Z"),
                    ("end", "2026-01-03T00:00:00Z"),
                    ("baseline_start", "2026-01-02T12:00:00Z"),
                    ("baseline_end", "2026-01-04T00:00:00Z"),
                ],
                "overlap",
            ),
            (vec![("min_traces", "3")], "min_traces"),
            (vec![("alpha", "0.5")], "alpha"),
            (vec![("alpha", "NaN")], "alpha"),
            (vec![("max_traces", "10")], "max_traces"),
            (
                vec![
                    ("start", "2026-01-01T00:00:00Z"),
                    ("end", "2026-03-01T00:00:00Z"),
                ],
                "31 days",
            ),
        ] {
            let error = comparison(&params(&pairs)).unwrap_err();
            assert!(
                error.message.contains(named),
                "{pairs:?}: {}",
                error.message
            );
        }
    }
}
