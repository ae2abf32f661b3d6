//! The dashboard's rollup: per project, minute (of the trace timestamp) and model, the count of
//! traces and errors, the sums of tokens and cost, and a [`DurationSketch`] of durations.
//!
//! Both backends keep these cells beside their trace rows and change them whenever a trace row
//! changes: the old row's contribution is retracted and the new one's added
//! ([`RollupDeltas`]), so a late span that moves a trace to another minute moves it in the
//! rollup too. Counts and sums are exact (cost in whole nano-dollars, so sums do not depend on
//! the order they are added in); percentiles are read from the sketches within
//! [`crate::store::sketch::RELATIVE_ACCURACY`].

use std::collections::HashMap;

use crate::store::sketch::DurationSketch;
use crate::store::trace_stats::{
    ModelStats, StatsBucket, StatsFigures, StatsQuery, TraceFacts, TraceStats,
};

/// A minute in nanoseconds: the rollup's resolution.
pub const MINUTE_NANOS: u64 = 60_000_000_000;

/// The start of the minute holding `timestamp_unix_nano`.
pub fn minute_of(timestamp_unix_nano: u64) -> u64 {
    timestamp_unix_nano - timestamp_unix_nano % MINUTE_NANOS
}

/// A cost in USD as the whole nano-dollars the rollup sums.
pub fn cost_nanos(cost_usd: f64) -> i64 {
    if cost_usd.is_finite() {
        (cost_usd * 1e9).round() as i64
    } else {
        0
    }
}

/// The figures of one rollup cell, or of a delta to one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RollupCell {
    /// Traces counted.
    pub traces: i64,
    /// Those whose status is `error`.
    pub errors: i64,
    /// Sum of their total tokens.
    pub tokens: i64,
    /// Sum of their total cost, in nano-dollars (1e-9 USD).
    pub cost_nanos: i64,
    /// Their durations.
    pub durations: DurationSketch,
}

impl RollupCell {
    /// Adds (`sign` 1) or retracts (`sign` -1) one trace.
    pub fn add_trace(&mut self, facts: &TraceFacts, sign: i64) {
        self.traces += sign;
        self.errors += sign * i64::from(facts.is_error);
        self.tokens += sign * facts.total_tokens;
        self.cost_nanos += sign * cost_nanos(facts.total_cost);
        self.durations.add(facts.duration_ms, sign);
    }

    /// Adds another cell (or delta).
    pub fn merge(&mut self, other: &RollupCell) {
        self.traces += other.traces;
        self.errors += other.errors;
        self.tokens += other.tokens;
        self.cost_nanos += other.cost_nanos;
        self.durations.merge(&other.durations);
    }

    /// Whether the cell counts nothing (a delta that changes nothing).
    pub fn is_zero(&self) -> bool {
        self.traces == 0
            && self.errors == 0
            && self.tokens == 0
            && self.cost_nanos == 0
            && self.durations.is_empty()
    }

    /// The dashboard's figures of the cell.
    pub fn figures(&self) -> StatsFigures {
        StatsFigures {
            traces: self.traces.max(0) as u64,
            errors: self.errors.max(0) as u64,
            p50_ms: self.durations.quantile(0.5),
            p95_ms: self.durations.quantile(0.95),
            tokens: self.tokens,
            cost: self.cost_nanos as f64 / 1e9,
        }
    }
}

/// A cell's key: the start of its minute, and the model (`""`: every trace of the minute).
pub type RollupKey = (u64, String);

/// The changes to the rollup of a set of trace rows being written.
#[derive(Debug, Default)]
pub struct RollupDeltas {
    cells: HashMap<RollupKey, RollupCell>,
}

impl RollupDeltas {
    /// Counts a trace row that is being stored.
    pub fn add(&mut self, facts: &TraceFacts) {
        self.apply(facts, 1);
    }

    /// Takes back a trace row that is being replaced.
    pub fn retract(&mut self, facts: &TraceFacts) {
        self.apply(facts, -1);
    }

    fn apply(&mut self, facts: &TraceFacts, sign: i64) {
        let minute = minute_of(facts.timestamp_unix_nano);
        self.cell(minute, "").add_trace(facts, sign);
        let mut models: Vec<&str> = facts.models.iter().map(String::as_str).collect();
        models.sort_unstable();
        models.dedup();
        for model in models {
            self.cell(minute, model).add_trace(facts, sign);
        }
    }

    fn cell(&mut self, minute: u64, model: &str) -> &mut RollupCell {
        self.cells.entry((minute, model.to_owned())).or_default()
    }

    /// Whether there is nothing to change.
    pub fn is_empty(&self) -> bool {
        self.cells.values().all(RollupCell::is_zero)
    }

    /// The cells that change, in key order; deltas that cancel out are left out.
    pub fn into_cells(self) -> Vec<(RollupKey, RollupCell)> {
        let mut cells: Vec<(RollupKey, RollupCell)> = self
            .cells
            .into_iter()
            .filter(|(_, cell)| !cell.is_zero())
            .collect();
        cells.sort_by(|a, b| a.0.cmp(&b.0));
        cells
    }
}

/// The dashboard of a window from the rollup cells of its minutes: cells outside the window
/// are ignored; a window that does not start or end on a minute counts the whole minutes it
/// touches from its start.
pub fn stats_from_cells(
    query: &StatsQuery,
    cells: impl IntoIterator<Item = (RollupKey, RollupCell)>,
) -> TraceStats {
    let first_minute = minute_of(query.start_unix_nano);
    let mut buckets: std::collections::BTreeMap<u64, RollupCell> = Default::default();
    let mut totals = RollupCell::default();
    let mut models: HashMap<String, RollupCell> = HashMap::new();
    for ((minute, model), cell) in cells {
        if minute < first_minute || minute >= query.end_unix_nano {
            continue;
        }
        if model.is_empty() {
            let bucket = query.bucket_of(minute.max(query.start_unix_nano));
            buckets.entry(bucket).or_default().merge(&cell);
            totals.merge(&cell);
        } else {
            models.entry(model).or_default().merge(&cell);
        }
    }
    let mut models: Vec<ModelStats> = models
        .into_iter()
        .filter(|(_, cell)| cell.traces > 0)
        .map(|(model, cell)| ModelStats {
            model,
            figures: cell.figures(),
        })
        .collect();
    models.sort_by(|a, b| {
        b.figures
            .traces
            .cmp(&a.figures.traces)
            .then_with(|| a.model.cmp(&b.model))
    });
    TraceStats {
        buckets: buckets
            .into_iter()
            .filter(|(_, cell)| cell.traces > 0)
            .map(|(index, cell)| StatsBucket {
                index,
                figures: cell.figures(),
            })
            .collect(),
        totals: totals.figures(),
        models,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(timestamp: u64, duration_ms: f64, models: &[&str]) -> TraceFacts {
        TraceFacts {
            timestamp_unix_nano: timestamp,
            duration_ms,
            total_tokens: 10,
            total_cost: 0.1,
            models: models.iter().map(|model| (*model).to_owned()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn a_moved_trace_leaves_its_old_minute() {
        let before = facts(MINUTE_NANOS + 5, 3.0, &["a"]);
        let after = facts(5, 4.0, &["a", "b"]);
        let mut deltas = RollupDeltas::default();
        deltas.add(&before);
        let stored = deltas.into_cells();
        let mut change = RollupDeltas::default();
        change.retract(&before);
        change.add(&after);
        let mut cells: HashMap<RollupKey, RollupCell> = stored.into_iter().collect();
        for (key, delta) in change.into_cells() {
            cells.entry(key).or_default().merge(&delta);
        }
        cells.retain(|_, cell| !cell.is_zero());
        let keys: Vec<&RollupKey> = {
            let mut keys: Vec<&RollupKey> = cells.keys().collect();
            keys.sort();
            keys
        };
        assert_eq!(
            keys,
            [
                &(0, String::new()),
                &(0, "a".to_owned()),
                &(0, "b".to_owned())
            ]
        );
        assert_eq!(cells[&(0, String::new())].cost_nanos, 100_000_000);
    }

    #[test]
    fn cost_sums_do_not_depend_on_order() {
        let mut one = RollupCell::default();
        let mut two = RollupCell::default();
        let costs = [0.1, 0.2, 0.3, 1e-7];
        for cost in costs {
            one.add_trace(
                &TraceFacts {
                    total_cost: cost,
                    ..Default::default()
                },
                1,
            );
        }
        for cost in costs.iter().rev() {
            two.add_trace(
                &TraceFacts {
                    total_cost: *cost,
                    ..Default::default()
                },
                1,
            );
        }
        assert_eq!(one, two);
        assert_eq!(one.figures().cost, 0.6000001);
    }
}
