//! The purge: what a deletion of traces (`delete`) leaves beside the rows it removed, taken
//! away on connections of its own, off the writer's thread.
//!
//! - The text index: each deleted trace's group of `search.sqlite` is indexed again from the
//!   texts of the traces left in it (or its entry deleted), with FTS5's `secure-delete` on, so
//!   that the entry's trigrams are removed from the index's segments rather than hidden by a
//!   tombstone; the search file runs with `secure_delete` on for that transaction.
//! - The WALs: the deletion's pages were written zeroed to `spanhouse.db-wal`, while older
//!   frames of the WAL may still hold the deleted content. A `TRUNCATE` checkpoint copies the
//!   WAL into the database file and empties it; the same for `search.sqlite-wal`.
//!
//! The pages the deletions emptied go to the files' free lists (zeroed) and new data reuses
//! them: the files do not shrink, they stop growing until the space is used again.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rusqlite::wal::CheckpointMode;
use rusqlite::{Connection, ErrorCode, OptionalExtension, TransactionBehavior, params};

use super::search::{GROUP_TRACES, Trigrams};
use super::text::TraceText;
use super::{Synchronous, open_connection, open_wal};
use crate::store::{PurgeReport, StoreResult};

/// Entries written again by one purge (groups that kept some traces) past which the text index
/// is merged into one segment (FTS5's `optimize`): the entries made again are a new segment
/// beside the old ones, whose pages only a merge frees for reuse (a purge that re-indexed every
/// group of 100,000 traces grew the file by 60 %). Retention empties whole groups, which writes
/// nothing again, and leaves the merging to FTS5's own.
const OPTIMIZE_FROM_GROUPS: usize = 1_000;

/// Groups re-indexed per transaction of the search file: the indexer waits for the lock
/// meanwhile.
const GROUPS_PER_TRANSACTION: usize = 250;

/// Tries of a `TRUNCATE` checkpoint that found readers or a writer in the way.
const CHECKPOINT_TRIES: u32 = 10;

/// Purges what the deletions recorded in `purge_pending` left. Returns the traces and spans
/// whose removal it completed; nothing to do answers zeros and touches no file.
///
/// `unfinished` is set when a checkpoint could not empty a WAL, and makes the next purge try
/// the checkpoints again even with nothing pending.
pub(super) fn purge(
    main_path: &Path,
    search_path: &Path,
    synchronous: Synchronous,
    unfinished: &AtomicBool,
) -> StoreResult<PurgeReport> {
    let main = open_connection(main_path, synchronous)?;
    let (last_id, traces, spans): (Option<i64>, i64, i64) = main.query_row(
        "SELECT MAX(id), COUNT(*), COALESCE(SUM(spans), 0) FROM purge_pending",
        [],
        |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
    )?;
    let Some(last_id) = last_id else {
        if unfinished.swap(false, Ordering::SeqCst) {
            checkpoint_both(&main, search_path, unfinished)?;
        }
        return Ok(PurgeReport::default());
    };
    let groups: Vec<i64> = main
        .prepare("SELECT DISTINCT text_group FROM purge_pending WHERE id <= ?1")?
        .query_map([last_id], |row| row.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    if search_path.exists() {
        let mut search = open_wal(search_path)?;
        search.pragma_update(None, "synchronous", "NORMAL")?;
        search.pragma_update(None, "secure_delete", "ON")?;
        let mut rewritten = 0;
        for chunk in groups.chunks(GROUPS_PER_TRANSACTION) {
            rewritten += reindex_groups(&main, &mut search, chunk)?;
        }
        if rewritten >= OPTIMIZE_FROM_GROUPS {
            search.execute(
                "INSERT INTO traces_text (traces_text) VALUES ('optimize')",
                [],
            )?;
        }
    }
    main.execute("DELETE FROM purge_pending WHERE id <= ?1", [last_id])?;
    checkpoint_both(&main, search_path, unfinished)?;
    Ok(PurgeReport {
        traces: traces as u64,
        spans: spans as u64,
    })
}

/// Indexes `groups` again from the texts of the traces left in them, in one transaction of
/// the search file (`search`, with `secure_delete` on). The texts are read after its write lock is taken: the indexer reads its
/// texts under the same lock, so whichever of the two comes second reads the other's result
/// and no entry is made from texts of a trace deleted before.
/// Returns how many entries it wrote again.
fn reindex_groups(
    main: &Connection,
    search: &mut Connection,
    groups: &[i64],
) -> StoreResult<usize> {
    let transaction = search.transaction_with_behavior(TransactionBehavior::Immediate)?;
    // A search file not made yet (or being rebuilt): the indexer indexes every trace left.
    let max_group: Option<i64> = transaction
        .query_row("SELECT max_rowid FROM index_state", [], |row| row.get(0))
        .optional()
        .ok()
        .flatten();
    let Some(max_group) = max_group else {
        return Ok(0);
    };
    let mut rewritten = 0;
    transaction.execute(
        "INSERT INTO traces_text (traces_text, rank) VALUES ('secure-delete', 1)",
        [],
    )?;
    {
        let mut texts_of = main
            .prepare_cached("SELECT input, output FROM traces WHERE rowid >= ?1 AND rowid < ?2")?;
        let mut forget = transaction.prepare_cached("DELETE FROM traces_text WHERE rowid = ?1")?;
        let mut add =
            transaction.prepare_cached("INSERT INTO traces_text (rowid, grams) VALUES (?1, ?2)")?;
        let mut trigrams = Trigrams::default();
        for &group in groups {
            if group > max_group {
                continue;
            }
            let texts = texts_of
                .query_map([group * GROUP_TRACES, (group + 1) * GROUP_TRACES], |row| {
                    Ok([row.get::<_, TraceText>(0)?.0, row.get::<_, TraceText>(1)?.0])
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            forget.execute([group])?;
            trigrams.clear();
            for text in texts.iter().flatten().flatten() {
                trigrams.add(text);
            }
            if !trigrams.is_empty() {
                add.execute(params![group, trigrams.tokens()])?;
                rewritten += 1;
            }
        }
    }
    // The indexer's own re-indexing, which deletes an entry for each group it indexes again,
    // does not pay for the secure deletion.
    transaction.execute(
        "INSERT INTO traces_text (traces_text, rank) VALUES ('secure-delete', 0)",
        [],
    )?;
    transaction.commit()?;
    Ok(rewritten)
}

/// Empties both WALs; `unfinished` is set when one stays busy.
fn checkpoint_both(
    main: &Connection,
    search_path: &Path,
    unfinished: &AtomicBool,
) -> StoreResult<()> {
    let mut done = true;
    if search_path.exists() {
        done &= checkpoint_truncate(&open_wal(search_path)?, "search.sqlite");
    }
    done &= checkpoint_truncate(main, "spanhouse.db");
    if !done {
        unfinished.store(true, Ordering::SeqCst);
    }
    Ok(())
}

/// Copies the WAL into the database and empties it, waiting for readers a little; `false`
/// when it stayed busy.
fn checkpoint_truncate(connection: &Connection, name: &str) -> bool {
    for _ in 0..CHECKPOINT_TRIES {
        match connection.wal_checkpoint_v2(None::<&str>, CheckpointMode::TRUNCATE) {
            Ok(_) => return true,
            Err(error) if error.sqlite_error_code() == Some(ErrorCode::DatabaseBusy) => {
                std::thread::sleep(Duration::from_millis(200));
            }
            Err(error) => {
                tracing::warn!(%error, file = name, "the purge's checkpoint failed");
                return false;
            }
        }
    }
    tracing::warn!(
        file = name,
        "the purge's checkpoint found the WAL busy; the next purge tries again"
    );
    false
}
