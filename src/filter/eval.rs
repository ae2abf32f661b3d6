//! Evaluating compiled conditions against spans.

use std::borrow::Cow;
use std::cmp::Ordering;

use super::parser::{Call, Comparator, Condition, Expr, Literal, Path, TypeCheck};
use crate::model::{AttrValue, KeyValue, Span};

/// A value during evaluation, borrowed from the span where possible.
#[derive(Debug, Clone, PartialEq)]
enum Value<'a> {
    Nil,
    Str(Cow<'a, str>),
    Int(i64),
    Float(f64),
    Bool(bool),
    Map(&'a [KeyValue]),
    List(&'a [AttrValue]),
    Bytes,
}

impl Condition {
    /// Whether the span matches (and so, in a filter, is dropped).
    pub fn matches(&self, span: &Span) -> bool {
        match self {
            Condition::Or(terms) => terms.iter().any(|term| term.matches(span)),
            Condition::And(terms) => terms.iter().all(|term| term.matches(span)),
            Condition::Not(inner) => !inner.matches(span),
            Condition::Compare(left, comparator, right) => {
                compare(&evaluate(left, span), *comparator, &evaluate(right, span))
            }
            Condition::Truthy(expr) => evaluate(expr, span) == Value::Bool(true),
        }
    }
}

fn compare(left: &Value<'_>, comparator: Comparator, right: &Value<'_>) -> bool {
    comparator.holds(order(left, right))
}

/// How two values compare; `None` when they are of kinds that do not compare (a string and a
/// number, say), which makes `==` false and `!=` true, as in OTTL.
fn order(left: &Value<'_>, right: &Value<'_>) -> Option<Ordering> {
    match (left, right) {
        (Value::Nil, Value::Nil) => Some(Ordering::Equal),
        (Value::Str(a), Value::Str(b)) => Some(a.cmp(b)),
        (Value::Int(a), Value::Int(b)) => Some(a.cmp(b)),
        (Value::Float(a), Value::Float(b)) => a.partial_cmp(b),
        (Value::Int(a), Value::Float(b)) => (*a as f64).partial_cmp(b),
        (Value::Float(a), Value::Int(b)) => a.partial_cmp(&(*b as f64)),
        (Value::Bool(a), Value::Bool(b)) if a == b => Some(Ordering::Equal),
        (Value::Map(a), Value::Map(b)) if a == b => Some(Ordering::Equal),
        (Value::List(a), Value::List(b)) if a == b => Some(Ordering::Equal),
        _ => None,
    }
}

fn evaluate<'a>(expr: &'a Expr, span: &'a Span) -> Value<'a> {
    match expr {
        Expr::Literal(literal) => match literal {
            Literal::Nil => Value::Nil,
            Literal::Bool(flag) => Value::Bool(*flag),
            Literal::Int(number) => Value::Int(*number),
            Literal::Float(number) => Value::Float(*number),
            Literal::Str(text) => Value::Str(Cow::Borrowed(text)),
        },
        Expr::Path(path) => read_path(path, span),
        Expr::Call(Call::IsMatch(target, regex)) => {
            let text = match evaluate(target, span) {
                Value::Str(text) => text,
                Value::Int(number) => Cow::Owned(number.to_string()),
                Value::Float(number) => Cow::Owned(number.to_string()),
                Value::Bool(flag) => Cow::Owned(flag.to_string()),
                _ => return Value::Bool(false),
            };
            Value::Bool(regex.is_match(&text))
        }
        // Not a function of the span context: the parser refuses it there.
        Expr::Call(Call::HasTag(_)) => Value::Bool(false),
        Expr::Call(Call::IsType(value, check)) => {
            let value = evaluate(value, span);
            Value::Bool(matches!(
                (check, value),
                (TypeCheck::String, Value::Str(_))
                    | (TypeCheck::Int, Value::Int(_))
                    | (TypeCheck::Double, Value::Float(_))
                    | (TypeCheck::Bool, Value::Bool(_))
                    | (TypeCheck::Map, Value::Map(_))
                    | (TypeCheck::List, Value::List(_))
            ))
        }
    }
}

fn read_path<'a>(path: &'a Path, span: &'a Span) -> Value<'a> {
    match path {
        Path::Name => Value::Str(Cow::Borrowed(&span.name)),
        Path::Kind => Value::Int(i64::from(span.kind.to_otlp())),
        Path::StatusCode => Value::Int(i64::from(span.status.code.to_otlp())),
        Path::StatusMessage => Value::Str(Cow::Borrowed(&span.status.message)),
        Path::TraceId => Value::Str(Cow::Owned(span.trace_id.to_hex())),
        Path::SpanId => Value::Str(Cow::Owned(span.span_id.to_hex())),
        Path::ParentSpanId => span
            .parent_span_id
            .map_or(Value::Str(Cow::Borrowed("")), |parent| {
                Value::Str(Cow::Owned(parent.to_hex()))
            }),
        Path::TraceState => Value::Str(Cow::Borrowed(&span.trace_state)),
        Path::StartTime => Value::Int(span.start_time_unix_nano.min(i64::MAX as u64) as i64),
        Path::EndTime => Value::Int(span.end_time_unix_nano.min(i64::MAX as u64) as i64),
        Path::Attribute(keys) => lookup(&span.attributes, keys),
        Path::ResourceAttribute(keys) => lookup(&span.resource.attributes, keys),
        Path::ScopeName => Value::Str(Cow::Borrowed(&span.scope.name)),
        Path::ScopeVersion => Value::Str(Cow::Borrowed(&span.scope.version)),
        Path::ScopeAttribute(keys) => lookup(&span.scope.attributes, keys),
    }
}

/// Follows `keys` through nested maps; a missing key is nil.
fn lookup<'a>(attributes: &'a [KeyValue], keys: &[String]) -> Value<'a> {
    let Some((first, rest)) = keys.split_first() else {
        return Value::Nil;
    };
    let Some(value) = attributes
        .iter()
        .find(|entry| &entry.key == first)
        .map(|entry| &entry.value)
    else {
        return Value::Nil;
    };
    if rest.is_empty() {
        return from_attribute(value);
    }
    match value {
        AttrValue::Map(entries) => lookup(entries, rest),
        _ => Value::Nil,
    }
}

fn from_attribute(value: &AttrValue) -> Value<'_> {
    match value {
        AttrValue::Empty => Value::Nil,
        AttrValue::String(text) => Value::Str(Cow::Borrowed(text)),
        AttrValue::Bool(flag) => Value::Bool(*flag),
        AttrValue::Int(number) => Value::Int(*number),
        AttrValue::Double(number) => Value::Float(*number),
        AttrValue::Bytes(_) => Value::Bytes,
        AttrValue::Array(values) => Value::List(values),
        AttrValue::Map(entries) => Value::Map(entries),
    }
}
