//! docs/sdks.md: the snippets it shows are the files in `docs/snippets` and the Rust example,
//! word for word, and each runs against a real spanhouse: the sampled interaction arrives with
//! input and output, the unsampled spans never leave the process. The Rust example runs through
//! `cargo run` (already built by `cargo test --all-targets`, else built here).
//!
//! The SDKs are the ones `tests/e2e_sdks.rs` drives, installed by `scripts/test.sh`. In CI (`CI`
//! set) a missing SDK fails the test; elsewhere the test says so and skips.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{TestServer, require};

fn project_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

const PYTHON_SNIPPET: &str = "docs/snippets/python_quickstart.py";
const NODE_SNIPPET: &str = "docs/snippets/node_quickstart.mjs";
const RUST_EXAMPLE: &str = "spanhouse-otel/examples/quickstart.rs";
const PYTHON_FEEDBACK: &str = "docs/snippets/python_feedback.py";
const NODE_FEEDBACK: &str = "docs/snippets/node_feedback.mjs";

fn read(relative: &str) -> String {
    std::fs::read_to_string(project_root().join(relative))
        .unwrap_or_else(|error| panic!("{relative}: {error}"))
}

#[test]
fn the_doc_shows_each_snippet_file_word_for_word() {
    let doc = read("docs/sdks.md");
    for (file, language) in [
        (PYTHON_SNIPPET, "python"),
        (NODE_SNIPPET, "js"),
        (RUST_EXAMPLE, "rust"),
        (PYTHON_FEEDBACK, "python"),
        (NODE_FEEDBACK, "js"),
    ] {
        let block = format!("```{language}\n{}```\n", read(file));
        assert!(
            doc.contains(&block),
            "docs/sdks.md must show {file} exactly, in a ```{language} block"
        );
    }
}

/// Runs a snippet against the server with an ingest token and returns what it printed.
async fn run_snippet(server: &TestServer, mut command: Command) -> String {
    let token = server.create_token("default", "ingest").await;
    server.wait_for_token(&token).await;
    command
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", server.url(""))
        .env("SPANHOUSE_TOKEN", token)
        .env_remove("OTEL_EXPORTER_OTLP_HEADERS");
    let output = tokio::task::spawn_blocking(move || command.output())
        .await
        .unwrap()
        .expect("snippet starts");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "snippet failed:\n{stdout}\n{stderr}"
    );
    stdout
}

/// The trace ids the Python and Node snippets print: `{"sampled": ID, "unsampled": ID}`.
fn printed_trace_ids(stdout: &str) -> (String, String) {
    let ids: serde_json::Value =
        serde_json::from_str(stdout.trim()).unwrap_or_else(|error| panic!("{error}: {stdout}"));
    (
        ids["sampled"].as_str().unwrap().to_owned(),
        ids["unsampled"].as_str().unwrap().to_owned(),
    )
}

async fn assert_only_the_sampled_interaction_arrived(
    server: &TestServer,
    sampled: &str,
    unsampled: Option<&str>,
) {
    let (status, trace) = server
        .get_json(&format!("/api/v1/traces/{sampled}"), &server.admin_token)
        .await;
    assert_eq!(status, 200, "{trace}");
    let record = &trace["trace"];
    assert_eq!(record["input"], "What is OTLP?");
    assert_eq!(record["output"], "You asked: What is OTLP?");
    assert_eq!(record["span_count"], 2);
    assert_eq!(record["root_span_name"], "answer question");
    for span in trace["spans"].as_array().unwrap() {
        assert_eq!(span["attributes"]["spanhouse.sample"], "true", "{span}");
    }
    if let Some(unsampled) = unsampled {
        let (status, _) = server
            .get_json(&format!("/api/v1/traces/{unsampled}"), &server.admin_token)
            .await;
        assert_eq!(status, 404);
    }
    let (_, ingestion) = server
        .get_json("/api/v1/ingestion", &server.admin_token)
        .await;
    assert_eq!(
        ingestion["totals"]["received"], 2,
        "only the sampled spans left the process: {ingestion}"
    );
}

#[tokio::test]
async fn the_python_snippet_sends_only_its_sampled_interaction() {
    let python = std::env::var_os("SPANHOUSE_E2E_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| project_root().join(".e2e/venv/bin/python"));
    let Some(python) = require(
        python.exists().then_some(python),
        "the OpenTelemetry Python SDK",
    ) else {
        return;
    };
    let server = TestServer::start().await;
    let mut command = Command::new(python);
    command.arg(project_root().join(PYTHON_SNIPPET));
    let (sampled, unsampled) = printed_trace_ids(&run_snippet(&server, command).await);
    assert_only_the_sampled_interaction_arrived(&server, &sampled, Some(&unsampled)).await;
    server.stop().await;
}

#[tokio::test]
async fn the_node_snippet_sends_only_its_sampled_interaction() {
    let modules = project_root().join("tests/e2e/node/node_modules");
    let installed = modules.join("@opentelemetry/sdk-trace").exists();
    let Some(modules) = require(installed.then_some(modules), "the OpenTelemetry JS SDK") else {
        return;
    };
    // The snippet imports bare package names: run a copy beside a link to the e2e packages.
    let directory = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(&modules, directory.path().join("node_modules")).unwrap();
    let script = directory.path().join("node_quickstart.mjs");
    std::fs::write(&script, read(NODE_SNIPPET)).unwrap();
    let server = TestServer::start().await;
    let mut command = Command::new("node");
    command.arg(&script);
    let (sampled, unsampled) = printed_trace_ids(&run_snippet(&server, command).await);
    assert_only_the_sampled_interaction_arrived(&server, &sampled, Some(&unsampled)).await;
    server.stop().await;
}

#[tokio::test]
async fn the_rust_example_sends_only_its_sampled_interaction() {
    let server = TestServer::start().await;
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .current_dir(project_root())
        .args(["run", "--quiet", "--example", "quickstart"])
        .env_remove("OTEL_EXPORTER_OTLP_PROTOCOL")
        .env_remove("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
        .env_remove("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT");
    // It prints its answer, then `trace ID`; the span it leaves out has no id to print.
    let stdout = run_snippet(&server, command).await;
    let sampled = stdout.trim().rsplit("trace ").next().unwrap().to_owned();
    assert_only_the_sampled_interaction_arrived(&server, &sampled, None).await;
    server.stop().await;
}

/// Stores one trace, runs a feedback snippet on its id, and checks the score it printed the id
/// of is on the trace as the snippet gave it.
async fn assert_feedback_is_scored(server: &TestServer, mut command: Command, trace: u8) {
    let response = server
        .post_protobuf(
            "/v1/traces",
            &server.admin_token,
            &common::request(
                "app",
                vec![common::span(trace, 1, None, "answer", common::recent(30))],
            ),
        )
        .await;
    assert_eq!(response.status(), 200);
    server.settle(&server.admin_token).await;
    command.arg(common::hex_trace(trace));
    let id = run_snippet(server, command).await.trim().to_owned();
    let (status, body) = server
        .get_json(
            &format!("/api/v1/traces/{}", common::hex_trace(trace)),
            &server.admin_token,
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["trace"]["scores"]["user_feedback"], false, "{body}");
    let score = &body["scores"][0];
    assert_eq!(score["id"], id.as_str());
    assert_eq!(score["comment"], "wrong city");
    assert_eq!(score["source"], "app");
}

#[tokio::test]
async fn the_feedback_snippets_score_a_trace() {
    let server = TestServer::start().await;
    let python = std::env::var_os("SPANHOUSE_E2E_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| project_root().join(".e2e/venv/bin/python"));
    if let Some(python) = require(python.exists().then_some(python), "Python") {
        let mut command = Command::new(python);
        command.arg(project_root().join(PYTHON_FEEDBACK));
        assert_feedback_is_scored(&server, command, 0x71).await;
    }
    let mut command = Command::new("node");
    command.arg(project_root().join(NODE_FEEDBACK));
    assert_feedback_is_scored(&server, command, 0x72).await;
    server.stop().await;
}
