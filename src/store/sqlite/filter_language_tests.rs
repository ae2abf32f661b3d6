//! The filter language on the embedded store: every path kind of both contexts finds exactly
//! the traces or spans it names (nil and OTTL semantics included), pages hold across cursors,
//! terms are written once per span and filled by the migration, the planner drives from a small
//! candidate and reads the time index otherwise, and filtered stats equal their recomputation.

use std::sync::Arc;

use rusqlite::Connection;

use super::SqliteStore;
use super::tests::open;
use super::trace_rows_tests::{batch, llm_span, span};
use crate::filter::query::{parse_span_filter, parse_trace_filter};
use crate::model::attributes::AttrValue;
use crate::model::score::{Score, ScoreValue};
use crate::model::span::test_support::text;
use crate::model::{KeyValue, Resource, StatusCode, TraceId, TraceRecord};
use crate::store::trace_stats::{StatsBuilder, StatsQuery, TraceFacts};
use crate::store::{SpanQuery, SpanStore, TraceQuery};

/// Trace `n` (1..=8): a root with `tenant` (acme when odd, else globex), `retries` = n, `flag`
/// (n even), `ratio` = n + 0.5, metadata `env` (prod up to 4, else dev), tag `beta` when a
/// multiple of 3, user `u1` unless 5, resource `region` (eu when n ≤ 2); an error when 8;
/// lasting 2 s when 7, else 0.5 s; an LLM call of gpt-4o when odd.
fn trace(n: u8) -> Vec<crate::model::Span> {
    let mut attributes = vec![
        text("tenant", if n % 2 == 1 { "acme" } else { "globex" }),
        KeyValue::new("retries", AttrValue::Int(i64::from(n))),
        KeyValue::new("flag", AttrValue::Bool(n.is_multiple_of(2))),
        KeyValue::new("ratio", AttrValue::Double(f64::from(n) + 0.5)),
        text(
            "langfuse.trace.metadata.env",
            if n <= 4 { "prod" } else { "dev" },
        ),
    ];
    if n.is_multiple_of(3) {
        attributes.push(KeyValue::new(
            "langfuse.trace.tags",
            AttrValue::Array(vec![AttrValue::String("beta".into())]),
        ));
    }
    if n != 5 {
        attributes.push(text("user.id", "u1"));
    }
    let mut root = span(n, 1, attributes);
    root.resource = Arc::new(Resource {
        attributes: vec![text("region", if n <= 2 { "eu" } else { "us" })],
        ..Default::default()
    });
    if n == 8 {
        root.status.code = StatusCode::Error;
    }
    if n == 7 {
        root.end_time_unix_nano = root.start_time_unix_nano + 2_000_000_000;
    }
    // Distinct timestamps, newest the highest number.
    root.start_time_unix_nano += u64::from(n) * 1_000_000;
    let mut spans = vec![root];
    if n % 2 == 1 {
        let mut call = llm_span(n, 2, "gpt-4o");
        call.start_time_unix_nano += u64::from(n) * 1_000_000;
        spans.push(call);
    }
    spans
}

fn score(id: &str, n: u8, name: &str, value: ScoreValue, at: u64) -> Score {
    Score {
        id: id.into(),
        trace_id: TraceId([n; 16]),
        span_id: None,
        name: name.into(),
        value,
        comment: None,
        source: "api".into(),
        created_at_unix_nano: at,
    }
}

async fn store_with_traces(directory: &std::path::Path) -> SqliteStore {
    let store = open(directory);
    for n in 1..=8 {
        store
            .write_spans(vec![batch(&store, "p", trace(n), true)])
            .await
            .unwrap();
    }
    store
        .put_scores(
            "p",
            vec![
                score("a", 1, "quality", ScoreValue::Numeric(0.9), 1),
                score("b", 1, "quality", ScoreValue::Numeric(0.2), 2),
                score("c", 2, "quality", ScoreValue::Numeric(0.8), 1),
                score("d", 3, "ok", ScoreValue::Boolean(true), 1),
                score("e", 4, "label", ScoreValue::Categorical("good".into()), 1),
            ],
        )
        .await
        .unwrap();
    store
}

fn window() -> TraceQuery {
    TraceQuery {
        start_unix_nano: 0,
        end_unix_nano: u64::MAX,
        limit: 100,
        ..Default::default()
    }
}

fn number(record: &TraceRecord) -> u8 {
    TraceId::parse_hex(&record.trace_id).unwrap().0[0]
}

/// The trace numbers every page of `query` (pages of `limit`) finds, in order.
async fn found(store: &SqliteStore, mut query: TraceQuery) -> Vec<u8> {
    let mut numbers = Vec::new();
    loop {
        let page = store.query_traces("p", &query).await.unwrap();
        numbers.extend(page.traces.iter().map(number));
        match page.next_cursor {
            Some(cursor) => query.cursor = Some(cursor),
            None => return numbers,
        }
    }
}

async fn traces_matching(store: &SqliteStore, filter: &str, limit: usize) -> Vec<u8> {
    let query = TraceQuery {
        filter: Some(Arc::new(parse_trace_filter(filter).unwrap())),
        limit,
        ..window()
    };
    found(store, query).await
}

#[tokio::test]
async fn every_trace_path_finds_its_traces() {
    let directory = tempfile::tempdir().unwrap();
    let store = store_with_traces(directory.path()).await;
    let all: Vec<u8> = (1..=8).rev().collect();
    let except =
        |out: &[u8]| -> Vec<u8> { all.iter().copied().filter(|n| !out.contains(n)).collect() };
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (r#"span.attributes["tenant"] == "acme""#, vec![7, 5, 3, 1]),
        (r#"span.attributes["tenant"] != "acme""#, vec![8, 6, 4, 2]),
        (
            r#"IsMatch(span.attributes["tenant"], "^glo")"#,
            vec![8, 6, 4, 2],
        ),
        (r#"span.attributes["retries"] > 5"#, vec![8, 7, 6]),
        (r#"span.attributes["retries"] <= 2"#, vec![2, 1]),
        (r#"span.attributes["retries"] == 3.0"#, vec![3]),
        (r#"span.attributes["retries"] == "3""#, vec![]),
        (r#"span.attributes["ratio"] >= 7.5"#, vec![8, 7]),
        (r#"span.attributes["tenant"] > "b""#, vec![8, 6, 4, 2]),
        (r#"span.attributes["flag"] == true"#, vec![8, 6, 4, 2]),
        (r#"span.attributes["flag"] == 1"#, vec![]),
        (r#"span.attributes["tenant"] == nil"#, vec![]),
        (r#"span.attributes["nope"] == nil"#, all.clone()),
        (r#"span.attributes["nope"] != nil"#, vec![]),
        (r#"span.attributes["nope"] == "x""#, vec![]),
        (r#"span.resource.attributes["region"] == "eu""#, vec![2, 1]),
        (r#"metadata["env"] == "prod""#, vec![4, 3, 2, 1]),
        (r#"metadata["env"] != nil"#, all.clone()),
        (r#"metadata["env"] != "prod""#, vec![8, 7, 6, 5]),
        (r#"metadata["nope"] != "prod""#, all.clone()),
        (r#"tags == "beta""#, vec![6, 3]),
        (r#"HasTag("beta")"#, vec![6, 3]),
        (r#"tags == nil"#, except(&[6, 3])),
        (r#"model == "gpt-4o""#, vec![7, 5, 3, 1]),
        (r#"model == nil"#, vec![8, 6, 4, 2]),
        (r#"model != "gpt-4o""#, vec![]),
        (r#"IsMatch(model, "^gpt")"#, vec![7, 5, 3, 1]),
        (r#"user_id == nil"#, vec![5]),
        (r#"user_id != "u1""#, vec![5]),
        (r#"not (user_id < "u2")"#, vec![5]),
        (r#"status == "error""#, vec![8]),
        (r#"duration_ms > 1000"#, vec![7]),
        (r#"span_count == 2"#, vec![7, 5, 3, 1]),
        (r#"total_token_count == nil"#, vec![8, 6, 4, 2]),
        (r#"llm_call_count > 0 and user_id == "u1""#, vec![7, 3, 1]),
        (r#"scores["quality"] < 0.5"#, vec![1]),
        (r#"scores["quality"] > 0.5"#, vec![2]),
        (r#"scores["quality"] == nil"#, except(&[2, 1])),
        (r#"scores["quality"] != 0.2"#, except(&[1])),
        (r#"scores["ok"] == true"#, vec![3]),
        (r#"scores["ok"] == 1"#, vec![]),
        (r#"scores["label"] == "good""#, vec![4]),
        (r#"IsMatch(scores["label"], "^go")"#, vec![4]),
        (r#"span.name == "span-2""#, vec![7, 5, 3, 1]),
        (r#"span.status == "error""#, vec![8]),
        (r#"span.duration_ms > 1000"#, vec![7]),
        (r#"span.duration_ms < 0"#, vec![]),
        (
            r#"span.attributes["tenant"] == "acme" or metadata["env"] == "prod""#,
            vec![7, 5, 4, 3, 2, 1],
        ),
        (r#"IsMatch(input, "[")"#, vec![]),
    ];
    for (filter, expected) in cases {
        if filter.contains("IsMatch(input") {
            // A regex that does not compile is refused when parsed, never sent to SQL.
            assert!(parse_trace_filter(filter).is_err());
            continue;
        }
        for limit in [100, 2] {
            assert_eq!(
                traces_matching(&store, filter, limit).await,
                expected,
                "{filter} (pages of {limit})"
            );
        }
    }
    // The query's parameters keep working beside a filter.
    let query = TraceQuery {
        user_id: Some("u1".into()),
        filter: Some(Arc::new(
            parse_trace_filter(r#"model == "gpt-4o""#).unwrap(),
        )),
        limit: 1,
        ..window()
    };
    assert_eq!(found(&store, query).await, [7, 3, 1]);
}

async fn spans_matching(store: &SqliteStore, filter: &str, limit: usize) -> Vec<(u8, u8)> {
    let mut query = SpanQuery {
        start_unix_nano: 0,
        end_unix_nano: u64::MAX,
        limit,
        cursor: None,
        filter: Some(Arc::new(parse_span_filter(filter).unwrap())),
    };
    let mut spans = Vec::new();
    loop {
        let page = store.query_spans("p", &query).await.unwrap();
        spans.extend(
            page.spans
                .iter()
                .map(|stored| (stored.span.trace_id.0[0], stored.span.span_id.0[0])),
        );
        match page.next_cursor {
            Some(cursor) => query.cursor = Some(cursor),
            None => return spans,
        }
    }
}

#[tokio::test]
async fn every_span_path_finds_its_spans_newest_first() {
    let directory = tempfile::tempdir().unwrap();
    let store = store_with_traces(directory.path()).await;
    let roots = |numbers: &[u8]| -> Vec<(u8, u8)> { numbers.iter().map(|n| (*n, 1)).collect() };
    let calls: Vec<(u8, u8)> = [7, 5, 3, 1].iter().map(|n| (*n, 2)).collect();
    // Newest start first: a trace's call starts after its root.
    let everything: Vec<(u8, u8)> = (1..=8u8)
        .rev()
        .flat_map(|n| {
            if n % 2 == 1 {
                vec![(n, 2), (n, 1)]
            } else {
                vec![(n, 1)]
            }
        })
        .collect();
    let cases: Vec<(&str, Vec<(u8, u8)>)> = vec![
        (r#"attributes["tenant"] == "acme""#, roots(&[7, 5, 3, 1])),
        (
            r#"attributes["tenant"] != "acme""#,
            everything
                .iter()
                .copied()
                .filter(|(n, span)| *span == 2 || n % 2 == 0)
                .collect(),
        ),
        (r#"attributes["nope"] != "x""#, everything.clone()),
        (r#"attributes["nope"] != nil"#, vec![]),
        (r#"attributes["retries"] >= 7"#, roots(&[8, 7])),
        (r#"resource.attributes["region"] == "eu""#, roots(&[2, 1])),
        (r#"llm != nil"#, calls.clone()),
        (r#"llm == nil"#, roots(&[8, 7, 6, 5, 4, 3, 2, 1])),
        (r#"llm.model == "gpt-4o""#, calls.clone()),
        (r#"llm.provider == "openai""#, calls.clone()),
        (r#"llm.operation == "chat""#, calls.clone()),
        (r#"llm.prompt_tokens == 12"#, calls.clone()),
        (r#"llm.completion_tokens > 100"#, vec![]),
        (r#"llm.cost > 0"#, calls.clone()),
        (r#"llm.cost == nil"#, roots(&[8, 7, 6, 5, 4, 3, 2, 1])),
        (r#"kind == "internal""#, everything.clone()),
        (r#"status == "error""#, roots(&[8])),
        (r#"name == "span-1" and duration_ms > 1000"#, roots(&[7])),
        (r#"IsMatch(name, "2$")"#, calls.clone()),
        (r#"service_name == nil"#, everything.clone()),
    ];
    for (filter, expected) in cases {
        for limit in [100, 3] {
            assert_eq!(
                spans_matching(&store, filter, limit).await,
                expected,
                "{filter} (pages of {limit})"
            );
        }
    }
    let keys = store.filter_keys("p").await.unwrap();
    assert_eq!(keys.resource_attributes, ["region"]);
    assert_eq!(keys.metadata, ["env"]);
    assert_eq!(keys.scores, ["label", "ok", "quality"]);
    assert!(keys.attributes.contains(&"tenant".to_owned()));
    assert!(keys.attributes.windows(2).all(|pair| pair[0] < pair[1]));
    assert!(!keys.attributes.iter().any(|key| key.contains(".0.")));
}

fn terms(directory: &std::path::Path) -> Vec<(i64, String, String, i64)> {
    let connection = Connection::open(directory.join("spanhouse.db")).unwrap();
    let mut statement = connection
        .prepare(
            "SELECT k.kind, k.key, quote(t.value), t.span_key FROM span_terms t
             JOIN filter_keys k ON k.id = t.key_id ORDER BY 1, 2, 3, 4",
        )
        .unwrap();
    statement
        .query_map([], |row| {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
        })
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap()
}

/// A retried span adds no term; a store made before the term index gets the same terms (and
/// provider columns) when it migrates.
#[tokio::test]
async fn terms_are_written_once_and_filled_by_the_migration() {
    let directory = tempfile::tempdir().unwrap();
    let store = store_with_traces(directory.path()).await;
    let before = terms(directory.path());
    assert!(before.len() > 8 * 6, "{}", before.len());
    for n in [1, 2] {
        store
            .write_spans(vec![batch(&store, "p", trace(n), false)])
            .await
            .unwrap();
    }
    assert_eq!(terms(directory.path()), before);
    store.flush(std::time::Duration::from_secs(5)).await;
    drop(store);

    let connection = Connection::open(directory.path().join("spanhouse.db")).unwrap();
    connection
        .execute_batch(
            "DROP TABLE span_terms; DROP TABLE filter_keys; DROP INDEX spans_by_start;
             DROP INDEX scores_by_name; ALTER TABLE spans DROP COLUMN llm_provider;
             ALTER TABLE spans DROP COLUMN llm_operation; DROP TABLE purge_pending;
             DROP TABLE alert_rules; DROP TABLE alert_states; DROP TABLE alert_events;
             DROP TABLE leases; PRAGMA user_version = 13;",
        )
        .unwrap();
    drop(connection);
    let store = open(directory.path());
    assert_eq!(terms(directory.path()), before);
    assert_eq!(
        spans_matching(&store, r#"llm.provider == "openai""#, 10)
            .await
            .len(),
        4
    );
}

/// The plan of a filtered page: driven by rowid from a small candidate, else the time index.
#[tokio::test]
async fn the_planner_drives_from_a_small_candidate_else_the_time_index() {
    let directory = tempfile::tempdir().unwrap();
    let store = store_with_traces(directory.path()).await;
    let plan = |connection: &Connection, filter: &str| -> Vec<String> {
        let query = TraceQuery {
            filter: Some(Arc::new(parse_trace_filter(filter).unwrap())),
            ..window()
        };
        let (sql, values) =
            super::filter_plan::trace_page(connection, "p", &query, None, "traces.record").unwrap();
        let mut statement = connection
            .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
            .unwrap();
        statement
            .query_map(rusqlite::params_from_iter(values.iter()), |row| {
                row.get::<_, String>(3)
            })
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap()
    };
    let connection =
        super::open_connection(&directory.path().join("spanhouse.db"), Default::default()).unwrap();
    let small = plan(&connection, r#"span.attributes["tenant"] == "acme""#);
    assert!(
        small
            .iter()
            .any(|step| step.contains("st USING PRIMARY KEY (key_id=? AND value=?)")),
        "{small:?}"
    );
    assert!(
        small.iter().all(|step| !step.contains("traces_by_time")),
        "{small:?}"
    );
    let scalar = plan(&connection, "duration_ms > 1000");
    assert!(
        scalar[0].starts_with("SEARCH traces USING INDEX traces_by_time"),
        "{scalar:?}"
    );
    // Past the cap, the same filter reads the time index.
    connection
        .execute(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 20000)
             INSERT INTO span_terms (key_id, value, trace_key, span_key)
             SELECT (SELECT id FROM filter_keys WHERE key = 'tenant'), 'acme', 1000000 + i,
                 1000000 + i FROM n",
            [],
        )
        .unwrap();
    let large = plan(&connection, r#"span.attributes["tenant"] == "acme""#);
    assert!(
        large[0].starts_with("SEARCH traces USING INDEX traces_by_time"),
        "{large:?}"
    );
    // Each trace's spans are tested through their terms by span, never a scan of the key.
    assert!(
        large
            .iter()
            .any(|step| step.contains("st USING COVERING INDEX span_terms_by_span")),
        "{large:?}"
    );
    assert_eq!(
        traces_matching(&store, r#"span.attributes["tenant"] == "acme""#, 2).await,
        [7, 5, 3, 1]
    );
}

/// Filtered stats are what the dashboard's aggregation gives over the matching TraceRecords,
/// and their score values are those of the matching traces only.
#[tokio::test]
async fn filtered_stats_equal_their_recomputation() {
    let directory = tempfile::tempdir().unwrap();
    let store = store_with_traces(directory.path()).await;
    for filter in [
        r#"span.attributes["tenant"] == "acme""#,
        r#"duration_ms > 1000 or status == "error""#,
        r#"metadata["env"] == "prod""#,
        r#"user_id == "nobody""#,
    ] {
        let filter = Arc::new(parse_trace_filter(filter).unwrap());
        let query = StatsQuery {
            start_unix_nano: 1_699_999_980_000_000_000,
            end_unix_nano: 1_700_000_100_000_000_000,
            bucket_nanos: 60_000_000_000,
            filter: Some(Arc::clone(&filter)),
        };
        let records = store
            .query_traces(
                "p",
                &TraceQuery {
                    filter: Some(Arc::clone(&filter)),
                    ..window()
                },
            )
            .await
            .unwrap()
            .traces;
        let mut builder = StatsBuilder::new(query.clone());
        for record in &records {
            builder.add(&TraceFacts {
                timestamp_unix_nano: record.timestamp_unix_nano,
                is_error: record.status == "error",
                duration_ms: record.duration_ms,
                total_tokens: record.total_token_count.unwrap_or(0),
                total_cost: record.total_cost.unwrap_or(0.0),
                models: record.models.clone(),
            });
        }
        assert_eq!(
            store.trace_stats("p", &query).await.unwrap(),
            builder.finish(),
            "{filter:?}"
        );
        let mut names: Vec<(u8, String)> = store
            .score_values_matching("p", &query)
            .await
            .unwrap()
            .into_iter()
            .map(|(timestamp, name, _)| {
                let number = records
                    .iter()
                    .find(|record| record.timestamp_unix_nano == timestamp)
                    .map(number)
                    .unwrap_or(0);
                (number, name)
            })
            .collect();
        names.sort();
        let expected: Vec<(u8, String)> =
            [(1, "quality"), (1, "quality"), (2, "quality"), (3, "ok")]
                .into_iter()
                .filter(|(n, _)| records.iter().any(|record| number(record) == *n))
                .map(|(n, name)| (n, name.to_owned()))
                .collect();
        assert_eq!(names, expected, "{filter:?}");
    }
}
