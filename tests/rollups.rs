//! The dashboard's rollups against a recomputation from the stored TraceRecords, on both
//! backends: spans arrive in random orders, split over requests, duplicated, with late roots
//! that move a trace's timestamp to another minute (property test). On ClickHouse, the read
//! model built from spans stored before it existed (migration 3) reads the same as the one kept
//! at delivery.

mod common;

use common::*;
use opentelemetry_proto::tonic::trace::v1::Span;
use proptest::prelude::*;
use proptest::test_runner::TestRunner;
use spanhouse::model::time::format_rfc3339;
use spanhouse::store::trace_stats::{StatsQuery, TraceFacts, aggregate};

const MINUTE: u64 = 60 * 1_000_000_000;

/// One generated trace: its root's start (minutes into the window) and duration, whether it
/// failed, and its children (start offset in seconds, model, tokens).
#[derive(Debug, Clone)]
struct TraceSpec {
    root_minute: u64,
    root_ms: u64,
    error: bool,
    children: Vec<(u64, u8, i64)>,
}

fn trace_spec() -> impl Strategy<Value = TraceSpec> {
    (
        0..10u64,
        1..5_000u64,
        any::<bool>(),
        proptest::collection::vec((0..150u64, 0..3u8, 0..500i64), 0..4),
    )
        .prop_map(|(root_minute, root_ms, error, children)| TraceSpec {
            root_minute,
            root_ms,
            error,
            children,
        })
}

/// The spans of one trace, the root first; children may start a minute or two after the
/// root, so that the trace's timestamp moves when its root arrives after them.
fn spans_of(trace: u8, spec: &TraceSpec, start: u64) -> Vec<Span> {
    let root_start = start + spec.root_minute * MINUTE + u64::from(trace) * 1_000_000;
    let mut root = span(trace, 1, None, "agent", root_start);
    root.end_time_unix_nano = root_start + spec.root_ms * 1_000_000;
    root.status.as_mut().unwrap().code = if spec.error { 2 } else { 1 };
    let mut spans = vec![root];
    for (index, (offset_s, model, tokens)) in spec.children.iter().enumerate() {
        let child_start = root_start + offset_s * 1_000_000_000;
        let mut child = span(trace, index as u8 + 2, Some(1), "chat", child_start);
        if *model > 0 {
            child.attributes = vec![
                string_attribute("gen_ai.operation.name", "chat"),
                string_attribute("gen_ai.request.model", &format!("model-{model}")),
                int_attribute("gen_ai.usage.input_tokens", *tokens),
                int_attribute("gen_ai.usage.output_tokens", 7),
                string_attribute("llm.cost.total", "0.0001"),
            ];
        }
        spans.push(child);
    }
    spans
}

/// The traces of a case, and how their spans are sent: an arrival order (a permutation seed),
/// the number of requests, and which requests are sent twice.
#[derive(Debug, Clone)]
struct Case {
    traces: Vec<TraceSpec>,
    order_seed: u64,
    requests: usize,
    duplicated: Vec<bool>,
}

fn case() -> impl Strategy<Value = Case> {
    (
        proptest::collection::vec(trace_spec(), 1..8),
        any::<u64>(),
        1..5usize,
        proptest::collection::vec(any::<bool>(), 5),
    )
        .prop_map(|(traces, order_seed, requests, duplicated)| Case {
            traces,
            order_seed,
            requests,
            duplicated,
        })
}

fn shuffled(mut spans: Vec<Span>, seed: u64) -> Vec<Span> {
    let mut state = seed | 1;
    for index in (1..spans.len()).rev() {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        spans.swap(index, (state % (index as u64 + 1)) as usize);
    }
    spans
}

/// The stats answer recomputed from the listed TraceRecords, in the API's JSON.
async fn recomputed(server: &TestServer, token: &str, start: u64, end: u64) -> serde_json::Value {
    let (status, page) = server
        .get_json(
            &format!(
                "/api/v1/traces?limit=1000&start={}&end={}",
                format_rfc3339(start),
                format_rfc3339(end)
            ),
            token,
        )
        .await;
    assert_eq!(status, 200, "{page}");
    // A listed row (on ClickHouse: computed at delivery, from the spans in hand or aggregated
    // from the stored ones) is the record a trace by id aggregates from all its spans.
    for record in page["traces"].as_array().unwrap() {
        let path = format!("/api/v1/traces/{}", record["trace_id"].as_str().unwrap());
        let (status, by_id) = server.get_json(&path, token).await;
        assert_eq!(status, 200);
        assert_eq!(&by_id["trace"], record);
    }
    let traces: Vec<TraceFacts> = page["traces"]
        .as_array()
        .unwrap()
        .iter()
        .map(trace_facts)
        .collect();
    let query = StatsQuery {
        start_unix_nano: start,
        end_unix_nano: end,
        bucket_nanos: MINUTE,
        filter: None,
    };
    // Through JSON text, as the served figures came: serde_json may read a float's shortest
    // text one ulp off (an error rate of 4 / 11), the same way on both sides.
    serde_json::from_str(
        &serde_json::to_string(&spanhouse::api::stats::stats_view(
            &query,
            &aggregate(&query, &traces),
            &[],
        ))
        .unwrap(),
    )
    .unwrap()
}

async fn served(server: &TestServer, token: &str, start: u64, end: u64) -> serde_json::Value {
    let (status, stats) = server
        .get_json(
            &format!(
                "/api/v1/stats?bucket=1m&start={}&end={}",
                format_rfc3339(start),
                format_rfc3339(end)
            ),
            token,
        )
        .await;
    assert_eq!(status, 200, "{stats}");
    stats
}

async fn check(server: &TestServer, number: usize, case: Case) -> Result<(), TestCaseError> {
    let token = server
        .create_token(&format!("rollups-{number}"), "admin")
        .await;
    server.wait_for_token(&token).await;
    let start = recent(3 * 3600) / MINUTE * MINUTE;
    let end = start + 20 * MINUTE;
    let spans: Vec<Span> = case
        .traces
        .iter()
        .enumerate()
        .flat_map(|(index, spec)| spans_of(index as u8 + 1, spec, start))
        .collect();
    let spans = shuffled(spans, case.order_seed);
    let per_request = spans.len().div_ceil(case.requests);
    for (index, chunk) in spans.chunks(per_request).enumerate() {
        let copies = if case.duplicated[index % 5] { 2 } else { 1 };
        for _ in 0..copies {
            let response = server
                .post_protobuf("/v1/traces", &token, &request("svc", chunk.to_vec()))
                .await;
            prop_assert_eq!(response.status(), 200);
            // Each request on its own, so that traces really are split over deliveries.
            server.settle(&token).await;
        }
    }
    let served = served(server, &token, start, end).await;
    let expected = recomputed(server, &token, start, end).await;
    prop_assert_eq!(
        served["totals"]["traces"].as_u64(),
        Some(case.traces.len() as u64)
    );
    prop_assert_eq!(&served, &expected);
    Ok(())
}

#[test]
fn rollups_equal_a_recomputation_from_the_stored_traces() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let server = runtime.block_on(TestServer::start());
    let mut runner = TestRunner::new(ProptestConfig {
        cases: if on_clickhouse() { 12 } else { 24 },
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    let number = std::sync::atomic::AtomicUsize::new(0);
    runner
        .run(&case(), |case| {
            let number = number.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            runtime.block_on(check(&server, number, case))
        })
        .unwrap();
}

/// A deployment from before the read model: its spans are in ClickHouse (one of them as those
/// versions wrote it), the read model's tables empty and migration 3 not recorded. The server
/// that starts builds the rows from the spans, and the traces read as they did.
#[tokio::test]
async fn the_read_model_is_built_from_spans_stored_before_it() {
    if !on_clickhouse() {
        return;
    }
    let server = TestServer::start().await;
    let token = server.admin_token.clone();
    let start = recent(3 * 3600) / MINUTE * MINUTE;
    let end = start + 20 * MINUTE;
    let mut spans = Vec::new();
    for trace in 1..=30u8 {
        let spec = TraceSpec {
            root_minute: u64::from(trace) % 10,
            root_ms: u64::from(trace) * 37,
            error: trace % 4 == 0,
            children: vec![(u64::from(trace) % 3, trace % 3, i64::from(trace))],
        };
        spans.extend(spans_of(trace, &spec, start));
    }
    let response = server
        .post_protobuf("/v1/traces", &token, &request("svc", spans))
        .await;
    assert_eq!(response.status(), 200);
    server.settle(&token).await;
    let list = format!(
        "/api/v1/traces?limit=1000&start={}&end={}",
        format_rfc3339(start),
        format_rfc3339(end)
    );
    let (_, traces_before) = server.get_json(&list, &token).await;
    let stats_before = served(&server, &token, start, end).await;
    assert_eq!(traces_before["traces"].as_array().unwrap().len(), 30);
    assert_eq!(stats_before["totals"]["traces"], 30);

    let database = server.started_with.clickhouse.database.clone();
    let server = server
        .restart_after(|_| {
            let database = database.clone();
            std::thread::spawn(move || {
                tokio::runtime::Runtime::new()
                    .unwrap()
                    .block_on(async move {
                        for table in ["traces", "trace_index", "trace_rollup", "read_model_builds"]
                        {
                            clickhouse_query(&format!("TRUNCATE TABLE {database}.{table}")).await;
                        }
                        clickhouse_query(&format!(
                            "ALTER TABLE {database}.schema_migrations DELETE WHERE version = 3"
                        ))
                        .await;
                        // A span as versions before the read model wrote it: the body's JSON
                        // text, the texts in their own columns.
                        clickhouse_query(&format!(
                            "INSERT INTO {database}.spans (project_id, trace_id, span_id, \
                             parent_span_id, name, kind, start_ns, end_ns, status_code, body, \
                             input, output, is_llm, version) SELECT project_id, '{legacy}', \
                             '0101010101010101', '', 'legacy', 1, {start}, {start} + 5000000, \
                             1, '{{}}', 'old question', 'old answer', 0, 1 \
                             FROM {database}.spans LIMIT 1",
                            legacy = hex_trace(0xee),
                            start = start + 3 * MINUTE,
                        ))
                        .await;
                        // Mutations run in the background: wait until it is done.
                        for _ in 0..100 {
                            let left = clickhouse_query(&format!(
                                "SELECT count() FROM {database}.schema_migrations WHERE version = 3"
                            ))
                            .await;
                            if left.trim() == "0" {
                                break;
                            }
                            std::thread::sleep(std::time::Duration::from_millis(100));
                        }
                    })
            })
            .join()
            .unwrap();
        })
        .await;
    let mut traces_after = serde_json::Value::Null;
    for _ in 0..100 {
        (_, traces_after) = server.get_json(&list, &token).await;
        if traces_after["traces"].as_array().map(Vec::len) == Some(31) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let traces = traces_after["traces"].as_array_mut().unwrap();
    let position = traces
        .iter()
        .position(|record| record["trace_id"] == hex_trace(0xee))
        .expect("the legacy trace is listed");
    let legacy = traces.remove(position);
    assert_eq!(legacy["input"], "old question");
    assert_eq!(legacy["output"], "old answer");
    assert_eq!(traces_after, traces_before);
    let (status, by_id) = server
        .get_json(&format!("/api/v1/traces/{}", hex_trace(0xee)), &token)
        .await;
    assert_eq!(status, 200);
    assert_eq!(by_id["trace"], legacy);
    assert_eq!(by_id["spans"][0]["input"], "old question");
    let stats_after = served(&server, &token, start, end).await;
    assert_eq!(stats_after["totals"]["traces"], 31);
    assert_eq!(
        stats_after["totals"]["errors"],
        stats_before["totals"]["errors"]
    );
}
