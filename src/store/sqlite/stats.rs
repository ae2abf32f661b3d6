//! The dashboard on SQLite, read from the rollup (`trace_rollup`, see `rollup`): the cells of the
//! window's minutes, streamed into [`stats_from_cells`], in memory bounded by the buckets and
//! models, not by the traces or cells of the window.

use rusqlite::{Connection, params};

use super::rollup::cell_from_row;
use crate::store::rollup::{RollupCell, RollupKey, minute_of, stats_from_cells};
use crate::store::trace_stats::{StatsQuery, TraceStats};
use crate::store::{StoreError, StoreResult};

pub(super) fn trace_stats(
    connection: &Connection,
    project_id: &str,
    query: &StatsQuery,
) -> StoreResult<TraceStats> {
    let mut statement = connection.prepare_cached(
        "SELECT minute_ns, model, traces, errors, tokens, cost_nanos, durations
         FROM trace_rollup WHERE project_id = ?1 AND minute_ns >= ?2 AND minute_ns < ?3",
    )?;
    let mut rows = statement.query(params![
        project_id,
        minute_of(query.start_unix_nano).min(i64::MAX as u64) as i64,
        query.end_unix_nano.min(i64::MAX as u64) as i64
    ])?;
    // The first error ends the stream; it is returned after it.
    let mut failed: Option<StoreError> = None;
    let cells = std::iter::from_fn(|| {
        let cell = (|| -> StoreResult<Option<(RollupKey, RollupCell)>> {
            let Some(row) = rows.next()? else {
                return Ok(None);
            };
            let minute = row.get::<_, i64>(0)? as u64;
            let model: String = row.get(1)?;
            let cell = cell_from_row(row, 2)??;
            Ok(Some(((minute, model), cell)))
        })();
        cell.unwrap_or_else(|error| {
            failed = Some(error);
            None
        })
    });
    let stats = stats_from_cells(query, cells);
    match failed {
        Some(error) => Err(error),
        None => Ok(stats),
    }
}
