//! The dashboard's aggregation in ClickHouse: the TraceRecords of the window are aggregated as
//! for a trace list, then grouped by bucket and by model in the same query.

use clickhouse::{Client, Row};
use serde::Deserialize;

use super::queries::{trace_stats_by_bucket, trace_stats_by_model};
use super::unavailable;
use crate::store::StoreResult;
use crate::store::trace_stats::{ModelStats, StatsBucket, StatsFigures, StatsQuery, TraceStats};

/// One group, in the order of `queries::STATS_FIGURES` after the key.
#[derive(Debug, Row, Deserialize)]
struct StatsRow<K> {
    key: K,
    traces: u64,
    errors: u64,
    p50_ns: f64,
    p95_ns: f64,
    tokens: i64,
    cost: f64,
}

impl<K> StatsRow<K> {
    fn figures(&self) -> StatsFigures {
        StatsFigures {
            traces: self.traces,
            errors: self.errors,
            p50_ms: Some(self.p50_ns / 1e6),
            p95_ms: Some(self.p95_ns / 1e6),
            tokens: self.tokens,
            cost: self.cost,
        }
    }
}

async fn by_bucket(
    client: &Client,
    project_id: &str,
    query: &StatsQuery,
    bucket_nanos: u64,
) -> StoreResult<Vec<StatsRow<u64>>> {
    client
        .query(&trace_stats_by_bucket())
        .bind(query.start_unix_nano)
        .bind(bucket_nanos.max(1))
        .bind(project_id)
        .bind(project_id)
        .bind(query.start_unix_nano)
        .bind(query.end_unix_nano)
        .bind(query.start_unix_nano)
        .bind(query.end_unix_nano)
        .fetch_all()
        .await
        .map_err(unavailable)
}

pub async fn trace_stats(
    client: &Client,
    project_id: &str,
    query: &StatsQuery,
) -> StoreResult<TraceStats> {
    let buckets = by_bucket(client, project_id, query, query.bucket_nanos).await?;
    // One bucket as wide as the window: the totals, with percentiles over all its traces.
    let window = query.end_unix_nano.saturating_sub(query.start_unix_nano) + 1;
    let totals = by_bucket(client, project_id, query, window).await?;
    let models: Vec<StatsRow<String>> = client
        .query(&trace_stats_by_model())
        .bind(project_id)
        .bind(project_id)
        .bind(query.start_unix_nano)
        .bind(query.end_unix_nano)
        .bind(query.start_unix_nano)
        .bind(query.end_unix_nano)
        .fetch_all()
        .await
        .map_err(unavailable)?;
    Ok(TraceStats {
        buckets: buckets
            .iter()
            .map(|row| StatsBucket {
                index: row.key,
                figures: row.figures(),
            })
            .collect(),
        totals: totals.first().map(StatsRow::figures).unwrap_or_default(),
        models: models
            .iter()
            .map(|row| ModelStats {
                model: row.key.clone(),
                figures: row.figures(),
            })
            .collect(),
    })
}
