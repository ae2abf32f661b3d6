use std::sync::Arc;

use super::*;
use crate::model::span::test_support::make_span;
use crate::model::{AttrValue, KeyValue, Resource, Scope, Span, SpanKind, Status, StatusCode};

fn span() -> Span {
    Span {
        name: "chat gpt-4o".into(),
        kind: SpanKind::Client,
        status: Status {
            code: StatusCode::Error,
            message: "boom".into(),
        },
        attributes: vec![
            KeyValue::new("gentrace.sample", AttrValue::String("true".into())),
            KeyValue::new("tokens", AttrValue::Int(42)),
            KeyValue::new("ratio", AttrValue::Double(0.5)),
            KeyValue::new("flag", AttrValue::Bool(true)),
            KeyValue::new(
                "nested",
                AttrValue::Map(vec![KeyValue::new("inner", AttrValue::String("x".into()))]),
            ),
        ],
        resource: Arc::new(Resource {
            attributes: vec![KeyValue::new(
                "service.name",
                AttrValue::String("api".into()),
            )],
            ..Default::default()
        }),
        scope: Arc::new(Scope {
            name: "openinference.instrumentation.openai".into(),
            version: "0.1.66".into(),
            ..Default::default()
        }),
        ..make_span(0xab, 0xcd)
    }
}

fn check(condition: &str) -> bool {
    parse(condition)
        .unwrap_or_else(|error| panic!("{condition}: {error}"))
        .matches(&span())
}

#[test]
fn the_gentrace_guide_condition() {
    assert!(!check(r#"attributes["gentrace.sample"] != "true""#));
    let mut unsampled = span();
    unsampled.attributes.clear();
    let condition = parse(r#"attributes["gentrace.sample"] != "true""#).unwrap();
    assert!(
        condition.matches(&unsampled),
        "a missing attribute is nil, and nil != \"true\""
    );
}

#[test]
fn paths_literals_and_comparisons() {
    for condition in [
        r#"name == "chat gpt-4o""#,
        r#"span.name == "chat gpt-4o""#,
        "kind == SPAN_KIND_CLIENT",
        "kind == 3",
        "status.code == STATUS_CODE_ERROR",
        r#"status.message == "boom""#,
        r#"resource.attributes["service.name"] == "api""#,
        r#"instrumentation_scope.name == "openinference.instrumentation.openai""#,
        r#"instrumentation_scope.version >= "0.1""#,
        "attributes[\"tokens\"] > 40 and attributes[\"tokens\"] <= 42",
        r#"attributes["ratio"] < 1"#,
        r#"attributes["ratio"] == 0.5"#,
        r#"attributes["flag"] == true"#,
        r#"attributes["nested"]["inner"] == "x""#,
        r#"attributes["missing"] == nil"#,
        r#"trace_id == "abababababababababababababababab""#,
        r#"span_id.string == "cdcdcdcdcdcdcdcd""#,
        r#"parent_span_id == """#,
        "start_time_unix_nano > 0",
        r#"IsMatch(name, "^chat ")"#,
        r#"IsMatch(attributes["tokens"], "^4\\d$")"#,
        r#"IsString(name) and IsInt(attributes["tokens"]) and IsDouble(attributes["ratio"])"#,
        r#"IsBool(attributes["flag"]) and IsMap(attributes["nested"])"#,
        r#"not (name == "x") and (kind == 1 or kind == 3)"#,
        r#"name == "x" or name != "x""#,
        r#"attributes["tokens"] != "42""#,
    ] {
        assert!(check(condition), "{condition}");
    }
    for condition in [
        r#"name == "other""#,
        r#"attributes["tokens"] == "42""#,
        r#"attributes["missing"] > 1"#,
        r#"IsMatch(attributes["missing"], ".*")"#,
        r#"IsString(attributes["tokens"])"#,
        r#"not name == "chat gpt-4o""#,
        r#"attributes["nested"]["missing"] != nil"#,
    ] {
        assert!(!check(condition), "{condition}");
    }
}

#[test]
fn parse_errors_say_where() {
    let cases = [
        (r#"name == "x" and"#, 16),
        (r#"name = "x""#, 6),
        (r#"attributes["k"] == "unclosed"#, 20),
        (r#"unknown.path == 1"#, 1),
        (r#"IsMatch(name, "(")"#, 15),
        (r#"Nope(name)"#, 1),
        (r#"(name == "x""#, 13),
        (r#"attributes == "x""#, 1),
        (r#"name == "x")"#, 12),
        ("", 1),
    ];
    for (condition, column) in cases {
        let error = parse(condition).expect_err(condition);
        assert_eq!(error.column, column, "{condition}: {error}");
    }
}

/// Fuzz-style: no input makes the parser panic or overflow the stack.
#[test]
fn no_input_panics() {
    let pieces = [
        "name",
        "==",
        "!=",
        "<",
        ">=",
        "(",
        ")",
        "[",
        "]",
        "\"k\"",
        "\"",
        "attributes",
        ".",
        "resource",
        "and",
        "or",
        "not",
        "IsMatch",
        ",",
        "1",
        "-",
        "1.5e3",
        "nil",
        "true",
        "SPAN_KIND_SERVER",
        " ",
        "\\",
        "é",
        "\u{0}",
        "span",
        "kind",
        "status",
        "code",
        "IsString",
    ];
    let mut seed: u64 = 42;
    let mut next = move |bound: usize| {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((seed >> 33) % bound as u64) as usize
    };
    let mut parsed = 0;
    for _ in 0..20_000 {
        let length = next(12);
        let condition: String = (0..length)
            .map(|_| pieces[next(pieces.len())])
            .collect::<Vec<_>>()
            .join(if next(2) == 0 { "" } else { " " });
        if let Ok(compiled) = parse(&condition) {
            parsed += 1;
            compiled.matches(&span());
        }
    }
    assert!(
        parsed > 0,
        "the generator should also produce valid conditions"
    );
    // Random bytes as text.
    for _ in 0..5_000 {
        let bytes: Vec<u8> = (0..next(40)).map(|_| next(256) as u8).collect();
        let _ = parse(&String::from_utf8_lossy(&bytes));
    }
    // Deep nesting is an error, not a stack overflow.
    let deep = format!("{}name == \"x\"{}", "(".repeat(1_500), ")".repeat(1_500));
    assert!(parse(&deep).is_err());
    let deep_not = format!("{}name == \"x\"", "not ".repeat(900));
    assert!(parse(&deep_not).is_err());
    assert!(parse(&"a".repeat(MAX_CONDITION_LENGTH + 1)).is_err());
}
