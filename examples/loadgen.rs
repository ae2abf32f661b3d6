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
use prost::Message as _;
use spanhouse::synthetic::{Convention, Shape, Template, make_request, scramble};

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
enum ConventionArg {
    Genai,
    Openinference,
    Traceloop,
    /// A third of each.
    Mix,
}

impl From<ConventionArg> for Convention {
    fn from(convention: ConventionArg) -> Self {
        match convention {
            ConventionArg::Genai => Convention::Genai,
            ConventionArg::Openinference => Convention::Openinference,
            ConventionArg::Traceloop => Convention::Traceloop,
            ConventionArg::Mix => Convention::Mix,
        }
    }
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
    convention: ConventionArg,
    /// Send each trace's root with the next request, after its children, as SDKs' batch
    /// processors split traces (children end and are exported first).
    #[arg(long)]
    late_roots: bool,
    /// Requests made and encoded before the load starts, then sent over and over, each copy
    /// with trace and span ids of its own and times of its sending (OTLP/HTTP protobuf of whole
    /// traces; gRPC, JSON and --late-roots make every request anew). A request's texts are
    /// all distinct; a text comes back every this many requests. 0: make every request anew,
    /// which costs the generator ~12 µs of CPU per span, taken from the server it measures.
    #[arg(long, default_value_t = 16)]
    templates: usize,
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

/// What a connection sends next.
enum Outgoing {
    /// A request to encode, or for gRPC to hand to tonic.
    Request(ExportTraceServiceRequest),
    /// OTLP/HTTP protobuf, encoded (a template's copy).
    Encoded(Vec<u8>),
}

fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_nanos() as u64)
}

/// OTLP/JSON of a request, as the JavaScript exporter writes it.
fn to_json(request: &ExportTraceServiceRequest) -> Vec<u8> {
    let value =
        |value: &Option<AnyValue>| match value.as_ref().and_then(|value| value.value.as_ref()) {
            Some(any_value::Value::StringValue(text)) => serde_json::json!({"stringValue": text}),
            Some(any_value::Value::IntValue(number)) => {
                serde_json::json!({"intValue": number.to_string()})
            }
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
    serde_json::json!({ "resourceSpans": resource_spans })
        .to_string()
        .into_bytes()
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
    let host = options
        .url
        .trim_start_matches("http://")
        .trim_start_matches("https://");
    let loopback =
        host.starts_with("127.") || host.starts_with("localhost") || host.starts_with("[::1]");
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
    let deadline = options
        .duration
        .map(|seconds| Instant::now() + Duration::from_secs_f64(seconds));
    let run = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_nanos() as u64
        | 1;
    let requests_left = Arc::new(AtomicU64::new(span_budget.map_or(u64::MAX, |spans| {
        spans.div_ceil(options.spans_per_request as u64)
    })));
    let shape = Shape {
        spans_per_request: options.spans_per_request,
        spans_per_trace: options.spans_per_trace,
        text_bytes: options.text_bytes,
        convention: options.convention.into(),
        late_roots: options.late_roots,
    };
    let templates =
        if options.templates > 0 && options.protocol == Protocol::Protobuf && !options.late_roots {
            let made = (0..options.templates as u64)
                .map(|number| {
                    let (request, completed) = make_request(&shape, run, 0, number);
                    Template::new(&request, completed)
                })
                .collect::<Result<Vec<_>, _>>()?;
            Some(Arc::new(made))
        } else {
            None
        };
    let started = Instant::now();
    let mut workers = Vec::new();
    for connection in 0..options.connections as u64 {
        let options = Arc::clone(&options);
        let requests_left = Arc::clone(&requests_left);
        let templates = templates.clone();
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
            if options.rate > 0.0 {
                // Paced connections start spread over one period, as independent clients do,
                // rather than all sending at the same instant every period.
                let offset = connection as f64 / options.connections as f64 / options.rate;
                tokio::time::sleep(Duration::from_secs_f64(offset)).await;
            }
            loop {
                if deadline.is_some_and(|deadline| Instant::now() >= deadline) {
                    break;
                }
                if requests_left
                    .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| {
                        left.checked_sub(1)
                    })
                    .is_err()
                {
                    break;
                }
                let number = request_number;
                request_number += 1;
                // A copy of a template, or a request made anew.
                let (request, trace_ids) = match &templates {
                    Some(templates) => {
                        let template =
                            &templates[((connection + number) as usize) % templates.len()];
                        let mut body = Vec::new();
                        // The run's part scrambled: copies of two runs share no ids.
                        let key = scramble(run) ^ (connection << 40 | number);
                        let trace_ids = template.stamp(key, now_ns(), &mut body);
                        (Outgoing::Encoded(body), trace_ids)
                    }
                    None => {
                        let (request, trace_ids) = make_request(&shape, run, connection, number);
                        (Outgoing::Request(request), trace_ids)
                    }
                };
                // From the request leaving for the server to its answer. Over HTTP the body is
                // encoded (and gzipped) first, as an SDK's exporter does before it sends; over
                // gRPC tonic encodes inside the call.
                let mut sent = Instant::now();
                let status = match (grpc.as_mut(), request) {
                    (Some(grpc), Outgoing::Request(request)) => {
                        tally.bytes += request.encoded_len() as u64;
                        let mut call = tonic::Request::new(request);
                        if let Some(token) = &options.token {
                            call.metadata_mut()
                                .insert("authorization", format!("Bearer {token}").parse()?);
                        }
                        match grpc.export(call).await {
                            Ok(_) => "OK".to_owned(),
                            Err(status) => format!("{:?}", status.code()),
                        }
                    }
                    (_, request) => {
                        let (content_type, mut body) = match (request, options.protocol) {
                            (Outgoing::Encoded(body), _) => ("application/x-protobuf", body),
                            (Outgoing::Request(request), Protocol::Json) => {
                                ("application/json", to_json(&request))
                            }
                            (Outgoing::Request(request), _) => {
                                ("application/x-protobuf", request.encode_to_vec())
                            }
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
                        sent = Instant::now();
                        match builder.body(body).send().await {
                            Ok(response) => {
                                let status = response.status().as_u16().to_string();
                                let _ = response.bytes().await;
                                status
                            }
                            Err(error) => format!("error: {error}"),
                        }
                    }
                };
                let ok = status == "200" || status == "OK";
                if ok {
                    tally.latencies.push(sent.elapsed());
                    tally.acknowledged_spans += options.spans_per_request as u64;
                    tally.acknowledged_traces.extend(trace_ids);
                } else if status == "429"
                    || status == "503"
                    || status == "Unavailable"
                    || status == "ResourceExhausted"
                {
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
        report["latency_ms"]["p50"],
        report["latency_ms"]["p90"],
        report["latency_ms"]["p99"],
        report["latency_ms"]["max"],
        report["statuses"],
    );
    if options.verify {
        let verified = verify(&options, &total.acknowledged_traces).await?;
        report["verified_traces"] = verified.into();
        println!(
            "verified: {verified} acknowledged traces sampled through the query API, all stored whole"
        );
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
    let base = options
        .api_url
        .clone()
        .unwrap_or_else(|| options.url.clone());
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
        anyhow::ensure!(
            found.is_some(),
            "trace {} was acknowledged but is not stored whole",
            hex::encode(trace)
        );
        checked += 1;
    }
    Ok(checked)
}
