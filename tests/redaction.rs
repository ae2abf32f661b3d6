//! Redaction at ingest (SPEC §9): with every detector and a custom pattern on, personal data and
//! secrets sent in span attributes, resource attributes, events, links, the prompt and completion
//! of three conventions and a GenAI log record are shown redacted by the API, counted, and found
//! in no file of the data directory (the embedded store's files, the search index, the
//! ClickHouse spool) nor in ClickHouse's tables; without the setting they are stored as sent.

mod common;

use common::*;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, KeyValueList, any_value};
use opentelemetry_proto::tonic::logs::v1::LogRecord;
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::span::{Event, Link};
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans};
use prost::Message as _;
use serde_json::json;

const EMAIL: &str = "jane.doe@example.com";
const CARD: &str = "4111 1111 1111 1111";
const KEY: &str = "sk-proj-Zx81fKqLmNoPq3RsTuVwXyZ0123456789abc";
const PHONE: &str = "+1 415 555 0134";
const IP: &str = "203.0.113.42";
const CUSTOMER: &str = "cust-482913";
const RAW: [&str; 6] = [EMAIL, CARD, KEY, PHONE, IP, CUSTOMER];
const REPLACEMENTS: [&str; 6] = [
    "[REDACTED:email]",
    "[REDACTED:credit_card]",
    "[REDACTED:secret]",
    "[REDACTED:phone]",
    "[REDACTED:ip_address]",
    "[REDACTED]",
];

/// Trace 0x51: three LLM spans of three conventions; trace 0x52: a span whose content comes
/// as log records.
const TRACE: u8 = 0x51;
const LOGGED_TRACE: u8 = 0x52;

fn everything() -> String {
    format!("card {CARD}, mail {EMAIL}, key {KEY}, phone {PHONE}, from {IP}, id {CUSTOMER}")
}

fn traces_request() -> ExportTraceServiceRequest {
    let start = recent(30);
    let prompt = json!([{"role": "user", "parts": [{"type": "text", "content": everything()}]}]);
    let completion = json!([{"role": "assistant", "parts": [{"type": "text",
        "content": format!("I will write to {EMAIL} and call {PHONE}.")}], "finish_reason": "stop"}]);
    let mut genai = span(TRACE, 1, None, &format!("chat for {EMAIL}"), start);
    genai.attributes = vec![
        string_attribute("gen_ai.operation.name", "chat"),
        string_attribute("gen_ai.provider.name", "openai"),
        string_attribute("gen_ai.request.model", "gpt-4o"),
        string_attribute("gen_ai.input.messages", &prompt.to_string()),
        string_attribute("gen_ai.output.messages", &completion.to_string()),
        string_attribute("user.email", EMAIL),
        string_attribute("client.address", IP),
        KeyValue {
            key: "nested".into(),
            value: Some(AnyValue {
                value: Some(any_value::Value::KvlistValue(KeyValueList {
                    values: vec![string_attribute("card", CARD)],
                })),
            }),
            ..Default::default()
        },
    ];
    genai.events = vec![Event {
        time_unix_nano: start + 1,
        name: "exception".into(),
        attributes: vec![string_attribute(
            "exception.message",
            &format!("auth failed with {KEY} for {CUSTOMER}"),
        )],
        ..Default::default()
    }];
    genai.links = vec![Link {
        trace_id: vec![0x99; 16],
        span_id: vec![0x99; 8],
        attributes: vec![string_attribute("linked.by", PHONE)],
        ..Default::default()
    }];
    let mut openinference = span(TRACE, 2, Some(1), "llm", start + 10);
    openinference.attributes = vec![
        string_attribute("openinference.span.kind", "LLM"),
        string_attribute("llm.model_name", "gpt-4o-mini"),
        string_attribute("input.value", &everything()),
        string_attribute("output.value", &format!("Noted {CARD}")),
        string_attribute("llm.input_messages.0.message.role", "user"),
        string_attribute("llm.input_messages.0.message.content", &everything()),
    ];
    let mut ai_sdk = span(TRACE, 3, Some(1), "ai.generateText", start + 20);
    ai_sdk.attributes = vec![
        string_attribute("ai.model.id", "gpt-4o"),
        string_attribute("ai.model.provider", "openai.chat"),
        string_attribute(
            "ai.prompt",
            &json!({"prompt": format!("my key is {KEY}")}).to_string(),
        ),
        string_attribute("ai.response.text", &format!("call {PHONE}")),
    ];
    let mut logged = span(LOGGED_TRACE, 1, None, "chat", start + 30);
    logged.attributes = vec![
        string_attribute("gen_ai.operation.name", "chat"),
        string_attribute("gen_ai.request.model", "gpt-4o"),
    ];
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![
                    string_attribute("service.name", "redaction-test"),
                    string_attribute("host.ip", IP),
                    string_attribute("deployment.owner", EMAIL),
                ],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans: vec![genai, openinference, ai_sdk, logged],
                ..Default::default()
            }],
            schema_url: String::new(),
        }],
    }
}

/// A user message and a choice for the span of `LOGGED_TRACE`, content in their bodies.
fn log_records() -> Vec<LogRecord> {
    let text = |value: String| AnyValue {
        value: Some(any_value::Value::StringValue(value)),
    };
    let body = |key: &str, value: AnyValue| {
        Some(AnyValue {
            value: Some(any_value::Value::KvlistValue(KeyValueList {
                values: vec![KeyValue {
                    key: key.into(),
                    value: Some(value),
                    ..Default::default()
                }],
            })),
        })
    };
    let record = |name: &str, time: u64| LogRecord {
        time_unix_nano: time,
        trace_id: vec![LOGGED_TRACE; 16],
        span_id: vec![1; 8],
        event_name: name.into(),
        attributes: vec![string_attribute("session.owner", EMAIL)],
        ..Default::default()
    };
    let mut user = record("gen_ai.user.message", 1);
    user.body = body("content", text(everything()));
    let mut choice = record("gen_ai.choice", 2);
    choice.body = body(
        "message",
        AnyValue {
            value: Some(any_value::Value::KvlistValue(KeyValueList {
                values: vec![
                    string_attribute("role", "assistant"),
                    string_attribute("content", &format!("Sent to {EMAIL} from {IP}")),
                ],
            })),
        },
    );
    vec![user, choice]
}

/// Starts a server; on ClickHouse, one that delivers its spool every two seconds, so that the
/// spool holds the data while the test looks at it.
async fn start() -> TestServer {
    TestServer::start_with(|config| {
        if on_clickhouse() {
            config.clickhouse.flush_interval_ms = 2000;
        }
    })
    .await
}

async fn send(server: &TestServer) {
    let response = server
        .post_protobuf("/v1/traces", &server.admin_token, &traces_request())
        .await;
    assert_eq!(response.status(), 200);
    let response = server
        .post_as_admin("/v1/logs", "application/x-protobuf")
        .body(logs_request(log_records()).encode_to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

/// The raw values found in any table of the server's ClickHouse database.
async fn raw_values_in_clickhouse(server: &TestServer) -> Vec<(String, &'static str)> {
    let database = &server.started_with.clickhouse.database;
    let tables = clickhouse_query(&format!("SHOW TABLES FROM {database}")).await;
    let mut found = Vec::new();
    for table in tables.lines().filter(|table| !table.is_empty()) {
        let rows =
            clickhouse_query(&format!("SELECT * FROM {database}.`{table}` FORMAT TSVRaw")).await;
        for value in RAW {
            if rows.contains(value) {
                found.push((table.to_owned(), value));
            }
        }
    }
    found
}

/// Everything the read API shows of the two traces, as one text.
async fn api_text(server: &TestServer) -> String {
    let token = &server.admin_token;
    let mut text = String::new();
    for trace in [TRACE, LOGGED_TRACE] {
        let (status, body) = server
            .get_json(&format!("/api/v1/traces/{}", hex_trace(trace)), token)
            .await;
        assert_eq!(status, 200, "{body}");
        text.push_str(&body.to_string());
    }
    for path in ["/api/v1/traces", "/api/v1/spans"] {
        let (status, body) = server.get_json(path, token).await;
        assert_eq!(status, 200, "{path}: {body}");
        text.push_str(&body.to_string());
    }
    text
}

#[tokio::test]
async fn personal_data_and_secrets_never_reach_the_store() {
    if on_clickhouse() && !clickhouse_available().await {
        return;
    }
    let server = start().await;
    let (status, settings) = server
        .put_json(
            "/api/v1/project/settings",
            &server.admin_token,
            json!({"redact": ["email", "phone", "credit_card", "ip_address", "secret",
                {"pattern": r"cust-\d{6}"}]}),
        )
        .await;
    assert_eq!(status, 200, "{settings}");
    send(&server).await;
    // On ClickHouse the spool still holds what was acknowledged.
    let on_disk = files::files_holding(server.data_dir.path(), &RAW);
    assert!(on_disk.is_empty(), "raw values on disk: {on_disk:?}");

    let shown = api_text(&server).await;
    for value in RAW {
        assert!(!shown.contains(value), "{value} shown by the API");
    }
    for replacement in REPLACEMENTS {
        assert!(shown.contains(replacement), "{replacement} not shown");
    }
    let (_, trace) = server
        .get_json(
            &format!("/api/v1/traces/{}", hex_trace(TRACE)),
            &server.admin_token,
        )
        .await;
    let record = &trace["trace"];
    let input = record["input"].as_str().unwrap_or_default();
    assert!(
        input.contains("card [REDACTED:credit_card], mail [REDACTED:email]"),
        "{record}"
    );
    assert!(
        record["output"]
            .as_str()
            .unwrap_or_default()
            .contains("[REDACTED:"),
        "{record}"
    );
    let genai = trace["spans"]
        .as_array()
        .unwrap()
        .iter()
        .find(|span| span["span_id"] == hex::encode([1u8; 8]))
        .unwrap();
    assert_eq!(genai["name"], "chat for [REDACTED:email]");
    assert_eq!(
        genai["resource_attributes"]["host.ip"],
        "[REDACTED:ip_address]"
    );
    assert_eq!(
        genai["attributes"]["nested"]["card"],
        "[REDACTED:credit_card]"
    );
    assert_eq!(
        genai["events"][0]["attributes"]["exception.message"],
        "auth failed with [REDACTED:secret] for [REDACTED]"
    );
    let (_, logged) = server
        .get_json(
            &format!("/api/v1/traces/{}", hex_trace(LOGGED_TRACE)),
            &server.admin_token,
        )
        .await;
    assert!(
        logged["trace"]["input"]
            .as_str()
            .unwrap_or_default()
            .contains("mail [REDACTED:email]"),
        "{logged}"
    );

    let (status, ingestion) = server
        .get_json("/api/v1/ingestion", &server.admin_token)
        .await;
    assert_eq!(status, 200);
    // 13 values of the spans' own, 2 of their shared resource (redacted once), 4 of the log
    // records.
    assert_eq!(ingestion["totals"]["redacted"], 19, "{ingestion}");
    assert!(
        server
            .metrics_text()
            .await
            .contains("spanhouse_values_redacted_total{")
    );

    if on_clickhouse() {
        let in_clickhouse = raw_values_in_clickhouse(&server).await;
        assert!(
            in_clickhouse.is_empty(),
            "raw values in ClickHouse: {in_clickhouse:?}"
        );
    }
    let data_dir = server.data_dir.path().to_owned();
    let server = stop_keeping(server).await;
    let on_disk = files::files_holding(&data_dir, &RAW);
    assert!(on_disk.is_empty(), "raw values on disk: {on_disk:?}");
    server.stop().await;
}

#[tokio::test]
async fn without_the_setting_values_are_stored_as_sent() {
    if on_clickhouse() && !clickhouse_available().await {
        return;
    }
    let server = start().await;
    send(&server).await;
    let spooled = files::files_holding(server.data_dir.path(), &RAW);
    let shown = api_text(&server).await;
    for value in RAW {
        assert!(shown.contains(value), "{value} not shown by the API");
    }
    for replacement in REPLACEMENTS {
        assert!(!shown.contains(replacement), "{replacement} shown");
    }
    let (_, ingestion) = server
        .get_json("/api/v1/ingestion", &server.admin_token)
        .await;
    assert_eq!(ingestion["totals"]["redacted"], 0, "{ingestion}");
    // What the redacting test looks for can be found where it looks.
    if on_clickhouse() {
        assert!(!spooled.is_empty(), "the spool shows no value");
        assert!(!raw_values_in_clickhouse(&server).await.is_empty());
    }
    let data_dir = server.data_dir.path().to_owned();
    let server = stop_keeping(server).await;
    if !on_clickhouse() {
        let on_disk = files::files_holding(&data_dir, &RAW);
        assert!(
            RAW.iter()
                .all(|value| on_disk.iter().any(|(_, found)| found == value)),
            "{on_disk:?}"
        );
    }
    server.stop().await;
}

/// Stops the server and keeps its data directory and ClickHouse database (`stop` then drops the
/// database).
async fn stop_keeping(mut server: TestServer) -> TestServer {
    if let Some(running) = server.server.take() {
        running.shutdown().await.unwrap();
    }
    server
}

#[tokio::test]
async fn the_cli_sets_and_clears_the_rules() {
    if on_clickhouse() && !clickhouse_available().await {
        return;
    }
    let server = TestServer::start().await;
    let output = process::project_configure(
        &server.store_env(),
        &[
            "--redact",
            "email,phone",
            "--redact",
            "all",
            "--redact-pattern",
            r"cust-\d+",
        ],
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let (_, settings) = server
        .get_json("/api/v1/project/settings", &server.admin_token)
        .await;
    assert_eq!(
        settings["redact"],
        json!(["email", "phone", "credit_card", "ip_address", "secret", {"pattern": r"cust-\d+"}])
    );

    let unknown = process::project_configure(&server.store_env(), &["--redact", "emial"]);
    assert!(!unknown.status.success());
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("redact[0]: unknown detector"));
    let invalid = process::project_configure(&server.store_env(), &["--redact-pattern", "("]);
    assert!(!invalid.status.success());
    assert!(String::from_utf8_lossy(&invalid.stderr).contains("redact[0]: pattern"));

    assert!(
        process::project_configure(&server.store_env(), &["--no-redact"])
            .status
            .success()
    );
    let (_, settings) = server
        .get_json("/api/v1/project/settings", &server.admin_token)
        .await;
    assert_eq!(settings["redact"], json!([]));

    let (status, error) = server
        .put_json(
            "/api/v1/project/settings",
            &server.admin_token,
            json!({"redact": ["email", {"pattern": "[a-"}]}),
        )
        .await;
    assert_eq!(status, 400);
    assert!(error.to_string().contains("redact[1]"), "{error}");
    server.stop().await;
}
