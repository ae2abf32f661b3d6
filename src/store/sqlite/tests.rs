//! The text index kept off the writer's path: searches are exact before the indexer caught up,
//! after it did, after a trace's text changed, and after the index file was lost or damaged.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rusqlite::Connection;

use super::{SqliteStore, Synchronous, open_connection, search};
use crate::model::span::test_support::make_span;
use crate::model::{NormalizedSpan, SpanId, SpanSemantics};
use crate::normalize::Normalizer;
use crate::store::{SpanBatch, Store, TraceQuery};

fn open(directory: &Path) -> SqliteStore {
    SqliteStore::open(
        directory,
        Synchronous::Normal,
        Arc::new(Normalizer::default()),
    )
    .unwrap()
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
async fn search_inputs(store: &SqliteStore, text: &str) -> Vec<String> {
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

// The span format: semantics kept compressed with the body (formats 2 and 3), and rows written
// by earlier versions (texts in columns, or format 2) still read and summed.

/// Writes one span in a batch of its own, encoded and prepared as the receivers do it.
async fn write_semantics(store: &SqliteStore, span: crate::model::Span, semantics: SpanSemantics) {
    let encoded_body = store.encode_span(&span, &semantics);
    let spans = vec![NormalizedSpan {
        span,
        semantics,
        encoded_body,
    }];
    let prepared = store.prepare_traces("p", &spans).into_iter().collect();
    store
        .write_spans(vec![SpanBatch {
            project_id: "p".into(),
            spans,
            prepared,
        }])
        .await
        .unwrap();
}

fn texts(input: &str, output: &str) -> SpanSemantics {
    SpanSemantics {
        input: Some(input.to_owned()),
        output: Some(output.to_owned()),
        ..Default::default()
    }
}

#[tokio::test]
async fn a_trace_split_over_batches_takes_earlier_texts_from_their_bodies() {
    let directory = tempfile::tempdir().unwrap();
    let store = open(directory.path());
    let child = crate::model::Span {
        parent_span_id: Some(SpanId([1; 8])),
        ..make_span(7, 2)
    };
    write_semantics(&store, child, texts("child in", "child out")).await;
    // The root, without texts of its own, arrives later: the record takes the child's texts,
    // which only the child's stored body holds.
    write_semantics(&store, make_span(7, 1), SpanSemantics::default()).await;
    let (record, spans) = store
        .get_trace("p", crate::model::TraceId([7; 16]))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.span_count, 2);
    assert_eq!(record.root_span_name.as_deref(), Some("span-1"));
    assert_eq!(record.input.as_deref(), Some("child in"));
    assert_eq!(record.output.as_deref(), Some("child out"));
    assert_eq!(spans[1].semantics, texts("child in", "child out"));
}

#[tokio::test]
async fn spans_written_before_format_2_are_read_and_summed() {
    let directory = tempfile::tempdir().unwrap();
    let store = open(directory.path());
    let root = make_span(8, 1);
    let llm = crate::model::LlmCall {
        provider: Some("openai".into()),
        response_model: Some("gpt-4o".into()),
        usage: crate::model::llm::TokenUsage {
            prompt: Some(10),
            completion: Some(5),
            total: Some(15),
        },
        ..Default::default()
    };
    let old_semantics = SpanSemantics {
        llm: Some(llm.clone()),
        ..texts("old in", "old out")
    };
    write_semantics(&store, root.clone(), old_semantics.clone()).await;
    // Rewrite the row as versions before format 2 wrote it: the body alone (LZ4), the texts
    // and the LLM call in their columns, the two newer columns NULL.
    {
        let mut body = vec![1u8];
        body.extend(lz4_flex::block::compress_prepend_size(
            crate::store::codec::encode_body(&root).as_bytes(),
        ));
        let connection = Connection::open(directory.path().join("spanhouse.db")).unwrap();
        let changed = connection
            .execute(
                "UPDATE spans SET body = ?1, input = 'old in', output = 'old out', llm = ?2,
                 is_llm = NULL, tool_name = NULL",
                rusqlite::params![body, serde_json::to_string(&llm).unwrap()],
            )
            .unwrap();
        assert_eq!(changed, 1);
    }
    let child = crate::model::Span {
        parent_span_id: Some(SpanId([1; 8])),
        ..make_span(8, 2)
    };
    write_semantics(&store, child, texts("new in", "new out")).await;

    let (record, spans) = store
        .get_trace("p", crate::model::TraceId([8; 16]))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.span_count, 2);
    assert_eq!(record.input.as_deref(), Some("old in"));
    assert_eq!(record.output.as_deref(), Some("old out"));
    assert_eq!(record.llm_call_count, 1);
    assert_eq!(record.models, ["gpt-4o"]);
    assert_eq!(record.total_token_count, Some(15));
    assert_eq!(spans[0].span, root);
    assert_eq!(spans[0].semantics, old_semantics.with_llm_texts());
    assert_eq!(spans[1].semantics, texts("new in", "new out"));
}

#[tokio::test]
async fn spans_written_in_format_2_are_read_and_give_their_texts() {
    let directory = tempfile::tempdir().unwrap();
    let store = open(directory.path());
    let child = crate::model::Span {
        parent_span_id: Some(SpanId([1; 8])),
        ..make_span(9, 2)
    };
    let child_semantics = SpanSemantics {
        llm: Some(crate::model::LlmCall {
            response_model: Some("gpt-4o".into()),
            ..Default::default()
        }),
        ..texts("format 2 in", "format 2 out")
    };
    write_semantics(&store, child.clone(), child_semantics.clone()).await;
    // Rewrite the row as the versions that wrote format 2 did.
    {
        let body = crate::store::codec::encode_format_2(&child, &child_semantics);
        let connection = Connection::open(directory.path().join("spanhouse.db")).unwrap();
        let changed = connection
            .execute("UPDATE spans SET body = ?1", rusqlite::params![body])
            .unwrap();
        assert_eq!(changed, 1);
    }
    // The root arrives later, without texts of its own: the record takes the child's, from its
    // format 2 body.
    write_semantics(&store, make_span(9, 1), SpanSemantics::default()).await;

    let (record, spans) = store
        .get_trace("p", crate::model::TraceId([9; 16]))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.span_count, 2);
    assert_eq!(record.input.as_deref(), Some("format 2 in"));
    assert_eq!(record.output.as_deref(), Some("format 2 out"));
    assert_eq!(record.models, ["gpt-4o"]);
    assert_eq!(spans[1].span, child);
    assert_eq!(spans[1].semantics, child_semantics.with_llm_texts());
}

/// A trace whose root, of another model, arrives in a later batch and moves its timestamp: its rows in
/// `trace_models` (deleted by primary key, from the row's old timestamp and models) follow.
#[tokio::test]
async fn a_trace_split_over_batches_keeps_its_models_current() {
    let directory = tempfile::tempdir().unwrap();
    let store = open(directory.path());
    let with_model = |model: &str| SpanSemantics {
        llm: Some(crate::model::LlmCall {
            response_model: Some(model.into()),
            ..Default::default()
        }),
        ..Default::default()
    };
    let trace_id = crate::model::TraceId([9; 16]);
    let root = make_span(9, 1);
    let child = crate::model::Span {
        parent_span_id: Some(SpanId([1; 8])),
        start_time_unix_nano: root.start_time_unix_nano + 1_000,
        ..make_span(9, 2)
    };
    write_semantics(&store, child, with_model("model-b")).await;
    let (before, _) = store.get_trace("p", trace_id).await.unwrap().unwrap();
    write_semantics(&store, root, with_model("model-a")).await;

    let connection = Connection::open(directory.path().join("spanhouse.db")).unwrap();
    let rows: Vec<(String, i64)> = connection
        .prepare("SELECT model, timestamp_ns FROM trace_models ORDER BY model")
        .unwrap()
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap();
    let (record, spans) = store.get_trace("p", trace_id).await.unwrap().unwrap();
    assert_eq!(spans.len(), 2);
    assert_ne!(record.timestamp_unix_nano, before.timestamp_unix_nano);
    let timestamp = record.timestamp_unix_nano as i64;
    assert_eq!(
        rows,
        [
            ("model-a".to_string(), timestamp),
            ("model-b".to_string(), timestamp)
        ]
    );
    for model in ["model-a", "model-b"] {
        let query = TraceQuery {
            start_unix_nano: 0,
            end_unix_nano: u64::MAX,
            limit: 10,
            model: Some(model.into()),
            ..Default::default()
        };
        let page = store.query_traces("p", &query).await.unwrap();
        assert_eq!(page.traces.len(), 1, "{model}");
    }
}
