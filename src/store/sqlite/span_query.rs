//! `GET /api/v1/spans` on SQLite: spans of a window that a span filter matches, newest start
//! first, and the keys filters can name (`filter_keys`).
//!
//! A page is read from `spans_by_start` newest first with the whole predicate, unless a
//! conjunct on a term (`attributes["k"] == v`, a range, `!= nil`) lists fewer than
//! [`super::filter_plan::DRIVE_CAP`] spans: those are then looked up by rowid and sorted (see `filter_plan`).

use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, params};

use super::blocks::BodyReader;
use super::filter_plan::{Candidate, choose};
use super::filter_sql::{Compiler, term_of_span_path};
use super::read::stored_span_from_row;
use crate::filter::query::{Comparator, Filter, SpanFilter, Test, Value};
use crate::store::terms::TermKind;
use crate::store::{FilterKeys, MAX_FILTER_KEYS, SpanCursor, SpanPage, SpanQuery, StoreResult};

/// [`super::read::SPAN_COLUMNS`] on the row `spans`.
const COLUMNS: &str = "spans.trace_id, spans.span_id, spans.parent_span_id, spans.name, \
    spans.kind, spans.start_ns, spans.end_ns, spans.status_code, spans.body, spans.input, \
    spans.output, spans.session_id, spans.user_id, spans.pipeline_id, spans.llm, spans.tool";

/// The candidate of a conjunct on a term: the spans the term index lists for it.
fn span_candidate(
    compiler: &mut Compiler<'_>,
    conjunct: &SpanFilter,
) -> StoreResult<Option<Candidate>> {
    let Filter::Atom(path, test) = conjunct else {
        return Ok(None);
    };
    let Some((kind, key)) = term_of_span_path(path) else {
        return Ok(None);
    };
    let (comparator, value) = match test {
        Test::Compare(Comparator::NotEqual, Value::Nil) => (None, None),
        Test::Compare(Comparator::NotEqual, _) | Test::Compare(_, Value::Nil) => {
            return Ok(None);
        }
        Test::Compare(comparator, value) => (Some(*comparator), Some(value)),
        Test::Matches(_) => (None, None),
    };
    let saved = std::mem::take(&mut compiler.values);
    let condition = match compiler.key_id(kind, key)? {
        None => None,
        Some(key_id) => {
            let mut condition = format!("st.key_id = {}", compiler.bind(SqlValue::Integer(key_id)));
            if let (Some(comparator), Some(value)) = (comparator, value) {
                let compared = compiler.term_condition("st.value", comparator, value);
                condition = format!("{condition} AND {compared}");
            }
            Some(condition)
        }
    };
    let values = std::mem::replace(&mut compiler.values, saved);
    Ok(Some(match condition {
        None => Candidate {
            count_sql: String::new(),
            count_values: Vec::new(),
            rowids_sql: "SELECT NULL WHERE 0".to_owned(),
            rowids_values: Vec::new(),
            known_count: Some(0),
        },
        Some(condition) => Candidate {
            count_sql: format!("SELECT 1 FROM span_terms AS st WHERE {condition}"),
            count_values: values.clone(),
            rowids_sql: format!("SELECT st.span_key FROM span_terms AS st WHERE {condition}"),
            rowids_values: values,
            known_count: None,
        },
    }))
}

/// The statement of a page of spans and its values: one more than the limit.
pub(super) fn page_statement(
    connection: &Connection,
    project_id: &str,
    query: &SpanQuery,
) -> StoreResult<(String, Vec<SqlValue>)> {
    let mut compiler = Compiler::new(connection, project_id);
    let (predicate, predicate_values, driver) = match &query.filter {
        Some(filter) => {
            let mut candidates = Vec::new();
            for conjunct in filter.conjuncts() {
                candidates.extend(span_candidate(&mut compiler, conjunct)?);
            }
            let predicate = compiler.span_filter(filter)?;
            let values = std::mem::take(&mut compiler.values);
            (predicate, values, choose(connection, candidates)?)
        }
        None => ("1".to_owned(), Vec::new(), None),
    };
    let mut values = Vec::new();
    let mut sql = format!("SELECT {COLUMNS} FROM spans ");
    match driver {
        Some(driver) => {
            sql.push_str(&format!(
                "NOT INDEXED WHERE spans.rowid IN ({}) AND",
                driver.rowids_sql
            ));
            values.extend(driver.rowids_values);
        }
        None => sql.push_str("INDEXED BY spans_by_start WHERE"),
    }
    sql.push_str(" spans.project_id = ? AND spans.start_ns >= ? AND spans.start_ns < ?");
    values.extend([
        SqlValue::Text(project_id.to_owned()),
        SqlValue::Integer(query.start_unix_nano.min(i64::MAX as u64) as i64),
        SqlValue::Integer(query.end_unix_nano.min(i64::MAX as u64) as i64),
    ]);
    if let Some(cursor) = &query.cursor {
        let start = SqlValue::Integer(cursor.start_unix_nano.min(i64::MAX as u64) as i64);
        let trace = SqlValue::Blob(cursor.trace_id.as_bytes().to_vec());
        // The last term bounds the index range; the others alone would not.
        sql.push_str(
            " AND (spans.start_ns < ? OR (spans.start_ns = ? AND (spans.trace_id < ? \
             OR (spans.trace_id = ? AND spans.span_id < ?)))) AND spans.start_ns <= ?",
        );
        values.extend([
            start.clone(),
            start.clone(),
            trace.clone(),
            trace,
            SqlValue::Blob(cursor.span_id.as_bytes().to_vec()),
            start,
        ]);
    }
    sql.push_str(&format!(" AND {predicate}"));
    values.extend(predicate_values);
    sql.push_str(" ORDER BY spans.start_ns DESC, spans.trace_id DESC, spans.span_id DESC LIMIT ?");
    values.push(SqlValue::Integer(query.limit.max(1) as i64 + 1));
    Ok((sql, values))
}

pub(super) fn query_spans(
    connection: &Connection,
    project_id: &str,
    query: &SpanQuery,
) -> StoreResult<SpanPage> {
    let _snapshot = connection.unchecked_transaction()?;
    let (sql, values) = page_statement(connection, project_id, query)?;
    let mut statement = connection.prepare_cached(&sql)?;
    let mut rows = statement.query(rusqlite::params_from_iter(values.iter()))?;
    let mut bodies = BodyReader::new(connection);
    let limit = query.limit.max(1);
    let mut spans = Vec::new();
    let mut next_cursor = None;
    while let Some(row) = rows.next()? {
        if spans.len() == limit {
            let last: &crate::store::StoredSpan = spans.last().expect("limit is at least 1");
            next_cursor = Some(SpanCursor {
                start_unix_nano: last.span.start_time_unix_nano,
                trace_id: last.span.trace_id,
                span_id: last.span.span_id,
            });
            break;
        }
        spans.push(stored_span_from_row(row, &mut bodies)?);
    }
    Ok(SpanPage { spans, next_cursor })
}

/// The keys of a project's terms and the names of its scores, sorted, at most
/// [`MAX_FILTER_KEYS`] each.
pub(super) fn filter_keys(connection: &Connection, project_id: &str) -> StoreResult<FilterKeys> {
    let mut keys = connection.prepare_cached(
        "SELECT key FROM filter_keys WHERE project_id = ?1 AND kind = ?2 ORDER BY key LIMIT ?3",
    )?;
    let mut of_kind = |kind: TermKind| -> StoreResult<Vec<String>> {
        let rows = keys.query_map(
            params![project_id, kind.code(), MAX_FILTER_KEYS as i64],
            |row| row.get(0),
        )?;
        Ok(rows.collect::<Result<_, _>>()?)
    };
    let attributes = of_kind(TermKind::Attribute)?;
    let resource_attributes = of_kind(TermKind::Resource)?;
    let metadata = of_kind(TermKind::Metadata)?;
    let scores = connection
        .prepare_cached(
            "SELECT DISTINCT name FROM scores INDEXED BY scores_by_name
             WHERE project_id = ?1 ORDER BY name LIMIT ?2",
        )?
        .query_map(params![project_id, MAX_FILTER_KEYS as i64], |row| {
            row.get(0)
        })?
        .collect::<Result<_, _>>()?;
    Ok(FilterKeys {
        attributes,
        resource_attributes,
        metadata,
        scores,
    })
}
