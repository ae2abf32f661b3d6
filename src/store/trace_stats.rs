//! The dashboard's aggregation of TraceRecords: per time bucket and per model, over a window.
//!
//! Backends that cannot aggregate in their query language stream one [`TraceFacts`] per trace
//! into a [`StatsBuilder`], which keeps only each group's durations; ClickHouse aggregates in SQL
//! with the same definitions (nearest-rank percentiles, like its `quantileExact`).

use std::collections::BTreeMap;

/// What the dashboard asks for: traces with a timestamp in `[start, end)`, in buckets of
/// `bucket_nanos` starting at `start`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatsQuery {
    /// Start of the window (inclusive), in nanoseconds since the Unix epoch.
    pub start_unix_nano: u64,
    /// End of the window (exclusive), in nanoseconds since the Unix epoch.
    pub end_unix_nano: u64,
    /// Bucket width in nanoseconds; at least 1.
    pub bucket_nanos: u64,
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

/// The value at rank `floor(level * n)` of the sorted values (clamped to the last), as
/// ClickHouse's `quantileExact` defines it.
pub fn nearest_rank(sorted: &[f64], level: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((level * sorted.len() as f64) as usize).min(sorted.len() - 1);
    Some(sorted[rank])
}

/// One group's running figures: counts and sums, and the durations its percentiles need
/// (8 bytes a trace).
#[derive(Default)]
struct Group {
    figures: StatsFigures,
    durations: Vec<f64>,
}

impl Group {
    fn add(&mut self, trace: &TraceFacts) {
        self.figures.traces += 1;
        self.figures.errors += u64::from(trace.is_error);
        self.figures.tokens += trace.total_tokens;
        self.figures.cost += trace.total_cost;
        self.durations.push(trace.duration_ms);
    }

    fn finish(mut self) -> StatsFigures {
        self.durations.sort_by(f64::total_cmp);
        self.figures.p50_ms = nearest_rank(&self.durations, 0.5);
        self.figures.p95_ms = nearest_rank(&self.durations, 0.95);
        self.figures
    }
}

/// Aggregates traces as they are read, one at a time: a backend streams its rows in and keeps
/// no trace, only each group's durations.
pub struct StatsBuilder {
    query: StatsQuery,
    buckets: BTreeMap<u64, Group>,
    totals: Group,
    models: BTreeMap<String, Group>,
}

impl StatsBuilder {
    pub fn new(query: StatsQuery) -> Self {
        Self {
            query,
            buckets: BTreeMap::new(),
            totals: Group::default(),
            models: BTreeMap::new(),
        }
    }

    /// Counts one trace (ignored when outside the window).
    pub fn add(&mut self, trace: &TraceFacts) {
        if trace.timestamp_unix_nano < self.query.start_unix_nano
            || trace.timestamp_unix_nano >= self.query.end_unix_nano
        {
            return;
        }
        self.buckets
            .entry(self.query.bucket_of(trace.timestamp_unix_nano))
            .or_default()
            .add(trace);
        self.totals.add(trace);
        for model in &trace.models {
            match self.models.get_mut(model) {
                Some(group) => group.add(trace),
                None => self.models.entry(model.clone()).or_default().add(trace),
            }
        }
    }

    pub fn finish(self) -> TraceStats {
        let mut models: Vec<ModelStats> = self
            .models
            .into_iter()
            .map(|(model, group)| ModelStats {
                model,
                figures: group.finish(),
            })
            .collect();
        models.sort_by(|a, b| {
            b.figures
                .traces
                .cmp(&a.figures.traces)
                .then_with(|| a.model.cmp(&b.model))
        });
        TraceStats {
            buckets: self
                .buckets
                .into_iter()
                .map(|(index, group)| StatsBucket {
                    index,
                    figures: group.finish(),
                })
                .collect(),
            totals: self.totals.finish(),
            models,
        }
    }
}

/// Aggregates the traces of a window (traces outside it are ignored).
pub fn aggregate(query: &StatsQuery, traces: &[TraceFacts]) -> TraceStats {
    let mut builder = StatsBuilder::new(*query);
    for trace in traces {
        builder.add(trace);
    }
    builder.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn nearest_rank_matches_quantile_exact() {
        assert_eq!(nearest_rank(&[], 0.5), None);
        assert_eq!(nearest_rank(&[1.0], 0.95), Some(1.0));
        assert_eq!(nearest_rank(&[1.0, 2.0, 3.0, 4.0], 0.5), Some(3.0));
        assert_eq!(nearest_rank(&[1.0, 2.0, 3.0, 4.0], 0.95), Some(4.0));
    }

    #[test]
    fn buckets_totals_and_models() {
        let query = StatsQuery {
            start_unix_nano: 1000,
            end_unix_nano: 1300,
            bucket_nanos: 100,
        };
        let traces = [
            trace(1000, 5.0, &["a"]),
            TraceFacts {
                is_error: true,
                ..trace(1050, 7.0, &["a", "b"])
            },
            trace(1250, 1.0, &[]),
            trace(1300, 1.0, &["outside"]),
        ];
        let stats = aggregate(&query, &traces);
        assert_eq!(stats.buckets.len(), 2);
        assert_eq!(stats.buckets[0].index, 0);
        assert_eq!(stats.buckets[0].figures.traces, 2);
        assert_eq!(stats.buckets[0].figures.errors, 1);
        assert_eq!(stats.buckets[0].figures.p50_ms, Some(7.0));
        assert_eq!(stats.buckets[1].index, 2);
        assert_eq!(stats.totals.traces, 3);
        assert_eq!(stats.totals.tokens, 30);
        assert_eq!(stats.totals.p50_ms, Some(5.0));
        let names: Vec<&str> = stats.models.iter().map(|m| m.model.as_str()).collect();
        assert_eq!(names, ["a", "b"]);
        assert_eq!(stats.models[0].figures.traces, 2);
    }
}
