//! Servers of one deployment on the test ClickHouse, each on its own data directory: the tests
//! of several servers sharing a database (`tests/clickhouse*.rs`).

use std::time::Duration;

use prost::Message as _;
use spanhouse::config::Config;
use spanhouse::server::{RunningServer, start};

use super::{clickhouse_query, request, use_clickhouse};

pub struct Node {
    pub server: RunningServer,
    _data_dir: tempfile::TempDir,
}

impl Node {
    /// A server on `database`, its configuration changed by `adjust` first.
    pub async fn start(database: &str, adjust: impl FnOnce(&mut Config)) -> Self {
        let data_dir = tempfile::tempdir().unwrap();
        let mut config = Config::for_data_dir(data_dir.path());
        use_clickhouse(&mut config, database);
        adjust(&mut config);
        Self {
            server: start(&config).await.unwrap(),
            _data_dir: data_dir,
        }
    }

    /// A server of `config`, whose data directory the caller keeps (to start it again there).
    pub async fn with_config(config: &Config) -> Self {
        Self {
            server: start(config).await.unwrap(),
            _data_dir: tempfile::tempdir().unwrap(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.server.http_addr, path)
    }

    /// The admin token the server made when it created the database.
    pub fn admin(&self) -> String {
        self.server
            .bootstrap_token
            .clone()
            .expect("a fresh database bootstraps")
    }

    /// Sends spans as OTLP/HTTP protobuf with `token`.
    pub async fn post_spans(
        &self,
        token: &str,
        spans: Vec<opentelemetry_proto::tonic::trace::v1::Span>,
    ) -> reqwest::Response {
        reqwest::Client::new()
            .post(self.url("/v1/traces"))
            .bearer_auth(token)
            .header("content-type", "application/x-protobuf")
            .body(request("svc", spans).encode_to_vec())
            .send()
            .await
            .unwrap()
    }

    /// A GET with `token`: its status and JSON body (`null` when not JSON).
    pub async fn get_as(&self, token: &str, path: &str) -> (u16, serde_json::Value) {
        let response = reqwest::Client::new()
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or_default())
    }

    /// Waits until the server's spool is empty (at most 10 s).
    pub async fn drained(&self) {
        for _ in 0..1000 {
            let (_, ready) = self.get_as("", "/readyz").await;
            if ready["buffered"] == 0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the spool did not drain");
    }
}

/// Drops a test database (what a test made, once it is done).
pub async fn drop_database(database: &str) {
    clickhouse_query(&format!("DROP DATABASE IF EXISTS {database}")).await;
}
