//! Malformed and overflowing query parameters against the real server: each is a 400 that names
//! the parameter, never a 500 or a dropped connection, and the server stays ready afterwards.
//! Runs on both backends.

mod common;

use common::*;

/// Sends a GET with the admin token; a dropped connection (a panicking handler) fails here.
async fn get(server: &TestServer, path: &str) -> (u16, serde_json::Value) {
    let response = server
        .client
        .get(server.url(path))
        .bearer_auth(&server.admin_token)
        .send()
        .await
        .unwrap_or_else(|error| panic!("{path}: no answer ({error})"));
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or_default())
}

/// Asserts the answer is a 400 whose message names `parameter`.
async fn assert_refused(server: &TestServer, path: &str, parameter: &str) {
    let (status, body) = get(server, path).await;
    assert_eq!(status, 400, "{path}: {body}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains(parameter),
        "{path}: {message:?} names no {parameter}"
    );
}

async fn assert_ready_and_answering(server: &TestServer) {
    let ready = server.client.get(server.url("/readyz")).send().await;
    assert_eq!(
        ready.map(|response| response.status().as_u16()).ok(),
        Some(200)
    );
    for path in ["/api/v1/stats", "/api/v1/ingestion", "/api/v1/traces"] {
        let (status, body) = get(server, path).await;
        assert_eq!(status, 200, "{path}: {body}");
    }
}

#[tokio::test]
async fn a_bucket_that_panicked_or_overflowed_is_a_400() {
    let server = TestServer::start().await;
    for endpoint in ["/api/v1/stats", "/api/v1/ingestion"] {
        for bucket in [
            // A multi-byte last character: split at the last byte panicked.
            "5%C3%A9",
            "%C3%A9",
            // Overflowed nanoseconds to a zero width, then divided by it.
            "2161727821137838080s",
            "18446744073709551615d",
            "367d",
        ] {
            assert_refused(&server, &format!("{endpoint}?bucket={bucket}"), "bucket").await;
        }
    }
    assert_ready_and_answering(&server).await;
    server.stop().await;
}

#[tokio::test]
async fn malformed_parameters_are_400_never_500() {
    let server = TestServer::start().await;
    let day_before = "2024-05-01T00:00:00Z";
    let day_after = "2024-05-02T00:00:00Z";
    let cases = [
        ("/api/v1/traces?start=garbage".to_owned(), "start"),
        ("/api/v1/traces?end=1714564800".to_owned(), "end"),
        ("/api/v1/traces?limit=-1".to_owned(), "limit"),
        (
            "/api/v1/traces?limit=99999999999999999999".to_owned(),
            "limit",
        ),
        ("/api/v1/traces?cursor=garbage".to_owned(), "cursor"),
        ("/api/v1/traces?status=fine".to_owned(), "status"),
        (
            format!("/api/v1/traces?start={day_after}&end={day_before}"),
            "start",
        ),
        // Past what the stores hold: i64 nanoseconds end on 2262-04-11.
        ("/api/v1/traces?end=9999-12-31T23:59:59Z".to_owned(), "end"),
        ("/api/v1/stats?start=garbage".to_owned(), "start"),
        (
            format!("/api/v1/stats?start={day_after}&end={day_before}"),
            "start",
        ),
        ("/api/v1/stats?end=2262-04-12T00:00:00Z".to_owned(), "end"),
        (
            "/api/v1/stats?start=2023-01-01T00:00:00Z&end=2024-06-01T00:00:00Z&bucket=1d"
                .to_owned(),
            "window",
        ),
        (
            "/api/v1/stats?start=2024-01-01T00:00:00Z&end=2024-05-01T00:00:00Z&bucket=1m"
                .to_owned(),
            "bucket",
        ),
        ("/api/v1/ingestion?start=garbage".to_owned(), "start"),
        (
            format!("/api/v1/ingestion?start={day_after}&end={day_before}"),
            "start",
        ),
        (
            "/api/v1/ingestion?end=2300-01-01T00:00:00Z".to_owned(),
            "end",
        ),
    ];
    for (path, parameter) in &cases {
        assert_refused(&server, path, parameter).await;
    }
    assert_ready_and_answering(&server).await;
    server.stop().await;
}

#[tokio::test]
async fn the_last_day_the_stores_hold_is_answered() {
    let server = TestServer::start().await;
    let last_day = "start=2262-04-10T00:00:00Z&end=2262-04-11T23:47:16Z";
    for path in [
        format!("/api/v1/stats?{last_day}&bucket=1d"),
        format!("/api/v1/stats?{last_day}&bucket=366d"),
        format!("/api/v1/ingestion?{last_day}&bucket=1d"),
        format!("/api/v1/traces?{last_day}&limit=1000"),
    ] {
        let (status, body) = get(&server, &path).await;
        assert_eq!(status, 200, "{path}: {body}");
    }
    server.stop().await;
}
