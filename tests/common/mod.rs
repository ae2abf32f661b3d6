//! Test support: a real spanhouse on ephemeral ports with a temporary data directory, and small
//! builders of OTLP requests.

#![allow(dead_code)]

pub mod files;
pub mod node;
pub mod process;
pub mod switch;
pub mod traffic;

use std::io::Write as _;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};
use prost::Message as _;
use spanhouse::config::Config;
use spanhouse::server::{RunningServer, start};

pub struct TestServer {
    pub server: Option<RunningServer>,
    pub data_dir: tempfile::TempDir,
    pub admin_token: String,
    pub client: reqwest::Client,
    /// The configuration the server was started with.
    pub started_with: Config,
}

/// Whether the tests run against ClickHouse (`SPANHOUSE_TEST_STORAGE=clickhouse`) rather than
/// the embedded default.
pub fn on_clickhouse() -> bool {
    std::env::var("SPANHOUSE_TEST_STORAGE").as_deref() == Ok("clickhouse")
}

/// The ClickHouse the tests use (`SPANHOUSE_TEST_CLICKHOUSE_URL`, default the one
/// scripts/clickhouse.sh starts).
pub fn clickhouse_url() -> String {
    std::env::var("SPANHOUSE_TEST_CLICKHOUSE_URL")
        .unwrap_or_else(|_| "http://127.0.0.1:18123".to_owned())
}

/// Whether the ClickHouse of `clickhouse_url` answers: in CI its absence fails the test;
/// elsewhere the test says so and is skipped by its caller.
pub async fn clickhouse_available() -> bool {
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

/// Points a configuration at a fresh ClickHouse database of its own.
pub fn use_clickhouse(config: &mut Config, database: &str) {
    config.storage = spanhouse::config::StorageKind::Clickhouse;
    config.clickhouse.url = clickhouse_url();
    config.clickhouse.database = database.to_owned();
    config.clickhouse.flush_interval_ms = 10;
}

/// A database name no other test uses.
pub fn fresh_database() -> String {
    use rand::RngCore as _;
    let mut bytes = [0u8; 6];
    rand::rng().fill_bytes(&mut bytes);
    format!("spanhouse_test_{}", hex::encode(bytes))
}

impl TestServer {
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    /// Starts a server whose configuration `adjust` may change first.
    pub async fn start_with(adjust: impl FnOnce(&mut Config)) -> Self {
        let data_dir = tempfile::tempdir().expect("temp dir");
        let mut config = Config::for_data_dir(data_dir.path());
        if on_clickhouse() {
            use_clickhouse(&mut config, &fresh_database());
        }
        adjust(&mut config);
        let server = start(&config).await.expect("server starts");
        let admin_token = server
            .bootstrap_token
            .clone()
            .expect("a new data dir bootstraps");
        Self {
            server: Some(server),
            data_dir,
            admin_token,
            client: reqwest::Client::new(),
            started_with: config,
        }
    }

    pub fn running(&self) -> &RunningServer {
        self.server.as_ref().expect("running")
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.running().http_addr, path)
    }

    pub fn grpc_url(&self) -> String {
        format!("http://{}", self.running().grpc_addr)
    }

    pub fn config(&self) -> Config {
        let mut config = self.started_with.clone();
        config.http_listen = self.running().http_addr;
        config
    }

    /// Creates a token through the admin commands' code path.
    pub async fn create_token(&self, project: &str, role: &str) -> String {
        let store =
            spanhouse::server::open_store(&self.config(), spanhouse::server::StoreUser::Command)
                .await
                .unwrap();
        let project = match store.find_project(project).await.unwrap() {
            Some(project) => project,
            None => store.create_project(project).await.unwrap(),
        };
        let secret = spanhouse::auth::generate_token_secret();
        store
            .create_token(spanhouse::store::NewToken {
                id: spanhouse::auth::generate_token_id(),
                project_id: project.id,
                role: spanhouse::auth::Role::parse(role).unwrap(),
                name: None,
                secret_hash: spanhouse::auth::hash_token(&secret),
            })
            .await
            .unwrap();
        secret
    }

    /// Waits (at most 5 s, as the contract allows) until `token` is accepted for reading.
    pub async fn wait_for_token(&self, token: &str) {
        for _ in 0..50 {
            let response = self
                .client
                .get(self.url("/api/v1/traces"))
                .bearer_auth(token)
                .send()
                .await
                .unwrap();
            if response.status() != 401 {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        panic!("token not accepted within 5 s");
    }

    /// The Prometheus exposition of `GET /metrics`, as the admin token's project sees it.
    pub async fn metrics_text(&self) -> String {
        let response = self
            .client
            .get(self.url("/metrics"))
            .bearer_auth(&self.admin_token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        response.text().await.unwrap()
    }

    /// `GET /metrics` without a token: the server's own figures, no project's.
    pub async fn public_metrics_text(&self) -> String {
        let response = self.client.get(self.url("/metrics")).send().await.unwrap();
        assert_eq!(response.status(), 200);
        response.text().await.unwrap()
    }

    /// A POST with the admin token and a content type; add the body and send.
    pub fn post_as_admin(&self, path: &str, content_type: &str) -> reqwest::RequestBuilder {
        self.client
            .post(self.url(path))
            .bearer_auth(&self.admin_token)
            .header("content-type", content_type)
    }

    pub async fn post_protobuf(
        &self,
        path: &str,
        token: &str,
        request: &ExportTraceServiceRequest,
    ) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .bearer_auth(token)
            .header("content-type", "application/x-protobuf")
            .body(request.encode_to_vec())
            .send()
            .await
            .unwrap()
    }

    /// Environment for running the `spanhouse` binary on this server's store.
    pub fn store_env(&self) -> Vec<(&'static str, String)> {
        let mut env = vec![(
            "SPANHOUSE_DATA_DIR",
            self.data_dir.path().display().to_string(),
        )];
        if self.started_with.storage == spanhouse::config::StorageKind::Clickhouse {
            env.push(("SPANHOUSE_STORAGE", "clickhouse".to_owned()));
            env.push((
                "SPANHOUSE_CLICKHOUSE_URL",
                self.started_with.clickhouse.url.clone(),
            ));
            env.push((
                "SPANHOUSE_CLICKHOUSE_DATABASE",
                self.started_with.clickhouse.database.clone(),
            ));
        }
        env
    }

    /// Waits until what the token's project sent is in its final store: on ClickHouse, spans
    /// wait in the local spool first. Instant on the embedded store.
    pub async fn settle(&self, token: &str) {
        if self.started_with.storage != spanhouse::config::StorageKind::Clickhouse {
            return;
        }
        for _ in 0..500 {
            let response = self
                .client
                .get(self.url("/api/v1/ingestion"))
                .bearer_auth(token)
                .send()
                .await
                .unwrap();
            if response.status() != 200 {
                return;
            }
            let body: serde_json::Value = response.json().await.unwrap();
            if body["buffered"] == 0 {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        panic!("the spool did not drain within 5 s");
    }

    pub async fn get_json(&self, path: &str, token: &str) -> (u16, serde_json::Value) {
        if !token.is_empty() && path.starts_with("/api/v1/traces") {
            self.settle(token).await;
        }
        let response = self
            .client
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let body = response.json().await.unwrap_or(serde_json::Value::Null);
        (status, body)
    }

    /// Stops the server and starts it again on the same data directory.
    pub async fn restart(mut self) -> Self {
        if let Some(server) = self.server.take() {
            server.shutdown().await.unwrap();
        }
        let config = self.started_with.clone();
        self.server = Some(start(&config).await.expect("server restarts"));
        self
    }

    /// Stops the server, runs `between` on its data directory, and starts it again there.
    pub async fn restart_after(mut self, between: impl FnOnce(&std::path::Path)) -> Self {
        if let Some(server) = self.server.take() {
            server.shutdown().await.unwrap();
        }
        between(self.data_dir.path());
        let config = self.started_with.clone();
        self.server = Some(start(&config).await.expect("server restarts"));
        self
    }

    pub async fn put_json(
        &self,
        path: &str,
        token: &str,
        body: serde_json::Value,
    ) -> (u16, serde_json::Value) {
        let request = self.client.put(self.url(path)).bearer_auth(token);
        send_json(request, Some(body)).await
    }

    pub async fn post_json(
        &self,
        path: &str,
        token: &str,
        body: serde_json::Value,
    ) -> (u16, serde_json::Value) {
        let request = self.client.post(self.url(path)).bearer_auth(token);
        send_json(request, Some(body)).await
    }

    pub async fn stop(mut self) {
        if let Some(server) = self.server.take() {
            server.shutdown().await.unwrap();
        }
        if self.started_with.storage == spanhouse::config::StorageKind::Clickhouse {
            let database = &self.started_with.clickhouse.database;
            let _ = self
                .client
                .post(&self.started_with.clickhouse.url)
                .body(format!("DROP DATABASE IF EXISTS {database}"))
                .send()
                .await;
        }
    }
}

pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(data).unwrap();
    encoder.finish().unwrap()
}

pub fn string_attribute(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.into())),
        }),
        ..Default::default()
    }
}

pub fn double_attribute(key: &str, value: f64) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::DoubleValue(value)),
        }),
        ..Default::default()
    }
}

/// `text` percent-encoded for a query string (a filter, say).
pub fn url_encoded(text: &str) -> String {
    text.bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => {
                (byte as char).to_string()
            }
            _ => format!("%{byte:02X}"),
        })
        .collect()
}

pub fn int_attribute(key: &str, value: i64) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::IntValue(value)),
        }),
        ..Default::default()
    }
}

/// Nanoseconds since the epoch, `seconds_ago` before now, so spans fall in the default window.
pub fn recent(seconds_ago: u64) -> u64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    now - seconds_ago * 1_000_000_000
}

/// A span of trace `trace` (a byte repeated) with span id `span`.
pub fn span(trace: u8, span: u8, parent: Option<u8>, name: &str, start: u64) -> Span {
    Span {
        trace_id: vec![trace; 16],
        span_id: vec![span; 8],
        parent_span_id: parent.map(|parent| vec![parent; 8]).unwrap_or_default(),
        name: name.into(),
        kind: 1,
        start_time_unix_nano: start,
        end_time_unix_nano: start + 250_000_000,
        status: Some(Status {
            code: 1,
            message: String::new(),
        }),
        ..Default::default()
    }
}

/// The root span of trace `trace` (named `agent`, started 5 s ago), failed when `error`.
pub fn root_span(trace: u8, error: bool) -> Span {
    let mut root = span(trace, 1, None, "agent", recent(5));
    if error {
        root.status = Some(Status {
            code: 2,
            message: "failed".into(),
        });
    }
    root
}

/// A logs export request holding `records` under one resource and scope.
pub fn logs_request(
    records: Vec<opentelemetry_proto::tonic::logs::v1::LogRecord>,
) -> opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest {
    use opentelemetry_proto::tonic::logs::v1::{ResourceLogs, ScopeLogs};
    opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            scope_logs: vec![ScopeLogs {
                log_records: records,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

/// Runs `sql` on the test ClickHouse over HTTP; returns its answer as text.
pub async fn clickhouse_query(sql: &str) -> String {
    reqwest::Client::new()
        .post(clickhouse_url())
        .body(sql.to_owned())
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

pub fn request(service: &str, spans: Vec<Span>) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![string_attribute("service.name", service)],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            schema_url: String::new(),
        }],
    }
}

pub fn hex_trace(trace: u8) -> String {
    hex::encode([trace; 16])
}

/// A tool a test drives (an SDK, a browser, chdb), or `None` when it is not installed: in CI
/// (`CI` set, as `.ci/run` does) its absence fails the test; elsewhere the test says so and is
/// skipped by its caller.
pub fn require<T>(tool: Option<T>, what: &str) -> Option<T> {
    if tool.is_none() {
        if std::env::var_os("CI").is_some() {
            panic!("not installed: {what}; scripts/test.sh installs it");
        }
        eprintln!("SKIPPED: not installed: {what}; run scripts/test.sh to install it");
    }
    tool
}

/// Sends a request, with `body` as JSON when given, and returns its status and JSON body (`null`
/// when the body is not JSON).
pub async fn send_json(
    request: reqwest::RequestBuilder,
    body: Option<serde_json::Value>,
) -> (u16, serde_json::Value) {
    let request = match body {
        Some(body) => request.json(&body),
        None => request,
    };
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (
        status,
        response.json().await.unwrap_or(serde_json::Value::Null),
    )
}

/// What the dashboard counts of a TraceRecord as the API lists it: the recomputation stats
/// tests compare `/api/v1/stats` with.
pub fn trace_facts(record: &serde_json::Value) -> spanhouse::store::trace_stats::TraceFacts {
    spanhouse::store::trace_stats::TraceFacts {
        timestamp_unix_nano: spanhouse::model::time::parse_rfc3339(
            record["timestamp"].as_str().unwrap(),
        )
        .unwrap(),
        is_error: record["status"] == "error",
        duration_ms: record["duration_ms"].as_f64().unwrap(),
        total_tokens: record["total_token_count"].as_i64().unwrap_or(0),
        total_cost: record["total_cost"].as_f64().unwrap_or(0.0),
        models: record["models"]
            .as_array()
            .unwrap()
            .iter()
            .map(|model| model.as_str().unwrap().to_owned())
            .collect(),
    }
}
