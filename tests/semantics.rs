//! Golden tests: the payloads captured from real instrumentation libraries (tests/fixtures/corpus,
//! expected values from its README) become the LLM calls and TraceRecords they should.

mod common;

use std::path::Path;

use common::*;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message as _;
use serde_json::{Value, json};

fn corpus(name: &str) -> Vec<u8> {
    std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/corpus")
            .join(name),
    )
    .unwrap()
}

fn first_trace_id(body: &[u8]) -> String {
    let request = ExportTraceServiceRequest::decode(body).unwrap();
    hex::encode(&request.resource_spans[0].scope_spans[0].spans[0].trace_id)
}

async fn send(server: &TestServer, body: Vec<u8>, content_type: &str) {
    let response = server
        .post_as_admin("/v1/traces", content_type)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

async fn trace_of(server: &TestServer, trace_id: &str) -> Value {
    let (status, trace) = server
        .get_json(&format!("/api/v1/traces/{trace_id}"), &server.admin_token)
        .await;
    assert_eq!(status, 200, "{trace}");
    trace
}

const HELLO: &str = "Hello from the fake model! OTLP is great.";
const PRAISE: &str = "Say hello and praise OTLP.";

#[tokio::test]
async fn openinference_plain_and_streaming() {
    let server = TestServer::start().await;
    for file in ["openinference.pb", "openinference-stream.pb"] {
        let body = corpus(file);
        let trace_id = first_trace_id(&body);
        send(&server, body, "application/x-protobuf").await;
        let trace = trace_of(&server, &trace_id).await;
        let record = &trace["trace"];
        assert_eq!(record["input"], PRAISE, "{file}");
        assert_eq!(record["output"], HELLO, "{file}");
        assert_eq!(
            record["models"],
            json!(["gpt-4o-mini-2024-07-18"]),
            "{file}"
        );
        assert_eq!(record["prompt_token_count"], 19);
        assert_eq!(record["completion_token_count"], 10);
        assert_eq!(record["total_token_count"], 29);
        assert_eq!(record["llm_call_count"], 1);
        let cost = record["total_cost"].as_f64().unwrap();
        assert!(
            (cost - (19.0 * 0.15 + 10.0 * 0.60) / 1e6).abs() < 1e-12,
            "{cost}"
        );
        let llm = &trace["spans"][0]["llm"];
        assert_eq!(llm["provider"], "openai");
        assert_eq!(llm["request_model"], "gpt-4o-mini");
        assert_eq!(llm["response_model"], "gpt-4o-mini-2024-07-18");
        assert_eq!(llm["finish_reasons"], json!(["stop"]));
        assert_eq!(llm["input_messages"][0]["role"], "system");
        assert_eq!(llm["input_messages"][1]["content"], PRAISE);
        assert_eq!(llm["output_messages"][0]["content"], HELLO);
        assert_eq!(llm["input"], PRAISE);
    }
    server.stop().await;
}

#[tokio::test]
async fn openllmetry_with_current_genai_json_messages() {
    let server = TestServer::start().await;
    let body = corpus("traceloop.pb");
    let trace_id = first_trace_id(&body);
    send(&server, body, "application/x-protobuf").await;
    let trace = trace_of(&server, &trace_id).await;
    assert_eq!(trace["trace"]["input"], PRAISE);
    assert_eq!(trace["trace"]["output"], HELLO);
    assert_eq!(trace["trace"]["prompt_token_count"], 19);
    assert_eq!(trace["trace"]["completion_token_count"], 10);
    let llm = &trace["spans"][0]["llm"];
    assert_eq!(llm["request_model"], "gpt-4o-mini");
    assert_eq!(llm["operation"], "chat");
    assert_eq!(llm["provider"], "openai");
    assert_eq!(llm["finish_reasons"], json!(["stop"]));
    server.stop().await;
}

#[tokio::test]
async fn official_openai_v2_without_content_keeps_the_numbers() {
    let server = TestServer::start().await;
    let body = corpus("otel-v2.pb");
    let trace_id = first_trace_id(&body);
    send(&server, body, "application/x-protobuf").await;
    let trace = trace_of(&server, &trace_id).await;
    assert_eq!(trace["trace"]["input"], Value::Null);
    assert_eq!(trace["trace"]["output"], Value::Null);
    let llm = &trace["spans"][0]["llm"];
    assert_eq!(llm["provider"], "openai");
    assert_eq!(llm["request_model"], "gpt-4o-mini");
    assert_eq!(llm["prompt_tokens"], 19);
    assert_eq!(llm["completion_tokens"], 10);
    assert_eq!(llm["finish_reasons"], json!(["stop"]));
    server.stop().await;
}

#[tokio::test]
async fn gentrace_interaction_child_first_root_last() {
    let server = TestServer::start().await;
    let child = corpus("gentrace.pb");
    let trace_id = first_trace_id(&child);
    send(&server, child, "application/x-protobuf").await;
    let early = trace_of(&server, &trace_id).await;
    assert_eq!(early["trace"]["input"], "Say hello");
    send(&server, corpus("gentrace-1.pb"), "application/x-protobuf").await;
    let trace = trace_of(&server, &trace_id).await;
    let record = &trace["trace"];
    assert_eq!(record["input"], r#"[{"q": "Say hello"}]"#);
    assert_eq!(record["output"], HELLO);
    assert_eq!(record["pipeline_id"], "default");
    assert_eq!(record["root_span_name"], "chat-interaction");
    assert_eq!(record["prompt_token_count"], 19);
    assert_eq!(record["completion_token_count"], 10);
    assert_eq!(record["total_token_count"], 29);
    assert_eq!(record["llm_call_count"], 1);
    assert_eq!(record["span_count"], 2);
    server.stop().await;
}

#[tokio::test]
async fn hand_made_sdk_spans_python_and_node() {
    let server = TestServer::start().await;
    for (file, content_type) in [
        ("python-sdk.pb", "application/x-protobuf"),
        ("python-sdk-1.pb", "application/x-protobuf"),
        ("node-sdk-1.pb", "application/x-protobuf"),
        ("node-sdk-3.pb", "application/x-protobuf"),
    ] {
        let body = corpus(file);
        let trace_id = first_trace_id(&body);
        send(&server, body, content_type).await;
        let record = trace_of(&server, &trace_id).await["trace"].clone();
        assert_eq!(record["input"], "Say hi", "{file}");
        assert_eq!(record["output"], "Hi!", "{file}");
        assert_eq!(record["prompt_token_count"], 12, "{file}");
        assert_eq!(record["completion_token_count"], 7, "{file}");
    }
    for file in ["node-sdk.json", "node-sdk-2.json"] {
        let body = corpus(file);
        let json: Value = serde_json::from_slice(&body).unwrap();
        let trace_id = json["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["traceId"]
            .as_str()
            .unwrap()
            .to_ascii_lowercase();
        send(&server, body, "application/json").await;
        let record = trace_of(&server, &trace_id).await["trace"].clone();
        assert_eq!(record["input"], "Say hi", "{file}");
        assert_eq!(record["output"], "Hi!", "{file}");
        assert_eq!(record["prompt_token_count"], 12, "{file}");
        assert_eq!(record["completion_token_count"], 7, "{file}");
    }
    server.stop().await;
}
