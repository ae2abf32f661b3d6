//! End-to-end: unmodified OpenTelemetry SDKs (Python http/protobuf and gRPC, Node OTLP/HTTP
//! JSON) export to a real spanhouse, configured only through the standard
//! `OTEL_EXPORTER_OTLP_*` variables, and the traces read back through the query API.
//!
//! The SDKs are installed by `scripts/test.sh` (`.e2e/venv`, `tests/e2e/node/node_modules`). In
//! CI (`CI` set) a missing SDK fails the test; elsewhere the test says so and skips.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

fn project_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn python() -> Option<PathBuf> {
    let path = std::env::var_os("SPANHOUSE_E2E_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| project_root().join(".e2e/venv/bin/python"));
    require(
        path.exists().then_some(path),
        "the OpenTelemetry Python SDK",
    )
}

fn node_project() -> Option<PathBuf> {
    let directory = project_root().join("tests/e2e/node");
    let installed = directory.join("node_modules/@opentelemetry/exporter-trace-otlp-http");
    require(
        installed.exists().then_some(directory),
        "the OpenTelemetry JS SDK",
    )
}

/// Runs an SDK program and returns the trace id it printed last.
fn run_sdk(command: Command) -> String {
    run_sdk_output(command).0
}

/// Runs an SDK program; returns the trace id it printed last, and everything it printed.
fn run_sdk_output(mut command: Command) -> (String, String) {
    let output = command.output().expect("SDK program starts");
    let stdout = String::from_utf8_lossy(&output.stdout).to_string();
    let stderr = String::from_utf8_lossy(&output.stderr).to_string();
    assert!(
        output.status.success(),
        "SDK program failed:\n{stdout}\n{stderr}"
    );
    assert!(
        !stderr.contains("Failed to export"),
        "the exporter reported a failure:\n{stderr}"
    );
    let trace_id = stdout.lines().last().unwrap_or_default().trim().to_owned();
    assert_eq!(
        trace_id.len(),
        32,
        "no trace id printed:\n{stdout}\n{stderr}"
    );
    (trace_id, stdout)
}

/// The metric data points `python_sdk.py` says it exported, all successfully.
fn exported_metric_points(stdout: &str) -> u64 {
    stdout
        .lines()
        .find_map(|line| line.strip_prefix("metric_points "))
        .and_then(|count| count.trim().parse().ok())
        .unwrap_or_else(|| panic!("no metric_points line:\n{stdout}"))
}

/// The project's metric data points counted over the last hour.
async fn counted_metric_points(server: &TestServer) -> u64 {
    let (status, ingestion) = server
        .get_json("/api/v1/ingestion", &server.admin_token)
        .await;
    assert_eq!(status, 200, "{ingestion}");
    ingestion["totals"]["metric_points"].as_u64().unwrap()
}

async fn read_trace(server: &TestServer, trace_id: &str) -> serde_json::Value {
    let (status, trace) = server
        .get_json(&format!("/api/v1/traces/{trace_id}"), &server.admin_token)
        .await;
    assert_eq!(status, 200, "trace {trace_id} not stored: {trace}");
    trace
}

#[tokio::test]
async fn python_sdk_over_http_protobuf_with_gzip() {
    let Some(python) = python() else { return };
    let server = TestServer::start().await;
    let mut command = Command::new(python);
    command
        .arg(project_root().join("tests/e2e/python_sdk.py"))
        .args(["http", "py-http"])
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", server.url(""))
        .env(
            "OTEL_EXPORTER_OTLP_HEADERS",
            format!(
                "authorization=Bearer%20{},x-project-id=default",
                server.admin_token
            ),
        )
        .env("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip");
    let (trace_id, stdout) = tokio::task::spawn_blocking(move || run_sdk_output(command))
        .await
        .unwrap();
    // The metrics signal is answered (the exporter saw no failure) and counted, not stored.
    assert_eq!(
        counted_metric_points(&server).await,
        exported_metric_points(&stdout)
    );

    let trace = read_trace(&server, &trace_id).await;
    let record = &trace["trace"];
    assert_eq!(record["input"], "Say hi (py-http)");
    assert_eq!(record["output"], "Hi!");
    assert_eq!(record["session_id"], "session-py-http");
    assert_eq!(record["service_name"], "python-http");
    assert_eq!(record["span_count"], 3);
    assert_eq!(record["root_span_name"], "interaction");
    let spans = trace["spans"].as_array().unwrap();
    let llm = spans
        .iter()
        .find(|span| span["name"] == "chat gpt-4o-mini")
        .unwrap();
    assert_eq!(llm["attributes"]["gen_ai.usage.input_tokens"], 12);
    assert_eq!(llm["events"][0]["name"], "gen_ai.choice");
    assert_eq!(llm["events"][0]["attributes"]["finish_reason"], "stop");
    assert_eq!(llm["scope"]["name"], "spanhouse-e2e");
    let tool = spans
        .iter()
        .find(|span| span["name"] == "failing tool")
        .unwrap();
    assert_eq!(tool["status"]["code"], "error");
    assert_eq!(tool["status"]["message"], "tool broke");
    server.stop().await;
}

#[tokio::test]
async fn python_sdk_over_grpc() {
    let Some(python) = python() else { return };
    let server = TestServer::start().await;
    let mut command = Command::new(python);
    command
        .arg(project_root().join("tests/e2e/python_sdk.py"))
        .args(["grpc", "py-grpc"])
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", server.grpc_url())
        .env("OTEL_EXPORTER_OTLP_INSECURE", "true")
        .env(
            "OTEL_EXPORTER_OTLP_HEADERS",
            format!("authorization=Bearer%20{}", server.admin_token),
        );
    let (trace_id, stdout) = tokio::task::spawn_blocking(move || run_sdk_output(command))
        .await
        .unwrap();
    assert_eq!(
        counted_metric_points(&server).await,
        exported_metric_points(&stdout)
    );

    let trace = read_trace(&server, &trace_id).await;
    assert_eq!(trace["trace"]["input"], "Say hi (py-grpc)");
    assert_eq!(trace["trace"]["output"], "Hi!");
    assert_eq!(trace["trace"]["service_name"], "python-grpc");
    assert_eq!(trace["trace"]["span_count"], 3);
    server.stop().await;
}

#[tokio::test]
async fn node_sdk_over_http_json() {
    let Some(directory) = node_project() else {
        return;
    };
    let server = TestServer::start().await;
    let mut command = Command::new("node");
    command
        .current_dir(directory)
        .args(["send.mjs", "node-json"])
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", server.url(""))
        .env(
            "OTEL_EXPORTER_OTLP_HEADERS",
            format!("authorization=Bearer%20{}", server.admin_token),
        );
    let trace_id = tokio::task::spawn_blocking(move || run_sdk(command))
        .await
        .unwrap();

    let trace = read_trace(&server, &trace_id).await;
    let record = &trace["trace"];
    assert_eq!(record["input"], "Say hi (node-json)");
    assert_eq!(record["output"], "Hi!");
    assert_eq!(record["user_id"], "user-node-json");
    assert_eq!(record["status"], "ok");
    assert_eq!(record["span_count"], 2);
    let llm = &trace["spans"].as_array().unwrap()[1];
    // SpanKind 2 in the JS API is CLIENT (the API counts from INTERNAL = 0).
    assert_eq!(llm["kind"], "client");
    assert_eq!(llm["attributes"]["gen_ai.usage.input_tokens"], 12);
    assert_eq!(llm["attributes"]["temperature"], 0.25);
    assert_eq!(llm["attributes"]["stop"], serde_json::json!(["\n", "END"]));
    server.stop().await;
}

#[tokio::test]
async fn python_sdk_with_the_baggage_sampling_processor() {
    let Some(python) = python() else { return };
    let server = TestServer::start().await;
    let (status, _) = server
        .put_json(
            "/api/v1/project/settings",
            &server.admin_token,
            serde_json::json!({"sample_attribute": "gentrace.sample"}),
        )
        .await;
    assert_eq!(status, 200);
    let mut command = Command::new(python);
    command
        .arg(project_root().join("tests/e2e/python_sampling.py"))
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", server.url(""))
        .env(
            "OTEL_EXPORTER_OTLP_HEADERS",
            format!("authorization=Bearer%20{}", server.admin_token),
        );
    let output = tokio::task::spawn_blocking(move || command.output())
        .await
        .unwrap()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let ids: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();

    let sampled = read_trace(&server, ids["sampled"].as_str().unwrap()).await;
    assert_eq!(sampled["trace"]["span_count"], 2);
    assert_eq!(sampled["trace"]["input"], "keep me");
    assert_eq!(sampled["spans"][1]["attributes"]["gentrace.sample"], "true");
    let (status, _) = server
        .get_json(
            &format!("/api/v1/traces/{}", ids["unsampled"].as_str().unwrap()),
            &server.admin_token,
        )
        .await;
    assert_eq!(status, 404, "the unsampled trace is filtered");
    let (_, ingestion) = server
        .get_json("/api/v1/ingestion", &server.admin_token)
        .await;
    assert_eq!(ingestion["totals"]["received"], 4);
    assert_eq!(ingestion["totals"]["accepted"], 2);
    assert_eq!(
        ingestion["totals"]["filtered_rules"],
        serde_json::json!({"sample_attribute": 2})
    );
    server.stop().await;
}
