//! What only the ClickHouse backend does: several servers sharing one ClickHouse, and the local
//! spool that keeps acknowledged spans while ClickHouse is down. Against a real ClickHouse
//! (scripts/clickhouse.sh starts Debian's); in CI these tests fail if it is missing, elsewhere
//! they say so and skip.

mod common;

use std::time::Duration;

use common::node::{Node, drop_database};
use common::switch::Switch;
use common::*;
use prost::Message as _;
use spanhouse::config::Config;

#[tokio::test]
async fn several_nodes_share_tokens_settings_and_traces() {
    if !clickhouse_available().await {
        return;
    }
    let database = fresh_database();
    let first = Node::start(&database, |_| {}).await;
    let second = Node::start(&database, |_| {}).await;
    let admin = first
        .server
        .bootstrap_token
        .clone()
        .expect("the first node bootstraps");
    assert!(
        second.server.bootstrap_token.is_none(),
        "the second finds the project"
    );

    // A token created through the first node's store works on the second within 5 s.
    let config = {
        let mut config = Config::for_data_dir(tempfile::tempdir().unwrap().path());
        use_clickhouse(&mut config, &database);
        config
    };
    let store = spanhouse::server::open_store(&config, spanhouse::server::StoreUser::Command)
        .await
        .unwrap();
    let project = store.find_project("default").await.unwrap().unwrap();
    let ingest = spanhouse::auth::generate_token_secret();
    store
        .create_token(spanhouse::store::NewToken {
            id: spanhouse::auth::generate_token_id(),
            project_id: project.id.clone(),
            role: spanhouse::auth::Role::Ingest,
            name: None,
            secret_hash: spanhouse::auth::hash_token(&ingest),
        })
        .await
        .unwrap();
    let mut status = 0;
    for _ in 0..50 {
        status = second.post_spans(&ingest, vec![]).await.status().as_u16();
        if status == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        status, 200,
        "the second node honours a new token within 5 s"
    );

    // One trace, its spans sent to different nodes, is one TraceRecord on either.
    let mut root = span(0xe1, 1, None, "root", recent(10));
    root.attributes = vec![string_attribute("input.value", "question")];
    let mut child = span(0xe1, 2, Some(1), "child", recent(10) + 10);
    child.attributes = vec![string_attribute("output.value", "answer")];
    assert_eq!(second.post_spans(&ingest, vec![child]).await.status(), 200);
    assert_eq!(first.post_spans(&ingest, vec![root]).await.status(), 200);
    first.drained().await;
    second.drained().await;
    for node in [&first, &second] {
        let (status, trace) = node
            .get_as(&admin, &format!("/api/v1/traces/{}", hex_trace(0xe1)))
            .await;
        assert_eq!(status, 200);
        assert_eq!(trace["trace"]["span_count"], 2);
        assert_eq!(trace["trace"]["input"], "question");
        assert_eq!(trace["trace"]["output"], "answer");
    }
    // The list and the dashboard, read from the read model the two nodes keep, are the same
    // from both, and count the split trace once, whole.
    let (_, list) = first.get_as(&admin, "/api/v1/traces").await;
    let (_, stats) = first.get_as(&admin, "/api/v1/stats").await;
    let listed = list["traces"].as_array().unwrap();
    let split: Vec<_> = listed
        .iter()
        .filter(|record| record["trace_id"] == hex_trace(0xe1))
        .collect();
    assert_eq!(split.len(), 1, "{list}");
    assert_eq!(split[0]["span_count"], 2);
    assert_eq!(stats["totals"]["traces"], listed.len(), "{stats}");
    assert_eq!(second.get_as(&admin, "/api/v1/traces").await.1, list);
    assert_eq!(second.get_as(&admin, "/api/v1/stats").await.1, stats);

    // Settings saved through one node are applied by the other within 5 s.
    let response = reqwest::Client::new()
        .put(first.url("/api/v1/project/settings"))
        .bearer_auth(&admin)
        .json(&serde_json::json!({"filters": ["name == \"noise\""]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let mut filtered = false;
    for attempt in 0..50u8 {
        second
            .post_spans(
                &ingest,
                vec![span(0xf0 ^ attempt, 1, None, "noise", recent(5))],
            )
            .await;
        let (_, ingestion) = second.get_as(&admin, "/api/v1/ingestion").await;
        if ingestion["totals"]["filtered"].as_u64().unwrap_or(0) > 0 {
            filtered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(filtered, "the second node applies the filter within 5 s");
    first.server.shutdown().await.unwrap();
    second.server.shutdown().await.unwrap();
    drop_database(&database).await;
}

#[tokio::test]
async fn the_spool_keeps_acknowledged_spans_while_clickhouse_is_down() {
    if !clickhouse_available().await {
        return;
    }
    let database = fresh_database();
    let switch = Switch::start().await;
    let data_dir = tempfile::tempdir().unwrap();
    let configure = |config: &mut Config| {
        use_clickhouse(config, &database);
        config.clickhouse.url = switch.url();
        config.clickhouse.spool_max_bytes = 64 * 1024;
    };
    let mut config = Config::for_data_dir(data_dir.path());
    configure(&mut config);
    let node = Node::with_config(&config).await;
    let admin = node.server.bootstrap_token.clone().unwrap();

    switch.set(false);
    for trace in 1..=3u8 {
        let spans = (1..=3)
            .map(|id| span(trace, id, None, "while-down", recent(5)))
            .collect();
        assert_eq!(
            node.post_spans(&admin, spans).await.status(),
            200,
            "acknowledged while down"
        );
    }
    let (status, ready) = node.get_as("", "/readyz").await;
    assert_eq!(status, 503, "not ready while ClickHouse is down");
    assert_eq!(ready["buffered"], 9);

    // A full spool answers 503 with Retry-After rather than growing.
    let mut acknowledged = vec![(1u8, 3u64), (2, 3), (3, 3)];
    let mut refused = None;
    for trace in 10..60u8 {
        let spans = (1..=20)
            .map(|id| span(trace, id, None, "flood", recent(5)))
            .collect();
        let response = node.post_spans(&admin, spans).await;
        if response.status() == 503 {
            refused = Some(response);
            break;
        }
        assert_eq!(response.status(), 200);
        acknowledged.push((trace, 20));
    }
    let refused = refused.expect("the spool filled up");
    assert_eq!(refused.headers()["retry-after"], "1");

    // Stop while ClickHouse is down; start again on the same data dir once it is back: every
    // acknowledged span is delivered from the spool, once.
    node.server.shutdown().await.unwrap();
    switch.set(true);
    let restarted = Node::with_config(&config).await;
    restarted.drained().await;
    for (trace, spans) in acknowledged {
        let (status, body) = restarted
            .get_as(&admin, &format!("/api/v1/traces/{}", hex_trace(trace)))
            .await;
        assert_eq!(status, 200, "trace {trace} lost");
        assert_eq!(body["trace"]["span_count"], spans, "trace {trace}");
        assert_eq!(body["spans"].as_array().unwrap().len() as u64, spans);
    }
    restarted.server.shutdown().await.unwrap();
    drop(data_dir);
    drop_database(&database).await;
}

/// The `buffered` count `/readyz` reports (also while it answers 503).
async fn buffered(http: std::net::SocketAddr) -> u64 {
    let response = reqwest::get(format!("http://{http}/readyz")).await.unwrap();
    let body: serde_json::Value = response.json().await.unwrap();
    body["buffered"].as_u64().unwrap()
}

async fn wait_until_drained(http: std::net::SocketAddr) {
    for _ in 0..1000 {
        if buffered(http).await == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the spool did not drain");
}

/// Every trace of `expected` holds exactly its number of spans: none lost, none doubled.
async fn assert_traces(http: std::net::SocketAddr, token: &str, expected: &[(u8, u64)]) {
    for &(trace, spans) in expected {
        let response = reqwest::Client::new()
            .get(format!("http://{http}/api/v1/traces/{}", hex_trace(trace)))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "trace {trace} lost");
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["trace"]["span_count"], spans, "trace {trace}");
        assert_eq!(
            body["spans"].as_array().unwrap().len() as u64,
            spans,
            "trace {trace}"
        );
    }
}

fn copy_files(from: &std::path::Path, to: &std::path::Path) -> usize {
    std::fs::create_dir_all(to).unwrap();
    let mut copied = 0;
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_file() {
            std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
            copied += 1;
        }
    }
    copied
}

// Multi-threaded: starting the child blocks a thread while the child provisions ClickHouse
// through the switch, which runs on this runtime.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_with_a_full_spool_loses_nothing_and_doubles_nothing() {
    use common::process::{Served, bootstrap_token};
    if !clickhouse_available().await {
        return;
    }
    let database = fresh_database();
    let switch = Switch::start().await;
    let data_dir = tempfile::tempdir().unwrap();
    let dir = data_dir.path();
    let through_switch = switch.url();
    let direct = clickhouse_url();
    let serve = |url: &str| {
        Served::start(
            dir,
            &[
                ("SPANHOUSE_STORAGE", "clickhouse"),
                ("SPANHOUSE_CLICKHOUSE_URL", url),
                ("SPANHOUSE_CLICKHOUSE_DATABASE", &database),
            ],
        )
    };

    // Provisioned and bootstrapped through the switch, then ClickHouse goes away: every
    // request is acknowledged from the spool alone.
    let served = serve(&through_switch);
    let admin = bootstrap_token(dir);
    switch.set(false);
    let client = reqwest::Client::new();
    let mut expected = Vec::new();
    for trace in 1..=5u8 {
        let spans = (1..=10)
            .map(|id| span(trace, id, None, "crash", recent(5)))
            .collect();
        let response = client
            .post(format!("http://{}/v1/traces", served.http))
            .bearer_auth(&admin)
            .header("content-type", "application/x-protobuf")
            .body(request("svc", spans).encode_to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.status(),
            200,
            "acknowledged while ClickHouse is down"
        );
        expected.push((trace, 10u64));
    }
    assert_eq!(buffered(served.http).await, 50);
    served.kill_9();

    // What the spool held at the crash, to deliver a second time below: the same as a crash
    // between ClickHouse's insert and the removal of the spool file.
    let spool = dir.join("spool");
    let saved = tempfile::tempdir().unwrap();
    assert!(
        copy_files(&spool, saved.path()) > 0,
        "the spool was not empty"
    );

    let served = serve(&direct);
    wait_until_drained(served.http).await;
    assert_traces(served.http, &admin, &expected).await;
    served.kill_9();

    assert!(copy_files(saved.path(), &spool) > 0);
    let served = serve(&direct);
    wait_until_drained(served.http).await;
    assert_eq!(
        std::fs::read_dir(&spool).unwrap().count(),
        0,
        "the old spool was delivered again, and its files removed"
    );
    assert_traces(served.http, &admin, &expected).await;
    served.kill_9();
    drop_database(&database).await;
}

/// A spool file of the first format (JSON lines, left by a server before an upgrade) is
/// delivered by the upgraded server, once.
#[tokio::test]
async fn a_spool_file_of_the_first_format_is_delivered_after_an_upgrade() {
    use spanhouse::store::clickhouse::queries::span_by_id;
    use spanhouse::store::clickhouse::rows::SpanRow;
    use spanhouse::store::clickhouse::spool::LegacyEntry;
    if !clickhouse_available().await {
        return;
    }
    let database = fresh_database();
    let data_dir = tempfile::tempdir().unwrap();
    let mut config = Config::for_data_dir(data_dir.path());
    use_clickhouse(&mut config, &database);
    let node = Node::with_config(&config).await;
    let admin = node.server.bootstrap_token.clone().unwrap();
    let spans = vec![span(1, 1, None, "stored", recent(5))];
    assert_eq!(node.post_spans(&admin, spans).await.status(), 200);
    node.drained().await;

    // A row as the server stores it, moved to trace 2: what the old spool held.
    let client = clickhouse::Client::default()
        .with_url(clickhouse_url())
        .with_database(&database)
        .with_validation(false);
    let project = spanhouse::server::open_store(&config, spanhouse::server::StoreUser::Command)
        .await
        .unwrap()
        .find_project("default")
        .await
        .unwrap()
        .unwrap();
    let mut row: SpanRow = client
        .query(&span_by_id())
        .bind(&project.id)
        .bind(hex_trace(1))
        .bind("0101010101010101")
        .fetch_one()
        .await
        .unwrap();
    row.trace_id = hex_trace(2);
    row.name = "from the old spool".into();
    node.server.shutdown().await.unwrap();
    let line = serde_json::to_string(&LegacyEntry::Spans(vec![row])).unwrap();
    assert!(line.starts_with("{\"Spans\":[{"), "{line}");
    let spool = data_dir.path().join("spool");
    std::fs::write(spool.join("00000000000000000100.spool"), line + "\n").unwrap();

    let node = Node::with_config(&config).await;
    node.drained().await;
    assert_eq!(std::fs::read_dir(&spool).unwrap().count(), 0);
    assert_traces(node.server.http_addr, &admin, &[(1, 1), (2, 1)]).await;
    let (_, trace) = node
        .get_as(&admin, &format!("/api/v1/traces/{}", hex_trace(2)))
        .await;
    assert_eq!(trace["spans"][0]["name"], "from the old spool");
    node.server.shutdown().await.unwrap();
    drop_database(&database).await;
}

/// A delivered batch may hold more traces than one query's text can name (ClickHouse caps it
/// at 256 KiB): the lookup of their content events is split, and the batch is stored.
#[tokio::test]
async fn a_batch_of_more_traces_than_one_query_holds_is_delivered() {
    if !clickhouse_available().await {
        return;
    }
    let database = fresh_database();
    let node = Node::start(&database, |_| {}).await;
    let admin = node.server.bootstrap_token.clone().unwrap();
    let start = recent(5);
    let spans: Vec<_> = (0..9000u32)
        .map(|n| {
            let mut one = span(1, 1, None, "many traces", start);
            one.trace_id[..4].copy_from_slice(&n.to_be_bytes());
            one
        })
        .collect();
    assert_eq!(node.post_spans(&admin, spans).await.status(), 200);
    node.drained().await;
    let count =
        clickhouse_query(&format!("SELECT uniqExact(trace_id) FROM {database}.spans")).await;
    assert_eq!(count.trim(), "9000");
    drop_database(&database).await;
}
