//! The read model, kept at delivery: after a batch's spans are inserted, the TraceRecords of
//! its traces are computed — from the spans in hand for a trace new to the store, else from all
//! its stored spans (so spans that came through other requests or other servers are counted) —
//! and stored in `traces`, ordered by time; `trace_index`
//! finds a trace's row by id and remembers what the dashboard's rollup counted for it; the
//! rollup (`trace_rollup`, summed by ClickHouse) gets the difference.
//!
//! A row's version grows with what it was computed from (more spans, or spans normalized again
//! later), so the newest computation wins in the ReplacingMergeTree whichever insert lands last.
//! A row whose timestamp moved leaves a tombstone at its old place. The refreshes of one server
//! run one at a time, so each starts from the index its predecessor wrote.

use std::collections::HashMap;

use clickhouse::{Client, Row};
use serde::Deserialize;

use super::queries::SPAN_COLUMNS;
use super::rows::{DeletedTraceRow, RollupRow, SpanRow, TraceIndexRow, TraceRow};
use super::tombstones::{Plan, TOMBSTONES_OF_TRACES, plan};
use super::trace_compute::trace_row;
use super::unavailable;
use crate::store::StoreResult;
use crate::store::rollup::RollupDeltas;
use crate::store::trace_stats::TraceFacts;

/// Trace ids in one query (bound into its text, which ClickHouse caps at 256 KiB).
pub const TRACE_IDS_PER_QUERY: usize = 2_000;

/// One refresh at a time in this process.
static REFRESH: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The version of a row computed from `span_count` spans, the newest normalized at
/// `max_span_version` (nanoseconds): more spans win, then later normalization (to 16.8 ms).
pub fn trace_version(span_count: u64, max_span_version: u64) -> u64 {
    const LOW_BITS: u32 = 40;
    (span_count.min((1 << (64 - LOW_BITS)) - 1) << LOW_BITS)
        | ((max_span_version >> 24) & ((1 << LOW_BITS) - 1))
}

/// The spans of some traces. Placeholders: project id, trace ids (an array).
pub fn spans_of_traces() -> String {
    format!(
        "SELECT {SPAN_COLUMNS} FROM spans FINAL \
         PREWHERE project_id = ? AND trace_id IN (SELECT arrayJoin(?))"
    )
}

/// The index entries of some traces. Placeholders: project id, trace ids (an array).
pub const INDEX_OF_TRACES: &str = "SELECT project_id, trace_id, timestamp_ns, version, is_error, \
    duration_ns, total_tokens, total_cost, models FROM trace_index FINAL \
    WHERE project_id = ? AND trace_id IN (SELECT arrayJoin(?))";

/// What the dashboard counts of a trace row.
pub fn facts_of(row: &TraceIndexRow) -> TraceFacts {
    TraceFacts {
        timestamp_unix_nano: row.timestamp_ns,
        is_error: row.is_error == 1,
        duration_ms: row.duration_ns as f64 / 1e6,
        total_tokens: row.total_tokens,
        total_cost: row.total_cost,
        models: row.models.clone(),
    }
}

fn index_entry(row: &TraceRow) -> TraceIndexRow {
    TraceIndexRow {
        project_id: row.project_id.clone(),
        trace_id: row.trace_id.clone(),
        timestamp_ns: row.timestamp_ns,
        version: row.version,
        is_error: u8::from(row.trace_status_code == 2),
        duration_ns: row.duration_ns,
        total_tokens: row.total_token_count.unwrap_or(0),
        total_cost: row.trace_total_cost.unwrap_or(0.0),
        models: row.models.clone(),
    }
}

/// The changes of one refresh: rows to store, index entries, rollup deltas.
#[derive(Default)]
pub struct Changes {
    /// New rows for `traces`, and tombstones at the old place of rows whose timestamp moved.
    pub traces: Vec<TraceRow>,
    /// The new rows' entries for `trace_index`.
    pub index: Vec<TraceIndexRow>,
    /// What `trace_rollup` gains and loses.
    pub rollup: RollupDeltas,
}

/// Decides what to store for freshly computed rows, given the index entries stored before.
/// `bases` raises the versions of traces deleted and sent again (`tombstones`): an entry below
/// its base is the deleted trace's, already retracted from the rollup, whose row is replaced.
pub fn changes(
    rows: Vec<TraceRow>,
    previous: &HashMap<String, TraceIndexRow>,
    bases: &HashMap<String, u64>,
) -> Changes {
    let mut changes = Changes::default();
    for mut row in rows {
        let base = bases.get(&row.trace_id).copied().unwrap_or(0);
        row.version = trace_version(row.span_count, row.version).saturating_add(base);
        let entry = index_entry(&row);
        if let Some(before) = previous.get(&row.trace_id) {
            let deleted = before.version < base;
            if before.version >= row.version {
                continue;
            }
            if !deleted {
                changes.rollup.retract(&facts_of(before));
            }
            if before.timestamp_ns != row.timestamp_ns {
                changes.traces.push(TraceRow {
                    project_id: row.project_id.clone(),
                    trace_id: row.trace_id.clone(),
                    timestamp_ns: before.timestamp_ns,
                    version: row.version,
                    deleted: 1,
                    ..TraceRow::default()
                });
            }
        }
        changes.rollup.add(&facts_of(&entry));
        changes.index.push(entry);
        changes.traces.push(row);
    }
    changes
}

/// The rollup rows of a set of deltas.
pub fn rollup_rows(project_id: &str, deltas: RollupDeltas) -> Vec<RollupRow> {
    deltas
        .into_cells()
        .into_iter()
        .map(|((minute_ns, model), cell)| {
            let (duration_bins, duration_counts) = cell.durations.bins().unzip();
            RollupRow {
                project_id: project_id.to_owned(),
                minute_ns,
                model,
                traces: cell.traces,
                errors: cell.errors,
                tokens: cell.tokens,
                cost_nanos: cell.cost_nanos,
                duration_bins,
                duration_counts,
            }
        })
        .collect()
}

async fn insert_rows<T>(client: &Client, table: &str, rows: &[T]) -> StoreResult<()>
where
    T: serde::Serialize,
    for<'a> T: Row<Value<'a> = T>,
{
    if rows.is_empty() {
        return Ok(());
    }
    super::metadata::insert(client, table, rows).await
}

/// Brings the read model of some traces of a project up to date with their stored spans.
/// `in_hand` holds the spans of the traces a delivery just inserted: a trace the index does not
/// know yet has its row computed from them; every other trace (and those of `stored_only`) is
/// computed from all its stored spans, read back.
pub async fn refresh(
    client: &Client,
    project_id: &str,
    in_hand: &HashMap<&str, Vec<&SpanRow>>,
    stored_only: &[&str],
) -> StoreResult<()> {
    let _one_at_a_time = REFRESH.lock().await;
    let mut trace_ids: Vec<&str> = in_hand
        .keys()
        .copied()
        .chain(stored_only.iter().copied())
        .collect();
    trace_ids.sort_unstable();
    trace_ids.dedup();
    for chunk in trace_ids.chunks(TRACE_IDS_PER_QUERY) {
        let tombstones: Vec<DeletedTraceRow> = client
            .query(TOMBSTONES_OF_TRACES)
            .bind(project_id)
            .bind(chunk)
            .fetch_all()
            .await
            .map_err(unavailable)?;
        let tombstones: HashMap<String, DeletedTraceRow> = tombstones
            .into_iter()
            .map(|row| (row.trace_id.clone(), row))
            .collect();
        let previous: Vec<TraceIndexRow> = client
            .query(INDEX_OF_TRACES)
            .bind(project_id)
            .bind(chunk)
            .fetch_all()
            .await
            .map_err(unavailable)?;
        let previous: HashMap<String, TraceIndexRow> = previous
            .into_iter()
            .map(|entry| (entry.trace_id.clone(), entry))
            .collect();
        let mut rows = Vec::new();
        let mut stored = Vec::new();
        for trace_id in chunk {
            match in_hand.get(trace_id) {
                Some(spans)
                    if !previous.contains_key(*trace_id) && !tombstones.contains_key(*trace_id) =>
                {
                    rows.push(trace_row(project_id, trace_id, spans)?);
                }
                _ => stored.push(*trace_id),
            }
        }
        let now = super::version_now();
        let mut bases = HashMap::new();
        let mut marks = Vec::new();
        let mut rearmed = Vec::new();
        if !stored.is_empty() {
            let spans: Vec<SpanRow> = client
                .query(&spans_of_traces())
                .bind(project_id)
                .bind(&stored)
                .fetch_all()
                .await
                .map_err(unavailable)?;
            let mut by_trace: HashMap<&str, Vec<&SpanRow>> = HashMap::new();
            for span in &spans {
                by_trace
                    .entry(span.trace_id.as_str())
                    .or_default()
                    .push(span);
            }
            for (trace_id, spans) in by_trace {
                let before = previous.get(trace_id);
                match plan(&spans, tombstones.get(trace_id), before, now) {
                    Plan::Compute {
                        spans,
                        base,
                        reborn,
                    } => {
                        if base > 0 {
                            bases.insert(trace_id.to_owned(), base);
                        }
                        marks.extend(reborn);
                        rows.push(trace_row(project_id, trace_id, &spans)?);
                    }
                    Plan::Skip => {}
                    Plan::Rearm(tombstone) => {
                        if let Some(before) = before {
                            rearmed.push(facts_of(before));
                        }
                        tracing::info!(
                            trace_id,
                            "spans of a deleted trace arrived after its purge; deleted again"
                        );
                        marks.push(tombstone);
                    }
                }
            }
        }
        let mut changes = changes(rows, &previous, &bases);
        for facts in &rearmed {
            changes.rollup.retract(facts);
        }
        insert_rows(client, "traces", &changes.traces).await?;
        insert_rows(
            client,
            "trace_rollup",
            &rollup_rows(project_id, changes.rollup),
        )
        .await?;
        // Last: a refresh that failed before this point is done again from the same start.
        insert_rows(client, "trace_index", &changes.index).await?;
        insert_rows(client, "deleted_traces", &marks).await?;
    }
    Ok(())
}

#[derive(Row, Deserialize)]
struct Claim {
    server: String,
}

/// Builds the read model from the spans stored before it existed (migration 3), online: one
/// server of a deployment does it (the earliest to claim it in the last hour), trace by trace
/// through [`refresh`], while deliveries go on. `server` names this server's claim (the same
/// in every attempt of one process). Returns the number of traces refreshed.
pub async fn build(client: &Client, server: &str) -> StoreResult<u64> {
    const NAME: &str = "read_model_3";
    let done: u64 = client
        .query("SELECT count() FROM read_model_builds WHERE name = ? AND done = 1")
        .bind(NAME)
        .fetch_one()
        .await
        .map_err(unavailable)?;
    if done > 0 {
        return Ok(0);
    }
    let now = crate::model::time::now_unix_nano();
    client
        .query(
            "INSERT INTO read_model_builds (name, server, started_at_ns, done) VALUES (?, ?, ?, 0)",
        )
        .bind(NAME)
        .bind(server)
        .bind(now)
        .execute()
        .await
        .map_err(unavailable)?;
    // Let the claims of servers starting together land, then the earliest one builds.
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    let first: Option<Claim> = client
        .query(
            "SELECT server FROM read_model_builds WHERE name = ? AND done = 0 \
             AND started_at_ns >= ? ORDER BY started_at_ns, server LIMIT 1",
        )
        .bind(NAME)
        .bind(now.saturating_sub(3_600_000_000_000))
        .fetch_optional()
        .await
        .map_err(unavailable)?;
    if first.is_none_or(|claim| claim.server != server) {
        return Ok(0);
    }
    let projects: Vec<String> = client
        .query("SELECT DISTINCT project_id FROM spans")
        .fetch_all()
        .await
        .map_err(unavailable)?;
    let mut built = 0u64;
    for project_id in &projects {
        // A sixteenth of the project's traces at a time, in bounded memory.
        for part in 0..16u64 {
            let trace_ids: Vec<String> = client
                .query(
                    "SELECT DISTINCT trace_id FROM spans \
                     WHERE project_id = ? AND cityHash64(trace_id) % 16 = ?",
                )
                .bind(project_id)
                .bind(part)
                .fetch_all()
                .await
                .map_err(unavailable)?;
            let ids: Vec<&str> = trace_ids.iter().map(String::as_str).collect();
            refresh(client, project_id, &HashMap::new(), &ids).await?;
            built += ids.len() as u64;
        }
    }
    client
        .query(
            "INSERT INTO read_model_builds (name, server, started_at_ns, done) VALUES (?, ?, ?, 1)",
        )
        .bind(NAME)
        .bind(server)
        .bind(crate::model::time::now_unix_nano())
        .execute()
        .await
        .map_err(unavailable)?;
    tracing::info!(
        traces = built,
        "built the clickhouse read model from stored spans"
    );
    Ok(built)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(trace: &str, timestamp: u64, spans: u64, span_version: u64) -> TraceRow {
        TraceRow {
            project_id: "p".into(),
            trace_id: trace.into(),
            timestamp_ns: timestamp,
            span_count: spans,
            version: span_version,
            duration_ns: 2_000_000,
            ..TraceRow::default()
        }
    }

    #[test]
    fn versions_grow_with_spans_then_with_normalization() {
        assert!(trace_version(2, 1 << 30) > trace_version(1, u64::MAX));
        assert!(trace_version(2, 2 << 30) > trace_version(2, 1 << 30));
    }

    #[test]
    fn a_moved_trace_leaves_a_tombstone_and_moves_in_the_rollup() {
        let first = changes(
            vec![row("t", 120_000_000_000, 1, 1 << 30)],
            &HashMap::new(),
            &HashMap::new(),
        );
        assert_eq!(first.traces.len(), 1);
        let previous: HashMap<String, TraceIndexRow> = first
            .index
            .iter()
            .map(|entry| (entry.trace_id.clone(), entry.clone()))
            .collect();
        let second = changes(vec![row("t", 5, 2, 1 << 30)], &previous, &HashMap::new());
        assert_eq!(second.traces.len(), 2);
        assert_eq!(second.traces[0].deleted, 1);
        assert_eq!(second.traces[0].timestamp_ns, 120_000_000_000);
        let cells = second.rollup.into_cells();
        let minutes: Vec<(u64, i64)> = cells.iter().map(|((m, _), c)| (*m, c.traces)).collect();
        assert_eq!(minutes, [(0, 1), (120_000_000_000, -1)]);
        // The same computation again changes nothing.
        let again = changes(
            vec![row("t", 5, 2, 1 << 30)],
            &{
                let mut index = previous.clone();
                index.insert("t".into(), second.index[0].clone());
                index
            },
            &HashMap::new(),
        );
        assert!(again.traces.is_empty() && again.rollup.is_empty());
    }
}
