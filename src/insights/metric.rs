//! The metrics insights test, how each is tested, and how large a change must be to matter.

use super::Insight;
use super::aggregate::{Aggregates, Pair, Side};
use super::segment::{Field, Segment};
use super::stats::{self, TestResult};
pub use crate::model::metric::Metric;

/// Smallest change of the project's traffic reported: a quarter more or less (as a log ratio).
pub const MIN_VOLUME_LOG_RATIO: f64 = 0.223;
/// Smallest change of a rate or of a segment's share of the traffic (Cohen's h; 0.2 is what
/// Cohen called small).
pub const MIN_RATE_H: f64 = 0.1;
/// Smallest shift of a distribution (rank-biserial correlation).
pub const MIN_RANK_EFFECT: f64 = 0.1;
/// Smallest relative change of a p95 or a mean per trace.
pub const MIN_RELATIVE_CHANGE: f64 = 0.1;
/// Smallest change of a score's mean (Cohen's d).
pub const MIN_SCORE_D: f64 = 0.2;
/// Errors both sides must hold together for an error rate to be tested.
pub const MIN_ERRORS: u64 = 5;

/// One segment tested on one metric.
#[derive(Debug, Clone)]
pub struct Tested {
    pub metric: Metric,
    pub segment: Segment,
    /// Uncorrected.
    pub p_value: f64,
    pub z: f64,
    pub effect: f64,
    /// The effect passes the metric's threshold.
    pub large_enough: bool,
    pub baseline: f64,
    pub current: f64,
    pub traces: u64,
    pub baseline_traces: u64,
}

impl Tested {
    /// The insight this test is, with its corrected p-value.
    pub fn into_insight(self, p_value: f64) -> Insight {
        Insight {
            change: (self.baseline != 0.0).then(|| self.current / self.baseline - 1.0),
            metric: self.metric,
            segment: self.segment,
            baseline: self.baseline,
            current: self.current,
            p_value,
            z: self.z,
            effect: self.effect,
            traces: self.traces,
            baseline_traces: self.baseline_traces,
        }
    }
}

/// `(current − baseline) / baseline` as a size; infinite from 0 to something.
fn relative(baseline: f64, current: f64) -> f64 {
    if baseline == 0.0 {
        if current == 0.0 { 0.0 } else { f64::INFINITY }
    } else {
        ((current - baseline) / baseline).abs()
    }
}

/// Every test of every segment with enough traces, over every metric (`only`: that one).
pub fn test_all(aggregates: &Aggregates, min_traces: u64, lengths: (f64, f64)) -> Vec<Tested> {
    test_some(aggregates, min_traces, lengths, None)
}

/// [`test_all`] restricted to `metric`.
pub fn test_some(
    aggregates: &Aggregates,
    min_traces: u64,
    lengths: (f64, f64),
    metric: Option<&Metric>,
) -> Vec<Tested> {
    let project = aggregates.project();
    let mut metrics: Vec<Metric> = Metric::FIXED.to_vec();
    let mut names: Vec<&String> = project
        .baseline
        .scores
        .keys()
        .chain(project.window.scores.keys())
        .collect();
    names.sort();
    names.dedup();
    metrics.extend(names.into_iter().map(|name| Metric::Score(name.clone())));
    metrics.retain(|candidate| metric.is_none_or(|only| only == candidate));
    let mut segments: Vec<(&Segment, &Pair)> = aggregates.segments.iter().collect();
    segments.sort_by(|a, b| a.0.cmp(b.0));
    let mut tested = Vec::new();
    for (segment, pair) in segments {
        if pair.baseline.traces < min_traces || pair.window.traces < min_traces {
            continue;
        }
        for metric in &metrics {
            let test = Test {
                segment,
                pair,
                project: &project,
                lengths,
                min_traces,
                sample: aggregates.sample.max(1),
            };
            tested.extend(test.run(metric));
        }
    }
    tested
}

/// One segment's figures, ready to test.
struct Test<'a> {
    segment: &'a Segment,
    pair: &'a Pair,
    project: &'a Pair,
    lengths: (f64, f64),
    min_traces: u64,
    /// One trace in this many was read: counts shown are scaled by it.
    sample: u64,
}

impl Test<'_> {
    fn run(&self, metric: &Metric) -> Option<Tested> {
        let (base, current) = (&self.pair.baseline, &self.pair.window);
        let (result, effect, large_enough, values) = match metric {
            Metric::Traces => self.volume(),
            Metric::ErrorRate => {
                if base.errors + current.errors < MIN_ERRORS {
                    return None;
                }
                let rate = |side: &Side| side.errors as f64 / side.traces as f64;
                let (b, c) = (rate(base), rate(current));
                let h = stats::cohens_h(b, c);
                let result = stats::two_proportions(
                    base.errors,
                    base.traces,
                    current.errors,
                    current.traces,
                );
                (result, h, h.abs() >= MIN_RATE_H, (b, c))
            }
            Metric::P95DurationMs => {
                let p95 = |side: &Side| side.durations.quantile(0.95).unwrap_or(0.0);
                let (b, c) = (p95(base), p95(current));
                let (result, r) =
                    stats::mann_whitney(&bins(&base.durations), &bins(&current.durations));
                let large = r.abs() >= MIN_RANK_EFFECT && relative(b, c) >= MIN_RELATIVE_CHANGE;
                (result, r, large, (b, c))
            }
            Metric::CostPerTrace | Metric::TokensPerTrace => {
                let cost = *metric == Metric::CostPerTrace;
                let ((base_bins, b), (current_bins, c)) =
                    (per_trace(base, cost), per_trace(current, cost));
                if b == 0.0 && c == 0.0 {
                    return None;
                }
                let (result, r) = stats::mann_whitney(&bins(base_bins), &bins(current_bins));
                let large = r.abs() >= MIN_RANK_EFFECT && relative(b, c) >= MIN_RELATIVE_CHANGE;
                (result, r, large, (b, c))
            }
            Metric::Score(name) => {
                let (b, c) = (base.scores.get(name)?, current.scores.get(name)?);
                if b.count < self.min_traces || c.count < self.min_traces {
                    return None;
                }
                let (result, d) = stats::welch(b, c);
                (result, d, d.abs() >= MIN_SCORE_D, (b.mean, c.mean))
            }
        };
        Some(Tested {
            metric: metric.clone(),
            segment: self.segment.clone(),
            p_value: result.p_value,
            z: result.z,
            effect,
            large_enough,
            baseline: values.0,
            current: values.1,
            traces: current.traces * self.sample,
            baseline_traces: base.traces * self.sample,
        })
    }

    /// The project's traffic by Poisson rates; a segment's by its share of the project's.
    fn volume(&self) -> (TestResult, f64, bool, (f64, f64)) {
        let (base, current) = (&self.pair.baseline, &self.pair.window);
        let (baseline_length, window_length) = self.lengths;
        let sample = self.sample as f64;
        let scaled = sample * base.traces as f64 * window_length / baseline_length;
        let values = (scaled, sample * current.traces as f64);
        if self.segment.field == Field::Project {
            let result =
                stats::poisson_rates(base.traces, baseline_length, current.traces, window_length);
            let log_ratio = (values.1 / values.0).ln();
            return (
                result,
                log_ratio,
                log_ratio.abs() >= MIN_VOLUME_LOG_RATIO,
                values,
            );
        }
        let (all_base, all_current) = (self.project.baseline.traces, self.project.window.traces);
        let result = stats::two_proportions(base.traces, all_base, current.traces, all_current);
        let h = stats::cohens_h(
            base.traces as f64 / all_base.max(1) as f64,
            current.traces as f64 / all_current.max(1) as f64,
        );
        (result, h, h.abs() >= MIN_RATE_H, values)
    }
}

/// A side's costs (`cost`) or tokens: their distribution and mean.
fn per_trace(side: &Side, cost: bool) -> (&crate::store::sketch::DurationSketch, f64) {
    if cost {
        (&side.costs, side.cost.mean)
    } else {
        (&side.tokens, side.token.mean)
    }
}

fn bins(sketch: &crate::store::sketch::DurationSketch) -> std::collections::BTreeMap<u16, i64> {
    sketch.bins().collect()
}
