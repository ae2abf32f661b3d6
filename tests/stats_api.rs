//! `GET /api/v1/stats` against the real server: buckets, percentiles, tokens, cost, the model
//! breakdown, validation and project scoping. Runs on both backends.

mod common;

use common::*;
use opentelemetry_proto::tonic::trace::v1::Span;
use spanhouse::model::time::format_rfc3339;

const MINUTE: u64 = 60 * 1_000_000_000;
const HOUR: u64 = 60 * MINUTE;

/// The start of the hour two hours ago: the window of the tests is that hour and the next.
fn window_start() -> u64 {
    recent(0) / HOUR * HOUR - 2 * HOUR
}

fn root(trace: u8, start: u64, duration_ms: u64, error: bool) -> Span {
    let mut root = span(trace, 1, None, &format!("trace-{trace}"), start);
    root.end_time_unix_nano = start + duration_ms * 1_000_000;
    if error {
        root.status.as_mut().unwrap().code = 2;
    }
    root
}

fn llm(trace: u8, span_id: u8, model: &str, start: u64) -> Span {
    let mut llm = span(trace, span_id, Some(1), "chat", start);
    llm.end_time_unix_nano = start + 1_000_000;
    llm.attributes = vec![
        string_attribute("gen_ai.operation.name", "chat"),
        string_attribute("gen_ai.request.model", model),
        int_attribute("gen_ai.usage.input_tokens", 10),
        int_attribute("gen_ai.usage.output_tokens", 5),
    ];
    llm
}

async fn ingest(server: &TestServer, token: &str, spans: Vec<Span>) {
    let response = server
        .post_protobuf("/v1/traces", token, &request("svc", spans))
        .await;
    assert_eq!(response.status(), 200);
    server.settle(token).await;
}

fn close(actual: &serde_json::Value, expected: f64) -> bool {
    actual
        .as_f64()
        .is_some_and(|actual| (actual - expected).abs() < 1e-9)
}

/// A percentile read from the rollup's sketches: within their relative accuracy (1 %) of the
/// exact nearest-rank value.
fn percentile(actual: &serde_json::Value, expected: f64) -> bool {
    actual.as_f64().is_some_and(|actual| {
        (actual - expected).abs() <= expected * spanhouse::store::sketch::RELATIVE_ACCURACY
    })
}

/// A sum of the costs of `traces` traces, each counted in whole nano-dollars.
fn cost(actual: &serde_json::Value, expected: f64, traces: u32) -> bool {
    actual
        .as_f64()
        .is_some_and(|actual| (actual - expected).abs() <= f64::from(traces) * 0.5e-9 + 1e-12)
}

#[tokio::test]
async fn buckets_percentiles_tokens_cost_and_models() {
    let server = TestServer::start().await;
    let token = server.admin_token.clone();
    let start = window_start();
    ingest(
        &server,
        &token,
        vec![
            root(1, start + 5 * MINUTE, 100, false),
            llm(1, 2, "gpt-4o", start + 5 * MINUTE),
            root(2, start + 20 * MINUTE, 300, true),
            llm(2, 2, "gpt-4o", start + 20 * MINUTE),
            llm(2, 3, "claude-3-5-haiku", start + 20 * MINUTE),
            root(3, start + 70 * MINUTE, 1000, false),
            // Outside the window: counted nowhere.
            root(4, start + 3 * HOUR, 50, false),
        ],
    )
    .await;
    let (status, traces) = server.get_json("/api/v1/traces", &token).await;
    assert_eq!(status, 200);
    let cost_of = |trace: u8| -> f64 {
        traces["traces"]
            .as_array()
            .unwrap()
            .iter()
            .find(|record| record["trace_id"] == hex_trace(trace))
            .and_then(|record| record["total_cost"].as_f64())
            .unwrap_or(0.0)
    };

    let path = format!(
        "/api/v1/stats?start={}&end={}&bucket=1h",
        format_rfc3339(start),
        format_rfc3339(start + 2 * HOUR)
    );
    let (status, stats) = server.get_json(&path, &token).await;
    assert_eq!(status, 200, "{stats}");
    assert_eq!(stats["bucket_seconds"], 3600);
    assert_eq!(stats["start"], format_rfc3339(start));
    let buckets = stats["buckets"].as_array().unwrap();
    assert_eq!(buckets.len(), 2, "{stats}");

    let first = &buckets[0];
    assert_eq!(first["start"], format_rfc3339(start));
    assert_eq!(first["traces"], 2);
    assert_eq!(first["errors"], 1);
    assert!(close(&first["error_rate"], 0.5), "{first}");
    assert!(percentile(&first["p50_duration_ms"], 300.0), "{first}");
    assert!(percentile(&first["p95_duration_ms"], 300.0), "{first}");
    assert_eq!(first["total_tokens"], 45);
    assert!(
        cost(&first["total_cost"], cost_of(1) + cost_of(2), 2),
        "{first}"
    );

    let second = &buckets[1];
    assert_eq!(second["traces"], 1);
    assert_eq!(second["errors"], 0);
    assert!(percentile(&second["p50_duration_ms"], 1000.0), "{second}");
    assert_eq!(second["total_tokens"], 0);

    let totals = &stats["totals"];
    assert_eq!(totals["traces"], 3);
    assert_eq!(totals["errors"], 1);
    assert!(percentile(&totals["p50_duration_ms"], 300.0), "{totals}");
    assert!(percentile(&totals["p95_duration_ms"], 1000.0), "{totals}");
    assert_eq!(totals["total_tokens"], 45);

    let models = stats["models"].as_array().unwrap();
    let names: Vec<&str> = models
        .iter()
        .map(|model| model["model"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["gpt-4o", "claude-3-5-haiku"], "{stats}");
    assert_eq!(models[0]["traces"], 2);
    assert_eq!(models[0]["errors"], 1);
    assert_eq!(models[1]["traces"], 1);
    assert_eq!(models[1]["total_tokens"], 30);
    server.stop().await;
}

#[tokio::test]
async fn empty_windows_have_every_bucket_and_no_percentiles() {
    let server = TestServer::start().await;
    let start = window_start();
    let path = format!(
        "/api/v1/stats?start={}&end={}&bucket=30m",
        format_rfc3339(start),
        format_rfc3339(start + 2 * HOUR)
    );
    let (status, stats) = server.get_json(&path, &server.admin_token).await;
    assert_eq!(status, 200, "{stats}");
    assert_eq!(stats["buckets"].as_array().unwrap().len(), 4);
    assert_eq!(stats["buckets"][3]["traces"], 0);
    assert!(stats["buckets"][3]["p50_duration_ms"].is_null());
    assert_eq!(stats["totals"]["traces"], 0);
    assert_eq!(stats["models"], serde_json::json!([]));
    // The defaults: the last 24 hours in hours.
    let (status, stats) = server.get_json("/api/v1/stats", &server.admin_token).await;
    assert_eq!(status, 200, "{stats}");
    assert_eq!(stats["bucket_seconds"], 3600);
    assert!(stats["buckets"].as_array().unwrap().len() >= 24);
    server.stop().await;
}

#[tokio::test]
async fn validates_parameters_and_scopes_to_the_tokens_project() {
    let server = TestServer::start().await;
    let admin = server.admin_token.clone();
    let start = window_start();
    ingest(&server, &admin, vec![root(9, start + MINUTE, 10, false)]).await;
    for bad in [
        "/api/v1/stats?bucket=5x",
        "/api/v1/stats?bucket=30s",
        "/api/v1/stats?start=yesterday",
        "/api/v1/stats?start=2024-05-02T00:00:00Z&end=2024-05-01T00:00:00Z",
        "/api/v1/stats?start=2000-01-01T00:00:00Z&bucket=1m",
    ] {
        let (status, body) = server.get_json(bad, &admin).await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert!(body["error"]["message"].is_string(), "{body}");
    }
    let (status, _) = server.get_json("/api/v1/stats", "").await;
    assert_eq!(status, 401);
    let ingest_token = server.create_token("default", "ingest").await;
    server.wait_for_token(&ingest_token).await;
    let (status, _) = server.get_json("/api/v1/stats", &ingest_token).await;
    assert_eq!(status, 403);

    let read_token = server.create_token("default", "read").await;
    let foreign = server.create_token("other", "read").await;
    server.wait_for_token(&read_token).await;
    server.wait_for_token(&foreign).await;
    let (status, stats) = server.get_json("/api/v1/stats", &read_token).await;
    assert_eq!(status, 200);
    assert_eq!(stats["totals"]["traces"], 1);
    let (status, stats) = server.get_json("/api/v1/stats", &foreign).await;
    assert_eq!(status, 200);
    assert_eq!(stats["totals"]["traces"], 0);
    server.stop().await;
}
