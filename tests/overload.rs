//! A full ingest queue answers 503 with Retry-After instead of growing, and what was accepted
//! before is still stored.

mod common;

use std::time::Duration;

use common::*;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;

#[tokio::test]
async fn a_full_queue_answers_503_and_loses_nothing_accepted() {
    if on_clickhouse() {
        // The test holds the embedded store's write lock; the spool has its own test.
        return;
    }
    let server = TestServer::start_with(|config| {
        config.limits.queue_capacity_spans = 8;
    })
    .await;
    // Another connection holds SQLite's write lock, so the writer cannot drain the queue.
    let blocker = rusqlite::Connection::open(server.data_dir.path().join("spanhouse.db")).unwrap();
    blocker.execute_batch("BEGIN IMMEDIATE").unwrap();

    let first = request(
        "svc",
        (1..=6)
            .map(|id| span(0xa1, id, None, "queued", recent(5)))
            .collect(),
    );
    let url = server.url("/v1/traces");
    let token = server.admin_token.clone();
    let queued = tokio::spawn({
        let client = server.client.clone();
        async move {
            use prost::Message as _;
            client
                .post(url)
                .bearer_auth(token)
                .header("content-type", "application/x-protobuf")
                .body(first.encode_to_vec())
                .send()
                .await
                .unwrap()
                .status()
        }
    });
    // Wait until the first request's six spans wait in the queue.
    let mut buffered = 0;
    for _ in 0..100 {
        let (_, ready) = server.get_json("/readyz", "").await;
        buffered = ready["buffered"].as_u64().unwrap();
        if buffered == 6 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(buffered, 6);

    let overflow = request(
        "svc",
        (1..=3)
            .map(|id| span(0xa2, id, None, "overflow", recent(5)))
            .collect(),
    );
    let response = server
        .post_protobuf("/v1/traces", &server.admin_token, &overflow)
        .await;
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["retry-after"], "1");

    let mut grpc = TraceServiceClient::connect(server.grpc_url())
        .await
        .unwrap();
    let mut grpc_request = tonic::Request::new(overflow);
    grpc_request.metadata_mut().insert(
        "authorization",
        format!("Bearer {}", server.admin_token).parse().unwrap(),
    );
    let error = grpc.export(grpc_request).await.unwrap_err();
    assert_eq!(error.code(), tonic::Code::Unavailable);

    // A request larger than the whole queue can never fit: 413, not an endless retry.
    let huge = request(
        "svc",
        (1..=9)
            .map(|id| span(0xa3, id, None, "huge", recent(5)))
            .collect(),
    );
    let response = server
        .post_protobuf("/v1/traces", &server.admin_token, &huge)
        .await;
    assert_eq!(response.status(), 413);

    blocker.execute_batch("ROLLBACK").unwrap();
    assert_eq!(queued.await.unwrap(), 200);
    let (_, trace) = server
        .get_json(
            &format!("/api/v1/traces/{}", hex_trace(0xa1)),
            &server.admin_token,
        )
        .await;
    assert_eq!(trace["trace"]["span_count"], 6);
    let (_, ready) = server.get_json("/readyz", "").await;
    assert_eq!(ready["buffered"], 0);

    // Every refused span is counted under its reason.
    let (_, ingestion) = server
        .get_json("/api/v1/ingestion", &server.admin_token)
        .await;
    let totals = &ingestion["totals"];
    assert_eq!(totals["received"], 6 + 3 + 3 + 9);
    assert_eq!(totals["accepted"], 6);
    assert_eq!(
        totals["rejected_reasons"],
        serde_json::json!({"overloaded": 6, "too_many_spans": 9})
    );
    server.stop().await;
}
