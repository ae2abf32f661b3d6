//! What deletion hides from reads until `purge` has removed it: the traces with a tombstone in
//! `deleted_traces` that is not yet purged, and the traces older than their project's horizon in
//! `trace_horizons` (retention). Every read of trace data adds these conditions, so a deletion
//! answered by one server is absent from the reads of every server at once. The conditions are
//! subqueries, evaluated by ClickHouse once per query (tombstones are few: purges remove them
//! within minutes; a horizon is one number per project).

use clickhouse::{Client, Row};
use serde::Deserialize;

use super::unavailable;
use crate::store::StoreResult;

/// The trace ids of a project's tombstones not yet purged. Placeholders: project id.
pub const TOMBSTONED_IDS: &str =
    "SELECT trace_id FROM deleted_traces FINAL WHERE project_id = ? AND purged = 0";

/// The project's horizon: traces with an earlier timestamp are hidden (0 without retention).
/// Placeholders: project id.
pub const HORIZON: &str = "(SELECT max(horizon_ns) FROM trace_horizons WHERE project_id = ?)";

/// A row of trace data (any table with a `trace_id` column) whose trace has no live tombstone.
/// Placeholders: project id.
pub fn not_deleted() -> String {
    format!("trace_id NOT IN ({TOMBSTONED_IDS})")
}

/// A row of `traces` or `trace_index` that reads may show. Placeholders: project id, twice.
pub fn visible_trace() -> String {
    format!("{} AND timestamp_ns >= {HORIZON}", not_deleted())
}

/// A row of `spans` that reads may show: its trace has no live tombstone and the span starts at
/// or after the horizon (its trace's timestamp, the root's start, is not in the row).
/// Placeholders: project id, twice.
pub fn visible_span() -> String {
    format!("{} AND start_ns >= {HORIZON}", not_deleted())
}

#[derive(Debug, Row, Deserialize)]
struct TraceState {
    tombstones: u64,
    horizon_ns: u64,
}

/// Whether a trace by id is hidden: `Some(horizon)` when it has no live tombstone (it is
/// shown when its timestamp is at or after the horizon), `None` when it is deleted.
pub async fn horizon_unless_deleted(
    client: &Client,
    project_id: &str,
    trace_hex: &str,
) -> StoreResult<Option<u64>> {
    let state: TraceState = client
        .query(&trace_state())
        .bind(project_id)
        .bind(trace_hex)
        .bind(project_id)
        .fetch_one()
        .await
        .map_err(unavailable)?;
    Ok((state.tombstones == 0).then_some(state.horizon_ns))
}

/// A trace's live tombstones and its project's horizon. Placeholders: project id, trace id,
/// project id.
pub fn trace_state() -> String {
    format!(
        "SELECT (SELECT count() FROM deleted_traces FINAL WHERE project_id = ? AND trace_id = ? \
         AND purged = 0) AS tombstones, {HORIZON} AS horizon_ns"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_condition_binds_the_project_per_subquery() {
        assert_eq!(not_deleted().matches('?').count(), 1);
        assert_eq!(visible_trace().matches('?').count(), 2);
        assert_eq!(visible_span().matches('?').count(), 2);
        assert_eq!(trace_state().matches('?').count(), 3);
        assert!(visible_trace().contains("purged = 0"));
        assert!(visible_span().contains("start_ns >= (SELECT max(horizon_ns)"));
    }
}
