//! Clients that stall, hold memory, skip the token or flood a signal, against the real server:
//! none of them starves another project, gets a message buffered before its token is checked,
//! or passes the project's rate limit. Runs on both backends.

mod common;

use std::time::Duration;

use common::*;
use futures_util::StreamExt as _;
use opentelemetry_proto::tonic::logs::v1::LogRecord;
use prost::Message as _;
use serde_json::json;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// A guard against a hung test, never a measurement: what is awaited must come long before.
const GUARD: Duration = Duration::from_secs(60);

/// Starts sending a body that declares `declared` bytes and sends a few; returns the open
/// connection, which sends nothing more.
async fn stalled_upload(server: &TestServer, declared: usize) -> tokio::net::TcpStream {
    let mut stream = tokio::net::TcpStream::connect(server.running().http_addr)
        .await
        .unwrap();
    let head = format!(
        "POST /v1/traces HTTP/1.1\r\nhost: spanhouse\r\nauthorization: Bearer {}\r\n\
         content-type: application/x-protobuf\r\ncontent-length: {declared}\r\n\r\n",
        server.admin_token
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(&[0x0a; 16]).await.unwrap();
    stream.flush().await.unwrap();
    stream
}

/// The status line of the answer on a raw connection.
async fn status_line(stream: &mut tokio::net::TcpStream) -> String {
    let mut answer = vec![0u8; 4096];
    let read = tokio::time::timeout(GUARD, stream.read(&mut answer))
        .await
        .expect("an answer")
        .unwrap();
    String::from_utf8_lossy(&answer[..read])
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned()
}

/// A request of about `bytes` bytes: one span with a long attribute.
fn request_of(trace: u8, bytes: usize) -> Vec<u8> {
    let mut big = span(trace, 1, None, "big", recent(5));
    big.attributes = vec![string_attribute("payload", &"x".repeat(bytes))];
    request("svc", vec![big]).encode_to_vec()
}

#[tokio::test]
async fn a_stalled_body_gets_408_while_other_projects_are_served() {
    let server = TestServer::start_with(|config| {
        config.limits.max_inflight_bytes = 4 * 1024 * 1024;
        config.limits.body_read_timeout_ms = 10_000;
    })
    .await;
    let other = server.create_token("other", "ingest").await;
    server.wait_for_token(&other).await;

    // It declares 3 MiB, more than its project's share (half of 4 MiB), and stalls.
    let mut stalled = stalled_upload(&server, 3 * 1024 * 1024).await;
    // Another project's 1.5 MiB request is stored, the stalled one still pending...
    let response = server
        .client
        .post(server.url("/v1/traces"))
        .bearer_auth(&other)
        .header("content-type", "application/x-protobuf")
        .body(request_of(0x51, 1536 * 1024))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{:?}", response.text().await);
    let mut probe = [0u8; 1];
    assert!(
        matches!(stalled.try_read(&mut probe), Err(error) if error.kind() == std::io::ErrorKind::WouldBlock),
        "the stalled upload was answered before the other project's request"
    );
    // ...while the stalled project's next body finds its share held.
    let mut second = stalled_upload(&server, 1024 * 1024).await;
    assert!(status_line(&mut second).await.contains(" 503 "));

    // The stalled body gets 408 and its room is given back.
    assert!(status_line(&mut stalled).await.contains(" 408 "));
    let response = server
        .post_as_admin("/v1/traces", "application/x-protobuf")
        .body(request_of(0x52, 1024 * 1024))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    server.stop().await;
}

/// A gRPC frame header announcing a message of `length` bytes.
fn grpc_frame_header(length: u32) -> Vec<u8> {
    let mut header = vec![0u8];
    header.extend_from_slice(&length.to_be_bytes());
    header
}

#[tokio::test]
async fn a_grpc_call_without_a_token_is_refused_before_its_message_is_read() {
    let server = TestServer::start().await;
    let client = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    // A 100 MB message of which 1 MiB is sent; the rest never comes.
    let first: Vec<u8> = grpc_frame_header(100_000_000)
        .into_iter()
        .chain(std::iter::repeat_n(0u8, 1024 * 1024))
        .collect();
    let body = futures_util::stream::once(async move { Ok::<_, std::io::Error>(first) })
        .chain(futures_util::stream::pending());
    let call = client
        .post(format!(
            "{}/opentelemetry.proto.collector.trace.v1.TraceService/Export",
            server.grpc_url()
        ))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(reqwest::Body::wrap_stream(body))
        .send();
    let response = tokio::time::timeout(GUARD, call)
        .await
        .expect("answered while the message is still being sent")
        .unwrap();
    assert_eq!(response.headers()["grpc-status"], "16", "UNAUTHENTICATED");
    server.stop().await;
}

fn content_records(count: usize) -> Vec<u8> {
    let records = (0..count)
        .map(|index| LogRecord {
            time_unix_nano: recent(5),
            trace_id: vec![0x61; 16],
            span_id: vec![index as u8 + 1; 8],
            event_name: "gen_ai.user.message".into(),
            ..Default::default()
        })
        .collect();
    logs_request(records).encode_to_vec()
}

#[tokio::test]
async fn logs_and_metrics_obey_the_rate_limit() {
    let server = TestServer::start().await;
    let (status, _) = server
        .put_json(
            "/api/v1/project/settings",
            &server.admin_token,
            json!({"rate_limit": 0.01, "rate_limit_burst": 3}),
        )
        .await;
    assert_eq!(status, 200);
    let send = |path: &'static str, body: Vec<u8>| {
        server
            .post_as_admin(path, "application/x-protobuf")
            .body(body)
            .send()
    };
    assert_eq!(
        send("/v1/logs", content_records(3)).await.unwrap().status(),
        200
    );
    let refused = send("/v1/logs", content_records(3)).await.unwrap();
    assert_eq!(refused.status(), 429);
    assert!(refused.headers().contains_key("retry-after"));
    let metrics =
        opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest::default();
    assert_eq!(
        send("/v1/metrics", metrics.encode_to_vec())
            .await
            .unwrap()
            .status(),
        429,
        "the bucket is empty"
    );

    let (_, ingestion) = server
        .get_json("/api/v1/ingestion", &server.admin_token)
        .await;
    let totals = &ingestion["totals"];
    assert_eq!(totals["log_records"], 6, "{totals}");
    assert_eq!(totals["rate_limited"], 3, "{totals}");
    server.stop().await;
}

#[tokio::test]
async fn metrics_show_no_project_to_a_caller_without_a_token() {
    let server = TestServer::start().await;
    let other = server.create_token("other", "ingest").await;
    server.wait_for_token(&other).await;
    for (token, trace) in [(&server.admin_token, 0x71), (&other, 0x72)] {
        let response = server
            .client
            .post(server.url("/v1/traces"))
            .bearer_auth(token)
            .header("content-type", "application/x-protobuf")
            .body(request_of(trace, 10))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }

    let public = server.public_metrics_text().await;
    assert!(public.contains("spanhouse_ingest_queue_spans"), "{public}");
    assert!(!public.contains("project_id"), "{public}");

    // A read token sees its own project's series, and only those.
    let own = server.metrics_text().await;
    assert!(own.contains("project=\"default\""), "{own}");
    assert!(!own.contains("project=\"other\""), "{own}");
    // An ingest token may send, not read.
    let refused = server
        .client
        .get(server.url("/metrics"))
        .bearer_auth(&other)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);
    server.stop().await;
}

#[tokio::test]
async fn a_connection_that_never_finishes_its_headers_is_closed() {
    let server =
        TestServer::start_with(|config| config.limits.header_read_timeout_ms = 1_000).await;
    let mut silent = tokio::net::TcpStream::connect(server.running().http_addr)
        .await
        .unwrap();
    silent
        .write_all(b"POST /v1/traces HTTP/1.1\r\nhost: spanhouse\r\n")
        .await
        .unwrap();
    let mut answer = vec![0u8; 1024];
    let read = tokio::time::timeout(GUARD, silent.read(&mut answer))
        .await
        .expect("the server closes the connection");
    // Closed (or answered 408 and closed): either way, nothing more is held for it.
    match read {
        Ok(0) | Err(_) => {}
        Ok(read) => assert!(
            String::from_utf8_lossy(&answer[..read]).contains(" 408 "),
            "{:?}",
            String::from_utf8_lossy(&answer[..read])
        ),
    }
    let ready = server
        .client
        .get(server.url("/readyz"))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
    server.stop().await;
}
