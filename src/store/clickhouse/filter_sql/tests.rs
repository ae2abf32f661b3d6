use super::spans::span_condition;
use super::*;
use crate::filter::query::{parse_span_filter, parse_trace_filter};

#[test]
fn literals_are_placeholders() {
    let filter = parse_trace_filter(
        r#"user_id != "x' OR 1 = 1" and span.attributes["k"] == 5 or not HasTag("t")"#,
    )
    .unwrap();
    let sql = trace_condition("p", &filter);
    assert!(!sql.text.contains("OR 1 = 1"), "{}", sql.text);
    assert_eq!(sql.text.matches('?').count(), sql.params.len());
    assert_eq!(sql.params[0], Param::Text("x' OR 1 = 1".into()));
    assert!(sql.text.contains("ifNull(trace_user_id != ?, 1)"));
}

#[test]
fn another_kind_is_not_equal() {
    let filter = parse_trace_filter(r#"span.attributes["k"] != "v""#).unwrap();
    let sql = trace_condition("p", &filter);
    assert!(
        sql.text
            .ends_with("AND (NOT (value_type = 1 AND value = ?))))"),
        "{}",
        sql.text
    );
}

#[test]
fn span_filters_read_columns_and_terms() {
    let filter = parse_span_filter(
        r#"llm != nil and llm.provider == "openai" and kind == SPAN_KIND_CLIENT"#,
    )
    .unwrap();
    let window = Window {
        start_unix_nano: 1,
        end_unix_nano: 2,
    };
    let sql = span_condition("p", window, &filter);
    assert!(
        sql.text
            .starts_with("((is_llm = 1) AND ((trace_id, span_id) IN (")
    );
    assert!(sql.text.ends_with("(kind = ?))"), "{}", sql.text);
    assert_eq!(sql.params.last(), Some(&Param::Int(3)));
}
