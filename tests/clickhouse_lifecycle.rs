//! Deletion and retention on the ClickHouse backend: traces deleted through one store are gone
//! from every read of a server at once, and after a purge no row of any table of the database
//! holds their text — nor, once ClickHouse has dropped the parts the mutations replaced, any
//! file of its data directory. Against a real ClickHouse (scripts/clickhouse.sh starts
//! Debian's 18.16); in CI these tests fail if it is missing, elsewhere they say so and skip.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::node::{Node, drop_database};
use common::*;
use spanhouse::config::Config;
use spanhouse::model::TraceId;
use spanhouse::server::{StoreUser, open_store};
use spanhouse::store::{PurgeReport, TraceSelection};

/// What every deleted trace carries in its texts (and no kept trace does).
const MARKER: &str = "ERASEME";

const DAY_SECONDS: u64 = 86_400;

/// What these tests ask of a node: as its admin.
impl Node {
    async fn post(&self, spans: Vec<opentelemetry_proto::tonic::trace::v1::Span>) {
        assert_eq!(self.post_spans(&self.admin(), spans).await.status(), 200);
    }

    async fn get(&self, path: &str) -> (u16, serde_json::Value) {
        self.get_as(&self.admin(), path).await
    }

    /// The trace ids a list of the last 90 days shows, with `extra` parameters.
    async fn listed(&self, extra: &str) -> Vec<String> {
        let (status, list) = self
            .get(&format!("/api/v1/traces?start=2000-01-01T00:00:00Z{extra}"))
            .await;
        assert_eq!(status, 200, "{list}");
        let mut ids: Vec<String> = list["traces"]
            .as_array()
            .unwrap()
            .iter()
            .map(|record| record["trace_id"].as_str().unwrap().to_owned())
            .collect();
        ids.sort();
        ids
    }
}

/// A trace of two spans whose texts are `text`, by `user`, started `seconds_ago`.
fn trace(
    id: u8,
    text: &str,
    user: &str,
    seconds_ago: u64,
) -> Vec<opentelemetry_proto::tonic::trace::v1::Span> {
    let mut root = span(id, id, None, "chat", recent(seconds_ago));
    root.attributes = vec![
        string_attribute("input.value", &format!("question {text}")),
        string_attribute("output.value", &format!("answer {text}")),
        string_attribute("user.id", user),
        string_attribute("session.id", &format!("session {text}")),
    ];
    let mut child = span(
        id,
        id.wrapping_add(1),
        Some(id),
        "llm",
        recent(seconds_ago) + 1_000,
    );
    child.attributes = vec![
        string_attribute("gen_ai.request.model", "gpt-4o"),
        string_attribute("gen_ai.prompt.0.content", &format!("prompt {text}")),
    ];
    vec![root, child]
}

/// Rows of the database's tables whose text columns hold `needle`, table by table.
async fn tables_holding(database: &str, needle: &str) -> Vec<(String, u64)> {
    let columns = clickhouse_query(&format!(
        "SELECT table, groupArray(name) FROM system.columns WHERE database = '{database}' \
         AND type LIKE '%String%' GROUP BY table FORMAT JSONCompact"
    ))
    .await;
    let columns: serde_json::Value = serde_json::from_str(&columns).unwrap();
    let mut holding = Vec::new();
    for row in columns["data"].as_array().unwrap() {
        let table = row[0].as_str().unwrap();
        let tests: Vec<String> = row[1]
            .as_array()
            .unwrap()
            .iter()
            .map(|name| {
                format!(
                    "positionCaseInsensitive(toString(`{}`), '{needle}') > 0",
                    name.as_str().unwrap()
                )
            })
            .collect();
        let count = clickhouse_query(&format!(
            "SELECT count() FROM {database}.{table} WHERE {}",
            tests.join(" OR ")
        ))
        .await;
        let count: u64 = count.trim().parse().unwrap_or_else(|_| panic!("{count}"));
        if count > 0 {
            holding.push((table.to_owned(), count));
        }
    }
    holding
}

/// Files of the database's directories that contain `needle`, when this process can read them.
async fn database_files_holding(database: &str, needle: &str) -> Option<Vec<String>> {
    let paths = clickhouse_query(&format!(
        "SELECT data_path FROM system.tables WHERE database = '{database}'"
    ))
    .await;
    let mut found = Vec::new();
    for path in paths.lines() {
        let directory = std::path::Path::new(path.trim());
        if !directory.is_dir() {
            return None;
        }
        found.extend(
            files::files_holding(directory, &[needle])
                .into_iter()
                .map(|(file, _)| file.display().to_string()),
        );
    }
    Some(found)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleted_traces_leave_every_read_at_once_and_the_disk_after_a_purge() {
    if !clickhouse_available().await {
        return;
    }
    let database = fresh_database();
    let node = Node::start(&database, |_| {}).await;
    let erased_by_user = 0xa1;
    let erased_by_id = 0xb1;
    let kept = 0xc1;
    let expired = 0xd1;
    node.post(trace(
        erased_by_user,
        &format!("{MARKER} alpha"),
        "u-17",
        60,
    ))
    .await;
    node.post(trace(erased_by_id, &format!("{MARKER} beta"), "u-99", 50))
        .await;
    node.post(trace(kept, "kept gamma", "u-99", 40)).await;
    node.post(trace(
        expired,
        &format!("{MARKER} delta"),
        "u-5",
        40 * DAY_SECONDS,
    ))
    .await;
    node.drained().await;
    let response = reqwest::Client::new()
        .post(node.url("/api/v1/scores"))
        .bearer_auth(node.admin())
        .json(
            &serde_json::json!({"trace_id": hex_trace(erased_by_id), "name": "quality",
                                  "value": 0.5, "comment": format!("{MARKER} judge says")}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let all = [erased_by_user, erased_by_id, kept, expired].map(hex_trace);
    assert_eq!(node.listed("").await, all.to_vec());
    assert!(!tables_holding(&database, MARKER).await.is_empty());

    let (_, stats) = node.get("/api/v1/stats").await;
    assert_eq!(stats["totals"]["traces"], 3, "{stats}");
    let files_before = database_files_holding(&database, MARKER).await;
    eprintln!("files holding the marker before the deletion: {files_before:?}");

    // Deletions through a store of their own: another server of the deployment.
    let other_dir = tempfile::tempdir().unwrap();
    let mut other = Config::for_data_dir(other_dir.path());
    use_clickhouse(&mut other, &database);
    let store: Arc<dyn spanhouse::store::Store> =
        open_store(&other, StoreUser::Command).await.unwrap();
    let project = store.find_project("default").await.unwrap().unwrap().id;
    let by_id = TraceSelection::Ids(vec![
        TraceId::parse_hex(&hex_trace(erased_by_id)).unwrap(),
        TraceId::parse_hex(&hex_trace(0xee)).unwrap(),
    ]);
    assert_eq!(store.delete_traces(&project, &by_id).await.unwrap(), 1);
    assert_eq!(
        store.delete_traces(&project, &by_id).await.unwrap(),
        0,
        "once"
    );
    let erasure = TraceSelection::Matching {
        start_unix_nano: recent(DAY_SECONDS),
        end_unix_nano: recent(0) + 60_000_000_000,
        filter: Some(Arc::new(
            spanhouse::filter::query::parse_trace_filter(r#"user_id == "u-17""#).unwrap(),
        )),
    };
    assert_eq!(store.delete_traces(&project, &erasure).await.unwrap(), 1);
    let retention = TraceSelection::Matching {
        start_unix_nano: 0,
        end_unix_nano: recent(30 * DAY_SECONDS),
        filter: None,
    };
    assert_eq!(store.delete_traces(&project, &retention).await.unwrap(), 1);
    assert_eq!(store.delete_traces(&project, &retention).await.unwrap(), 0);

    // Gone from every read of the server at once.
    for gone in [erased_by_user, erased_by_id, expired] {
        let (status, _) = node
            .get(&format!("/api/v1/traces/{}", hex_trace(gone)))
            .await;
        assert_eq!(status, 404, "trace {gone:x}");
    }
    assert_eq!(
        node.get(&format!("/api/v1/traces/{}", hex_trace(kept)))
            .await
            .0,
        200
    );
    assert_eq!(node.listed("").await, [hex_trace(kept)]);
    assert_eq!(
        node.listed(&format!("&q={MARKER}")).await,
        Vec::<String>::new()
    );
    assert_eq!(
        node.listed("&filter=user_id%20%3D%3D%20%22u-99%22").await,
        [hex_trace(kept)]
    );
    let (_, stats) = node.get("/api/v1/stats").await;
    assert_eq!(stats["totals"]["traces"], 1, "{stats}");
    let (_, filtered) = node
        .get("/api/v1/stats?filter=session_id%20%21%3D%20%22none%22")
        .await;
    assert_eq!(filtered["totals"]["traces"], 1, "{filtered}");
    let (_, spans) = node.get("/api/v1/spans?start=2000-01-01T00:00:00Z").await;
    let span_traces: Vec<&str> = spans["spans"]
        .as_array()
        .unwrap()
        .iter()
        .map(|span| span["trace_id"].as_str().unwrap())
        .collect();
    assert_eq!(span_traces, [hex_trace(kept), hex_trace(kept)], "{spans}");
    let ids = [erased_by_id, kept].map(|id| TraceId::parse_hex(&hex_trace(id)).unwrap());
    assert!(
        store
            .scores_of_traces(&project, &ids)
            .await
            .unwrap()
            .is_empty()
    );

    // Spans of a deleted trace sent after the deletion are a new trace, at once.
    node.post(trace(erased_by_id, "new delta", "u-99", 5)).await;
    node.drained().await;
    let new_trace = |node_answer: (u16, serde_json::Value)| {
        let (status, again) = node_answer;
        assert_eq!(status, 200, "{again}");
        assert_eq!(again["trace"]["input"], "question new delta", "{again}");
        assert_eq!(again["spans"].as_array().unwrap().len(), 2, "{again}");
    };
    new_trace(
        node.get(&format!("/api/v1/traces/{}", hex_trace(erased_by_id)))
            .await,
    );
    assert_eq!(
        node.listed("").await,
        [hex_trace(erased_by_id), hex_trace(kept)]
    );
    assert_eq!(node.get("/api/v1/stats").await.1["totals"]["traces"], 2);
    assert!(
        store
            .scores_of_traces(&project, &ids)
            .await
            .unwrap()
            .is_empty()
    );

    // The purge removes every row holding their texts; the kept trace stays whole, and so
    // does the new one.
    let report = store.purge().await.unwrap();
    assert_eq!(report.traces, 3, "{report:?}");
    assert_eq!(report.spans, 6, "{report:?}");
    assert_eq!(store.purge().await.unwrap(), PurgeReport::default());
    assert_eq!(tables_holding(&database, MARKER).await, Vec::new());
    for table in ["spans", "traces", "trace_index", "span_terms", "scores"] {
        let left = clickhouse_query(&format!(
            "SELECT count() FROM {database}.{table} WHERE trace_id IN ('{}', '{}')",
            all[0], all[3]
        ))
        .await;
        assert_eq!(left.trim(), "0", "{table}");
    }
    let (status, whole) = node
        .get(&format!("/api/v1/traces/{}", hex_trace(kept)))
        .await;
    assert_eq!(
        (status, whole["trace"]["span_count"].as_u64()),
        (200, Some(2))
    );
    new_trace(
        node.get(&format!("/api/v1/traces/{}", hex_trace(erased_by_id)))
            .await,
    );
    assert_eq!(
        node.listed("").await,
        [hex_trace(erased_by_id), hex_trace(kept)]
    );
    assert_eq!(node.get("/api/v1/stats").await.1["totals"]["traces"], 2);

    // And the files: once ClickHouse drops the parts the mutations replaced (after its
    // `old_parts_lifetime`; scripts/clickhouse.sh sets 10 s), no file holds the texts.
    let lifetime: u64 = clickhouse_query(
        "SELECT value FROM system.merge_tree_settings WHERE name = 'old_parts_lifetime'",
    )
    .await
    .trim()
    .parse()
    .unwrap_or(480);
    if lifetime > 600 {
        eprintln!("SKIPPED the file check: old_parts_lifetime is {lifetime} s");
    } else if let Some(files) = database_files_holding(&database, MARKER).await {
        let deadline = std::time::Instant::now() + Duration::from_secs(lifetime + 120);
        let mut files = files;
        while !files.is_empty() && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_secs(5)).await;
            files = database_files_holding(&database, MARKER)
                .await
                .unwrap_or_default();
        }
        assert_eq!(files, Vec::<String>::new());
    } else {
        eprintln!("SKIPPED the file check: ClickHouse's data directory is not readable here");
    }
    drop(store);
    drop_database(&database).await;
}
