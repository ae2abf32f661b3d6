//! A quick ingest-rate probe: N concurrent connections send LLM-like spans over OTLP/HTTP
//! protobuf and report acknowledged spans per second and request latency. Loopback only.
//!
//! ```sh
//! cargo run --release -- serve --data-dir /tmp/probe &
//! cargo run --release --example ingest_probe -- http://127.0.0.1:4318 "$(cat /tmp/probe/bootstrap-token)" 4 60 1000
//! ```
//! Arguments: URL TOKEN CONNECTIONS REQUESTS_PER_CONNECTION SPANS_PER_REQUEST.

use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message as _;

fn text(key: &str, value: String) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value)),
        }),
        ..Default::default()
    }
}

fn int(key: &str, value: i64) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::IntValue(value)),
        }),
        ..Default::default()
    }
}

/// A number unique to this run of the probe.
fn run_id() -> u64 {
    static RUN_ID: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *RUN_ID.get_or_init(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64
            | 1
    })
}

/// One request: traces of five spans, the LLM spans carrying 1 KiB of input and output.
fn make_request(connection: u64, request: u64, spans: usize) -> ExportTraceServiceRequest {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let filler = "lorem ipsum dolor sit amet ".repeat(40)[..1000].to_owned();
    let spans = (0..spans)
        .map(|index| {
            let trace = (connection << 40) | (request << 16) | (index as u64 / 5);
            let position = index % 5;
            // The second half is this run's own, so that runs never repeat ids (a repeat is a
            // retry, which the server deduplicates instead of storing).
            let mut trace_id = [0u8; 16];
            trace_id[..8].copy_from_slice(&trace.to_be_bytes());
            trace_id[8..].copy_from_slice(&run_id().to_be_bytes());
            Span {
                trace_id: trace_id.to_vec(),
                span_id: ((trace << 3) | (position as u64 + 1))
                    .to_be_bytes()
                    .to_vec(),
                parent_span_id: if position == 0 {
                    Vec::new()
                } else {
                    ((trace << 3) | 1).to_be_bytes().to_vec()
                },
                name: format!("chat gpt-4o-mini {position}"),
                kind: 3,
                start_time_unix_nano: now + position as u64 * 1000,
                end_time_unix_nano: now + 500_000_000,
                attributes: vec![
                    text("input.value", format!("question {index}: {filler}")),
                    text("output.value", format!("answer {index}: {filler}")),
                    text("gen_ai.operation.name", "chat".into()),
                    text("gen_ai.provider.name", "openai".into()),
                    text("gen_ai.request.model", "gpt-4o-mini".into()),
                    text("gen_ai.response.model", "gpt-4o-mini-2024-07-18".into()),
                    int("gen_ai.usage.input_tokens", 250),
                    int("gen_ai.usage.output_tokens", 250),
                    text("session.id", format!("session-{connection}")),
                    text("user.id", "user-1".into()),
                    text("openinference.span.kind", "LLM".into()),
                    int("llm.token_count.total", 500),
                ],
                ..Default::default()
            }
        })
        .collect();
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![text("service.name", "probe".into())],
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

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, url, token, connections, requests, spans] = args.as_slice() else {
        eprintln!(
            "usage: ingest_probe URL TOKEN CONNECTIONS REQUESTS_PER_CONNECTION SPANS_PER_REQUEST"
        );
        std::process::exit(2);
    };
    let host = url.trim_start_matches("http://");
    if !(host.starts_with("127.") || host.starts_with("localhost") || host.starts_with("[::1]")) {
        eprintln!("ingest_probe only sends to loopback addresses");
        std::process::exit(2);
    }
    let connections: u64 = connections.parse().unwrap();
    let requests: u64 = requests.parse().unwrap();
    let spans: usize = spans.parse().unwrap();
    let endpoint = format!("{url}/v1/traces");

    let started = Instant::now();
    let mut workers = Vec::new();
    for connection in 0..connections {
        let client = reqwest::Client::new();
        let endpoint = endpoint.clone();
        let token = token.clone();
        workers.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut failures = 0u64;
            for request in 0..requests {
                let body = make_request(connection, request, spans).encode_to_vec();
                let sent = Instant::now();
                let response = client
                    .post(&endpoint)
                    .bearer_auth(&token)
                    .header("content-type", "application/x-protobuf")
                    .body(body)
                    .send()
                    .await;
                match response {
                    Ok(response) if response.status() == 200 => latencies.push(sent.elapsed()),
                    _ => failures += 1,
                }
            }
            (latencies, failures)
        }));
    }
    let mut latencies: Vec<Duration> = Vec::new();
    let mut failures = 0;
    for worker in workers {
        let (worker_latencies, worker_failures) = worker.await.unwrap();
        latencies.extend(worker_latencies);
        failures += worker_failures;
    }
    let elapsed = started.elapsed();
    latencies.sort();
    let percentile = |p: f64| {
        latencies
            .get(((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1)))
            .map_or(0.0, |latency| latency.as_secs_f64() * 1000.0)
    };
    let acknowledged = latencies.len() * spans;
    println!(
        "acknowledged {acknowledged} spans in {:.1} s: {:.0} spans/s; {failures} requests failed; \
         latency p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        elapsed.as_secs_f64(),
        acknowledged as f64 / elapsed.as_secs_f64(),
        percentile(0.5),
        percentile(0.99),
        percentile(1.0),
    );
}
