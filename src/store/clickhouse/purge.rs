//! Physically removing what deletions and retention hid (`delete`, `hidden`): one pass takes
//! the tombstones not yet purged (up to 100 deletions; a deletion's traces share its time) and
//! the horizons that moved, and removes their rows with `ALTER TABLE … DELETE` mutations
//! (ClickHouse 18.16 and later; on a cluster, of the local tables `ON CLUSTER`), one per table
//! for the whole pass:
//!
//! 1. `spans` and `scores` written before the deletion of their trace (spans sent after it are
//!    a new trace and stay), `span_content_events` and `span_terms` of the deleted ids (a new
//!    trace of the id loses its terms: filters on its attributes miss it), `traces` of the ids
//!    — and for a horizon, the rows of the traces `trace_index` places before it; waits until
//!    `system.mutations` says they are done;
//! 2. `trace_index` (which step 1 read) and the rollup's cells before the horizons; waits;
//! 3. marks the tombstones purged and the horizons purged to where they are, and rebuilds the
//!    read model of the ids from the spans that survive (a new trace of a deleted id left the
//!    rollup before step 1 and comes back so; spans written before the deletion that arrive
//!    later from a spool delete the trace again: `tombstones`).
//!
//! A mutation rewrites the parts it touches (on 18.16 every part of the table): a steady
//! retention is purged when its horizon moved an hour or more since the last purge, not at
//! every pass. The old parts leave the disk after the server's `old_parts_lifetime` (merge-tree
//! setting, 480 s by default). Purged tombstones are kept a week, then removed.

use std::collections::HashMap;
use std::time::Duration;

use clickhouse::Client;

use super::filter_sql::{Param, Sql, bind};
use super::rows::{DeletedTraceRow, TraceIndexRow};
use super::trace_rows::{INDEX_OF_TRACES, TRACE_IDS_PER_QUERY, facts_of, refresh, rollup_rows};
use super::{unavailable, version_now};
use crate::store::rollup::RollupDeltas;
use crate::store::{PurgeReport, StoreError, StoreResult};

/// Where the tables are: mutations name them with their database, and on a cluster their
/// local tables.
#[derive(Debug, Clone)]
pub struct Target {
    /// The database of the tables (the configured name, as the DDL uses it).
    pub database: String,
    /// The cluster the tables were created on, if any.
    pub cluster: Option<String>,
}

impl Target {
    fn table(&self, name: &str) -> String {
        match &self.cluster {
            Some(_) => format!("{name}_local"),
            None => name.to_owned(),
        }
    }

    /// The mutation that deletes the rows of `table` where `condition` holds.
    fn delete_statement(&self, table: &str, condition: &str) -> String {
        let on_cluster = self
            .cluster
            .as_ref()
            .map_or(String::new(), |cluster| format!(" ON CLUSTER {cluster}"));
        format!(
            "ALTER TABLE {}.{}{on_cluster} DELETE WHERE {condition}",
            self.database,
            self.table(table)
        )
    }
}

/// How long a pass waits for its mutations before it gives up (the next pass waits for them
/// before it starts any).
const MUTATION_WAIT: Duration = Duration::from_secs(240);
/// How far a steady horizon moves before its rows are purged.
const HORIZON_STEP_NS: u64 = 3_600_000_000_000;
/// How long purged tombstones are kept (to catch spans of a deleted trace late from a spool).
const TOMBSTONE_KEEP_NS: u64 = 7 * 86_400_000_000_000;

/// The tombstones not yet purged.
const TOMBSTONES_TO_PURGE: &str = "SELECT project_id, trace_id, deleted_at_ns, base_version, \
    reborn, purged, version FROM deleted_traces FINAL WHERE purged = 0 \
    ORDER BY deleted_at_ns";

/// Most deletions (times) one pass purges; a deletion's traces share its time.
const DELETIONS_PER_PASS: usize = 100;

/// The horizons a pass purges: moved by a change of setting, or an hour since the last purge.
/// Placeholders: the step.
const HORIZONS_TO_PURGE: &str = "SELECT project_id, max(horizon_ns) FROM trace_horizons \
    GROUP BY project_id HAVING max(horizon_ns) > max(purged_to_ns) \
    AND (max(purged_to_ns) = 0 OR max(horizon_ns) >= max(purged_to_ns) + ?)";

/// The conditions of one pass's mutations.
#[derive(Debug, Clone)]
pub struct Conditions {
    /// Rows of `spans` and `scores` (a `version`: when they were written): those of a deleted
    /// trace written before its deletion, and those of traces before a horizon.
    pub written_before: Sql,
    /// Rows of `span_content_events` and `span_terms`: every row of those trace ids.
    pub by_trace: Sql,
    /// Rows of `traces` and `trace_index` (also `timestamp_ns`): every row of a deleted trace
    /// id (a new trace of the id is rebuilt after), and rows before a horizon.
    pub by_time: Sql,
    /// Cells of `trace_rollup`, if any horizon moved.
    pub rollup: Option<Sql>,
}

/// The conditions of a pass that purges the deletions made at `deletions` (times) and the
/// rows before `horizons` (project id, horizon).
pub fn conditions(database: &str, deletions: &[u64], horizons: &[(String, u64)]) -> Conditions {
    let ids_of = |test: &str| {
        format!(
            "(project_id, trace_id) IN (SELECT project_id, trace_id FROM {database}.deleted_traces \
             WHERE purged = 0 AND {test})"
        )
    };
    let never = || Sql {
        text: "0".into(),
        params: Vec::new(),
    };
    let (mut written_before, mut by_trace, mut by_time) = (never(), never(), never());
    if !deletions.is_empty() {
        let times = vec!["?"; deletions.len()].join(", ");
        let all = ids_of(&format!("deleted_at_ns IN ({times})"));
        for sql in [&mut by_trace, &mut by_time] {
            sql.text.push_str(&format!(" OR {all}"));
            sql.params
                .extend(deletions.iter().map(|time| Param::UInt(*time)));
        }
        for time in deletions {
            written_before.text.push_str(&format!(
                " OR ({} AND version <= ?)",
                ids_of("deleted_at_ns = ?")
            ));
            written_before
                .params
                .extend([Param::UInt(*time), Param::UInt(*time)]);
        }
    }
    let mut rollup: Option<Sql> = None;
    for (project_id, horizon) in horizons {
        let before_horizon = format!(
            " OR (project_id = ? AND trace_id IN (SELECT trace_id FROM {database}.trace_index \
             FINAL WHERE project_id = ? AND timestamp_ns < ?))"
        );
        for sql in [&mut written_before, &mut by_trace] {
            sql.text.push_str(&before_horizon);
            sql.params.extend([
                Param::Text(project_id.clone()),
                Param::Text(project_id.clone()),
                Param::UInt(*horizon),
            ]);
        }
        by_time
            .text
            .push_str(" OR (project_id = ? AND timestamp_ns < ?)");
        by_time
            .params
            .extend([Param::Text(project_id.clone()), Param::UInt(*horizon)]);
        let cells = rollup.get_or_insert_with(never);
        cells
            .text
            .push_str(" OR (project_id = ? AND minute_ns < ?)");
        cells
            .params
            .extend([Param::Text(project_id.clone()), Param::UInt(*horizon)]);
    }
    Conditions {
        written_before,
        by_trace,
        by_time,
        rollup,
    }
}

pub async fn purge(client: &Client, target: &Target) -> StoreResult<PurgeReport> {
    // Mutations an earlier pass left running are waited for, not issued again.
    wait_for_mutations(client, target).await?;
    let mut tombstones: Vec<DeletedTraceRow> = client
        .query(TOMBSTONES_TO_PURGE)
        .fetch_all()
        .await
        .map_err(unavailable)?;
    let mut deletions: Vec<u64> = tombstones.iter().map(|row| row.deleted_at_ns).collect();
    deletions.dedup();
    deletions.truncate(DELETIONS_PER_PASS);
    if let Some(last) = deletions.last() {
        tombstones.retain(|row| row.deleted_at_ns <= *last);
    }
    let horizons: Vec<(String, u64)> = client
        .query(HORIZONS_TO_PURGE)
        .bind(HORIZON_STEP_NS)
        .fetch_all()
        .await
        .map_err(unavailable)?;
    forget_old_tombstones(client, target, version_now()).await?;
    if tombstones.is_empty() && horizons.is_empty() {
        return Ok(PurgeReport::default());
    }
    let conditions = conditions(&target.database, &deletions, &horizons);
    let report = PurgeReport {
        traces: count(client, "trace_index FINAL", &conditions.by_time).await?,
        spans: count(client, "spans", &conditions.written_before).await?,
    };
    // Ids deleted and sent again: their new trace leaves the rollup with its rows, and comes
    // back when the read model is rebuilt below.
    retract_new_traces(client, &tombstones).await?;
    for (table, condition) in [
        ("spans", &conditions.written_before),
        ("scores", &conditions.written_before),
        ("span_content_events", &conditions.by_trace),
        ("span_terms", &conditions.by_trace),
        ("traces", &conditions.by_time),
    ] {
        mutate(client, target, table, condition).await?;
    }
    wait_for_mutations(client, target).await?;
    mutate(client, target, "trace_index", &conditions.by_time).await?;
    if let Some(rollup) = &conditions.rollup {
        mutate(client, target, "trace_rollup", rollup).await?;
    }
    wait_for_mutations(client, target).await?;

    let now = version_now();
    let purged: Vec<DeletedTraceRow> = tombstones
        .into_iter()
        .map(|tombstone| DeletedTraceRow {
            purged: 1,
            version: now,
            ..tombstone
        })
        .collect();
    if !purged.is_empty() {
        super::metadata::insert(client, "deleted_traces", &purged).await?;
    }
    for (project_id, horizon) in &horizons {
        client
            .query(
                "INSERT INTO trace_horizons (project_id, horizon_ns, purged_to_ns) \
                 VALUES (?, ?, ?)",
            )
            .bind(project_id)
            .bind(horizon)
            .bind(horizon)
            .execute()
            .await
            .map_err(unavailable)?;
    }
    let mut by_project: HashMap<&str, Vec<&str>> = HashMap::new();
    for tombstone in &purged {
        by_project
            .entry(tombstone.project_id.as_str())
            .or_default()
            .push(tombstone.trace_id.as_str());
    }
    for (project_id, trace_ids) in by_project {
        refresh(client, project_id, &HashMap::new(), &trace_ids).await?;
    }
    tracing::info!(
        traces = report.traces,
        spans = report.spans,
        horizons = horizons.len(),
        "purged deleted traces from clickhouse"
    );
    Ok(report)
}

/// Retracts from the rollup the traces that spans sent after a deletion made of deleted ids
/// (their index entries at or above the tombstone's base version).
async fn retract_new_traces(client: &Client, tombstones: &[DeletedTraceRow]) -> StoreResult<()> {
    let mut reborn: HashMap<&str, HashMap<&str, u64>> = HashMap::new();
    for tombstone in tombstones.iter().filter(|row| row.reborn == 1) {
        reborn
            .entry(tombstone.project_id.as_str())
            .or_default()
            .insert(tombstone.trace_id.as_str(), tombstone.base_version);
    }
    for (project_id, bases) in reborn {
        let ids: Vec<&str> = bases.keys().copied().collect();
        let mut deltas = RollupDeltas::default();
        for chunk in ids.chunks(TRACE_IDS_PER_QUERY) {
            let entries: Vec<TraceIndexRow> = client
                .query(INDEX_OF_TRACES)
                .bind(project_id)
                .bind(chunk)
                .fetch_all()
                .await
                .map_err(unavailable)?;
            for entry in &entries {
                if bases
                    .get(entry.trace_id.as_str())
                    .is_some_and(|base| entry.version >= *base)
                {
                    deltas.retract(&facts_of(entry));
                }
            }
        }
        let rows = rollup_rows(project_id, deltas);
        if !rows.is_empty() {
            super::metadata::insert(client, "trace_rollup", &rows).await?;
        }
    }
    Ok(())
}

async fn count(client: &Client, table: &str, condition: &Sql) -> StoreResult<u64> {
    let sql = format!("SELECT count() FROM {table} WHERE {}", condition.text);
    bind(client.query(&sql), &condition.params)
        .fetch_one()
        .await
        .map_err(unavailable)
}

async fn mutate(client: &Client, target: &Target, table: &str, condition: &Sql) -> StoreResult<()> {
    bind(
        client.query(&target.delete_statement(table, &condition.text)),
        &condition.params,
    )
    .execute()
    .await
    .map_err(unavailable)
}

/// Waits until no mutation of the database is left to do (on a cluster: on the server this
/// client talks to).
async fn wait_for_mutations(client: &Client, target: &Target) -> StoreResult<()> {
    let deadline = tokio::time::Instant::now() + MUTATION_WAIT;
    loop {
        let running: u64 = client
            .query("SELECT count() FROM system.mutations WHERE database = ? AND is_done = 0")
            .bind(&target.database)
            .fetch_one()
            .await
            .map_err(unavailable)?;
        if running == 0 {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(StoreError::Unavailable(format!(
                "clickhouse: {running} mutations still running after {} s",
                MUTATION_WAIT.as_secs()
            )));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Removes the tombstones purged more than a week ago (not waited for).
async fn forget_old_tombstones(client: &Client, target: &Target, now: u64) -> StoreResult<()> {
    let before = now.saturating_sub(TOMBSTONE_KEEP_NS);
    let old: u64 = client
        .query("SELECT count() FROM deleted_traces FINAL WHERE purged = 1 AND deleted_at_ns < ?")
        .bind(before)
        .fetch_one()
        .await
        .map_err(unavailable)?;
    if old == 0 {
        return Ok(());
    }
    let condition = Sql {
        text: format!(
            "(project_id, trace_id) IN (SELECT project_id, trace_id FROM {}.deleted_traces \
             FINAL WHERE purged = 1 AND deleted_at_ns < ?)",
            target.database
        ),
        params: vec![Param::UInt(before)],
    };
    mutate(client, target, "deleted_traces", &condition).await
}

/// The query texts of this module with sample values (see `queries::sample_queries`).
pub fn sample_queries() -> Vec<(&'static str, String, Vec<&'static str>)> {
    let target = Target {
        database: "spanhouse".into(),
        cluster: None,
    };
    let conditions = conditions("spanhouse", &[10], &[("p".into(), 5)]);
    let rollup = conditions.rollup.expect("a horizon's cells");
    vec![
        (
            "tombstones_to_purge",
            TOMBSTONES_TO_PURGE.to_owned(),
            vec![],
        ),
        (
            "horizons_to_purge",
            HORIZONS_TO_PURGE.to_owned(),
            vec!["10"],
        ),
        (
            "purge_spans",
            target.delete_statement("spans", &conditions.written_before.text),
            vec!["10", "10", "'p'", "'p'", "5"],
        ),
        (
            "purge_terms",
            target.delete_statement("span_terms", &conditions.by_trace.text),
            vec!["10", "'p'", "'p'", "5"],
        ),
        (
            "purge_traces",
            target.delete_statement("traces", &conditions.by_time.text),
            vec!["10", "'p'", "5"],
        ),
        (
            "purge_rollup",
            target.delete_statement("trace_rollup", &rollup.text),
            vec!["'p'", "5"],
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_pass_deletes_each_deletions_rows_and_rows_before_each_horizon() {
        let pass = conditions("db", &[40, 42], &[("p".into(), 7), ("q".into(), 9)]);
        assert!(pass.written_before.text.starts_with(
            "0 OR ((project_id, trace_id) IN (SELECT project_id, trace_id FROM db.deleted_traces \
             WHERE purged = 0 AND deleted_at_ns = ?) AND version <= ?)"
        ));
        for sql in [&pass.written_before, &pass.by_trace, &pass.by_time] {
            assert_eq!(
                sql.text.matches('?').count(),
                sql.params.len(),
                "{}",
                sql.text
            );
        }
        assert!(pass.by_trace.text.contains("deleted_at_ns IN (?, ?)"));
        assert_eq!(
            pass.by_time.params,
            [
                Param::UInt(40),
                Param::UInt(42),
                Param::Text("p".into()),
                Param::UInt(7),
                Param::Text("q".into()),
                Param::UInt(9)
            ]
        );
        let rollup = pass.rollup.expect("horizons purge cells");
        assert_eq!(
            rollup.text,
            "0 OR (project_id = ? AND minute_ns < ?) OR (project_id = ? AND minute_ns < ?)"
        );
        let nothing = conditions("db", &[], &[]);
        assert!(nothing.rollup.is_none());
        assert_eq!(nothing.by_time.text, "0");
    }

    #[test]
    fn mutations_name_the_local_tables_of_a_cluster() {
        let single = Target {
            database: "db".into(),
            cluster: None,
        };
        assert_eq!(
            single.delete_statement("spans", "1"),
            "ALTER TABLE db.spans DELETE WHERE 1"
        );
        let cluster = Target {
            database: "db".into(),
            cluster: Some("analytics".into()),
        };
        assert_eq!(
            cluster.delete_statement("spans", "1"),
            "ALTER TABLE db.spans_local ON CLUSTER analytics DELETE WHERE 1"
        );
    }
}
