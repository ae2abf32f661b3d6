//! From a parsed condition to a [`Filter`]: paths to the left of their literal, literals checked
//! against what their path holds, constants folded, calls to atoms.

use std::cmp::Ordering;

use super::{
    Comparator, Filter, KIND_NAMES, Located, QueryPath, STATUS_NAMES, Test, Value, ValueKind,
};
use crate::filter::{Call, Condition, Expr, Literal, ParseError};

pub(super) fn reduce<P: QueryPath>(
    condition: Condition<Located<P>>,
) -> Result<Filter<P>, ParseError> {
    Ok(match condition {
        Condition::Or(terms) => Filter::Or(reduce_all(terms)?),
        Condition::And(terms) => Filter::And(reduce_all(terms)?),
        Condition::Not(inner) => Filter::Not(Box::new(reduce(*inner)?)),
        Condition::Truthy(expr) => truthy(expr)?,
        Condition::Compare(left, comparator, right) => compare(left, comparator, right)?,
    })
}

fn reduce_all<P: QueryPath>(
    terms: Vec<Condition<Located<P>>>,
) -> Result<Vec<Filter<P>>, ParseError> {
    terms.into_iter().map(reduce).collect()
}

/// A value used as a condition: a path is compared with `true`, a call is its test.
fn truthy<P: QueryPath>(expr: Expr<Located<P>>) -> Result<Filter<P>, ParseError> {
    match expr {
        Expr::Literal(literal) => Ok(Filter::Constant(literal == Literal::Bool(true))),
        Expr::Path(located) if located.path.kind() == ValueKind::Presence => {
            Ok(Filter::Not(Box::new(Filter::Atom(
                located.path,
                Test::Compare(Comparator::Equal, Value::Nil),
            ))))
        }
        Expr::Path(located) => atom(located, Comparator::Equal, Literal::Bool(true)),
        Expr::Call(Call::HasTag(tag)) => match P::tags() {
            Some(tags) => Ok(Filter::Atom(
                tags,
                Test::Compare(Comparator::Equal, Value::Text(tag)),
            )),
            None => Err(at(1, "HasTag is a function of trace filters only")),
        },
        Expr::Call(Call::IsMatch(target, regex)) => {
            let Expr::Path(located) = *target else {
                return Err(at(1, "IsMatch's first argument must be a field"));
            };
            match located.path.kind() {
                ValueKind::Text | ValueKind::Strings | ValueKind::Any => {
                    Ok(Filter::Atom(located.path, Test::Matches(regex)))
                }
                _ => Err(at(
                    located.column,
                    "IsMatch needs a field that holds strings".to_owned(),
                )),
            }
        }
        Expr::Call(Call::IsType(value, _)) => {
            let column = match *value {
                Expr::Path(located) => located.column,
                _ => 1,
            };
            Err(at(
                column,
                "IsString, IsInt, IsDouble, IsBool, IsMap and IsList are not supported in \
                 queries",
            ))
        }
    }
}

fn compare<P: QueryPath>(
    left: Expr<Located<P>>,
    comparator: Comparator,
    right: Expr<Located<P>>,
) -> Result<Filter<P>, ParseError> {
    match (left, right) {
        (Expr::Literal(left), Expr::Literal(right)) => {
            Ok(Filter::Constant(literals(&left, comparator, &right)))
        }
        (Expr::Path(_), Expr::Path(located)) => Err(at(
            located.column,
            "compare a field with a value, not with another field",
        )),
        (Expr::Path(located), Expr::Literal(literal)) => atom(located, comparator, literal),
        (Expr::Literal(literal), Expr::Path(located)) => atom(located, flip(comparator), literal),
        (Expr::Call(call), Expr::Literal(Literal::Bool(flag)))
        | (Expr::Literal(Literal::Bool(flag)), Expr::Call(call)) => {
            let test = truthy(Expr::Call(call))?;
            match (comparator, flag) {
                (Comparator::Equal, true) | (Comparator::NotEqual, false) => Ok(test),
                (Comparator::Equal, false) | (Comparator::NotEqual, true) => {
                    Ok(Filter::Not(Box::new(test)))
                }
                _ => Err(at(1, "a function's result compares only with == or !=")),
            }
        }
        _ => Err(at(
            1,
            "a function's result compares only with true or false",
        )),
    }
}

/// `path <comparator> literal`, checked against what the path holds.
fn atom<P: QueryPath>(
    located: Located<P>,
    comparator: Comparator,
    literal: Literal,
) -> Result<Filter<P>, ParseError> {
    let Located { path, column } = located;
    let kind = path.kind();
    let equality = matches!(comparator, Comparator::Equal | Comparator::NotEqual);
    if literal == Literal::Nil {
        return match kind {
            // Never missing: `== nil` is false, `!= nil` true, ordering false.
            ValueKind::Number | ValueKind::Status | ValueKind::SpanKind => {
                Ok(Filter::Constant(comparator == Comparator::NotEqual))
            }
            _ if !equality => Ok(Filter::Constant(false)),
            _ => Ok(Filter::Atom(path, Test::Compare(comparator, Value::Nil))),
        };
    }
    let value = match (kind, literal) {
        (ValueKind::Number | ValueKind::OptionalNumber, Literal::Int(number)) => Value::Int(number),
        (ValueKind::Number | ValueKind::OptionalNumber, Literal::Float(number)) => {
            Value::Float(number)
        }
        (ValueKind::Number | ValueKind::OptionalNumber, _) => {
            return Err(at(
                column,
                "this field is a number: compare it with a number, like duration_ms > 5000",
            ));
        }
        (ValueKind::Text | ValueKind::Strings, Literal::Str(text)) => Value::Text(text),
        (ValueKind::Text | ValueKind::Strings, _) => {
            return Err(at(
                column,
                "this field holds strings: compare it with a string in double quotes",
            ));
        }
        (ValueKind::Status, literal) => named(literal, &STATUS_NAMES, column, "status")?,
        (ValueKind::SpanKind, literal) => named(literal, &KIND_NAMES, column, "kind")?,
        (ValueKind::Presence, _) => {
            return Err(at(column, "llm compares only with nil: llm != nil"));
        }
        (ValueKind::Any, Literal::Str(text)) => Value::Text(text),
        (ValueKind::Any, Literal::Int(number)) => Value::Int(number),
        (ValueKind::Any, Literal::Float(number)) => Value::Float(number),
        (ValueKind::Any, Literal::Bool(flag)) => Value::Bool(flag),
        (ValueKind::Any, Literal::Nil) => Value::Nil,
    };
    if !equality && matches!(value, Value::Bool(_)) {
        return Err(at(column, "booleans compare only with == and !="));
    }
    if !equality && matches!(kind, ValueKind::Status | ValueKind::SpanKind) {
        return Err(at(column, "a status or kind compares only with == and !="));
    }
    if matches!(value, Value::Float(number) if number.is_nan()) {
        return Err(at(column, "NaN compares with nothing"));
    }
    Ok(Filter::Atom(path, Test::Compare(comparator, value)))
}

/// A status or kind: one of `names`, given by name or by its OTLP number (the constants).
fn named(literal: Literal, names: &[&str], column: usize, what: &str) -> Result<Value, ParseError> {
    let name = match literal {
        Literal::Str(text) => names.iter().find(|name| **name == text),
        Literal::Int(number) => usize::try_from(number)
            .ok()
            .and_then(|index| names.get(index)),
        _ => None,
    };
    name.map(|name| Value::Text((*name).to_owned()))
        .ok_or_else(|| at(column, format!("{what} is one of {}", names.join(", "))))
}

fn flip(comparator: Comparator) -> Comparator {
    match comparator {
        Comparator::Less => Comparator::Greater,
        Comparator::LessEqual => Comparator::GreaterEqual,
        Comparator::Greater => Comparator::Less,
        Comparator::GreaterEqual => Comparator::LessEqual,
        same => same,
    }
}

/// Two literals compared as OTTL does: values of different kinds are unequal and unordered.
fn literals(left: &Literal, comparator: Comparator, right: &Literal) -> bool {
    let ordering = match (left, right) {
        (Literal::Nil, Literal::Nil) => Some(Ordering::Equal),
        (Literal::Str(a), Literal::Str(b)) => Some(a.cmp(b)),
        (Literal::Bool(a), Literal::Bool(b)) if a == b => Some(Ordering::Equal),
        (Literal::Int(a), Literal::Int(b)) => Some(a.cmp(b)),
        (a, b) => number(a)
            .zip(number(b))
            .and_then(|(a, b)| a.partial_cmp(&b)),
    };
    comparator.holds(ordering)
}

fn number(literal: &Literal) -> Option<f64> {
    match literal {
        Literal::Int(number) => Some(*number as f64),
        Literal::Float(number) => Some(*number),
        _ => None,
    }
}

fn at(column: usize, message: impl Into<String>) -> ParseError {
    ParseError {
        column,
        message: message.into(),
    }
}
