//! Scores (SPEC §8) against the real server, on both backends: before their trace, idempotent
//! ids, whole-or-nothing batches, roles, project isolation and deletion.

mod common;

use common::*;
use serde_json::{Value, json};

async fn post_scores(server: &TestServer, token: &str, body: Value) -> (u16, Value) {
    server.post_json("/api/v1/scores", token, body).await
}

async fn delete_score(server: &TestServer, token: &str, id: &str) -> u16 {
    reqwest::Client::new()
        .delete(server.url(&format!("/api/v1/scores/{id}")))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

async fn ingest_trace(server: &TestServer, token: &str, trace: u8) {
    let response = server
        .post_protobuf(
            "/v1/traces",
            token,
            &request("svc", vec![span(trace, 1, None, "agent", recent(60))]),
        )
        .await;
    assert_eq!(response.status(), 200);
    server.settle(token).await;
}

async fn trace(server: &TestServer, token: &str, trace: u8) -> Value {
    let (status, body) = server
        .get_json(&format!("/api/v1/traces/{}", hex_trace(trace)), token)
        .await;
    assert_eq!(status, 200, "{body}");
    body
}

#[tokio::test]
async fn scores_attach_to_their_trace_replace_by_id_and_are_deleted() {
    let server = TestServer::start().await;
    let admin = server.admin_token.clone();
    // Before the trace: accepted, shown once it arrives.
    let (status, answer) = post_scores(
        &server,
        &admin,
        json!({"id": "fb-1", "trace_id": hex_trace(0x51), "name": "thumbs", "value": false,
               "comment": "wrong city"}),
    )
    .await;
    assert_eq!((status, &answer), (200, &json!({"ids": ["fb-1"]})));
    ingest_trace(&server, &admin, 0x51).await;
    let (status, answer) = post_scores(
        &server,
        &admin,
        json!({"scores": [
            {"trace_id": hex_trace(0x51), "name": "quality", "value": 0.25, "source": "judge"},
            {"trace_id": hex_trace(0x51), "span_id": "0101010101010101", "name": "topic",
             "value": "weather"},
        ]}),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    let made = answer["ids"][0].as_str().unwrap().to_owned();
    assert!(made.starts_with("sc_"), "{answer}");

    let body = trace(&server, &admin, 0x51).await;
    assert_eq!(
        body["trace"]["scores"],
        json!({"thumbs": false, "quality": 0.25, "topic": "weather"})
    );
    let scores = body["scores"].as_array().unwrap();
    assert_eq!(scores.len(), 3, "{body}");
    let thumbs = scores.iter().find(|score| score["id"] == "fb-1").unwrap();
    assert_eq!(thumbs["data_type"], "boolean");
    assert_eq!(thumbs["comment"], "wrong city");
    assert_eq!(thumbs["source"], "api");
    let topic = scores
        .iter()
        .find(|score| score["name"] == "topic")
        .unwrap();
    assert_eq!(topic["span_id"], "0101010101010101");
    assert_eq!(topic["data_type"], "categorical");
    let (_, list) = server.get_json("/api/v1/traces", &admin).await;
    assert_eq!(list["traces"][0]["scores"], body["trace"]["scores"]);

    // The same id again replaces the score: a retry never doubles.
    for _ in 0..2 {
        let (status, _) = post_scores(
            &server,
            &admin,
            json!({"id": "fb-1", "trace_id": hex_trace(0x51), "name": "thumbs", "value": true}),
        )
        .await;
        assert_eq!(status, 200);
    }
    let body = trace(&server, &admin, 0x51).await;
    assert_eq!(body["scores"].as_array().unwrap().len(), 3);
    assert_eq!(body["trace"]["scores"]["thumbs"], true);

    // Deletion, admin only.
    let ingest = server.create_token("default", "ingest").await;
    server.wait_for_token(&ingest).await;
    assert_eq!(delete_score(&server, &ingest, "fb-1").await, 403);
    assert_eq!(delete_score(&server, &admin, "fb-1").await, 204);
    assert_eq!(delete_score(&server, &admin, "fb-1").await, 404);
    let body = trace(&server, &admin, 0x51).await;
    assert_eq!(body["scores"].as_array().unwrap().len(), 2);
    assert!(body["trace"]["scores"].get("thumbs").is_none(), "{body}");
}

#[tokio::test]
async fn a_bad_score_stores_nothing_of_its_request() {
    let server = TestServer::start().await;
    let admin = server.admin_token.clone();
    ingest_trace(&server, &admin, 0x52).await;
    let (status, answer) = post_scores(
        &server,
        &admin,
        json!({"scores": [
            {"id": "good", "trace_id": hex_trace(0x52), "name": "quality", "value": 1},
            {"trace_id": hex_trace(0x52), "name": "quality", "value": {"nested": 1}},
        ]}),
    )
    .await;
    assert_eq!(status, 400);
    let message = answer["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        message.contains("score 1") && message.contains("value"),
        "{answer}"
    );
    let body = trace(&server, &admin, 0x52).await;
    assert_eq!(body["scores"], json!([]));
    assert_eq!(body["trace"]["scores"], json!({}));
    let (status, _) = post_scores(&server, &admin, json!({"not": "a score"})).await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn read_tokens_never_score_and_projects_never_see_each_others() {
    let server = TestServer::start().await;
    let admin = server.admin_token.clone();
    ingest_trace(&server, &admin, 0x53).await;
    let read = server.create_token("default", "read").await;
    server.wait_for_token(&read).await;
    let score = json!({"trace_id": hex_trace(0x53), "name": "thumbs", "value": true});
    assert_eq!(post_scores(&server, &read, score.clone()).await.0, 403);

    // Another project scores the same trace id: only it sees that score.
    let other = server.create_token("other", "admin").await;
    server.wait_for_token(&other).await;
    let (status, answer) = post_scores(&server, &other, score).await;
    assert_eq!(status, 200);
    let body = trace(&server, &admin, 0x53).await;
    assert_eq!(body["scores"], json!([]));
    let id = answer["ids"][0].as_str().unwrap();
    assert_eq!(delete_score(&server, &admin, id).await, 404);
    assert_eq!(delete_score(&server, &other, id).await, 204);
}

#[tokio::test]
async fn the_dashboard_shows_each_scores_count_and_mean_per_bucket() {
    const HOUR: u64 = 3_600_000_000_000;
    let server = TestServer::start().await;
    let admin = server.admin_token.clone();
    let start = recent(0) / HOUR * HOUR - 2 * HOUR;
    let spans = vec![
        span(0x61, 1, None, "a", start + 60_000_000_000),
        span(0x62, 1, None, "b", start + HOUR + 60_000_000_000),
        span(0x63, 1, None, "outside", start + 3 * HOUR),
    ];
    let response = server
        .post_protobuf("/v1/traces", &admin, &request("svc", spans))
        .await;
    assert_eq!(response.status(), 200);
    server.settle(&admin).await;
    let (status, _) = post_scores(
        &server,
        &admin,
        json!({"scores": [
            {"trace_id": hex_trace(0x61), "name": "thumbs", "value": true},
            {"trace_id": hex_trace(0x61), "name": "quality", "value": 0.5},
            {"trace_id": hex_trace(0x61), "name": "topic", "value": "weather"},
            {"trace_id": hex_trace(0x62), "name": "thumbs", "value": false},
            {"trace_id": hex_trace(0x62), "name": "quality", "value": 1.5},
            {"trace_id": hex_trace(0x63), "name": "thumbs", "value": false},
        ]}),
    )
    .await;
    assert_eq!(status, 200);
    let path = format!(
        "/api/v1/stats?bucket=1h&start={}&end={}",
        spanhouse::model::time::format_rfc3339(start),
        spanhouse::model::time::format_rfc3339(start + 2 * HOUR)
    );
    let (status, stats) = server.get_json(&path, &admin).await;
    assert_eq!(status, 200, "{stats}");
    assert_eq!(
        stats["totals"]["scores"],
        json!({"thumbs": {"count": 2, "mean": 0.5}, "quality": {"count": 2, "mean": 1.0}})
    );
    assert_eq!(
        stats["buckets"][0]["scores"],
        json!({"thumbs": {"count": 1, "mean": 1.0}, "quality": {"count": 1, "mean": 0.5}})
    );
    assert_eq!(
        stats["buckets"][1]["scores"],
        json!({"thumbs": {"count": 1, "mean": 0.0}, "quality": {"count": 1, "mean": 1.5}})
    );
}
