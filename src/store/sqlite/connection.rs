//! How the store's connections are opened: WAL mode, the page size of new files, durability,
//! cache and the SQL functions the store's queries use.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use super::text;
use crate::store::StoreResult;

/// How SQLite makes a commit durable (`PRAGMA synchronous`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Synchronous {
    /// fsync at every commit: a commit survives a power cut as well as a crash.
    #[default]
    Full,
    /// fsync at checkpoints: a commit survives a crash of spanhouse (`kill -9`), not a power cut.
    Normal,
}

/// The page size of new store files: 8 KiB. Against 4 KiB, at full load in 30 s runs: +16 %
/// spans/s, 6 % less disk per span, a fifth less checkpointer CPU (docs/benchmarks-log.md, "8 KiB
/// pages"); 16 KiB pages gained no more.
const PAGE_SIZE: i64 = 8192;

/// `secure_delete` of the writer connection: `FAST` overwrites the cells that updates and
/// deletions free inside pages that are written anyway (no more I/O), so that replaced versions
/// of rows do not linger in their pages' free space; a deletion of traces turns it `ON` for
/// its transaction, which zeroes the pages it frees too (`delete`).
pub(super) const WRITER_SECURE_DELETE: &str = "FAST";

/// Opens (creating it if need be) a database file in WAL mode, waiting up to 10 s for a lock
/// another connection holds.
pub(super) fn open_wal(path: &Path) -> rusqlite::Result<Connection> {
    let connection = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    connection.busy_timeout(Duration::from_secs(10))?;
    // For a file still empty only (a store keeps the page size it was created with): a span
    // row of ~1.6 KB left a fifth of a 4 KiB page empty, and the WAL wrote twice as many frames.
    connection.pragma_update(None, "page_size", PAGE_SIZE)?;
    connection.pragma_update(None, "journal_mode", "WAL")?;
    Ok(connection)
}

/// A connection to the store's file as every connection of the store is set up.
pub(super) fn open_connection(path: &Path, synchronous: Synchronous) -> StoreResult<Connection> {
    let connection = open_wal(path)?;
    let synchronous = match synchronous {
        Synchronous::Full => "FULL",
        Synchronous::Normal => "NORMAL",
    };
    connection.pragma_update(None, "synchronous", synchronous)?;
    connection.pragma_update(None, "foreign_keys", "ON")?;
    connection.pragma_update(None, "cache_size", -65536)?;
    text::register_functions(&connection)?;
    super::filter_sql::register_functions(&connection)?;
    Ok(connection)
}
