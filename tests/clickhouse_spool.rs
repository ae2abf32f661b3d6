//! The spool in front of ClickHouse when things go wrong: ClickHouse unreachable while the
//! ingestion page is read, and a spool file that no longer decodes at start-up. Against a real
//! ClickHouse (scripts/clickhouse.sh), reached through a `Switch` that a test can cut.

mod common;

use std::path::{Path, PathBuf};

use common::switch::Switch;
use common::*;

/// A server on a fresh database, reaching ClickHouse through `switch`.
async fn start_behind(switch: &Switch) -> TestServer {
    let url = switch.url();
    TestServer::start_with(|config| {
        use_clickhouse(config, &fresh_database());
        config.clickhouse.url = url;
    })
    .await
}

fn spans_of(trace: u8, count: u8) -> Vec<opentelemetry_proto::tonic::trace::v1::Span> {
    (1..=count)
        .map(|id| span(trace, id, None, "while-down", recent(5)))
        .collect()
}

/// The spool's files, oldest first.
fn spool_files(data_dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(data_dir.join("spool"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| {
            path.extension()
                .is_some_and(|extension| extension == "spool")
        })
        .collect();
    files.sort();
    files
}

/// While ClickHouse is unreachable, `GET /api/v1/ingestion` answers from what the server holds
/// itself: `buffered` from the spool, the counts it has not saved yet, and a warning that the
/// stored ones could not be read. Once ClickHouse is back, the counts are complete again.
#[tokio::test]
async fn the_ingestion_page_answers_during_a_clickhouse_outage() {
    if !clickhouse_available().await {
        return;
    }
    let switch = Switch::start().await;
    let server = start_behind(&switch).await;
    let admin = server.admin_token.clone();

    switch.set(false);
    for trace in 1..=4u8 {
        let response = server
            .post_protobuf("/v1/traces", &admin, &request("svc", spans_of(trace, 25)))
            .await;
        assert_eq!(response.status(), 200, "acknowledged from the spool");
    }
    let (status, ingestion) = server.get_json("/api/v1/ingestion", &admin).await;
    assert_eq!(status, 200, "{ingestion}");
    assert_eq!(ingestion["buffered"], 100, "{ingestion}");
    assert_eq!(ingestion["counts_complete"], false, "{ingestion}");
    assert!(
        ingestion["warning"]
            .as_str()
            .is_some_and(|warning| warning.contains("could not be read")),
        "{ingestion}"
    );
    assert_eq!(
        ingestion["totals"]["accepted"], 100,
        "the counts this server holds"
    );

    switch.set(true);
    server.settle(&admin).await;
    let (status, ingestion) = server.get_json("/api/v1/ingestion", &admin).await;
    assert_eq!(status, 200);
    assert_eq!(ingestion["buffered"], 0);
    assert_eq!(ingestion["counts_complete"], true, "{ingestion}");
    assert!(ingestion.get("warning").is_none(), "{ingestion}");
    assert_eq!(ingestion["totals"]["accepted"], 100);
    server.stop().await;
}

/// A spool file that does not decode (truncated, or garbage) no longer stops the server from
/// starting: it is moved into `spool/corrupt/` with its bytes, counted on `/readyz`, and the
/// other files are delivered.
#[tokio::test]
async fn a_corrupt_spool_file_is_set_aside_and_the_others_delivered() {
    if !clickhouse_available().await {
        return;
    }
    let switch = Switch::start().await;
    let server = start_behind(&switch).await;
    let admin = server.admin_token.clone();

    // Two files spooled while ClickHouse is away, one per request; the server stops with them
    // undelivered (after waiting its 10 s for ClickHouse).
    switch.set(false);
    for trace in [1u8, 2] {
        let response = server
            .post_protobuf("/v1/traces", &admin, &request("svc", spans_of(trace, 3)))
            .await;
        assert_eq!(response.status(), 200);
    }
    let mut truncated = Vec::new();
    let server = server
        .restart_after(|data_dir| {
            let files = spool_files(data_dir);
            assert_eq!(files.len(), 2, "one file per request: {files:?}");
            // A crash that cut trace 1's file short, and a file that was never a spool file.
            let mut bytes = std::fs::read(&files[0]).unwrap();
            bytes.truncate(bytes.len() - 10);
            std::fs::write(&files[0], &bytes).unwrap();
            truncated = bytes;
            std::fs::write(
                data_dir.join("spool/00000000000000000099.spool"),
                b"not a spool file",
            )
            .unwrap();
            switch.set(true);
        })
        .await;

    let (status, ready) = server.get_json("/readyz", "").await;
    assert_eq!(status, 200, "{ready}");
    assert_eq!(ready["corrupt_spool_files"], 2, "{ready}");
    let corrupt = server.data_dir.path().join("spool/corrupt");
    let set_aside: Vec<String> = std::fs::read_dir(&corrupt)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(set_aside.len(), 2, "{set_aside:?}");
    let truncated_name = set_aside
        .iter()
        .find(|file| **file != "00000000000000000099.spool")
        .unwrap();
    assert_eq!(
        std::fs::read(corrupt.join(truncated_name)).unwrap(),
        truncated,
        "kept as it was, for an operator"
    );

    let (status, trace) = server
        .get_json(&format!("/api/v1/traces/{}", hex_trace(2)), &admin)
        .await;
    assert_eq!(status, 200, "the other file was delivered");
    assert_eq!(trace["trace"]["span_count"], 3);
    let (status, _) = server
        .get_json(&format!("/api/v1/traces/{}", hex_trace(1)), &admin)
        .await;
    assert_eq!(status, 404, "the truncated file was not delivered");
    assert!(spool_files(server.data_dir.path()).is_empty());
    server.stop().await;
}
