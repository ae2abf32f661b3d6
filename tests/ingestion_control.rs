//! Ingestion control and visibility: settings, sampling, filters, rate limits, span limits, and
//! the counters that say what happened to every span.

mod common;

use std::time::Duration;

use common::*;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use serde_json::{Value, json};

async fn totals(server: &TestServer) -> Value {
    let (status, body) = server
        .get_json("/api/v1/ingestion", &server.admin_token)
        .await;
    assert_eq!(status, 200, "{body}");
    body["totals"].clone()
}

async fn send(
    server: &TestServer,
    spans: Vec<opentelemetry_proto::tonic::trace::v1::Span>,
) -> reqwest::Response {
    server
        .post_protobuf("/v1/traces", &server.admin_token, &request("svc", spans))
        .await
}

fn sampled(
    trace: u8,
    span_id: u8,
    parent: Option<u8>,
    value: &str,
) -> opentelemetry_proto::tonic::trace::v1::Span {
    let mut span = span(trace, span_id, parent, "work", recent(5));
    span.attributes = vec![string_attribute("gentrace.sample", value)];
    span
}

async fn stored(server: &TestServer, trace: u8) -> Option<Value> {
    let (status, body) = server
        .get_json(
            &format!("/api/v1/traces/{}", hex_trace(trace)),
            &server.admin_token,
        )
        .await;
    (status == 200).then_some(body)
}

#[tokio::test]
async fn settings_api_validates_and_scopes() {
    let server = TestServer::start().await;
    let (status, settings) = server
        .get_json("/api/v1/project/settings", &server.admin_token)
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        settings,
        json!({"sample_attribute": null, "filters": [], "rate_limit": null, "rate_limit_burst": null,
               "retention_days": null, "redact": []})
    );
    let (status, error) = server
        .put_json(
            "/api/v1/project/settings",
            &server.admin_token,
            json!({"filters": ["name == \"ok\"", "attributes[\"k\"] === 1"]}),
        )
        .await;
    assert_eq!(status, 400);
    let message = error["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("filters[1]") && message.contains("column 19"),
        "{message}"
    );
    let (status, _) = server
        .put_json(
            "/api/v1/project/settings",
            &server.admin_token,
            json!({"rate_limit": -1}),
        )
        .await;
    assert_eq!(status, 400);
    let (status, _) = server
        .put_json(
            "/api/v1/project/settings",
            &server.admin_token,
            json!({"unknown": 1}),
        )
        .await;
    assert_eq!(status, 400);

    let read_token = server.create_token("default", "read").await;
    server.wait_for_token(&read_token).await;
    let (status, _) = server
        .put_json(
            "/api/v1/project/settings",
            &read_token,
            json!({"filters": []}),
        )
        .await;
    assert_eq!(status, 403, "a read token cannot change settings");
    assert_eq!(
        server
            .get_json("/api/v1/project/settings", &read_token)
            .await
            .0,
        200
    );

    let (status, saved) = server
        .put_json(
            "/api/v1/project/settings",
            &server.admin_token,
            json!({"sample_attribute": "gentrace.sample", "rate_limit": 1000}),
        )
        .await;
    assert_eq!(status, 200, "{saved}");
    let (_, settings) = server
        .get_json("/api/v1/project/settings", &read_token)
        .await;
    assert_eq!(settings["sample_attribute"], "gentrace.sample");
    assert_eq!(settings["rate_limit"], 1000.0);

    // Another project's settings are its own.
    let other = server.create_token("other", "admin").await;
    server.wait_for_token(&other).await;
    let (_, theirs) = server.get_json("/api/v1/project/settings", &other).await;
    assert_eq!(theirs["sample_attribute"], Value::Null);
    server.stop().await;
}

#[tokio::test]
async fn the_gentrace_guide_filter_as_a_project_setting() {
    let server = TestServer::start().await;
    let (status, _) = server
        .put_json(
            "/api/v1/project/settings",
            &server.admin_token,
            json!({"filters": ["attributes[\"gentrace.sample\"] != \"true\""]}),
        )
        .await;
    assert_eq!(status, 200);
    let response = send(
        &server,
        vec![
            sampled(0x11, 1, None, "true"),
            sampled(0x11, 2, Some(1), "true"),
            span(0x12, 1, None, "unsampled", recent(5)),
        ],
    )
    .await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        stored(&server, 0x11).await.unwrap()["trace"]["span_count"],
        2
    );
    assert!(stored(&server, 0x12).await.is_none());

    let totals = totals(&server).await;
    assert_eq!(totals["received"], 3);
    assert_eq!(totals["accepted"], 2);
    assert_eq!(totals["filtered"], 1);
    assert_eq!(
        totals["filtered_rules"],
        json!({"attributes[\"gentrace.sample\"] != \"true\"": 1})
    );
    assert_eq!(totals["rejected"], 0);
    server.stop().await;
}

#[tokio::test]
async fn sampling_attribute_keeps_whole_traces() {
    let server = TestServer::start().await;
    server
        .put_json(
            "/api/v1/project/settings",
            &server.admin_token,
            json!({"sample_attribute": "gentrace.sample"}),
        )
        .await;
    let response = send(
        &server,
        vec![
            sampled(0x21, 1, None, "true"),
            // Same trace, no attribute: kept with its sampled parent.
            span(0x21, 2, Some(1), "child", recent(5)),
            sampled(0x22, 1, None, "false"),
            span(0x23, 1, None, "plain", recent(5)),
        ],
    )
    .await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        stored(&server, 0x21).await.unwrap()["trace"]["span_count"],
        2
    );
    assert!(stored(&server, 0x22).await.is_none());
    assert!(stored(&server, 0x23).await.is_none());
    let totals = totals(&server).await;
    assert_eq!(totals["filtered_rules"], json!({"sample_attribute": 2}));
    assert_eq!(totals["accepted"], 2);
    server.stop().await;
}

#[tokio::test]
async fn rate_limit_answers_429_with_retry_after_on_http_and_grpc() {
    let server = TestServer::start().await;
    server
        .put_json(
            "/api/v1/project/settings",
            &server.admin_token,
            json!({"rate_limit": 2, "rate_limit_burst": 5}),
        )
        .await;
    let batch = |trace: u8| {
        (1..=5)
            .map(|id| span(trace, id, None, "s", recent(5)))
            .collect()
    };
    assert_eq!(send(&server, batch(0x31)).await.status(), 200);
    let refused = send(&server, batch(0x32)).await;
    assert_eq!(refused.status(), 429);
    let retry_after: u64 = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=3).contains(&retry_after), "{retry_after}");
    let status = spanhouse::otlp::RpcStatus::decode(refused.bytes().await.unwrap()).unwrap();
    assert_eq!(status.code, 8, "RESOURCE_EXHAUSTED");

    let mut grpc = TraceServiceClient::connect(server.grpc_url())
        .await
        .unwrap();
    let mut call = tonic::Request::new(request("svc", batch(0x33)));
    call.metadata_mut().insert(
        "authorization",
        format!("Bearer {}", server.admin_token).parse().unwrap(),
    );
    let error = grpc.export(call).await.unwrap_err();
    assert_eq!(error.code(), tonic::Code::ResourceExhausted);
    assert!(error.metadata().get("retry-after").is_some());

    let totals = totals(&server).await;
    assert_eq!(totals["received"], 15);
    assert_eq!(totals["accepted"], 5);
    assert_eq!(totals["rate_limited"], 10);
    assert!(stored(&server, 0x32).await.is_none());
    server.stop().await;
}

use prost::Message as _;

#[tokio::test]
async fn span_limits_cut_values_and_refuse_oversized_requests() {
    let server = TestServer::start_with(|config| {
        config.limits.max_attribute_value_bytes = 100;
        config.limits.max_spans_per_request = 10;
    })
    .await;
    let mut long = span(0x41, 1, None, "long", recent(5));
    long.attributes = vec![string_attribute("input.value", &"x".repeat(500))];
    let mut invalid = span(0x42, 1, None, "invalid", recent(5));
    invalid.span_id = vec![1];
    assert_eq!(send(&server, vec![long, invalid]).await.status(), 200);
    let trace = stored(&server, 0x41).await.unwrap();
    let value = trace["spans"][0]["attributes"]["input.value"]
        .as_str()
        .unwrap();
    assert!(value.starts_with(&"x".repeat(100)));
    assert!(
        value.ends_with("[truncated by spanhouse: 500 bytes]"),
        "{value}"
    );

    let too_many = (1..=11)
        .map(|id| span(0x43, id, None, "s", recent(5)))
        .collect();
    assert_eq!(send(&server, too_many).await.status(), 413);

    let totals = totals(&server).await;
    assert_eq!(totals["received"], 13);
    assert_eq!(totals["accepted"], 1);
    assert_eq!(totals["truncated"], 1);
    assert_eq!(totals["rejected"], 12);
    assert_eq!(
        totals["rejected_reasons"],
        json!({"invalid_span": 1, "too_many_spans": 11})
    );
    server.stop().await;
}

#[tokio::test]
async fn settings_changed_by_the_cli_apply_within_5_seconds() {
    let server = TestServer::start().await;
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_spanhouse"))
        .args([
            "project",
            "configure",
            "default",
            "--filter",
            "name == \"noise\"",
        ])
        .envs(server.store_env())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let printed: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(printed["filters"], json!(["name == \"noise\""]));

    let bad = std::process::Command::new(env!("CARGO_BIN_EXE_spanhouse"))
        .args(["project", "configure", "default", "--filter", "name ="])
        .envs(server.store_env())
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("column"));

    let mut applied = false;
    for attempt in 0..50u8 {
        send(
            &server,
            vec![span(0x50 + attempt % 32, 1, None, "noise", recent(5))],
        )
        .await;
        if totals(&server).await["filtered"].as_u64().unwrap() > 0 {
            applied = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(applied, "the filter was not applied within 5 s");
    server.stop().await;
}

#[tokio::test]
async fn counters_survive_a_restart_and_feed_prometheus() {
    let server = TestServer::start().await;
    let mut invalid = span(0x61, 2, None, "bad", recent(5));
    invalid.trace_id = vec![0; 16];
    send(
        &server,
        vec![span(0x61, 1, None, "good", recent(5)), invalid],
    )
    .await;
    let before = totals(&server).await;
    assert_eq!(before["received"], 2);
    assert_eq!(before["accepted"], 1);
    assert_eq!(before["rejected_reasons"], json!({"invalid_span": 1}));

    let metrics = server.metrics_text().await;
    assert!(
        metrics.contains("spanhouse_spans_accepted_total{project_id=\"")
            && metrics.contains("project=\"default\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("reason=\"invalid_span\"} 1"));
    assert!(metrics.contains(
        "spanhouse_request_duration_seconds_count{route=\"/v1/traces\",status=\"200\"} 1"
    ));
    assert!(metrics.contains("spanhouse_store_write_duration_seconds_count 1"));
    assert!(metrics.contains("spanhouse_ingest_queue_spans 0"));

    let server = server.restart().await;
    let after = totals(&server).await;
    assert_eq!(after, before);

    // Buckets: the minute of the spans holds them.
    let (_, body) = server
        .get_json("/api/v1/ingestion?bucket=1m", &server.admin_token)
        .await;
    let buckets = body["buckets"].as_array().unwrap();
    assert!(buckets.len() >= 60, "an hour of minute buckets by default");
    let received: u64 = buckets
        .iter()
        .map(|bucket| bucket["received"].as_u64().unwrap())
        .sum();
    assert_eq!(received, 2);
    assert_eq!(body["buffered"], 0);
    assert_eq!(
        server
            .get_json("/api/v1/ingestion?bucket=7s", &server.admin_token)
            .await
            .0,
        400
    );
    server.stop().await;
}
