//! The query API against the real server: windows, filters, text search, pagination, scoping.

mod common;

use common::*;

async fn ingest(
    server: &TestServer,
    token: &str,
    spans: Vec<opentelemetry_proto::tonic::trace::v1::Span>,
) {
    let response = server
        .post_protobuf("/v1/traces", token, &request("svc", spans))
        .await;
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn pages_through_traces_newest_first_with_filters() {
    let server = TestServer::start().await;
    let token = server.admin_token.clone();
    let mut spans = Vec::new();
    for trace in 1..=7u8 {
        let mut root = span(
            trace,
            1,
            None,
            &format!("trace-{trace}"),
            recent(100 - trace as u64),
        );
        root.attributes = vec![
            string_attribute("input.value", &format!("Question number {trace}")),
            string_attribute(
                "output.value",
                if trace % 2 == 0 {
                    "EVEN answer"
                } else {
                    "odd answer"
                },
            ),
            string_attribute(
                "session.id",
                if trace <= 3 { "session-a" } else { "session-b" },
            ),
            string_attribute("user.id", "user-1"),
        ];
        if trace == 7 {
            root.status.as_mut().unwrap().code = 2;
        }
        spans.push(root);
    }
    ingest(&server, &token, spans).await;

    // Newest first, three per page, until the cursor runs out.
    let mut seen = Vec::new();
    let mut path = "/api/v1/traces?limit=3".to_owned();
    loop {
        let (status, page) = server.get_json(&path, &token).await;
        assert_eq!(status, 200, "{page}");
        for trace in page["traces"].as_array().unwrap() {
            seen.push(trace["root_span_name"].as_str().unwrap().to_owned());
        }
        match page["next_cursor"].as_str() {
            Some(cursor) => path = format!("/api/v1/traces?limit=3&cursor={cursor}"),
            None => break,
        }
    }
    let expected: Vec<String> = (1..=7)
        .rev()
        .map(|trace| format!("trace-{trace}"))
        .collect();
    assert_eq!(seen, expected);

    let names = |page: &serde_json::Value| -> Vec<String> {
        page["traces"]
            .as_array()
            .unwrap()
            .iter()
            .map(|trace| trace["root_span_name"].as_str().unwrap().to_owned())
            .collect()
    };
    let (_, page) = server.get_json("/api/v1/traces?q=even", &token).await;
    assert_eq!(names(&page), ["trace-6", "trace-4", "trace-2"]);
    let (_, page) = server.get_json("/api/v1/traces?q=NUMBER%205", &token).await;
    assert_eq!(names(&page), ["trace-5"]);
    let (_, page) = server
        .get_json("/api/v1/traces?session_id=session-a", &token)
        .await;
    assert_eq!(names(&page), ["trace-3", "trace-2", "trace-1"]);
    let (_, page) = server.get_json("/api/v1/traces?status=error", &token).await;
    assert_eq!(names(&page), ["trace-7"]);
    let (_, page) = server
        .get_json("/api/v1/traces?user_id=user-1&limit=1", &token)
        .await;
    assert_eq!(names(&page), ["trace-7"]);
    assert!(page["next_cursor"].is_string());
    let (_, page) = server
        .get_json("/api/v1/traces?user_id=nobody", &token)
        .await;
    assert_eq!(page["traces"], serde_json::json!([]));
    assert!(page["next_cursor"].is_null());

    // A window that ends before the traces began holds none of them.
    let end = spanhouse::model::time::format_rfc3339(recent(1000));
    let (_, page) = server
        .get_json(&format!("/api/v1/traces?end={end}"), &token)
        .await;
    assert_eq!(page["traces"], serde_json::json!([]));
    let trace = &names(&server.get_json("/api/v1/traces?limit=1", &token).await.1);
    assert_eq!(trace, &["trace-7"]);
    server.stop().await;
}

#[tokio::test]
async fn trace_record_shape_and_timestamps() {
    let server = TestServer::start().await;
    let start = recent(30);
    ingest(
        &server,
        &server.admin_token,
        vec![span(0x21, 1, None, "root", start)],
    )
    .await;
    let (_, page) = server.get_json("/api/v1/traces", &server.admin_token).await;
    let record = &page["traces"][0];
    for field in [
        "trace_id",
        "project",
        "timestamp",
        "input",
        "output",
        "status",
        "duration_ms",
        "session_id",
        "user_id",
        "pipeline_id",
        "root_span_name",
        "service_name",
        "span_count",
        "models",
        "prompt_token_count",
        "completion_token_count",
        "total_token_count",
        "prompt_cost",
        "completion_cost",
        "total_cost",
        "llm_call_count",
        "tool_call_count",
        "tool_call_error_count",
        "tool_call_name_counts",
    ] {
        assert!(
            record.get(field).is_some(),
            "TraceRecord lacks {field}: {record}"
        );
    }
    assert_eq!(record["trace_id"], hex_trace(0x21));
    assert_eq!(
        record["timestamp"],
        spanhouse::model::time::format_rfc3339(start)
    );
    assert!(record["timestamp"].as_str().unwrap().ends_with('Z'));
    assert_eq!(record["input"], serde_json::Value::Null);
    server.stop().await;
}

#[tokio::test]
async fn bad_parameters_are_400() {
    let server = TestServer::start().await;
    for query in [
        "limit=0",
        "limit=ten",
        "status=broken",
        "start=yesterday",
        "cursor=garbage",
        "start=2030-01-01T00:00:00Z&end=2020-01-01T00:00:00Z",
    ] {
        let (status, body) = server
            .get_json(&format!("/api/v1/traces?{query}"), &server.admin_token)
            .await;
        assert_eq!(status, 400, "{query}: {body}");
        assert!(body["error"]["message"].is_string());
    }
    let (status, _) = server
        .get_json("/api/v1/traces/not-hex", &server.admin_token)
        .await;
    assert_eq!(status, 400);
    server.stop().await;
}

#[tokio::test]
async fn another_projects_traces_are_invisible() {
    let server = TestServer::start().await;
    let other_admin = server.create_token("other", "admin").await;
    server.wait_for_token(&other_admin).await;
    ingest(
        &server,
        &server.admin_token,
        vec![span(0x71, 1, None, "mine", recent(5))],
    )
    .await;
    ingest(
        &server,
        &other_admin,
        vec![span(0x72, 1, None, "theirs", recent(5))],
    )
    .await;

    let (status, _) = server
        .get_json(
            &format!("/api/v1/traces/{}", hex_trace(0x72)),
            &server.admin_token,
        )
        .await;
    assert_eq!(status, 404, "a foreign trace is as absent as a missing one");
    let (status, _) = server
        .get_json(
            &format!("/api/v1/traces/{}", hex_trace(0x7f)),
            &server.admin_token,
        )
        .await;
    assert_eq!(status, 404);
    let (_, page) = server.get_json("/api/v1/traces", &server.admin_token).await;
    let traces = page["traces"].as_array().unwrap();
    assert_eq!(traces.len(), 1);
    assert_eq!(traces[0]["root_span_name"], "mine");
    let (_, page) = server.get_json("/api/v1/traces", &other_admin).await;
    assert_eq!(page["traces"][0]["root_span_name"], "theirs");

    // The same trace id in two projects is two traces.
    ingest(
        &server,
        &other_admin,
        vec![span(0x71, 1, None, "theirs-too", recent(5))],
    )
    .await;
    let (_, mine) = server
        .get_json(
            &format!("/api/v1/traces/{}", hex_trace(0x71)),
            &server.admin_token,
        )
        .await;
    assert_eq!(mine["trace"]["root_span_name"], "mine");
    assert_eq!(mine["trace"]["span_count"], 1);
    assert_eq!(server.get_json("/api/v1/traces", "").await.0, 401);
    server.stop().await;
}

#[tokio::test]
async fn a_trace_record_is_the_same_whatever_order_spans_arrive_in() {
    let server = TestServer::start().await;
    let token = server.admin_token.clone();
    let start = recent(60);
    let mut root = span(0x81, 1, None, "root", start);
    root.end_time_unix_nano = start + 2_000_000_000;
    root.attributes = vec![string_attribute("input.value", "root question")];
    let mut child = span(0x81, 2, Some(1), "llm", start + 100);
    child.attributes = vec![
        string_attribute("input.value", "child question"),
        string_attribute("output.value", "child answer"),
    ];
    // The child first, alone: the record uses what it has.
    ingest(&server, &token, vec![child]).await;
    let (_, early) = server
        .get_json(&format!("/api/v1/traces/{}", hex_trace(0x81)), &token)
        .await;
    assert_eq!(early["trace"]["input"], "child question");
    assert_eq!(early["trace"]["root_span_name"], serde_json::Value::Null);
    assert_eq!(
        early["trace"]["timestamp"],
        spanhouse::model::time::format_rfc3339(start + 100)
    );
    // Then the root: the root now decides.
    ingest(&server, &token, vec![root]).await;
    let (_, late) = server
        .get_json(&format!("/api/v1/traces/{}", hex_trace(0x81)), &token)
        .await;
    assert_eq!(late["trace"]["input"], "root question");
    assert_eq!(late["trace"]["output"], "child answer");
    assert_eq!(late["trace"]["root_span_name"], "root");
    assert_eq!(late["trace"]["duration_ms"], 2000.0);
    assert_eq!(
        late["trace"]["timestamp"],
        spanhouse::model::time::format_rfc3339(start)
    );
    assert_eq!(late["trace"]["span_count"], 2);
    server.stop().await;
}

fn llm_span(
    trace: u8,
    span_id: u8,
    parent: Option<u8>,
    model: &str,
    start: u64,
) -> opentelemetry_proto::tonic::trace::v1::Span {
    let mut llm = span(trace, span_id, parent, "chat", start);
    llm.attributes = vec![
        string_attribute("gen_ai.operation.name", "chat"),
        string_attribute("gen_ai.request.model", model),
        int_attribute("gen_ai.usage.input_tokens", 10),
        int_attribute("gen_ai.usage.output_tokens", 5),
    ];
    llm
}

#[tokio::test]
async fn model_filter_uses_every_model_of_a_trace() {
    let server = TestServer::start().await;
    let token = server.admin_token.clone();
    ingest(
        &server,
        &token,
        vec![
            span(0xd1, 1, None, "two-models", recent(30)),
            llm_span(0xd1, 2, Some(1), "gpt-4o", recent(30)),
            llm_span(0xd1, 3, Some(1), "claude-3-5-haiku", recent(30)),
            span(0xd2, 1, None, "one-model", recent(20)),
            llm_span(0xd2, 2, Some(1), "gpt-4o", recent(20)),
            span(0xd3, 1, None, "no-model", recent(10)),
        ],
    )
    .await;
    let names = |page: serde_json::Value| -> Vec<String> {
        page["traces"]
            .as_array()
            .unwrap()
            .iter()
            .map(|trace| trace["root_span_name"].as_str().unwrap().to_owned())
            .collect()
    };
    let (_, page) = server.get_json("/api/v1/traces?model=gpt-4o", &token).await;
    assert_eq!(names(page), ["one-model", "two-models"]);
    let (_, page) = server
        .get_json("/api/v1/traces?model=claude-3-5-haiku", &token)
        .await;
    assert_eq!(names(page.clone()), ["two-models"]);
    assert_eq!(
        page["traces"][0]["models"],
        serde_json::json!(["claude-3-5-haiku", "gpt-4o"])
    );
    assert_eq!(page["traces"][0]["llm_call_count"], 2);
    assert_eq!(page["traces"][0]["total_token_count"], 30);
    let (_, page) = server.get_json("/api/v1/traces?model=gpt-4", &token).await;
    assert_eq!(names(page), Vec::<String>::new());
    server.stop().await;
}

/// Any order and any split of a trace's spans into requests gives the same TraceRecord.
#[tokio::test]
async fn permutations_and_splits_give_the_same_record() {
    let server = TestServer::start().await;
    let token = server.admin_token.clone();
    let start = recent(100);
    let trace_spans = |trace: u8| {
        let mut root = span(trace, 1, None, "interaction", start);
        root.end_time_unix_nano = start + 3_000_000_000;
        root.attributes = vec![
            string_attribute("input.value", "root question"),
            string_attribute("session.id", "s"),
        ];
        let mut tool = span(trace, 4, Some(1), "tool", start + 30);
        tool.attributes = vec![
            string_attribute("gen_ai.operation.name", "execute_tool"),
            string_attribute("gen_ai.tool.name", "search"),
        ];
        tool.status.as_mut().unwrap().code = 2;
        let mut late = llm_span(trace, 5, Some(1), "gpt-4o-mini", start + 40);
        late.attributes
            .push(string_attribute("output.value", "final answer"));
        late.end_time_unix_nano = start + 2_900_000_000;
        vec![
            root,
            llm_span(trace, 2, Some(1), "gpt-4o", start + 10),
            llm_span(trace, 3, Some(2), "gpt-4o", start + 20),
            tool,
            late,
        ]
    };
    // A small deterministic generator, so every run tries the same orders.
    let mut seed: u64 = 0x9e3779b97f4a7c15;
    let mut next = move |bound: usize| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % bound as u64) as usize
    };
    let mut records = Vec::new();
    for trace in 1..=12u8 {
        let mut spans = trace_spans(trace);
        for index in (1..spans.len()).rev() {
            spans.swap(index, next(index + 1));
        }
        // Split into requests of random sizes, and send one span twice, as a retry would.
        let retried = spans[next(spans.len())].clone();
        let mut remaining = spans;
        remaining.push(retried);
        while !remaining.is_empty() {
            let take = 1 + next(remaining.len());
            let chunk: Vec<_> = remaining.drain(..take).collect();
            ingest(&server, &token, chunk).await;
        }
        let (_, trace_json) = server
            .get_json(&format!("/api/v1/traces/{}", hex_trace(trace)), &token)
            .await;
        let mut record = trace_json["trace"].clone();
        record.as_object_mut().unwrap().remove("trace_id");
        records.push(record);
    }
    let first = &records[0];
    assert_eq!(first["input"], "root question");
    assert_eq!(first["output"], "final answer");
    assert_eq!(first["span_count"], 5);
    assert_eq!(first["llm_call_count"], 3);
    assert_eq!(first["tool_call_count"], 1);
    assert_eq!(first["tool_call_error_count"], 1);
    assert_eq!(
        first["tool_call_name_counts"],
        serde_json::json!({"search": 1})
    );
    assert_eq!(
        first["models"],
        serde_json::json!(["gpt-4o", "gpt-4o-mini"])
    );
    assert_eq!(first["total_token_count"], 45);
    assert_eq!(first["session_id"], "s");
    for record in &records[1..] {
        assert_eq!(record, first);
    }
    server.stop().await;
}

#[tokio::test]
async fn text_search_handles_quotes_short_needles_and_unicode_case() {
    let server = TestServer::start().await;
    let token = server.admin_token.clone();
    let texts = [
        (0x91, "He said \"hello\" twice"),
        (0x92, "Äpfel und Birnen"),
        (0x93, "ok"),
    ];
    let spans = texts
        .iter()
        .map(|(trace, text)| {
            let mut root = span(*trace, 1, None, &format!("t{trace}"), recent(5));
            root.attributes = vec![string_attribute("input.value", text)];
            root
        })
        .collect();
    ingest(&server, &token, spans).await;
    let found = |query: &'static str| {
        let server = &server;
        let token = token.clone();
        async move {
            let (status, page) = server
                .get_json(&format!("/api/v1/traces?q={query}"), &token)
                .await;
            assert_eq!(status, 200, "{query}: {page}");
            page["traces"]
                .as_array()
                .unwrap()
                .iter()
                .map(|trace| trace["root_span_name"].as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(found("%22hello%22").await, ["t145"]);
    assert_eq!(found("AID%20%22HEL").await, ["t145"]);
    assert_eq!(
        found("%C3%A4PFEL").await,
        ["t146"],
        "case-insensitive beyond ASCII"
    );
    assert_eq!(
        found("OK").await,
        ["t147"],
        "two characters: read, not indexed"
    );
    assert_eq!(
        found("OR%20NOT%20*").await,
        Vec::<String>::new(),
        "no FTS syntax"
    );
    server.stop().await;
}

/// `q` is exact whatever the text indexer (a thread of the embedded store) has done so far: right
/// after ingest, after a trace's text changed, after a restart, and after its file was deleted.
#[tokio::test]
async fn text_search_is_exact_across_text_changes_restarts_and_a_lost_index() {
    let server = TestServer::start().await;
    let token = server.admin_token.clone();
    let names = |page: &serde_json::Value| -> Vec<String> {
        page["traces"]
            .as_array()
            .unwrap()
            .iter()
            .map(|trace| {
                trace["root_span_name"]
                    .as_str()
                    .unwrap_or("(no root)")
                    .to_owned()
            })
            .collect()
    };
    // A child span alone gives trace 0xA1 its input; its root, sent later, replaces it. The
    // times are taken once: B stays the newer trace however long the ingests take.
    let now = recent(0);
    let seconds_ago = |seconds: u64| now - seconds * 1_000_000_000;
    let mut child = span(0xA1, 2, Some(1), "child", seconds_ago(10));
    child.attributes = vec![string_attribute("input.value", "first wording of A")];
    let mut other = span(0xA2, 1, None, "b", seconds_ago(9));
    other.attributes = vec![string_attribute("input.value", "wording of B")];
    ingest(&server, &token, vec![child, other]).await;
    let (_, page) = server.get_json("/api/v1/traces?q=WORDING", &token).await;
    assert_eq!(names(&page), ["b", "(no root)"]);
    let (_, page) = server
        .get_json("/api/v1/traces?q=first%20wording", &token)
        .await;
    assert_eq!(names(&page), ["(no root)"]);

    let mut root = span(0xA1, 1, None, "a", seconds_ago(11));
    root.attributes = vec![string_attribute("input.value", "second wording of A")];
    ingest(&server, &token, vec![root]).await;
    for _ in 0..2 {
        let (_, page) = server
            .get_json("/api/v1/traces?q=first%20wording", &token)
            .await;
        assert_eq!(names(&page), Vec::<String>::new(), "the old text is gone");
        let (_, page) = server
            .get_json("/api/v1/traces?q=second%20wording", &token)
            .await;
        assert_eq!(names(&page), ["a"]);
    }

    let server = server.restart().await;
    let (_, page) = server.get_json("/api/v1/traces?q=wording", &token).await;
    assert_eq!(names(&page), ["b", "a"]);

    let server = server
        .restart_after(|data_dir| {
            let search = data_dir.join("search.sqlite");
            if search.exists() {
                std::fs::remove_file(search).unwrap();
            }
        })
        .await;
    let (_, page) = server.get_json("/api/v1/traces?q=wording", &token).await;
    assert_eq!(names(&page), ["b", "a"]);
    let (_, page) = server
        .get_json("/api/v1/traces?q=second%20wording%20of%20a", &token)
        .await;
    assert_eq!(names(&page), ["a"]);
    server.stop().await;
}
