//! Insights (SPEC §10) through the API, on both backends: traffic with planted changes (one
//! model's error rate from 2 % to 20 %, one pipeline's cost doubled, one team's traces three
//! times as slow: a metadata segment) sent over OTLP; the
//! insights are exactly the planted segments, and each one's filter lists its traces. The same
//! traffic without the change yields none. (`src/insights/tests.rs` runs the statistics over
//! many more seeds.)

mod common;

use common::traffic::{PLANTED, traffic};
use common::*;
use serde_json::Value;
use spanhouse::model::time::format_rfc3339;
use std::collections::BTreeSet;

const MINUTE: u64 = 60 * 1_000_000_000;
const HOUR: u64 = 60 * MINUTE;

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
    for spans in traffic(seed, start, HOUR, planted).chunks(500) {
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

/// The insights of an answer, as (metric, segment field, segment value).
fn found_in(body: &Value) -> BTreeSet<(String, String, String)> {
    body["insights"]
        .as_array()
        .unwrap()
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
    let found = found_in(&body);
    let planted: BTreeSet<(String, String, String)> = PLANTED
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
                    url_encoded(filter)
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
    // A sample (one trace in two, chosen by the store) finds the same changes.
    let (status, sampled) = server
        .get_json(&format!("/api/v1/insights?{query}&max_traces=1000"), &token)
        .await;
    assert_eq!(status, 200, "{sampled}");
    assert_eq!(sampled["sample"], 2, "{sampled}");

    assert_eq!(found_in(&sampled), planted, "{sampled:#}");
    // With a filter, the links keep it.
    let (status, body) = server
        .get_json(
            &format!(
                "/api/v1/insights?{query}&filter={}",
                url_encoded(r#"model == "m-a""#)
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
    // A project with no traces (and so no metadata keys): nothing to test, nothing found.
    let empty = server.create_token("insights-empty", "read").await;
    server.wait_for_token(&empty).await;
    let (status, body) = server
        .get_json(&format!("/api/v1/insights?{query}"), &empty)
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (
            body["tests"].as_u64(),
            body["insights"].as_array().map(Vec::len)
        ),
        (Some(0), Some(0))
    );
    let (status, _) = server.get_json("/api/v1/insights", "not-a-token").await;
    assert_eq!(status, 401);
    server.stop().await;
}
