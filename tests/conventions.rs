//! Golden tests of the conventions: OTLP exports captured from real LLM libraries, byte for byte
//! (`tests/fixtures/ai-sdk`, `pydantic-ai`, `logfire`; their READMEs say how), stored by a real
//! server and read back through the API as the one chat call each library made: system "You
//! are a terse assistant.", user "Say hello and praise OTLP.", answered by the fake OpenAI
//! server (model gpt-4o-mini-2024-07-18, 19 prompt and 10 completion tokens per call).

mod common;

use std::collections::BTreeSet;
use std::path::Path;

use common::*;
use serde_json::{Value, json};
use spanhouse::otlp::{Encoding, decode_trace_request};

const PROMPT: &str = "Say hello and praise OTLP.";
const ANSWER: &str = "Hello from the fake model! OTLP is great.";
const MODEL: &str = "gpt-4o-mini-2024-07-18";

/// What one captured trace must read back as.
struct Expected {
    /// Fixture files under `tests/fixtures`, sent in this order.
    files: &'static [&'static str],
    llm_calls: u64,
    /// The tools the trace ran, each once.
    tools: &'static [&'static str],
    user_id: Option<&'static str>,
    session_id: Option<&'static str>,
}

const fn call(files: &'static [&'static str]) -> Expected {
    Expected {
        files,
        llm_calls: 1,
        tools: &[],
        user_id: None,
        session_id: None,
    }
}

const fn with_ids(expected: Expected, user_id: Option<&'static str>) -> Expected {
    Expected {
        user_id,
        session_id: Some("e2e-session-7"),
        ..expected
    }
}

/// Two model calls around one tool call.
const fn with_tool(expected: Expected) -> Expected {
    Expected {
        llm_calls: 2,
        tools: &["get_weather"],
        ..expected
    }
}

const USER: Option<&str> = Some("e2e-user-42");

const CASES: &[Expected] = &[
    // Vercel AI SDK 6 (its own telemetry) and 7 (LegacyOpenTelemetry, and the GenAI mode).
    with_ids(call(&["ai-sdk/v6-generate-1.json"]), USER),
    with_ids(call(&["ai-sdk/v6-stream-1.json"]), USER),
    with_tool(with_ids(call(&["ai-sdk/v6-tools-1.json"]), USER)),
    with_ids(call(&["ai-sdk/v7-generate-1.json"]), USER),
    with_ids(call(&["ai-sdk/v7-stream-1.json"]), USER),
    with_tool(with_ids(call(&["ai-sdk/v7-tools-1.json"]), USER)),
    with_ids(call(&["ai-sdk/v7-genai-generate-1.json"]), USER),
    with_ids(call(&["ai-sdk/v7-genai-stream-1.json"]), USER),
    with_tool(with_ids(call(&["ai-sdk/v7-genai-tools-1.json"]), USER)),
    // pydantic-ai 1.x (events in one attribute) and 2.x; the conversation id is the session.
    with_ids(call(&["pydantic-ai/v1-plain-1.pb"]), None),
    with_ids(call(&["pydantic-ai/v1-stream-1.pb"]), None),
    with_ids(call(&["pydantic-ai/v2-plain-1.pb"]), None),
    with_ids(call(&["pydantic-ai/v2-stream-1.pb"]), None),
    // Logfire's OpenAI integration; streamed, a request span and a response log span.
    with_ids(call(&["logfire/plain-1.pb"]), USER),
    with_ids(call(&["logfire/stream-1.pb"]), USER),
];

fn fixture(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn encoding_of(name: &str) -> Encoding {
    if name.ends_with(".json") {
        Encoding::Json
    } else {
        Encoding::Protobuf
    }
}

/// Sends the files as their library did; returns the trace ids they hold.
async fn send(server: &TestServer, files: &[&str]) -> BTreeSet<String> {
    let mut trace_ids = BTreeSet::new();
    for name in files {
        let body = std::fs::read(fixture(name)).unwrap();
        let encoding = encoding_of(name);
        let request = decode_trace_request(encoding, &body).unwrap();
        trace_ids.extend(
            request
                .resource_spans
                .iter()
                .flat_map(|resource| &resource.scope_spans)
                .flat_map(|scope| &scope.spans)
                .map(|span| hex::encode(&span.trace_id)),
        );
        let response = server
            .post_as_admin("/v1/traces", encoding.content_type())
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{name}");
        let answer = response.bytes().await.unwrap();
        assert!(
            !String::from_utf8_lossy(&answer).contains("rejected"),
            "{name}: {answer:?}"
        );
    }
    trace_ids
}

async fn read(server: &TestServer, trace_id: &str) -> Value {
    let (status, trace) = server
        .get_json(&format!("/api/v1/traces/{trace_id}"), &server.admin_token)
        .await;
    assert_eq!(status, 200, "{trace}");
    trace
}

fn check(expected: &Expected, trace: &Value) {
    let context = format!("{:?}: {}", expected.files, trace["trace"]);
    let record = &trace["trace"];
    let calls = expected.llm_calls as i64;
    assert_eq!(record["input"], PROMPT, "{context}");
    assert_eq!(record["output"], ANSWER, "{context}");
    assert_eq!(record["llm_call_count"], calls, "{context}");
    assert_eq!(record["models"], json!([MODEL]), "{context}");
    assert_eq!(record["prompt_token_count"], 19 * calls, "{context}");
    assert_eq!(record["completion_token_count"], 10 * calls, "{context}");
    assert_eq!(record["total_token_count"], 29 * calls, "{context}");
    assert!(record["total_cost"].as_f64().unwrap() > 0.0, "{context}");
    assert_eq!(record["tool_call_count"], expected.tools.len(), "{context}");
    for tool in expected.tools {
        assert_eq!(record["tool_call_name_counts"][tool], 1, "{context}");
    }
    assert_eq!(record["tool_call_error_count"], 0, "{context}");
    assert_eq!(record["user_id"], json!(expected.user_id), "{context}");
    assert_eq!(
        record["session_id"],
        json!(expected.session_id),
        "{context}"
    );

    let calls: Vec<&Value> = trace["spans"]
        .as_array()
        .unwrap()
        .iter()
        .map(|span| &span["llm"])
        .filter(|llm| !llm.is_null())
        .collect();
    assert_eq!(calls.len() as u64, expected.llm_calls, "{context}");
    for llm in &calls {
        assert_eq!(llm["provider"], "openai", "{context}");
        assert_eq!(llm["request_model"], "gpt-4o-mini", "{context}");
        assert_eq!(llm["response_model"], MODEL, "{context}");
        assert_eq!(llm["prompt_tokens"], 19, "{context}");
        assert_eq!(llm["completion_tokens"], 10, "{context}");
        let inputs = llm["input_messages"].as_array().unwrap();
        assert_eq!(inputs[0]["role"], "system", "{context}");
        assert_eq!(
            inputs[0]["content"], "You are a terse assistant.",
            "{context}"
        );
        assert_eq!(inputs[1]["role"], "user", "{context}");
        assert_eq!(inputs[1]["content"], PROMPT, "{context}");
    }
    // The last call gives the answer; with a tool, the first asks for it.
    let last = calls.last().unwrap();
    assert_eq!(last["output"], ANSWER, "{context}");
    assert_eq!(last["output_messages"][0]["content"], ANSWER, "{context}");
    if !expected.tools.is_empty() {
        let first = calls
            .iter()
            .find(|llm| llm["output"] != ANSWER)
            .unwrap_or_else(|| panic!("no call asked for the tool: {context}"));
        let requested = &first["output_messages"][0]["tool_calls"][0];
        assert_eq!(requested["name"], "get_weather", "{context}");
        assert_eq!(requested["id"], "call_fake1", "{context}");
        assert!(
            requested["arguments"].as_str().unwrap().contains("Paris"),
            "{context}"
        );
    }
}

#[tokio::test]
async fn captured_libraries_read_back_as_the_calls_they_made() {
    let server = TestServer::start().await;
    for expected in CASES {
        let trace_ids = send(&server, expected.files).await;
        assert_eq!(trace_ids.len(), 1, "{:?}", expected.files);
        let trace = read(&server, trace_ids.first().unwrap()).await;
        check(expected, &trace);
    }
    server.stop().await;
}

/// Without a span around the call, Logfire puts the two halves of a streamed call in two
/// traces: the request's keeps its input and is no call; the response's is the call.
#[tokio::test]
async fn a_logfire_stream_without_a_parent_counts_once() {
    let server = TestServer::start().await;
    let trace_ids = send(&server, &["logfire/stream-unparented-1.pb"]).await;
    assert_eq!(trace_ids.len(), 2);
    let mut calls = 0;
    for trace_id in &trace_ids {
        let trace = read(&server, trace_id).await;
        let record = &trace["trace"];
        assert_eq!(record["input"], PROMPT, "{record}");
        calls += record["llm_call_count"].as_u64().unwrap();
        if record["llm_call_count"] == 1 {
            assert_eq!(record["output"], ANSWER, "{record}");
            assert_eq!(record["models"], json!([MODEL]), "{record}");
            assert_eq!(record["total_token_count"], 29, "{record}");
        } else {
            assert_eq!(record["models"], json!([]), "{record}");
            assert_eq!(record["total_token_count"], Value::Null, "{record}");
        }
    }
    assert_eq!(calls, 1);

    let trace_ids = send(&server, &["logfire/plain-unparented-1.pb"]).await;
    let trace = read(&server, trace_ids.first().unwrap()).await;
    assert_eq!(trace["trace"]["llm_call_count"], 1);
    assert_eq!(trace["trace"]["output"], ANSWER);
    server.stop().await;
}
