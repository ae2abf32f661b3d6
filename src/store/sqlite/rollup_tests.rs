//! The rollup the writer keeps (`trace_rollup`) is, cell for cell, what the stored trace rows
//! add up to: after rows are replaced, after a late root moves a trace to another minute, after
//! duplicate deliveries, on every write path, and after a store made before the rollup migrates.

use std::collections::BTreeMap;
use std::path::Path;

use rusqlite::Connection;

use super::SqliteStore;
use super::rollup::cell_from_row;
use super::tests::open;
use super::trace_rows_tests::{batch, llm_span, span, write_choice};
use crate::model::span::test_support::text;
use crate::model::{Span, StatusCode, TraceRecord};
use crate::store::rollup::{MINUTE_NANOS, RollupCell, RollupDeltas, RollupKey};
use crate::store::trace_stats::{StatsBuilder, StatsQuery, TraceFacts};
use crate::store::{SpanStore, TraceQuery};

/// The start of the minute the test spans start in (`make_span`'s start).
const BASE: u64 = 1_700_000_000_000_000_000 / MINUTE_NANOS * MINUTE_NANOS;

/// `span` moved to start `minute` minutes after [`BASE`] (plus `offset_ms`), lasting
/// `duration_ms`, with an error status when `error`.
fn at(mut span: Span, minute: u64, offset_ms: u64, duration_ms: u64, error: bool) -> Span {
    span.start_time_unix_nano = BASE + minute * MINUTE_NANOS + offset_ms * 1_000_000;
    span.end_time_unix_nano = span.start_time_unix_nano + duration_ms * 1_000_000;
    if error {
        span.status.code = StatusCode::Error;
    }
    span
}

/// A root span with a text, so that the row's texts change too.
fn root(trace: u8, minute: u64, duration_ms: u64, error: bool) -> Span {
    let root = span(trace, 1, vec![text("input.value", "a question")]);
    at(root, minute, 0, duration_ms, error)
}

/// A call to `model` as span `number` of `trace`, in `minute`.
fn call(trace: u8, number: u8, model: &str, minute: u64, duration_ms: u64) -> Span {
    at(
        llm_span(trace, number, model),
        minute,
        1,
        duration_ms,
        false,
    )
}

async fn write(store: &SqliteStore, project: &str, spans: Vec<Span>, prepare: bool) {
    store
        .write_spans(vec![batch(store, project, spans, prepare)])
        .await
        .unwrap();
}

/// The cells of a project in `trace_rollup`.
fn stored_cells(directory: &Path, project: &str) -> BTreeMap<RollupKey, RollupCell> {
    let connection = Connection::open(directory.join("spanhouse.db")).unwrap();
    let mut statement = connection
        .prepare(
            "SELECT minute_ns, model, traces, errors, tokens, cost_nanos, durations
             FROM trace_rollup WHERE project_id = ?1",
        )
        .unwrap();
    statement
        .query_map([project], |row| {
            let key = (row.get::<_, i64>(0)? as u64, row.get(1)?);
            Ok((key, cell_from_row(row, 2)?.unwrap()))
        })
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap()
}

/// The facts of every stored trace of a project, from its TraceRecord as the API reads it.
async fn stored_facts(store: &SqliteStore, project: &str) -> Vec<TraceFacts> {
    let query = TraceQuery {
        start_unix_nano: 0,
        end_unix_nano: u64::MAX,
        limit: 10_000,
        ..Default::default()
    };
    let page = store.query_traces(project, &query).await.unwrap();
    assert!(page.next_cursor.is_none());
    page.traces.iter().map(facts_of_record).collect()
}

fn facts_of_record(record: &TraceRecord) -> TraceFacts {
    TraceFacts {
        timestamp_unix_nano: record.timestamp_unix_nano,
        is_error: record.status == "error",
        duration_ms: record.duration_ms,
        total_tokens: record.total_token_count.unwrap_or(0),
        total_cost: record.total_cost.unwrap_or(0.0),
        models: record.models.clone(),
    }
}

/// The rollup of each project holds exactly the cells its stored traces add up to, and the
/// dashboard read from it is [`StatsBuilder`]'s over the same traces.
async fn assert_rollup_is_recomputation(store: &SqliteStore, directory: &Path) {
    for project in ["p", "q"] {
        let facts = stored_facts(store, project).await;
        let mut reference = RollupDeltas::default();
        for trace in &facts {
            reference.add(trace);
        }
        let reference: BTreeMap<RollupKey, RollupCell> =
            reference.into_cells().into_iter().collect();
        assert_eq!(
            stored_cells(directory, project),
            reference,
            "project {project}"
        );

        for (start, end, bucket) in [(0, 60, 1), (3, 6, 1), (0, 60, 5), (4, 5, 1)] {
            let query = StatsQuery {
                start_unix_nano: BASE + start * MINUTE_NANOS,
                end_unix_nano: BASE + end * MINUTE_NANOS,
                bucket_nanos: bucket * MINUTE_NANOS,
                filter: None,
            };
            let mut builder = StatsBuilder::new(query.clone());
            for trace in &facts {
                builder.add(trace);
            }
            let stats = store.trace_stats(project, &query).await.unwrap();
            assert_eq!(stats, builder.finish(), "project {project}, {query:?}");
        }
    }
}

#[tokio::test]
async fn the_rollup_follows_replaced_moved_and_duplicate_rows() {
    let directory = tempfile::tempdir().unwrap();
    let store = open(directory.path());

    // A child first, prepared: the trace starts in minute 5, its status unset, one model.
    write(&store, "p", vec![call(1, 2, "gpt-4o", 5, 300)], true).await;
    // A whole trace, prepared, in minute 2; the same trace id in another project.
    let whole = vec![root(2, 2, 1_200, false), call(2, 2, "gpt-4o-mini", 2, 900)];
    write(&store, "p", whole.clone(), true).await;
    write(&store, "q", whole.clone(), false).await;
    assert_rollup_is_recomputation(&store, directory.path()).await;
    assert!(
        stored_cells(directory.path(), "p").contains_key(&(BASE + 5 * MINUTE_NANOS, String::new()))
    );

    // The late root, an error, moves trace 1 to minute 3 and adds a model: minute 5 empties.
    write(
        &store,
        "p",
        vec![root(1, 3, 2_500, true), call(1, 3, "gpt-4o-mini", 3, 700)],
        true,
    )
    .await;
    assert_rollup_is_recomputation(&store, directory.path()).await;
    let cells = stored_cells(directory.path(), "p");
    assert!(
        cells
            .keys()
            .all(|(minute, _)| *minute != BASE + 5 * MINUTE_NANOS),
        "{cells:?}"
    );
    assert_eq!(cells[&(BASE + 3 * MINUTE_NANOS, String::new())].errors, 1);

    // Duplicate deliveries change nothing; a retry beside a new span changes its trace once.
    let before = stored_cells(directory.path(), "p");
    write(&store, "p", whole.clone(), true).await;
    write(&store, "p", whole.clone(), false).await;
    assert_eq!(stored_cells(directory.path(), "p"), before);
    let mut retried = whole.clone();
    retried.push(call(2, 4, "claude-3-5-sonnet", 2, 100));
    write(&store, "p", retried, false).await;
    assert_rollup_is_recomputation(&store, directory.path()).await;

    // Two batches of one transaction touching the same trace, and a child that moves a trace
    // with no root to an earlier minute.
    store
        .write_spans(vec![
            batch(&store, "p", vec![call(3, 2, "gpt-4o", 7, 50)], true),
            batch(&store, "p", vec![call(3, 3, "gpt-4o", 6, 70)], true),
            batch(&store, "q", vec![call(1, 2, "gpt-4o", 8, 10)], true),
        ])
        .await
        .unwrap();
    assert_rollup_is_recomputation(&store, directory.path()).await;
    write(&store, "p", vec![call(3, 5, "gpt-4o", 4, 40)], false).await;
    assert_rollup_is_recomputation(&store, directory.path()).await;

    // Content from the logs signal recomputes a trace through the other write path.
    write_choice(&store, 2, 2, "the answer, from a log record").await;
    assert_rollup_is_recomputation(&store, directory.path()).await;
}

/// A store written before the rollup existed gets it, from its trace rows, when it migrates.
#[tokio::test]
async fn migrating_builds_the_rollup_of_stored_traces() {
    let directory = tempfile::tempdir().unwrap();
    let store = open(directory.path());
    write(&store, "p", vec![call(1, 2, "gpt-4o", 5, 300)], true).await;
    write(
        &store,
        "p",
        vec![
            root(1, 3, 2_500, true),
            root(2, 2, 1_200, false),
            call(2, 2, "gpt-4o-mini", 2, 900),
        ],
        false,
    )
    .await;
    write(&store, "q", vec![root(4, 9, 10, false)], true).await;
    let before = [
        stored_cells(directory.path(), "p"),
        stored_cells(directory.path(), "q"),
    ];
    assert!(before.iter().all(|cells| !cells.is_empty()));
    store.flush(std::time::Duration::from_secs(1)).await;
    drop(store);

    // Back to the version before the rollup: without it and what later migrations made.
    let connection = Connection::open(directory.path().join("spanhouse.db")).unwrap();
    connection
        .execute_batch(&format!(
            "DROP TABLE trace_rollup; DROP INDEX traces_by_status; DROP TABLE scores; \
             DROP TABLE span_terms; DROP TABLE filter_keys; DROP INDEX spans_by_start; \
             ALTER TABLE spans DROP COLUMN llm_provider; \
             ALTER TABLE spans DROP COLUMN llm_operation; DROP TABLE purge_pending; \
             DROP TABLE alert_rules; DROP TABLE alert_states; DROP TABLE alert_events; \
             DROP TABLE leases; \
             PRAGMA user_version = {};",
            super::schema::ROLLUP_MIGRATION
        ))
        .unwrap();
    drop(connection);

    let store = open(directory.path());
    let after = [
        stored_cells(directory.path(), "p"),
        stored_cells(directory.path(), "q"),
    ];
    assert_eq!(after, before);
    assert_rollup_is_recomputation(&store, directory.path()).await;
}
