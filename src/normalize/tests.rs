//! Convention-by-convention cases; the captured payloads are checked in tests/semantics.rs.

use super::*;
use crate::model::span::test_support::{make_span, text};

fn int(key: &str, value: i64) -> KeyValue {
    KeyValue::new(key, AttrValue::Int(value))
}

fn span_with(attributes: Vec<KeyValue>) -> Span {
    Span {
        attributes,
        ..make_span(1, 1)
    }
}

fn normalize(span: &Span) -> SpanSemantics {
    Normalizer::default().normalize(span, &[])
}

#[test]
fn langfuse_generation_with_usage_details_in_other_spellings() {
    for usage in [
        r#"{"input": 11, "output": 5, "total": 16}"#,
        r#"{"prompt_tokens": 11, "completion_tokens": 5}"#,
        r#"{"promptTokens": 11, "completionTokens": 5, "totalTokens": 16}"#,
    ] {
        let semantics = normalize(&span_with(vec![
            text("langfuse.observation.type", "generation"),
            text(
                "langfuse.observation.model.name",
                "claude-3-5-haiku-20241022",
            ),
            text(
                "langfuse.observation.input",
                r#"[{"role": "user", "content": "What is OTLP?"}]"#,
            ),
            text(
                "langfuse.observation.output",
                r#"{"role": "assistant", "content": "A protocol."}"#,
            ),
            text("langfuse.observation.usage_details", usage),
            text("session.id", "s1"),
            text("langfuse.user.id", "u1"),
        ]));
        let llm = semantics.llm.expect("a generation is an LLM call");
        assert_eq!(llm.usage.prompt, Some(11), "{usage}");
        assert_eq!(llm.usage.completion, Some(5), "{usage}");
        assert_eq!(llm.usage.total, Some(16), "{usage}");
        assert_eq!(
            llm.request_model.as_deref(),
            Some("claude-3-5-haiku-20241022")
        );
        let cost = llm.cost.total.unwrap();
        assert!(
            (cost - (11.0 * 0.8 + 5.0 * 4.0) / 1e6).abs() < 1e-12,
            "{cost}"
        );
        assert_eq!(semantics.input.as_deref(), Some("What is OTLP?"));
        assert_eq!(semantics.output.as_deref(), Some("A protocol."));
        assert_eq!(semantics.session_id.as_deref(), Some("s1"));
        assert_eq!(semantics.user_id.as_deref(), Some("u1"));
    }
}

#[test]
fn reported_cost_wins_over_the_price_table() {
    let semantics = normalize(&span_with(vec![
        text("openinference.span.kind", "LLM"),
        text("llm.model_name", "gpt-4o"),
        int("llm.token_count.prompt", 1000),
        KeyValue::new("llm.cost.total", AttrValue::Double(0.5)),
    ]));
    assert_eq!(semantics.llm.unwrap().cost.total, Some(0.5));
}

#[test]
fn older_genai_flattened_prompt_and_completion() {
    let semantics = normalize(&span_with(vec![
        text("gen_ai.system", "openai"),
        text("gen_ai.request.model", "gpt-3.5-turbo"),
        text("llm.request.type", "chat"),
        text("gen_ai.prompt.0.role", "system"),
        text("gen_ai.prompt.0.content", "Be brief."),
        text("gen_ai.prompt.1.role", "user"),
        text("gen_ai.prompt.1.content", "Hello?"),
        text("gen_ai.completion.0.role", "assistant"),
        text("gen_ai.completion.0.content", "Hi."),
        text("gen_ai.completion.0.finish_reason", "stop"),
        int("gen_ai.usage.prompt_tokens", 9),
        int("gen_ai.usage.completion_tokens", 2),
        int("llm.usage.total_tokens", 11),
    ]));
    assert_eq!(semantics.input.as_deref(), Some("Hello?"));
    assert_eq!(semantics.output.as_deref(), Some("Hi."));
    let llm = semantics.llm.unwrap();
    assert_eq!(llm.provider.as_deref(), Some("openai"));
    assert_eq!(llm.operation.as_deref(), Some("chat"));
    assert_eq!(llm.input_messages.len(), 2);
    assert_eq!(llm.finish_reasons, vec!["stop".to_owned()]);
    assert_eq!(
        (llm.usage.prompt, llm.usage.completion, llm.usage.total),
        (Some(9), Some(2), Some(11))
    );
}

#[test]
fn genai_span_events_and_log_records_give_messages() {
    let user_event = Event {
        time_unix_nano: 1,
        name: "gen_ai.user.message".into(),
        attributes: vec![text("content", "Ping?")],
        dropped_attributes_count: 0,
    };
    let choice_log = Event {
        time_unix_nano: 2,
        name: "gen_ai.choice".into(),
        attributes: vec![KeyValue::new(
            "body",
            AttrValue::Map(vec![
                KeyValue::new("index", AttrValue::Int(0)),
                KeyValue::new("finish_reason", AttrValue::String("stop".into())),
                KeyValue::new(
                    "message",
                    AttrValue::Map(vec![KeyValue::new(
                        "content",
                        AttrValue::String("Pong.".into()),
                    )]),
                ),
            ]),
        )],
        dropped_attributes_count: 0,
    };
    let span = Span {
        events: vec![user_event],
        ..span_with(vec![
            text("gen_ai.operation.name", "chat"),
            text("gen_ai.request.model", "gpt-4o-mini"),
        ])
    };
    let semantics = Normalizer::default().normalize(&span, &[choice_log]);
    assert_eq!(semantics.input.as_deref(), Some("Ping?"));
    assert_eq!(semantics.output.as_deref(), Some("Pong."));
    assert_eq!(
        semantics.llm.unwrap().finish_reasons,
        vec!["stop".to_owned()]
    );
}

#[test]
fn operation_details_log_record_with_structured_messages() {
    let parts = |role: &str, content: &str| {
        AttrValue::Map(vec![
            KeyValue::new("role", AttrValue::String(role.into())),
            KeyValue::new(
                "parts",
                AttrValue::Array(vec![AttrValue::Map(vec![
                    KeyValue::new("type", AttrValue::String("text".into())),
                    KeyValue::new("content", AttrValue::String(content.into())),
                ])]),
            ),
        ])
    };
    let details = Event {
        time_unix_nano: 5,
        name: "gen_ai.client.inference.operation.details".into(),
        attributes: vec![
            KeyValue::new(
                "gen_ai.input.messages",
                AttrValue::Array(vec![parts("user", "Say hello")]),
            ),
            KeyValue::new(
                "gen_ai.output.messages",
                AttrValue::Array(vec![parts("assistant", "Hello")]),
            ),
        ],
        dropped_attributes_count: 0,
    };
    let span = span_with(vec![text("gen_ai.operation.name", "chat")]);
    let semantics = Normalizer::default().normalize(&span, &[details]);
    assert_eq!(semantics.input.as_deref(), Some("Say hello"));
    assert_eq!(semantics.output.as_deref(), Some("Hello"));
}

#[test]
fn tools_of_every_convention() {
    let cases = [
        vec![
            text("gen_ai.operation.name", "execute_tool"),
            text("gen_ai.tool.name", "search"),
        ],
        vec![
            text("openinference.span.kind", "TOOL"),
            text("tool.name", "search"),
        ],
        vec![
            text("traceloop.span.kind", "tool"),
            text("traceloop.entity.name", "search"),
        ],
    ];
    for attributes in cases {
        let span = Span {
            status: crate::model::Status {
                code: StatusCode::Error,
                message: "boom".into(),
            },
            ..span_with(attributes.clone())
        };
        let semantics = normalize(&span);
        assert_eq!(
            semantics.tool,
            Some(ToolExecution {
                name: "search".into(),
                failed: true
            }),
            "{attributes:?}"
        );
        assert!(semantics.llm.is_none());
    }
}

#[test]
fn traceloop_workflow_entity_values_and_plain_spans() {
    let semantics = normalize(&span_with(vec![
        text("traceloop.span.kind", "workflow"),
        text("traceloop.entity.input", r#"{"inputs": {"q": "hi"}}"#),
        text("traceloop.entity.output", "\"done\""),
    ]));
    assert_eq!(
        semantics.input.as_deref(),
        Some(r#"{"inputs": {"q": "hi"}}"#)
    );
    assert_eq!(semantics.output.as_deref(), Some("done"));
    assert!(semantics.llm.is_none());
    assert_eq!(normalize(&make_span(1, 2)), SpanSemantics::default());
}

#[test]
fn genai_system_instructions_go_first() {
    let semantics = normalize(&span_with(vec![
        text("gen_ai.operation.name", "chat"),
        text(
            "gen_ai.system_instructions",
            r#"[{"type": "text", "content": "Be kind."}]"#,
        ),
        text(
            "gen_ai.input.messages",
            r#"[{"role": "user", "parts": [{"type": "text", "content": "Hi"}]}]"#,
        ),
        text("gen_ai.conversation.id", "conv-1"),
    ]));
    let llm = semantics.llm.unwrap();
    assert_eq!(llm.input_messages[0].role, "system");
    assert_eq!(llm.input_messages[1].content.as_deref(), Some("Hi"));
    assert_eq!(semantics.session_id.as_deref(), Some("conv-1"));
}

#[test]
fn ai_sdk_root_prompt_in_either_shape_and_provider_without_its_api() {
    for prompt in [
        r#"{"system":"Be terse.","prompt":"What is OTLP?"}"#,
        r#"{"system":"Be terse.","messages":[{"role":"user","content":"What is OTLP?"}]}"#,
    ] {
        let root = normalize(&span_with(vec![
            text("ai.operationId", "ai.generateText"),
            text("ai.model.provider", "anthropic.messages"),
            text("gen_ai.request.model", "claude-x"),
            text("gen_ai.system", "anthropic.messages"),
            text("ai.prompt", prompt),
            text("ai.response.text", "A protocol."),
        ]));
        assert_eq!(root.input.as_deref(), Some("What is OTLP?"), "{prompt}");
        assert_eq!(root.output.as_deref(), Some("A protocol."), "{prompt}");
        assert!(
            root.llm.is_none(),
            "the call around the steps is no LLM call"
        );
    }
    let step = normalize(&span_with(vec![
        text("ai.operationId", "ai.streamText.doStream"),
        text("ai.model.provider", "anthropic.messages"),
        text("gen_ai.system", "anthropic.messages"),
        text("ai.model.id", "claude-x"),
        text(
            "ai.response.toolCalls",
            r#"[{"toolCallId":"c1","toolName":"search","input":"{\"q\":\"otlp\"}"}]"#,
        ),
        text("ai.response.text", ""),
        int("ai.usage.inputTokens", 7),
        int("ai.usage.outputTokens", 3),
    ]));
    let llm = step.llm.expect("a doStream span is an LLM call");
    assert_eq!(llm.provider.as_deref(), Some("anthropic"));
    assert_eq!(llm.request_model.as_deref(), Some("claude-x"));
    assert_eq!(llm.usage.total, Some(10));
    let call = &llm.output_messages[0].tool_calls[0];
    assert_eq!(
        (call.id.as_deref(), call.name.as_str()),
        (Some("c1"), "search")
    );
    assert_eq!(call.arguments.as_deref(), Some(r#"{"q":"otlp"}"#));
    assert_eq!(step.output, None, "an empty answer is no output");

    let tool = normalize(&span_with(vec![
        text("ai.operationId", "ai.toolCall"),
        text("ai.toolCall.name", "search"),
    ]));
    assert_eq!(tool.tool.map(|tool| tool.name).as_deref(), Some("search"));
}

#[test]
fn tool_results_are_the_text_only_of_a_message_without_text() {
    let messages = messages_from_json(&serde_json::json!([
        {"role": "tool", "content": [{"type": "tool-result", "toolCallId": "c1", "output": {"t": 21}}]},
        {"role": "assistant", "parts": [
            {"type": "tool_call_response", "id": "c1", "response": {"t": 21}},
            {"type": "text", "content": "It is 21."}
        ]}
    ]))
    .unwrap();
    assert_eq!(messages[0].content.as_deref(), Some(r#"{"t":21}"#));
    assert_eq!(messages[0].tool_call_id.as_deref(), Some("c1"));
    assert_eq!(messages[1].content.as_deref(), Some("It is 21."));
}

#[test]
fn pydantic_ai_events_in_an_attribute_are_content_events() {
    let events = r#"[
        {"role": "system", "content": "Be terse.", "event.name": "gen_ai.system.message"},
        {"content": "What is OTLP?", "role": "user", "event.name": "gen_ai.user.message"},
        {"index": 0, "message": {"role": "assistant", "content": "A protocol."}, "event.name": "gen_ai.choice"},
        {"event.name": "not.content", "content": "ignored"}
    ]"#;
    let semantics = normalize(&span_with(vec![
        text("gen_ai.operation.name", "chat"),
        text("gen_ai.request.model", "gpt-4o-mini"),
        text("events", events),
    ]));
    assert_eq!(semantics.input.as_deref(), Some("What is OTLP?"));
    assert_eq!(semantics.output.as_deref(), Some("A protocol."));
    let llm = semantics.llm.unwrap();
    assert_eq!(llm.input_messages[0].role, "system");
    assert_eq!(llm.input_messages.len(), 2);
}

#[test]
fn logfire_stream_request_half_is_no_call_until_it_has_an_answer() {
    let request_half = vec![
        text("logfire.span_type", "span"),
        text(
            "logfire.msg_template",
            "Chat Completion with {request_data[model]!r}",
        ),
        text("gen_ai.operation.name", "chat"),
        text("gen_ai.request.model", "gpt-4o-mini"),
        text(
            "gen_ai.input.messages",
            r#"[{"role":"user","parts":[{"type":"text","content":"Hi"}]}]"#,
        ),
    ];
    let semantics = normalize(&span_with(request_half.clone()));
    assert!(semantics.llm.is_none());
    assert_eq!(semantics.input.as_deref(), Some("Hi"));

    // A plain call, and a call that failed, are calls.
    let mut answered = request_half.clone();
    answered.push(int("gen_ai.usage.input_tokens", 3));
    assert!(normalize(&span_with(answered)).llm.is_some());
    let mut failed = span_with(request_half);
    failed.status.code = StatusCode::Error;
    assert!(normalize(&failed).llm.is_some());
}
