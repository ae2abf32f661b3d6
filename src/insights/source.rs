//! Where insights read traces: a project of a store, through the filter language, or (in
//! tests) a list of traces.

use std::sync::Arc;

use async_trait::async_trait;

use super::segment::{Segment, conjunction};
use crate::filter::query::parse_trace_filter;
use crate::store::insight_traces::InsightTrace;
use crate::store::{StatsQuery, Store, StoreError, StoreResult};

/// Chunks a scan may have in flight between the store and the aggregation.
const CHANNEL_CHUNKS: usize = 4;

/// Traces to aggregate.
#[async_trait]
pub trait TraceSource: Send + Sync {
    /// About how many traces `[start, end)` holds, at least as many as a scan reads.
    async fn count(&self, start_unix_nano: u64, end_unix_nano: u64) -> StoreResult<u64>;

    /// Every trace with a timestamp in `[start, end)` (one in `sample` of them), except those
    /// of the `exclude` segments, to `sink`, in any order.
    async fn scan(
        &self,
        (start_unix_nano, end_unix_nano): (u64, u64),
        exclude: &[Segment],
        sample: u64,
        sink: &mut (dyn for<'t> FnMut(&'t InsightTrace) + Send),
    ) -> StoreResult<()>;
}

/// The traces of a project that a filter (SPEC §7) matches.
pub struct StoreSource {
    /// The store.
    pub store: Arc<dyn Store>,
    /// The project.
    pub project_id: String,
    /// The request's filter, if any.
    pub filter: Option<String>,
}

impl StoreSource {
    /// The request's filter and `not (…)` of each excluded segment.
    pub fn condition(&self, exclude: &[Segment]) -> Option<String> {
        let excluded = exclude
            .iter()
            .filter_map(Segment::condition)
            .map(|condition| format!("not ({condition})"));
        conjunction(self.filter.iter().cloned().chain(excluded))
    }
}

#[async_trait]
impl TraceSource for StoreSource {
    /// From the dashboard's rollups: every trace of the period, whatever the filter.
    async fn count(&self, start_unix_nano: u64, end_unix_nano: u64) -> StoreResult<u64> {
        let query = StatsQuery {
            start_unix_nano,
            end_unix_nano,
            bucket_nanos: end_unix_nano.saturating_sub(start_unix_nano).max(1),
            filter: None,
        };
        let stats = self.store.trace_stats(&self.project_id, &query).await?;
        Ok(stats.totals.traces)
    }

    async fn scan(
        &self,
        window: (u64, u64),
        exclude: &[Segment],
        sample: u64,
        sink: &mut (dyn for<'t> FnMut(&'t InsightTrace) + Send),
    ) -> StoreResult<()> {
        let filter = match self.condition(exclude) {
            Some(text) => Some(Arc::new(parse_trace_filter(&text).map_err(|error| {
                StoreError::Corrupt(format!(
                    "insights built a filter that does not parse: {error}"
                ))
            })?)),
            None => None,
        };
        let (sender, mut receiver) = tokio::sync::mpsc::channel(CHANNEL_CHUNKS);
        let read = self
            .store
            .insight_traces(&self.project_id, window, filter, sample, sender);
        let consume = async {
            while let Some(chunk) = receiver.recv().await {
                for trace in &chunk {
                    sink(trace);
                }
            }
        };
        let (read, ()) = tokio::join!(read, consume);
        read
    }
}

/// A list of traces, as a store would hold them (the statistics' tests).
pub struct ListSource(pub Vec<InsightTrace>);

impl ListSource {
    fn inside(&self, (start, end): (u64, u64)) -> impl Iterator<Item = &InsightTrace> {
        self.0
            .iter()
            .filter(move |trace| (start..end).contains(&trace.timestamp_unix_nano))
    }
}

#[async_trait]
impl TraceSource for ListSource {
    async fn count(&self, start_unix_nano: u64, end_unix_nano: u64) -> StoreResult<u64> {
        Ok(self.inside((start_unix_nano, end_unix_nano)).count() as u64)
    }

    /// One in `sample` by position in the list.
    async fn scan(
        &self,
        window: (u64, u64),
        exclude: &[Segment],
        sample: u64,
        sink: &mut (dyn for<'t> FnMut(&'t InsightTrace) + Send),
    ) -> StoreResult<()> {
        for (index, trace) in self.inside(window).enumerate() {
            let sampled = (index as u64).is_multiple_of(sample.max(1));
            if sampled && !exclude.iter().any(|segment| segment.contains(trace)) {
                sink(trace);
            }
        }
        Ok(())
    }
}
