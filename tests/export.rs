//! `GET /api/v1/export` against the real server, on either backend: 3,000 traces (more than a
//! page) come out whole and oldest first in every format, filters and windows hold, and the
//! `otlp` export posted to another project gives the same TraceRecords.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::*;
use futures_util::StreamExt as _;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::span::{Event, Link};
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};
use serde_json::{Value, json};
use spanhouse::model::time::format_rfc3339;

const TRACES: usize = 3_000;

fn trace_id(index: usize) -> Vec<u8> {
    let mut id = vec![0x5e; 16];
    id[8..].copy_from_slice(&(index as u64).to_be_bytes());
    id
}

/// Trace `index`: a root with input, output and a user, and an LLM call with tokens, a cost,
/// an event and a link; services vary, so a request holds several resources.
fn trace_spans(index: usize, start: u64) -> (String, Vec<Span>) {
    let id = trace_id(index);
    let root = Span {
        trace_id: id.clone(),
        span_id: vec![1; 8],
        name: "agent".into(),
        kind: 2,
        start_time_unix_nano: start,
        end_time_unix_nano: start + 250_000_000,
        attributes: vec![
            string_attribute(
                "input.value",
                &format!("question {index}, \"quoted\"\nline"),
            ),
            string_attribute("output.value", &format!("answer {index}")),
            string_attribute("user.id", &format!("u-{}", index % 7)),
            int_attribute("attempt", index as i64),
        ],
        status: Some(Status {
            code: if index.is_multiple_of(10) { 2 } else { 1 },
            message: if index.is_multiple_of(10) {
                "boom".into()
            } else {
                String::new()
            },
        }),
        links: if index > 0 {
            vec![Link {
                trace_id: trace_id(index - 1),
                span_id: vec![1; 8],
                ..Default::default()
            }]
        } else {
            Vec::new()
        },
        ..Default::default()
    };
    let llm = Span {
        trace_id: id,
        span_id: vec![2; 8],
        parent_span_id: vec![1; 8],
        name: "chat".into(),
        kind: 3,
        start_time_unix_nano: start + 1_000,
        end_time_unix_nano: start + 200_000_000,
        attributes: vec![
            string_attribute("gen_ai.operation.name", "chat"),
            string_attribute(
                "gen_ai.request.model",
                if index.is_multiple_of(2) {
                    "gpt-4o-mini"
                } else {
                    "claude-3-haiku"
                },
            ),
            int_attribute("gen_ai.usage.input_tokens", 10 + index as i64),
            int_attribute("gen_ai.usage.output_tokens", 5),
            double_attribute("llm.cost.total", 0.1 + index as f64 * 1e-7),
        ],
        events: vec![Event {
            time_unix_nano: start + 2_000,
            name: "retry".into(),
            attributes: vec![int_attribute("n", 1)],
            ..Default::default()
        }],
        ..Default::default()
    };
    (format!("svc-{}", index % 3), vec![root, llm])
}

/// Sends the traces `range` (timestamps `base + index` ms), a few hundred per request.
async fn seed(server: &TestServer, token: &str, base: u64, range: std::ops::Range<usize>) {
    let indexes: Vec<usize> = range.collect();
    for chunk in indexes.chunks(250) {
        let mut by_service: BTreeMap<String, Vec<Span>> = BTreeMap::new();
        for index in chunk {
            let (service, spans) = trace_spans(*index, timestamp(base, *index));
            by_service.entry(service).or_default().extend(spans);
        }
        let request = ExportTraceServiceRequest {
            resource_spans: by_service
                .into_iter()
                .map(|(service, spans)| ResourceSpans {
                    resource: Some(Resource {
                        attributes: vec![string_attribute("service.name", &service)],
                        ..Default::default()
                    }),
                    scope_spans: vec![ScopeSpans {
                        spans,
                        ..Default::default()
                    }],
                    schema_url: String::new(),
                })
                .collect(),
        };
        let response = server.post_protobuf("/v1/traces", token, &request).await;
        assert_eq!(response.status(), 200);
    }
    server.settle(token).await;
}

fn timestamp(base: u64, index: usize) -> u64 {
    base + index as u64 * 1_000_000
}

/// An export's status, headers and body.
async fn export(
    server: &TestServer,
    token: &str,
    query: &[(&str, &str)],
) -> (u16, reqwest::header::HeaderMap, String) {
    let mut url = reqwest::Url::parse(&server.url("/api/v1/export")).unwrap();
    if !query.is_empty() {
        url.query_pairs_mut().extend_pairs(query);
    }
    let response = server
        .client
        .get(url)
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let (status, headers) = (response.status().as_u16(), response.headers().clone());
    (status, headers, response.text().await.unwrap())
}

/// A GET of the query API, without `get_json`'s wait for the spool (done once before).
async fn get(server: &TestServer, path: &str, token: &str) -> (u16, Value) {
    let response = server
        .client
        .get(server.url(path))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

fn lines(body: &str) -> Vec<Value> {
    body.lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

fn hex_of(index: usize) -> String {
    hex::encode(trace_id(index))
}

/// The trace ids of a jsonl export, in its order.
fn jsonl_ids(body: &str) -> Vec<String> {
    lines(body)
        .iter()
        .map(|line| line["trace"]["trace_id"].as_str().unwrap().to_owned())
        .collect()
}

/// A strict RFC 4180 reader.
fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let (mut rows, mut row, mut field) = (Vec::new(), Vec::new(), String::new());
    let mut chars = text.chars().peekable();
    let mut quoted = false;
    while let Some(char) = chars.next() {
        match (quoted, char) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (true, '"') => quoted = false,
            (true, other) => field.push(other),
            (false, '"') => quoted = true,
            (false, ',') => row.push(std::mem::take(&mut field)),
            (false, '\r') => {
                assert_eq!(chars.next(), Some('\n'), "CRLF line ends");
                row.push(std::mem::take(&mut field));
                rows.push(std::mem::take(&mut row));
            }
            (false, other) => field.push(other),
        }
    }
    assert!(
        !quoted && field.is_empty() && row.is_empty(),
        "a whole last row"
    );
    rows
}

#[tokio::test]
async fn three_thousand_traces_come_out_whole_in_every_format_and_import_back_the_same() {
    let server = TestServer::start().await;
    let token = server.admin_token.clone();
    let read = server.create_token("default", "read").await;
    server.wait_for_token(&read).await;
    let base = recent(7_200);
    seed(&server, &token, base, 0..TRACES).await;
    for index in [0, TRACES - 1] {
        let (status, body) = server
            .post_json(
                "/api/v1/scores",
                &token,
                json!({"trace_id": hex_of(index), "name": "quality", "value": 0.5}),
            )
            .await;
        assert_eq!(status, 200, "{body}");
    }
    let all_ids: Vec<String> = (0..TRACES).map(hex_of).collect();

    // jsonl, the default: every trace once, oldest first, with its spans and scores.
    let (status, headers, body) = export(&server, &read, &[]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(headers["content-type"], "application/x-ndjson");
    assert_eq!(
        headers["content-disposition"],
        "attachment; filename=\"spanhouse-export.jsonl\""
    );
    assert!(
        !headers.contains_key("content-length"),
        "the body is streamed, not sized up front"
    );
    let traces = lines(&body);
    assert_eq!(jsonl_ids(&body), all_ids);
    for (index, line) in traces.iter().enumerate() {
        let spans = line["spans"].as_array().unwrap();
        assert_eq!(spans.len(), 2, "{line}");
        assert!(spans.iter().all(|span| span["trace_id"] == all_ids[index]));
        assert_eq!(
            line["trace"]["input"],
            format!("question {index}, \"quoted\"\nline")
        );
        assert_eq!(line["trace"]["span_count"], 2);
    }
    assert_eq!(traces[0]["scores"][0]["name"], "quality");
    assert_eq!(traces[0]["trace"]["scores"], json!({"quality": 0.5}));
    assert_eq!(traces[1]["scores"], json!([]));

    // csv: a header, then one row per trace that reads back.
    let (status, headers, body) = export(&server, &read, &[("format", "csv")]).await;
    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], "text/csv; charset=utf-8");
    let rows = parse_csv(&body);
    let header = &rows[0];
    assert_eq!(&header[..4], ["trace_id", "project", "timestamp", "input"]);
    assert!(header.contains(&"scores".to_owned()));
    let column = |name: &str| header.iter().position(|column| column == name).unwrap();
    assert_eq!(rows.len(), TRACES + 1);
    let csv_ids: Vec<&String> = rows[1..]
        .iter()
        .map(|row| &row[column("trace_id")])
        .collect();
    assert_eq!(csv_ids, all_ids.iter().collect::<Vec<_>>());
    let last = &rows[TRACES];
    assert_eq!(
        last[column("input")],
        format!("question {}, \"quoted\"\nline", TRACES - 1)
    );
    assert_eq!(last[column("user_id")], format!("u-{}", (TRACES - 1) % 7));
    assert_eq!(last[column("scores")], "{\"quality\":0.5}");
    assert_eq!(rows[1][column("status")], "error");
    assert_eq!(
        rows[1][column("session_id")],
        "",
        "absent values are empty cells"
    );

    // otlp: requests of whole traces, every span once.
    let (status, headers, otlp_body) = export(&server, &read, &[("format", "otlp")]).await;
    assert_eq!(status, 200);
    assert_eq!(
        headers["content-disposition"],
        "attachment; filename=\"spanhouse-export.otlp.jsonl\""
    );
    let mut line_of_trace: BTreeMap<String, usize> = BTreeMap::new();
    let mut spans_seen = 0;
    for (number, request) in lines(&otlp_body).iter().enumerate() {
        for resource in request["resourceSpans"].as_array().unwrap() {
            for scope in resource["scopeSpans"].as_array().unwrap() {
                for span in scope["spans"].as_array().unwrap() {
                    spans_seen += 1;
                    let trace = span["traceId"].as_str().unwrap().to_owned();
                    let line = *line_of_trace.entry(trace).or_insert(number);
                    assert_eq!(line, number, "a trace is whole in one line");
                }
            }
        }
    }
    assert_eq!(spans_seen, 2 * TRACES);
    assert_eq!(line_of_trace.len(), TRACES);

    // The filter language and the window.
    let filter = "user_id == \"u-3\" and status != \"error\"";
    let (_, _, body) = export(&server, &read, &[("filter", filter)]).await;
    let expected: Vec<String> = (0..TRACES)
        .filter(|index| index % 7 == 3 && index % 10 != 0)
        .map(hex_of)
        .collect();
    assert_eq!(jsonl_ids(&body), expected);
    // The list's quick filters work too (the traces page downloads with them).
    let quick = [
        ("status", "error"),
        ("q", "ANSWER 10"),
        ("model", "gpt-4o-mini"),
    ];
    let (_, _, body) = export(&server, &read, &quick).await;
    let expected: Vec<String> = (0..TRACES)
        .filter(|index| index % 10 == 0 && format!("answer {index}").contains("answer 10"))
        .map(hex_of)
        .collect();
    assert_eq!(expected.len(), 12);
    assert_eq!(jsonl_ids(&body), expected);
    let (start, end) = (
        format_rfc3339(timestamp(base, 1_000)),
        format_rfc3339(timestamp(base, 2_200)),
    );
    let window = [("format", "csv"), ("start", &start), ("end", &end)];
    let (_, _, body) = export(&server, &read, &window).await;
    let rows = parse_csv(&body);
    let window_ids: Vec<&String> = rows[1..].iter().map(|row| &row[0]).collect();
    assert_eq!(window_ids, all_ids[1_000..2_200].iter().collect::<Vec<_>>());

    // The otlp export, imported into another project by `spanhouse import`, gives the same
    // traces.
    let copy = server.create_token("copy", "admin").await;
    server.wait_for_token(&copy).await;
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), &otlp_body).unwrap();
    let imported = tokio::process::Command::new(common::process::binary())
        .arg("import")
        .arg(file.path())
        .args(["--url", &server.url(""), "--token", &copy])
        .env("SPANHOUSE_DATA_DIR", server.data_dir.path())
        .output()
        .await
        .unwrap();
    let summary = String::from_utf8_lossy(&imported.stderr);
    assert!(imported.status.success(), "{summary}");
    assert!(
        summary.contains("6000 spans sent: 6000 accepted, 0 rejected"),
        "{summary}"
    );
    server.settle(&copy).await;
    let compared = futures_util::stream::iter(all_ids.iter())
        .map(|id| {
            let (server, token, copy) = (&server, &token, &copy);
            async move {
                let path = format!("/api/v1/traces/{id}");
                let (status, mut original) = get(server, &path, token).await;
                assert_eq!(status, 200);
                let (status, mut imported) = get(server, &path, copy).await;
                assert_eq!(status, 200, "{id} was imported");
                for trace in [&mut original, &mut imported] {
                    // Which project, and the scores given in it, are not part of the spans.
                    let record = trace["trace"].as_object_mut().unwrap();
                    record.remove("project");
                    record.remove("scores");
                    trace.as_object_mut().unwrap().remove("scores");
                }
                assert_eq!(imported, original);
            }
        })
        .buffer_unordered(8)
        .count()
        .await;
    assert_eq!(compared, TRACES);
    let (_, _, copied) = export(&server, &copy, &[]).await;
    assert_eq!(
        jsonl_ids(&copied),
        all_ids,
        "the copy exports in the same order"
    );
    server.stop().await;
}

#[tokio::test]
async fn bad_parameters_are_400_and_roles_and_projects_are_checked() {
    let server = TestServer::start().await;
    let token = server.admin_token.clone();
    seed(&server, &token, recent(600), 0..3).await;
    let ingest = server.create_token("default", "ingest").await;
    let other = server.create_token("other", "read").await;
    server.wait_for_token(&ingest).await;
    server.wait_for_token(&other).await;

    for (query, named) in [
        (vec![("format", "xml")], "\"xml\""),
        (vec![("filter", "duration_ms >")], "filter"),
        (vec![("filter", "nonsense == 1")], "filter"),
        (vec![("start", "yesterday")], "start"),
        (
            vec![
                ("start", "2030-01-01T00:00:00Z"),
                ("end", "2020-01-01T00:00:00Z"),
            ],
            "start",
        ),
    ] {
        let (status, _, body) = export(&server, &token, &query).await;
        assert_eq!(status, 400, "{query:?}: {body}");
        let error: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(error["error"]["status"], 400);
        let message = error["error"]["message"].as_str().unwrap();
        assert!(message.contains(named), "{query:?}: {message}");
    }
    let (status, _, _) = export(&server, &ingest, &[]).await;
    assert_eq!(status, 403, "an ingest token cannot read");
    let (status, _, _) = export(&server, "", &[]).await;
    assert_eq!(status, 401);
    // Another project's token sees none of these traces: its export is empty.
    let (status, _, body) = export(&server, &other, &[]).await;
    assert_eq!((status, body.as_str()), (200, ""));
    let (status, _, body) = export(&server, &other, &[("format", "csv")]).await;
    assert_eq!(status, 200);
    assert_eq!(parse_csv(&body).len(), 1, "the header alone");
    server.stop().await;
}

/// `spanhouse export` writes what the API answers to stdout, and fails with the server's
/// message on a 4xx.
#[tokio::test]
async fn the_export_command_streams_the_body_to_stdout() {
    let server = TestServer::start().await;
    let token = server.admin_token.clone();
    seed(&server, &token, recent(600), 0..40).await;
    let read = server.create_token("default", "read").await;
    server.wait_for_token(&read).await;
    let url = server.url("");
    let run = |args: Vec<&str>, token: &str| {
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_spanhouse"));
        command
            .arg("export")
            .args(args)
            .env("SPANHOUSE_DATA_DIR", server.data_dir.path())
            .env("SPANHOUSE_TOKEN", token)
            .current_dir(server.data_dir.path())
            .kill_on_drop(true);
        command.output()
    };
    let filter = "user_id == \"u-3\"";
    let output = run(
        vec!["--format", "csv", "--filter", filter, "--url", &url],
        &read,
    )
    .await
    .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let (_, _, body) = export(&server, &read, &[("format", "csv"), ("filter", filter)]).await;
    assert_eq!(String::from_utf8(output.stdout).unwrap(), body);
    assert_eq!(
        parse_csv(&body).len(),
        1 + 6,
        "traces 3, 10, 17, 24, 31, 38"
    );

    let output = run(vec!["--url", &url, "--filter", "duration_ms >"], &read)
        .await
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("400") && stderr.contains("filter: column"),
        "{stderr}"
    );
    assert!(output.stdout.is_empty());

    let output = run(vec!["--url", &url], "not-a-token").await.unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("401"));
    server.stop().await;
}

/// Content that arrived as log records is exported as span events, so the imported trace
/// reads the same input and output.
#[tokio::test]
async fn otlp_export_carries_the_content_of_log_records() {
    use opentelemetry_proto::tonic::logs::v1::LogRecord;
    use prost::Message as _;

    let server = TestServer::start().await;
    let token = server.admin_token.clone();
    let start = recent(60);
    let (_, mut spans) = trace_spans(7, start);
    spans.truncate(1);
    spans[0].attributes.clear();
    let response = server
        .post_protobuf("/v1/traces", &token, &request("svc", spans))
        .await;
    assert_eq!(response.status(), 200);
    let record = |name: &str, content: &str, time: u64| LogRecord {
        time_unix_nano: time,
        trace_id: trace_id(7),
        span_id: vec![1; 8],
        event_name: name.into(),
        body: Some(AnyValue {
            value: Some(any_value::Value::KvlistValue(
                opentelemetry_proto::tonic::common::v1::KeyValueList {
                    values: vec![string_attribute("content", content)],
                },
            )),
        }),
        ..Default::default()
    };
    let logs = logs_request(vec![
        record("gen_ai.user.message", "What is OTLP?", start + 10),
        record("gen_ai.assistant.message", "A protocol.", start + 20),
    ]);
    let response = server
        .post_as_admin("/v1/logs", "application/x-protobuf")
        .body(logs.encode_to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    server.settle(&token).await;
    let path = format!("/api/v1/traces/{}", hex_of(7));
    let (_, original) = server.get_json(&path, &token).await;
    assert_eq!(original["trace"]["input"], "What is OTLP?");

    let (status, _, otlp) = export(&server, &token, &[("format", "otlp")]).await;
    assert_eq!(status, 200);
    let copy = server.create_token("copy", "ingest").await;
    let copy_read = server.create_token("copy", "read").await;
    server.wait_for_token(&copy_read).await;
    for line in otlp.lines() {
        let response = server
            .client
            .post(server.url("/v1/traces"))
            .bearer_auth(&copy)
            .header("content-type", "application/json")
            .body(line.to_owned())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }
    server.settle(&copy_read).await;
    let (status, imported) = server.get_json(&path, &copy_read).await;
    assert_eq!(status, 200);
    let fields = [
        "input",
        "output",
        "span_count",
        "timestamp",
        "duration_ms",
        "status",
    ];
    for field in fields {
        assert_eq!(
            imported["trace"][field], original["trace"][field],
            "{field}"
        );
    }
    let events: BTreeSet<&str> = imported["spans"][0]["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|event| event["name"].as_str().unwrap())
        .collect();
    assert!(events.contains("gen_ai.user.message"), "{events:?}");
    server.stop().await;
}
