//! The filter language (SPEC §7) compiled to ClickHouse SQL: a [`TraceFilter`] to a condition
//! on the rows of `traces`, a [`SpanFilter`] to one on the rows of `spans`. Every literal is a
//! placeholder bound by the client (escaped), never spliced; the texts here are fixed.
//!
//! Each condition is a UInt8 that is never NULL (`ifNull`), so that `NOT` keeps OTTL's
//! meaning: `user_id != "u"` holds for a trace without a user, `total_cost > 1` does not hold
//! for one without a cost. Paths that read many values are true when some value makes the
//! comparison true: `model` over the `models` array; `tags`, `metadata["k"]` and
//! `span.attributes["k"]` over `span_terms` (`trace_id IN (…)`, so repeated terms count once);
//! `span.name`, `span.status` and `span.duration_ms` over the `spans` columns; but
//! `metadata["k"] != "v"` is the negation of `==` (true for a trace without `k`). `scores["n"]` is
//! the latest score of that name (by creation time, then id) that is not deleted.
//!
//! `IsMatch` becomes `match()`, ClickHouse's RE2: the patterns Rust's `regex` takes are RE2's
//! syntax but for a few extensions (class set operations such as `[a&&b]`, Unicode classes
//! `\d`, `\w` that RE2 reads as ASCII); a pattern RE2 refuses fails the query.

use clickhouse::query::Query;

use super::terms::{
    KIND_LLM_OPERATION, KIND_LLM_PROVIDER, TYPE_BOOL, TYPE_FLOAT, TYPE_INT, TYPE_TEXT,
};
use crate::filter::query::{Comparator, Filter, Test, TraceField, TraceFilter, TracePath, Value};
use crate::store::terms::TermKind;

mod spans;
pub use spans::span_split;

/// A value bound to a placeholder.
#[derive(Debug, Clone, PartialEq)]
pub enum Param {
    Text(String),
    Int(i64),
    UInt(u64),
    Float(f64),
}

/// A piece of SQL and the values of its placeholders, in order.
#[derive(Debug, Clone, Default)]
pub struct Sql {
    pub text: String,
    pub params: Vec<Param>,
}

impl Sql {
    fn push(&mut self, text: &str) {
        self.text.push_str(text);
    }

    /// A placeholder for `param`.
    fn bind(&mut self, param: Param) {
        self.text.push('?');
        self.params.push(param);
    }

    fn text(&mut self, value: &str) {
        self.bind(Param::Text(value.to_owned()));
    }
}

/// Binds the values of `params` to the next placeholders of `query`.
pub fn bind(mut query: Query, params: &[Param]) -> Query {
    for param in params {
        query = match param {
            Param::Text(text) => query.bind(text),
            Param::Int(number) => query.bind(number),
            Param::UInt(number) => query.bind(number),
            Param::Float(number) => query.bind(number),
        };
    }
    query
}

/// A regular expression as `match()` takes it. Before 20.x, ClickHouse looks for a literal
/// part of the pattern (case-sensitively) before running RE2, ignoring a leading `(?i)`
/// (`match('Sunny', '(?i)sunny')` is 0 on 18.16); inside a group it looks for none.
fn pattern(regex: &regex::Regex) -> String {
    let text = regex.as_str();
    if text.contains("(?") {
        format!("(?:{text})")
    } else {
        text.to_owned()
    }
}

/// The window of the span context, bound into its term lookups (a term has its span's start).
#[derive(Debug, Clone, Copy)]
pub struct Window {
    pub start_unix_nano: u64,
    pub end_unix_nano: u64,
}

/// A condition on a row of `traces` (columns unqualified).
pub fn trace_condition(project_id: &str, filter: &TraceFilter) -> Sql {
    let mut sql = Sql::default();
    combine(&mut sql, filter, &mut |sql, path, test| {
        trace_atom(sql, project_id, path, test)
    });
    sql
}

/// A filter's conditions for a `FINAL` read: `prewhere`, the conjuncts every version of a row
/// agrees on (they read only the row's key columns: `trace_id IN (…)` lookups), which may
/// filter rows before `FINAL` picks the newest version and so spare it most of the rows; and
/// `rest`, the others, tested after it. `None`: no such conjunct.
#[derive(Debug, Default)]
pub struct Split {
    pub prewhere: Option<Sql>,
    pub rest: Option<Sql>,
}

fn split<P: Clone>(
    filter: &Filter<P>,
    stable: fn(&P) -> bool,
    compile: impl Fn(&Filter<P>) -> Sql,
) -> Split {
    let (before, after): (Vec<&Filter<P>>, Vec<&Filter<P>>) = filter
        .conjuncts()
        .into_iter()
        .partition(|conjunct| all_atoms(conjunct, stable));
    let part = |terms: Vec<&Filter<P>>| {
        (!terms.is_empty()).then(|| compile(&Filter::And(terms.into_iter().cloned().collect())))
    };
    Split {
        prewhere: part(before),
        rest: part(after),
    }
}

fn all_atoms<P>(filter: &Filter<P>, test: fn(&P) -> bool) -> bool {
    match filter {
        Filter::Constant(_) => true,
        Filter::And(terms) | Filter::Or(terms) => terms.iter().all(|term| all_atoms(term, test)),
        Filter::Not(inner) => all_atoms(inner, test),
        Filter::Atom(path, _) => test(path),
    }
}

/// [`trace_condition`] split for a `FINAL` read of `traces`: the paths that look up the trace
/// id elsewhere (terms, scores, spans) are the same for every version of a trace's row.
pub fn trace_split(project_id: &str, filter: &TraceFilter) -> Split {
    split(
        filter,
        |path| !matches!(path, TracePath::Field(_) | TracePath::Model),
        |part| trace_condition(project_id, part),
    )
}

fn combine<P>(sql: &mut Sql, filter: &Filter<P>, atom: &mut impl FnMut(&mut Sql, &P, &Test)) {
    match filter {
        Filter::Constant(value) => sql.push(if *value { "1" } else { "0" }),
        Filter::And(terms) | Filter::Or(terms) => {
            let (joiner, empty) = match filter {
                Filter::And(_) => (" AND ", "1"),
                _ => (" OR ", "0"),
            };
            if terms.is_empty() {
                sql.push(empty);
                return;
            }
            sql.push("(");
            for (index, term) in terms.iter().enumerate() {
                if index > 0 {
                    sql.push(joiner);
                }
                combine(sql, term, atom);
            }
            sql.push(")");
        }
        Filter::Not(inner) => {
            sql.push("(NOT ");
            combine(sql, inner, atom);
            sql.push(")");
        }
        Filter::Atom(path, test) => atom(sql, path, test),
    }
}

fn operator(comparator: Comparator) -> &'static str {
    comparator.sql()
}

/// The code of a status name as `status_code` columns hold it.
fn status_code(name: &str) -> i64 {
    crate::filter::query::code_of(&crate::filter::query::STATUS_NAMES, name)
}

/// The OTLP number of a span kind's name.
fn kind_code(name: &str) -> i64 {
    crate::filter::query::code_of(&crate::filter::query::KIND_NAMES, name)
}

/// `column <op> code` for a status or kind column, given the value's name.
fn coded(sql: &mut Sql, column: &str, test: &Test, code: fn(&str) -> i64) {
    match test {
        Test::Compare(
            comparator @ (Comparator::Equal | Comparator::NotEqual),
            Value::Text(name),
        ) => {
            sql.push(&format!("({column} {} ", operator(*comparator)));
            sql.bind(Param::Int(code(name)));
            sql.push(")");
        }
        // The reduction leaves nothing else: such values are never missing or ordered.
        _ => sql.push("0"),
    }
}

/// A number compared with an expression that is never NULL.
fn number(sql: &mut Sql, expression: &str, test: &Test) {
    match test {
        Test::Compare(comparator, value) => match value.as_f64() {
            Some(number) => {
                sql.push(&format!(
                    "(toFloat64({expression}) {} ",
                    operator(*comparator)
                ));
                sql.bind(Param::Float(number));
                sql.push(")");
            }
            None => sql.push(if *comparator == Comparator::NotEqual {
                "1"
            } else {
                "0"
            }),
        },
        Test::Matches(_) => sql.push("0"),
    }
}

/// A test of a Nullable column: `nil` is NULL; a comparison with a missing value is false but
/// for `!=`, true; `is_text` tells a string column (compared with strings) from a number one.
fn nullable(sql: &mut Sql, column: &str, test: &Test, is_text: bool) {
    match test {
        Test::Compare(Comparator::Equal, Value::Nil) => sql.push(&format!("isNull({column})")),
        Test::Compare(Comparator::NotEqual, Value::Nil) => {
            sql.push(&format!("isNotNull({column})"))
        }
        Test::Compare(_, Value::Nil) => sql.push("0"),
        Test::Compare(comparator, value) => {
            let when_missing = if *comparator == Comparator::NotEqual {
                "1"
            } else {
                "0"
            };
            let param = match (is_text, value) {
                (true, Value::Text(text)) => Param::Text(text.clone()),
                (false, value) if value.as_f64().is_some() => {
                    Param::Float(value.as_f64().unwrap_or_default())
                }
                // Values of another kind: `==` false, `!=` true (missing or not).
                _ => {
                    sql.push(when_missing);
                    return;
                }
            };
            let target = if is_text {
                column.to_owned()
            } else {
                format!("toFloat64({column})")
            };
            sql.push(&format!("ifNull({target} {} ", operator(*comparator)));
            sql.bind(param);
            sql.push(&format!(", {when_missing})"));
        }
        Test::Matches(regex) if is_text => {
            sql.push(&format!("ifNull(match({column}, "));
            sql.text(&pattern(regex));
            sql.push("), 0)");
        }
        Test::Matches(_) => sql.push("0"),
    }
}

/// The condition on a `span_terms` row that its value passes a test (not `nil`).
fn term_value(sql: &mut Sql, test: &Test) {
    match test {
        Test::Matches(regex) => {
            sql.push("match(value, ");
            sql.text(&pattern(regex));
            sql.push(")");
        }
        // A value of another kind is not equal: `!=` is the negation of `==`.
        Test::Compare(Comparator::NotEqual, value) => {
            sql.push("(NOT ");
            term_value(sql, &Test::Compare(Comparator::Equal, value.clone()));
            sql.push(")");
        }
        Test::Compare(comparator, value) => {
            let op = operator(*comparator);
            match value {
                Value::Text(text) => {
                    sql.push(&format!("(value_type = {TYPE_TEXT} AND value {op} "));
                    sql.text(text);
                    sql.push(")");
                }
                Value::Int(_) | Value::Float(_) => {
                    sql.push(&format!(
                        "(value_type IN ({TYPE_INT}, {TYPE_FLOAT}) AND number {op} "
                    ));
                    sql.bind(Param::Float(value.as_f64().unwrap_or_default()));
                    sql.push(")");
                }
                Value::Bool(flag) => {
                    sql.push(&format!("(value_type = {TYPE_BOOL} AND value {op} "));
                    sql.text(if *flag { "true" } else { "false" });
                    sql.push(")");
                }
                Value::Nil => sql.push("0"),
            }
        }
    }
}

/// `SELECT <columns> FROM span_terms WHERE` the terms of a kind and key (and, for the span
/// context, of spans starting in the window).
fn terms_of(sql: &mut Sql, columns: &str, project_id: &str, kind: u8, key: &str) {
    sql.push(&format!(
        "SELECT {columns} FROM span_terms WHERE project_id = "
    ));
    sql.text(project_id);
    sql.push(&format!(" AND kind = {kind} AND key = "));
    sql.text(key);
}

/// A path of many values in `span_terms`: true when some term of the trace passes the test;
/// `== nil`: the trace has no term of the key, `!= nil`: it has one.
fn trace_terms(sql: &mut Sql, project_id: &str, kind: u8, key: &str, test: &Test) {
    let negate = matches!(test, Test::Compare(Comparator::Equal, Value::Nil));
    sql.push(if negate {
        "(trace_id NOT IN ("
    } else {
        "(trace_id IN ("
    });
    terms_of(sql, "trace_id", project_id, kind, key);
    if !matches!(test, Test::Compare(_, Value::Nil)) {
        sql.push(" AND ");
        term_value(sql, test);
    }
    sql.push("))");
}

/// Some span of the trace (in `spans`) makes `condition` true.
fn trace_spans(sql: &mut Sql, project_id: &str, condition: impl FnOnce(&mut Sql)) {
    sql.push("(trace_id IN (SELECT trace_id FROM spans WHERE project_id = ");
    sql.text(project_id);
    sql.push(" AND ");
    condition(sql);
    sql.push("))");
}

/// A span's duration in milliseconds, as `Span::duration_ms` computes it.
const SPAN_DURATION_MS: &str = "(if(end_ns > start_ns, end_ns - start_ns, 0) / 1000000.0)";

fn trace_atom(sql: &mut Sql, project_id: &str, path: &TracePath, test: &Test) {
    match path {
        TracePath::Field(field) => trace_field(sql, *field, test),
        TracePath::Model => models(sql, test),
        // `!=` is the negation of `==`: true for a trace without the key.
        TracePath::Metadata(key) => match test {
            Test::Compare(Comparator::NotEqual, value) if *value != Value::Nil => {
                let equal = Test::Compare(Comparator::Equal, value.clone());
                sql.push("(NOT ");
                trace_terms(sql, project_id, TermKind::Metadata.code(), key, &equal);
                sql.push(")");
            }
            _ => trace_terms(sql, project_id, TermKind::Metadata.code(), key, test),
        },
        TracePath::Tags => trace_terms(sql, project_id, TermKind::Tag.code(), "", test),
        TracePath::SpanAttribute(key) => {
            trace_terms(sql, project_id, TermKind::Attribute.code(), key, test)
        }
        TracePath::SpanResourceAttribute(key) => {
            trace_terms(sql, project_id, TermKind::Resource.code(), key, test)
        }
        TracePath::Score(name) => score(sql, project_id, name, test),
        TracePath::SpanName => match test {
            // Every span has a name.
            Test::Compare(comparator, Value::Nil) => {
                sql.push(if *comparator == Comparator::NotEqual {
                    "1"
                } else {
                    "0"
                })
            }
            Test::Compare(comparator, Value::Text(name)) => {
                let op = operator(*comparator);
                trace_spans(sql, project_id, |sql| {
                    sql.push(&format!("name {op} "));
                    sql.text(name);
                })
            }
            Test::Matches(regex) => trace_spans(sql, project_id, |sql| {
                sql.push("match(name, ");
                sql.text(&pattern(regex));
                sql.push(")");
            }),
            Test::Compare(comparator, _) => sql.push(if *comparator == Comparator::NotEqual {
                "1"
            } else {
                "0"
            }),
        },
        TracePath::SpanStatus => trace_spans(sql, project_id, |sql| {
            coded(sql, "status_code", test, status_code)
        }),
        TracePath::SpanDurationMs => {
            trace_spans(sql, project_id, |sql| number(sql, SPAN_DURATION_MS, test))
        }
    }
}

fn trace_field(sql: &mut Sql, field: TraceField, test: &Test) {
    let column = match field {
        TraceField::Status => return coded(sql, "trace_status_code", test, status_code),
        TraceField::DurationMs => return number(sql, "(duration_ns / 1000000.0)", test),
        TraceField::LlmCallCount => return number(sql, "llm_call_count", test),
        TraceField::ToolCallCount => return number(sql, "tool_call_count", test),
        TraceField::ToolCallErrorCount => return number(sql, "tool_call_error_count", test),
        TraceField::SpanCount => return number(sql, "span_count", test),
        TraceField::TotalCost => return nullable(sql, "trace_total_cost", test, false),
        TraceField::TotalTokenCount => return nullable(sql, "total_token_count", test, false),
        TraceField::PromptTokenCount => return nullable(sql, "prompt_token_count", test, false),
        TraceField::CompletionTokenCount => {
            return nullable(sql, "completion_token_count", test, false);
        }
        TraceField::UserId => "trace_user_id",
        TraceField::SessionId => "trace_session_id",
        TraceField::PipelineId => "trace_pipeline_id",
        TraceField::ServiceName => "trace_service_name",
        TraceField::RootSpanName => "root_span_name",
        TraceField::Input => "trace_input",
        TraceField::Output => "trace_output",
    };
    nullable(sql, column, test, true)
}

/// Some model of the trace passes the test.
fn models(sql: &mut Sql, test: &Test) {
    match test {
        Test::Compare(Comparator::Equal, Value::Nil) => sql.push("empty(models)"),
        Test::Compare(Comparator::NotEqual, Value::Nil) => sql.push("notEmpty(models)"),
        Test::Compare(Comparator::Equal, Value::Text(model)) => {
            sql.push("has(models, ");
            sql.text(model);
            sql.push(")");
        }
        Test::Compare(comparator, Value::Text(model)) => {
            sql.push(&format!(
                "arrayExists(model_name -> model_name {} ",
                operator(*comparator)
            ));
            sql.text(model);
            sql.push(", models)");
        }
        Test::Matches(regex) => {
            sql.push("arrayExists(model_name -> match(model_name, ");
            sql.text(&pattern(regex));
            sql.push("), models)");
        }
        Test::Compare(..) => sql.push("0"),
    }
}

/// The traces' latest scores of a name: `trace_id`, and `latest_score` a tuple of its data
/// type, number (0 for a label) and label ('' for a number).
fn latest_scores(sql: &mut Sql, project_id: &str, name: &str) {
    sql.push(
        "SELECT trace_id, argMax(tuple(data_type, ifNull(number, 0), ifNull(label, '')), \
         tuple(created_at_ns, id)) AS latest_score FROM scores FINAL WHERE project_id = ",
    );
    sql.text(project_id);
    sql.push(" AND name = ");
    sql.text(name);
    sql.push(" AND deleted = 0 GROUP BY trace_id");
}

/// `scores["name"]`: the latest score of the name, a scalar (missing: `!=` true, else false).
fn score(sql: &mut Sql, project_id: &str, name: &str, test: &Test) {
    let condition = |sql: &mut Sql, comparator: Comparator| {
        let op = operator(comparator);
        match test {
            Test::Compare(_, Value::Text(label)) => {
                sql.push(&format!(
                    "tupleElement(latest_score, 1) = 'categorical' AND \
                     tupleElement(latest_score, 3) {op} "
                ));
                sql.text(label);
            }
            Test::Compare(_, value @ (Value::Int(_) | Value::Float(_))) => {
                sql.push(&format!(
                    "tupleElement(latest_score, 1) = 'numeric' AND \
                     tupleElement(latest_score, 2) {op} "
                ));
                sql.bind(Param::Float(value.as_f64().unwrap_or_default()));
            }
            Test::Compare(_, Value::Bool(flag)) => {
                sql.push(&format!(
                    "tupleElement(latest_score, 1) = 'boolean' AND \
                     tupleElement(latest_score, 2) {op} "
                ));
                sql.bind(Param::Float(if *flag { 1.0 } else { 0.0 }));
            }
            Test::Matches(regex) => {
                sql.push(
                    "tupleElement(latest_score, 1) = 'categorical' AND \
                     match(tupleElement(latest_score, 3), ",
                );
                sql.text(&pattern(regex));
                sql.push(")");
            }
            Test::Compare(_, Value::Nil) => sql.push("1"),
        }
    };
    // `!=` is "not equal": true for a missing score and one of another kind.
    let (negate, comparator) = match test {
        Test::Compare(Comparator::Equal, Value::Nil) => (true, Comparator::Equal),
        Test::Compare(Comparator::NotEqual, Value::Nil) => (false, Comparator::Equal),
        Test::Compare(Comparator::NotEqual, _) => (true, Comparator::Equal),
        Test::Compare(comparator, _) => (false, *comparator),
        Test::Matches(_) => (false, Comparator::Equal),
    };
    sql.push(if negate {
        "(trace_id NOT IN (SELECT trace_id FROM ("
    } else {
        "(trace_id IN (SELECT trace_id FROM ("
    });
    latest_scores(sql, project_id, name);
    sql.push(") WHERE ");
    condition(sql, comparator);
    sql.push("))");
}

/// A trace filter naming every path of the trace context, for the sample queries.
pub const SAMPLE_TRACE_FILTER: &str = r#"status == "error" and duration_ms > 1.5 and total_cost >= 0.1
    and total_token_count != nil and prompt_token_count < 5 and user_id == "u"
    and session_id != "s" and IsMatch(input, "^a.*") and model == "m" and model != "n"
    and (model == nil or model > "a" or IsMatch(model, "g"))
    and metadata["tenant"] == "acme" and HasTag("beta") and (tags == nil or tags != "x")
    and scores["q"] > 0.5 and scores["ok"] == true and scores["c"] != "x" and scores["c"] == nil
    and IsMatch(scores["c"], "y") and span.attributes["k"] == 5 and span.attributes["k"] != "v"
    and IsMatch(span.attributes["k"], "z") and span.resource.attributes["r"] == nil
    and span.name == "n" and IsMatch(span.name, "x") and span.status == "error"
    and span.duration_ms > 10 and not (output == nil or span_count > 3)"#;

/// A span filter naming every path of the span context, for the sample queries.
pub const SAMPLE_SPAN_FILTER: &str = r#"name == "n" and kind == "client" and status != "ok"
    and duration_ms > 5 and service_name == nil and attributes["k"] == true
    and attributes["k"] != 3 and resource.attributes["r"] == nil and llm.model == "m"
    and llm.provider == "openai" and llm.operation != "chat" and llm.prompt_tokens > 1
    and llm.completion_tokens == nil and llm.cost <= 0.5 and llm != nil
    and IsMatch(attributes["k"], "a") and not IsMatch(llm.provider, "o")"#;

/// A condition's text with its values in place of the placeholders (for the samples only:
/// queries bind them).
pub fn with_values(sql: &Sql) -> String {
    let mut filled = String::new();
    let mut params = sql.params.iter();
    for (index, part) in sql.text.split('?').enumerate() {
        if index > 0 {
            match params.next().expect("a value per placeholder") {
                Param::Text(text) => {
                    filled.push('\'');
                    filled.push_str(&text.replace('\\', "\\\\").replace('\'', "\\'"));
                    filled.push('\'');
                }
                Param::Int(number) => filled.push_str(&number.to_string()),
                Param::UInt(number) => filled.push_str(&number.to_string()),
                Param::Float(number) => filled.push_str(&number.to_string()),
            }
        }
        filled.push_str(part);
    }
    filled
}

#[cfg(test)]
mod tests;
