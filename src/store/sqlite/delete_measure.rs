//! Measurements of deletion on the embedded store, run by hand (ignored tests): the space a
//! deletion gives back and its time, and `secure_delete`'s cost on ingest. The figures are in
//! docs/storage.md.

use std::path::Path;
use std::sync::Arc;

use rusqlite::Connection;

use super::delete_tests::{indexed_seq, prose, span_with, write_request};
use super::tests::open;
use super::{SqliteStore, Synchronous, open_connection, search};
use crate::filter::query::parse_trace_filter;
use crate::model::TraceId;
use crate::model::span::test_support::make_span;
use crate::store::{SpanStore, TraceSelection};

fn count(connection: &Connection, sql: &str) -> i64 {
    connection.query_row(sql, [], |row| row.get(0)).unwrap()
}

/// The bytes of the store's files in `directory`: (spanhouse.db, its WAL, search.sqlite).
fn file_sizes(directory: &Path) -> (u64, u64, u64) {
    let size = |name: &str| std::fs::metadata(directory.join(name)).map_or(0, |meta| meta.len());
    (
        size("spanhouse.db"),
        size("spanhouse.db-wal"),
        size(search::SEARCH_FILE),
    )
}

/// Pages of spanhouse.db in use and free (on its free list, reused by new data), in bytes.
fn pages(directory: &Path) -> (i64, i64) {
    let connection = Connection::open(directory.join("spanhouse.db")).unwrap();
    let page_size = count(&connection, "PRAGMA page_size");
    let page_count = count(&connection, "PRAGMA page_count");
    let free = count(&connection, "PRAGMA freelist_count");
    ((page_count - free) * page_size, free * page_size)
}

/// Writes `traces` traces of three spans from trace number `first`, 100 traces a request;
/// traces of even number belong to user `even`.
async fn write_many(store: &SqliteStore, first: u64, traces: u64) {
    write_many_spans(store, first, traces, 0).await;
}

/// [`write_many`] with span ids from `span_base + 1`: other spans of the same traces.
async fn write_many_spans(store: &SqliteStore, first: u64, traces: u64, span_base: u8) {
    for request in (first..first + traces).collect::<Vec<_>>().chunks(100) {
        let mut spans = Vec::new();
        for &number in request {
            for span_number in 1..=3u8 {
                let mut span = span_with(
                    0,
                    span_base + span_number,
                    &prose(number * 3 + u64::from(span_number)),
                    if number % 2 == 0 { "even" } else { "odd" },
                );
                let mut id = [0u8; 16];
                id[..8].copy_from_slice(&number.to_be_bytes());
                id[8] = 1;
                span.trace_id = TraceId(id);
                span.parent_span_id =
                    (span_base + span_number > 1).then_some(crate::model::SpanId([1; 8]));
                span.start_time_unix_nano += number * 1_000_000;
                span.end_time_unix_nano += number * 1_000_000;
                spans.push(span);
            }
        }
        write_request(store, spans).await;
    }
}

/// Not a test: the space a deletion of half of 100,000 traces gives back, and its time
/// (`cargo test --release --lib delete_measure::measure -- --ignored --nocapture`).
#[tokio::test]
#[ignore = "a measurement, minutes long"]
async fn measure_deleting_half_of_100k_traces() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path();
    let store = open(path);
    store.start_text_indexer().unwrap();
    let started = std::time::Instant::now();
    write_many(&store, 0, 100_000).await;
    while indexed_seq(path) < 100_000 {
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    store.purge().await.unwrap();
    // An empty purge does not checkpoint: the WAL's pages are copied for the figures.
    let main = open_connection(&path.join("spanhouse.db"), Synchronous::Normal).unwrap();
    main.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")
        .unwrap();
    eprintln!(
        "ingested 100,000 traces (300,000 spans) in {:.1?}",
        started.elapsed()
    );
    eprintln!(
        "files (db, wal, search): {:?}; (used, free): {:?}",
        file_sizes(path),
        pages(path)
    );

    // An erasure of scattered traces: every other one.
    let filter = Arc::new(parse_trace_filter(r#"user_id == "even""#).unwrap());
    let erasure = TraceSelection::Matching {
        start_unix_nano: 0,
        end_unix_nano: u64::MAX,
        filter: Some(filter),
    };
    delete_and_purge(&store, path, &erasure).await;
    // Retention of the oldest half of what is left: contiguous traces.
    let retention = TraceSelection::Matching {
        start_unix_nano: 0,
        end_unix_nano: make_span(0, 0).start_time_unix_nano + 50_000 * 1_000_000,
        filter: None,
    };
    delete_and_purge(&store, path, &retention).await;

    write_many(&store, 200_000, 50_000).await;
    main.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")
        .unwrap();
    eprintln!(
        "after 50,000 new traces, files (db, wal, search): {:?}; (used, free): {:?}",
        file_sizes(path),
        pages(path)
    );
}

async fn delete_and_purge(store: &SqliteStore, path: &Path, selection: &TraceSelection) {
    let started = std::time::Instant::now();
    let deleted = store.delete_traces("p", selection).await.unwrap();
    let deletion = started.elapsed();
    eprintln!(
        "deleted {deleted} traces in {deletion:.1?}: {:.1?} per transaction of {}",
        deletion / (deleted as u32).div_ceil(super::delete::DELETE_BATCH as u32),
        super::delete::DELETE_BATCH
    );
    let started = std::time::Instant::now();
    let report = store.purge().await.unwrap();
    eprintln!("purged {report:?} in {:.1?}", started.elapsed());
    eprintln!(
        "files (db, wal, search): {:?}; (used, free): {:?}",
        file_sizes(path),
        pages(path)
    );
}

/// Not a test: ingest time with the writer's `secure_delete` off and `FAST`, traces split over
/// two requests so that trace rows are replaced
/// (`cargo test --lib delete_measure::measure_secure -- --ignored --nocapture`).
#[tokio::test]
#[ignore = "a measurement"]
async fn measure_secure_delete_cost_on_ingest() {
    for round in 0..4 {
        let setting = if round % 2 == 0 { "OFF" } else { "FAST" };
        let directory = tempfile::tempdir().unwrap();
        let store = open(directory.path());
        store
            .with_writer(move |connection| {
                Ok(connection.pragma_update(None, "secure_delete", setting)?)
            })
            .await
            .unwrap();
        let started = std::time::Instant::now();
        write_many(&store, 0, 20_000).await;
        // The same traces again with other spans: every trace row is replaced.
        write_many_spans(&store, 0, 20_000, 10).await;
        eprintln!("secure_delete {setting}: {:.2?}", started.elapsed());
    }
}
