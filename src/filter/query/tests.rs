use super::*;

fn trace(text: &str) -> TraceFilter {
    parse_trace_filter(text).unwrap_or_else(|error| panic!("{text}: {error}"))
}

fn trace_error(text: &str) -> ParseError {
    parse_trace_filter(text).expect_err(text)
}

#[test]
fn the_issues_example_is_two_atoms() {
    let filter = trace(r#"span.attributes["tenant"] == "acme" and duration_ms > 5000"#);
    let conjuncts = filter.conjuncts();
    assert_eq!(conjuncts.len(), 2);
    assert!(matches!(
        conjuncts[0],
        Filter::Atom(TracePath::SpanAttribute(key), Test::Compare(Comparator::Equal, Value::Text(value)))
            if key == "tenant" && value == "acme"
    ));
    assert!(matches!(
        conjuncts[1],
        Filter::Atom(
            TracePath::Field(TraceField::DurationMs),
            Test::Compare(Comparator::Greater, Value::Int(5000))
        )
    ));
}

#[test]
fn literals_on_the_left_flip_and_constants_name_statuses() {
    assert!(matches!(
        trace("5000 < duration_ms"),
        Filter::Atom(_, Test::Compare(Comparator::Greater, Value::Int(5000)))
    ));
    assert!(matches!(
        trace("span.status == STATUS_CODE_ERROR"),
        Filter::Atom(TracePath::SpanStatus, Test::Compare(Comparator::Equal, Value::Text(name)))
            if name == "error"
    ));
    assert!(matches!(
        trace(r#"HasTag("beta")"#),
        Filter::Atom(TracePath::Tags, Test::Compare(Comparator::Equal, Value::Text(tag)))
            if tag == "beta"
    ));
    assert!(matches!(
        trace(r#"IsMatch(user_id, "^a") == false"#),
        Filter::Not(inner) if matches!(*inner, Filter::Atom(TracePath::Field(TraceField::UserId), Test::Matches(_)))
    ));
    assert!(matches!(trace("1 == 1"), Filter::Constant(true)));
    assert!(matches!(
        trace("duration_ms == nil"),
        Filter::Constant(false)
    ));
    assert!(matches!(
        trace(r#"scores["thumbs"] == false"#),
        Filter::Atom(TracePath::Score(name), Test::Compare(Comparator::Equal, Value::Bool(false)))
            if name == "thumbs"
    ));
}

#[test]
fn mistakes_name_their_column() {
    for (text, column, words) in [
        (r#"duration_ms > "slow""#, 1, "number"),
        (r#"status == "ok" and user_id == 5"#, 20, "strings"),
        (r#"status == "broken""#, 1, "status is one of"),
        ("status > 1", 1, "== and !="),
        ("nonsense == 1", 1, "unknown field"),
        (r#"attributes["k"] == 1"#, 1, "span.attributes"),
        (r#"metadata["a"]["b"] == "x""#, 1, "one key"),
        ("duration_ms == span_count", 16, "another field"),
        (r#"IsMatch(duration_ms, "1")"#, 9, "strings"),
        ("duration_ms >", 14, "expected a value"),
        (r#"IsString(user_id)"#, 10, "not supported"),
    ] {
        let error = trace_error(text);
        assert_eq!(error.column, column, "{text}: {error}");
        assert!(error.message.contains(words), "{text}: {error}");
    }
}

#[test]
fn the_span_context_has_its_own_fields() {
    let filter =
        parse_span_filter(r#"llm != nil and llm.model == "gpt-4o" and kind == SPAN_KIND_CLIENT"#)
            .unwrap();
    let conjuncts = filter.conjuncts();
    assert!(matches!(
        conjuncts[0],
        Filter::Atom(
            SpanPath::Llm,
            Test::Compare(Comparator::NotEqual, Value::Nil)
        )
    ));
    assert!(matches!(
        conjuncts[2],
        Filter::Atom(SpanPath::Field(SpanField::Kind), Test::Compare(_, Value::Text(kind))) if kind == "client"
    ));
    assert!(
        parse_span_filter(r#"HasTag("x")"#)
            .unwrap_err()
            .message
            .contains("unknown function")
    );
    assert!(
        parse_span_filter("llm == 1")
            .unwrap_err()
            .message
            .contains("nil")
    );
    assert!(matches!(
        parse_span_filter(r#"span.attributes["a"] == 1"#).unwrap(),
        Filter::Atom(SpanPath::Attribute(_), _)
    ));
}

proptest::proptest! {
    #[test]
    fn arbitrary_text_never_panics(text in ".{0,200}") {
        let _ = parse_trace_filter(&text);
        let _ = parse_span_filter(&text);
    }
}
