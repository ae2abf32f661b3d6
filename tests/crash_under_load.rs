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

#[path = "crash_under_load/checks.rs"]
mod checks;
use checks::*;
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
