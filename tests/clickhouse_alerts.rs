//! Alerts on a deployment of two servers sharing one ClickHouse database: exactly one of them
//! (the holder of the alerts lease) evaluates, so each change of state is notified once; when it
//! stops, the other takes the lease over and carries on from the stored state — it resolves the
//! firing rule without notifying the firing again. Against a real ClickHouse (scripts/
//! clickhouse.sh starts Debian's 18.16); in CI this test fails if it is missing, elsewhere it
//! says so and skips.

mod common;
#[path = "common/webhook.rs"]
mod webhook;

use std::time::{Duration, Instant};

use common::node::{Node, drop_database};
use common::*;
use serde_json::json;
use spanhouse::config::Config;
use webhook::{Receiver, signature};

/// What these tests ask of a node: its alert figures, and traces stored.
impl Node {
    /// A figure of this server's `/metrics` (its own, without a token).
    async fn metric(&self, name: &str) -> u64 {
        let text = reqwest::get(self.url("/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.lines()
            .find_map(|line| line.strip_prefix(&format!("{name} ")))
            .and_then(|value| value.parse().ok())
            .unwrap_or_else(|| panic!("{name} missing from /metrics"))
    }

    async fn holds_lease(&self) -> bool {
        self.metric("spanhouse_alerts_lease_held").await == 1
    }

    async fn evaluations(&self) -> u64 {
        self.metric("spanhouse_alert_evaluations_total").await
    }

    /// Waits until this server has evaluated rules `more` more times (at most 60 s).
    async fn wait_for_evaluations(&self, more: u64) {
        let target = self.evaluations().await + more;
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.evaluations().await < target {
            assert!(Instant::now() < deadline, "rules were not evaluated");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Traces of one root span each, with an error status or not, in one request; returns once
    /// they are in ClickHouse.
    async fn send(&self, token: &str, traces: std::ops::Range<u8>, error: bool) {
        let spans = traces.map(|trace| root_span(trace, error)).collect();
        assert_eq!(self.post_spans(token, spans).await.status(), 200);
        self.drained().await;
    }
}

/// Waits until exactly one of the nodes holds the lease (at most 120 s: a holder that stopped
/// keeps its next slot, so a takeover may wait two slots), checking on the way that never both
/// do; returns its index.
async fn single_holder(nodes: &[&Node]) -> usize {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let mut holders = Vec::new();
        for (index, node) in nodes.iter().enumerate() {
            if node.holds_lease().await {
                holders.push(index);
            }
        }
        assert!(holders.len() <= 1, "two servers hold the alerts lease");
        if let [holder] = holders[..] {
            return holder;
        }
        assert!(Instant::now() < deadline, "no server took the alerts lease");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn two_servers_notify_each_change_once_and_the_second_carries_on_from_the_first() {
    if !clickhouse_available().await {
        return;
    }
    let database = fresh_database();
    let first = Node::start(&database, |config| {
        config.alerts.evaluation_interval = Duration::from_secs(1);
    })
    .await;
    let token = first.server.bootstrap_token.clone().unwrap();
    let second = Node::start(&database, |config| {
        config.alerts.evaluation_interval = Duration::from_secs(1);
    })
    .await;
    let receiver = Receiver::start(0).await;

    let (status, created) = send_json(
        reqwest::Client::new()
            .post(first.url("/api/v1/alerts"))
            .bearer_auth(&token),
        Some(
            json!({"name": "errors", "metric": "error_rate", "window": "1h", "op": ">",
                    "threshold": 0.5, "webhook_url": receiver.url}),
        ),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let secret = created["secret"].as_str().unwrap().to_owned();

    let nodes = [&first, &second];
    let holder = single_holder(&nodes).await;
    let (holding, other) = (nodes[holder], nodes[1 - holder]);
    // The traces go to the server that does not evaluate: the store is what they share.
    other.send(&token, 1..5, true).await;
    let firing = receiver.wait_for(1).await;
    holding.wait_for_evaluations(3).await;
    assert_eq!(receiver.received().len(), 1, "{:?}", receiver.received());
    assert_eq!(
        other.evaluations().await,
        0,
        "only the lease holder evaluates"
    );
    assert_eq!(firing[0].json()["state"], "firing");
    assert_eq!(firing[0].signature, signature(&secret, &firing[0].body));

    // The holder stops (its lease is not given back, as in a crash): the other takes over and
    // resolves from the stored state, without notifying the firing again.
    let (stopping, survivor) = if holder == 0 {
        (first, second)
    } else {
        (second, first)
    };
    stopping.server.shutdown().await.unwrap();
    assert_eq!(single_holder(&[&survivor]).await, 0);
    survivor.send(&token, 10..30, false).await;
    let both = receiver.wait_for(2).await;
    survivor.wait_for_evaluations(3).await;
    assert_eq!(receiver.received().len(), 2, "{:?}", receiver.received());
    let resolved = both[1].json();
    assert_eq!(resolved["state"], "resolved");
    assert_eq!(both[1].signature, signature(&secret, &both[1].body));
    assert_ne!(resolved["event_id"], firing[0].json()["event_id"]);

    survivor.server.shutdown().await.unwrap();
    drop_database(&database).await;
}

/// The lease itself, asked for by two stores of one database in turns: once a claim has
/// settled, exactly one holder is granted it at every ask, across slot boundaries (the shortest
/// slot, 15 s, is crossed at least once), and the other never is.
#[tokio::test]
async fn of_two_stores_asking_in_turns_one_holds_the_lease_across_slots() {
    if !clickhouse_available().await {
        return;
    }
    let database = fresh_database();
    let directory = tempfile::tempdir().unwrap();
    let mut config = Config::for_data_dir(directory.path());
    use_clickhouse(&mut config, &database);
    let open = || spanhouse::server::open_store(&config, spanhouse::server::StoreUser::Command);
    let stores = [open().await.unwrap(), open().await.unwrap()];
    let ttl = Duration::from_secs(15);
    let mut holders = Vec::new();
    let mut first_grant: Option<Instant> = None;
    let deadline = Instant::now() + Duration::from_secs(120);
    while first_grant.is_none_or(|first| first.elapsed() < ttl + Duration::from_secs(2)) {
        let mut granted = Vec::new();
        for (index, store) in stores.iter().enumerate() {
            let holder = format!("holder-{index}");
            if let Some(grant) = store.acquire_lease("test", &holder, ttl).await.unwrap() {
                assert!(grant.valid_for < 2 * ttl, "{grant:?}");
                granted.push(index);
            }
        }
        assert!(granted.len() <= 1, "both holders were granted the lease");
        if let [holder] = granted[..] {
            first_grant.get_or_insert_with(Instant::now);
            holders.push(holder);
        } else {
            assert!(holders.is_empty(), "the holder lost the lease while asking");
        }
        assert!(Instant::now() < deadline, "nobody was granted the lease");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(
        holders.iter().all(|holder| *holder == holders[0]),
        "{holders:?}"
    );
    drop(stores);
    drop_database(&database).await;
}
