//! Deletion on the embedded store: blocks shared by a deleted and a kept trace are rewritten
//! without the deleted spans, every table forgets the trace, the rollup stops counting it, and
//! after the purge its texts are in no file of the data directory.

use std::path::Path;
use std::sync::Arc;

use rusqlite::Connection;

use super::tests::{open, search_inputs};
use super::{SqliteStore, Synchronous, open_connection, search};
use crate::filter::query::parse_trace_filter;
use crate::model::attributes::{AttrValue, KeyValue};
use crate::model::score::{Score, ScoreValue};
use crate::model::span::test_support::make_span;
use crate::model::{NormalizedSpan, TraceId};
use crate::normalize::Normalizer;
use crate::store::codec::decompress_packed;
use crate::store::{PurgeReport, SpanBatch, SpanStore, StatsQuery, TraceQuery, TraceSelection};

/// A span of trace `trace` whose input and attribute `note` hold `text`.
pub(super) fn span_with(trace: u8, span: u8, text: &str, user: &str) -> crate::model::Span {
    let mut span = make_span(trace, span);
    span.attributes = vec![
        KeyValue {
            key: "input.value".into(),
            value: AttrValue::String(format!("question {text}")),
        },
        KeyValue {
            key: "note".into(),
            value: AttrValue::String(text.into()),
        },
        KeyValue {
            key: "user.id".into(),
            value: AttrValue::String(user.into()),
        },
    ];
    span
}

/// Stores `spans` as one request, the way ingest does: encoded in blocks, rows prepared.
pub(super) async fn write_request(store: &SqliteStore, spans: Vec<crate::model::Span>) {
    let normalizer = Normalizer::default();
    let mut spans: Vec<NormalizedSpan> = spans
        .into_iter()
        .map(|span| NormalizedSpan {
            semantics: normalizer.normalize(&span, &[]),
            span,
            encoded_body: None,
        })
        .collect();
    store.encode_spans(&mut spans);
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

fn everything() -> TraceQuery {
    TraceQuery {
        start_unix_nano: 0,
        end_unix_nano: u64::MAX,
        limit: 100,
        ..Default::default()
    }
}

fn count(connection: &Connection, sql: &str) -> i64 {
    connection.query_row(sql, [], |row| row.get(0)).unwrap()
}

/// The decompressed contents of every stored block.
fn blocks(connection: &Connection) -> Vec<Vec<u8>> {
    connection
        .prepare("SELECT data FROM span_blocks")
        .unwrap()
        .query_map([], |row| row.get::<_, Vec<u8>>(0))
        .unwrap()
        .map(|data| decompress_packed(&data.unwrap()).unwrap())
        .collect()
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle.as_bytes())
}

/// Every file under `directory` that holds `needle`.
fn files_holding(directory: &Path, needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(directory).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() && contains(&std::fs::read(&path).unwrap(), needle) {
            found.push(path.display().to_string());
        }
    }
    found
}

async fn totals(store: &SqliteStore) -> u64 {
    let query = StatsQuery {
        start_unix_nano: 1_600_000_000_000_000_000,
        end_unix_nano: 1_800_000_000_000_000_000,
        bucket_nanos: 3_600_000_000_000,
        filter: None,
    };
    store.trace_stats("p", &query).await.unwrap().totals.traces
}

#[tokio::test]
async fn a_block_shared_with_a_deleted_trace_keeps_only_the_other_traces_spans() {
    let directory = tempfile::tempdir().unwrap();
    let store = open(directory.path());
    // Two traces of three spans each in one request: one block holds both.
    let mut spans = Vec::new();
    for span in 1..=3 {
        spans.push(span_with(1, span, "gone-secret-text", "u-1"));
        spans.push(span_with(2, span, "kept-plain-text", "u-2"));
    }
    write_request(&store, spans).await;
    let main =
        open_connection(&directory.path().join("spanhouse.db"), Synchronous::Normal).unwrap();
    assert_eq!(count(&main, "SELECT COUNT(*) FROM span_blocks"), 1);
    assert_eq!(totals(&store).await, 2);

    let deleted = store
        .delete_traces(
            "p",
            &TraceSelection::Ids(vec![TraceId([1; 16]), TraceId([7; 16])]),
        )
        .await
        .unwrap();
    assert_eq!(deleted, 1, "the unknown id is ignored");

    assert!(
        store
            .get_trace("p", TraceId([1; 16]))
            .await
            .unwrap()
            .is_none()
    );
    let (record, kept) = store
        .get_trace("p", TraceId([2; 16]))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(kept.len(), 3);
    assert_eq!(record.input.as_deref(), Some("question kept-plain-text"));
    for span in &kept {
        assert!(
            span.span
                .attributes
                .iter()
                .any(|kv| kv.value == AttrValue::String("kept-plain-text".into()))
        );
    }
    let [block] = blocks(&main).try_into().unwrap();
    assert!(!contains(&block, "gone-secret-text"));
    assert!(contains(&block, "kept-plain-text"));
    assert_eq!(count(&main, "SELECT COUNT(*) FROM spans"), 3);
    assert_eq!(count(&main, "SELECT COUNT(*) FROM traces"), 1);
    assert_eq!(
        count(
            &main,
            "SELECT COUNT(*) FROM span_terms WHERE trace_key NOT IN (SELECT rowid FROM traces)"
        ),
        0
    );
    assert_eq!(totals(&store).await, 1, "the rollup no longer counts it");
    let page = store.query_traces("p", &everything()).await.unwrap();
    assert_eq!(page.traces.len(), 1);

    // The last trace of the block: the block goes.
    store
        .delete_traces("p", &TraceSelection::Ids(vec![TraceId([2; 16])]))
        .await
        .unwrap();
    assert_eq!(count(&main, "SELECT COUNT(*) FROM span_blocks"), 0);
    assert_eq!(count(&main, "SELECT COUNT(*) FROM span_terms"), 0);
    assert_eq!(count(&main, "SELECT COUNT(*) FROM trace_rollup"), 0);
    assert_eq!(count(&main, "SELECT COUNT(*) FROM trace_models"), 0);
}

#[tokio::test]
async fn a_filter_deletes_one_users_traces_and_another_project_keeps_its_own() {
    let directory = tempfile::tempdir().unwrap();
    let store = open(directory.path());
    for trace in 1..=6u8 {
        let user = if trace % 2 == 0 { "u-17" } else { "u-3" };
        write_request(
            &store,
            vec![span_with(trace, 1, &format!("text {trace}"), user)],
        )
        .await;
    }
    let other = crate::model::Span {
        ..span_with(2, 1, "other project", "u-17")
    };
    let normalizer = Normalizer::default();
    store
        .write_spans(vec![SpanBatch {
            project_id: "q".into(),
            spans: vec![NormalizedSpan {
                semantics: normalizer.normalize(&other, &[]),
                span: other,
                encoded_body: None,
            }],
            prepared: Vec::new(),
        }])
        .await
        .unwrap();
    let score = Score {
        id: "s1".into(),
        trace_id: TraceId([2; 16]),
        span_id: None,
        name: "quality".into(),
        value: ScoreValue::Numeric(1.0),
        comment: Some("score-comment-secret".into()),
        source: "api".into(),
        created_at_unix_nano: 1,
    };
    store.put_scores("p", vec![score]).await.unwrap();

    let filter = Arc::new(parse_trace_filter(r#"user_id == "u-17""#).unwrap());
    let selection = TraceSelection::Matching {
        start_unix_nano: 0,
        end_unix_nano: u64::MAX,
        filter: Some(filter),
    };
    assert_eq!(store.delete_traces("p", &selection).await.unwrap(), 3);
    let page = store.query_traces("p", &everything()).await.unwrap();
    let mut left: Vec<String> = page.traces.iter().map(|t| t.trace_id.clone()).collect();
    left.sort();
    assert_eq!(
        left,
        [1u8, 3, 5]
            .map(|trace| TraceId([trace; 16]).to_hex())
            .to_vec()
    );
    assert!(
        store
            .get_trace("q", TraceId([2; 16]))
            .await
            .unwrap()
            .is_some()
    );
    let scores = store
        .scores_of_traces("p", &[TraceId([2; 16])])
        .await
        .unwrap();
    assert!(scores.is_empty());
    // Again: nothing left to delete.
    assert_eq!(store.delete_traces("p", &selection).await.unwrap(), 0);
}

#[tokio::test]
async fn after_the_purge_no_file_holds_the_deleted_texts() {
    let directory = tempfile::tempdir().unwrap();
    let store = open(directory.path());
    store.start_text_indexer().unwrap();
    for trace in 1..=40u8 {
        let text = if trace == 5 {
            "zqxdeletedmarker".to_owned()
        } else {
            format!("ordinary text {trace}")
        };
        write_request(&store, vec![span_with(trace, 1, &text, "u")]).await;
    }
    // The indexer has the deleted trace's trigrams in its group's entry.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while search_inputs(&store, "zqxdeletedmarker").await.is_empty()
        || indexed_seq(directory.path()) < 40
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the indexer did not catch up"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    store
        .delete_traces("p", &TraceSelection::Ids(vec![TraceId([5; 16])]))
        .await
        .unwrap();
    assert!(search_inputs(&store, "zqxdeletedmarker").await.is_empty());
    let report = store.purge().await.unwrap();
    assert_eq!(
        report,
        PurgeReport {
            traces: 1,
            spans: 1
        }
    );
    assert_eq!(store.purge().await.unwrap(), PurgeReport::default());
    assert_eq!(
        files_holding(directory.path(), "zqxdeletedmarker"),
        Vec::<String>::new()
    );
    // The group's other traces are still found through the index.
    assert_eq!(search_inputs(&store, "ordinary text 6").await.len(), 1);
    let search_file = Connection::open(directory.path().join(search::SEARCH_FILE)).unwrap();
    let entries_with_marker = count(
        &search_file,
        "SELECT COUNT(*) FROM traces_text WHERE traces_text MATCH '\"zqx\" AND \"qxd\"'",
    );
    assert_eq!(entries_with_marker, 0);
}

pub(super) fn indexed_seq(directory: &Path) -> i64 {
    let Ok(search_file) = Connection::open(directory.join(search::SEARCH_FILE)) else {
        return 0;
    };
    search_file
        .query_row("SELECT indexed_seq FROM index_state", [], |row| row.get(0))
        .unwrap_or(0)
}

/// The deletion's statements use the indexes they name or imply: without statistics SQLite
/// would otherwise be free to scan.
#[test]
fn deletion_statements_use_their_indexes() {
    let directory = tempfile::tempdir().unwrap();
    drop(open(directory.path()));
    let connection =
        open_connection(&directory.path().join("spanhouse.db"), Synchronous::Normal).unwrap();
    let plan = |sql: &str| -> String {
        let mut statement = connection
            .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
            .unwrap();
        let nulls = vec![rusqlite::types::Value::Null; statement.parameter_count()];
        statement
            .query_map(rusqlite::params_from_iter(nulls), |row| {
                row.get::<_, String>(3)
            })
            .unwrap()
            .map(Result::unwrap)
            .collect::<Vec<_>>()
            .join("; ")
    };
    for (sql, expected) in [
        (
            super::delete::WINDOW_ROWIDS,
            "USING COVERING INDEX traces_by_time",
        ),
        (
            "DELETE FROM span_content_events WHERE project_id = ?1 AND trace_id = ?2",
            "USING INDEX span_content_events_identity",
        ),
        (
            "DELETE FROM trace_models
             WHERE project_id = ?1 AND model = ?2 AND timestamp_ns = ?3 AND trace_id = ?4",
            "USING PRIMARY KEY",
        ),
        (
            "DELETE FROM span_terms INDEXED BY span_terms_by_span WHERE span_key = ?1",
            "USING COVERING INDEX span_terms_by_span",
        ),
        (
            "DELETE FROM scores INDEXED BY scores_by_trace WHERE project_id = ?1 AND trace_id = ?2",
            "USING INDEX scores_by_trace",
        ),
    ] {
        let plan = plan(sql);
        assert!(plan.contains(expected), "{sql}: {plan}");
        assert!(!plan.contains("SCAN"), "{sql}: {plan}");
    }
}

/// A text of about 300 bytes that differs from trace to trace, as prompts do.
pub(super) fn prose(seed: u64) -> String {
    const WORDS: [&str; 16] = [
        "weather",
        "invoice",
        "refund",
        "order",
        "customer",
        "shipping",
        "account",
        "password",
        "summary",
        "translate",
        "schedule",
        "meeting",
        "report",
        "analysis",
        "recipe",
        "travel",
    ];
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let mut text = format!("request {seed}:");
    while text.len() < 300 {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        text.push(' ');
        text.push_str(WORDS[(state >> 60) as usize]);
        text.push_str(&((state >> 40) % 1000).to_string());
    }
    text
}

/// Thousands of traces, so that the b-trees split pages, and the deleted traces' rows replaced
/// by later spans before: no copy of their texts survives the purge, in the live files or
/// after the store is closed.
#[tokio::test]
async fn no_copy_survives_replaced_rows_and_split_pages() {
    let directory = tempfile::tempdir().unwrap();
    let store = open(directory.path());
    store.start_text_indexer().unwrap();
    let mut doomed = Vec::new();
    for request in 0..40u64 {
        let mut spans = Vec::new();
        for index in 0..100u64 {
            let number = request * 100 + index;
            let marked = number % 97 == 5;
            let text = if marked {
                format!("zqxstale{number:05}")
            } else {
                prose(number)
            };
            for span_number in 1..=3u8 {
                let mut span = span_with(0, span_number, &text, &format!("user{}", number % 50));
                let mut id = [0u8; 16];
                id[..8].copy_from_slice(&number.to_be_bytes());
                id[8] = 2;
                span.trace_id = TraceId(id);
                span.parent_span_id = (span_number > 1).then_some(crate::model::SpanId([1; 8]));
                spans.push(span);
                if marked && span_number == 1 {
                    doomed.push(TraceId(id));
                }
            }
        }
        write_request(&store, spans).await;
    }
    // More spans of the marked traces, in requests of their own: their rows are replaced.
    for (round, trace) in doomed.iter().enumerate() {
        let mut span = span_with(0, 9, &format!("zqxstale-late{round}"), "late");
        span.trace_id = *trace;
        span.parent_span_id = Some(crate::model::SpanId([1; 8]));
        span.start_time_unix_nano -= 1_000;
        write_request(&store, vec![span]).await;
    }
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    assert!(!files_holding(directory.path(), "zqxstale").is_empty());
    store
        .delete_traces("p", &TraceSelection::Ids(doomed))
        .await
        .unwrap();
    store.purge().await.unwrap();
    assert_eq!(
        files_holding(directory.path(), "zqxstale"),
        Vec::<String>::new()
    );
    store.flush(std::time::Duration::from_secs(5)).await;
    drop(store);
    assert_eq!(
        files_holding(directory.path(), "zqxstale"),
        Vec::<String>::new()
    );
}
