//! The dashboard's rollup on SQLite: `trace_rollup` holds a [`RollupCell`] per project, minute
//! and model (`""`: every trace of the minute), changed in the writer's transaction that writes
//! the trace rows: each replaced row's figures are taken back and the new row's added
//! ([`RollupChanges`]), then every cell that changed is read, merged and written once.
//!
//! A row's figures are always read from the text the row stores ([`facts_of_row`]), for the row
//! being written as for the row it replaces, so that taking a row back cancels what adding it
//! counted, bit for bit.

use std::collections::HashMap;

use rusqlite::{Connection, OptionalExtension, Row, Transaction, params};
use serde::Deserialize;

use crate::store::rollup::{RollupCell, RollupDeltas, RollupKey};
use crate::store::sketch::DurationSketch;
use crate::store::trace_stats::TraceFacts;
use crate::store::{StoreError, StoreResult};

/// The figures of a trace row's `record` that the rollup counts; any that is missing, `null`
/// or unreadable counts as 0.
#[derive(Default, Deserialize)]
struct RecordFigures {
    #[serde(default)]
    duration_ms: Option<f64>,
    #[serde(default)]
    total_token_count: Option<i64>,
    #[serde(default)]
    total_cost: Option<f64>,
}

/// What a trace row counts in the rollup, from its columns as stored: `timestamp_ns`,
/// `status`, the models of `models` and the figures of `record` (a record that cannot be read
/// counts its trace with no duration, tokens or cost, the same whenever it is read).
pub(super) fn facts_of_row(
    timestamp_ns: i64,
    status: &str,
    models: Vec<String>,
    record_json: &str,
) -> TraceFacts {
    let figures: RecordFigures = serde_json::from_str(record_json).unwrap_or_default();
    TraceFacts {
        timestamp_unix_nano: timestamp_ns as u64,
        is_error: status == "error",
        duration_ms: figures.duration_ms.unwrap_or(0.0),
        total_tokens: figures.total_token_count.unwrap_or(0),
        total_cost: figures.total_cost.unwrap_or(0.0),
        models,
    }
}

/// The changes a write transaction makes to the rollup, by project.
#[derive(Default)]
pub(super) struct RollupChanges {
    projects: HashMap<String, RollupDeltas>,
}

impl RollupChanges {
    fn deltas(&mut self, project_id: &str) -> &mut RollupDeltas {
        if !self.projects.contains_key(project_id) {
            self.projects
                .insert(project_id.to_owned(), RollupDeltas::default());
        }
        self.projects.get_mut(project_id).expect("inserted above")
    }

    /// Counts a trace row being written.
    pub(super) fn add(&mut self, project_id: &str, facts: &TraceFacts) {
        self.deltas(project_id).add(facts);
    }

    /// Takes back the row a trace had before this transaction.
    pub(super) fn retract(&mut self, project_id: &str, facts: &TraceFacts) {
        self.deltas(project_id).retract(facts);
    }

    /// Applies the changes: each cell that changes is read, merged and written (or deleted
    /// once it counts nothing), one statement pair per cell, not per trace.
    pub(super) fn write(self, transaction: &Transaction<'_>) -> StoreResult<()> {
        if self.projects.values().all(RollupDeltas::is_empty) {
            return Ok(());
        }
        let mut cells = CellWriter::new(transaction)?;
        for (project_id, deltas) in self.projects {
            for (key, delta) in deltas.into_cells() {
                cells.merge(&project_id, &key, &delta)?;
            }
        }
        Ok(())
    }
}

/// Reads, merges and writes cells of `trace_rollup`.
struct CellWriter<'t> {
    select: rusqlite::CachedStatement<'t>,
    upsert: rusqlite::CachedStatement<'t>,
    delete: rusqlite::CachedStatement<'t>,
}

impl<'t> CellWriter<'t> {
    fn new(connection: &'t Connection) -> StoreResult<Self> {
        Ok(Self {
            select: connection.prepare_cached(
                "SELECT traces, errors, tokens, cost_nanos, durations FROM trace_rollup
                 WHERE project_id = ?1 AND minute_ns = ?2 AND model = ?3",
            )?,
            upsert: connection.prepare_cached(
                "INSERT OR REPLACE INTO trace_rollup
                     (project_id, minute_ns, model, traces, errors, tokens, cost_nanos, durations)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )?,
            delete: connection.prepare_cached(
                "DELETE FROM trace_rollup WHERE project_id = ?1 AND minute_ns = ?2 AND model = ?3",
            )?,
        })
    }

    /// Adds `delta` to the stored cell of `key`.
    fn merge(&mut self, project_id: &str, key: &RollupKey, delta: &RollupCell) -> StoreResult<()> {
        let (minute, model) = key;
        let minute = *minute as i64;
        let stored = self
            .select
            .query_row(params![project_id, minute, model], |row| {
                cell_from_row(row, 0)
            })
            .optional()?
            .transpose()?;
        let mut cell = stored.unwrap_or_default();
        cell.merge(delta);
        if cell.is_zero() {
            self.delete.execute(params![project_id, minute, model])?;
        } else {
            self.upsert.execute(params![
                project_id,
                minute,
                model,
                cell.traces,
                cell.errors,
                cell.tokens,
                cell.cost_nanos,
                cell.durations.encode(),
            ])?;
        }
        Ok(())
    }
}

/// The cell of a row whose columns from `first` on are `traces, errors, tokens, cost_nanos,
/// durations`.
pub(super) fn cell_from_row(
    row: &Row<'_>,
    first: usize,
) -> rusqlite::Result<StoreResult<RollupCell>> {
    let durations = DurationSketch::decode(row.get_ref(first + 4)?.as_blob()?)
        .map_err(|error| StoreError::Corrupt(format!("trace rollup: {error}")));
    let traces = row.get(first)?;
    let errors = row.get(first + 1)?;
    let tokens = row.get(first + 2)?;
    let cost_nanos = row.get(first + 3)?;
    Ok(durations.map(|durations| RollupCell {
        traces,
        errors,
        tokens,
        cost_nanos,
        durations,
    }))
}

/// Fills `trace_rollup` from the stored trace rows, in one pass: a store made before the
/// rollup existed gets it when it migrates (in the migration's transaction).
pub(super) fn rebuild(transaction: &Transaction<'_>) -> StoreResult<()> {
    transaction.execute("DELETE FROM trace_rollup", [])?;
    let mut changes = RollupChanges::default();
    {
        let mut statement = transaction
            .prepare("SELECT project_id, timestamp_ns, status, models, record FROM traces")?;
        let mut rows = statement.query([])?;
        while let Some(row) = rows.next()? {
            let text = |index| -> StoreResult<&str> {
                row.get_ref(index)?
                    .as_str()
                    .map_err(|error| StoreError::Corrupt(format!("trace row: {error}")))
            };
            let models = serde_json::from_str(text(3)?).unwrap_or_default();
            let facts = facts_of_row(row.get(1)?, text(2)?, models, text(4)?);
            changes.add(text(0)?, &facts);
        }
    }
    changes.write(transaction)
}
