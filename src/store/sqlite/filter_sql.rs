//! The filter language (SPEC §7, `filter::query`) compiled to SQL expressions over a row of
//! `traces` (the trace context) or of `spans` (the span context), every literal a bound
//! parameter. Each expression is 0 or 1, never NULL, so that `NOT` keeps OTTL's meaning: a
//! missing value is unequal to every value and orders with none.
//!
//! Where the values are:
//! - trace fields: the `status`, `user_id`, `session_id`, `pipeline_id` columns, `input` and
//!   `output` through `sh_text`, the others read from the `record` JSON with `json_extract`
//!   (see `filter_plan` for why no column was added for them);
//! - `model`: the row's `models` array; `scores["n"]`: the latest score of that name, as
//!   TraceRecord.scores shows it (by `created_at_ns`, then id);
//! - `metadata`, `tags`, `span.attributes`, `span.resource.attributes` and the span context's
//!   `attributes`: the term index (`term_index`), read per span through `span_terms_by_span`;
//! - `span.name`, `span.status`, `span.duration_ms` and the span context's fields: the `spans`
//!   columns.
//!
//! Paths that read many values (`model`, `tags`, `metadata`, `span.…`) are true when some value
//! makes the comparison true; `== nil` there is "no value" and `!= nil` "some value";
//! `metadata["k"] != "v"` is the negation of `== "v"` (true without `k`). Single
//! values (trace fields, scores, a span's own fields and attributes) compare as OTTL does:
//! `!= v` is true for a missing value, ordering a missing value false.

use std::collections::HashMap;
use std::sync::Arc;

use regex::Regex;
use rusqlite::functions::FunctionFlags;
use rusqlite::types::{Value as SqlValue, ValueRef};
use rusqlite::{Connection, OptionalExtension, params};

use super::term_index::bool_value;
use crate::filter::query::{
    Comparator, Filter, KIND_NAMES, STATUS_NAMES, SpanField, SpanPath, Test, TraceField, TracePath,
    Value,
};
use crate::store::StoreResult;
use crate::store::terms::TermKind;

/// `sh_regexp(pattern, value)`: 1 when some part of `value`, a string, matches `pattern` (Rust
/// regex syntax), else 0; never NULL. Each statement compiles its pattern once (SQLite keeps
/// it as the argument's auxiliary data); a pattern that does not compile is an error.
pub(super) fn register_functions(connection: &Connection) -> rusqlite::Result<()> {
    connection.create_scalar_function(
        "sh_regexp",
        2,
        FunctionFlags::SQLITE_UTF8
            | FunctionFlags::SQLITE_DETERMINISTIC
            | FunctionFlags::SQLITE_INNOCUOUS,
        |context| {
            let regex: Arc<Regex> = context.get_or_create_aux(0, |pattern| match pattern {
                ValueRef::Text(bytes) => {
                    let pattern = std::str::from_utf8(bytes)?;
                    Ok::<_, Box<dyn std::error::Error + Send + Sync>>(Regex::new(pattern)?)
                }
                _ => Err("sh_regexp: the pattern is not a string".into()),
            })?;
            Ok(match context.get_raw(1) {
                ValueRef::Text(bytes) => {
                    std::str::from_utf8(bytes).is_ok_and(|text| regex.is_match(text))
                }
                _ => false,
            })
        },
    )
}

/// A term path: which kind of term, and its key.
pub(super) fn term_of_trace_path(path: &TracePath) -> Option<(TermKind, &str)> {
    Some(match path {
        TracePath::Metadata(key) => (TermKind::Metadata, key.as_str()),
        TracePath::Tags => (TermKind::Tag, ""),
        TracePath::SpanAttribute(key) => (TermKind::Attribute, key.as_str()),
        TracePath::SpanResourceAttribute(key) => (TermKind::Resource, key.as_str()),
        _ => return None,
    })
}

/// The term of a span-context path.
pub(super) fn term_of_span_path(path: &SpanPath) -> Option<(TermKind, &str)> {
    Some(match path {
        SpanPath::Attribute(key) => (TermKind::Attribute, key.as_str()),
        SpanPath::ResourceAttribute(key) => (TermKind::Resource, key.as_str()),
        _ => return None,
    })
}

/// A value as a parameter: booleans as the term index stores them.
fn parameter(value: &Value) -> SqlValue {
    match value {
        Value::Nil => SqlValue::Null,
        Value::Bool(flag) => bool_value(*flag),
        Value::Int(number) => SqlValue::Integer(*number),
        Value::Float(number) => SqlValue::Real(*number),
        Value::Text(text) => SqlValue::Text(text.clone()),
    }
}

fn operator(comparator: Comparator) -> &'static str {
    comparator.sql()
}

fn is_ordering(comparator: Comparator) -> bool {
    !matches!(comparator, Comparator::Equal | Comparator::NotEqual)
}

/// Compiles filters for one project, resolving term keys to their ids as it goes.
pub(super) struct Compiler<'c> {
    connection: &'c Connection,
    project_id: &'c str,
    /// The parameters of the SQL compiled so far, in the order of their `?`.
    pub(super) values: Vec<SqlValue>,
    keys: HashMap<(u8, String), Option<i64>>,
}

impl<'c> Compiler<'c> {
    pub(super) fn new(connection: &'c Connection, project_id: &'c str) -> Self {
        Self {
            connection,
            project_id,
            values: Vec::new(),
            keys: HashMap::new(),
        }
    }

    /// The id of a term key of the project; `None` when no span has it.
    pub(super) fn key_id(&mut self, kind: TermKind, key: &str) -> StoreResult<Option<i64>> {
        let code = kind.code();
        if let Some(id) = self.keys.get(&(code, key.to_owned())) {
            return Ok(*id);
        }
        let id = self
            .connection
            .prepare_cached(
                "SELECT id FROM filter_keys WHERE project_id = ?1 AND kind = ?2 AND key = ?3",
            )?
            .query_row(params![self.project_id, code, key], |row| row.get(0))
            .optional()?;
        self.keys.insert((code, key.to_owned()), id);
        Ok(id)
    }

    /// `?`, with `value` its parameter.
    pub(super) fn bind(&mut self, value: SqlValue) -> &'static str {
        self.values.push(value);
        "?"
    }

    /// A comparison of a single value that may be NULL (missing).
    fn scalar(&mut self, column: &str, test: &Test) -> String {
        match test {
            Test::Compare(Comparator::Equal, Value::Nil) => format!("({column} IS NULL)"),
            Test::Compare(Comparator::NotEqual, Value::Nil) => format!("({column} IS NOT NULL)"),
            Test::Compare(_, Value::Nil) => "0".to_owned(),
            Test::Compare(Comparator::Equal, value) => {
                format!("({column} IS {})", self.bind(parameter(value)))
            }
            Test::Compare(Comparator::NotEqual, value) => {
                format!("({column} IS NOT {})", self.bind(parameter(value)))
            }
            Test::Compare(comparator, value) => format!(
                "IFNULL({column} {} {}, 0)",
                operator(*comparator),
                self.bind(parameter(value))
            ),
            Test::Matches(regex) => self.matches(column, regex),
        }
    }

    fn matches(&mut self, column: &str, regex: &Regex) -> String {
        let pattern = self.bind(SqlValue::Text(regex.as_str().to_owned()));
        format!("sh_regexp({pattern}, {column})")
    }

    /// A condition on one value of `column` that some value must meet (`EXISTS` around it):
    /// `None` for the nil tests, which are about there being a value at all.
    fn value_condition(&mut self, column: &str, test: &Test) -> Option<String> {
        match test {
            Test::Compare(_, Value::Nil) => None,
            Test::Matches(regex) => Some(self.matches(column, regex)),
            Test::Compare(comparator, value) => {
                Some(self.term_condition(column, *comparator, value))
            }
        }
    }

    /// `column <comparator> value` over typed term values: a range is kept to the value's own
    /// type (numbers sort before TEXT, TEXT before BLOB), so that it stays one index range.
    pub(super) fn term_condition(
        &mut self,
        column: &str,
        comparator: Comparator,
        value: &Value,
    ) -> String {
        let compared = format!(
            "{column} {} {}",
            operator(comparator),
            self.bind(parameter(value))
        );
        if !is_ordering(comparator) {
            return compared;
        }
        let upward = matches!(comparator, Comparator::Greater | Comparator::GreaterEqual);
        match (value, upward) {
            (Value::Text(_), true) => format!("{compared} AND {column} < x''"),
            (Value::Text(_), false) => format!("{compared} AND {column} >= ''"),
            (_, true) => format!("{compared} AND {column} < ''"),
            (_, false) => compared,
        }
    }

    /// A path of many values: `source` is a `SELECT 1 FROM … WHERE …` of the values, `column`
    /// the value in it.
    fn many(&mut self, source: String, column: &str, test: &Test) -> String {
        match test {
            Test::Compare(Comparator::Equal, Value::Nil) => format!("NOT EXISTS ({source})"),
            Test::Compare(Comparator::NotEqual, Value::Nil) => format!("EXISTS ({source})"),
            _ => match self.value_condition(column, test) {
                Some(condition) => format!("EXISTS ({source} AND {condition})"),
                None => "0".to_owned(),
            },
        }
    }

    /// An `and`/`or`/`not` tree, its atoms compiled by `atom`.
    fn tree<P>(
        &mut self,
        filter: &Filter<P>,
        atom: &mut impl FnMut(&mut Self, &P, &Test) -> StoreResult<String>,
    ) -> StoreResult<String> {
        Ok(match filter {
            Filter::Constant(true) => "1".to_owned(),
            Filter::Constant(false) => "0".to_owned(),
            Filter::And(terms) | Filter::Or(terms) if terms.is_empty() => {
                if matches!(filter, Filter::And(_)) {
                    "1"
                } else {
                    "0"
                }
                .to_owned()
            }
            Filter::And(terms) | Filter::Or(terms) => {
                let joiner = if matches!(filter, Filter::And(_)) {
                    " AND "
                } else {
                    " OR "
                };
                let mut parts = Vec::with_capacity(terms.len());
                for term in terms {
                    parts.push(self.tree(term, atom)?);
                }
                format!("({})", parts.join(joiner))
            }
            Filter::Not(inner) => format!("(NOT {})", self.tree(inner, atom)?),
            Filter::Atom(path, test) => atom(self, path, test)?,
        })
    }

    /// The filter as a condition on the row of `traces` named `traces`.
    pub(super) fn trace_filter(&mut self, filter: &Filter<TracePath>) -> StoreResult<String> {
        self.tree(filter, &mut |compiler, path, test| {
            compiler.trace_atom(path, test)
        })
    }

    /// The filter as a condition on the row of `spans` named `spans`.
    pub(super) fn span_filter(&mut self, filter: &Filter<SpanPath>) -> StoreResult<String> {
        self.tree(filter, &mut |compiler, path, test| {
            compiler.span_atom(path, test)
        })
    }

    fn trace_atom(&mut self, path: &TracePath, test: &Test) -> StoreResult<String> {
        Ok(match path {
            TracePath::Field(field) => {
                let column = trace_field_column(*field);
                self.scalar(&column, test)
            }
            TracePath::Model => {
                let source = "SELECT 1 FROM json_each(traces.models) AS m WHERE 1".to_owned();
                self.many(source, "m.value", test)
            }
            TracePath::Score(name) => self.score(name, test),
            TracePath::SpanName => self.span_values("s.name", test),
            TracePath::SpanStatus => {
                let test = coded(test, &STATUS_NAMES);
                self.span_values("s.status_code", &test)
            }
            TracePath::SpanDurationMs => self.span_values(DURATION_MS, test),
            TracePath::Metadata(_)
            | TracePath::Tags
            | TracePath::SpanAttribute(_)
            | TracePath::SpanResourceAttribute(_) => {
                let (kind, key) = term_of_trace_path(path).expect("a term path");
                let Some(key_id) = self.key_id(kind, key)? else {
                    return Ok(no_key(path, test));
                };
                let source = format!(
                    "SELECT 1 FROM spans AS s CROSS JOIN span_terms AS st \
                     INDEXED BY span_terms_by_span \
                     WHERE s.trace_key = traces.rowid AND st.span_key = s.rowid \
                     AND st.key_id = {}",
                    self.bind(SqlValue::Integer(key_id))
                );
                match (path, test) {
                    // `metadata["k"] != "v"` is the negation of `== "v"`.
                    (TracePath::Metadata(_), Test::Compare(Comparator::NotEqual, value))
                        if *value != Value::Nil =>
                    {
                        let equal = self.term_condition("st.value", Comparator::Equal, value);
                        format!("(NOT EXISTS ({source} AND {equal}))")
                    }
                    _ => self.many(source, "st.value", test),
                }
            }
        })
    }

    /// A value of the trace's spans.
    fn span_values(&mut self, column: &str, test: &Test) -> String {
        let source = "SELECT 1 FROM spans AS s WHERE s.trace_key = traces.rowid".to_owned();
        self.many(source, column, test)
    }

    /// `scores["name"]`: the latest score of that name on the trace, a single value.
    fn score(&mut self, name: &str, test: &Test) -> String {
        let name = self.bind(SqlValue::Text(name.to_owned()));
        let of_name = format!(
            "FROM scores AS sc WHERE sc.project_id = traces.project_id \
             AND sc.trace_id = traces.trace_id AND sc.name = {name}"
        );
        let latest = format!(
            "SELECT 1 FROM (SELECT sc.data_type, sc.number, sc.label {of_name} \
             ORDER BY sc.created_at_ns DESC, sc.id DESC LIMIT 1) AS latest WHERE"
        );
        match test {
            Test::Compare(Comparator::Equal, Value::Nil) => {
                format!("NOT EXISTS (SELECT 1 {of_name})")
            }
            Test::Compare(Comparator::NotEqual, Value::Nil) => {
                format!("EXISTS (SELECT 1 {of_name})")
            }
            Test::Compare(_, Value::Nil) => "0".to_owned(),
            Test::Matches(regex) => {
                let matches = self.matches("latest.label", regex);
                format!("EXISTS ({latest} latest.data_type = 'categorical' AND {matches})")
            }
            Test::Compare(comparator, value) => {
                let positive = match comparator {
                    Comparator::NotEqual => Comparator::Equal,
                    other => *other,
                };
                let (data_type, column, value) = match value {
                    Value::Bool(flag) => (
                        "boolean",
                        "latest.number",
                        Value::Float(f64::from(u8::from(*flag))),
                    ),
                    Value::Text(_) => ("categorical", "latest.label", value.clone()),
                    _ => ("numeric", "latest.number", value.clone()),
                };
                let compared = format!(
                    "{column} {} {}",
                    operator(positive),
                    self.bind(parameter(&value))
                );
                let exists = format!(
                    "EXISTS ({latest} latest.data_type = '{data_type}' AND IFNULL({compared}, 0))"
                );
                if *comparator == Comparator::NotEqual {
                    format!("(NOT {exists})")
                } else {
                    exists
                }
            }
        }
    }

    fn span_atom(&mut self, path: &SpanPath, test: &Test) -> StoreResult<String> {
        Ok(match path {
            SpanPath::Field(field) => match field {
                SpanField::Status => {
                    let test = coded(test, &STATUS_NAMES);
                    self.scalar("spans.status_code", &test)
                }
                SpanField::Kind => {
                    let test = coded(test, &KIND_NAMES);
                    self.scalar("spans.kind", &test)
                }
                field => self.scalar(span_field_column(*field), test),
            },
            SpanPath::Llm => {
                let is_llm = "COALESCE(spans.is_llm, spans.llm IS NOT NULL)";
                match test {
                    Test::Compare(Comparator::Equal, Value::Nil) => format!("(NOT {is_llm})"),
                    Test::Compare(Comparator::NotEqual, Value::Nil) => format!("({is_llm})"),
                    _ => "0".to_owned(),
                }
            }
            SpanPath::Attribute(_) | SpanPath::ResourceAttribute(_) => {
                let (kind, key) = term_of_span_path(path).expect("a term path");
                let Some(key_id) = self.key_id(kind, key)? else {
                    return Ok(match test {
                        Test::Compare(Comparator::NotEqual, Value::Nil) => "0",
                        Test::Compare(Comparator::Equal, Value::Nil)
                        | Test::Compare(Comparator::NotEqual, _) => "1",
                        _ => "0",
                    }
                    .to_owned());
                };
                let source = format!(
                    "SELECT 1 FROM span_terms AS st INDEXED BY span_terms_by_span \
                     WHERE st.span_key = spans.rowid AND st.key_id = {}",
                    self.bind(SqlValue::Integer(key_id))
                );
                // One value: `!= v` is true when the span's value is not `v` or it has none.
                match test {
                    Test::Compare(Comparator::NotEqual, value) if *value != Value::Nil => {
                        let equal = self.term_condition("st.value", Comparator::Equal, value);
                        format!("(NOT EXISTS ({source} AND {equal}))")
                    }
                    _ => self.many(source, "st.value", test),
                }
            }
        })
    }
}

/// A span's duration in milliseconds, as `Span::duration_ms` computes it.
const DURATION_MS: &str = "(MAX(s.end_ns - s.start_ns, 0) / 1000000.0)";

/// The column or expression of a trace field on the row `traces`.
fn trace_field_column(field: TraceField) -> String {
    match field {
        TraceField::Status => "traces.status".to_owned(),
        TraceField::UserId => "traces.user_id".to_owned(),
        TraceField::SessionId => "traces.session_id".to_owned(),
        TraceField::PipelineId => "traces.pipeline_id".to_owned(),
        TraceField::Input => "sh_text(traces.input)".to_owned(),
        TraceField::Output => "sh_text(traces.output)".to_owned(),
        // The name comes from the enum, never from the query.
        other => format!("json_extract(traces.record, '$.{}')", other.name()),
    }
}

fn span_field_column(field: SpanField) -> &'static str {
    match field {
        SpanField::Name => "spans.name",
        SpanField::Kind => "spans.kind",
        SpanField::Status => "spans.status_code",
        SpanField::DurationMs => "(MAX(spans.end_ns - spans.start_ns, 0) / 1000000.0)",
        SpanField::ServiceName => "spans.service_name",
        SpanField::LlmModel => "spans.model",
        SpanField::LlmProvider => "spans.llm_provider",
        SpanField::LlmOperation => "spans.llm_operation",
        SpanField::LlmPromptTokens => "spans.prompt_tokens",
        SpanField::LlmCompletionTokens => "spans.completion_tokens",
        SpanField::LlmCost => "spans.total_cost",
    }
}

/// A status or kind test with its name replaced by its OTLP code.
fn coded(test: &Test, names: &[&str]) -> Test {
    match test {
        Test::Compare(comparator, Value::Text(name)) => Test::Compare(
            *comparator,
            match names.iter().position(|known| known == name) {
                Some(code) => Value::Int(code as i64),
                // Not a name the reduction lets through; matches no code.
                None => Value::Int(-1),
            },
        ),
        other => other.clone(),
    }
}

/// A term test of the trace context when no span of the project has the key.
fn no_key(path: &TracePath, test: &Test) -> String {
    match (path, test) {
        (_, Test::Compare(Comparator::Equal, Value::Nil)) => "1",
        (TracePath::Metadata(_), Test::Compare(Comparator::NotEqual, value))
            if *value != Value::Nil =>
        {
            "1"
        }
        _ => "0",
    }
    .to_owned()
}
