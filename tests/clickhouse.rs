//! What only the ClickHouse backend does: several servers sharing one ClickHouse, and the local
//! spool that keeps acknowledged spans while ClickHouse is down. Against a real ClickHouse
//! (scripts/clickhouse.sh starts Debian's); in CI these tests fail if it is missing, elsewhere
//! they say so and skip.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::*;
use prost::Message as _;
use spanhouse::config::Config;
use spanhouse::server::{RunningServer, start};
use tokio::net::{TcpListener, TcpStream};

async fn clickhouse_available() -> bool {
    let reachable = reqwest::Client::new()
        .get(format!("{}/ping", clickhouse_url()))
        .send()
        .await
        .is_ok_and(|response| response.status() == 200);
    if reachable {
        return true;
    }
    if std::env::var_os("CI").is_some() {
        panic!("no ClickHouse at {}; .ci/run starts one", clickhouse_url());
    }
    eprintln!(
        "SKIPPED: no ClickHouse at {}; run scripts/clickhouse.sh start",
        clickhouse_url()
    );
    false
}

struct Node {
    server: RunningServer,
    _data_dir: tempfile::TempDir,
}

impl Node {
    async fn start(database: &str, adjust: impl FnOnce(&mut Config)) -> Self {
        let data_dir = tempfile::tempdir().unwrap();
        let mut config = Config::for_data_dir(data_dir.path());
        use_clickhouse(&mut config, database);
        adjust(&mut config);
        Self {
            server: start(&config).await.unwrap(),
            _data_dir: data_dir,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.server.http_addr, path)
    }
}

async fn post(
    node: &Node,
    token: &str,
    spans: Vec<opentelemetry_proto::tonic::trace::v1::Span>,
) -> reqwest::Response {
    reqwest::Client::new()
        .post(node.url("/v1/traces"))
        .bearer_auth(token)
        .header("content-type", "application/x-protobuf")
        .body(request("svc", spans).encode_to_vec())
        .send()
        .await
        .unwrap()
}

async fn get(node: &Node, token: &str, path: &str) -> (u16, serde_json::Value) {
    let response = reqwest::Client::new()
        .get(node.url(path))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or_default())
}

/// Waits until a node's spool is empty.
async fn drained(node: &Node) {
    for _ in 0..1000 {
        let (_, ready) = get(node, "", "/readyz").await;
        if ready["buffered"] == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the spool did not drain");
}

async fn drop_database(database: &str) {
    let _ = reqwest::Client::new()
        .post(clickhouse_url())
        .body(format!("DROP DATABASE IF EXISTS {database}"))
        .send()
        .await;
}

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
    let store = spanhouse::server::open_store(&config).await.unwrap();
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
        status = post(&second, &ingest, vec![]).await.status().as_u16();
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
    assert_eq!(post(&second, &ingest, vec![child]).await.status(), 200);
    assert_eq!(post(&first, &ingest, vec![root]).await.status(), 200);
    drained(&first).await;
    drained(&second).await;
    for node in [&first, &second] {
        let (status, trace) =
            get(node, &admin, &format!("/api/v1/traces/{}", hex_trace(0xe1))).await;
        assert_eq!(status, 200);
        assert_eq!(trace["trace"]["span_count"], 2);
        assert_eq!(trace["trace"]["input"], "question");
        assert_eq!(trace["trace"]["output"], "answer");
    }

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
        post(
            &second,
            &ingest,
            vec![span(0xf0 ^ attempt, 1, None, "noise", recent(5))],
        )
        .await;
        let (_, ingestion) = get(&second, &admin, "/api/v1/ingestion").await;
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

/// A TCP forwarder to ClickHouse that can be cut, as if ClickHouse were down.
struct Switch {
    address: std::net::SocketAddr,
    up: Arc<AtomicBool>,
    cut: tokio::sync::watch::Sender<u64>,
}

impl Switch {
    async fn start() -> Self {
        let target = clickhouse_url().trim_start_matches("http://").to_owned();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let up = Arc::new(AtomicBool::new(true));
        let (cut, cuts) = tokio::sync::watch::channel(0u64);
        let accept_up = Arc::clone(&up);
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if !accept_up.load(Ordering::SeqCst) {
                    continue; // dropped: connection refused in effect
                }
                let target = target.clone();
                let mut cuts = cuts.clone();
                // Only cuts after this connection opened close it.
                cuts.borrow_and_update();
                tokio::spawn(async move {
                    let Ok(mut outbound) = TcpStream::connect(&target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = cuts.changed() => {}
                    }
                });
            }
        });
        Self { address, up, cut }
    }

    fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    fn set(&self, up: bool) {
        self.up.store(up, Ordering::SeqCst);
        if !up {
            self.cut.send_modify(|generation| *generation += 1);
        }
    }
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
    let node = Node {
        server: start(&config).await.unwrap(),
        _data_dir: tempfile::tempdir().unwrap(),
    };
    let admin = node.server.bootstrap_token.clone().unwrap();

    switch.set(false);
    for trace in 1..=3u8 {
        let spans = (1..=3)
            .map(|id| span(trace, id, None, "while-down", recent(5)))
            .collect();
        assert_eq!(
            post(&node, &admin, spans).await.status(),
            200,
            "acknowledged while down"
        );
    }
    let (status, ready) = get(&node, "", "/readyz").await;
    assert_eq!(status, 503, "not ready while ClickHouse is down");
    assert_eq!(ready["buffered"], 9);

    // A full spool answers 503 with Retry-After rather than growing.
    let mut acknowledged = vec![(1u8, 3u64), (2, 3), (3, 3)];
    let mut refused = None;
    for trace in 10..60u8 {
        let spans = (1..=20)
            .map(|id| span(trace, id, None, "flood", recent(5)))
            .collect();
        let response = post(&node, &admin, spans).await;
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
    let restarted = Node {
        server: start(&config).await.unwrap(),
        _data_dir: tempfile::tempdir().unwrap(),
    };
    drained(&restarted).await;
    for (trace, spans) in acknowledged {
        let (status, body) = get(
            &restarted,
            &admin,
            &format!("/api/v1/traces/{}", hex_trace(trace)),
        )
        .await;
        assert_eq!(status, 200, "trace {trace} lost");
        assert_eq!(body["trace"]["span_count"], spans, "trace {trace}");
        assert_eq!(body["spans"].as_array().unwrap().len() as u64, spans);
    }
    restarted.server.shutdown().await.unwrap();
    drop(data_dir);
    drop_database(&database).await;
}
