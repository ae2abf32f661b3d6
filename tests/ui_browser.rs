//! Browser end-to-end tests of the web UI: a real spanhouse with an ingested LLM trace, and
//! Debian's chromium driven by playwright-core (`tests/ui/browser.mjs`) signing in, finding the
//! trace, reading its conversation, the dashboard, the ingestion counters and changing settings;
//! hostile LLM output that must not run; a read token that cannot change settings; filtering
//! traces and spans with the filter language, scoring a trace and its score on the dashboard
//! (`tests/ui/filters.mjs`); the Insights page showing planted changes and opening an
//! insight's traces (`tests/ui/insights.mjs`); an alert rule made, firing and deleted in
//! Settings (`tests/ui/alerts.mjs`).
//!
//! `scripts/test.sh` installs chromium and `tests/ui/node_modules`. In CI (`CI` set) a missing
//! one fails the test; elsewhere the test says so and skips. Screenshots are written to
//! `target/ui-screenshots/`.

mod common;

use std::path::{Path, PathBuf};

use common::*;
use opentelemetry_proto::tonic::trace::v1::Span;

/// What the LLM answered: markup and script that must show as text and never run.
const HOSTILE_OUTPUT: &str =
    "It is sunny <img src=x onerror=\"window.__xss=1\"><script>window.__xss=2</script>";

fn project_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn chromium() -> PathBuf {
    std::env::var_os("SPANHOUSE_CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"))
}

/// Whether chromium and playwright-core are installed; fails in CI, skips elsewhere.
fn browser_installed() -> bool {
    let playwright = project_root().join("tests/ui/node_modules/playwright-core");
    let missing = [
        (!chromium().exists()).then_some("chromium (apt-get install chromium)"),
        (!playwright.exists()).then_some("playwright-core (npm ci in tests/ui)"),
    ];
    let missing: Vec<&str> = missing.into_iter().flatten().collect();
    let installed = missing.is_empty().then_some(());
    require(installed, &missing.join(" and ")).is_some()
}

fn json_attribute(
    key: &str,
    value: serde_json::Value,
) -> opentelemetry_proto::tonic::common::v1::KeyValue {
    string_attribute(key, &value.to_string())
}

/// An agent trace: a root, a tool span and an LLM call whose conversation has a system prompt,
/// a user question, a tool call, the tool's answer and the (hostile) assistant output.
fn agent_trace(trace: u8) -> Vec<Span> {
    let start = recent(30);
    let mut root = span(trace, 1, None, "weather-agent", start);
    root.end_time_unix_nano = start + 900_000_000;
    root.attributes = vec![
        string_attribute("input.value", "What is the weather in Paris?"),
        string_attribute("output.value", HOSTILE_OUTPUT),
        string_attribute("session.id", "session-42"),
        string_attribute("user.id", "ada"),
    ];
    let mut tool = span(
        trace,
        2,
        Some(1),
        "execute_tool get_weather",
        start + 50_000_000,
    );
    tool.attributes = vec![
        string_attribute("gen_ai.operation.name", "execute_tool"),
        string_attribute("gen_ai.tool.name", "get_weather"),
    ];
    let mut llm = span(trace, 3, Some(1), "chat gpt-4o", start + 300_000_000);
    llm.end_time_unix_nano = start + 850_000_000;
    llm.attributes = vec![
        string_attribute("gen_ai.operation.name", "chat"),
        string_attribute("gen_ai.provider.name", "openai"),
        string_attribute("gen_ai.request.model", "gpt-4o"),
        int_attribute("gen_ai.usage.input_tokens", 30),
        int_attribute("gen_ai.usage.output_tokens", 15),
        json_attribute(
            "gen_ai.system_instructions",
            serde_json::json!([{"type": "text", "content": "You are a weather assistant."}]),
        ),
        json_attribute(
            "gen_ai.input.messages",
            serde_json::json!([
                {"role": "user", "parts": [{"type": "text", "content": "What is the weather in Paris?"}]},
                {"role": "assistant", "parts": [{"type": "tool_call", "id": "call_1",
                    "name": "get_weather", "arguments": {"city": "Paris"}}]},
                {"role": "tool", "parts": [{"type": "tool_call_response", "id": "call_1",
                    "response": "18C and sunny"}]}
            ]),
        ),
        json_attribute(
            "gen_ai.output.messages",
            serde_json::json!([{"role": "assistant", "finish_reason": "stop",
                "parts": [{"type": "text", "content": HOSTILE_OUTPUT}]}]),
        ),
        string_attribute("gen_ai.response.finish_reasons", "stop"),
    ];
    vec![root, tool, llm]
}

/// Another tenant's trace: a support question answered by one LLM call, whose span (not the
/// root) carries `tenant=other`. The filter scenario gives the agent trace `tenant=acme`.
fn other_tenant_trace(trace: u8) -> Vec<Span> {
    let start = recent(20);
    let mut root = span(trace, 1, None, "support-agent", start);
    root.end_time_unix_nano = start + 400_000_000;
    root.attributes = vec![
        string_attribute("input.value", "How do I reset my password?"),
        string_attribute("output.value", "Use the forgot-password link."),
    ];
    let mut llm = span(trace, 2, Some(1), "chat claude", start + 10_000_000);
    llm.end_time_unix_nano = start + 390_000_000;
    llm.attributes = vec![
        string_attribute("tenant", "other"),
        string_attribute("gen_ai.operation.name", "chat"),
        string_attribute("gen_ai.provider.name", "anthropic"),
        string_attribute("gen_ai.request.model", "claude-sonnet-4"),
        int_attribute("gen_ai.usage.input_tokens", 12),
        int_attribute("gen_ai.usage.output_tokens", 8),
    ];
    vec![root, llm]
}

/// The traces a scenario starts with, as requests: none for `empty`, the agent trace, for
/// `filters-and-scores` the agent trace of tenant acme and another tenant's trace, and for
/// `insights` two days of traffic whose last has planted changes (`common::traffic`).
fn scenario_traces(scenario: &str, trace: u8, other_trace: u8) -> Vec<Vec<Span>> {
    match scenario {
        "empty" => vec![],
        "insights" => {
            const DAY: u64 = 86_400_000_000_000;
            // The page compares the last 24 hours with the 24 before, from when it loads.
            let start = recent(2 * 86_400) + 2 * 60_000_000_000;
            common::traffic::traffic(3, start, DAY, true)
                .chunks(500)
                .map(<[Span]>::to_vec)
                .collect()
        }
        "filters-and-scores" => {
            let mut agent = agent_trace(trace);
            agent[0].attributes.push(string_attribute("tenant", "acme"));
            vec![agent, other_tenant_trace(other_trace)]
        }
        _ => vec![agent_trace(trace)],
    }
}

/// Starts a server with the scenario's traces, runs one scenario of `tests/ui/browser.mjs` and
/// returns its output; panics when it fails.
async fn run_scenario(scenario: &str) -> String {
    // Alert rules are evaluated every second, so that one fires while the page is open.
    let server = TestServer::start_with(|config| {
        config.alerts.evaluation_interval = std::time::Duration::from_secs(1);
    })
    .await;
    let read_token = server.create_token("default", "read").await;
    server.wait_for_token(&read_token).await;
    let (trace, other_trace) = (0x7a, 0x7b);
    let traces = scenario_traces(scenario, trace, other_trace);
    for spans in &traces {
        let response = server
            .post_protobuf(
                "/v1/traces",
                &server.admin_token,
                &request("weather-service", spans.clone()),
            )
            .await;
        assert_eq!(response.status(), 200);
    }
    if !traces.is_empty() {
        server.settle(&server.admin_token).await;
    }

    let screenshots = project_root().join("target/ui-screenshots");
    let output = tokio::process::Command::new("node")
        .arg(project_root().join("tests/ui/browser.mjs"))
        .arg(scenario)
        .env("SPANHOUSE_URL", server.url(""))
        .env("SPANHOUSE_ADMIN_TOKEN", &server.admin_token)
        .env("SPANHOUSE_READ_TOKEN", &read_token)
        .env("SPANHOUSE_TRACE_ID", hex_trace(trace))
        .env("SPANHOUSE_OTHER_TRACE_ID", hex_trace(other_trace))
        .env("SPANHOUSE_CHROMIUM", chromium())
        .env("SPANHOUSE_SCREENSHOTS", &screenshots)
        .output()
        .await
        .expect("node starts");
    let stdout = String::from_utf8_lossy(&output.stdout).to_string();
    let stderr = String::from_utf8_lossy(&output.stderr).to_string();
    server.stop().await;
    assert!(
        output.status.success() && stdout.contains(&format!("OK {scenario}")),
        "browser scenario {scenario} failed (screenshots in {}):\n{stdout}\n{stderr}",
        screenshots.display()
    );
    stdout
}

#[tokio::test(flavor = "multi_thread")]
async fn a_newcomer_signs_in_and_finds_trace_conversation_dashboard_and_ingestion() {
    if !browser_installed() {
        return;
    }
    let output = run_scenario("admin-flow").await;
    for step in [
        "signed in and sees the ingested trace",
        "opened the trace and read the LLM conversation",
        "dashboard charts",
        "ingestion counters",
        "settings changed",
        "token created and revoked",
    ] {
        assert!(output.contains(&format!("PASS {step}")), "{output}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_llm_output_is_shown_as_text_and_never_runs() {
    if !browser_installed() {
        return;
    }
    let output = run_scenario("hostile-output").await;
    assert!(output.contains("PASS hostile LLM output"), "{output}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_read_token_cannot_change_settings() {
    if !browser_installed() {
        return;
    }
    let output = run_scenario("read-only").await;
    assert!(
        output.contains("PASS a read token cannot change settings"),
        "{output}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_empty_project_shows_how_to_send_a_first_trace() {
    if !browser_installed() {
        return;
    }
    let output = run_scenario("empty").await;
    assert!(output.contains("PASS the empty state"), "{output}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reviewer_filters_traces_scores_one_and_sees_it_on_the_dashboard() {
    if !browser_installed() {
        return;
    }
    let output = run_scenario("filters-and-scores").await;
    for step in [
        "the filter bar suggests the language's names",
        "a filter lists only the matching traces",
        "the filter is kept in the URL",
        "a broken filter shows the server's error at its column",
        "Back returns to the previous filter",
        "a thumbs down is added and listed",
        "a numeric score with a comment is added",
        "the dashboard takes the filter and charts each score's mean",
        "the spans page lists the LLM calls",
        "the project's attribute keys are suggested",
        "a read session sees the scores and no scoring form",
    ] {
        assert!(output.contains(&format!("PASS {step}")), "{output}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_insights_page_shows_a_planted_change_and_opens_its_traces() {
    if !browser_installed() {
        return;
    }
    let output = run_scenario("insights").await;
    for step in [
        "the insights page shows the planted changes",
        "the insight's link opens its traces",
    ] {
        assert!(output.contains(&format!("PASS {step}")), "{output}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_admin_makes_an_alert_rule_sees_it_fire_and_deletes_it() {
    if !browser_installed() {
        return;
    }
    let output = run_scenario("alerts").await;
    for step in [
        "an alert rule is created and its secret shown once",
        "the rule fires and its history shows the change and the webhook attempts",
        "a read session sees the rule and cannot change it",
        "the rule is deleted",
    ] {
        assert!(output.contains(&format!("PASS {step}")), "{output}");
    }
}
