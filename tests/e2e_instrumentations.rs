//! End-to-end: one OpenAI call through each real instrumentation library (OpenInference,
//! OpenLLMetry, the official OpenAI v2 instrumentation with its content on the logs signal,
//! Langfuse, Gentrace, pydantic-ai 1.x and 2.x, Logfire) and the Vercel AI SDK 6 and 7, plain
//! and streaming, against a fake OpenAI server, exported to a real spanhouse. The TraceRecord
//! must show what the application sent.
//!
//! The libraries are installed by `scripts/test.sh` into `.e2e/instrumentation`,
//! `.e2e/pydantic-ai-v1` and `tests/e2e/node`; in CI a missing install fails, elsewhere the
//! tests say so and skip.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use serde_json::{Value, json};

const PROMPT: &str = "Say hello and praise OTLP.";
const ANSWER: &str = "Hello from the fake model! OTLP is great.";

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn python() -> Option<PathBuf> {
    let python = std::env::var_os("SPANHOUSE_E2E_INSTRUMENTATION_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join(".e2e/instrumentation/bin/python"));
    require(
        python.exists().then_some(python),
        "the instrumentation libraries",
    )
}

/// The venv of pydantic-ai 1.x, which cannot share one with 2.x.
fn pydantic_ai_v1_python() -> Option<PathBuf> {
    let python = root().join(".e2e/pydantic-ai-v1/bin/python");
    require(python.exists().then_some(python), "pydantic-ai 1.x")
}

/// Runs one library call; returns the JSON line `run.py` printed.
async fn run(server: &TestServer, python: &Path, library: &str, mode: &str) -> Value {
    let mut command = Command::new(python);
    command
        .arg(root().join("tests/e2e/instrumentation/run.py"))
        .args([library, mode]);
    run_command(server, command, library, mode).await
}

/// Runs a program that makes one call and prints `{"trace_id": ...}` last.
async fn run_command(
    server: &TestServer,
    mut command: Command,
    library: &str,
    mode: &str,
) -> Value {
    command
        .env("SPANHOUSE_URL", server.url(""))
        .env("SPANHOUSE_TOKEN", &server.admin_token);
    let output = tokio::task::spawn_blocking(move || command.output())
        .await
        .unwrap()
        .expect("the program starts");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{library} {mode} failed:\n{stdout}\n{stderr}"
    );
    serde_json::from_str(stdout.lines().last().unwrap_or_default())
        .unwrap_or_else(|error| panic!("{library} {mode}: {error}\n{stdout}\n{stderr}"))
}

async fn record(server: &TestServer, result: &Value) -> Value {
    let trace_id = result["trace_id"].as_str().expect("trace_id");
    let (status, trace) = server
        .get_json(&format!("/api/v1/traces/{trace_id}"), &server.admin_token)
        .await;
    assert_eq!(status, 200, "{trace}");
    trace
}

fn llm_span(trace: &Value) -> &Value {
    trace["spans"]
        .as_array()
        .unwrap()
        .iter()
        .find(|span| !span["llm"].is_null())
        .expect("an LLM span")
}

fn assert_call(library: &str, mode: &str, trace: &Value) {
    assert_calls(library, mode, trace, 1);
}

/// `calls` calls of the fake model, each of 19 + 10 tokens, the last one answering.
fn assert_calls(library: &str, mode: &str, trace: &Value, calls: i64) {
    let context = format!("{library} {mode}: {}", trace["trace"]);
    let record = &trace["trace"];
    assert_eq!(record["prompt_token_count"], 19 * calls, "{context}");
    assert_eq!(record["completion_token_count"], 10 * calls, "{context}");
    assert_eq!(record["total_token_count"], 29 * calls, "{context}");
    assert_eq!(record["llm_call_count"], calls, "{context}");
    assert_eq!(
        record["models"],
        json!(["gpt-4o-mini-2024-07-18"]),
        "{context}"
    );
    assert!(record["total_cost"].as_f64().unwrap() > 0.0, "{context}");
    let llm = trace["spans"]
        .as_array()
        .unwrap()
        .iter()
        .rfind(|span| span["llm"]["output"] == ANSWER)
        .map(|span| &span["llm"])
        .unwrap_or_else(|| panic!("no LLM call gave the answer: {context}"));
    assert_eq!(
        llm["response_model"]
            .as_str()
            .or(llm["request_model"].as_str()),
        Some("gpt-4o-mini-2024-07-18"),
        "{context}"
    );
}

#[tokio::test]
async fn openinference_openllmetry_and_openai_v2() {
    let Some(python) = python() else { return };
    let server = TestServer::start().await;
    for library in ["openinference", "openllmetry", "openai-v2"] {
        for mode in ["plain", "stream"] {
            let result = run(&server, &python, library, mode).await;
            let trace = record(&server, &result).await;
            let context = format!("{library} {mode}: {}", trace["trace"]);
            assert_eq!(trace["trace"]["input"], PROMPT, "{context}");
            assert_eq!(trace["trace"]["output"], ANSWER, "{context}");
            assert_call(library, mode, &trace);
            let llm = &llm_span(&trace)["llm"];
            assert_eq!(llm["provider"], "openai", "{context}");
            assert_eq!(llm["request_model"], "gpt-4o-mini", "{context}");
            assert_eq!(llm["input_messages"][0]["role"], "system", "{context}");
            assert_eq!(llm["input_messages"][1]["content"], PROMPT, "{context}");
        }
    }
    server.stop().await;
}

#[tokio::test]
async fn langfuse_sdk_with_its_openai_integration() {
    let Some(python) = python() else { return };
    let server = TestServer::start().await;
    for mode in ["plain", "stream"] {
        let result = run(&server, &python, "langfuse", mode).await;
        let trace = record(&server, &result).await;
        let context = format!("langfuse {mode}: {}", trace["trace"]);
        let record = &trace["trace"];
        assert_eq!(record["input"], PROMPT, "{context}");
        assert_eq!(record["output"], ANSWER, "{context}");
        assert_eq!(record["user_id"], result["user_id"], "{context}");
        assert_eq!(record["session_id"], result["session_id"], "{context}");
        assert!(record["user_id"].is_string(), "{context}");
        assert_call("langfuse", mode, &trace);
    }
    server.stop().await;
}

#[tokio::test]
async fn gentrace_interaction_around_an_openinference_call() {
    let Some(python) = python() else { return };
    let server = TestServer::start().await;
    for mode in ["plain", "stream"] {
        let result = run(&server, &python, "gentrace", mode).await;
        let trace = record(&server, &result).await;
        let context = format!("gentrace {mode}: {}", trace["trace"]);
        let record = &trace["trace"];
        // The interaction's arguments, as the JSON gentrace recorded.
        let input: Value = serde_json::from_str(record["input"].as_str().unwrap()).unwrap();
        assert_eq!(input[0]["inputs"]["q"], PROMPT, "{context}");
        assert_eq!(record["output"], ANSWER, "{context}");
        assert_eq!(record["pipeline_id"], "default", "{context}");
        assert_eq!(record["span_count"], 2, "{context}");
        assert_call("gentrace", mode, &trace);
    }
    server.stop().await;
}

/// The input, output, session and calls every agent library must show.
fn assert_interaction(library: &str, mode: &str, trace: &Value, result: &Value, calls: i64) {
    let context = format!("{library} {mode}: {}", trace["trace"]);
    let record = &trace["trace"];
    assert_eq!(record["input"], PROMPT, "{context}");
    assert_eq!(record["output"], ANSWER, "{context}");
    assert_eq!(record["session_id"], result["session_id"], "{context}");
    assert!(record["session_id"].is_string(), "{context}");
    assert_calls(library, mode, trace, calls);
    for span in trace["spans"].as_array().unwrap() {
        if !span["llm"].is_null() {
            assert_eq!(span["llm"]["provider"], "openai", "{context}");
        }
    }
}

#[tokio::test]
async fn pydantic_ai_one_and_two_and_logfire() {
    let (Some(python), Some(python_v1)) = (python(), pydantic_ai_v1_python()) else {
        return;
    };
    let server = TestServer::start().await;
    for (library, python) in [
        ("pydantic-ai-v1", &python_v1),
        ("pydantic-ai", &python),
        ("logfire", &python),
    ] {
        for mode in ["plain", "stream"] {
            let result = run(&server, python, library, mode).await;
            let trace = record(&server, &result).await;
            assert_interaction(library, mode, &trace, &result, 1);
            if library == "logfire" {
                assert_eq!(trace["trace"]["user_id"], result["user_id"]);
            }
        }
    }
    server.stop().await;
}

#[tokio::test]
async fn vercel_ai_sdk_six_and_seven() {
    let node_project = root().join("tests/e2e/node");
    let installed = node_project.join("node_modules/ai6");
    let Some(node_project) = require(installed.exists().then_some(node_project), "the AI SDK")
    else {
        return;
    };
    let server = TestServer::start().await;
    for version in ["6", "7", "7-genai"] {
        for mode in ["generate", "stream", "tools"] {
            let mut command = Command::new("node");
            command
                .current_dir(&node_project)
                .args(["ai_sdk.mjs", version, mode]);
            let library = format!("AI SDK {version}");
            let result = run_command(&server, command, &library, mode).await;
            let trace = record(&server, &result).await;
            let calls = if mode == "tools" { 2 } else { 1 };
            let result = json!({"trace_id": result["trace_id"], "session_id": "e2e-session-7"});
            assert_interaction(&library, mode, &trace, &result, calls);
            assert_eq!(trace["trace"]["user_id"], "e2e-user-42");
            if mode == "tools" {
                assert_eq!(trace["trace"]["tool_call_count"], 1);
                assert_eq!(trace["trace"]["tool_call_name_counts"]["get_weather"], 1);
            }
        }
    }
    server.stop().await;
}
