//! Deleting traces on ClickHouse: what a deletion does at once, so that every server's reads
//! leave the traces out from its answer on (`hidden`); `purge` removes their rows later.
//!
//! - By id or by filter: the traces' figures are retracted from the dashboard's rollup (as a
//!   refresh retracts a trace's old figures), then a tombstone per trace goes to
//!   `deleted_traces`. Only traces the read model shows are deleted (and counted); one already
//!   deleted is not retracted twice.
//! - Retention (`[0, cutoff)` without a filter): the project's horizon in `trace_horizons` moves
//!   to the cutoff's minute (never back), one row whatever the number of traces; the rollup's
//!   cells before it are left out of stats by the same horizon.
//!
//! ClickHouse has no transactions: the rollup is retracted before the tombstones are written,
//! so a deletion that fails between the two and is retried leaves the dashboard short of those
//! traces, rather than showing deleted traces.

use clickhouse::Client;

use super::filter_sql::{Sql, bind, trace_split};
use super::hidden::{HORIZON, visible_trace};
use super::metadata::insert;
use super::queries::matching_trace_ids;
use super::read::filter_error;
use super::rows::{DeletedTraceRow, TraceIndexRow};
use super::trace_rows::{TRACE_IDS_PER_QUERY, facts_of, rollup_rows};
use super::{unavailable, version_now};
use crate::filter::query::TraceFilter;
use crate::model::TraceId;
use crate::store::rollup::{RollupDeltas, minute_of};
use crate::store::{StoreResult, TraceSelection};

/// The index entries of the traces among some ids that reads show. Placeholders: project id,
/// trace ids (an array), project id twice.
pub fn visible_index_entries() -> String {
    format!(
        "SELECT project_id, trace_id, timestamp_ns, version, is_error, duration_ns, \
         total_tokens, total_cost, models FROM trace_index FINAL \
         WHERE project_id = ? AND trace_id IN (SELECT arrayJoin(?)) AND {}",
        visible_trace()
    )
}

/// How many traces of a window reads show. Placeholders: project id, window start, window end,
/// project id twice.
pub fn visible_trace_count() -> String {
    format!(
        "SELECT count() FROM traces FINAL WHERE project_id = ? AND timestamp_ns >= ? \
         AND timestamp_ns < ? AND deleted = 0 AND {}",
        visible_trace()
    )
}

/// Placeholders: project id.
fn current_horizon() -> String {
    format!("SELECT {HORIZON}")
}

pub async fn delete_traces(
    client: &Client,
    project_id: &str,
    selection: &TraceSelection,
) -> StoreResult<u64> {
    match selection {
        TraceSelection::Ids(ids) => {
            let ids: Vec<String> = ids.iter().map(TraceId::to_hex).collect();
            delete_ids(client, project_id, &ids).await
        }
        TraceSelection::Matching {
            start_unix_nano: 0,
            end_unix_nano,
            filter: None,
        } => move_horizon(client, project_id, *end_unix_nano).await,
        TraceSelection::Matching {
            start_unix_nano,
            end_unix_nano,
            filter,
        } => {
            let ids = matching_ids(
                client,
                project_id,
                *start_unix_nano,
                *end_unix_nano,
                filter.as_deref(),
            )
            .await?;
            delete_ids(client, project_id, &ids).await
        }
    }
}

/// The ids of the traces of a window that the filter matches and reads show.
async fn matching_ids(
    client: &Client,
    project_id: &str,
    start_unix_nano: u64,
    end_unix_nano: u64,
    filter: Option<&TraceFilter>,
) -> StoreResult<Vec<String>> {
    let split = filter
        .map(|filter| trace_split(project_id, filter))
        .unwrap_or_default();
    let always = Sql {
        text: "1".into(),
        params: Vec::new(),
    };
    let prewhere = split.prewhere.as_ref().unwrap_or(&always);
    let rest = split.rest.as_ref().unwrap_or(&always);
    let statement = client
        .query(&matching_trace_ids(&prewhere.text, &rest.text))
        .bind(project_id)
        .bind(start_unix_nano)
        .bind(end_unix_nano);
    let statement = bind(statement, &prewhere.params)
        .bind(project_id)
        .bind(project_id);
    bind(statement, &rest.params)
        .fetch_all()
        .await
        .map_err(filter_error)
}

/// Deletes the traces among `ids` (hex) that reads show: rollup first, then tombstones.
async fn delete_ids(client: &Client, project_id: &str, ids: &[String]) -> StoreResult<u64> {
    let mut deleted = 0u64;
    let sql = visible_index_entries();
    // One deletion time for the whole selection: a purge removes a deletion's traces together.
    let now = version_now();
    for chunk in ids.chunks(TRACE_IDS_PER_QUERY) {
        let entries: Vec<TraceIndexRow> = client
            .query(&sql)
            .bind(project_id)
            .bind(chunk)
            .bind(project_id)
            .bind(project_id)
            .fetch_all()
            .await
            .map_err(unavailable)?;
        if entries.is_empty() {
            continue;
        }
        let mut rollup = RollupDeltas::default();
        for entry in &entries {
            rollup.retract(&facts_of(entry));
        }
        let rollup = rollup_rows(project_id, rollup);
        if !rollup.is_empty() {
            insert(client, "trace_rollup", &rollup).await?;
        }
        let tombstones: Vec<DeletedTraceRow> = entries
            .iter()
            .map(|entry| DeletedTraceRow {
                project_id: project_id.to_owned(),
                trace_id: entry.trace_id.clone(),
                deleted_at_ns: now,
                base_version: entry.version.saturating_add(1),
                reborn: 0,
                purged: 0,
                version: now,
            })
            .collect();
        insert(client, "deleted_traces", &tombstones).await?;
        deleted += tombstones.len() as u64;
    }
    Ok(deleted)
}

/// Retention: hides every trace before `cutoff`'s minute (a horizon is a whole minute, so the
/// rollup's cells leave stats exactly; traces of the cutoff's own minute go at the next pass).
async fn move_horizon(client: &Client, project_id: &str, cutoff: u64) -> StoreResult<u64> {
    let horizon = minute_of(cutoff);
    let current: u64 = client
        .query(&current_horizon())
        .bind(project_id)
        .fetch_one()
        .await
        .map_err(unavailable)?;
    if horizon <= current {
        return Ok(0);
    }
    let hidden: u64 = client
        .query(&visible_trace_count())
        .bind(project_id)
        .bind(current)
        .bind(horizon)
        .bind(project_id)
        .bind(project_id)
        .fetch_one()
        .await
        .map_err(unavailable)?;
    client
        .query("INSERT INTO trace_horizons (project_id, horizon_ns, purged_to_ns) VALUES (?, ?, 0)")
        .bind(project_id)
        .bind(horizon)
        .execute()
        .await
        .map_err(unavailable)?;
    Ok(hidden)
}

/// The query texts of this module with sample values (see `queries::sample_queries`).
pub fn sample_queries() -> Vec<(&'static str, String, Vec<&'static str>)> {
    vec![
        (
            "visible_index_entries",
            visible_index_entries(),
            vec!["'p'", "['t']", "'p'", "'p'"],
        ),
        (
            "visible_trace_count",
            visible_trace_count(),
            vec!["'p'", "0", "10", "'p'", "'p'"],
        ),
        ("current_horizon", current_horizon(), vec!["'p'"]),
        (
            "tombstones_of_traces",
            super::tombstones::TOMBSTONES_OF_TRACES.to_owned(),
            vec!["'p'", "['t']"],
        ),
        (
            "trace_state",
            super::hidden::trace_state(),
            vec!["'p'", "'t'", "'p'", "'t'", "'p'"],
        ),
    ]
}
