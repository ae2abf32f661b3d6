//! The dashboard's aggregation of TraceRecords: per time bucket and per model, over a window.
//!
//! Both backends answer from their rollups ([`crate::store::rollup`]); [`StatsBuilder`] computes
//! the same figures from TraceRecords, the recomputation tests compare the rollups with.

use crate::store::rollup::{RollupDeltas, stats_from_cells};

/// What the dashboard asks for: traces with a timestamp in `[start, end)`, in buckets of
/// `bucket_nanos` starting at `start`.
#[derive(Debug, Clone, Default)]
pub struct StatsQuery {
    /// Start of the window (inclusive), in nanoseconds since the Unix epoch.
    pub start_unix_nano: u64,
    /// End of the window (exclusive), in nanoseconds since the Unix epoch.
    pub end_unix_nano: u64,
    /// Bucket width in nanoseconds; at least 1.
    pub bucket_nanos: u64,
    /// Only the traces this filter matches (SPEC §7); the rollups serve only unfiltered stats.
    pub filter: Option<std::sync::Arc<crate::filter::query::TraceFilter>>,
}

impl StatsQuery {
    /// The index of the bucket holding `timestamp` (which must lie in the window).
    pub fn bucket_of(&self, timestamp_unix_nano: u64) -> u64 {
        (timestamp_unix_nano - self.start_unix_nano) / self.bucket_nanos.max(1)
    }
}

/// The numbers of one trace that the dashboard aggregates.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TraceFacts {
    /// The trace's timestamp (its root's start), in nanoseconds since the Unix epoch.
    pub timestamp_unix_nano: u64,
    /// Its status is `error`.
    pub is_error: bool,
    /// Its `duration_ms`, in milliseconds.
    pub duration_ms: f64,
    /// Its `total_token_count`, in tokens; 0 when unknown.
    pub total_tokens: i64,
    /// Its `total_cost`, in USD; 0 when unknown.
    pub total_cost: f64,
    /// The models of its LLM calls.
    pub models: Vec<String>,
}

/// Aggregates over a set of traces. Percentiles are `None` when the set is empty.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct StatsFigures {
    /// Traces in the set.
    pub traces: u64,
    /// Those whose status is `error`.
    pub errors: u64,
    /// Median of their `duration_ms`, in milliseconds.
    pub p50_ms: Option<f64>,
    /// 95th percentile of their `duration_ms`, in milliseconds.
    pub p95_ms: Option<f64>,
    /// Sum of their total tokens.
    pub tokens: i64,
    /// Sum of their total cost, in USD.
    pub cost: f64,
}

/// The figures of one bucket that holds at least one trace.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct StatsBucket {
    /// 0 for the bucket starting at the window's start.
    pub index: u64,
    /// The figures of the bucket's traces.
    pub figures: StatsFigures,
}

/// The figures of the traces that used one model (a trace with two models counts for both).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ModelStats {
    /// The model's name (response model, else request model).
    pub model: String,
    /// The figures of the traces that used it.
    pub figures: StatsFigures,
}

/// The answer of [`crate::store::Store::trace_stats`].
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TraceStats {
    /// Non-empty buckets only, in order.
    pub buckets: Vec<StatsBucket>,
    /// The figures of every trace of the window.
    pub totals: StatsFigures,
    /// Most traces first, then by name.
    pub models: Vec<ModelStats>,
}

/// Aggregates traces as they are read, one at a time, into rollup cells: the reference the
/// backends' rollups are checked against, in memory bounded by the window's minutes and models.
pub struct StatsBuilder {
    query: StatsQuery,
    cells: RollupDeltas,
}

impl StatsBuilder {
    pub fn new(query: StatsQuery) -> Self {
        Self {
            query,
            cells: RollupDeltas::default(),
        }
    }

    /// Counts one trace (ignored when outside the window).
    pub fn add(&mut self, trace: &TraceFacts) {
        if trace.timestamp_unix_nano < self.query.start_unix_nano
            || trace.timestamp_unix_nano >= self.query.end_unix_nano
        {
            return;
        }
        self.cells.add(trace);
    }

    pub fn finish(self) -> TraceStats {
        stats_from_cells(&self.query, self.cells.into_cells())
    }
}

/// Aggregates the traces of a window (traces outside it are ignored).
pub fn aggregate(query: &StatsQuery, traces: &[TraceFacts]) -> TraceStats {
    let mut builder = StatsBuilder::new(query.clone());
    for trace in traces {
        builder.add(trace);
    }
    builder.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::sketch::{bin_of, value_of};

    fn trace(timestamp: u64, duration_ms: f64, models: &[&str]) -> TraceFacts {
        TraceFacts {
            timestamp_unix_nano: timestamp,
            duration_ms,
            total_tokens: 10,
            total_cost: 0.5,
            models: models.iter().map(|model| (*model).to_owned()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn buckets_totals_and_models() {
        const M: u64 = crate::store::rollup::MINUTE_NANOS;
        let query = StatsQuery {
            start_unix_nano: 10 * M,
            end_unix_nano: 13 * M,
            bucket_nanos: M,
            filter: None,
        };
        let traces = [
            trace(10 * M, 5.0, &["a"]),
            TraceFacts {
                is_error: true,
                ..trace(10 * M + M / 2, 7.0, &["a", "b"])
            },
            trace(12 * M + 5, 1.0, &[]),
            trace(13 * M, 1.0, &["outside"]),
        ];
        let stats = aggregate(&query, &traces);
        assert_eq!(stats.buckets.len(), 2);
        assert_eq!(stats.buckets[0].index, 0);
        assert_eq!(stats.buckets[0].figures.traces, 2);
        assert_eq!(stats.buckets[0].figures.errors, 1);
        assert_eq!(stats.buckets[0].figures.p50_ms, Some(value_of(bin_of(7.0))));
        assert_eq!(stats.buckets[1].index, 2);
        assert_eq!(stats.totals.traces, 3);
        assert_eq!(stats.totals.tokens, 30);
        assert_eq!(stats.totals.p50_ms, Some(value_of(bin_of(5.0))));
        let names: Vec<&str> = stats.models.iter().map(|m| m.model.as_str()).collect();
        assert_eq!(names, ["a", "b"]);
        assert_eq!(stats.models[0].figures.traces, 2);
    }
}
