//! Insights (SPEC §10) through the API, on both backends: traffic with planted changes (one
//! model's error rate from 2 % to 20 %, one pipeline's cost doubled, one team's traces three
//! times as slow: a metadata segment) sent over OTLP; the
//! insights are exactly the planted segments, and each one's filter lists its traces. The same
//! traffic without the change yields none. (`src/insights/tests.rs` runs the statistics over
//! many more seeds.)

mod common;

use common::*;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::trace::v1::Span;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::Value;
use spanhouse::model::time::format_rfc3339;
use std::collections::BTreeSet;

const MINUTE: u64 = 60 * 1_000_000_000;
const HOUR: u64 = 60 * MINUTE;
const PER_HOUR: usize = 1500;

fn double_attribute(key: &str, value: f64) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::DoubleValue(value)),
        }),
        ..Default::default()
    }
}

/// An hour of baseline from `start`, then an hour of window: one LLM span per trace, three
/// models and three pipelines, a team in the trace metadata.
fn traffic(seed: u64, start: u64, planted: bool) -> Vec<Span> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..2 * PER_HOUR)
        .map(|index| {
            let window = index >= PER_HOUR;
            let model = ["m-a", "m-b", "m-c"][rng.random_range(0..3)];
            let pipeline = ["p-1", "p-2", "p-3"][rng.random_range(0..3)];
            let error_rate = if planted && window && model == "m-a" {
                0.2
            } else {
                0.02
            };
            let tokens: i64 = rng.random_range(200..2000);
            let mut cost = tokens as f64 * 2e-6 * rng.random_range(0.7..1.3);
            if planted && window && pipeline == "p-2" {
                cost *= 2.0;
            }
            let begin = start + if window { HOUR } else { 0 } + rng.random_range(0..HOUR - MINUTE);
            let mut trace_id = [0u8; 16];
            trace_id[..8].copy_from_slice(&seed.to_be_bytes());
            trace_id[8..].copy_from_slice(&(index as u64 + 1).to_be_bytes());
            let mut root = span(1, 1, None, "chat", begin);
            root.trace_id = trace_id.to_vec();
            let team = ["t1", "t2", "t3", "t4"][rng.random_range(0..4)];
            let slow = if planted && window && team == "t3" {
                3
            } else {
                1
            };
            root.end_time_unix_nano = begin + slow * rng.random_range(200..3000) * 1_000_000;
            root.status.as_mut().unwrap().code = if rng.random_bool(error_rate) { 2 } else { 1 };
            root.attributes = vec![
                string_attribute("gen_ai.operation.name", "chat"),
                string_attribute("gen_ai.request.model", model),
                string_attribute("gentrace.pipeline_id", pipeline),
                int_attribute("gen_ai.usage.input_tokens", tokens - 100),
                int_attribute("gen_ai.usage.output_tokens", 100),
                double_attribute("gen_ai.usage.cost", cost),
                string_attribute("langfuse.trace.metadata.team", team),
            ];
            root
        })
        .collect()
}

/// Sends a project's traffic; answers its admin token and the query string of the comparison.
async fn project_with(
    server: &TestServer,
    name: &str,
    seed: u64,
    planted: bool,
) -> (String, String) {
    let token = server.create_token(name, "admin").await;
    server.wait_for_token(&token).await;
    let start = recent(3 * 3600) / MINUTE * MINUTE;
    for spans in traffic(seed, start, planted).chunks(500) {
        let response = server
            .post_protobuf("/v1/traces", &token, &request("app", spans.to_vec()))
            .await;
        assert_eq!(response.status(), 200);
    }
    server.settle(&token).await;
    let query = format!(
        "baseline_start={}&start={}&end={}",
        format_rfc3339(start),
        format_rfc3339(start + HOUR),
        format_rfc3339(start + 2 * HOUR)
    );
    (token, query)
}

fn encode(text: &str) -> String {
    text.bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => {
                (byte as char).to_string()
            }
            _ => format!("%{byte:02X}"),
        })
        .collect()
}

#[tokio::test]
async fn the_planted_change_is_found_and_its_link_lists_its_traces() {
    let server = TestServer::start().await;
    let (token, query) = project_with(&server, "insights-planted", 1, true).await;
    let (status, body) = server
        .get_json(&format!("/api/v1/insights?{query}"), &token)
        .await;
    assert_eq!(status, 200, "{body}");
    let insights = body["insights"].as_array().unwrap();
    let found: BTreeSet<(String, String, String)> = insights
        .iter()
        .map(|insight| {
            (
                insight["metric"].as_str().unwrap().to_owned(),
                insight["segment"]["field"].as_str().unwrap().to_owned(),
                insight["segment"]["value"]
                    .as_str()
                    .unwrap_or("")
                    .to_owned(),
            )
        })
        .collect();
    let planted: BTreeSet<(String, String, String)> = [
        ("error_rate", "model", "m-a"),
        ("cost_per_trace", "pipeline_id", "p-2"),
        ("p95_duration_ms", r#"metadata["team"]"#, "t3"),
    ]
    .into_iter()
    .map(|(a, b, c)| (a.to_owned(), b.to_owned(), c.to_owned()))
    .collect();
    assert_eq!(found, planted, "{body:#}");
    assert!(body["tests"].as_u64().unwrap() > 30, "{body}");
    let errors = insights
        .iter()
        .find(|insight| insight["metric"] == "error_rate")
        .unwrap();
    assert!(errors["current"].as_f64().unwrap() > 0.12, "{errors}");
    assert!(errors["baseline"].as_f64().unwrap() < 0.05, "{errors}");
    assert!(errors["p_value"].as_f64().unwrap() < 0.001, "{errors}");
    // Each insight's filter lists exactly its segment's traces of the window.
    let window = query.split_once('&').unwrap().1;
    for insight in insights {
        let filter = insight["filter"].as_str().unwrap();
        let (status, page) = server
            .get_json(
                &format!(
                    "/api/v1/traces?limit=1000&{window}&filter={}",
                    encode(filter)
                ),
                &token,
            )
            .await;
        assert_eq!(status, 200, "{page}");
        assert_eq!(
            page["traces"].as_array().unwrap().len() as u64,
            insight["traces"].as_u64().unwrap(),
            "{filter}"
        );
    }
    // With a filter, the links keep it.
    let (status, body) = server
        .get_json(
            &format!(
                "/api/v1/insights?{query}&filter={}",
                encode(r#"model == "m-a""#)
            ),
            &token,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    for insight in body["insights"].as_array().unwrap() {
        assert!(
            insight["filter"]
                .as_str()
                .unwrap()
                .contains(r#"model == "m-a""#),
            "{insight}"
        );
    }
    server.stop().await;
}

#[tokio::test]
async fn unchanged_traffic_yields_no_insight_and_bad_requests_are_named() {
    let server = TestServer::start().await;
    let (token, query) = project_with(&server, "insights-null", 2, false).await;
    let (status, body) = server
        .get_json(&format!("/api/v1/insights?{query}"), &token)
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["insights"], Value::Array(Vec::new()), "{body:#}");
    assert!(body["tests"].as_u64().unwrap() > 30, "{body}");
    let reader = server.create_token("insights-null", "read").await;
    server.wait_for_token(&reader).await;
    let (status, _) = server
        .get_json(&format!("/api/v1/insights?{query}"), &reader)
        .await;
    assert_eq!(status, 200);
    for (params, named) in [
        ("filter=model%20%3D%3D", "filter"),
        ("alpha=2", "alpha"),
        (
            "start=2026-01-02T00:00:00Z&end=2026-01-01T00:00:00Z",
            "start",
        ),
    ] {
        let (status, body) = server
            .get_json(&format!("/api/v1/insights?{params}"), &token)
            .await;
        assert_eq!(status, 400, "{params}: {body}");
        assert!(body.to_string().contains(named), "{params}: {body}");
    }
    let (status, _) = server.get_json("/api/v1/insights", "not-a-token").await;
    assert_eq!(status, 401);
    server.stop().await;
}
