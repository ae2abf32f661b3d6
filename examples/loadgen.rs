//! spanhouse's load generator: realistic LLM traces over OTLP, at a fixed duration or span
//! count, with a report of what was acknowledged and a check, through the query API, that the
//! server stored what it acknowledged. Loopback only unless `--allow-remote`.
//!
//! ```sh
//! cargo run --release --example loadgen -- --url http://127.0.0.1:4318 \
//!     --token "$(cat spanhouse-data/bootstrap-token)" --connections 8 --duration 60
//! ```
//! `--help` lists every option.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};
use prost::Message as _;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Protocol {
    /// OTLP/HTTP with protobuf bodies.
    Protobuf,
    /// OTLP/HTTP with JSON bodies.
    Json,
    /// OTLP/gRPC.
    Grpc,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Convention {
    Genai,
    Openinference,
    Traceloop,
    /// A third of each.
    Mix,
}

#[derive(Debug, Parser)]
#[command(about = "Load generator for OTLP trace servers (spanhouse, Phoenix, …)")]
struct Options {
    /// Base URL: http://host:4318 for HTTP, http://host:4317 for gRPC.
    #[arg(long, default_value = "http://127.0.0.1:4318")]
    url: String,
    /// Path of the OTLP endpoint for HTTP.
    #[arg(long, default_value = "/v1/traces")]
    path: String,
    /// Bearer token (omit for servers without authentication).
    #[arg(long)]
    token: Option<String>,
    #[arg(long, value_enum, default_value = "protobuf")]
    protocol: Protocol,
    /// Compress bodies with gzip.
    #[arg(long)]
    gzip: bool,
    /// Concurrent connections, each sending one request after another.
    #[arg(long, default_value_t = 8)]
    connections: usize,
    /// Stop after this many seconds…
    #[arg(long)]
    duration: Option<f64>,
    /// …or after this many spans (default: 100,000 when no duration is given).
    #[arg(long)]
    spans: Option<u64>,
    /// Spans per request.
    #[arg(long, default_value_t = 1000)]
    spans_per_request: usize,
    /// Spans per trace (the first is the root).
    #[arg(long, default_value_t = 5)]
    spans_per_trace: usize,
    /// Bytes of input text and of output text on each LLM span.
    #[arg(long, default_value_t = 1024)]
    text_bytes: usize,
    /// Which convention the spans use.
    #[arg(long, value_enum, default_value = "mix")]
    convention: Convention,
    /// Requests per second per connection (0: as fast as answered).
    #[arg(long, default_value_t = 0.0)]
    rate: f64,
    /// Check afterwards through spanhouse's query API that acknowledged traces were stored
    /// (needs a read or admin token).
    #[arg(long)]
    verify: bool,
    /// Base URL of the query API for --verify (default: --url; give it with --protocol grpc).
    #[arg(long)]
    api_url: Option<String>,
    /// Allow a target that is not on this machine.
    #[arg(long)]
    allow_remote: bool,
    /// Write the report as JSON to this file too.
    #[arg(long)]
    json: Option<std::path::PathBuf>,
}

fn text(key: &str, value: impl Into<String>) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.into())),
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

/// Text of `bytes` bytes that differs per span, so compression sees realistic entropy.
fn filler(bytes: usize, seed: u64) -> String {
    const WORDS: [&str; 16] = [
        "the", "model", "answer", "question", "token", "context", "retrieval", "user", "tool",
        "search", "result", "summary", "document", "prompt", "agent", "reply",
    ];
    let mut state = seed | 1;
    let mut out = String::with_capacity(bytes + 16);
    while out.len() < bytes {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.push_str(WORDS[(state % 16) as usize]);
        out.push(' ');
    }
    out.truncate(bytes);
    out
}

/// The attributes of one LLM span in a convention (about 12 attributes).
fn llm_attributes(convention: Convention, index: u64, input: String, output: String) -> Vec<KeyValue> {
    let convention = match convention {
        Convention::Mix => [Convention::Genai, Convention::Openinference, Convention::Traceloop]
            [(index % 3) as usize],
        other => other,
    };
    match convention {
        Convention::Openinference => vec![
            text("openinference.span.kind", "LLM"),
            text("llm.system", "openai"),
            text("llm.model_name", "gpt-4o-mini-2024-07-18"),
            text("input.value", input.clone()),
            text("output.value", output.clone()),
            text("llm.input_messages.0.message.role", "user"),
            text("llm.input_messages.0.message.content", input),
            text("llm.output_messages.0.message.role", "assistant"),
            text("llm.output_messages.0.message.content", output),
            int("llm.token_count.prompt", 250),
            int("llm.token_count.completion", 250),
            int("llm.token_count.total", 500),
        ],
        Convention::Traceloop => vec![
            text("gen_ai.operation.name", "chat"),
            text("gen_ai.provider.name", "openai"),
            text("gen_ai.request.model", "gpt-4o-mini"),
            text("gen_ai.response.model", "gpt-4o-mini-2024-07-18"),
            text(
                "gen_ai.input.messages",
                serde_json::json!([{"role": "user", "parts": [{"type": "text", "content": input}]}])
                    .to_string(),
            ),
            text(
                "gen_ai.output.messages",
                serde_json::json!([{"role": "assistant", "parts": [{"type": "text", "content": output}], "finish_reason": "stop"}])
                    .to_string(),
            ),
            int("gen_ai.usage.input_tokens", 250),
            int("gen_ai.usage.output_tokens", 250),
            text("traceloop.span.kind", "task"),
            text("traceloop.entity.name", "answer"),
            text("session.id", format!("session-{}", index % 97)),
            text("user.id", format!("user-{}", index % 13)),
        ],
        _ => vec![
            text("gen_ai.operation.name", "chat"),
            text("gen_ai.system", "openai"),
            text("gen_ai.request.model", "gpt-4o-mini"),
            text("gen_ai.response.model", "gpt-4o-mini-2024-07-18"),
            int("gen_ai.usage.input_tokens", 250),
            int("gen_ai.usage.output_tokens", 250),
            text("input.value", input),
            text("output.value", output),
            text("gen_ai.response.finish_reasons", "stop"),
            text("session.id", format!("session-{}", index % 97)),
            text("user.id", format!("user-{}", index % 13)),
            int("gen_ai.request.max_tokens", 512),
        ],
    }
}

/// One request of `spans` spans, ids unique to this run, connection and request.
fn make_request(options: &Options, run: u64, connection: u64, request: u64) -> (ExportTraceServiceRequest, Vec<[u8; 16]>) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let per_trace = options.spans_per_trace.max(1);
    let mut trace_ids = Vec::new();
    let spans = (0..options.spans_per_request)
        .map(|index| {
            let trace_number = (connection << 40) | (request << 12) | (index / per_trace) as u64;
            let position = index % per_trace;
            let mut trace_id = [0u8; 16];
            trace_id[..8].copy_from_slice(&trace_number.to_be_bytes());
            trace_id[8..].copy_from_slice(&run.to_be_bytes());
            if position == 0 {
                trace_ids.push(trace_id);
            }
            let span_id = |position: usize| {
                let mut id = (trace_number.wrapping_mul(31) ^ run).to_be_bytes();
                id[7] = id[7].wrapping_add(position as u8 + 1);
                id[0] |= 1;
                id.to_vec()
            };
            let seed = trace_number ^ run ^ position as u64;
            let attributes = if position == 0 {
                vec![
                    text("input.value", filler(options.text_bytes, seed)),
                    text("output.value", filler(options.text_bytes, seed ^ 7)),
                    text("session.id", format!("session-{}", trace_number % 97)),
                ]
            } else {
                llm_attributes(
                    options.convention,
                    trace_number + position as u64,
                    filler(options.text_bytes, seed),
                    filler(options.text_bytes, seed ^ 7),
                )
            };
            Span {
                trace_id: trace_id.to_vec(),
                span_id: span_id(position),
                parent_span_id: if position == 0 { Vec::new() } else { span_id(0) },
                name: if position == 0 { "interaction".into() } else { "chat gpt-4o-mini".into() },
                kind: if position == 0 { 2 } else { 3 },
                start_time_unix_nano: now + position as u64 * 1_000_000,
                end_time_unix_nano: now + 800_000_000,
                attributes,
                status: Some(Status { code: 1, message: String::new() }),
                ..Default::default()
            }
        })
        .collect();
    let request = ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![text("service.name", "loadgen")],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans { spans, ..Default::default() }],
            schema_url: String::new(),
        }],
    };
    (request, trace_ids)
}

/// OTLP/JSON of a request, as the JavaScript exporter writes it.
fn to_json(request: &ExportTraceServiceRequest) -> Vec<u8> {
    let value = |value: &Option<AnyValue>| match value.as_ref().and_then(|value| value.value.as_ref()) {
        Some(any_value::Value::StringValue(text)) => serde_json::json!({"stringValue": text}),
        Some(any_value::Value::IntValue(number)) => serde_json::json!({"intValue": number.to_string()}),
        _ => serde_json::json!({}),
    };
    let attributes = |attributes: &[KeyValue]| -> Vec<serde_json::Value> {
        attributes
            .iter()
            .map(|kv| serde_json::json!({"key": kv.key, "value": value(&kv.value)}))
            .collect()
    };
    let resource_spans: Vec<serde_json::Value> = request
        .resource_spans
        .iter()
        .map(|resource_spans| {
            let spans: Vec<serde_json::Value> = resource_spans.scope_spans[0]
                .spans
                .iter()
                .map(|span| {
                    serde_json::json!({
                        "traceId": hex::encode(&span.trace_id), "spanId": hex::encode(&span.span_id),
                        "parentSpanId": hex::encode(&span.parent_span_id), "name": span.name, "kind": span.kind,
                        "startTimeUnixNano": span.start_time_unix_nano.to_string(),
                        "endTimeUnixNano": span.end_time_unix_nano.to_string(),
                        "attributes": attributes(&span.attributes), "status": {"code": 1}
                    })
                })
                .collect();
            serde_json::json!({
                "resource": {"attributes": attributes(&resource_spans.resource.as_ref().unwrap().attributes)},
                "scopeSpans": [{"scope": {"name": "loadgen"}, "spans": spans}]
            })
        })
        .collect();
    serde_json::json!({ "resourceSpans": resource_spans }).to_string().into_bytes()
}

fn gzip(body: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(body).unwrap();
    encoder.finish().unwrap()
}

#[derive(Default)]
struct Tally {
    latencies: Vec<Duration>,
    statuses: BTreeMap<String, u64>,
    acknowledged_spans: u64,
    bytes: u64,
    acknowledged_traces: Vec<[u8; 16]>,
}

fn percentile(sorted: &[Duration], fraction: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let index = ((sorted.len() as f64 * fraction).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[index].as_secs_f64() * 1000.0
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let options = Arc::new(Options::parse());
    let host = options.url.trim_start_matches("http://").trim_start_matches("https://");
    let loopback = host.starts_with("127.") || host.starts_with("localhost") || host.starts_with("[::1]");
    anyhow::ensure!(
        loopback || options.allow_remote,
        "{} is not on this machine; pass --allow-remote to load another host",
        options.url
    );
    let span_budget = match (options.duration, options.spans) {
        (_, Some(spans)) => Some(spans),
        (None, None) => Some(100_000),
        (Some(_), None) => None,
    };
    let deadline = options.duration.map(|seconds| Instant::now() + Duration::from_secs_f64(seconds));
    let run = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_nanos() as u64 | 1;
    let requests_left = Arc::new(AtomicU64::new(
        span_budget.map_or(u64::MAX, |spans| spans.div_ceil(options.spans_per_request as u64)),
    ));
    let started = Instant::now();
    let mut workers = Vec::new();
    for connection in 0..options.connections as u64 {
        let options = Arc::clone(&options);
        let requests_left = Arc::clone(&requests_left);
        workers.push(tokio::spawn(async move {
            let mut tally = Tally::default();
            let http = reqwest::Client::new();
            let mut grpc = if options.protocol == Protocol::Grpc {
                let client = TraceServiceClient::connect(options.url.clone()).await?;
                Some(if options.gzip {
                    client.send_compressed(tonic::codec::CompressionEncoding::Gzip)
                } else {
                    client
                })
            } else {
                None
            };
            let mut request_number = 0u64;
            loop {
                if deadline.is_some_and(|deadline| Instant::now() >= deadline) {
                    break;
                }
                if requests_left
                    .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| left.checked_sub(1))
                    .is_err()
                {
                    break;
                }
                let (request, trace_ids) = make_request(&options, run, connection, request_number);
                request_number += 1;
                let sent = Instant::now();
                let status = if let Some(grpc) = grpc.as_mut() {
                    tally.bytes += request.encoded_len() as u64;
                    let mut call = tonic::Request::new(request);
                    if let Some(token) = &options.token {
                        call.metadata_mut().insert("authorization", format!("Bearer {token}").parse()?);
                    }
                    match grpc.export(call).await {
                        Ok(_) => "OK".to_owned(),
                        Err(status) => format!("{:?}", status.code()),
                    }
                } else {
                    let (content_type, mut body) = match options.protocol {
                        Protocol::Json => ("application/json", to_json(&request)),
                        _ => ("application/x-protobuf", request.encode_to_vec()),
                    };
                    let mut builder = http
                        .post(format!("{}{}", options.url, options.path))
                        .header("content-type", content_type);
                    if options.gzip {
                        body = gzip(&body);
                        builder = builder.header("content-encoding", "gzip");
                    }
                    if let Some(token) = &options.token {
                        builder = builder.bearer_auth(token);
                    }
                    tally.bytes += body.len() as u64;
                    match builder.body(body).send().await {
                        Ok(response) => {
                            let status = response.status().as_u16().to_string();
                            let _ = response.bytes().await;
                            status
                        }
                        Err(error) => format!("error: {error}"),
                    }
                };
                let ok = status == "200" || status == "OK";
                if ok {
                    tally.latencies.push(sent.elapsed());
                    tally.acknowledged_spans += options.spans_per_request as u64;
                    tally.acknowledged_traces.extend(trace_ids);
                } else if status == "429" || status == "503" || status == "Unavailable" || status == "ResourceExhausted" {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                *tally.statuses.entry(status).or_default() += 1;
                if options.rate > 0.0 {
                    let period = Duration::from_secs_f64(1.0 / options.rate);
                    if let Some(rest) = period.checked_sub(sent.elapsed()) {
                        tokio::time::sleep(rest).await;
                    }
                }
            }
            anyhow::Ok(tally)
        }));
    }
    let mut total = Tally::default();
    for worker in workers {
        let tally = worker.await??;
        total.latencies.extend(tally.latencies);
        for (status, count) in tally.statuses {
            *total.statuses.entry(status).or_default() += count;
        }
        total.acknowledged_spans += tally.acknowledged_spans;
        total.bytes += tally.bytes;
        total.acknowledged_traces.extend(tally.acknowledged_traces);
    }
    let elapsed = started.elapsed().as_secs_f64();
    total.latencies.sort();
    let mut report = serde_json::json!({
        "protocol": format!("{:?}", options.protocol).to_lowercase(),
        "gzip": options.gzip,
        "connections": options.connections,
        "spans_per_request": options.spans_per_request,
        "seconds": elapsed,
        "acknowledged_spans": total.acknowledged_spans,
        "spans_per_second": total.acknowledged_spans as f64 / elapsed,
        "megabytes_per_second": total.bytes as f64 / elapsed / 1e6,
        "latency_ms": {
            "p50": percentile(&total.latencies, 0.50), "p90": percentile(&total.latencies, 0.90),
            "p99": percentile(&total.latencies, 0.99), "max": percentile(&total.latencies, 1.0),
        },
        "statuses": total.statuses,
    });
    println!(
        "acknowledged {} spans in {elapsed:.1} s: {:.0} spans/s, {:.1} MB/s sent; latency ms p50 {:.1} p90 {:.1} p99 {:.1} max {:.1}; statuses {}",
        total.acknowledged_spans,
        report["spans_per_second"].as_f64().unwrap_or(0.0),
        report["megabytes_per_second"].as_f64().unwrap_or(0.0),
        report["latency_ms"]["p50"], report["latency_ms"]["p90"], report["latency_ms"]["p99"], report["latency_ms"]["max"],
        report["statuses"],
    );
    if options.verify {
        let verified = verify(&options, &total.acknowledged_traces).await?;
        report["verified_traces"] = verified.into();
        println!("verified: {verified} acknowledged traces sampled through the query API, all stored whole");
    }
    if let Some(path) = &options.json {
        std::fs::write(path, serde_json::to_vec_pretty(&report)?)?;
    }
    Ok(())
}

/// Reads a sample of the acknowledged traces back (spanhouse's query API) and checks each has
/// all its spans; fails on the first that does not.
async fn verify(options: &Options, traces: &[[u8; 16]]) -> anyhow::Result<usize> {
    let http = reqwest::Client::new();
    let step = (traces.len() / 200).max(1);
    let base = options.api_url.clone().unwrap_or_else(|| options.url.clone());
    let mut checked = 0;
    for trace in traces.iter().step_by(step) {
        let mut found = None;
        // The ClickHouse backend delivers its spool shortly after acknowledging.
        for _ in 0..300 {
            let mut request = http.get(format!("{base}/api/v1/traces/{}", hex::encode(trace)));
            if let Some(token) = &options.token {
                request = request.bearer_auth(token);
            }
            let response = request.send().await?;
            if response.status() == 200 {
                let body: serde_json::Value = response.json().await?;
                let count = body["trace"]["span_count"].as_u64().unwrap_or(0);
                if count == options.spans_per_trace.min(options.spans_per_request) as u64 {
                    found = Some(count);
                    break;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        anyhow::ensure!(found.is_some(), "trace {} was acknowledged but is not stored whole", hex::encode(trace));
        checked += 1;
    }
    Ok(checked)
}
