//! Checkpoints of the write-ahead log, off the writer's path.
//!
//! SQLite checkpoints by default inside the commit that crosses 1000 pages of WAL: the single
//! writer then copies those pages into the database file and syncs it before it can take the
//! next batch, 8% of the server's CPU time at full load, all of it on the one serial path of
//! ingest. Here the writer's connection only reports the WAL's size after each commit (a WAL
//! hook): past [`CHECKPOINT_BYTES`] it wakes a thread of its own connection that checkpoints
//! while the writer goes on (SQLite lets one checkpointer run beside one writer). The WAL starts
//! over from its beginning at the first write after a checkpoint that copied all of it.
//!
//! Under sustained writes the checkpointer may never find the WAL whole (the writer appended
//! again while it copied); the WAL then keeps growing, so past [`WRITER_CHECKPOINT_BYTES`] the
//! writer checkpoints itself, as SQLite would have, which bounds the WAL and the time a crash
//! recovery reads it.

use std::sync::Arc;
use std::time::Duration;

use rusqlite::wal::CheckpointMode;
use rusqlite::{Connection, ErrorCode};

use super::background::{Signal, Worker};
use crate::store::StoreResult;

/// WAL bytes after which the checkpointer is woken: SQLite's own autocheckpoint threshold of
/// 1000 pages, at the 4 KiB pages of its default.
pub(super) const CHECKPOINT_BYTES: i64 = 4_096_000;

/// WAL bytes after which the writer checkpoints in its commit.
pub(super) const WRITER_CHECKPOINT_BYTES: i64 = 64 << 20;

/// How long the checkpointer sleeps when nothing wakes it: it then checkpoints anyway, so
/// that a WAL left between the thresholds by the last writes does not wait for more.
const IDLE_INTERVAL: Duration = Duration::from_secs(5);

/// Makes the writer connection hand its checkpoints to the thread that `signal` wakes,
/// replacing SQLite's automatic checkpoint.
pub(super) fn hand_off(writer: &mut Connection, signal: Arc<Signal>) -> StoreResult<()> {
    // The hook counts pages, whose size is the file's.
    let page_size: i64 = writer.query_row("PRAGMA page_size", [], |row| row.get(0))?;
    let pages = |bytes: i64| i32::try_from(bytes / page_size.max(512)).unwrap_or(i32::MAX);
    let (checkpoint_pages, writer_checkpoint_pages) =
        (pages(CHECKPOINT_BYTES), pages(WRITER_CHECKPOINT_BYTES));
    // `wal_hook` replaces the automatic checkpoint, which is itself a WAL hook.
    writer.wal_hook(Some(move |wal: &mut rusqlite::hooks::Wal, pages: i32| {
        if pages >= writer_checkpoint_pages {
            // A failed checkpoint is not a failed commit: the writer retries at the next one.
            match wal.checkpoint_v2(CheckpointMode::PASSIVE) {
                Ok((pages, copied)) => tracing::debug!(pages, copied, "the writer checkpointed"),
                // The checkpointer is running: it copies what the writer would have.
                Err(error) if error.sqlite_error_code() == Some(ErrorCode::DatabaseBusy) => {}
                Err(error) => tracing::warn!(%error, pages, "checkpoint by the writer failed"),
            }
        } else if pages >= checkpoint_pages {
            signal.notify();
        }
        Ok(())
    }))?;
    Ok(())
}

/// Starts the checkpointer thread, checkpointing on `connection` (to the writer's database)
/// when `signal` wakes it; stopping it lets a running checkpoint finish.
pub(super) fn start(connection: Connection, signal: Arc<Signal>) -> StoreResult<Worker> {
    Worker::start(
        "spanhouse-checkpoint",
        "checkpointer",
        signal,
        move |signal| run(&connection, signal),
    )
}

fn run(connection: &Connection, signal: &Signal) {
    while signal.wait_for_work(IDLE_INTERVAL) {
        // PASSIVE: copies what no reader still needs and never waits for the writer or readers.
        match connection.wal_checkpoint_v2(None::<&str>, CheckpointMode::PASSIVE) {
            Ok((pages, copied)) => tracing::debug!(pages, copied, "checkpointed"),
            Err(error) if error.sqlite_error_code() == Some(ErrorCode::DatabaseBusy) => {}
            Err(error) => tracing::warn!(%error, "checkpoint failed; will retry"),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::Instant;

    use super::*;
    use crate::store::sqlite::{Synchronous, open_connection};

    /// A connection to a fresh database with a table for filler rows.
    fn writer(path: &Path, signal: Arc<Signal>) -> Connection {
        let mut connection = open_connection(path, Synchronous::Normal).unwrap();
        connection
            .execute_batch("CREATE TABLE filler (data BLOB)")
            .unwrap();
        hand_off(&mut connection, signal).unwrap();
        connection
    }

    /// Writes `bytes` bytes of WAL or a little more in one transaction, a row per page.
    fn fill(connection: &Connection, bytes: i64) {
        let page_size: i64 = connection
            .query_row("PRAGMA page_size", [], |row| row.get(0))
            .unwrap();
        connection
            .execute(
                "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?1)
                 INSERT INTO filler SELECT zeroblob(?2) FROM n",
                [bytes / page_size, page_size - 100],
            )
            .unwrap();
    }

    /// The pages in the WAL now (a checkpoint that finds nothing to copy reports them).
    fn wal_pages(connection: &Connection) -> i32 {
        connection
            .wal_checkpoint_v2(None::<&str>, CheckpointMode::PASSIVE)
            .unwrap()
            .0
    }

    #[test]
    fn the_checkpointer_copies_the_wal_into_the_database() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("test.db");
        let signal = Arc::new(Signal::default());
        let connection = writer(&path, Arc::clone(&signal));
        let mut checkpointer =
            start(open_connection(&path, Synchronous::Normal).unwrap(), signal).unwrap();
        fill(&connection, CHECKPOINT_BYTES + 100_000);
        // Only a checkpoint writes the rows into the database file; the writer no longer does.
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::fs::metadata(&path).unwrap().len() < CHECKPOINT_BYTES as u64 {
            assert!(Instant::now() < deadline, "no checkpoint copied the WAL");
            std::thread::sleep(Duration::from_millis(20));
        }
        checkpointer.stop();
    }

    #[test]
    fn without_the_checkpointer_the_writer_bounds_the_wal() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("test.db");
        // Nothing checkpoints but the writer itself.
        let connection = writer(&path, Arc::new(Signal::default()));
        fill(&connection, WRITER_CHECKPOINT_BYTES / 2);
        assert!(std::fs::metadata(&path).unwrap().len() < 1_000_000);
        fill(&connection, WRITER_CHECKPOINT_BYTES / 2 + 800_000);
        // That commit crossed the bound and the writer copied the WAL: the next transaction
        // starts it over.
        fill(&connection, 1);
        assert!(wal_pages(&connection) < 10, "{}", wal_pages(&connection));
    }
}
