//! The logs signal: GenAI content records are attached to their span whichever comes first;
//! other records are acknowledged and not stored.

mod common;

use std::path::Path;

use common::*;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::logs::v1::logs_service_client::LogsServiceClient;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, KeyValueList, any_value};
use opentelemetry_proto::tonic::logs::v1::LogRecord;
use prost::Message as _;
use serde_json::json;

fn map(entries: Vec<(&str, any_value::Value)>) -> AnyValue {
    AnyValue {
        value: Some(any_value::Value::KvlistValue(KeyValueList {
            values: entries
                .into_iter()
                .map(|(key, value)| KeyValue {
                    key: key.into(),
                    value: Some(AnyValue { value: Some(value) }),
                    ..Default::default()
                })
                .collect(),
        })),
    }
}

fn text(value: &str) -> any_value::Value {
    any_value::Value::StringValue(value.into())
}

fn record(trace_id: &[u8], span_id: &[u8], event_name: &str, time: u64) -> LogRecord {
    LogRecord {
        time_unix_nano: time,
        trace_id: trace_id.to_vec(),
        span_id: span_id.to_vec(),
        event_name: event_name.into(),
        ..Default::default()
    }
}

/// The official OpenAI instrumentation's span, which carries no content in its default mode.
fn otel_v2_span() -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    let body = std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/corpus/otel-v2.pb"),
    )
    .unwrap();
    let request = ExportTraceServiceRequest::decode(&body[..]).unwrap();
    let span = &request.resource_spans[0].scope_spans[0].spans[0];
    (body.clone(), span.trace_id.clone(), span.span_id.clone())
}

/// The older event form: a user message and a choice, content in the body.
fn message_records(trace_id: &[u8], span_id: &[u8]) -> Vec<LogRecord> {
    let mut user = record(trace_id, span_id, "gen_ai.user.message", 1);
    user.body = Some(map(vec![("content", text("Say hello and praise OTLP."))]));
    let mut choice = record(trace_id, span_id, "gen_ai.choice", 2);
    choice.body = Some(map(vec![
        ("index", any_value::Value::IntValue(0)),
        ("finish_reason", text("stop")),
        (
            "message",
            map(vec![
                ("role", text("assistant")),
                ("content", text("Hello from the fake model! OTLP is great.")),
            ])
            .value
            .unwrap(),
        ),
    ]));
    vec![user, choice]
}

async fn post_logs(server: &TestServer, request: &ExportLogsServiceRequest) -> u16 {
    server
        .post_as_admin("/v1/logs", "application/x-protobuf")
        .body(request.encode_to_vec())
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn content_records_after_the_span_fill_in_input_and_output() {
    let server = TestServer::start().await;
    let (body, trace_id, span_id) = otel_v2_span();
    let response = server
        .post_as_admin("/v1/traces", "application/x-protobuf")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let path = format!("/api/v1/traces/{}", hex::encode(&trace_id));
    assert_eq!(
        server.get_json(&path, &server.admin_token).await.1["trace"]["input"],
        json!(null)
    );

    let request = logs_request(message_records(&trace_id, &span_id));
    assert_eq!(post_logs(&server, &request).await, 200);
    // A retry of the same records changes nothing.
    assert_eq!(post_logs(&server, &request).await, 200);

    let (_, trace) = server.get_json(&path, &server.admin_token).await;
    assert_eq!(trace["trace"]["input"], "Say hello and praise OTLP.");
    assert_eq!(
        trace["trace"]["output"],
        "Hello from the fake model! OTLP is great."
    );
    let llm = &trace["spans"][0]["llm"];
    assert_eq!(llm["input_messages"].as_array().unwrap().len(), 1);
    assert_eq!(llm["output_messages"].as_array().unwrap().len(), 1);
    assert_eq!(llm["prompt_tokens"], 19);
    server.stop().await;
}

#[tokio::test]
async fn operation_details_before_the_span_over_json_and_grpc() {
    let server = TestServer::start().await;
    let (body, trace_id, span_id) = otel_v2_span();
    // OTLP/JSON logs, structured message attributes, as the current convention sends them.
    let logs_json = json!({"resourceLogs": [{"scopeLogs": [{"logRecords": [{
        "timeUnixNano": "5",
        "eventName": "gen_ai.client.inference.operation.details",
        "traceId": hex::encode(&trace_id),
        "spanId": hex::encode(&span_id),
        "attributes": [
            {"key": "gen_ai.input.messages", "value": {"arrayValue": {"values": [{"kvlistValue": {"values": [
                {"key": "role", "value": {"stringValue": "user"}},
                {"key": "parts", "value": {"arrayValue": {"values": [{"kvlistValue": {"values": [
                    {"key": "type", "value": {"stringValue": "text"}},
                    {"key": "content", "value": {"stringValue": "Question from the logs"}}
                ]}}]}}}
            ]}}]}}},
            {"key": "gen_ai.output.messages", "value": {"stringValue":
                "[{\"role\": \"assistant\", \"parts\": [{\"type\": \"text\", \"content\": \"Answer from the logs\"}], \"finish_reason\": \"stop\"}]"}}
        ]
    }]}]}]});
    let response = server
        .post_as_admin("/api/public/otel/v1/logs", "application/json")
        .body(logs_json.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.json::<serde_json::Value>().await.unwrap(),
        json!({})
    );

    // Non-GenAI records over gRPC: acknowledged, nothing stored.
    let mut client = LogsServiceClient::connect(server.grpc_url()).await.unwrap();
    let mut plain = record(&trace_id, &span_id, "", 9);
    plain.body = Some(AnyValue {
        value: Some(text("GET /health 200")),
    });
    let mut grpc_request = tonic::Request::new(logs_request(vec![plain]));
    grpc_request.metadata_mut().insert(
        "authorization",
        format!("Bearer {}", server.admin_token).parse().unwrap(),
    );
    client.export(grpc_request).await.unwrap();
    let mut unauthenticated = tonic::Request::new(logs_request(Vec::new()));
    unauthenticated
        .metadata_mut()
        .insert("authorization", "Bearer sh_nope".parse().unwrap());
    assert_eq!(
        client.export(unauthenticated).await.unwrap_err().code(),
        tonic::Code::Unauthenticated
    );

    let response = server
        .post_as_admin("/v1/traces", "application/x-protobuf")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let (_, trace) = server
        .get_json(
            &format!("/api/v1/traces/{}", hex::encode(&trace_id)),
            &server.admin_token,
        )
        .await;
    assert_eq!(trace["trace"]["input"], "Question from the logs");
    assert_eq!(trace["trace"]["output"], "Answer from the logs");
    server.stop().await;
}

#[tokio::test]
async fn logs_need_an_ingest_token_and_a_content_type() {
    let server = TestServer::start().await;
    let response = server
        .client
        .post(server.url("/otel/v1/logs"))
        .header("content-type", "application/x-protobuf")
        .body(logs_request(Vec::new()).encode_to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let response = server
        .post_as_admin("/api/otel/v1/logs", "text/plain")
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 415);
    let response = server
        .post_as_admin("/v1/logs", "application/x-protobuf")
        .body(vec![0xff; 4])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    server.stop().await;
}

/// Content records stored for the trace whose id is sixteen `trace` bytes, as the store holds
/// them (ClickHouse: the rows after its mutations, which it runs in the background).
async fn content_rows(server: &TestServer, trace: u8) -> u64 {
    let config = server.config();
    if on_clickhouse() {
        let sql = format!(
            "SELECT count() FROM {}.span_content_events FINAL WHERE trace_id = '{}'",
            config.clickhouse.database,
            hex::encode([trace; 16])
        );
        return clickhouse_query(&sql).await.trim().parse().unwrap();
    }
    let connection = rusqlite::Connection::open_with_flags(
        config.data_dir.join("spanhouse.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap();
    connection
        .query_row(
            "SELECT count(*) FROM span_content_events WHERE trace_id = ?1",
            [[trace; 16].as_slice()],
            |row| row.get::<_, i64>(0).map(|count| count as u64),
        )
        .unwrap()
}

#[tokio::test]
async fn content_of_spans_that_never_come_is_deleted_after_its_age() {
    let server = TestServer::start().await;
    let day = 86_400 * 1_000_000_000;
    let old = recent(0) - 2 * day;
    let user_message = |trace: u8, time: u64| {
        let mut record = record(&[trace; 16], &[1; 8], "gen_ai.user.message", time);
        record.body = Some(map(vec![("content", text("Say hello"))]));
        record
    };
    // Old content of a span that came, old content of one that never did, recent content.
    let request = logs_request(vec![
        user_message(0xa1, old),
        user_message(0xb1, old),
        user_message(0xc1, recent(5)),
    ]);
    assert_eq!(post_logs(&server, &request).await, 200);
    let came = request_of_span(0xa1);
    assert_eq!(
        server
            .post_protobuf("/v1/traces", &server.admin_token, &came)
            .await
            .status(),
        200
    );
    server.settle(&server.admin_token).await;
    for trace in [0xa1, 0xb1, 0xc1] {
        assert_eq!(content_rows(&server, trace).await, 1, "{trace:x}");
    }

    let store =
        spanhouse::server::open_store(&server.config(), spanhouse::server::StoreUser::Command)
            .await
            .unwrap();
    store.sweep_orphan_content(recent(0) - day).await.unwrap();
    for _ in 0..600 {
        if content_rows(&server, 0xb1).await == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(
        content_rows(&server, 0xb1).await,
        0,
        "the orphan past its age"
    );
    assert_eq!(content_rows(&server, 0xa1).await, 1, "its span came");
    assert_eq!(content_rows(&server, 0xc1).await, 1, "still within its age");

    // The span that was late by more than a day gets no content; the recent one does.
    for (trace, input) in [(0xb1, json!(null)), (0xc1, json!("Say hello"))] {
        let late = request_of_span(trace);
        server
            .post_protobuf("/v1/traces", &server.admin_token, &late)
            .await;
        server.settle(&server.admin_token).await;
        let path = format!("/api/v1/traces/{}", hex_trace(trace));
        let (_, stored) = server.get_json(&path, &server.admin_token).await;
        assert_eq!(stored["trace"]["input"], input, "{trace:x}: {stored}");
    }
    server.stop().await;
}

/// A request with one chat span, id `01…01`, of the trace of sixteen `trace` bytes.
fn request_of_span(trace: u8) -> ExportTraceServiceRequest {
    let mut chat = span(trace, 1, None, "chat", recent(5));
    chat.attributes = vec![
        string_attribute("gen_ai.operation.name", "chat"),
        string_attribute("gen_ai.request.model", "gpt-4o-mini"),
    ];
    request("svc", vec![chat])
}
