//! One scan's figures: per segment, the baseline's and the window's traces, errors, the
//! distributions of duration, cost and tokens (log-scale sketches, for rank tests and p95) and
//! the moments of each score, in memory bounded by the number of segments, never by traces.

use std::collections::{BTreeMap, HashMap};

use super::segment::{Field, Segment};
use super::stats::Moments;
use crate::store::insight_traces::InsightTrace;
use crate::store::sketch::DurationSketch;

/// Most values of one field kept as segments; later values are not segmented (the answer says
/// so). Fields with this many values are identifiers rather than segments.
pub const MAX_VALUES_PER_FIELD: usize = 500;

/// Most metadata keys segmented.
pub const MAX_METADATA_KEYS: usize = 50;

/// The figures of one segment on one side of the comparison.
#[derive(Debug, Clone, Default)]
pub struct Side {
    /// Traces.
    pub traces: u64,
    /// Those whose status is `error`.
    pub errors: u64,
    /// Their durations, in milliseconds.
    pub durations: DurationSketch,
    /// Their costs, in micro-dollars.
    pub costs: DurationSketch,
    /// Their total tokens.
    pub tokens: DurationSketch,
    /// Their costs in USD.
    pub cost: Moments,
    /// Their total tokens.
    pub token: Moments,
    /// Their scores, by name.
    pub scores: BTreeMap<String, Moments>,
}

impl Side {
    fn add(&mut self, trace: &InsightTrace) {
        self.traces += 1;
        self.errors += u64::from(trace.is_error);
        self.durations.add(trace.duration_ms, 1);
        self.costs.add(trace.total_cost * 1e6, 1);
        self.tokens.add(trace.total_tokens as f64, 1);
        self.cost.add(trace.total_cost);
        self.token.add(trace.total_tokens as f64);
        for (name, value) in &trace.scores {
            if let Some(moments) = self.scores.get_mut(name) {
                moments.add(*value);
            } else {
                let mut moments = Moments::default();
                moments.add(*value);
                self.scores.insert(name.clone(), moments);
            }
        }
    }
}

/// Which side of the comparison a trace is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Period {
    Baseline,
    Window,
}

/// The baseline's and the window's figures of one segment.
#[derive(Debug, Clone, Default)]
pub struct Pair {
    pub baseline: Side,
    pub window: Side,
}

/// The figures of every segment of one scan.
#[derive(Debug, Default)]
pub struct Aggregates {
    /// By segment.
    pub segments: HashMap<Segment, Pair>,
    values: HashMap<Field, usize>,
    metadata_keys: usize,
    /// Values (or metadata keys) were left unsegmented for the caps above.
    pub truncated: bool,
    /// One trace in this many was read (1: all); counts are scaled by it where they are shown.
    pub sample: u64,
}

impl Aggregates {
    /// Empty, for a scan that reads one trace in `sample`.
    pub fn sampled(sample: u64) -> Self {
        Self {
            sample,
            ..Self::default()
        }
    }

    /// Counts a trace on its side in every segment it belongs to.
    pub fn add(&mut self, trace: &InsightTrace, period: Period) {
        for segment in Segment::all_of(trace) {
            let pair = match self.segments.get_mut(&segment) {
                Some(pair) => pair,
                None => {
                    if !self.admit(&segment.field) {
                        continue;
                    }
                    self.segments.entry(segment).or_default()
                }
            };
            match period {
                Period::Baseline => pair.baseline.add(trace),
                Period::Window => pair.window.add(trace),
            }
        }
    }

    /// Whether a new value of `field` may become a segment.
    fn admit(&mut self, field: &Field) -> bool {
        let values = match self.values.get_mut(field) {
            Some(values) => values,
            None => {
                if matches!(field, Field::Metadata(_)) {
                    if self.metadata_keys >= MAX_METADATA_KEYS {
                        self.truncated = true;
                        return false;
                    }
                    self.metadata_keys += 1;
                }
                self.values.entry(field.clone()).or_default()
            }
        };
        if *values >= MAX_VALUES_PER_FIELD {
            self.truncated = true;
            return false;
        }
        *values += 1;
        true
    }

    /// The figures of the whole project.
    pub fn project(&self) -> Pair {
        self.segments
            .get(&Segment::project())
            .cloned()
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_beyond_the_cap_are_not_segmented_but_counted_in_the_project() {
        let mut aggregates = Aggregates::default();
        for index in 0..(MAX_VALUES_PER_FIELD + 10) {
            let trace = InsightTrace {
                pipeline_id: Some(format!("p{index}")),
                total_cost: 0.5,
                scores: vec![("helpful".into(), 1.0)],
                ..Default::default()
            };
            aggregates.add(&trace, Period::Window);
        }
        assert!(aggregates.truncated);
        assert_eq!(aggregates.segments.len(), MAX_VALUES_PER_FIELD + 1);
        let project = aggregates.project();
        assert_eq!(project.window.traces, MAX_VALUES_PER_FIELD as u64 + 10);
        assert_eq!(project.baseline.traces, 0);
        assert_eq!(
            project.window.scores["helpful"].count,
            project.window.traces
        );
        assert!((project.window.cost.mean - 0.5).abs() < 1e-12);
    }
}
