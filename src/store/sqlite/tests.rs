//! The text index kept off the writer's path: searches are exact before the indexer caught up,
//! after it did, after a trace's text changed, and after the index file was lost or damaged.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rusqlite::Connection;

use super::{Compression, SqliteOptions, SqliteStore, Synchronous, open_connection, search};
use crate::model::span::test_support::make_span;
use crate::model::{NormalizedSpan, SpanId, SpanSemantics};
use crate::normalize::Normalizer;
use crate::store::{SpanBatch, SpanStore, StoreError, TraceQuery};

pub(super) fn open(directory: &Path) -> SqliteStore {
    open_compressed(directory, Compression::default())
}

pub(super) fn open_compressed(directory: &Path, compression: Compression) -> SqliteStore {
    let options = SqliteOptions {
        synchronous: Synchronous::Normal,
        compression,
    };
    SqliteStore::open(directory, options, Arc::new(Normalizer::default())).unwrap()
}

/// Stores one span of trace `trace` with `input`; a root span when `root`, else a child.
async fn write_span(store: &SqliteStore, trace: u8, span: u8, root: bool, input: &str) {
    let span = crate::model::Span {
        parent_span_id: (!root).then_some(SpanId([99; 8])),
        ..make_span(trace, span)
    };
    let semantics = SpanSemantics {
        input: Some(input.to_owned()),
        ..Default::default()
    };
    store
        .write_spans(vec![SpanBatch {
            project_id: "p".into(),
            spans: vec![NormalizedSpan {
                span,
                semantics,
                encoded_body: None,
            }],
            prepared: Vec::new(),
        }])
        .await
        .unwrap();
}

/// The inputs of the traces `q=text` finds, newest first.
pub(super) async fn search_inputs(store: &SqliteStore, text: &str) -> Vec<String> {
    let query = TraceQuery {
        start_unix_nano: 0,
        end_unix_nano: u64::MAX,
        limit: 100,
        text: Some(text.to_owned()),
        ..Default::default()
    };
    let page = store.query_traces("p", &query).await.unwrap();
    let mut inputs: Vec<String> = page
        .traces
        .into_iter()
        .map(|trace| trace.input.unwrap_or_default())
        .collect();
    inputs.sort();
    inputs
}

/// Runs the indexer's work in this thread until it has caught up with every stamp.
fn catch_up(directory: &Path) {
    let main = open_connection(&directory.join("spanhouse.db"), Synchronous::Normal).unwrap();
    let mut search_file = Connection::open(directory.join(search::SEARCH_FILE)).unwrap();
    while search::index_batch(&main, &mut search_file, 2).unwrap() > 0 {}
}

/// The search file's mark, and the newest stamp of the main file.
fn mark_and_newest(directory: &Path) -> (i64, i64) {
    let main = Connection::open(directory.join("spanhouse.db")).unwrap();
    let newest = main
        .query_row("SELECT MAX(text_seq) FROM traces", [], |row| row.get(0))
        .unwrap();
    let search_file = Connection::open(directory.join(search::SEARCH_FILE)).unwrap();
    let mark = search_file
        .query_row("SELECT indexed_seq FROM index_state", [], |row| row.get(0))
        .unwrap_or(0);
    (mark, newest)
}

/// Opens the search file as the server does (rebuilding it if needed) without its thread.
fn prepare_index(store: &SqliteStore) {
    search::prepare(&store.path, &store.search_path).unwrap();
}

#[tokio::test]
async fn search_is_exact_before_and_after_the_indexer_caught_up() {
    let directory = tempfile::tempdir().unwrap();
    let store = open(directory.path());
    prepare_index(&store);
    write_span(&store, 1, 1, true, "alpha Needle one").await;
    write_span(&store, 2, 1, true, "beta haystack").await;

    // Nothing indexed yet: the traces are read.
    assert_eq!(mark_and_newest(directory.path()).0, 0);
    assert_eq!(search_inputs(&store, "needle").await, ["alpha Needle one"]);

    catch_up(directory.path());
    let (mark, newest) = mark_and_newest(directory.path());
    assert_eq!(mark, newest);
    assert_eq!(search_inputs(&store, "needle").await, ["alpha Needle one"]);
    assert_eq!(search_inputs(&store, "haystack").await, ["beta haystack"]);
    assert!(search_inputs(&store, "no such phrase").await.is_empty());

    // A trace written after the mark is found beside the indexed one.
    write_span(&store, 3, 1, true, "gamma needle two").await;
    assert!(mark_and_newest(directory.path()).0 < mark_and_newest(directory.path()).1);
    assert_eq!(
        search_inputs(&store, "needle").await,
        ["alpha Needle one", "gamma needle two"]
    );
    catch_up(directory.path());
    assert_eq!(
        search_inputs(&store, "needle").await,
        ["alpha Needle one", "gamma needle two"]
    );
}

#[tokio::test]
async fn traces_holding_the_trigrams_but_not_the_phrase_are_not_found() {
    let directory = tempfile::tempdir().unwrap();
    let store = open(directory.path());
    prepare_index(&store);
    // Both hold "at ", "t t" and " ta"; only the second holds "at ta".
    write_span(&store, 1, 1, true, "at tt ta").await;
    write_span(&store, 2, 1, true, "wat tab").await;
    catch_up(directory.path());
    let (mark, newest) = mark_and_newest(directory.path());
    assert_eq!(mark, newest);
    let indexed = {
        let connection = open_connection(&store.path, Synchronous::Normal).unwrap();
        search::attach(&connection, &store.search_path).unwrap();
        search::indexed_matches(&connection, "AT TA", 100)
            .unwrap()
            .rowids
    };
    assert!(
        indexed.contains(&1) && indexed.contains(&2),
        "the index names both as candidates: {indexed:?}"
    );
    assert_eq!(search_inputs(&store, "AT TA").await, ["wat tab"]);
}

#[tokio::test]
async fn long_texts_are_stored_compressed_and_found_by_every_search_path() {
    let directory = tempfile::tempdir().unwrap();
    let store = open(directory.path());
    prepare_index(&store);
    let long = format!(
        "{} The Needle is here.",
        "Retrieved passage about tools. ".repeat(10)
    );
    write_span(&store, 1, 1, true, &long).await;
    write_span(&store, 2, 1, true, "short Needle").await;
    let main = Connection::open(directory.path().join("spanhouse.db")).unwrap();
    let kinds: Vec<String> = main
        .prepare("SELECT typeof(input) FROM traces ORDER BY rowid")
        .unwrap()
        .query_map([], |row| row.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(kinds, ["blob", "text"]);

    let both = {
        let mut both = vec![long.clone(), "short Needle".to_owned()];
        both.sort();
        both
    };
    // Not indexed yet: the stamped traces' texts are read.
    assert_eq!(search_inputs(&store, "needle").await, both);
    // Two characters: SQL reads every text in the window (through sh_text).
    assert_eq!(search_inputs(&store, "Ne").await, both);
    assert_eq!(search_inputs(&store, "s.").await, [long.as_str()]);
    // Indexed: the index names both, their texts are checked.
    catch_up(directory.path());
    assert_eq!(search_inputs(&store, "needle").await, both);
    assert_eq!(
        search_inputs(&store, "passage about").await,
        [long.as_str()]
    );
    // The trace reads back whole.
    let trace = store
        .get_trace("p", make_span(1, 1).trace_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(trace.0.input.as_deref(), Some(long.as_str()));
}

#[tokio::test]
async fn the_index_finds_phrases_of_any_characters() {
    let directory = tempfile::tempdir().unwrap();
    let store = open(directory.path());
    prepare_index(&store);
    let texts = [
        "Ο λόγος του agent",
        "call get_weather(\"Paris\") -> 21°C",
        "tabs\tand\nnew lines",
    ];
    for (trace, text) in (1..).zip(texts) {
        write_span(&store, trace, 1, true, text).await;
    }
    catch_up(directory.path());
    let (mark, newest) = mark_and_newest(directory.path());
    assert_eq!(mark, newest);
    let connection = open_connection(&store.path, Synchronous::Normal).unwrap();
    search::attach(&connection, &store.search_path).unwrap();
    let named = |phrase: &str| {
        search::indexed_matches(&connection, phrase, 100)
            .unwrap()
            .rowids
    };
    // Found through the index (every trace is indexed), whatever the characters.
    for (phrase, expected) in [
        ("ΛΌΓΟΣ ΤΟΥ", texts[0]),
        ("get_weather(\"paris", texts[1]),
        ("21°c", texts[1]),
        ("tabs\tand\nnew", texts[2]),
    ] {
        assert!(!named(phrase).is_empty(), "{phrase:?}");
        assert_eq!(
            search_inputs(&store, phrase).await,
            [expected],
            "{phrase:?}"
        );
    }
    // The index folds the final sigma as σ, so it names the trace for either spelling; the
    // check of its text (`str::to_lowercase`) then tells them apart.
    assert!(!named("λόγοσ").is_empty());
    assert!(search_inputs(&store, "λόγοσ").await.is_empty());
    // Trigrams no text holds: no candidate at all.
    assert!(named("get weather").is_empty());
    assert!(named("tabs and").is_empty());
}

#[tokio::test]
async fn traces_of_many_groups_are_found_and_followed() {
    let directory = tempfile::tempdir().unwrap();
    let store = open(directory.path());
    prepare_index(&store);
    // 40 traces: three groups of the index, the last one partly filled when first indexed.
    for trace in 1..=30u8 {
        // Trace 17's text comes from a child span, which its root replaces below.
        let text = format!("common words, trace {trace} marker{trace}z");
        write_span(&store, trace, 1, trace != 17, &text).await;
    }
    catch_up(directory.path());
    for trace in 31..=40u8 {
        write_span(
            &store,
            trace,
            1,
            true,
            &format!("common words, trace {trace} marker{trace}z"),
        )
        .await;
    }
    // Half of the new ones are in a group indexed before they came: read, not trusted.
    for trace in [5u8, 17, 29, 31, 40] {
        let phrase = format!("marker{trace}z");
        assert_eq!(
            search_inputs(&store, &phrase).await,
            [format!("common words, trace {trace} marker{trace}z")]
        );
    }
    catch_up(directory.path());
    assert_eq!(search_inputs(&store, "common words").await.len(), 40);
    for trace in [5u8, 17, 29, 31, 40] {
        let phrase = format!("marker{trace}z");
        assert_eq!(search_inputs(&store, &phrase).await.len(), 1, "{phrase}");
    }
    // A trace whose text changed leaves its group's entry with the new text only.
    write_span(&store, 17, 2, true, "replaced wording").await;
    assert!(mark_and_newest(directory.path()).0 < mark_and_newest(directory.path()).1);
    catch_up(directory.path());
    assert!(search_inputs(&store, "marker17z").await.is_empty());
    assert_eq!(
        search_inputs(&store, "replaced wording").await,
        ["replaced wording"]
    );
    assert_eq!(search_inputs(&store, "marker18z").await.len(), 1);
}

#[tokio::test]
async fn an_index_of_an_earlier_layout_is_built_again() {
    let directory = tempfile::tempdir().unwrap();
    let store = open(directory.path());
    prepare_index(&store);
    write_span(&store, 1, 1, true, "alpha needle").await;
    catch_up(directory.path());
    assert_eq!(mark_and_newest(directory.path()), (1, 1));
    // A search file written by a version that kept positions (layout 0 or 1).
    Connection::open(directory.path().join(search::SEARCH_FILE))
        .unwrap()
        .pragma_update(None, "user_version", 1)
        .unwrap();
    prepare_index(&store);
    assert_eq!(mark_and_newest(directory.path()), (0, 1));
    assert_eq!(search_inputs(&store, "needle").await, ["alpha needle"]);
    catch_up(directory.path());
    assert_eq!(mark_and_newest(directory.path()), (1, 1));
    assert_eq!(search_inputs(&store, "needle").await, ["alpha needle"]);
}

#[tokio::test]
async fn search_follows_a_trace_whose_text_changed() {
    let directory = tempfile::tempdir().unwrap();
    let store = open(directory.path());
    prepare_index(&store);
    // A child span alone gives the trace its input; the root, when it comes, replaces it.
    write_span(&store, 1, 2, false, "old wording").await;
    catch_up(directory.path());
    assert_eq!(search_inputs(&store, "old wording").await, ["old wording"]);

    write_span(&store, 1, 1, true, "new wording").await;
    // Before the indexer saw the change: the stale index entry is not trusted.
    assert!(search_inputs(&store, "old wording").await.is_empty());
    assert_eq!(search_inputs(&store, "new wording").await, ["new wording"]);
    catch_up(directory.path());
    assert!(search_inputs(&store, "old wording").await.is_empty());
    assert_eq!(search_inputs(&store, "new wording").await, ["new wording"]);

    // A span that leaves the trace's text as it was does not stamp it again.
    let (_, newest) = mark_and_newest(directory.path());
    write_span(&store, 1, 3, false, "a later child").await;
    assert_eq!(mark_and_newest(directory.path()), (newest, newest));
}

#[tokio::test]
async fn a_lost_damaged_or_foreign_index_is_rebuilt() {
    let directory = tempfile::tempdir().unwrap();
    let store = open(directory.path());
    prepare_index(&store);
    write_span(&store, 1, 1, true, "findable text").await;
    catch_up(directory.path());
    let search_path = directory.path().join(search::SEARCH_FILE);

    // Deleted: a new file, every trace indexed again.
    drop(store);
    std::fs::remove_file(&search_path).unwrap();
    let store = open(directory.path());
    prepare_index(&store);
    assert_eq!(mark_and_newest(directory.path()).0, 0);
    assert_eq!(search_inputs(&store, "findable").await, ["findable text"]);
    catch_up(directory.path());
    assert_eq!(search_inputs(&store, "findable").await, ["findable text"]);

    // Damaged: not a database any more.
    drop(store);
    std::fs::write(&search_path, b"this is not a database file, not at all").unwrap();
    let store = open(directory.path());
    prepare_index(&store);
    assert_eq!(mark_and_newest(directory.path()).0, 0);
    catch_up(directory.path());
    assert_eq!(search_inputs(&store, "findable").await, ["findable text"]);

    // Ahead of the main file (another store's index): started afresh.
    drop(store);
    Connection::open(&search_path)
        .unwrap()
        .execute("UPDATE index_state SET indexed_seq = 1000000", [])
        .unwrap();
    let store = open(directory.path());
    prepare_index(&store);
    assert_eq!(mark_and_newest(directory.path()).0, 0);
    assert_eq!(search_inputs(&store, "findable").await, ["findable text"]);
}

#[tokio::test]
async fn the_indexer_thread_catches_up_and_stops() {
    let directory = tempfile::tempdir().unwrap();
    let store = open(directory.path());
    store.start_text_indexer().unwrap();
    for trace in 1..=5 {
        write_span(
            &store,
            trace,
            1,
            true,
            &format!("indexed by the thread {trace}"),
        )
        .await;
    }
    // Waits for the thread (it is woken by each write), at most 20 s.
    for _ in 0..200 {
        let (mark, newest) = mark_and_newest(directory.path());
        if mark == newest {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (mark, newest) = mark_and_newest(directory.path());
    assert_eq!(mark, newest);
    assert_eq!(search_inputs(&store, "by the thread").await.len(), 5);
    store.flush(Duration::from_secs(1)).await;
    assert!(store.indexer.lock().unwrap().is_none());
}

#[tokio::test]
async fn a_query_past_its_time_limit_is_stopped_and_the_reader_serves_again() {
    let directory = tempfile::tempdir().unwrap();
    let mut store = SqliteStore::open(
        directory.path(),
        SqliteOptions::default(),
        Default::default(),
    )
    .unwrap();
    store.query_time_limit = Duration::from_millis(50);
    let endless = store
        .with_reader(|connection| {
            Ok(connection.query_row(
                "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) \
                 SELECT count(*) FROM n",
                [],
                |row| row.get::<_, i64>(0),
            )?)
        })
        .await;
    match endless {
        Err(StoreError::Unavailable(message)) => assert!(message.contains("longer"), "{message}"),
        other => panic!("not stopped: {other:?}"),
    }
    let answer = store
        .with_reader(|connection| {
            Ok(connection.query_row("SELECT 7", [], |row| row.get::<_, i64>(0))?)
        })
        .await
        .unwrap();
    assert_eq!(answer, 7);
}
