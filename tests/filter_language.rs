//! The filter language of queries (SPEC §7) against the real server, on both backends: a table
//! of expressions over five fixed traces, each with the exact traces (or spans) it must return;
//! every parse error a 400 naming its column; filtered stats.

mod common;

use std::collections::BTreeSet;

use common::*;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::trace::v1::Span;
use serde_json::{Value, json};

const A: u8 = 0xa1;
const B: u8 = 0xb2;
const C: u8 = 0xc3;
const D: u8 = 0xd4;
const E: u8 = 0xe5;

fn attribute(key: &str, value: any_value::Value) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    }
}

/// A span of `trace` lasting `millis`, with `status` (0 unset, 1 ok, 2 error).
fn timed(
    trace: u8,
    id: u8,
    parent: Option<u8>,
    name: &str,
    (start, millis): (u64, u64),
    status: i32,
    attributes: Vec<KeyValue>,
) -> Span {
    let mut span = span(trace, id, parent, name, start);
    span.end_time_unix_nano = start + millis * 1_000_000;
    span.status.as_mut().unwrap().code = status;
    span.attributes = attributes;
    span
}

fn llm(model: &str, input_tokens: i64, output_tokens: i64) -> Vec<KeyValue> {
    vec![
        string_attribute("gen_ai.operation.name", "chat"),
        string_attribute("gen_ai.request.model", model),
        int_attribute("gen_ai.usage.input_tokens", input_tokens),
        int_attribute("gen_ai.usage.output_tokens", output_tokens),
    ]
}

fn tool(name: &str) -> Vec<KeyValue> {
    vec![
        string_attribute("gen_ai.operation.name", "execute_tool"),
        string_attribute("gen_ai.tool.name", name),
    ]
}

/// Five traces that differ in every field the table asks about (A oldest, E newest):
/// - A (checkout): agent, ok, 6 s, user ada, session s1, Langfuse metadata env=prod and tags
///   beta, eu; an LLM call of gpt-4o (100 + 50 tokens, tenant acme, retries 2); a tool search.
/// - B (checkout): agent, error, 1 s, user bob, OpenInference metadata env=dev, tag beta; an
///   LLM call of gpt-4o-mini (10 + 5, tenant acme).
/// - C (search): pipeline, ok, 8 s, AI SDK metadata env=prod, tenant globex; an LLM call of
///   claude (1000 + 200, 7 s); a tool fetch that failed.
/// - D (search): agent, unset, 0.2 s, nothing else.
/// - E (checkout): answer, ok, 3 s, user ada, input and output texts, flag=true, ratio=0.75.
fn traces() -> Vec<(&'static str, Vec<Span>)> {
    use any_value::Value::{BoolValue, DoubleValue, IntValue, StringValue};
    let at = |seconds_ago: u64, millis: u64| (recent(seconds_ago), millis);
    let a = recent(600);
    let c = recent(400);
    let mut a_llm = llm("gpt-4o", 100, 50);
    a_llm.extend([
        string_attribute("tenant", "acme"),
        attribute("retries", IntValue(2)),
    ]);
    let mut b_llm = llm("gpt-4o-mini", 10, 5);
    b_llm.push(string_attribute("tenant", "acme"));
    vec![
        (
            "checkout",
            vec![
                timed(
                    A,
                    1,
                    None,
                    "agent",
                    (a, 6000),
                    1,
                    vec![
                        string_attribute("user.id", "ada"),
                        string_attribute("session.id", "s1"),
                        string_attribute("langfuse.trace.metadata.env", "prod"),
                        string_attribute("langfuse.trace.tags", r#"["beta", "eu"]"#),
                    ],
                ),
                timed(
                    A,
                    2,
                    Some(1),
                    "chat gpt-4o",
                    (a + 1_000_000_000, 2000),
                    1,
                    a_llm,
                ),
                timed(
                    A,
                    3,
                    Some(1),
                    "execute_tool search",
                    (a + 3_500_000_000, 500),
                    1,
                    tool("search"),
                ),
                timed(
                    B,
                    1,
                    None,
                    "agent",
                    at(500, 1000),
                    2,
                    vec![
                        string_attribute("user.id", "bob"),
                        string_attribute("metadata", r#"{"env": "dev"}"#),
                        string_attribute("tag.tags", r#"["beta"]"#),
                    ],
                ),
                timed(B, 2, Some(1), "chat gpt-4o-mini", at(500, 800), 1, b_llm),
                timed(
                    E,
                    1,
                    None,
                    "answer",
                    at(200, 3000),
                    1,
                    vec![
                        string_attribute("user.id", "ada"),
                        string_attribute("input.value", "What is the weather in Paris?"),
                        string_attribute("output.value", "Sunny and 18C"),
                        attribute("flag", BoolValue(true)),
                        attribute("ratio", DoubleValue(0.75)),
                    ],
                ),
            ],
        ),
        (
            "search",
            vec![
                timed(
                    C,
                    1,
                    None,
                    "pipeline",
                    (c, 8000),
                    1,
                    vec![
                        string_attribute("ai.telemetry.metadata.env", "prod"),
                        attribute("tenant", StringValue("globex".into())),
                    ],
                ),
                timed(
                    C,
                    2,
                    Some(1),
                    "chat claude",
                    (c + 500_000_000, 7000),
                    1,
                    llm("claude-3-5-sonnet", 1000, 200),
                ),
                timed(
                    C,
                    3,
                    Some(1),
                    "execute_tool fetch",
                    (c + 7_600_000_000, 100),
                    2,
                    tool("fetch"),
                ),
                timed(D, 1, None, "agent", at(300, 200), 0, vec![]),
            ],
        ),
    ]
}

/// Starts a server holding the five traces and their scores: A thumbs down, B quality 0.2
/// then 0.9 (the latest counts), C label "good", E thumbs up.
async fn server_with_traces() -> TestServer {
    let server = TestServer::start().await;
    let admin = server.admin_token.clone();
    for (service, spans) in traces() {
        let response = server
            .post_protobuf("/v1/traces", &admin, &request(service, spans))
            .await;
        assert_eq!(response.status(), 200);
    }
    server.settle(&admin).await;
    for score in [
        json!({"trace_id": hex_trace(A), "name": "thumbs", "value": false}),
        json!({"trace_id": hex_trace(B), "name": "quality", "value": 0.2}),
        json!({"trace_id": hex_trace(B), "name": "quality", "value": 0.9}),
        json!({"trace_id": hex_trace(C), "name": "label", "value": "good"}),
        json!({"trace_id": hex_trace(E), "name": "thumbs", "value": true}),
    ] {
        let (status, body) = server.post_json("/api/v1/scores", &admin, score).await;
        assert_eq!(status, 200, "{body}");
    }
    server
}

/// `filter` percent-encoded for a query string.
fn query(filter: &str) -> String {
    url_encoded(filter)
}

async fn trace_ids(server: &TestServer, parameters: &str) -> BTreeSet<String> {
    let (status, body) = server
        .get_json(
            &format!("/api/v1/traces?limit=1000&{parameters}"),
            &server.admin_token,
        )
        .await;
    assert_eq!(status, 200, "{parameters}: {body}");
    body["traces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|trace| trace["trace_id"].as_str().unwrap().to_owned())
        .collect()
}

fn named(traces: &[u8]) -> BTreeSet<String> {
    traces.iter().map(|trace| hex_trace(*trace)).collect()
}

#[tokio::test]
async fn each_expression_returns_exactly_its_traces() {
    let server = server_with_traces().await;
    let table: &[(&str, &[u8])] = &[
        // Span attributes: true when some span of the trace compares true.
        (r#"span.attributes["tenant"] == "acme""#, &[A, B]),
        (
            r#"span.attributes["tenant"] == "acme" and duration_ms > 5000"#,
            &[A],
        ),
        (r#"span.attributes["tenant"] != "acme""#, &[C]),
        (r#"span.attributes["tenant"] == nil"#, &[D, E]),
        (r#"span.attributes["tenant"] != nil"#, &[A, B, C]),
        (r#"span.attributes["retries"] >= 2"#, &[A]),
        (r#"span.attributes["retries"] == "2""#, &[]),
        (r#"span.attributes["flag"] == true"#, &[E]),
        (r#"span.attributes["flag"]"#, &[E]),
        (r#"span.attributes["ratio"] < 1"#, &[E]),
        (r#"IsMatch(span.attributes["tenant"], "^glo")"#, &[C]),
        (
            r#"span.resource.attributes["service.name"] == "search""#,
            &[C, D],
        ),
        (r#"span.name == "execute_tool search""#, &[A]),
        (r#"span.status == "error""#, &[B, C]),
        ("span.status == STATUS_CODE_ERROR", &[B, C]),
        ("span.duration_ms > 6500", &[C]),
        // Scalar fields of the TraceRecord.
        (r#"status == "error""#, &[B]),
        (r#"status == "unset""#, &[D]),
        (r#"status != "ok""#, &[B, D]),
        ("duration_ms >= 3000 and duration_ms <= 6000", &[A, E]),
        ("5000 < duration_ms", &[A, C]),
        (r#"user_id == "ada""#, &[A, E]),
        ("user_id == nil", &[C, D]),
        (r#"user_id != "ada""#, &[B, C, D]),
        (r#"session_id == "s1""#, &[A]),
        (r#"service_name == "search""#, &[C, D]),
        (r#"root_span_name == "agent""#, &[A, B, D]),
        ("total_token_count > 1000", &[C]),
        ("total_token_count == nil", &[D, E]),
        ("prompt_token_count == 100", &[A]),
        ("completion_token_count < 100", &[A, B]),
        ("llm_call_count == 0", &[D, E]),
        ("tool_call_count >= 1", &[A, C]),
        ("tool_call_error_count > 0", &[C]),
        ("span_count == 3", &[A, C]),
        (r#"input == "What is the weather in Paris?""#, &[E]),
        ("input != nil", &[E]),
        (r#"IsMatch(output, "(?i)^sunny")"#, &[E]),
        // Models: true when some model of the trace compares true.
        (r#"model == "gpt-4o""#, &[A]),
        (r#"model != "gpt-4o""#, &[B, C]),
        ("model == nil", &[D, E]),
        (r#"IsMatch(model, "^gpt")"#, &[A, B]),
        // Metadata and tags of every convention.
        (r#"metadata["env"] == "prod""#, &[A, C]),
        (r#"metadata["env"] == "dev""#, &[B]),
        (r#"metadata["env"] == nil"#, &[D, E]),
        (r#"metadata["env"] != "prod""#, &[B, D, E]),
        (r#"HasTag("beta")"#, &[A, B]),
        (r#"tags == "eu""#, &[A]),
        (r#"not HasTag("beta")"#, &[C, D, E]),
        // Scores: the latest of each name.
        (r#"scores["thumbs"] == false"#, &[A]),
        (r#"scores["thumbs"] == true"#, &[E]),
        (r#"scores["quality"] > 0.5"#, &[B]),
        (r#"scores["quality"] < 0.5"#, &[]),
        (r#"scores["label"] == "good""#, &[C]),
        (r#"scores["thumbs"] == nil"#, &[B, C, D]),
        (r#"scores["thumbs"] != false"#, &[B, C, D, E]),
        // Logic.
        (
            r#"(status == "error" or span.attributes["tenant"] == "globex") and not model == "gpt-4o""#,
            &[B, C],
        ),
        (
            r#"user_id == "ada" or metadata["env"] == "dev""#,
            &[A, B, E],
        ),
        ("1 == 1", &[A, B, C, D, E]),
        ("1 == 2", &[]),
    ];
    let mut wrong = Vec::new();
    for (filter, expected) in table {
        let found = trace_ids(&server, &format!("filter={}", query(filter))).await;
        if found != named(expected) {
            wrong.push(format!(
                "{filter}: expected {:?}, got {found:?}",
                named(expected)
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));

    // With the older parameters, and over pages.
    let found = trace_ids(
        &server,
        &format!("user_id=ada&filter={}", query("duration_ms < 5000")),
    )
    .await;
    assert_eq!(found, named(&[E]));
    let filter = query(r#"user_id == "ada""#);
    let (_, first) = server
        .get_json(
            &format!("/api/v1/traces?limit=1&filter={filter}"),
            &server.admin_token,
        )
        .await;
    assert_eq!(first["traces"][0]["trace_id"], hex_trace(E), "{first}");
    let cursor = first["next_cursor"].as_str().expect("a second page");
    let (_, second) = server
        .get_json(
            &format!("/api/v1/traces?limit=1&filter={filter}&cursor={cursor}"),
            &server.admin_token,
        )
        .await;
    assert_eq!(second["traces"][0]["trace_id"], hex_trace(A), "{second}");
    assert_eq!(second["next_cursor"], Value::Null, "{second}");
    server.stop().await;
}

async fn span_keys(server: &TestServer, parameters: &str) -> Vec<(String, String)> {
    let (status, body) = server
        .get_json(&format!("/api/v1/spans?{parameters}"), &server.admin_token)
        .await;
    assert_eq!(status, 200, "{parameters}: {body}");
    body["spans"]
        .as_array()
        .unwrap()
        .iter()
        .map(|span| {
            (
                span["trace_id"].as_str().unwrap().to_owned(),
                span["span_id"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn spans(named: &[(u8, u8)]) -> BTreeSet<(String, String)> {
    named
        .iter()
        .map(|(trace, span)| (hex_trace(*trace), hex::encode([*span; 8])))
        .collect()
}

#[tokio::test]
async fn span_filters_return_exactly_their_spans_newest_first() {
    let server = server_with_traces().await;
    let table: &[(&str, &[(u8, u8)])] = &[
        ("llm != nil", &[(A, 2), (B, 2), (C, 2)]),
        (r#"llm.model == "gpt-4o""#, &[(A, 2)]),
        ("llm.prompt_tokens > 50", &[(A, 2), (C, 2)]),
        (r#"status == "error""#, &[(B, 1), (C, 3)]),
        ("duration_ms >= 7000", &[(C, 1), (C, 2)]),
        (r#"attributes["tenant"] == "acme""#, &[(A, 2), (B, 2)]),
        (
            r#"resource.attributes["service.name"] == "search""#,
            &[(C, 1), (C, 2), (C, 3), (D, 1)],
        ),
        (
            r#"service_name == "search" and kind == SPAN_KIND_INTERNAL"#,
            &[(C, 1), (C, 2), (C, 3), (D, 1)],
        ),
        (
            r#"name == "agent" and status != "error""#,
            &[(A, 1), (D, 1)],
        ),
        (r#"IsMatch(name, "^execute_tool")"#, &[(A, 3), (C, 3)]),
    ];
    let mut wrong = Vec::new();
    for (filter, expected) in table {
        let found: BTreeSet<_> = span_keys(&server, &format!("filter={}", query(filter)))
            .await
            .into_iter()
            .collect();
        if found != spans(expected) {
            wrong.push(format!(
                "{filter}: expected {:?}, got {found:?}",
                spans(expected)
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));

    // Every span, newest start first, in pages of four.
    let mut all = Vec::new();
    let mut cursor = String::new();
    loop {
        let (status, page) = server
            .get_json(
                &format!("/api/v1/spans?limit=4&cursor={cursor}"),
                &server.admin_token,
            )
            .await;
        assert_eq!(status, 200, "{page}");
        let spans = page["spans"].as_array().unwrap();
        assert!(spans.len() <= 4);
        all.extend(
            spans
                .iter()
                .map(|span| span["start_time"].as_str().unwrap().to_owned()),
        );
        match page["next_cursor"].as_str() {
            Some(next) => cursor = next.to_owned(),
            None => break,
        }
    }
    assert_eq!(all.len(), 10, "{all:?}");
    let mut newest_first = all.clone();
    newest_first.sort_by(|a, b| b.cmp(a));
    assert_eq!(all, newest_first);
    server.stop().await;
}

#[tokio::test]
async fn filters_that_do_not_parse_are_400_with_their_column() {
    let server = server_with_traces().await;
    for (path, filter, column) in [
        ("/api/v1/traces", r#"duration_ms > "slow""#, 1),
        ("/api/v1/traces", "bogus == 1", 1),
        ("/api/v1/traces", r#"status == "ok" and"#, 19),
        (
            "/api/v1/traces",
            r#"user_id == "ada" and span_count == "3""#,
            22,
        ),
        ("/api/v1/traces", r#"IsMatch(user_id, "(")"#, 18),
        ("/api/v1/stats", r#"model = "x""#, 7),
        ("/api/v1/spans", r#"HasTag("x")"#, 1),
        ("/api/v1/spans", "llm == 1", 1),
        ("/api/v1/spans", r#"span_count == 1"#, 1),
    ] {
        let (status, body) = server
            .get_json(
                &format!("{path}?filter={}", query(filter)),
                &server.admin_token,
            )
            .await;
        assert_eq!(status, 400, "{path} {filter}: {body}");
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert!(
            message.starts_with(&format!("filter: column {column}: "))
                && message.contains(&format!("{filter:?}")),
            "{path} {filter}: {message}"
        );
    }
    server.stop().await;
}

#[tokio::test]
async fn filtered_stats_count_only_the_matching_traces() {
    let server = server_with_traces().await;
    let (status, all) = server.get_json("/api/v1/stats", &server.admin_token).await;
    assert_eq!(status, 200, "{all}");
    assert_eq!(all["totals"]["traces"], 5, "{all}");
    let filter = query(r#"span.attributes["tenant"] == "acme""#);
    let (status, acme) = server
        .get_json(
            &format!("/api/v1/stats?filter={filter}"),
            &server.admin_token,
        )
        .await;
    assert_eq!(status, 200, "{acme}");
    let totals = &acme["totals"];
    assert_eq!(totals["traces"], 2, "{acme}");
    assert_eq!(totals["errors"], 1, "{acme}");
    assert_eq!(
        totals["scores"]["thumbs"],
        json!({"count": 1, "mean": 0.0}),
        "{acme}"
    );
    assert!(totals["scores"].get("label").is_none(), "{acme}");
    let models: BTreeSet<&str> = acme["models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|model| model["model"].as_str().unwrap())
        .collect();
    assert_eq!(models, BTreeSet::from(["gpt-4o", "gpt-4o-mini"]), "{acme}");
    server.stop().await;
}
