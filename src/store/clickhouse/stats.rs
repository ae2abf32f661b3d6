//! The dashboard from the rollup: the cells of the window's minutes, summed by ClickHouse per
//! minute and model, turned into figures by the same code as the embedded store's.

use clickhouse::{Client, Row};
use serde::Deserialize;

use super::queries::ROLLUP_CELLS;
use super::unavailable;
use crate::store::StoreResult;
use crate::store::rollup::{RollupCell, minute_of, stats_from_cells};
use crate::store::sketch::DurationSketch;
use crate::store::trace_stats::{StatsQuery, TraceStats};

/// One cell, in the order of `ROLLUP_CELLS`.
#[derive(Debug, Row, Deserialize)]
struct CellRow {
    minute_ns: u64,
    model: String,
    traces: i64,
    errors: i64,
    tokens: i64,
    cost_nanos: i64,
    durations: (Vec<u16>, Vec<i64>),
}

pub async fn trace_stats(
    client: &Client,
    project_id: &str,
    query: &StatsQuery,
) -> StoreResult<TraceStats> {
    let rows: Vec<CellRow> = client
        .query(ROLLUP_CELLS)
        .bind(project_id)
        .bind(minute_of(query.start_unix_nano))
        .bind(query.end_unix_nano)
        .fetch_all()
        .await
        .map_err(unavailable)?;
    let cells = rows.into_iter().map(|row| {
        let mut durations = DurationSketch::default();
        for (bin, count) in row.durations.0.into_iter().zip(row.durations.1) {
            durations.add_bin(bin, count);
        }
        let cell = RollupCell {
            traces: row.traces,
            errors: row.errors,
            tokens: row.tokens,
            cost_nanos: row.cost_nanos,
            durations,
        };
        ((row.minute_ns, row.model), cell)
    });
    Ok(stats_from_cells(query, cells))
}
