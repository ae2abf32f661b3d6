//! Leaves out the echoes of a change: per metric, the significant segment with the largest
//! effect is kept; the others are tested again without its traces, and stay only if they are
//! still significant (at the same corrected level, Bonferroni over the same number of tests).
//! The project itself is kept only when no segment explains its change; when it changed nearly
//! as much as its most changed segment, the change is everywhere and it alone is kept.

use std::collections::BTreeMap;

use super::metric::{Metric, test_some};
use super::segment::{Field, Segment, conjunction};
use super::{Comparison, Insight, MAX_EXPLAIN_SCANS, TraceSource, aggregate};
use crate::filter::MAX_CONDITION_LENGTH;
use crate::store::StoreResult;

/// What explaining kept, and the scans it took.
pub struct Explained {
    /// The significant changes that are not another's echo, in no order.
    pub insights: Vec<Insight>,
    /// Scans made with kept segments left out.
    pub scans: usize,
}

/// Keeps, per metric, the changes of `significant` that remain once the stronger ones' traces
/// are left out; `tests` is the number of comparisons the p-values were corrected for, and
/// `lengths` the periods' lengths (baseline, window), read one trace in `sample`.
pub async fn explain(
    source: &dyn TraceSource,
    comparison: &Comparison,
    significant: Vec<Insight>,
    tests: usize,
    (lengths, sample): ((f64, f64), u64),
) -> StoreResult<Explained> {
    let mut by_metric: BTreeMap<Metric, Vec<Insight>> = BTreeMap::new();
    for insight in significant {
        by_metric
            .entry(insight.metric.clone())
            .or_default()
            .push(insight);
    }
    let mut kept = Vec::new();
    let mut scans = 0;
    for (metric, mut candidates) in by_metric {
        let mut excluded: Vec<Segment> = Vec::new();
        while !candidates.is_empty() {
            let best = strongest(&metric, &candidates);
            let insight = candidates.swap_remove(best);
            let everywhere = insight.segment.field == Field::Project;
            excluded.push(insight.segment.clone());
            kept.push(insight);
            if everywhere || candidates.is_empty() {
                break;
            }
            let conditions = excluded.iter().filter_map(Segment::condition);
            let too_long = conjunction(conditions)
                .is_some_and(|text| text.chars().count() + 64 > MAX_CONDITION_LENGTH / 2);
            if scans >= MAX_EXPLAIN_SCANS || too_long {
                // Out of budget: what is left is reported unexplained.
                kept.append(&mut candidates);
                break;
            }
            scans += 1;
            let rest = aggregate(source, comparison, &excluded, sample).await?;
            let retested = test_some(&rest, comparison.min_traces, lengths, Some(&metric));
            candidates.retain(|candidate| {
                retested.iter().any(|test| {
                    test.segment == candidate.segment
                        && test.large_enough
                        && test.p_value * tests as f64 <= comparison.alpha
                })
            });
        }
    }
    Ok(Explained {
        insights: kept,
        scans,
    })
}

/// A change of the project at least this share of the strongest segment's effect is a change
/// everywhere rather than one segment's echo.
const BROAD: f64 = 0.8;

/// The candidate to keep next: the segment with the largest effect, unless the project changed
/// nearly as much (then the change is broad and the project is kept). For `traces` the project's
/// effect (a log ratio of rates) does not compare with a segment's (a change of share): the
/// segment goes first, and the project stays if it still changed without it.
fn strongest(metric: &Metric, candidates: &[Insight]) -> usize {
    let size = |index: usize| candidates[index].effect.abs();
    let project = candidates
        .iter()
        .position(|insight| insight.segment.field == Field::Project);
    let segment = (0..candidates.len())
        .filter(|index| Some(*index) != project)
        .max_by(|a, b| size(*a).total_cmp(&size(*b)));
    match (project, segment) {
        (Some(project), Some(segment)) => {
            if *metric != Metric::Traces && size(project) >= BROAD * size(segment) {
                project
            } else {
                segment
            }
        }
        (Some(only), None) | (None, Some(only)) => only,
        (None, None) => 0,
    }
}
