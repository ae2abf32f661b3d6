//! Deleting traces on the embedded store (SPEC §9): a deletion finds the rowids of the traces it
//! selects on a reader, then removes them in the writer, [`DELETE_BATCH`] traces per
//! transaction, so that ingest goes on between batches.
//!
//! One transaction removes all that a trace is: its row in `traces` (its figures taken back
//! from the rollup), its `trace_models` rows, its spans and their terms, its content events
//! and scores; the parts of its spans in blocks shared with other traces are zeroed and the
//! blocks compressed again (a block left with nothing is deleted). Reads never see a trace
//! half deleted. The transaction runs with `secure_delete` on: the cells it frees and the pages
//! it empties are overwritten with zeros, so the deleted content is gone from the database's
//! pages once they are copied out of the WAL. Each trace leaves a row in `purge_pending`: the
//! purge (`purge`) re-indexes its group of the text index and truncates the WALs.

use std::collections::BTreeMap;

use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use super::filter_plan;
use super::rollup::{RollupChanges, facts_of_row};
use super::search::GROUP_TRACES;
use crate::filter::query::TraceFilter;
use crate::store::codec::{BlockPart, Compression, compress_packed, decompress_packed};
use crate::store::{StoreError, StoreResult, TraceSelection};

/// Traces deleted per transaction of the writer: a few tens of milliseconds of its time, so
/// that a retention of a million traces lets the ingest batches in between.
pub(super) const DELETE_BATCH: usize = 500;

/// The rowids of the project's traces that `selection` names, ascending.
pub(super) fn selected_rowids(
    connection: &Connection,
    project_id: &str,
    selection: &TraceSelection,
) -> StoreResult<Vec<i64>> {
    let mut rowids = match selection {
        TraceSelection::Ids(ids) => {
            let mut find = connection.prepare_cached(
                "SELECT rowid FROM traces WHERE project_id = ?1 AND trace_id = ?2",
            )?;
            let mut rowids = Vec::with_capacity(ids.len());
            for id in ids {
                if let Some(rowid) = find
                    .query_row(params![project_id, id.as_bytes()], |row| row.get(0))
                    .optional()?
                {
                    rowids.push(rowid);
                }
            }
            rowids
        }
        TraceSelection::Matching {
            start_unix_nano,
            end_unix_nano,
            filter,
        } => window_rowids(
            connection,
            project_id,
            (*start_unix_nano, *end_unix_nano),
            filter.as_deref(),
        )?,
    };
    rowids.sort_unstable();
    rowids.dedup();
    Ok(rowids)
}

fn window_rowids(
    connection: &Connection,
    project_id: &str,
    (start, end): (u64, u64),
    filter: Option<&TraceFilter>,
) -> StoreResult<Vec<i64>> {
    let (sql, values) = match filter {
        Some(filter) => filter_plan::matching_rowids(connection, project_id, filter, (start, end))?,
        None => (
            WINDOW_ROWIDS.to_owned(),
            vec![
                SqlValue::Text(project_id.to_owned()),
                SqlValue::Integer(start.min(i64::MAX as u64) as i64),
                SqlValue::Integer(end.min(i64::MAX as u64) as i64),
            ],
        ),
    };
    let mut statement = connection.prepare_cached(&sql)?;
    let rowids = statement
        .query_map(rusqlite::params_from_iter(values.iter()), |row| row.get(0))?
        .collect::<rusqlite::Result<Vec<i64>>>()?;
    Ok(rowids)
}

/// Every trace of a window (retention's `[0, cutoff)`): a range of the time index.
pub(super) const WINDOW_ROWIDS: &str = "SELECT rowid FROM traces INDEXED BY traces_by_time
    WHERE project_id = ?1 AND timestamp_ns >= ?2 AND timestamp_ns < ?3";

/// A trace's row as the deletion reads it.
struct DeletedRow {
    trace_id: Vec<u8>,
    timestamp_ns: i64,
    status: String,
    models: String,
    record: String,
}

/// Deletes the traces of the project with these rowids (one transaction; rowids of another
/// project's traces, or of traces deleted already, are skipped). Returns how many it deleted.
pub(super) fn delete_rows(
    connection: &mut Connection,
    project_id: &str,
    rowids: &[i64],
    compression: Compression,
) -> StoreResult<u64> {
    connection.pragma_update(None, "secure_delete", "ON")?;
    let deleted = delete_in_transaction(connection, project_id, rowids, compression);
    // Back to the writer's setting: ingest frees no pages worth zeroing.
    connection.pragma_update(
        None,
        "secure_delete",
        super::connection::WRITER_SECURE_DELETE,
    )?;
    deleted
}

fn delete_in_transaction(
    connection: &mut Connection,
    project_id: &str,
    rowids: &[i64],
    compression: Compression,
) -> StoreResult<u64> {
    let transaction = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut rollup = RollupChanges::default();
    // Block id → the parts of deleted spans in it.
    let mut block_parts: BTreeMap<i64, Vec<BlockPart>> = BTreeMap::new();
    let mut deleted = 0;
    {
        let mut find = transaction.prepare_cached(
            "SELECT trace_id, timestamp_ns, status, models, record FROM traces
             WHERE rowid = ?1 AND project_id = ?2",
        )?;
        let mut delete_model = transaction.prepare_cached(
            "DELETE FROM trace_models
             WHERE project_id = ?1 AND model = ?2 AND timestamp_ns = ?3 AND trace_id = ?4",
        )?;
        let mut spans_of = transaction.prepare_cached(
            "SELECT rowid, body FROM spans INDEXED BY spans_by_trace WHERE trace_key = ?1",
        )?;
        let mut delete_terms = transaction.prepare_cached(
            "DELETE FROM span_terms INDEXED BY span_terms_by_span WHERE span_key = ?1",
        )?;
        let mut delete_spans = transaction
            .prepare_cached("DELETE FROM spans INDEXED BY spans_by_trace WHERE trace_key = ?1")?;
        let mut delete_content = transaction.prepare_cached(
            "DELETE FROM span_content_events WHERE project_id = ?1 AND trace_id = ?2",
        )?;
        let mut delete_scores = transaction.prepare_cached(
            "DELETE FROM scores INDEXED BY scores_by_trace WHERE project_id = ?1 AND trace_id = ?2",
        )?;
        let mut delete_trace = transaction.prepare_cached("DELETE FROM traces WHERE rowid = ?1")?;
        let mut pending = transaction
            .prepare_cached("INSERT INTO purge_pending (text_group, spans) VALUES (?1, ?2)")?;
        for &rowid in rowids {
            let row = find
                .query_row(params![rowid, project_id], |row| {
                    Ok(DeletedRow {
                        trace_id: row.get(0)?,
                        timestamp_ns: row.get(1)?,
                        status: row.get(2)?,
                        models: row.get(3)?,
                        record: row.get(4)?,
                    })
                })
                .optional()?;
            let Some(row) = row else { continue };
            let models: Vec<String> = serde_json::from_str(&row.models).unwrap_or_default();
            for model in &models {
                delete_model.execute(params![project_id, model, row.timestamp_ns, row.trace_id])?;
            }
            rollup.retract(
                project_id,
                &facts_of_row(row.timestamp_ns, &row.status, models, &row.record),
            );
            let spans = spans_of
                // Bodies of early versions are TEXT (JSON), later ones BLOBs.
                .query_map([rowid], |span| {
                    let body = span.get_ref(1)?.as_bytes()?.to_vec();
                    Ok((span.get::<_, i64>(0)?, body))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            for (span_key, body) in &spans {
                delete_terms.execute([span_key])?;
                if let Some(part) = BlockPart::of_body(body) {
                    let part = part?;
                    block_parts.entry(part.block).or_default().push(part);
                }
            }
            delete_spans.execute([rowid])?;
            delete_content.execute(params![project_id, row.trace_id])?;
            delete_scores.execute(params![project_id, row.trace_id])?;
            delete_trace.execute([rowid])?;
            pending.execute(params![rowid.div_euclid(GROUP_TRACES), spans.len() as i64])?;
            deleted += 1;
        }
    }
    for (block, parts) in block_parts {
        erase_parts(&transaction, block, &parts, compression)?;
    }
    rollup.write(&transaction)?;
    transaction.commit()?;
    Ok(deleted)
}

/// Zeroes `parts` of a block and stores it compressed again; deletes it when nothing else is
/// left in it. The other spans' parts keep their places, so their bodies stay as they are.
fn erase_parts(
    connection: &Connection,
    block: i64,
    parts: &[BlockPart],
    compression: Compression,
) -> StoreResult<()> {
    let data: Option<Vec<u8>> = connection
        .prepare_cached("SELECT data FROM span_blocks WHERE id = ?1")?
        .query_row([block], |row| row.get(0))
        .optional()?;
    let Some(data) = data else {
        return Ok(());
    };
    let mut packed = decompress_packed(&data)?;
    let packed_len = packed.len();
    for part in parts {
        let start = part.start as usize;
        let end = start.saturating_add(part.len as usize);
        let Some(bytes) = packed.get_mut(start..end) else {
            return Err(StoreError::Corrupt(format!(
                "span body: bytes {start}..{end} of block {block}, of {packed_len} bytes"
            )));
        };
        bytes.fill(0);
    }
    // A span's MessagePack is never all zeros: a block of zeros holds no span.
    if packed.iter().all(|byte| *byte == 0) {
        connection
            .prepare_cached("DELETE FROM span_blocks WHERE id = ?1")?
            .execute([block])?;
    } else {
        connection
            .prepare_cached("UPDATE span_blocks SET data = ?2 WHERE id = ?1")?
            .execute(params![block, compress_packed(&packed, compression)])?;
    }
    Ok(())
}
