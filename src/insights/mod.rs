//! Insights (SPEC §10): what changed between a baseline and a window, found without a query.
//!
//! One scan of each period's traces ([`TraceSource`]) aggregates every segment
//! ([`segment::Segment`]: the project, each model, pipeline, service, root span name, metadata
//! value and tag) into [`aggregate::Aggregates`]. Each segment with enough traces on both sides
//! is tested on each metric ([`Metric`]) by the test that fits it ([`stats`]): volume by Poisson
//! rates (the project) or by its share of the traffic (a segment), error rate by two
//! proportions, p95 duration, cost and tokens per trace by Mann-Whitney's rank test on their
//! distributions, score means by Welch's t test. The p-values are corrected for the number of
//! tests (Holm); a change is significant when its corrected p-value is below `alpha` *and* its
//! effect is large enough to matter (the thresholds below).
//!
//! A change in one segment shows in every segment that shares its traces: a model failing ten
//! times as often raises the project's error rate and every pipeline's that uses it. So per
//! metric the significant segment with the largest effect is kept, its traces are left out, and
//! the others are tested again without them ([`explain`]); those no longer significant were only
//! its echo. What is left is what changed.

pub mod aggregate;
mod explain;
pub mod metric;
pub mod segment;
pub mod source;
pub mod stats;
#[cfg(test)]
mod tests;

use aggregate::{Aggregates, Period};
pub use metric::Metric;
use segment::Segment;
pub use source::{StoreSource, TraceSource};

use crate::store::StoreResult;

/// Family-wise significance level by default: the chance of reporting any change at all where
/// nothing changed is at most this (before the effect-size thresholds make it smaller still).
pub const DEFAULT_ALPHA: f64 = 0.001;

/// Traces a segment needs on each side by default to be tested.
pub const DEFAULT_MIN_TRACES: u64 = 30;

/// Most scans with traces left out, per request, that explaining may take.
pub const MAX_EXPLAIN_SCANS: usize = 6;

/// Traces read per period by default: beyond it, one trace in `n` is read (the same `n` for
/// both periods), which bounds what a request costs whatever the traffic.
pub const DEFAULT_MAX_TRACES: u64 = 100_000;

/// What to compare.
#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    /// The window, `[start, end)` in nanoseconds since the Unix epoch.
    pub window: (u64, u64),
    /// The baseline, `[start, end)`; it must not overlap the window.
    pub baseline: (u64, u64),
    /// Traces (scores, for score means) a segment needs on each side to be tested.
    pub min_traces: u64,
    /// Family-wise significance level.
    pub alpha: f64,
    /// Traces read per period at most (about): beyond, a sample.
    pub max_traces: u64,
}

/// One significant change.
#[derive(Debug, Clone, PartialEq)]
pub struct Insight {
    /// What changed.
    pub metric: Metric,
    /// In which traces.
    pub segment: Segment,
    /// The metric over the baseline (for `traces`: scaled to the window's length).
    pub baseline: f64,
    /// The metric over the window.
    pub current: f64,
    /// `current / baseline − 1`; `None` when the baseline is 0.
    pub change: Option<f64>,
    /// The p-value corrected for the number of tests (Holm).
    pub p_value: f64,
    /// The test's standard normal deviate; its size orders insights.
    pub z: f64,
    /// The effect size: Cohen's h for rates and shares, the log rate ratio for the project's
    /// volume, the rank-biserial correlation for distributions, Cohen's d for score means.
    pub effect: f64,
    /// The segment's traces in the window (estimated from the sample when there is one).
    pub traces: u64,
    /// The segment's traces in the baseline (estimated from the sample when there is one).
    pub baseline_traces: u64,
}

/// What [`find`] answers.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Found {
    /// The significant changes, most significant first.
    pub insights: Vec<Insight>,
    /// Comparisons tested (what the p-values are corrected for).
    pub tests: usize,
    /// Some values were not segmented (see [`aggregate::MAX_VALUES_PER_FIELD`]).
    pub truncated: bool,
    /// Scans of the periods made, the first included.
    pub scans: usize,
    /// One trace in this many was read (1: all).
    pub sample: u64,
}

/// Aggregates both periods' traces (one in `sample`), leaving out those of `exclude`.
async fn aggregate(
    source: &dyn TraceSource,
    comparison: &Comparison,
    exclude: &[Segment],
    sample: u64,
) -> StoreResult<Aggregates> {
    let mut aggregates = Aggregates::sampled(sample);
    for (period, range) in [
        (Period::Baseline, comparison.baseline),
        (Period::Window, comparison.window),
    ] {
        source
            .scan(range, exclude, sample, &mut |trace| {
                aggregates.add(trace, period)
            })
            .await?;
    }
    Ok(aggregates)
}

/// The sample that keeps each period's scan near `max_traces`: one in `n`, the same `n` for
/// both so that their counts compare.
async fn sample_for(source: &dyn TraceSource, comparison: &Comparison) -> StoreResult<u64> {
    let mut sample = 1;
    for (start, end) in [comparison.baseline, comparison.window] {
        let count = source.count(start, end).await?;
        sample = sample.max(count.div_ceil(comparison.max_traces.max(1)));
    }
    Ok(sample)
}

/// Finds the significant changes between the comparison's baseline and window.
pub async fn find(source: &dyn TraceSource, comparison: &Comparison) -> StoreResult<Found> {
    let sample = sample_for(source, comparison).await?;
    let aggregates = aggregate(source, comparison, &[], sample).await?;
    let lengths = (
        (comparison.baseline.1 - comparison.baseline.0) as f64,
        (comparison.window.1 - comparison.window.0) as f64,
    );
    let tested = metric::test_all(&aggregates, comparison.min_traces, lengths);
    let tests = tested.len();
    let adjusted = stats::holm(
        &tested.iter().map(|test| test.p_value).collect::<Vec<_>>(),
        tests,
    );
    let significant: Vec<Insight> = tested
        .into_iter()
        .zip(adjusted)
        .filter(|(test, adjusted)| *adjusted < comparison.alpha && test.large_enough)
        .map(|(test, adjusted)| test.into_insight(adjusted))
        .collect();
    let explained =
        explain::explain(source, comparison, significant, tests, (lengths, sample)).await?;
    let mut insights = explained.insights;
    insights.sort_by(|a, b| {
        b.z.abs()
            .total_cmp(&a.z.abs())
            .then_with(|| a.p_value.total_cmp(&b.p_value))
            .then_with(|| a.metric.cmp(&b.metric))
            .then_with(|| a.segment.cmp(&b.segment))
    });
    Ok(Found {
        insights,
        tests,
        truncated: aggregates.truncated,
        scans: 1 + explained.scans,
        sample,
    })
}
