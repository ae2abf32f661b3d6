//! The index of span terms (`store::terms`) that the filter language's attribute, metadata and
//! tag paths read: `filter_keys` names each (project, kind, key) once with a small integer, and
//! `span_terms` holds one row per term of a stored span, `(key_id, value, trace_key, span_key)`
//! with `span_key` the span's rowid and `trace_key` its trace's (`spans.trace_key`): the traces
//! of a term are listed from the primary key alone, without a lookup of each span's row.
//!
//! Values keep their types so that equality and ranges use the primary key: strings as TEXT,
//! integers as INTEGER, floats as REAL (SQLite compares INTEGER and REAL numerically, as the
//! filter language does) and booleans as a one-byte BLOB (`x'00'`, `x'01'`), distinct from the
//! integers 0 and 1. The column has no type, so no affinity converts a value; SQLite orders
//! numbers before TEXT before BLOB, which bounds each range to its own type (see `filter_sql`).
//!
//! Terms are written in the writer's transaction with their span, only when the span was
//! inserted (a retried span adds nothing); they never change afterwards, since content events
//! change a span's semantics, not its attributes.

use std::collections::HashMap;

use rusqlite::types::Value as SqlValue;
use rusqlite::{CachedStatement, Connection, OptionalExtension, Transaction, params};

use super::blocks::BodyReader;
use super::read::{SPAN_COLUMNS, stored_span_from_row};
use crate::model::Span;
use crate::store::StoreResult;
use crate::store::terms::{TermKind, TermValue, span_terms};

/// A term's value as stored in `span_terms.value`.
pub(super) fn sql_value(value: &TermValue) -> SqlValue {
    match value {
        TermValue::Text(text) => SqlValue::Text(text.clone()),
        TermValue::Int(number) => SqlValue::Integer(*number),
        TermValue::Float(number) => SqlValue::Real(*number),
        TermValue::Bool(flag) => bool_value(*flag),
    }
}

/// How a boolean is stored in `span_terms.value`.
pub(super) fn bool_value(flag: bool) -> SqlValue {
    SqlValue::Blob(vec![u8::from(flag)])
}

/// Writes the terms of spans, in the writer's transaction.
pub(super) struct TermWriter<'t> {
    find_key: CachedStatement<'t>,
    insert_key: CachedStatement<'t>,
    insert_term: CachedStatement<'t>,
    insert_rows: CachedStatement<'t>,
    connection: &'t Connection,
    /// Key ids found or made in this transaction (a rolled-back transaction takes its keys
    /// with it, so nothing is kept across transactions).
    keys: HashMap<(String, u8, String), i64>,
    /// Rows to insert, `(key_id, value, trace_key, span_key)`: inserted by [`Self::finish`] in
    /// the primary key's order, so that each page of the index is written once per
    /// transaction rather than once per term (the terms of one span land all over the index).
    pending: Vec<(i64, SqlValue, i64, i64)>,
}

/// SQLite's order of the values of an untyped column: numbers (by value), then text (by
/// bytes), then blobs (by bytes).
fn value_order(left: &SqlValue, right: &SqlValue) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    fn rank(value: &SqlValue) -> u8 {
        match value {
            SqlValue::Null => 0,
            SqlValue::Integer(_) | SqlValue::Real(_) => 1,
            SqlValue::Text(_) => 2,
            SqlValue::Blob(_) => 3,
        }
    }
    let number = |value: &SqlValue| match value {
        SqlValue::Integer(number) => *number as f64,
        SqlValue::Real(number) => *number,
        _ => 0.0,
    };
    match (left, right) {
        (SqlValue::Integer(a), SqlValue::Integer(b)) => a.cmp(b),
        (SqlValue::Text(a), SqlValue::Text(b)) => a.as_bytes().cmp(b.as_bytes()),
        (SqlValue::Blob(a), SqlValue::Blob(b)) => a.cmp(b),
        _ if rank(left) == 1 && rank(right) == 1 => number(left)
            .partial_cmp(&number(right))
            .unwrap_or(Ordering::Equal),
        _ => rank(left).cmp(&rank(right)),
    }
}

impl<'t> TermWriter<'t> {
    pub(super) fn new(connection: &'t Connection) -> StoreResult<Self> {
        Ok(Self {
            find_key: connection.prepare_cached(
                "SELECT id FROM filter_keys WHERE project_id = ?1 AND kind = ?2 AND key = ?3",
            )?,
            insert_key: connection.prepare_cached(
                "INSERT INTO filter_keys (project_id, kind, key) VALUES (?1, ?2, ?3)",
            )?,
            insert_term: connection.prepare_cached(
                "INSERT OR IGNORE INTO span_terms (key_id, value, trace_key, span_key)
                 VALUES (?1, ?2, ?3, ?4)",
            )?,
            insert_rows: connection.prepare_cached(&insert_rows_sql())?,
            connection,
            keys: HashMap::new(),
            pending: Vec::new(),
        })
    }

    fn key_id(&mut self, project_id: &str, kind: TermKind, key: &str) -> StoreResult<i64> {
        let code = kind.code();
        if let Some(id) = self
            .keys
            .get(&(project_id.to_owned(), code, key.to_owned()))
        {
            return Ok(*id);
        }
        let found: Option<i64> = self
            .find_key
            .query_row(params![project_id, code, key], |row| row.get(0))
            .optional()?;
        let id = match found {
            Some(id) => id,
            None => {
                self.insert_key.execute(params![project_id, code, key])?;
                self.connection.last_insert_rowid()
            }
        };
        self.keys
            .insert((project_id.to_owned(), code, key.to_owned()), id);
        Ok(id)
    }

    /// Indexes the terms of a span just stored as row `span_key` of the trace `trace_key`.
    pub(super) fn write(
        &mut self,
        project_id: &str,
        (trace_key, span_key): (i64, i64),
        span: &Span,
    ) -> StoreResult<()> {
        for term in span_terms(span) {
            let key_id = self.key_id(project_id, term.kind, &term.key)?;
            self.pending
                .push((key_id, sql_value(&term.value), trace_key, span_key));
        }
        Ok(())
    }

    /// Inserts the terms written, in the index's order; call before the transaction commits.
    pub(super) fn finish(mut self) -> StoreResult<()> {
        self.flush()
    }

    /// Inserts the terms written so far, in the index's order.
    fn flush(&mut self) -> StoreResult<()> {
        self.pending.sort_by(|left, right| {
            left.0
                .cmp(&right.0)
                .then_with(|| value_order(&left.1, &right.1))
                .then_with(|| (left.2, left.3).cmp(&(right.2, right.3)))
        });
        // Many rows per statement: a statement's bind, step and reset cost as much as the
        // insert of a row into a warm page.
        let pending = std::mem::take(&mut self.pending);
        let mut chunks = pending.chunks_exact(ROWS_PER_INSERT);
        for chunk in chunks.by_ref() {
            self.insert_rows
                .execute(rusqlite::params_from_iter(chunk_values(chunk)))?;
        }
        for (key_id, value, trace_key, span_key) in chunks.remainder() {
            self.insert_term
                .execute(params![key_id, value, trace_key, span_key])?;
        }
        Ok(())
    }
}

/// Rows of `span_terms` one multi-row insert writes.
const ROWS_PER_INSERT: usize = 64;

fn chunk_values(chunk: &[(i64, SqlValue, i64, i64)]) -> impl Iterator<Item = SqlValue> + '_ {
    chunk
        .iter()
        .flat_map(|(key_id, value, trace_key, span_key)| {
            [
                SqlValue::Integer(*key_id),
                value.clone(),
                SqlValue::Integer(*trace_key),
                SqlValue::Integer(*span_key),
            ]
        })
}

/// `INSERT OR IGNORE` of [`ROWS_PER_INSERT`] rows.
fn insert_rows_sql() -> String {
    let rows = vec!["(?, ?, ?, ?)"; ROWS_PER_INSERT].join(", ");
    format!("INSERT OR IGNORE INTO span_terms (key_id, value, trace_key, span_key) VALUES {rows}")
}

/// Terms a migration holds before inserting them.
const FILL_CHUNK: usize = 500_000;

/// Fills the term index and the LLM provider and operation columns for the spans stored before
/// they existed, in the migration's transaction: every span is read back once.
pub(super) fn fill(transaction: &Transaction<'_>) -> StoreResult<()> {
    let mut terms = TermWriter::new(transaction)?;
    let mut update = transaction
        .prepare("UPDATE spans SET llm_provider = ?2, llm_operation = ?3 WHERE rowid = ?1")?;
    let mut statement = transaction.prepare(&format!(
        "SELECT {SPAN_COLUMNS}, rowid, project_id, trace_key FROM spans"
    ))?;
    let mut rows = statement.query([])?;
    let mut bodies = BodyReader::new(transaction);
    while let Some(row) = rows.next()? {
        let stored = stored_span_from_row(row, &mut bodies)?;
        let rowid: i64 = row.get(16)?;
        let project_id: String = row.get(17)?;
        let trace_key: i64 = row.get(18)?;
        terms.write(&project_id, (trace_key, rowid), &stored.span)?;
        // Bounded memory over millions of spans.
        if terms.pending.len() >= FILL_CHUNK {
            terms.flush()?;
        }
        if let Some(llm) = &stored.semantics.llm
            && (llm.provider.is_some() || llm.operation.is_some())
        {
            update.execute(params![rowid, llm.provider, llm.operation])?;
        }
    }
    drop(rows);
    terms.finish()?;
    Ok(())
}
