//! Crash under load (issue 20), against the real binary: several connections send spans over
//! OTLP/HTTP and OTLP/gRPC, the server is killed with SIGKILL while requests are in flight, and
//! after a restart every span answered 200 before the kill is stored exactly once. Requests
//! that got no answer may or may not have been stored; nothing is ever stored twice.
//!
//! On the embedded SQLite store; and on ClickHouse, twice: killed while ClickHouse is stopped
//! (the server spools, and a 200 means the span is durably in the spool; ClickHouse starts
//! again before the server restarts), then killed again with ClickHouse up while the spool is
//! being delivered. The ClickHouse is one of the test's own (scripts/clickhouse.sh on free
//! ports), since it is stopped and started: in CI its absence fails the test, elsewhere the test
//! says so and skips.

mod common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::process::{Served, bootstrap_token};
use common::*;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message as _;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

/// Senders over OTLP/HTTP (protobuf), each with a client of its own (its own connection).
const HTTP_SENDERS: u8 = 6;
/// Senders over OTLP/gRPC, each on a channel of its own.
const GRPC_SENDERS: u8 = 2;
/// The most requests one sender makes: the load is bounded.
const REQUESTS_PER_SENDER: u16 = 150;
/// Spans of the request's own trace, in each request.
const SPANS_PER_TRACE: u8 = 10;
/// Spans each request adds to its sender's long trace, which grows over many requests (and
/// commits), so its TraceRecord is recomputed across the crash.
const SPANS_PER_LONG_TRACE_REQUEST: u8 = 2;
/// Each wait of the test ends by then: a guard against hanging, not a timing assertion.
const WAIT_AT_MOST: Duration = Duration::from_secs(60);

type TraceId = [u8; 16];
type SpanId = [u8; 8];

fn request_trace(sender: u8, request: u16) -> TraceId {
    let mut id = [0; 16];
    id[0] = 0x5a;
    id[1] = sender;
    id[2..4].copy_from_slice(&request.to_be_bytes());
    id[15] = 1;
    id
}

fn long_trace(sender: u8) -> TraceId {
    let mut id = [0; 16];
    id[0] = 0x1a;
    id[1] = sender;
    id[15] = 1;
    id
}

fn span_id(sender: u8, request: u16, index: u8) -> SpanId {
    let [high, low] = request.to_be_bytes();
    [sender, high, low, index, 0, 0, 0, 1]
}

/// The spans of one request: its own trace (a root and its children), and spans added to the
/// sender's long trace.
fn spans_of(sender: u8, request: u16) -> Vec<Span> {
    let start = recent(30);
    let own = request_trace(sender, request);
    let root = span_id(sender, request, 0);
    let mut spans: Vec<Span> = (0..SPANS_PER_TRACE)
        .map(|index| {
            let mut one = span(1, 1, None, "work", start + u64::from(index) * 1_000);
            one.trace_id = own.to_vec();
            one.span_id = span_id(sender, request, index).to_vec();
            one.parent_span_id = if index == 0 {
                Vec::new()
            } else {
                root.to_vec()
            };
            one
        })
        .collect();
    spans.extend((0..SPANS_PER_LONG_TRACE_REQUEST).map(|index| {
        let mut one = span(1, 1, None, "long", start);
        one.trace_id = long_trace(sender).to_vec();
        one.span_id = span_id(sender, request, 0x80 + index).to_vec();
        one
    }));
    spans
}

fn keys_of(spans: &[Span]) -> Vec<(TraceId, SpanId)> {
    spans
        .iter()
        .map(|span| {
            (
                span.trace_id.as_slice().try_into().unwrap(),
                span.span_id.as_slice().try_into().unwrap(),
            )
        })
        .collect()
}

enum Transport {
    Http {
        client: reqwest::Client,
        url: String,
        token: String,
    },
    Grpc {
        client: TraceServiceClient<tonic::transport::Channel>,
        authorization: tonic::metadata::MetadataValue<tonic::metadata::Ascii>,
    },
}

/// What became of one request.
enum Answer {
    Acknowledged,
    /// Answered, but not with success: the status (HTTP) or the gRPC code.
    Refused(String),
    /// No answer: the connection failed (the server died).
    None,
}

impl Transport {
    async fn send(&mut self, spans: Vec<Span>) -> Answer {
        let request = request("crash-under-load", spans);
        match self {
            Transport::Http { client, url, token } => {
                let response = client
                    .post(url.as_str())
                    .bearer_auth(&*token)
                    .header("content-type", "application/x-protobuf")
                    .body(request.encode_to_vec())
                    .send()
                    .await;
                let Ok(response) = response else {
                    return Answer::None;
                };
                let status = response.status().as_u16();
                let Ok(body) = response.bytes().await else {
                    return Answer::None;
                };
                if status != 200 {
                    return Answer::Refused(format!("HTTP {status}"));
                }
                let answer = ExportTraceServiceResponse::decode(body).unwrap();
                assert!(
                    answer
                        .partial_success
                        .is_none_or(|partial| partial.rejected_spans == 0),
                    "a valid span was rejected"
                );
                Answer::Acknowledged
            }
            Transport::Grpc {
                client,
                authorization,
            } => {
                let mut request = tonic::Request::new(request);
                request
                    .metadata_mut()
                    .insert("authorization", authorization.clone());
                request.set_timeout(Duration::from_secs(30));
                match client.export(request).await {
                    Ok(answer) => {
                        assert!(
                            answer
                                .into_inner()
                                .partial_success
                                .is_none_or(|partial| partial.rejected_spans == 0),
                            "a valid span was rejected"
                        );
                        Answer::Acknowledged
                    }
                    // What a dead server looks like to a gRPC client: its transport failed (a
                    // status the server sent has no source).
                    Err(status) if std::error::Error::source(&status).is_some() => Answer::None,
                    Err(status) => {
                        Answer::Refused(format!("gRPC {:?} {}", status.code(), status.message()))
                    }
                }
            }
        }
    }
}

/// One request that was answered 200: its spans, and whether it was sent while ClickHouse was
/// stopped.
struct Acknowledged {
    spans: Vec<(TraceId, SpanId)>,
    while_down: bool,
}

#[derive(Default)]
struct Outcome {
    acknowledged: Vec<Acknowledged>,
    refused: Vec<String>,
    unanswered: u64,
    /// Every span any request carried, answered or not.
    sent: Vec<(TraceId, SpanId)>,
}

impl Outcome {
    fn merge(&mut self, other: Outcome) {
        self.acknowledged.extend(other.acknowledged);
        self.refused.extend(other.refused);
        self.unanswered += other.unanswered;
        self.sent.extend(other.sent);
    }
}

#[derive(Default)]
struct Gauges {
    /// Requests answered, or given up on (no answer).
    done: AtomicU64,
    acknowledged: AtomicU64,
    in_flight: AtomicU64,
    clickhouse_down: AtomicBool,
}

/// Senders, each making requests while the test hands out permits (one per request), so that
/// the test decides how far the load goes before each of its steps.
struct Load {
    permits: Arc<Semaphore>,
    released: usize,
    gauges: Arc<Gauges>,
    senders: Vec<JoinHandle<Outcome>>,
}

impl Load {
    /// Starts the senders of load `round` (0, 1, …): their traces and spans are theirs alone.
    async fn start(served: &Served, token: &str, round: u8) -> Self {
        let permits = Arc::new(Semaphore::new(0));
        let gauges = Arc::new(Gauges::default());
        let mut senders = Vec::new();
        for sender in 0..HTTP_SENDERS + GRPC_SENDERS {
            let transport = if sender < HTTP_SENDERS {
                Transport::Http {
                    client: reqwest::Client::builder()
                        .timeout(Duration::from_secs(30))
                        .build()
                        .unwrap(),
                    url: format!("http://{}/v1/traces", served.http),
                    token: token.to_owned(),
                }
            } else {
                Transport::Grpc {
                    client: TraceServiceClient::connect(format!("http://{}", served.grpc))
                        .await
                        .unwrap(),
                    authorization: format!("Bearer {token}").try_into().unwrap(),
                }
            };
            senders.push(tokio::spawn(send(
                round * (HTTP_SENDERS + GRPC_SENDERS) + sender,
                transport,
                Arc::clone(&permits),
                Arc::clone(&gauges),
            )));
        }
        Self {
            permits,
            released: 0,
            gauges,
            senders,
        }
    }

    /// Lets `requests` more requests go.
    fn release(&mut self, requests: usize) {
        let total = usize::from(HTTP_SENDERS + GRPC_SENDERS) * usize::from(REQUESTS_PER_SENDER);
        let requests = requests.min(total - self.released);
        self.released += requests;
        self.permits.add_permits(requests);
    }

    fn acknowledged(&self) -> u64 {
        self.gauges.acknowledged.load(Ordering::SeqCst)
    }

    /// Waits until every request released so far is done.
    async fn wait_done(&self) {
        let released = self.released as u64;
        wait_for("the released requests to be answered", || {
            self.gauges.done.load(Ordering::SeqCst) >= released
        })
        .await;
    }

    /// Waits until `acknowledged` requests are acknowledged and one is in flight.
    async fn wait_acknowledged_and_in_flight(&self, acknowledged: u64) {
        wait_for("acknowledged requests with another in flight", || {
            self.acknowledged() >= acknowledged && self.gauges.in_flight.load(Ordering::SeqCst) > 0
        })
        .await;
    }

    /// Sends nothing more, and gathers what became of every request.
    async fn finish(self) -> Outcome {
        self.permits.close();
        let mut all = Outcome::default();
        for sender in self.senders {
            let outcome = tokio::time::timeout(WAIT_AT_MOST, sender)
                .await
                .expect("a sender did not finish")
                .unwrap();
            all.merge(outcome);
        }
        all
    }
}

async fn send(
    sender: u8,
    mut transport: Transport,
    permits: Arc<Semaphore>,
    gauges: Arc<Gauges>,
) -> Outcome {
    let mut outcome = Outcome::default();
    for request in 0..REQUESTS_PER_SENDER {
        let Ok(permit) = permits.acquire().await else {
            break;
        };
        permit.forget();
        let spans = spans_of(sender, request);
        let keys = keys_of(&spans);
        outcome.sent.extend(&keys);
        let while_down = gauges.clickhouse_down.load(Ordering::SeqCst);
        gauges.in_flight.fetch_add(1, Ordering::SeqCst);
        let answer = transport.send(spans).await;
        gauges.in_flight.fetch_sub(1, Ordering::SeqCst);
        match answer {
            Answer::Acknowledged => {
                outcome.acknowledged.push(Acknowledged {
                    spans: keys,
                    while_down,
                });
                gauges.acknowledged.fetch_add(1, Ordering::SeqCst);
            }
            Answer::Refused(answer) => outcome.refused.push(answer),
            Answer::None => outcome.unanswered += 1,
        }
        gauges.done.fetch_add(1, Ordering::SeqCst);
    }
    outcome
}

async fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(
            started.elapsed() < WAIT_AT_MOST,
            "gave up waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// SIGKILL, and what the load had in flight at that moment. No request starts after it.
fn kill_9(served: Served, load: &Load) -> u64 {
    load.permits.close();
    let mut child = served.child;
    let in_flight = load.gauges.in_flight.load(Ordering::SeqCst);
    child.kill().unwrap();
    child.wait().unwrap();
    in_flight
}

fn hex_of(id: &[u8]) -> String {
    hex::encode(id)
}

/// Through the API: every trace with an acknowledged span (or, with `sample`, the long traces
/// and every `sample`th other one) is found, lists each of its spans once, counts as many
/// spans as it lists, and holds every acknowledged span.
async fn assert_read_back(
    http: SocketAddr,
    token: &str,
    acknowledged: &[Acknowledged],
    sample: Option<usize>,
) {
    let mut traces: BTreeMap<TraceId, HashSet<SpanId>> = BTreeMap::new();
    for request in acknowledged {
        for (trace, span) in &request.spans {
            traces.entry(*trace).or_default().insert(*span);
        }
    }
    if let Some(every) = sample {
        let mut others = 0;
        traces.retain(|trace, _| {
            others += 1;
            trace[0] == long_trace(0)[0] || others % every == 0
        });
    }
    let client = reqwest::Client::new();
    for (trace, spans) in &traces {
        let trace = hex_of(trace);
        let response = client
            .get(format!("http://{http}/api/v1/traces/{trace}"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "trace {trace} lost");
        let body: serde_json::Value = response.json().await.unwrap();
        let listed: Vec<&str> = body["spans"]
            .as_array()
            .unwrap()
            .iter()
            .map(|span| span["span_id"].as_str().unwrap())
            .collect();
        let unique: HashSet<&str> = listed.iter().copied().collect();
        assert_eq!(unique.len(), listed.len(), "a span listed twice in {trace}");
        assert_eq!(
            body["trace"]["span_count"],
            listed.len(),
            "the span count of {trace}"
        );
        for span in spans {
            assert!(
                unique.contains(hex_of(span).as_str()),
                "acknowledged span {} of trace {trace} lost",
                hex_of(span)
            );
        }
    }
}

/// From a store's own count of rows per span: every acknowledged span is there once, nothing
/// is there twice, and nothing is there that was not sent.
fn assert_exactly_once(rows: &HashMap<(String, String), u64>, outcome: &Outcome) -> (usize, usize) {
    let sent: HashSet<(String, String)> = outcome
        .sent
        .iter()
        .map(|(trace, span)| (hex_of(trace), hex_of(span)))
        .collect();
    for (key, count) in rows {
        assert_eq!(*count, 1, "span {key:?} stored {count} times");
        assert!(sent.contains(key), "span {key:?} stored but never sent");
    }
    let mut acknowledged = 0;
    for request in &outcome.acknowledged {
        for (trace, span) in &request.spans {
            let key = (hex_of(trace), hex_of(span));
            assert_eq!(rows.get(&key), Some(&1), "acknowledged span {key:?}");
            acknowledged += 1;
        }
    }
    // Spans stored that were not acknowledged: sent by requests in flight at the kill.
    (acknowledged, rows.len() - acknowledged)
}

/// What became of one round of load.
fn report(round: &str, outcome: &Outcome, in_flight: u64) {
    let spans: usize = outcome
        .acknowledged
        .iter()
        .map(|request| request.spans.len())
        .sum();
    let while_down = outcome
        .acknowledged
        .iter()
        .filter(|request| request.while_down)
        .count();
    let while_down = if while_down > 0 {
        format!("; {while_down} requests sent while ClickHouse was stopped")
    } else {
        String::new()
    };
    eprintln!(
        "{round}: {} requests acknowledged ({spans} spans{while_down}), {in_flight} in flight \
         at the kill, {} unanswered, {} refused",
        outcome.acknowledged.len(),
        outcome.unanswered,
        outcome.refused.len(),
    );
}

/// What the store holds, from `assert_exactly_once`.
fn report_stored(backend: &str, (acknowledged, unanswered): (usize, usize)) {
    eprintln!(
        "{backend}: each of the {acknowledged} acknowledged spans stored once, and \
         {unanswered} spans of unanswered requests"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_under_load_on_sqlite_keeps_every_acknowledged_span_once() {
    let data_dir = tempfile::tempdir().unwrap();
    let dir = data_dir.path();
    let served = Served::start(dir, &[]);
    let token = bootstrap_token(dir);
    let mut load = Load::start(&served, &token, 0).await;

    // 300 requests answered; then the rest let go, and the kill once 400 are acknowledged and
    // more are in flight.
    load.release(300);
    load.wait_done().await;
    load.release(usize::MAX);
    load.wait_acknowledged_and_in_flight(400).await;
    let in_flight = kill_9(served, &load);
    let outcome = load.finish().await;
    assert!(
        outcome.refused.is_empty(),
        "nothing refused before the kill: {:?}",
        outcome.refused
    );

    let restarted = Served::start(dir, &[]);
    assert_read_back(restarted.http, &token, &outcome.acknowledged, None).await;
    // SIGTERM: a clean stop, then the file read directly.
    let pid = restarted.child.id().to_string();
    let mut child = restarted.child;
    std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(child.wait().unwrap().success());
    let rows = sqlite_rows(&dir.join("spanhouse.db"));
    report("SQLite", &outcome, in_flight);
    report_stored("SQLite", assert_exactly_once(&rows, &outcome));
}

/// Rows per (trace, span) in the embedded store's file, opened read-only.
fn sqlite_rows(path: &Path) -> HashMap<(String, String), u64> {
    let database =
        rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap();
    let mut statement = database
        .prepare(
            "SELECT lower(hex(trace_id)), lower(hex(span_id)), count(*) FROM spans \
             GROUP BY project_id, trace_id, span_id",
        )
        .unwrap();
    statement
        .query_map([], |row| {
            Ok(((row.get(0)?, row.get(1)?), row.get::<_, i64>(2)? as u64))
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// A ClickHouse of the test's own (scripts/clickhouse.sh), stopped when dropped.
struct OwnClickHouse {
    directory: tempfile::TempDir,
    http_port: u16,
    tcp_port: u16,
}

impl OwnClickHouse {
    /// Starts one on free ports, or `None` (after `require`) when clickhouse-server is not
    /// installed or does not start.
    fn start() -> Option<Self> {
        let installed = std::process::Command::new("sh")
            .args(["-c", "command -v clickhouse-server"])
            .output()
            .is_ok_and(|output| output.status.success());
        require(installed.then_some(()), "clickhouse-server")?;
        // Two free ports, held together so that they differ, and let go for ClickHouse.
        let listeners = [(); 2].map(|()| std::net::TcpListener::bind("127.0.0.1:0").unwrap());
        let [http_port, tcp_port] = listeners.map(|listener| listener.local_addr().unwrap().port());
        let clickhouse = Self {
            directory: tempfile::tempdir().unwrap(),
            http_port,
            tcp_port,
        };
        let started = clickhouse.run_script("start");
        let failure = String::from_utf8_lossy(&started.stderr);
        require(
            started.status.success().then_some(clickhouse),
            &format!("a ClickHouse that starts (scripts/clickhouse.sh start: {failure})"),
        )
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.http_port)
    }

    /// Runs scripts/clickhouse.sh on this instance (`start`, `stop`, `resume`). Blocking.
    fn script(&self, command: &str) {
        let output = self.run_script(command);
        assert!(
            output.status.success(),
            "scripts/clickhouse.sh {command}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    fn run_script(&self, command: &str) -> std::process::Output {
        std::process::Command::new("bash")
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/scripts/clickhouse.sh"
            ))
            .arg(command)
            .env(
                "SPANHOUSE_TEST_CLICKHOUSE_HTTP_PORT",
                self.http_port.to_string(),
            )
            .env(
                "SPANHOUSE_TEST_CLICKHOUSE_TCP_PORT",
                self.tcp_port.to_string(),
            )
            .env("SPANHOUSE_TEST_CLICKHOUSE_DIR", self.directory.path())
            .output()
            .unwrap()
    }

    async fn query(&self, sql: String) -> String {
        let response = reqwest::Client::new()
            .post(self.url())
            .body(sql)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        response.text().await.unwrap()
    }

    /// Rows per (trace, span) in a database's spans: as queries see them (`FINAL`), or every
    /// row inserted and not merged yet.
    async fn rows(&self, database: &str, final_: bool) -> HashMap<(String, String), u64> {
        let table = if final_ { "spans FINAL" } else { "spans" };
        self.query(format!(
            "SELECT lower(trace_id), lower(span_id), count() FROM {database}.{table} \
             GROUP BY project_id, trace_id, span_id FORMAT TSV"
        ))
        .await
        .lines()
        .map(|line| {
            let mut fields = line.split('\t');
            let trace = fields.next().unwrap().to_owned();
            let span = fields.next().unwrap().to_owned();
            let count = fields.next().unwrap().parse().unwrap();
            ((trace, span), count)
        })
        .collect()
    }
}

impl Drop for OwnClickHouse {
    fn drop(&mut self) {
        // Also when the test failed: no assertion here.
        let _ = self.run_script("stop");
    }
}

/// Spool files in a data directory: what was acknowledged and not delivered yet.
fn spool_files(dir: &Path) -> usize {
    std::fs::read_dir(dir.join("spool"))
        .unwrap()
        .filter(|entry| {
            entry
                .as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".spool")
        })
        .count()
}

async fn wait_until_drained(http: SocketAddr) {
    let started = Instant::now();
    while buffered(http).await > 0 {
        assert!(
            started.elapsed() < WAIT_AT_MOST,
            "gave up waiting for the spool to drain"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The `buffered` count `/readyz` reports (also while it answers 503).
async fn buffered(http: SocketAddr) -> u64 {
    let response = reqwest::get(format!("http://{http}/readyz")).await.unwrap();
    let body: serde_json::Value = response.json().await.unwrap();
    body["buffered"].as_u64().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_under_load_on_clickhouse_stopped_and_started_keeps_every_acknowledged_span_once() {
    let Some(clickhouse) = tokio::task::spawn_blocking(OwnClickHouse::start)
        .await
        .unwrap()
    else {
        return;
    };
    let database = fresh_database();
    let data_dir = tempfile::tempdir().unwrap();
    let dir = data_dir.path();
    let url = clickhouse.url();
    let env = [
        ("SPANHOUSE_STORAGE", "clickhouse"),
        ("SPANHOUSE_CLICKHOUSE_URL", url.as_str()),
        ("SPANHOUSE_CLICKHOUSE_DATABASE", database.as_str()),
    ];
    let served = Served::start(dir, &env);
    let token = bootstrap_token(dir);
    let mut load = Load::start(&served, &token, 0).await;

    // ClickHouse stops while requests are being sent and delivered.
    load.release(400);
    wait_for("the first acknowledged requests", || {
        load.acknowledged() >= 100
    })
    .await;
    let clickhouse = tokio::task::spawn_blocking(move || {
        clickhouse.script("stop");
        clickhouse
    })
    .await
    .unwrap();
    load.gauges.clickhouse_down.store(true, Ordering::SeqCst);
    load.wait_done().await;
    // Requests sent while it is stopped: acknowledged from the spool alone.
    load.release(200);
    load.wait_done().await;
    load.release(usize::MAX);
    let acknowledged = load.acknowledged();
    load.wait_acknowledged_and_in_flight(acknowledged + 100)
        .await;
    let in_flight = kill_9(served, &load);
    let outcome = load.finish().await;
    assert!(
        outcome.refused.is_empty(),
        "nothing refused before the kill, ClickHouse stopped or not: {:?}",
        outcome.refused
    );
    assert!(
        outcome
            .acknowledged
            .iter()
            .any(|request| request.while_down),
        "requests were acknowledged while ClickHouse was stopped"
    );
    report("ClickHouse, round one", &outcome, in_flight);
    let spooled = spool_files(dir);

    let clickhouse = tokio::task::spawn_blocking(move || {
        clickhouse.script("resume");
        clickhouse
    })
    .await
    .unwrap();
    let restarted = Served::start(dir, &env);
    wait_until_drained(restarted.http).await;

    // Round two, ClickHouse up: killed again while requests are in flight and the spool is
    // being delivered (a file delivered and not yet removed is delivered again).
    let mut load = Load::start(&restarted, &token, 1).await;
    load.release(200);
    load.wait_done().await;
    load.release(usize::MAX);
    let acknowledged = load.acknowledged();
    load.wait_acknowledged_and_in_flight(acknowledged + 100)
        .await;
    let second_in_flight = kill_9(restarted, &load);
    let second = load.finish().await;
    assert!(
        second.refused.is_empty(),
        "nothing refused before the kill: {:?}",
        second.refused
    );
    let second_spooled = spool_files(dir);
    report("ClickHouse, round two", &second, second_in_flight);
    let mut outcome = outcome;
    outcome.merge(second);

    let restarted = Served::start(dir, &env);
    wait_until_drained(restarted.http).await;
    // A sample through the API (each read is a query of ClickHouse); every span below.
    assert_read_back(restarted.http, &token, &outcome.acknowledged, Some(10)).await;
    restarted.kill_9();

    let rows = clickhouse.rows(&database, true).await;
    report_stored("ClickHouse", assert_exactly_once(&rows, &outcome));
    let raw = clickhouse.rows(&database, false).await;
    let unmerged: u64 = raw.values().map(|count| count - 1).sum();
    eprintln!(
        "ClickHouse: spool files left at the kills: {spooled}, {second_spooled}; rows \
         delivered twice and not merged yet: {unmerged} (FINAL shows each span once)"
    );
    clickhouse
        .query(format!("DROP DATABASE IF EXISTS {database}"))
        .await;
}
