//! `ScoreClient` against a real spanhouse (the root package's harness): scores land on their
//! trace; a refused request is an error naming the score and field, and stores nothing.

#[path = "../../tests/common/mod.rs"]
mod common;

use common::TestServer;
use opentelemetry::trace::{SpanId, TraceId};
use spanhouse_otel::{Score, ScoreClient, ScoreError};

#[tokio::test]
async fn scores_reach_their_trace_and_refusals_are_errors() {
    let server = TestServer::start().await;
    let token = server.create_token("default", "ingest").await;
    server.wait_for_token(&token).await;
    let response = server
        .post_protobuf(
            "/v1/traces",
            &token,
            &common::request(
                "app",
                vec![common::span(0x81, 1, None, "answer", common::recent(30))],
            ),
        )
        .await;
    assert_eq!(response.status(), 200);
    server.settle(&token).await;

    let trace = TraceId::from_hex(&common::hex_trace(0x81)).unwrap();
    let client = ScoreClient::new(&server.url(""), &token).unwrap();
    let ids = client
        .send(&[
            Score::new(trace, "user_feedback", false)
                .id("fb-1")
                .comment("wrong city")
                .source("app"),
            Score::new(trace, "topic", "weather").span(SpanId::from_bytes([1; 8])),
        ])
        .await
        .unwrap();
    assert_eq!(ids.len(), 2);
    assert_eq!(ids[0], "fb-1");

    let (status, body) = server
        .get_json(
            &format!("/api/v1/traces/{}", common::hex_trace(0x81)),
            &server.admin_token,
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        body["trace"]["scores"],
        serde_json::json!({"user_feedback": false, "topic": "weather"})
    );

    let refused = client
        .send(&[
            Score::new(trace, "fine", 1.0),
            Score::new(trace, "not a number", f64::NAN),
        ])
        .await;
    match refused {
        Err(ScoreError::Refused { status, body }) => {
            assert_eq!(status, 400);
            assert!(body.contains("score 1") && body.contains("value"), "{body}");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    let (_, body) = server
        .get_json(
            &format!("/api/v1/traces/{}", common::hex_trace(0x81)),
            &server.admin_token,
        )
        .await;
    assert!(body["trace"]["scores"].get("fine").is_none(), "{body}");
    server.stop().await;
}
