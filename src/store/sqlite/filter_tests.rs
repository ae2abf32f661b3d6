//! Filtered pages of traces read from the filters' indexes: paging through each filter, two
//! traces a page, finds exactly the traces that match, in the order of the unfiltered list,
//! across traces that share a timestamp.

use super::tests::open;
use super::trace_rows_tests::{batch, llm_span, span};
use crate::model::span::test_support::text;
use crate::model::{StatusCode, TraceRecord};
use crate::store::{SpanStore, TraceQuery};

/// Trace `trace`: one of three timestamps, an error when even, user `u1` unless a multiple of
/// 3, session `s1` up to 8, and a call to `gpt-4o` unless a multiple of 4.
fn trace(trace: u8) -> Vec<crate::model::Span> {
    let mut attributes = Vec::new();
    if !trace.is_multiple_of(3) {
        attributes.push(text("user.id", "u1"));
    }
    if trace <= 8 {
        attributes.push(text("session.id", "s1"));
    }
    let mut root = span(trace, 1, attributes);
    root.start_time_unix_nano += u64::from(trace % 3) * 1_000_000;
    if trace.is_multiple_of(2) {
        root.status.code = StatusCode::Error;
    }
    let mut spans = vec![root];
    if !trace.is_multiple_of(4) {
        spans.push(llm_span(trace, 2, "gpt-4o"));
    }
    spans
}

/// Every page of `query`, two traces each, as trace ids.
async fn pages(store: &super::SqliteStore, mut query: TraceQuery) -> Vec<String> {
    let mut found = Vec::new();
    loop {
        let page = store.query_traces("p", &query).await.unwrap();
        found.extend(page.traces.into_iter().map(|trace| trace.trace_id));
        match page.next_cursor {
            Some(cursor) => query.cursor = Some(cursor),
            None => return found,
        }
    }
}

#[tokio::test]
async fn paging_through_each_filter_finds_its_traces_in_order() {
    let directory = tempfile::tempdir().unwrap();
    let store = open(directory.path());
    for number in 1..=12 {
        store
            .write_spans(vec![batch(&store, "p", trace(number), true)])
            .await
            .unwrap();
    }
    let window = TraceQuery {
        start_unix_nano: 0,
        end_unix_nano: u64::MAX,
        limit: 2,
        ..Default::default()
    };
    let all: Vec<TraceRecord> = store
        .query_traces(
            "p",
            &TraceQuery {
                limit: 100,
                ..window.clone()
            },
        )
        .await
        .unwrap()
        .traces;
    assert_eq!(all.len(), 12);
    let some = |value: &str| Some(value.to_owned());
    type Matches = fn(&TraceRecord) -> bool;
    let cases: [(TraceQuery, Matches); 5] = [
        (
            TraceQuery {
                status: some("error"),
                ..window.clone()
            },
            |t| t.status == "error",
        ),
        (
            TraceQuery {
                user_id: some("u1"),
                ..window.clone()
            },
            |t| t.user_id.as_deref() == Some("u1"),
        ),
        (
            TraceQuery {
                session_id: some("s1"),
                status: some("error"),
                ..window.clone()
            },
            |t| t.session_id.as_deref() == Some("s1") && t.status == "error",
        ),
        (
            TraceQuery {
                model: some("gpt-4o"),
                ..window.clone()
            },
            |t| t.models == ["gpt-4o"],
        ),
        (
            TraceQuery {
                model: some("gpt-4o"),
                user_id: some("u1"),
                ..window.clone()
            },
            |t| t.models == ["gpt-4o"] && t.user_id.as_deref() == Some("u1"),
        ),
    ];
    for (query, matches) in cases {
        let expected: Vec<String> = all
            .iter()
            .filter(|trace| matches(trace))
            .map(|trace| trace.trace_id.clone())
            .collect();
        assert!(expected.len() >= 3, "{query:?}");
        assert_eq!(pages(&store, query.clone()).await, expected, "{query:?}");
    }
}
