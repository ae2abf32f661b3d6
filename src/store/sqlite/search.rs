//! Text search over traces' input and output (`q`), kept off the writer's path.
//!
//! The trigram index lives in its own file, `DATA_DIR/search.sqlite`: derived data, rebuilt from
//! `spanhouse.db` whenever it is missing or damaged, with its own write lock, so that indexing
//! runs on another core while the writer stores spans. The writer only stamps a trace with the
//! next `text_seq` when its input or output changes; the indexer thread reads the traces stamped
//! after its high-water mark (`indexed_seq`), re-indexes them and raises the mark in the same
//! transaction of the search file, so a crash at any point leaves an index that is exact up to
//! its mark. A search trusts the index only for traces whose `text_seq` is at or below the mark
//! and scans the text of the others (the indexer's lag), so results are exact at any lag.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rusqlite::{Connection, ErrorCode, OptionalExtension, TransactionBehavior, params};

use super::background::{self, Signal, Worker};
use super::text::TraceText;
use super::{open_connection, open_wal};
use crate::store::{StoreError, StoreResult};

/// The search file's name in the data directory.
pub(super) const SEARCH_FILE: &str = "search.sqlite";

/// The schema name the search file is attached under on reader connections.
pub(super) const SCHEMA_NAME: &str = "search";

/// Traces re-indexed per transaction of the search file, at most.
const BATCH_TRACES: i64 = 2_000;

/// The least time between two indexing transactions while traces keep arriving: fewer, larger
/// transactions leave FTS5 fewer segments to merge and the search file fewer commits. 500 ms
/// rather than 100 ms: +5 % spans/s at full load, a fifth fewer bytes written to the search
/// file (BENCHMARKS.md). Searches are exact whatever the lag.
const MIN_BATCH_INTERVAL: Duration = Duration::from_millis(500);

/// How long the indexer waits after a failure before it tries again.
const RETRY_INTERVAL: Duration = Duration::from_secs(1);

/// `index_state` is one row: `indexed_seq`, the mark (every trace with `text_seq <= indexed_seq`
/// has its current text in `traces_text`), and `max_rowid`, the largest rowid ever indexed (a
/// trace with a larger rowid has no entry to delete first).
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS index_state (
    id          INTEGER PRIMARY KEY CHECK (id = 0),
    indexed_seq INTEGER NOT NULL,
    max_rowid   INTEGER NOT NULL
);
INSERT OR IGNORE INTO index_state (id, indexed_seq, max_rowid) VALUES (0, 0, 0);
-- Rows keyed by the rowid of `traces` in spanhouse.db; the index keeps no copy of the text,
-- and no positions (detail = none): which traces hold each trigram, not where. A search asks
-- for the traces holding every trigram of the phrase and checks those candidates' text.
CREATE VIRTUAL TABLE IF NOT EXISTS traces_text USING fts5(
    input, output, content = '', contentless_delete = 1, tokenize = 'trigram', detail = none
);
";

/// The layout of the search file (`PRAGMA user_version`); a file of another layout is indexed
/// again from scratch. 2: positions dropped (`detail = none`): indexing took a third of the
/// time, and the index a thirtieth of the space, on the benchmark's traffic.
const SEARCH_LAYOUT: i64 = 2;

/// Most trigrams of a phrase a search asks the index for: enough to narrow the candidates as
/// far as trigrams can, the text check does the rest.
const MAX_QUERY_TRIGRAMS: usize = 24;

/// Opens (rebuilding if needed) the search file next to `main_path` and starts the indexer
/// thread; stopping it lets the current transaction finish.
pub(super) fn start_indexer(
    main_path: &Path,
    search_path: &Path,
    signal: Arc<Signal>,
) -> StoreResult<Worker> {
    let (main, search) = prepare(main_path, search_path)?;
    Worker::start(
        "spanhouse-text-indexer",
        "text indexer",
        signal,
        move |signal| {
            // The index may lag (searches scan what it has not reached): ingest first.
            background::lower_thread_priority();
            run(main, search, signal)
        },
    )
}

/// The indexer's connections: the main file (it only reads) and the search file, opened or
/// rebuilt.
pub(super) fn prepare(
    main_path: &Path,
    search_path: &Path,
) -> StoreResult<(Connection, Connection)> {
    let main = open_connection(main_path, super::Synchronous::Normal)?;
    let newest_seq: i64 =
        main.query_row("SELECT COALESCE(MAX(text_seq), 0) FROM traces", [], |row| {
            row.get(0)
        })?;
    let search = open_or_rebuild(search_path, newest_seq)?;
    Ok((main, search))
}

fn run(main: Connection, mut search: Connection, signal: &Signal) {
    let mut last_batch = Instant::now() - MIN_BATCH_INTERVAL;
    loop {
        let wait = MIN_BATCH_INTERVAL.saturating_sub(last_batch.elapsed());
        if !wait.is_zero() && !signal.pause(wait) {
            return;
        }
        last_batch = Instant::now();
        match index_batch(&main, &mut search, BATCH_TRACES) {
            // More may be waiting: go on at once.
            Ok(indexed) if indexed as i64 == BATCH_TRACES => {
                last_batch -= MIN_BATCH_INTERVAL;
            }
            Ok(_) => {
                if !signal.wait_for_work(Duration::from_secs(5)) {
                    return;
                }
            }
            Err(error) => {
                tracing::warn!(%error, "text indexing failed; will retry");
                if is_damaged(&error)
                    && let Err(error) = reset(&mut search)
                {
                    tracing::error!(
                        %error,
                        "the text index is damaged and cannot be reset; searches scan the traces \
                         until search.sqlite is deleted and spanhouse restarted"
                    );
                }
                if !signal.pause(RETRY_INTERVAL) {
                    return;
                }
            }
        }
    }
}

/// Indexes the next traces after the mark, at most `limit`, in one transaction of the search
/// file that also raises the mark; returns how many traces it read.
pub(super) fn index_batch(
    main: &Connection,
    search: &mut Connection,
    limit: i64,
) -> rusqlite::Result<usize> {
    let transaction = search.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let (mark, mut max_rowid): (i64, i64) = transaction.query_row(
        "SELECT indexed_seq, max_rowid FROM index_state",
        [],
        |row| Ok((row.get(0)?, row.get(1)?)),
    )?;
    // The main file's snapshot starts after the search file's: every trace stamped at or
    // below the new mark is committed in it (one writer stamps in increasing order). The
    // traces are read whole before they are indexed, so that the snapshot (one statement's)
    // ends first: a reader's snapshot keeps checkpoints from copying the pages written after
    // it, and indexing takes far longer than reading.
    let pending: Vec<(i64, Option<String>, Option<String>, i64)> = main
        .prepare_cached(
            "SELECT rowid, input, output, text_seq FROM traces WHERE text_seq > ?1
             ORDER BY text_seq LIMIT ?2",
        )?
        .query_map(params![mark, limit], |row| {
            Ok((
                row.get(0)?,
                row.get::<_, TraceText>(1)?.0,
                row.get::<_, TraceText>(2)?.0,
                row.get(3)?,
            ))
        })?
        .collect::<rusqlite::Result<_>>()?;
    let count = pending.len();
    let mut new_mark = mark;
    {
        let mut forget = transaction.prepare_cached("DELETE FROM traces_text WHERE rowid = ?1")?;
        let mut add = transaction
            .prepare_cached("INSERT INTO traces_text (rowid, input, output) VALUES (?1, ?2, ?3)")?;
        for (rowid, input, output, text_seq) in pending {
            if rowid <= max_rowid {
                forget.execute([rowid])?;
            }
            if input.is_some() || output.is_some() {
                add.execute(params![rowid, input, output])?;
                max_rowid = max_rowid.max(rowid);
            }
            new_mark = text_seq;
        }
    }
    if count > 0 {
        transaction.execute(
            "UPDATE index_state SET indexed_seq = ?1, max_rowid = ?2",
            params![new_mark, max_rowid],
        )?;
    }
    transaction.commit()?;
    Ok(count)
}

fn is_damaged(error: &rusqlite::Error) -> bool {
    matches!(
        error.sqlite_error_code(),
        Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase)
    )
}

/// Empties the index and its mark in one transaction: every trace is indexed again.
fn reset(search: &mut Connection) -> rusqlite::Result<()> {
    let transaction = search.transaction_with_behavior(TransactionBehavior::Immediate)?;
    transaction.execute_batch(
        "DROP TABLE IF EXISTS traces_text;
         DROP TABLE IF EXISTS index_state;",
    )?;
    transaction.execute_batch(SCHEMA)?;
    transaction.pragma_update(None, "user_version", SEARCH_LAYOUT)?;
    transaction.commit()
}

fn open_search(path: &Path) -> rusqlite::Result<Connection> {
    let connection = open_wal(path)?;
    // Derived data: losing the last commits to a power cut costs a re-index, nothing more.
    connection.pragma_update(None, "synchronous", "NORMAL")?;
    connection.execute_batch(SCHEMA)?;
    Ok(connection)
}

/// The files of a SQLite database in WAL mode.
fn database_files(path: &Path) -> [PathBuf; 3] {
    let with_suffix = |suffix: &str| {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        PathBuf::from(name)
    };
    [path.to_owned(), with_suffix("-wal"), with_suffix("-shm")]
}

/// Opens the search file, starting it afresh when it is damaged, unreadable, or ahead of the
/// main file (a search file of another store, or of a main file restored from a backup).
fn open_or_rebuild(path: &Path, newest_seq: i64) -> StoreResult<Connection> {
    let [_, wal, shm] = database_files(path);
    if !path.exists() {
        // A WAL left by a deleted file would be replayed into the new one.
        let _ = std::fs::remove_file(wal);
        let _ = std::fs::remove_file(shm);
    }
    let opened = open_search(path).and_then(|mut connection| {
        let layout: i64 = connection.query_row("PRAGMA user_version", [], |row| row.get(0))?;
        let mark: i64 =
            connection.query_row("SELECT indexed_seq FROM index_state", [], |row| row.get(0))?;
        if layout != SEARCH_LAYOUT {
            // A new file, or one of an earlier version: index every trace in this layout.
            reset(&mut connection)?;
        } else if mark > newest_seq {
            tracing::warn!(
                mark,
                newest_seq,
                "search.sqlite is ahead of spanhouse.db; indexing every trace again"
            );
            reset(&mut connection)?;
        }
        Ok(connection)
    });
    match opened {
        Ok(connection) => Ok(connection),
        Err(error) => {
            tracing::warn!(%error, path = %path.display(), "the text index cannot be read; rebuilding it");
            for file in database_files(path) {
                if let Err(error) = std::fs::remove_file(&file)
                    && error.kind() != std::io::ErrorKind::NotFound
                {
                    return Err(StoreError::Unavailable(format!(
                        "cannot remove {}: {error}",
                        file.display()
                    )));
                }
            }
            Ok(open_search(path)?)
        }
    }
}

/// Attaches the search file to a reader connection.
pub(super) fn attach(connection: &Connection, search_path: &Path) -> StoreResult<()> {
    let path = search_path.to_str().ok_or_else(|| {
        StoreError::Unavailable(format!("{} is not UTF-8", search_path.display()))
    })?;
    connection.execute(&format!("ATTACH DATABASE ?1 AS {SCHEMA_NAME}"), [path])?;
    Ok(())
}

/// What the index says about a phrase: the traces it names, trustworthy for traces whose
/// `text_seq` is at or below `indexed_seq`.
pub(super) struct IndexedMatches {
    pub indexed_seq: i64,
    pub rowids: Vec<i64>,
}

/// Asks the index for the traces (rowids, of any project and time) whose input or output may
/// hold `text`: every trace that does, and others that hold all its trigrams but not in that
/// order; the caller checks their text. `None` when the index cannot answer: `text` is shorter
/// than three characters, more than `max_matches` traces are candidates, or the search file
/// cannot be read (then the caller scans, which is exact, only slower). Each trigram is quoted:
/// no FTS syntax in the text is interpreted. Run it in the read transaction of the query that
/// uses it, before the query reads `traces`.
pub(super) fn indexed_matches(
    connection: &Connection,
    text: &str,
    max_matches: usize,
) -> Option<IndexedMatches> {
    let query = trigram_query(text)?;
    let lookup = || -> rusqlite::Result<Option<IndexedMatches>> {
        let indexed_seq: Option<i64> = connection
            .prepare_cached(&format!(
                "SELECT indexed_seq FROM {SCHEMA_NAME}.index_state"
            ))?
            .query_row([], |row| row.get(0))
            .optional()?;
        let indexed_seq = indexed_seq.unwrap_or(0);
        let rowids = connection
            .prepare_cached(&format!(
                "SELECT rowid FROM {SCHEMA_NAME}.traces_text WHERE traces_text MATCH ?1 LIMIT ?2"
            ))?
            .query_map(params![query, max_matches as i64 + 1], |row| row.get(0))?
            .collect::<rusqlite::Result<Vec<i64>>>()?;
        Ok((rowids.len() <= max_matches).then_some(IndexedMatches {
            indexed_seq,
            rowids,
        }))
    };
    match lookup() {
        Ok(matches) => matches,
        Err(error) => {
            tracing::warn!(%error, "the text index cannot be read; scanning the traces");
            None
        }
    }
}

/// The FTS5 query for the traces holding every trigram of `text` (at most
/// [`MAX_QUERY_TRIGRAMS`] of them, each once); `None` for text shorter than three characters.
/// Each quoted trigram is one token of the trigram tokenizer, which folds case as the index
/// did.
fn trigram_query(text: &str) -> Option<String> {
    let chars: Vec<char> = text.chars().collect();
    let mut seen = std::collections::HashSet::new();
    let terms: Vec<String> = chars
        .windows(3)
        .map(|trigram| trigram.iter().collect::<String>())
        .filter(|trigram| seen.insert(trigram.to_lowercase()))
        .take(MAX_QUERY_TRIGRAMS)
        .map(|trigram| format!("\"{}\"", trigram.replace('"', "\"\"")))
        .collect();
    (!terms.is_empty()).then(|| terms.join(" AND "))
}

#[cfg(test)]
mod tests {
    use super::trigram_query;

    #[test]
    fn a_phrase_becomes_its_quoted_trigrams() {
        assert_eq!(trigram_query("ab"), None);
        assert_eq!(trigram_query("abc").as_deref(), Some("\"abc\""));
        assert_eq!(
            trigram_query("Say \"hi").as_deref(),
            Some("\"Say\" AND \"ay \" AND \"y \"\"\" AND \" \"\"h\" AND \"\"\"hi\"")
        );
        // Repeats (as the index folds case) are asked once.
        assert_eq!(
            trigram_query("abcABC").as_deref(),
            Some("\"abc\" AND \"bcA\" AND \"cAB\"")
        );
    }
}
