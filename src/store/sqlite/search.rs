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
//!
//! An entry of the index is a group of [`GROUP_TRACES`] traces of consecutive rowids, not one
//! trace: it holds the distinct trigrams of all their texts. Traces of a group arrive together,
//! and share most trigrams of their language, so the index keeps a fraction of the entries
//! one per trace would; a search checks the text of every trace of the groups it names.

use std::collections::HashSet;
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
/// file (docs/benchmarks-log.md). Searches are exact whatever the lag.
const MIN_BATCH_INTERVAL: Duration = Duration::from_millis(500);

/// How long the indexer waits after a failure before it tries again.
const RETRY_INTERVAL: Duration = Duration::from_secs(1);

/// `index_state` is one row: `indexed_seq`, the mark (every trace with `text_seq <= indexed_seq`
/// has its current text in `traces_text`), and `max_rowid`, the largest group ever indexed (a
/// group above it has no entry to delete first).
const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS index_state (
    id          INTEGER PRIMARY KEY CHECK (id = 0),
    indexed_seq INTEGER NOT NULL,
    max_rowid   INTEGER NOT NULL
);
INSERT OR IGNORE INTO index_state (id, indexed_seq, max_rowid) VALUES (0, 0, 0);
-- One row per group of traces (rowid: the traces' rowid in spanhouse.db divided by the group's
-- size); the index keeps no copy of the text, and no positions (detail = none): which groups
-- hold each trigram, not where. `grams` is the distinct trigrams of the group's inputs and
-- outputs, one token each (`Trigrams`), which the ascii tokenizer only splits at spaces.
CREATE VIRTUAL TABLE IF NOT EXISTS traces_text USING fts5(
    grams, content = '', contentless_delete = 1, tokenize = "ascii tokenchars '_'",
    detail = none
);
"#;

/// The layout of the search file (`PRAGMA user_version`); a file of another layout is indexed
/// again from scratch. 2: positions dropped (`detail = none`): indexing took a third of the
/// time, and the index a thirtieth of the space, on the benchmark's traffic. 3: an entry per
/// group of traces, of their distinct trigrams made here (docs/benchmarks-log.md).
const SEARCH_LAYOUT: i64 = 3;

/// Traces per entry of the index: a trace's group is its rowid divided by this.
pub(super) const GROUP_TRACES: i64 = 16;

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
            background::lower_thread_priority(background::BACKGROUND_NICE);
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
/// file that also raises the mark; returns how many traces it read. Each group holding one of
/// them is indexed again from the current texts of all its traces.
pub(super) fn index_batch(
    main: &Connection,
    search: &mut Connection,
    limit: i64,
) -> rusqlite::Result<usize> {
    let transaction = search.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let (mark, mut max_group): (i64, i64) = transaction.query_row(
        "SELECT indexed_seq, max_rowid FROM index_state",
        [],
        |row| Ok((row.get(0)?, row.get(1)?)),
    )?;
    // The main file's snapshot starts after the search file's: every trace stamped at or
    // below the new mark is committed in it (one writer stamps in increasing order). A group's
    // texts, read after, are as new as those stamps or newer; a newer text has a stamp above
    // the mark, and its group is indexed again when the mark passes it. Everything is read
    // before it is indexed, in statements of their own, so that no snapshot of the main file
    // lasts: a reader's snapshot keeps checkpoints from copying the pages written after it,
    // and indexing takes far longer than reading.
    let pending: Vec<(i64, i64)> = main
        .prepare_cached(
            "SELECT rowid, text_seq FROM traces WHERE text_seq > ?1 ORDER BY text_seq LIMIT ?2",
        )?
        .query_map(params![mark, limit], |row| Ok((row.get(0)?, row.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    let count = pending.len();
    let Some(&(_, new_mark)) = pending.last() else {
        return Ok(0);
    };
    let groups: std::collections::BTreeSet<i64> = pending
        .iter()
        .map(|(rowid, _)| rowid.div_euclid(GROUP_TRACES))
        .collect();
    let mut texts_of =
        main.prepare_cached("SELECT input, output FROM traces WHERE rowid >= ?1 AND rowid < ?2")?;
    let mut group_texts = Vec::with_capacity(groups.len());
    for &group in &groups {
        let texts = texts_of
            .query_map([group * GROUP_TRACES, (group + 1) * GROUP_TRACES], |row| {
                Ok([row.get::<_, TraceText>(0)?.0, row.get::<_, TraceText>(1)?.0])
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        group_texts.push((group, texts));
    }
    {
        let mut forget = transaction.prepare_cached("DELETE FROM traces_text WHERE rowid = ?1")?;
        let mut add =
            transaction.prepare_cached("INSERT INTO traces_text (rowid, grams) VALUES (?1, ?2)")?;
        let mut trigrams = Trigrams::default();
        for (group, texts) in group_texts {
            if group <= max_group {
                forget.execute([group])?;
            }
            trigrams.clear();
            // Each text apart: no trigram spans the end of one and the start of the next.
            for text in texts.iter().flatten().flatten() {
                trigrams.add(text);
            }
            if !trigrams.is_empty() {
                add.execute(params![group, trigrams.tokens()])?;
                max_group = max_group.max(group);
            }
        }
    }
    transaction.execute(
        "UPDATE index_state SET indexed_seq = ?1, max_rowid = ?2",
        params![new_mark, max_group],
    )?;
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
/// hold `text`: every trace that does, and the other traces of their groups (rowids that may
/// not exist); the caller checks their text. `None` when the index cannot answer: `text` is
/// shorter than three characters, more than `max_matches` traces are candidates, or the search file
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
        let max_groups = max_matches / GROUP_TRACES as usize;
        let groups = connection
            .prepare_cached(&format!(
                "SELECT rowid FROM {SCHEMA_NAME}.traces_text WHERE traces_text MATCH ?1 LIMIT ?2"
            ))?
            .query_map(params![query, max_groups as i64 + 1], |row| row.get(0))?
            .collect::<rusqlite::Result<Vec<i64>>>()?;
        Ok((groups.len() <= max_groups).then(|| IndexedMatches {
            indexed_seq,
            rowids: groups
                .iter()
                .flat_map(|group| group * GROUP_TRACES..(group + 1) * GROUP_TRACES)
                .collect(),
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

/// The FTS5 query for the groups holding every trigram of `text` (at most
/// [`MAX_QUERY_TRIGRAMS`] of them, each once); `None` for text shorter than three characters.
/// Each is the token the index made of it, quoted (tokens hold no quote; no FTS syntax in the
/// text is interpreted).
fn trigram_query(text: &str) -> Option<String> {
    let mut seen = HashSet::new();
    let mut terms = Vec::new();
    each_trigram(text, |trigram| {
        if terms.len() < MAX_QUERY_TRIGRAMS && seen.insert(trigram) {
            let mut term = String::from("\"");
            push_token(&mut term, trigram);
            term.push('"');
            terms.push(term);
        }
    });
    (!terms.is_empty()).then(|| terms.join(" AND "))
}

/// The distinct trigrams of texts as the index's tokens, separated by spaces.
///
/// Text is folded one character at a time: its lower case (`char::to_lowercase`), with the
/// final sigma as σ. A search folds the phrase the same way and checks candidates with
/// `str::to_lowercase`, which differs from this only in choosing between σ and ς, so every
/// trace holding the phrase holds all of its trigrams here.
pub(super) struct Trigrams {
    /// Trigrams of ASCII characters, one bit each (7 bits a character); `ascii_keys` lists the
    /// bits set, to clear them.
    ascii_seen: Vec<u64>,
    ascii_keys: Vec<u32>,
    /// The others, by 21 bits a character.
    other_seen: HashSet<u64>,
    tokens: String,
}

impl Default for Trigrams {
    fn default() -> Self {
        Self {
            ascii_seen: vec![0; (1 << 21) / 64],
            ascii_keys: Vec::new(),
            other_seen: HashSet::default(),
            tokens: String::new(),
        }
    }
}

impl Trigrams {
    pub(super) fn clear(&mut self) {
        for key in self.ascii_keys.drain(..) {
            self.ascii_seen[key as usize / 64] = 0;
        }
        self.other_seen.clear();
        self.tokens.clear();
    }

    /// Adds the trigrams of `text` not added since the last `clear`.
    pub(super) fn add(&mut self, text: &str) {
        if text.is_ascii() {
            // The common case, without decoding characters.
            let bytes = text.as_bytes();
            for window in bytes.windows(3) {
                let trigram = [
                    window[0].to_ascii_lowercase(),
                    window[1].to_ascii_lowercase(),
                    window[2].to_ascii_lowercase(),
                ];
                if self.insert_ascii(trigram) {
                    push_token(&mut self.tokens, trigram.map(char::from));
                    self.tokens.push(' ');
                }
            }
            return;
        }
        let mut tokens = std::mem::take(&mut self.tokens);
        each_trigram(text, |trigram| {
            if self.insert(trigram) {
                push_token(&mut tokens, trigram);
                tokens.push(' ');
            }
        });
        self.tokens = tokens;
    }

    /// Whether `trigram` is new, remembering it.
    fn insert(&mut self, trigram: [char; 3]) -> bool {
        if trigram.iter().all(char::is_ascii) {
            self.insert_ascii(trigram.map(|c| c as u8))
        } else {
            let [a, b, c] = trigram.map(u64::from);
            self.other_seen.insert((a << 42) | (b << 21) | c)
        }
    }

    fn insert_ascii(&mut self, [a, b, c]: [u8; 3]) -> bool {
        let key = (u32::from(a) << 14) | (u32::from(b) << 7) | u32::from(c);
        let (word, bit) = (key as usize / 64, 1u64 << (key % 64));
        let new = self.ascii_seen[word] & bit == 0;
        if new {
            self.ascii_seen[word] |= bit;
            self.ascii_keys.push(key);
        }
        new
    }

    pub(super) fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    pub(super) fn tokens(&self) -> &str {
        &self.tokens
    }
}

/// Calls `f` with every trigram of `text`, folded (see [`Trigrams`]), in order.
fn each_trigram(text: &str, mut f: impl FnMut([char; 3])) {
    let mut window = ['\0'; 3];
    let folded = text
        .chars()
        .flat_map(char::to_lowercase)
        .map(|c| if c == 'ς' { 'σ' } else { c });
    for (index, c) in folded.enumerate() {
        window = [window[1], window[2], c];
        if index >= 2 {
            f(window);
        }
    }
}

/// Appends `trigram` as one token of the ascii tokenizer (`tokenchars '_'`): ASCII letters and
/// digits and non-ASCII characters as they are (its token characters), any other ASCII
/// character as `_` and its two hex digits. Each character's code starts with a byte no other
/// code starts with, so distinct trigrams make distinct tokens.
fn push_token(out: &mut String, trigram: [char; 3]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for c in trigram {
        if c.is_ascii_alphanumeric() || !c.is_ascii() {
            out.push(c);
        } else {
            let byte = c as u8;
            out.push('_');
            out.push(char::from(HEX[usize::from(byte >> 4)]));
            out.push(char::from(HEX[usize::from(byte & 15)]));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Trigrams, trigram_query};

    #[test]
    fn a_phrase_becomes_the_tokens_of_its_trigrams() {
        assert_eq!(trigram_query("ab"), None);
        assert_eq!(trigram_query("abc").as_deref(), Some("\"abc\""));
        // Spaces, quotes and underscores are escaped: one token each, no FTS syntax.
        assert_eq!(
            trigram_query("Say \"hi").as_deref(),
            Some("\"say\" AND \"ay_20\" AND \"y_20_22\" AND \"_20_22h\" AND \"_22hi\"")
        );
        assert_eq!(trigram_query("a_b").as_deref(), Some("\"a_5fb\""));
        // Folded as the index folds, repeats asked once.
        assert_eq!(
            trigram_query("abcABC").as_deref(),
            Some("\"abc\" AND \"bca\" AND \"cab\"")
        );
        assert_eq!(
            trigram_query("ΟΔΟΣ").as_deref(),
            Some("\"οδο\" AND \"δοσ\"")
        );
    }

    #[test]
    fn texts_give_each_trigram_once() {
        let mut trigrams = Trigrams::default();
        trigrams.add("abab");
        trigrams.add("ABA!");
        // A text beyond ASCII takes the other path; its ASCII trigrams are known already.
        trigrams.add("aba é");
        assert_eq!(trigrams.tokens(), "aba bab ba_21 ba_20 a_20é ");
        trigrams.clear();
        assert!(trigrams.is_empty());
        trigrams.add("ab");
        assert!(trigrams.is_empty(), "no trigram in two characters");
        trigrams.add("abab");
        assert_eq!(
            trigrams.tokens(),
            "aba bab ",
            "cleared, the same trigrams are new"
        );
        // The final sigma folds as σ: a phrase written either way finds it.
        trigrams.add("λόγος");
        assert!(trigrams.tokens().contains("γοσ "));
    }
}
