//! What deletion hides from reads until `purge` has removed it: the traces with a tombstone in
//! `deleted_traces` that is not yet purged (once spans sent after the deletion made the id a new
//! trace, only the spans and scores written before the deletion), and the traces older than
//! their project's horizon in `trace_horizons` (retention). Every read of trace data adds these conditions, so a deletion
//! answered by one server is absent from the reads of every server at once. The conditions are
//! subqueries, evaluated by ClickHouse once per query (tombstones are few: purges remove them
//! within minutes; a horizon is one number per project).

use clickhouse::{Client, Row};
use serde::Deserialize;

use super::unavailable;
use crate::store::StoreResult;

/// The trace ids of a project's deleted traces, tombstones not yet purged and with no new trace
/// in their place. Placeholders: project id.
pub const TOMBSTONED_IDS: &str = "SELECT trace_id FROM deleted_traces FINAL \
    WHERE project_id = ? AND purged = 0 AND reborn = 0";

/// A span or score row written before the deletion of its trace (of a trace deleted and sent
/// again; approximated by the project's latest deletion not yet purged). Placeholders:
/// project id, twice.
pub const WRITTEN_BEFORE_DELETION: &str = "(trace_id IN (SELECT trace_id FROM deleted_traces \
    FINAL WHERE project_id = ? AND purged = 0) AND version <= (SELECT max(deleted_at_ns) \
    FROM deleted_traces FINAL WHERE project_id = ? AND purged = 0))";

/// The project's horizon: traces with an earlier timestamp are hidden (0 without retention).
/// Placeholders: project id.
pub const HORIZON: &str = "(SELECT max(horizon_ns) FROM trace_horizons WHERE project_id = ?)";

/// A row of trace data (any table with a `trace_id` column) whose trace has no live tombstone.
/// Placeholders: project id.
pub fn not_deleted() -> String {
    format!("trace_id NOT IN ({TOMBSTONED_IDS})")
}

/// A span or score row (a `version`: when it was written) that reads may show. Placeholders:
/// project id, three times.
pub fn row_not_deleted() -> String {
    format!("{} AND NOT {WRITTEN_BEFORE_DELETION}", not_deleted())
}

/// A row of `traces` or `trace_index` that reads may show. Placeholders: project id, twice.
pub fn visible_trace() -> String {
    format!("{} AND timestamp_ns >= {HORIZON}", not_deleted())
}

/// A row of `spans` that reads may show: not deleted, and the span starts at or after the
/// horizon (its trace's timestamp, the root's start, is not in the row). Placeholders:
/// project id, four times.
pub fn visible_span() -> String {
    format!("{} AND start_ns >= {HORIZON}", row_not_deleted())
}

/// What reads of a trace by id must leave out.
#[derive(Debug, Row, Deserialize)]
pub struct TraceState {
    /// Tombstones that hide the whole trace (deleted, no new trace since).
    pub hidden: u64,
    /// When the trace was last deleted, if its purge is not done: older spans are not shown.
    pub deleted_at_ns: u64,
    /// The project's horizon: a trace with an earlier timestamp is not shown.
    pub horizon_ns: u64,
}

pub async fn trace_state_of(
    client: &Client,
    project_id: &str,
    trace_hex: &str,
) -> StoreResult<TraceState> {
    client
        .query(&trace_state())
        .bind(project_id)
        .bind(trace_hex)
        .bind(project_id)
        .bind(trace_hex)
        .bind(project_id)
        .fetch_one()
        .await
        .map_err(unavailable)
}

/// A trace's state. Placeholders: project id, trace id, project id, trace id, project id.
pub fn trace_state() -> String {
    format!(
        "SELECT (SELECT count() FROM deleted_traces FINAL WHERE project_id = ? AND trace_id = ? \
         AND purged = 0 AND reborn = 0) AS hidden, (SELECT max(deleted_at_ns) FROM \
         deleted_traces FINAL WHERE project_id = ? AND trace_id = ? AND purged = 0) \
         AS deleted_at_ns, {HORIZON} AS horizon_ns"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_condition_binds_the_project_per_subquery() {
        assert_eq!(not_deleted().matches('?').count(), 1);
        assert_eq!(visible_trace().matches('?').count(), 2);
        assert_eq!(visible_span().matches('?').count(), 4);
        assert_eq!(row_not_deleted().matches('?').count(), 3);
        assert_eq!(trace_state().matches('?').count(), 5);
        assert!(visible_trace().contains("purged = 0"));
        assert!(visible_span().contains("start_ns >= (SELECT max(horizon_ns)"));
    }
}
