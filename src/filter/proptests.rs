//! Property tests of the condition language: any text a project admin saves parses or is a
//! `ParseError` with a column inside it, and any condition that parses evaluates without a panic.

use proptest::prelude::*;

use super::*;
use crate::model::span::test_support::{make_span, text};
use crate::model::{AttrValue, KeyValue};

/// A span with attributes of every shape, so evaluation walks maps, lists and numbers.
fn rich_span() -> crate::model::Span {
    crate::model::Span {
        attributes: vec![
            text("k", "v"),
            KeyValue::new("n", AttrValue::Int(i64::MIN)),
            KeyValue::new("d", AttrValue::Double(f64::NAN)),
            KeyValue::new("list", AttrValue::Array(vec![AttrValue::Bool(true)])),
            KeyValue::new("map", AttrValue::Map(vec![text("inner", "é")])),
        ],
        ..make_span(1, 2)
    }
}

/// `text` as a string literal of the language.
fn quoted(text: &str) -> String {
    format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
}

/// The language's tokens, and a few that are not, with and without the spaces between them.
fn token() -> impl Strategy<Value = String> {
    prop_oneof![
        proptest::sample::select(vec![
            "name",
            "kind",
            "status.code",
            "status.message",
            "trace_id",
            "trace_id.string",
            "span_id.string",
            "parent_span_id",
            "trace_state",
            "attributes[\"k\"]",
            "attributes[\"map\"][\"inner\"]",
            "resource.attributes[\"service.name\"]",
            "instrumentation_scope.name",
            "instrumentation_scope.attributes[\"k\"]",
            "span.start_time_unix_nano",
            "end_time_unix_nano",
            "==",
            "!=",
            "<",
            "<=",
            ">",
            ">=",
            "and",
            "or",
            "not",
            "(",
            ")",
            "[",
            "]",
            ".",
            ",",
            "IsMatch(",
            "IsString(",
            "IsInt(",
            "IsDouble(",
            "IsBool(",
            "IsMap(",
            "IsList(",
            "nil",
            "true",
            "false",
            "SPAN_KIND_SERVER",
            "STATUS_CODE_ERROR",
            "é",
            "\"",
            "\\",
            "-",
            "=",
            "!",
        ])
        .prop_map(str::to_owned),
        any::<String>().prop_map(|text| quoted(&text)),
        "\"([^\"\\\\]|\\\\.){0,8}\"?",
        "-?[0-9]{1,25}(\\.[0-9]{0,4})?([eE][+-]?[0-9]{1,4})?",
        "-?\\.[0-9]{1,3}",
        "\"([a-z.*+?()\\[\\]{}|^$]|\\\\[dws]){0,12}\"",
    ]
}

fn token_soup() -> impl Strategy<Value = String> {
    (proptest::collection::vec(token(), 0..16), any::<bool>())
        .prop_map(|(tokens, spaced)| tokens.join(if spaced { " " } else { "" }))
}

/// Conditions the grammar accepts: comparisons, calls and truthy paths joined by `and`, `or`,
/// `not` and parentheses.
fn well_formed() -> impl Strategy<Value = String> {
    let path = proptest::sample::select(vec![
        "name",
        "kind",
        "status.code",
        "attributes[\"k\"]",
        "attributes[\"map\"][\"inner\"]",
        "resource.attributes[\"service.name\"]",
        "span.end_time_unix_nano",
    ]);
    let literal = prop_oneof![
        any::<String>().prop_map(|text| quoted(&text)),
        any::<i64>().prop_map(|number| number.to_string()),
        (-1e6..1e6f64).prop_map(|number| format!("{number:?}")),
        proptest::sample::select(vec!["nil", "true", "false", "SPAN_KIND_CLIENT"])
            .prop_map(str::to_owned),
    ];
    let comparator = proptest::sample::select(vec!["==", "!=", "<", "<=", ">", ">="]);
    let leaf = prop_oneof![
        (path.clone(), comparator, literal)
            .prop_map(|(path, comparator, literal)| format!("{path} {comparator} {literal}")),
        (path.clone(), "[a-z]{0,6}")
            .prop_map(|(path, pattern)| format!("IsMatch({path}, \"^{pattern}\")")),
        path.prop_map(|path| format!("IsString({path})")),
    ];
    leaf.prop_recursive(6, 32, 3, |inner| {
        prop_oneof![
            inner.clone().prop_map(|condition| format!("({condition})")),
            inner
                .clone()
                .prop_map(|condition| format!("not {condition}")),
            (inner.clone(), inner.clone()).prop_map(|(left, right)| format!("{left} and {right}")),
            (inner.clone(), inner).prop_map(|(left, right)| format!("{left} or {right}")),
        ]
    })
}

/// Parses `text`: a condition is evaluated on two spans, an error points inside the text.
fn check(text: &str) -> Result<(), TestCaseError> {
    match parse(text) {
        Ok(condition) => {
            let _ = condition.matches(&make_span(1, 2));
            let _ = condition.matches(&rich_span());
        }
        Err(error) => {
            let length = text.chars().count();
            prop_assert!(!error.message.is_empty());
            prop_assert!(
                error.column >= 1 && error.column <= length.max(MAX_CONDITION_LENGTH) + 1,
                "column {} of {} characters",
                error.column,
                length
            );
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(crate::test_support::bounded_cases())]

    #[test]
    fn arbitrary_text_parses_or_fails(text in any::<String>()) {
        check(&text)?;
    }

    #[test]
    fn token_soup_parses_or_fails(text in token_soup()) {
        check(&text)?;
    }

    #[test]
    fn well_formed_conditions_parse(text in well_formed()) {
        prop_assert!(parse(&text).is_ok(), "{:?}: {:?}", text, parse(&text).err());
        check(&text)?;
    }

    /// A string literal with escapes reads back as the text it quotes.
    #[test]
    fn string_literals_round_trip(name in any::<String>()) {
        let span = crate::model::Span { name: name.clone(), ..make_span(1, 2) };
        let equal = parse(&format!("name == {}", quoted(&name))).unwrap();
        prop_assert!(equal.matches(&span));
        let unequal = parse(&format!("name != {}", quoted(&name))).unwrap();
        prop_assert!(!unequal.matches(&span));
    }
}
