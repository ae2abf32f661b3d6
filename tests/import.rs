//! `spanhouse import` (SPEC §9) against a real server: the Collector file exporter's formats
//! and OTLP documents, compressed and not, of traces dated last year; a second run; a server
//! that answers 429.

mod common;

use std::io::Write as _;
use std::path::Path;

use common::{TestServer, process, string_attribute};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message as _;
use serde_json::{Value, json};
use time::format_description::well_known::Rfc3339;
use tokio::process::Command;

const DAY_NANOS: u64 = 86_400 * 1_000_000_000;

fn now_nanos() -> u64 {
    time::OffsetDateTime::now_utc().unix_timestamp_nanos() as u64
}

fn rfc3339(nanos: u64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(nanos as i128)
        .unwrap()
        .format(&Rfc3339)
        .unwrap()
}

/// Trace `number`'s id: distinct per test file and trace.
fn trace_id(number: u32) -> Vec<u8> {
    let mut id = vec![0x1d; 16];
    id[12..].copy_from_slice(&number.to_be_bytes());
    id
}

/// When trace `number` started: last year, a minute apart.
fn started(base: u64, number: u32) -> u64 {
    base + u64::from(number) * 60_000_000_000
}

/// A request of traces `numbers`, each a root LLM call and a child tool span.
fn traces(base: u64, numbers: std::ops::Range<u32>) -> ExportTraceServiceRequest {
    let spans = numbers
        .flat_map(|number| {
            let start = started(base, number);
            let root = Span {
                trace_id: trace_id(number),
                span_id: vec![1, 0, 0, 0, 0, 0, 0, (number % 251) as u8],
                name: "chat gpt-4o".into(),
                kind: 3,
                start_time_unix_nano: start,
                end_time_unix_nano: start + 2_000_000_000,
                attributes: vec![
                    string_attribute("gen_ai.operation.name", "chat"),
                    string_attribute("gen_ai.request.model", "gpt-4o"),
                    string_attribute("user.id", &format!("importer-{number}")),
                ],
                ..Default::default()
            };
            let child = Span {
                trace_id: trace_id(number),
                span_id: vec![2, 0, 0, 0, 0, 0, 0, (number % 251) as u8],
                parent_span_id: root.span_id.clone(),
                name: "lookup".into(),
                start_time_unix_nano: start + 100_000_000,
                end_time_unix_nano: start + 900_000_000,
                ..Default::default()
            };
            [root, child]
        })
        .collect();
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(opentelemetry_proto::tonic::resource::v1::Resource {
                attributes: vec![string_attribute("service.name", "backfill")],
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

/// OTLP/JSON of a request, as the Collector writes it (hex ids, strings for 64-bit numbers).
fn otlp_json(request: &ExportTraceServiceRequest) -> Value {
    let resource_spans = request.resource_spans.iter().map(|resource| {
        let spans: Vec<Value> = resource.scope_spans[0]
            .spans
            .iter()
            .map(|span| {
                json!({
                    "traceId": hex::encode(&span.trace_id),
                    "spanId": hex::encode(&span.span_id),
                    "parentSpanId": hex::encode(&span.parent_span_id),
                    "name": span.name,
                    "kind": span.kind,
                    "startTimeUnixNano": span.start_time_unix_nano.to_string(),
                    "endTimeUnixNano": span.end_time_unix_nano.to_string(),
                    "attributes": span.attributes.iter().map(|attribute| json!({
                        "key": attribute.key,
                        "value": {"stringValue": match attribute.value.as_ref().and_then(|v| v.value.as_ref()) {
                            Some(opentelemetry_proto::tonic::common::v1::any_value::Value::StringValue(text)) => text.clone(),
                            _ => String::new(),
                        }},
                    })).collect::<Vec<_>>(),
                    "status": {},
                })
            })
            .collect();
        json!({
            "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "backfill"}}]},
            "scopeSpans": [{"scope": {"name": "importer-test"}, "spans": spans}],
        })
    });
    json!({"resourceSpans": resource_spans.collect::<Vec<_>>()})
}

fn prefixed(records: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    for record in records {
        out.extend((record.len() as u32).to_be_bytes());
        out.extend(record);
    }
    out
}

fn zstd(bytes: &[u8]) -> Vec<u8> {
    zstd::stream::encode_all(bytes, 3).unwrap()
}

/// Writes the same kind of traces in every format `spanhouse import` reads, three traces per
/// file; returns how many traces.
fn write_every_format(dir: &Path, base: u64) -> u32 {
    let mut next = 0;
    let mut batch = |count: u32| {
        let request = traces(base, next..next + count);
        next += count;
        request
    };
    let lines = |requests: &[ExportTraceServiceRequest]| {
        requests
            .iter()
            .map(|request| otlp_json(request).to_string() + "\n")
            .collect::<String>()
    };
    let (a, b) = (batch(1), batch(2));
    std::fs::write(dir.join("traces.json"), lines(&[a, b])).unwrap();
    std::fs::write(
        dir.join("traces.json.gz"),
        common::gzip(lines(&[batch(3)]).as_bytes()),
    )
    .unwrap();
    std::fs::write(
        dir.join("traces-zstd-stream.json"),
        zstd(lines(&[batch(3)]).as_bytes()),
    )
    .unwrap();
    let (a, b) = (batch(2), batch(1));
    std::fs::write(
        dir.join("traces.binpb"),
        prefixed(&[a.encode_to_vec(), b.encode_to_vec()]),
    )
    .unwrap();
    // The file exporter's older `compression: zstd`: each record compressed, then prefixed.
    std::fs::write(
        dir.join("traces-per-record.zst"),
        prefixed(&[zstd(&batch(3).encode_to_vec())]),
    )
    .unwrap();
    let nested = dir.join("documents");
    std::fs::create_dir(&nested).unwrap();
    std::fs::write(
        nested.join("pretty.json"),
        serde_json::to_string_pretty(&otlp_json(&batch(3))).unwrap(),
    )
    .unwrap();
    std::fs::write(nested.join("body.pb"), batch(3).encode_to_vec()).unwrap();
    let mut file = std::fs::File::create(nested.join("metrics.json")).unwrap();
    writeln!(file, r#"{{"resourceMetrics":[]}}"#).unwrap();
    next
}

/// Runs `spanhouse import` and returns whether it succeeded, with its stderr. A child process
/// awaited, not waited for: the server answering it runs on this test's runtime.
async fn import(server: &TestServer, token: &str, args: &[&str]) -> (bool, String) {
    let output = Command::new(process::binary())
        .arg("import")
        .args(args)
        .args(["--url", &server.url(""), "--token", token])
        .env("SPANHOUSE_DATA_DIR", server.data_dir.path())
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    (output.status.success(), stderr)
}

/// The project's traces in `[start, end)`, all pages.
async fn listed(server: &TestServer, start: u64, end: u64) -> Vec<Value> {
    let mut traces = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut path = format!(
            "/api/v1/traces?limit=1000&start={}&end={}",
            rfc3339(start),
            rfc3339(end)
        );
        if let Some(cursor) = &cursor {
            path.push_str(&format!("&cursor={cursor}"));
        }
        let (status, page) = server.get_json(&path, &server.admin_token).await;
        assert_eq!(status, 200, "{page}");
        traces.extend(page["traces"].as_array().unwrap().iter().cloned());
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return traces,
        }
    }
}

#[tokio::test]
async fn collector_files_of_last_year_land_at_their_own_time_once() {
    let server = TestServer::start().await;
    let token = server.create_token("default", "ingest").await;
    server.wait_for_token(&token).await;
    let dir = tempfile::tempdir().unwrap();
    let base = (now_nanos() - 365 * DAY_NANOS) / 1_000_000_000 * 1_000_000_000;
    let count = write_every_format(dir.path(), base);
    let dir_arg = dir.path().to_str().unwrap();

    let (ok, stderr) = import(&server, &token, &[dir_arg]).await;
    assert!(ok, "{stderr}");
    let spans = count * 2;
    assert!(
        stderr.contains(&format!(
            "import: 8 files, {spans} spans sent: {spans} accepted, 0 rejected, 0 not delivered"
        )),
        "{stderr}"
    );
    assert!(stderr.contains("1 metrics documents skipped"), "{stderr}");
    server.settle(&server.admin_token).await;

    let window = (base - DAY_NANOS, base + DAY_NANOS);
    let check = |traces: Vec<Value>| {
        assert_eq!(traces.len(), count as usize);
        for record in &traces {
            let number =
                u32::from_str_radix(&record["trace_id"].as_str().unwrap()[24..], 16).unwrap();
            let timestamp =
                time::OffsetDateTime::parse(record["timestamp"].as_str().unwrap(), &Rfc3339)
                    .unwrap()
                    .unix_timestamp_nanos() as u64;
            assert_eq!(timestamp, started(base, number), "{record}");
            assert_eq!(record["span_count"], 2, "{record}");
            assert_eq!(record["service_name"], "backfill", "{record}");
            assert_eq!(record["user_id"], format!("importer-{number}"), "{record}");
        }
    };
    check(listed(&server, window.0, window.1).await);
    // Nothing of it is in the last day, where a receiver stamping arrival times would put it.
    assert!(
        listed(&server, now_nanos() - DAY_NANOS, now_nanos() + DAY_NANOS)
            .await
            .is_empty()
    );

    let (ok, stderr) = import(&server, &token, &[dir_arg]).await;
    assert!(ok, "{stderr}");
    server.settle(&server.admin_token).await;
    check(listed(&server, window.0, window.1).await);
    let (_, trace) = server
        .get_json(
            &format!("/api/v1/traces/{}", hex::encode(trace_id(0))),
            &server.admin_token,
        )
        .await;
    assert_eq!(trace["spans"].as_array().unwrap().len(), 2, "{trace}");
    server.stop().await;
}

#[tokio::test]
async fn a_rate_limited_server_is_waited_out() {
    let server = TestServer::start().await;
    let (status, body) = server
        .put_json(
            "/api/v1/project/settings",
            &server.admin_token,
            json!({"rate_limit": 20, "rate_limit_burst": 20}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let dir = tempfile::tempdir().unwrap();
    let base = (now_nanos() - 30 * DAY_NANOS) / 1_000_000_000 * 1_000_000_000;
    let lines: String = (0..10)
        .map(|part| otlp_json(&traces(base, part * 5..part * 5 + 5)).to_string() + "\n")
        .collect();
    let file = dir.path().join("limited.json");
    std::fs::write(&file, lines).unwrap();

    let (ok, stderr) = import(
        &server,
        &server.admin_token,
        &[
            file.to_str().unwrap(),
            "--batch-spans",
            "10",
            "--concurrency",
            "2",
        ],
    )
    .await;
    assert!(ok, "{stderr}");
    assert!(
        stderr.contains("100 spans sent: 100 accepted, 0 rejected, 0 not delivered"),
        "{stderr}"
    );
    let retries: u64 = stderr
        .split("; ")
        .find_map(|part| part.strip_suffix(" retries"))
        .and_then(|count| count.parse().ok())
        .unwrap_or_else(|| panic!("no retries in {stderr}"));
    assert!(retries > 0, "the server never answered 429: {stderr}");
    server.settle(&server.admin_token).await;
    assert_eq!(
        listed(&server, base - DAY_NANOS, base + DAY_NANOS)
            .await
            .len(),
        50
    );
    server.stop().await;
}

#[tokio::test]
async fn a_wrong_token_stops_the_import_and_unreadable_files_fail_it() {
    let server = TestServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let base = now_nanos() - DAY_NANOS;
    let file = dir.path().join("one.json");
    std::fs::write(&file, otlp_json(&traces(base, 0..1)).to_string()).unwrap();
    let (ok, stderr) = import(&server, "not-a-token", &[file.to_str().unwrap()]).await;
    assert!(!ok);
    assert!(stderr.contains("401"), "{stderr}");

    let read = server.create_token("default", "read").await;
    server.wait_for_token(&read).await;
    let (ok, stderr) = import(&server, &read, &[file.to_str().unwrap()]).await;
    assert!(!ok);
    assert!(stderr.contains("403"), "{stderr}");

    let broken = dir.path().join("broken.json");
    std::fs::write(&broken, "{\"resourceSpans\": [}\n").unwrap();
    let (ok, stderr) = import(
        &server,
        &server.admin_token,
        &[dir.path().to_str().unwrap()],
    )
    .await;
    assert!(!ok, "{stderr}");
    assert!(stderr.contains("broken.json"), "{stderr}");
    assert!(stderr.contains("2 spans sent: 2 accepted"), "{stderr}");
    server.stop().await;
}
