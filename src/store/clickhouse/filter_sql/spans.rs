//! The span context (`GET /api/v1/spans`): a [`SpanFilter`] to a condition on the rows of
//! `spans`; attributes and the LLM call's provider and operation through `span_terms`.

use super::Param;
use super::{
    KIND_LLM_OPERATION, KIND_LLM_PROVIDER, SPAN_DURATION_MS, Split, Sql, Window, coded, combine,
    kind_code, nullable, number, split, status_code, term_value, terms_of,
};
use crate::filter::query::{Comparator, SpanField, SpanFilter, SpanPath, Test, Value};
use crate::store::terms::TermKind;

/// A condition on a row of `spans` (columns unqualified) of a window.
pub fn span_condition(project_id: &str, window: Window, filter: &SpanFilter) -> Sql {
    let mut sql = Sql::default();
    combine(&mut sql, filter, &mut |sql, path, test| {
        span_atom(sql, project_id, window, path, test)
    });
    sql
}

/// [`span_condition`] split for a `FINAL` read of `spans`: what a span was sent with (its
/// name, kind, times, status, service, terms) is the same in every version of its row; what
/// normalization makes of it (the LLM call's columns) may change when content events arrive.
pub fn span_split(project_id: &str, window: Window, filter: &SpanFilter) -> Split {
    split(
        filter,
        |path| {
            !matches!(
                path,
                SpanPath::Llm
                    | SpanPath::Field(
                        SpanField::LlmModel
                            | SpanField::LlmPromptTokens
                            | SpanField::LlmCompletionTokens
                            | SpanField::LlmCost
                    )
            )
        },
        |part| span_condition(project_id, window, part),
    )
}

/// A scalar of the span kept in `span_terms` (an attribute, the LLM call's provider): `==` a
/// value and the orderings hold when the span's term passes; `!=` when it has no equal term;
/// `== nil` when it has no term of the key.
fn span_terms(sql: &mut Sql, project_id: &str, window: Window, kind: u8, key: &str, test: &Test) {
    let (negate, test) = match test {
        Test::Compare(Comparator::Equal, Value::Nil) => (true, None),
        Test::Compare(Comparator::NotEqual, Value::Nil) => (false, None),
        Test::Compare(Comparator::NotEqual, value) => {
            (true, Some(Test::Compare(Comparator::Equal, value.clone())))
        }
        test => (false, Some(test.clone())),
    };
    sql.push(if negate {
        "((trace_id, span_id) NOT IN ("
    } else {
        "((trace_id, span_id) IN ("
    });
    terms_of(sql, "trace_id, span_id", project_id, kind, key);
    sql.push(" AND start_ns >= ");
    sql.bind(Param::UInt(window.start_unix_nano));
    sql.push(" AND start_ns < ");
    sql.bind(Param::UInt(window.end_unix_nano));
    if let Some(test) = &test {
        sql.push(" AND ");
        term_value(sql, test);
    }
    sql.push("))");
}

fn span_atom(sql: &mut Sql, project_id: &str, window: Window, path: &SpanPath, test: &Test) {
    match path {
        SpanPath::Attribute(key) => span_terms(
            sql,
            project_id,
            window,
            TermKind::Attribute.code(),
            key,
            test,
        ),
        SpanPath::ResourceAttribute(key) => span_terms(
            sql,
            project_id,
            window,
            TermKind::Resource.code(),
            key,
            test,
        ),
        SpanPath::Llm => match test {
            Test::Compare(Comparator::Equal, Value::Nil) => sql.push("(is_llm = 0)"),
            Test::Compare(Comparator::NotEqual, Value::Nil) => sql.push("(is_llm = 1)"),
            _ => sql.push("0"),
        },
        SpanPath::Field(field) => match field {
            SpanField::Name => match test {
                Test::Compare(comparator, Value::Nil) => {
                    sql.push(if *comparator == Comparator::NotEqual {
                        "1"
                    } else {
                        "0"
                    })
                }
                test => nullable(sql, "name", test, true),
            },
            SpanField::Kind => coded(sql, "kind", test, kind_code),
            SpanField::Status => coded(sql, "status_code", test, status_code),
            SpanField::DurationMs => number(sql, SPAN_DURATION_MS, test),
            SpanField::ServiceName => nullable(sql, "service_name", test, true),
            SpanField::LlmModel => nullable(sql, "model", test, true),
            SpanField::LlmProvider => {
                span_terms(sql, project_id, window, KIND_LLM_PROVIDER, "", test)
            }
            SpanField::LlmOperation => {
                span_terms(sql, project_id, window, KIND_LLM_OPERATION, "", test)
            }
            SpanField::LlmPromptTokens => nullable(sql, "prompt_tokens", test, false),
            SpanField::LlmCompletionTokens => nullable(sql, "completion_tokens", test, false),
            SpanField::LlmCost => nullable(sql, "total_cost", test, false),
        },
    }
}
