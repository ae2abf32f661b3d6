//! Ingestion accounting: what happened to every span, per project and minute.
//!
//! Receivers record counts here as they decide; a background task adds them to the store every
//! second (and once more at shutdown), so the counts survive restarts. Counts not yet flushed
//! are included when they are read, so the API is never behind. Totals since start also feed
//! the Prometheus metrics.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use serde::Serialize;

use crate::model::time::now_unix_nano;
use crate::store::{CountDelta, Store, StoreError};

/// The width of a stored bucket.
pub const BUCKET_NANOS: u64 = 60 * 1_000_000_000;

/// The counters of SPEC §4.
pub mod counter {
    /// Spans that arrived in a request spanhouse could decode.
    pub const RECEIVED: &str = "received";
    /// Spans stored.
    pub const ACCEPTED: &str = "accepted";
    /// Spans dropped by the project's sampling attribute or filters; labelled by rule.
    pub const FILTERED: &str = "filtered";
    /// Spans refused; labelled by reason.
    pub const REJECTED: &str = "rejected";
    /// Spans refused by the project's rate limit (429).
    pub const RATE_LIMITED: &str = "rate_limited";
    /// Spans stored with at least one value cut to the length limit.
    pub const TRUNCATED: &str = "truncated";
    /// Data points of the metrics signal: acknowledged and counted, not stored (SPEC §3).
    pub const METRIC_POINTS: &str = "metric_points";
    /// Log records received in a request spanhouse could decode, with GenAI content or not.
    pub const LOG_RECORDS: &str = "log_records";
    /// String values rewritten by the project's redaction rules (SPEC §9), of spans and of
    /// log records alike.
    pub const REDACTED: &str = "redacted";
}

/// The labels `rate_limited` and `truncated` carry: the signal (spans have none).
pub mod signal {
    pub const SPANS: &str = "";
    pub const LOGS: &str = "logs";
    pub const METRICS: &str = "metrics";
}

/// Rejection reasons.
pub mod reason {
    /// A span that breaks OTLP's rules (ids, times): `partial_success`.
    pub const INVALID_SPAN: &str = "invalid_span";
    /// The ingest queue was full (503).
    pub const OVERLOADED: &str = "overloaded";
    /// The store failed (503).
    pub const STORE_UNAVAILABLE: &str = "store_unavailable";
    /// More spans in one request than allowed (413).
    pub const TOO_MANY_SPANS: &str = "too_many_spans";
}

/// The filter rule name of the sampling attribute.
pub const SAMPLING_RULE: &str = "sample_attribute";

/// The filter rule name of spans that arrive older than the project's retention.
pub const RETENTION_RULE: &str = "retention";

type Key = (String, u64, &'static str, String);

#[derive(Default)]
pub struct IngestionStats {
    /// Counts not yet in the store.
    pending: Mutex<HashMap<Key, u64>>,
    /// Totals since start per (project, counter, label), for /metrics.
    totals: Mutex<BTreeMap<(String, &'static str, String), u64>>,
    /// Held by a flush while counts move from `pending` to the store, and by a reader while it
    /// reads both, so that a reader never sees counts in neither place or in both.
    gate: tokio::sync::RwLock<()>,
}

impl IngestionStats {
    /// Records `value` spans under `counter` (and `label`) for a project, now.
    pub fn record(&self, project_id: &str, counter: &'static str, label: &str, value: u64) {
        if value == 0 {
            return;
        }
        let bucket = now_unix_nano() / BUCKET_NANOS * BUCKET_NANOS;
        *lock(&self.pending)
            .entry((project_id.to_owned(), bucket, counter, label.to_owned()))
            .or_default() += value;
        *lock(&self.totals)
            .entry((project_id.to_owned(), counter, label.to_owned()))
            .or_default() += value;
    }

    /// Adds the pending counts to the store; on failure they stay pending.
    pub async fn flush(&self, store: &dyn Store) -> Result<(), StoreError> {
        let _moving = self.gate.write().await;
        let pending = std::mem::take(&mut *lock(&self.pending));
        if pending.is_empty() {
            return Ok(());
        }
        let deltas: Vec<CountDelta> = pending
            .iter()
            .map(|((project_id, bucket, counter, label), value)| CountDelta {
                project_id: project_id.clone(),
                bucket_start_unix_nano: *bucket,
                counter: (*counter).to_owned(),
                label: label.clone(),
                value: *value,
            })
            .collect();
        if let Err(error) = store.add_ingestion_counts(deltas).await {
            let mut current = lock(&self.pending);
            for (key, value) in pending {
                *current.entry(key).or_default() += value;
            }
            return Err(error);
        }
        Ok(())
    }

    /// A project's counts with bucket starts in `[start, end)`: saved and not yet saved.
    pub async fn counts(
        &self,
        store: &dyn Store,
        project_id: &str,
        start: u64,
        end: u64,
    ) -> Result<Vec<CountDelta>, StoreError> {
        let _reading = self.gate.read().await;
        let mut rows = store.ingestion_counts(project_id, start, end).await?;
        rows.extend(self.pending_for(project_id, start, end));
        Ok(rows)
    }

    /// What `counts` reads or, when the store cannot be read (ClickHouse down, say), the
    /// counts this server still holds, with the store's error: the ingestion page matters most
    /// during an outage, so it gets what is known rather than nothing.
    pub async fn counts_or_held(
        &self,
        store: &dyn Store,
        project_id: &str,
        start: u64,
        end: u64,
    ) -> (Vec<CountDelta>, Option<StoreError>) {
        match self.counts(store, project_id, start, end).await {
            Ok(rows) => (rows, None),
            Err(error) => {
                let _reading = self.gate.read().await;
                (self.pending_for(project_id, start, end), Some(error))
            }
        }
    }

    /// Counts of a project not yet flushed, bucket starts in `[start, end)`.
    fn pending_for(&self, project_id: &str, start: u64, end: u64) -> Vec<CountDelta> {
        lock(&self.pending)
            .iter()
            .filter(|((project, bucket, _, _), _)| {
                project == project_id && *bucket >= start && *bucket < end
            })
            .map(|((project, bucket, counter, label), value)| CountDelta {
                project_id: project.clone(),
                bucket_start_unix_nano: *bucket,
                counter: (*counter).to_owned(),
                label: label.clone(),
                value: *value,
            })
            .collect()
    }

    /// Totals since start: (project, counter, label) → spans.
    pub fn totals(&self) -> BTreeMap<(String, &'static str, String), u64> {
        lock(&self.totals).clone()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poison| poison.into_inner())
}

/// Counts of one bucket as the API shows them.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Counts {
    /// Spans that arrived in a request spanhouse could decode, valid or not.
    pub received: u64,
    /// Spans stored, durably before the answer.
    pub accepted: u64,
    /// Spans dropped by the project's sampling attribute or filters.
    pub filtered: u64,
    /// `filtered` by rule: `sample_attribute` or the text of the filter condition.
    pub filtered_rules: BTreeMap<String, u64>,
    /// Spans refused: invalid, too many in one request, or the queue or store could not take them.
    pub rejected: u64,
    /// `rejected` by reason: `invalid_span`, `too_many_spans`, `overloaded`,
    /// `store_unavailable`.
    pub rejected_reasons: BTreeMap<String, u64>,
    /// Spans refused by the project's rate limit (429), with the log records and metrics
    /// requests it refused.
    pub rate_limited: u64,
    /// Spans stored with a value cut to the length limit, with log records cut likewise.
    pub truncated: u64,
    /// Metric data points received (the metrics signal is counted, not stored).
    pub metric_points: u64,
    /// Log records received; those with GenAI content are stored with their spans.
    pub log_records: u64,
    /// String values rewritten by the project's redaction rules, in spans and log records.
    pub redacted: u64,
}

impl Counts {
    pub fn add(&mut self, counter: &str, label: &str, value: u64) {
        match counter {
            counter::RECEIVED => self.received += value,
            counter::ACCEPTED => self.accepted += value,
            counter::FILTERED => {
                self.filtered += value;
                *self.filtered_rules.entry(label.to_owned()).or_default() += value;
            }
            counter::REJECTED => {
                self.rejected += value;
                *self.rejected_reasons.entry(label.to_owned()).or_default() += value;
            }
            counter::RATE_LIMITED => self.rate_limited += value,
            counter::TRUNCATED => self.truncated += value,
            counter::METRIC_POINTS => self.metric_points += value,
            counter::LOG_RECORDS => self.log_records += value,
            counter::REDACTED => self.redacted += value,
            _ => {}
        }
    }
}

/// One bucket as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct Bucket {
    /// Where the bucket starts, RFC 3339 UTC with nanoseconds; it ends where the next starts.
    pub start: String,
    /// Its counters, in the bucket's own object.
    #[serde(flatten)]
    pub counts: Counts,
}

/// Sums counters into buckets of `width` nanoseconds (a multiple of a minute) from `start`.
pub fn into_buckets(
    rows: &[CountDelta],
    start: u64,
    end: u64,
    width: u64,
) -> (Vec<Bucket>, Counts) {
    let mut buckets: BTreeMap<u64, Counts> = BTreeMap::new();
    let mut bucket_start = start;
    while bucket_start < end && buckets.len() < 10_000 {
        buckets.insert(bucket_start, Counts::default());
        bucket_start += width;
    }
    let mut totals = Counts::default();
    for row in rows {
        if row.bucket_start_unix_nano < start || row.bucket_start_unix_nano >= end {
            continue;
        }
        let slot = start + (row.bucket_start_unix_nano - start) / width * width;
        buckets
            .entry(slot)
            .or_default()
            .add(&row.counter, &row.label, row.value);
        totals.add(&row.counter, &row.label, row.value);
    }
    let buckets = buckets
        .into_iter()
        .map(|(start, counts)| Bucket {
            start: crate::model::time::format_rfc3339(start),
            counts,
        })
        .collect();
    (buckets, totals)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(bucket: u64, counter: &str, label: &str, value: u64) -> CountDelta {
        CountDelta {
            project_id: "p".into(),
            bucket_start_unix_nano: bucket,
            counter: counter.into(),
            label: label.into(),
            value,
        }
    }

    #[test]
    fn buckets_sum_and_label() {
        let minute = BUCKET_NANOS;
        let rows = [
            row(0, counter::RECEIVED, "", 10),
            row(minute, counter::RECEIVED, "", 5),
            row(minute, counter::FILTERED, "name == \"x\"", 2),
            row(3 * minute, counter::REJECTED, reason::INVALID_SPAN, 1),
        ];
        let (buckets, totals) = into_buckets(&rows, 0, 4 * minute, 2 * minute);
        assert_eq!(buckets.len(), 2);
        assert_eq!(buckets[0].counts.received, 15);
        assert_eq!(buckets[0].counts.filtered_rules["name == \"x\""], 2);
        assert_eq!(buckets[1].counts.rejected_reasons[reason::INVALID_SPAN], 1);
        assert_eq!(totals.received, 15);
        assert_eq!(totals.rejected, 1);
    }
}
