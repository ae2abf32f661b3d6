//! The end of the data's life (SPEC §9) against the real server, on both backends: deletion by
//! id and by filter (an erasure request), admin only; afterwards the traces are absent from
//! every read, and after the purge their texts are in no file of the data directory (the
//! embedded store); retention deletes old traces within 60 s of being set and filters old spans
//! as they arrive.

mod common;

use std::time::{Duration, Instant};

use common::*;
use opentelemetry_proto::tonic::trace::v1::span::Event;
use serde_json::{Value, json};
use spanhouse::config::{Config, GlobalArgs};
use spanhouse::model::time::format_rfc3339;

const DAY_SECONDS: u64 = 86_400;

/// A trace of one LLM span whose attributes, event, messages, input and output hold `marker`.
fn marked_trace(
    trace: u8,
    user: &str,
    marker: &str,
    start: u64,
) -> Vec<opentelemetry_proto::tonic::trace::v1::Span> {
    let mut root = span(trace, 1, None, "chat", start);
    root.attributes = vec![
        string_attribute("openinference.span.kind", "LLM"),
        string_attribute("user.id", user),
        string_attribute("note", marker),
        string_attribute("input.value", &format!("please answer {marker}-input")),
        string_attribute("output.value", &format!("the answer {marker}-output")),
        string_attribute("llm.model_name", "gpt-4o"),
        string_attribute("llm.input_messages.0.message.role", "user"),
        string_attribute(
            "llm.input_messages.0.message.content",
            &format!("message {marker}-prompt"),
        ),
        string_attribute("llm.output_messages.0.message.role", "assistant"),
        string_attribute(
            "llm.output_messages.0.message.content",
            &format!("message {marker}-completion"),
        ),
    ];
    root.events = vec![Event {
        time_unix_nano: start + 1_000,
        name: "thinking".into(),
        attributes: vec![string_attribute("detail", &format!("{marker}-event"))],
        ..Default::default()
    }];
    let mut child = span(trace, 2, Some(1), "tool", start + 10_000_000);
    child.attributes = vec![
        string_attribute("tool.name", "search"),
        string_attribute("note", marker),
    ];
    vec![root, child]
}

async fn send(
    server: &TestServer,
    token: &str,
    spans: Vec<opentelemetry_proto::tonic::trace::v1::Span>,
) {
    let response = server
        .post_protobuf("/v1/traces", token, &request("svc", spans))
        .await;
    assert_eq!(response.status(), 200);
    server.settle(token).await;
}

async fn get_with_query(
    server: &TestServer,
    path: &str,
    token: &str,
    query: &[(&str, &str)],
) -> (u16, Value) {
    server.settle(token).await;
    let parameters: Vec<String> = query
        .iter()
        .map(|(name, value)| format!("{name}={}", url_encoded(value)))
        .collect();
    let url = format!("{}?{}", server.url(path), parameters.join("&"));
    send_json(server.client.get(url).bearer_auth(token), None).await
}

async fn delete_by_id(server: &TestServer, token: &str, trace: &str) -> u16 {
    server
        .client
        .delete(server.url(&format!("/api/v1/traces/{trace}")))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// The ids of the traces the project lists in the window (the last `days_back` days).
async fn listed(
    server: &TestServer,
    token: &str,
    days_back: u64,
    extra: &[(&str, &str)],
) -> Vec<String> {
    let start = format_rfc3339(recent(days_back * DAY_SECONDS));
    let mut query = vec![("start", start.as_str()), ("limit", "1000")];
    query.extend_from_slice(extra);
    let (status, body) = get_with_query(server, "/api/v1/traces", token, &query).await;
    assert_eq!(status, 200, "{body}");
    let mut ids: Vec<String> = body["traces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|trace| trace["trace_id"].as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    ids
}

async fn stats_traces(server: &TestServer, token: &str) -> u64 {
    let (status, body) = get_with_query(server, "/api/v1/stats", token, &[]).await;
    assert_eq!(status, 200, "{body}");
    body["totals"]["traces"].as_u64().unwrap()
}

async fn spans_with_note(server: &TestServer, token: &str, marker: &str) -> usize {
    let filter = format!(r#"attributes["note"] == "{marker}""#);
    let (status, body) = get_with_query(
        server,
        "/api/v1/spans",
        token,
        &[("filter", filter.as_str())],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body["spans"].as_array().unwrap().len()
}

#[tokio::test]
async fn deleted_traces_leave_every_read_and_after_the_purge_the_disk() {
    let server = TestServer::start().await;
    let admin = server.admin_token.clone();
    let read = server.create_token("default", "read").await;
    let ingest = server.create_token("default", "ingest").await;
    server.wait_for_token(&read).await;
    let by_id = "qzmarkerbyid";
    let erased = "qzmarkererased";
    send(&server, &admin, marked_trace(1, "u-17", by_id, recent(120))).await;
    send(
        &server,
        &admin,
        marked_trace(2, "u-17", erased, recent(110)),
    )
    .await;
    send(
        &server,
        &admin,
        marked_trace(3, "u-3", "keptmarker", recent(100)),
    )
    .await;
    send(
        &server,
        &admin,
        marked_trace(4, "u-4", "keptmarkertoo", recent(90)),
    )
    .await;
    let (status, body) = server
        .post_json(
            "/api/v1/scores",
            &admin,
            json!({"trace_id": hex_trace(2), "name": "quality", "value": 0.5,
                   "comment": "qzmarkerscorecomment"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let all = [1u8, 2, 3, 4].map(hex_trace).to_vec();
    assert_eq!(listed(&server, &admin, 1, &[]).await, all);
    assert_eq!(
        listed(&server, &admin, 1, &[("q", "qzmarkerbyid-input")]).await,
        [hex_trace(1)]
    );
    assert_eq!(stats_traces(&server, &admin).await, 4);
    assert_eq!(spans_with_note(&server, &admin, by_id).await, 2);
    let markers = [by_id, erased, "qzmarkerscorecomment"];
    if !on_clickhouse() {
        // The check below can see the texts: they are on disk now.
        assert!(!files::files_holding(server.data_dir.path(), &markers).is_empty());
    }

    // Only an admin deletes.
    for token in [&read, &ingest] {
        assert_eq!(delete_by_id(&server, token, &hex_trace(1)).await, 403);
        let (status, _) = server
            .post_json("/api/v1/traces/delete", token, json!({"filter": "true"}))
            .await;
        assert_eq!(status, 403);
    }

    // By id: 204, then gone from every read.
    assert_eq!(delete_by_id(&server, &admin, &hex_trace(1)).await, 204);
    assert_eq!(delete_by_id(&server, &admin, &hex_trace(1)).await, 404);
    assert_eq!(delete_by_id(&server, &admin, &hex_trace(0x77)).await, 404);
    assert_eq!(delete_by_id(&server, &admin, "not-hex").await, 400);
    let (status, _) = server
        .get_json(&format!("/api/v1/traces/{}", hex_trace(1)), &read)
        .await;
    assert_eq!(status, 404);
    assert_eq!(
        listed(&server, &read, 1, &[]).await,
        [2u8, 3, 4].map(hex_trace)
    );
    assert!(
        listed(&server, &read, 1, &[("q", "qzmarkerbyid")])
            .await
            .is_empty()
    );
    assert!(
        listed(&server, &read, 1, &[("filter", r#"model == "gpt-4o""#)])
            .await
            .len()
            == 3
    );
    assert_eq!(stats_traces(&server, &read).await, 3);
    assert_eq!(spans_with_note(&server, &read, by_id).await, 0);

    // Refused requests delete nothing.
    for (body, what) in [
        (json!({}), "filter"),
        (json!({"filter": "   "}), "filter"),
        (json!({"filter": "user_id =="}), "filter"),
        (json!({"filter": "true", "start": "last week"}), "start"),
    ] {
        let (status, answer) = server
            .post_json("/api/v1/traces/delete", &admin, body.clone())
            .await;
        assert_eq!(status, 400, "{body}: {answer}");
        assert_eq!(answer["error"]["status"], 400, "{answer}");
        assert!(
            answer["error"]["message"].as_str().unwrap().contains(what),
            "{answer}"
        );
    }

    // An erasure request: exactly that user's traces go, whatever their time.
    let (status, answer) = server
        .post_json(
            "/api/v1/traces/delete",
            &admin,
            json!({"filter": r#"user_id == "u-17""#}),
        )
        .await;
    assert_eq!((status, answer), (200, json!({"deleted": 1})));
    assert_eq!(
        listed(&server, &read, 1, &[]).await,
        [3u8, 4].map(hex_trace)
    );
    let (status, _) = server
        .get_json(&format!("/api/v1/traces/{}", hex_trace(2)), &read)
        .await;
    assert_eq!(status, 404);
    assert!(
        listed(&server, &read, 1, &[("q", "qzmarkererased")])
            .await
            .is_empty()
    );
    assert_eq!(stats_traces(&server, &read).await, 2);
    let (status, scores) = server
        .get_json(&format!("/api/v1/traces/{}", hex_trace(3)), &read)
        .await;
    assert_eq!(status, 200, "{scores}");

    // A window that holds none of them deletes nothing.
    let (status, answer) = server
        .post_json(
            "/api/v1/traces/delete",
            &admin,
            json!({"filter": "true", "start": "2001-01-01T00:00:00Z", "end": "2001-01-02T00:00:00Z"}),
        )
        .await;
    assert_eq!((status, answer), (200, json!({"deleted": 0})));

    // A span of a deleted trace that arrives later makes a new trace.
    send(&server, &admin, vec![span(1, 9, None, "late", recent(30))]).await;
    let (status, late) = server
        .get_json(&format!("/api/v1/traces/{}", hex_trace(1)), &read)
        .await;
    assert_eq!(status, 200, "{late}");
    assert_eq!(late["spans"].as_array().unwrap().len(), 1, "{late}");

    if on_clickhouse() {
        // What ClickHouse keeps is checked by the store's own tests (mutations, parts).
        server.stop().await;
        return;
    }
    // The server purges soon after a deletion: every file of the data directory, the text
    // index and the WALs included, stops holding the deleted texts.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let found = files::files_holding(server.data_dir.path(), &markers);
        if found.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "after 60 s: {found:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The traces kept are whole, before and after a restart.
    let data_dir = server.data_dir.path().to_owned();
    let server = server.restart().await;
    assert!(files::files_holding(&data_dir, &markers).is_empty());
    assert!(!files::files_holding(&data_dir, &["keptmarkertoo"]).is_empty());
    assert_eq!(
        listed(&server, &read, 1, &[("q", "keptmarker-input")]).await,
        [hex_trace(3)]
    );
    assert_eq!(spans_with_note(&server, &read, "keptmarkertoo").await, 2);
    server.stop().await;
}

async fn filtered_by_retention(server: &TestServer) -> u64 {
    let (status, body) = server
        .get_json("/api/v1/ingestion", &server.admin_token)
        .await;
    assert_eq!(status, 200, "{body}");
    body["totals"]["filtered_rules"]["retention"]
        .as_u64()
        .unwrap_or(0)
}

#[tokio::test]
async fn retention_deletes_old_traces_within_a_minute_and_filters_old_spans() {
    let server = TestServer::start().await;
    let admin = server.admin_token.clone();
    send(
        &server,
        &admin,
        marked_trace(0x40, "u", "oldtrace", recent(40 * DAY_SECONDS)),
    )
    .await;
    send(
        &server,
        &admin,
        marked_trace(0x01, "u", "newtrace", recent(DAY_SECONDS)),
    )
    .await;
    assert_eq!(
        listed(&server, &admin, 50, &[]).await,
        [0x01u8, 0x40].map(hex_trace)
    );

    let (status, answer) = server
        .put_json(
            "/api/v1/project/settings",
            &admin,
            json!({"retention_days": 0}),
        )
        .await;
    assert_eq!(status, 400, "{answer}");
    let (status, answer) = server
        .put_json(
            "/api/v1/project/settings",
            &admin,
            json!({"retention_days": 30}),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["retention_days"], 30);
    let set_at = Instant::now();
    loop {
        if listed(&server, &admin, 50, &[]).await == [hex_trace(0x01)] {
            break;
        }
        assert!(
            set_at.elapsed() < Duration::from_secs(60),
            "the old trace is still listed"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let (status, _) = server
        .get_json(&format!("/api/v1/traces/{}", hex_trace(0x40)), &admin)
        .await;
    assert_eq!(status, 404);
    let (status, _) = server
        .get_json(&format!("/api/v1/traces/{}", hex_trace(0x01)), &admin)
        .await;
    assert_eq!(status, 200);

    // A span older than the retention is acknowledged, filtered and counted under `retention`.
    send(
        &server,
        &admin,
        vec![span(0x41, 1, None, "late", recent(40 * DAY_SECONDS))],
    )
    .await;
    assert_eq!(filtered_by_retention(&server).await, 1);
    let (status, _) = server
        .get_json(&format!("/api/v1/traces/{}", hex_trace(0x41)), &admin)
        .await;
    assert_eq!(status, 404);
    let (_, settings) = server.get_json("/api/v1/project/settings", &admin).await;
    assert_eq!(settings["retention_days"], 30);
    server.stop().await;
}

#[tokio::test]
async fn the_servers_default_retention_applies_to_projects_without_their_own() {
    let server = TestServer::start_with(|config| config.retention_days = Some(30)).await;
    let admin = server.admin_token.clone();
    send(
        &server,
        &admin,
        vec![span(0x50, 1, None, "old", recent(31 * DAY_SECONDS))],
    )
    .await;
    send(
        &server,
        &admin,
        vec![span(0x51, 1, None, "new", recent(29 * DAY_SECONDS))],
    )
    .await;
    assert_eq!(filtered_by_retention(&server).await, 1);
    assert_eq!(listed(&server, &admin, 50, &[]).await, [hex_trace(0x51)]);
    // The project's own setting wins over the default.
    let (status, _) = server
        .put_json(
            "/api/v1/project/settings",
            &admin,
            json!({"retention_days": 60}),
        )
        .await;
    assert_eq!(status, 200);
    send(
        &server,
        &admin,
        vec![span(0x52, 1, None, "old", recent(31 * DAY_SECONDS))],
    )
    .await;
    assert_eq!(filtered_by_retention(&server).await, 1);
    assert_eq!(
        listed(&server, &admin, 50, &[]).await,
        [0x51u8, 0x52].map(hex_trace)
    );
    server.stop().await;
}

#[tokio::test]
async fn the_cli_sets_and_clears_a_projects_retention() {
    let server = TestServer::start().await;
    let output = process::project_configure(&server.store_env(), &["--retention-days", "30"]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let printed: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(printed["retention_days"], 30);
    let (_, settings) = server
        .get_json("/api/v1/project/settings", &server.admin_token)
        .await;
    assert_eq!(settings["retention_days"], 30);

    let refused = process::project_configure(&server.store_env(), &["--retention-days", "0"]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("retention_days"));

    let output = process::project_configure(&server.store_env(), &["--no-retention"]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let printed: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(printed["retention_days"], Value::Null);
    server.stop().await;
}

/// The server default: `--retention-days`, `SPANHOUSE_RETENTION_DAYS` (through the flag's
/// parser) or `retention_days` in the file, 1 to 36500.
#[test]
fn retention_days_comes_from_the_flag_or_the_file_and_is_checked() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("spanhouse.toml");
    std::fs::write(&path, "retention_days = 30\n").unwrap();
    let from_file = GlobalArgs {
        config: Some(path.clone()),
        ..GlobalArgs::default()
    };
    assert_eq!(
        Config::resolve(&from_file).unwrap().retention_days,
        Some(30)
    );
    let from_flag = GlobalArgs {
        config: Some(path),
        retention_days: Some(7),
        ..GlobalArgs::default()
    };
    assert_eq!(Config::resolve(&from_flag).unwrap().retention_days, Some(7));
    assert_eq!(
        Config::resolve(&GlobalArgs::default())
            .unwrap()
            .retention_days,
        None
    );
    let zero = GlobalArgs {
        retention_days: Some(0),
        ..GlobalArgs::default()
    };
    let error = Config::resolve(&zero).unwrap_err().to_string();
    assert!(error.contains("retention_days"), "{error}");
}
