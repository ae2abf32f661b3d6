//! The read path: TraceRecord pages and whole traces. Every value is a bound parameter.

use rusqlite::types::{ToSql, Value as SqlValue};
use rusqlite::{Connection, OptionalExtension, Row, params};

use super::blocks::BodyReader;
use super::filter_plan::{Candidate, page_order};
use super::search;
use super::text::TraceText;
use crate::model::trace_record::LlmDigest;
use crate::model::{LlmCall, SpanDigest, SpanId, SpanSemantics, StatusCode, TraceId, TraceRecord};
use crate::store::codec::SpanColumns;
use crate::store::{StoreError, StoreResult, StoredSpan, TraceCursor, TracePage, TraceQuery};

/// The columns `digest_from_row` reads, in its order.
pub(super) const DIGEST_COLUMNS: &str = "span_id, parent_span_id, name, start_ns, end_ns, \
    status_code, service_name, input, output, session_id, user_id, pipeline_id, \
    COALESCE(is_llm, llm IS NOT NULL), model, prompt_tokens, completion_tokens, total_tokens, \
    prompt_cost, completion_cost, total_cost, COALESCE(tool_name, json_extract(tool, '$.name'))";

fn span_id_column(row: &Row<'_>, index: usize) -> rusqlite::Result<Option<SpanId>> {
    let bytes: Option<Vec<u8>> = row.get(index)?;
    match bytes {
        None => Ok(None),
        Some(bytes) => SpanId::from_bytes(&bytes).map(Some).map_err(|error| {
            rusqlite::Error::FromSqlConversionFailure(
                index,
                rusqlite::types::Type::Blob,
                Box::new(error),
            )
        }),
    }
}

pub(super) fn digest_from_row(row: &Row<'_>) -> rusqlite::Result<SpanDigest> {
    let is_llm: bool = row.get(12)?;
    let llm = is_llm
        .then(|| -> rusqlite::Result<LlmDigest> {
            Ok(LlmDigest {
                model: row.get(13)?,
                usage: crate::model::llm::TokenUsage {
                    prompt: row.get(14)?,
                    completion: row.get(15)?,
                    total: row.get(16)?,
                },
                cost: crate::model::llm::Cost {
                    prompt: row.get(17)?,
                    completion: row.get(18)?,
                    total: row.get(19)?,
                },
            })
        })
        .transpose()?;
    Ok(SpanDigest {
        span_id: span_id_column(row, 0)?,
        parent_span_id: span_id_column(row, 1)?,
        name: row.get(2)?,
        start_time_unix_nano: row.get::<_, i64>(3)? as u64,
        end_time_unix_nano: row.get::<_, i64>(4)? as u64,
        status: StatusCode::from_otlp(row.get(5)?),
        service_name: row.get(6)?,
        input: row.get(7)?,
        output: row.get(8)?,
        session_id: row.get(9)?,
        user_id: row.get(10)?,
        pipeline_id: row.get(11)?,
        llm,
        tool_name: row.get(20)?,
    })
}

/// Rebuilds a TraceRecord from its row: the JSON record and the text columns.
fn record_from_row_parts(
    record_json: &str,
    input: Option<String>,
    output: Option<String>,
    timestamp_unix_nano: u64,
) -> StoreResult<TraceRecord> {
    let mut record: TraceRecord = serde_json::from_str(record_json)
        .map_err(|error| StoreError::Corrupt(format!("trace record: {error}")))?;
    record.input = input;
    record.output = output;
    record.timestamp_unix_nano = timestamp_unix_nano;
    Ok(record)
}

const RECORD_COLUMNS: &str = "record, input, output, timestamp_ns";

/// [`RECORD_COLUMNS`] of `traces` in a query that joins it.
const PAGE_COLUMNS: &str = "traces.record, traces.input, traces.output, traces.timestamp_ns";

type RecordRow = (String, Option<String>, Option<String>, i64);

fn record_from_row(row: &Row<'_>) -> rusqlite::Result<RecordRow> {
    Ok((
        row.get(0)?,
        row.get::<_, TraceText>(1)?.0,
        row.get::<_, TraceText>(2)?.0,
        row.get(3)?,
    ))
}

/// Most traces the text index may name before a search reads traces newest first instead.
const MAX_INDEXED_MATCHES: usize = 10_000;

/// Most candidates of a text search looked up one by one (by rowid); past that, SQLite reads the
/// window's time index and keeps the candidates, which finds the newest ones sooner.
const FEW_CANDIDATES: usize = 1_000;

/// Most traces the text index may lag behind before a search reads traces newest first
/// instead: reading that many traces by their stamps costs a fraction of a second, and the
/// indexer catches up within a second or so at full ingest load.
const MAX_UNINDEXED_TRACES: usize = 50_000;

/// The traces whose input or output holds `text`, as far as the text index can tell: the ones
/// it names (current for traces stamped at or below its mark) and, read here, the ones stamped
/// since (the indexer's lag), compared as the index compares (case folded beyond ASCII).
pub(super) struct TextMatches {
    indexed_seq: i64,
    /// The index's matches and `unindexed`.
    candidates: Vec<i64>,
    /// Traces stamped after the mark that hold the text.
    unindexed: Vec<i64>,
}

/// `None` when the index cannot answer (see [`search::indexed_matches`]) or lags more than
/// [`MAX_UNINDEXED_TRACES`] behind.
fn text_matches(connection: &Connection, text: &str) -> StoreResult<Option<TextMatches>> {
    let Some(indexed) = search::indexed_matches(connection, text, MAX_INDEXED_MATCHES) else {
        return Ok(None);
    };
    let needle = text.to_lowercase();
    let holds =
        |value: Option<&str>| value.is_some_and(|value| value.to_lowercase().contains(&needle));
    // The index names the traces holding every trigram of the text: keep those that hold it.
    let mut text_of =
        connection.prepare_cached("SELECT input, output FROM traces WHERE rowid = ?1")?;
    let mut candidates = Vec::with_capacity(indexed.rowids.len());
    for rowid in indexed.rowids {
        let mut rows = text_of.query([rowid])?;
        if let Some(row) = rows.next()?
            && (holds(row.get::<_, TraceText>(0)?.0.as_deref())
                || holds(row.get::<_, TraceText>(1)?.0.as_deref()))
        {
            candidates.push(rowid);
        }
    }
    let mut statement = connection
        .prepare_cached("SELECT rowid, input, output FROM traces WHERE text_seq > ?1 LIMIT ?2")?;
    let mut rows = statement.query(params![
        indexed.indexed_seq,
        MAX_UNINDEXED_TRACES as i64 + 1
    ])?;
    let mut unindexed = Vec::new();
    let mut read = 0;
    while let Some(row) = rows.next()? {
        read += 1;
        if read > MAX_UNINDEXED_TRACES {
            return Ok(None);
        }
        if holds(row.get::<_, TraceText>(1)?.0.as_deref())
            || holds(row.get::<_, TraceText>(2)?.0.as_deref())
        {
            unindexed.push(row.get(0)?);
        }
    }
    candidates.extend_from_slice(&unindexed);
    Ok(Some(TextMatches {
        indexed_seq: indexed.indexed_seq,
        candidates,
        unindexed,
    }))
}

pub(super) fn query_traces(
    connection: &Connection,
    project_id: &str,
    query: &TraceQuery,
) -> StoreResult<TracePage> {
    // One read transaction: the search file's snapshot (the index and its mark) is taken before
    // the main file's, so every trace stamped at or below the mark has its current text indexed.
    let _snapshot = connection.unchecked_transaction()?;
    let text = query
        .text
        .as_deref()
        .map(|text| text_matches(connection, text).map(|matches| (text, matches)))
        .transpose()?;
    let (sql, values) = if query.filter.is_some() {
        let (sql, values) =
            super::filter_plan::trace_page(connection, project_id, query, text, PAGE_COLUMNS)?;
        let values: Vec<Box<dyn ToSql>> = values
            .into_iter()
            .map(|value| Box::new(value) as Box<dyn ToSql>)
            .collect();
        (sql, values)
    } else {
        page_statement(project_id, query, text)
    };
    let mut statement = connection.prepare_cached(&sql)?;
    let parameters: Vec<&dyn ToSql> = values.iter().map(|value| value.as_ref()).collect();
    let rows = statement
        .query_map(parameters.as_slice(), record_from_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let mut traces = Vec::with_capacity(rows.len().min(query.limit));
    let mut next_cursor = None;
    for (index, (record, input, output, timestamp)) in rows.into_iter().enumerate() {
        if index == query.limit {
            let last: &TraceRecord = traces.last().expect("limit is at least 1");
            next_cursor = Some(TraceCursor {
                timestamp_unix_nano: last.timestamp_unix_nano,
                trace_id: TraceId::parse_hex(&last.trace_id)
                    .map_err(|error| StoreError::Corrupt(error.to_string()))?,
            });
            break;
        }
        traces.push(record_from_row_parts(
            &record,
            input,
            output,
            timestamp as u64,
        )?);
    }
    Ok(TracePage {
        traces,
        next_cursor,
    })
}

/// The statement of a page of traces, and its values: one more than the limit, newest first
/// (oldest first when the query says).
fn page_statement(
    project_id: &str,
    query: &TraceQuery,
    text: Option<(&str, Option<TextMatches>)>,
) -> (String, Vec<Box<dyn ToSql>>) {
    // Few candidates: look each up by rowid rather than let SQLite walk the window's time index
    // (with no match, that walk was most of the 0.12 s a search took at 5 M spans).
    let by_rowid =
        matches!(&text, Some((_, Some(matches))) if matches.candidates.len() <= FEW_CANDIDATES);
    // Without statistics SQLite reads a filtered page from the time index, which is in the
    // order of the page, and looks up every trace of the window (1.1 s for a user no trace has
    // at 1 M traces): a filter's page is read from the filter's own index instead, in the same
    // order, and a model's from `trace_models`, whose key is that order.
    let equal_filters = [
        ("session_id", &query.session_id, "traces_by_session"),
        ("user_id", &query.user_id, "traces_by_user"),
        ("pipeline_id", &query.pipeline_id, "traces_by_pipeline"),
        ("status", &query.status, "traces_by_status"),
    ];
    let filter_index = equal_filters
        .iter()
        .find(|(_, value, _)| value.is_some())
        .map(|(_, _, index)| *index);
    let by_model = query.model.as_ref().filter(|_| !by_rowid);
    let index = match (by_rowid, filter_index) {
        (true, _) => " NOT INDEXED".to_owned(),
        (false, Some(index)) if by_model.is_none() => format!(" INDEXED BY {index}"),
        _ => String::new(),
    };
    let end = query.end_unix_nano.min(i64::MAX as u64) as i64;
    let mut values: Vec<Box<dyn ToSql>> = vec![
        Box::new(project_id.to_owned()),
        Box::new(query.start_unix_nano as i64),
        Box::new(end),
    ];
    // The columns the window, the cursor and the order are on.
    let (timestamp, trace_id) = if by_model.is_some() {
        ("m.timestamp_ns", "m.trace_id")
    } else {
        ("traces.timestamp_ns", "traces.trace_id")
    };
    let mut sql = match by_model {
        Some(model) => {
            values.insert(1, Box::new(model.clone()));
            format!(
                "SELECT {PAGE_COLUMNS} FROM trace_models AS m CROSS JOIN traces
                     ON traces.project_id = m.project_id AND traces.trace_id = m.trace_id
                 WHERE m.project_id = ? AND m.model = ? AND {timestamp} >= ? AND {timestamp} < ?"
            )
        }
        None => format!(
            "SELECT {PAGE_COLUMNS} FROM traces{index}
             WHERE traces.project_id = ? AND {timestamp} >= ? AND {timestamp} < ?"
        ),
    };
    let (direction, after, bound) = page_order(query);
    if let Some(cursor) = &query.cursor {
        // The last term bounds the index range; the others alone would not.
        sql.push_str(&format!(
            " AND ({timestamp} {after} ? OR ({timestamp} = ? AND {trace_id} {after} ?)) \
             AND {timestamp} {bound} ?"
        ));
        values.push(Box::new(cursor.timestamp_unix_nano as i64));
        values.push(Box::new(cursor.timestamp_unix_nano as i64));
        values.push(Box::new(cursor.trace_id.as_bytes().to_vec()));
        values.push(Box::new(cursor.timestamp_unix_nano as i64));
    }
    for (column, value, _) in equal_filters {
        if let Some(value) = value {
            sql.push_str(&format!(" AND traces.{column} = ?"));
            values.push(Box::new(value.clone()));
        }
    }
    if let (Some(model), false) = (&query.model, by_model.is_some()) {
        sql.push_str(
            " AND traces.trace_id IN (SELECT trace_id FROM trace_models
                               WHERE project_id = ? AND model = ? AND timestamp_ns >= ? AND timestamp_ns < ?)",
        );
        values.push(Box::new(project_id.to_owned()));
        values.push(Box::new(model.clone()));
        values.push(Box::new(query.start_unix_nano as i64));
        values.push(Box::new(end));
    }
    if let Some((text, matches)) = text {
        let (condition, text_values, _) = text_condition(text, matches);
        sql.push_str(&condition);
        values.extend(
            text_values
                .into_iter()
                .map(|value| Box::new(value) as Box<dyn ToSql>),
        );
    }
    sql.push_str(&format!(
        " ORDER BY {timestamp} {direction}, {trace_id} {direction} LIMIT ?"
    ));
    values.push(Box::new(query.limit as i64 + 1));
    (sql, values)
}

/// The condition (` AND …`) of a `q` search on the row `traces`, its values, and the
/// candidate that lists its few matches by rowid (see `filter_plan`).
pub(super) fn text_condition(
    text: &str,
    matches: Option<TextMatches>,
) -> (String, Vec<SqlValue>, Option<Candidate>) {
    match matches {
        // A phrase few traces hold: the index names them. It is current for traces stamped
        // at or below its mark; the traces stamped since were read.
        Some(matches) => {
            let json = |rowids: &[i64]| serde_json::to_string(rowids).unwrap_or_default();
            let candidates = json(&matches.candidates);
            let candidate = (matches.candidates.len() <= FEW_CANDIDATES).then(|| Candidate {
                count_sql: String::new(),
                count_values: Vec::new(),
                rowids_sql: "SELECT value FROM json_each(?)".to_owned(),
                rowids_values: vec![SqlValue::Text(candidates.clone())],
                known_count: Some(matches.candidates.len() as i64),
            });
            (
                " AND traces.rowid IN (SELECT value FROM json_each(?))
                  AND (traces.text_seq <= ? OR traces.rowid IN (SELECT value FROM json_each(?)))"
                    .to_owned(),
                vec![
                    SqlValue::Text(candidates),
                    SqlValue::Integer(matches.indexed_seq),
                    SqlValue::Text(json(&matches.unindexed)),
                ],
                candidate,
            )
        }
        // Too short for trigrams, a phrase so common that reading traces newest first
        // fills a page sooner than listing every match, or an index far behind
        // (lower() folds ASCII only).
        None => {
            let needle = text.to_ascii_lowercase();
            (
                " AND (instr(lower(sh_text(traces.input)), ?) > 0
                       OR instr(lower(sh_text(traces.output)), ?) > 0)"
                    .to_owned(),
                vec![SqlValue::Text(needle.clone()), SqlValue::Text(needle)],
                None,
            )
        }
    }
}

/// The spans of a trace (?2), by the trace's index: without statistics SQLite took
/// `spans_by_start` for the project alone and read every span of the project.
pub(super) fn trace_spans_statement() -> String {
    format!(
        "SELECT {SPAN_COLUMNS} FROM spans INDEXED BY spans_by_trace
         WHERE project_id = ?1 AND trace_key = (
             SELECT rowid FROM traces WHERE project_id = ?1 AND trace_id = ?2
         )
         ORDER BY start_ns, span_id"
    )
}

pub(super) const SPAN_COLUMNS: &str = "trace_id, span_id, parent_span_id, name, kind, start_ns, end_ns, \
    status_code, body, input, output, session_id, user_id, pipeline_id, llm, tool";

pub(super) fn get_trace(
    connection: &Connection,
    project_id: &str,
    trace_id: TraceId,
) -> StoreResult<Option<(TraceRecord, Vec<StoredSpan>)>> {
    let row = connection
        .prepare_cached(&format!(
            "SELECT {RECORD_COLUMNS} FROM traces WHERE project_id = ?1 AND trace_id = ?2"
        ))?
        .query_row(params![project_id, trace_id.as_bytes()], record_from_row)
        .optional()?;
    let Some((record, input, output, timestamp)) = row else {
        return Ok(None);
    };
    let record = record_from_row_parts(&record, input, output, timestamp as u64)?;

    let mut statement = connection.prepare_cached(&trace_spans_statement())?;
    let mut rows = statement.query(params![project_id, trace_id.as_bytes()])?;
    let mut bodies = BodyReader::new(connection);
    let mut spans = Vec::new();
    while let Some(row) = rows.next()? {
        spans.push(stored_span_from_row(row, &mut bodies)?);
    }
    Ok(Some((record, spans)))
}

/// The span of a row of [`SPAN_COLUMNS`], its body read with `bodies`.
pub(super) fn stored_span_from_row(
    row: &Row<'_>,
    bodies: &mut BodyReader<'_>,
) -> StoreResult<StoredSpan> {
    let trace_bytes: Vec<u8> = row.get(0)?;
    let span_bytes: Vec<u8> = row.get(1)?;
    let corrupt = |error: crate::model::IdError| StoreError::Corrupt(error.to_string());
    let columns = SpanColumns {
        trace_id: TraceId::from_bytes(&trace_bytes).map_err(corrupt)?,
        span_id: SpanId::from_bytes(&span_bytes).map_err(corrupt)?,
        parent_span_id: span_id_column(row, 2)?,
        name: row.get(3)?,
        kind: row.get(4)?,
        start_time_unix_nano: row.get::<_, i64>(5)? as u64,
        end_time_unix_nano: row.get::<_, i64>(6)? as u64,
        status_code: row.get(7)?,
    };
    let body = match row.get_ref(8)? {
        rusqlite::types::ValueRef::Blob(bytes) | rusqlite::types::ValueRef::Text(bytes) => {
            bodies.read(bytes)?
        }
        _ => return Err(StoreError::Corrupt("span body is missing".into())),
    };
    let (span, semantics) = body.decode(columns)?;
    if let Some(semantics) = semantics {
        return Ok(StoredSpan { span, semantics });
    }
    // Written before format 2: the semantics are in the columns.
    let llm: Option<String> = row.get(14)?;
    let tool: Option<String> = row.get(15)?;
    let semantics = SpanSemantics {
        input: row.get(9)?,
        output: row.get(10)?,
        session_id: row.get(11)?,
        user_id: row.get(12)?,
        pipeline_id: row.get(13)?,
        llm: llm
            .map(|text| serde_json::from_str::<LlmCall>(&text))
            .transpose()
            .map_err(|error| StoreError::Corrupt(format!("llm: {error}")))?,
        tool: tool
            .map(|text| serde_json::from_str(&text))
            .transpose()
            .map_err(|error| StoreError::Corrupt(format!("tool: {error}")))?,
    };
    Ok(StoredSpan {
        span,
        semantics: semantics.with_llm_texts(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Statements that name one trace's spans read them by the trace's index, never by the
    /// project's time index.
    #[test]
    fn a_traces_spans_are_read_by_its_index() {
        let mut connection = Connection::open_in_memory().unwrap();
        super::super::schema::migrate(&mut connection).unwrap();
        for sql in [
            trace_spans_statement(),
            super::super::write::UPDATE_SEMANTICS.to_owned(),
        ] {
            let mut statement = connection
                .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
                .unwrap();
            let nulls = vec![rusqlite::types::Null; statement.parameter_count()];
            let plan: Vec<String> = statement
                .query_map(rusqlite::params_from_iter(nulls), |row| {
                    row.get::<_, String>(3)
                })
                .unwrap()
                .collect::<rusqlite::Result<_>>()
                .unwrap();
            assert!(
                plan.iter().any(|step| step.contains("spans_by_trace")),
                "{sql}: {plan:?}"
            );
            assert!(
                !plan.iter().any(|step| step.contains("spans_by_start")),
                "{plan:?}"
            );
        }
    }

    /// The plan SQLite makes for the page statement of `query`, one line per step.
    fn plan(query: &TraceQuery) -> Vec<String> {
        let mut connection = Connection::open_in_memory().unwrap();
        super::super::schema::migrate(&mut connection).unwrap();
        let (sql, values) = page_statement("p", query, None);
        let parameters: Vec<&dyn ToSql> = values.iter().map(|value| value.as_ref()).collect();
        let mut statement = connection
            .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
            .unwrap();
        statement
            .query_map(parameters.as_slice(), |row| row.get::<_, String>(3))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap()
    }

    /// Each filter's page is read from its index, within the window (and the cursor), in the
    /// page's order or sorted only among traces of equal timestamps: never a scan, never a
    /// walk of the window's time index. Oldest first (export) reads the same indexes backwards.
    #[test]
    fn each_filter_reads_its_page_from_its_index() {
        let value = Some("x".to_owned());
        let cases = [
            (TraceQuery::default(), "traces USING INDEX traces_by_time"),
            (
                TraceQuery {
                    status: value.clone(),
                    ..Default::default()
                },
                "traces USING INDEX traces_by_status",
            ),
            (
                TraceQuery {
                    user_id: value.clone(),
                    ..Default::default()
                },
                "traces USING INDEX traces_by_user",
            ),
            (
                TraceQuery {
                    session_id: value.clone(),
                    status: value.clone(),
                    ..Default::default()
                },
                "traces USING INDEX traces_by_session",
            ),
            (
                TraceQuery {
                    pipeline_id: value.clone(),
                    ..Default::default()
                },
                "traces USING INDEX traces_by_pipeline",
            ),
            (
                TraceQuery {
                    model: value.clone(),
                    user_id: value.clone(),
                    ..Default::default()
                },
                "m USING PRIMARY KEY",
            ),
        ];
        let cursor = TraceCursor {
            timestamp_unix_nano: 5,
            trace_id: TraceId([1; 16]),
        };
        for (query, index) in cases {
            for (cursor, oldest_first) in [
                (None, false),
                (Some(cursor), false),
                (None, true),
                (Some(cursor), true),
            ] {
                let query = TraceQuery {
                    start_unix_nano: 1,
                    end_unix_nano: 10,
                    limit: 50,
                    cursor,
                    oldest_first,
                    ..query.clone()
                };
                let plan = plan(&query);
                let first = &plan[0];
                assert!(
                    first.starts_with(&format!("SEARCH {index} (project_id=?"))
                        && first.contains("timestamp_ns>? AND timestamp_ns<?)"),
                    "{query:?}: {plan:?}"
                );
                assert!(
                    plan.iter()
                        .all(|step| !step.starts_with("SCAN")
                            && step != "USE TEMP B-TREE FOR ORDER BY"),
                    "{query:?}: {plan:?}"
                );
            }
        }
    }
}
