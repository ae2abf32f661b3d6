//! Filtered reads of traces: pages (`query_traces` with a filter), the dashboard's figures of
//! the matching traces and their score values.
//!
//! SQLite keeps no statistics here, so the plan is chosen by counting. Each top-level conjunct
//! that an index can list the traces of (a term's equality or range, `!= nil` of a term, a
//! model, a user, session or pipeline id, a status, a score's name, the text index's few
//! matches for `q`) is a candidate; each is counted, at most [`DRIVE_CAP`] rows, and the
//! smallest under the cap drives: its traces are looked up by rowid, tested with the whole
//! predicate and sorted (bounded work). When none is under the cap, the window's time index is
//! read newest first with the whole predicate: the matches are then frequent, so a page fills
//! soon.
//!
//! The scalar fields only the `record` JSON holds (`duration_ms`, costs, token and call counts,
//! `span_count`, `root_span_name`, `service_name`) are read with `json_extract`, not from
//! columns of their own: no index lists traces by them, so they are only tested on rows that the
//! time index or another candidate found, and a page of a frequent condition stops early.
//! Not yet measured at 1 M traces: a rare condition on them alone reads the whole window, and
//! filtered stats on them alone read every trace of the window; generated columns with indexes
//! are the next step if that is too slow, at the cost of every trace write.

use rusqlite::Connection;
use rusqlite::types::Value as SqlValue;

use super::filter_sql::{Compiler, term_of_trace_path};
use super::read::TextMatches;
use super::rollup::facts_of_row;
use crate::filter::query::{Comparator, Filter, Test, TraceField, TraceFilter, TracePath, Value};
use crate::store::trace_stats::{StatsBuilder, StatsQuery, TraceStats};
use crate::store::{StoreError, StoreResult, TraceQuery};

/// Most rows a candidate may count for it to drive a query.
pub(super) const DRIVE_CAP: i64 = 20_000;

/// A way to list a superset of the matching traces' rowids from an index.
pub(super) struct Candidate {
    /// `SELECT 1 …`: one row per rowid listed (or more), for counting.
    pub(super) count_sql: String,
    pub(super) count_values: Vec<SqlValue>,
    /// `SELECT rowid …`.
    pub(super) rowids_sql: String,
    pub(super) rowids_values: Vec<SqlValue>,
    /// Known without counting.
    pub(super) known_count: Option<i64>,
}

/// The candidate that drives: the one with the fewest rows, when under the cap.
pub(super) fn choose(
    connection: &Connection,
    candidates: Vec<Candidate>,
) -> StoreResult<Option<Candidate>> {
    choose_under(connection, candidates, DRIVE_CAP)
}

/// Most rows a candidate may count to drive filtered stats, which read every match: listing
/// the traces of a term from its index, then each by rowid, beats testing every trace of the
/// window while the candidate is a fraction of it.
const STATS_DRIVE_CAP: i64 = 250_000;

fn choose_under(
    connection: &Connection,
    candidates: Vec<Candidate>,
    cap: i64,
) -> StoreResult<Option<Candidate>> {
    let mut best: Option<(i64, Candidate)> = None;
    for candidate in candidates {
        let count = match candidate.known_count {
            Some(count) => count,
            None => connection
                .prepare_cached(&format!(
                    "SELECT count(*) FROM ({} LIMIT {cap})",
                    candidate.count_sql
                ))?
                .query_row(
                    rusqlite::params_from_iter(candidate.count_values.iter()),
                    |row| row.get(0),
                )?,
        };
        if count < cap && best.as_ref().is_none_or(|(least, _)| count < *least) {
            let done = count == 0;
            best = Some((count, candidate));
            if done {
                break;
            }
        }
    }
    Ok(best.map(|(_, candidate)| candidate))
}

/// The query's parameters and its filter as one filter.
fn combined_filter(query: &TraceQuery) -> TraceFilter {
    let mut terms = Vec::new();
    let equal = |path: TracePath, value: &String| {
        Filter::Atom(
            path,
            Test::Compare(Comparator::Equal, Value::Text(value.clone())),
        )
    };
    for (field, value) in [
        (TraceField::Status, &query.status),
        (TraceField::UserId, &query.user_id),
        (TraceField::SessionId, &query.session_id),
        (TraceField::PipelineId, &query.pipeline_id),
    ] {
        if let Some(value) = value {
            terms.push(equal(TracePath::Field(field), value));
        }
    }
    if let Some(model) = &query.model {
        terms.push(equal(TracePath::Model, model));
    }
    if let Some(filter) = &query.filter {
        terms.push(filter.as_ref().clone());
    }
    Filter::And(terms)
}

fn window(start: u64, end: u64) -> (i64, i64) {
    (
        start.min(i64::MAX as u64) as i64,
        end.min(i64::MAX as u64) as i64,
    )
}

/// The candidate of one conjunct, if an index lists its traces.
fn trace_candidate(
    compiler: &mut Compiler<'_>,
    project_id: &str,
    (start, end): (i64, i64),
    conjunct: &TraceFilter,
) -> StoreResult<Option<Candidate>> {
    let Filter::Atom(path, test) = conjunct else {
        return Ok(None);
    };
    let text = |value: &Value| match value {
        Value::Text(text) => Some(SqlValue::Text(text.clone())),
        _ => None,
    };
    let project = SqlValue::Text(project_id.to_owned());
    let candidate = |count_sql: String, rowids_sql: String, values: Vec<SqlValue>| Candidate {
        count_sql,
        count_values: values.clone(),
        rowids_sql,
        rowids_values: values,
        known_count: None,
    };
    Ok(match (path, test) {
        (TracePath::Field(field), Test::Compare(Comparator::Equal, value)) => {
            let index = match field {
                TraceField::Status => "traces_by_status",
                TraceField::UserId => "traces_by_user",
                TraceField::SessionId => "traces_by_session",
                TraceField::PipelineId => "traces_by_pipeline",
                _ => return Ok(None),
            };
            let Some(value) = text(value) else {
                return Ok(None);
            };
            let column = field.name();
            let from = format!(
                "FROM traces AS c INDEXED BY {index} WHERE c.project_id = ? AND c.{column} = ? \
                 AND c.timestamp_ns >= ? AND c.timestamp_ns < ?"
            );
            Some(candidate(
                format!("SELECT 1 {from}"),
                format!("SELECT c.rowid {from}"),
                vec![
                    project,
                    value,
                    SqlValue::Integer(start),
                    SqlValue::Integer(end),
                ],
            ))
        }
        (TracePath::Model, Test::Compare(Comparator::Equal, value)) => {
            let Some(value) = text(value) else {
                return Ok(None);
            };
            let from = "FROM trace_models AS m WHERE m.project_id = ? AND m.model = ? \
                        AND m.timestamp_ns >= ? AND m.timestamp_ns < ?";
            Some(candidate(
                format!("SELECT 1 {from}"),
                format!(
                    "SELECT c.rowid {from_join} {where_}",
                    from_join = "FROM trace_models AS m CROSS JOIN traces AS c \
                                 ON c.project_id = m.project_id AND c.trace_id = m.trace_id",
                    where_ = "WHERE m.project_id = ? AND m.model = ? \
                              AND m.timestamp_ns >= ? AND m.timestamp_ns < ?"
                ),
                vec![
                    project,
                    value,
                    SqlValue::Integer(start),
                    SqlValue::Integer(end),
                ],
            ))
        }
        (TracePath::Score(name), test) => {
            // True only for traces with a score of the name.
            let needs_score = match test {
                Test::Compare(Comparator::NotEqual, Value::Nil) | Test::Matches(_) => true,
                Test::Compare(Comparator::NotEqual, _) | Test::Compare(_, Value::Nil) => false,
                Test::Compare(..) => true,
            };
            if !needs_score {
                return Ok(None);
            }
            let where_ = "WHERE sc.project_id = ? AND sc.name = ?";
            Some(candidate(
                format!("SELECT 1 FROM scores AS sc INDEXED BY scores_by_name {where_}"),
                format!(
                    "SELECT c.rowid FROM scores AS sc INDEXED BY scores_by_name \
                     CROSS JOIN traces AS c \
                     ON c.project_id = sc.project_id AND c.trace_id = sc.trace_id {where_}"
                ),
                vec![project, SqlValue::Text(name.clone())],
            ))
        }
        (path, test) => {
            let Some((kind, key)) = term_of_trace_path(path) else {
                return Ok(None);
            };
            let negated_metadata = matches!(
                (path, test),
                (TracePath::Metadata(_), Test::Compare(Comparator::NotEqual, value))
                    if *value != Value::Nil
            );
            if negated_metadata || matches!(test, Test::Compare(Comparator::Equal, Value::Nil)) {
                return Ok(None);
            }
            let saved = std::mem::take(&mut compiler.values);
            let condition = match compiler.key_id(kind, key)? {
                None => None,
                Some(key_id) => {
                    let key = compiler.bind(SqlValue::Integer(key_id));
                    let mut condition = format!("st.key_id = {key}");
                    if let Test::Compare(
                        comparator @ (Comparator::Equal
                        | Comparator::Less
                        | Comparator::LessEqual
                        | Comparator::Greater
                        | Comparator::GreaterEqual),
                        value,
                    ) = test
                        && *value != Value::Nil
                    {
                        let compared = compiler.term_condition("st.value", *comparator, value);
                        condition = format!("{condition} AND {compared}");
                    }
                    Some(condition)
                }
            };
            let values = std::mem::replace(&mut compiler.values, saved);
            Some(match condition {
                // No span has the key: the conjunct lists nothing.
                None => Candidate {
                    count_sql: String::new(),
                    count_values: Vec::new(),
                    rowids_sql: "SELECT NULL WHERE 0".to_owned(),
                    rowids_values: Vec::new(),
                    known_count: Some(0),
                },
                Some(condition) => candidate(
                    format!("SELECT 1 FROM span_terms AS st WHERE {condition}"),
                    format!("SELECT st.trace_key FROM span_terms AS st WHERE {condition}"),
                    values,
                ),
            })
        }
    })
}

/// The rows of the matching traces: `FROM … WHERE …` over `traces`, with its values, and
/// whether the time index drives it (its rows are then in the page's order).
struct MatchingRows {
    from_where: String,
    values: Vec<SqlValue>,
}

/// `FROM traces … WHERE` the window, `extra` (cursor conditions and their values) and the
/// filter hold, driven as the module says.
fn matching_rows(
    connection: &Connection,
    project_id: &str,
    filter: &TraceFilter,
    range: (u64, u64),
    extra: (String, Vec<SqlValue>),
    text: Option<(String, Vec<SqlValue>, Option<Candidate>)>,
    cap: i64,
) -> StoreResult<MatchingRows> {
    let (start, end) = window(range.0, range.1);
    let mut compiler = Compiler::new(connection, project_id);
    let mut candidates = Vec::new();
    for conjunct in filter.conjuncts() {
        if let Some(candidate) = trace_candidate(&mut compiler, project_id, (start, end), conjunct)?
        {
            candidates.push(candidate);
        }
    }
    let (text_sql, text_values) = match text {
        Some((sql, values, candidate)) => {
            candidates.extend(candidate);
            (sql, values)
        }
        None => (String::new(), Vec::new()),
    };
    let predicate = compiler.trace_filter(filter)?;
    let predicate_values = std::mem::take(&mut compiler.values);
    let driver = choose_under(connection, candidates, cap)?;
    let mut values = Vec::new();
    let mut from_where = match driver {
        Some(driver) => {
            values.extend(driver.rowids_values);
            format!(
                "FROM traces NOT INDEXED WHERE traces.rowid IN ({}) AND",
                driver.rowids_sql
            )
        }
        None => "FROM traces INDEXED BY traces_by_time WHERE".to_owned(),
    };
    from_where.push_str(
        " traces.project_id = ? AND traces.timestamp_ns >= ? AND traces.timestamp_ns < ?",
    );
    values.extend([
        SqlValue::Text(project_id.to_owned()),
        SqlValue::Integer(start),
        SqlValue::Integer(end),
    ]);
    from_where.push_str(&extra.0);
    values.extend(extra.1);
    from_where.push_str(&format!(" AND {predicate}"));
    values.extend(predicate_values);
    from_where.push_str(&text_sql);
    values.extend(text_values);
    Ok(MatchingRows { from_where, values })
}

/// A page's order as SQL: the direction of the timestamp and the trace id, how a row after
/// the cursor compares with it, and the same or equal (which bounds the index range). Newest
/// first for lists, oldest first for export.
pub(super) fn page_order(query: &TraceQuery) -> (&'static str, &'static str, &'static str) {
    if query.oldest_first {
        ("ASC", ">", ">=")
    } else {
        ("DESC", "<", "<=")
    }
}

/// The statement of a page of traces with a filter (see [`super::read::query_traces`]): one
/// more than the limit, newest first (oldest first when the query says). `text`: the `q` search's matches, as read found them.
pub(super) fn trace_page(
    connection: &Connection,
    project_id: &str,
    query: &TraceQuery,
    text: Option<(&str, Option<TextMatches>)>,
    columns: &str,
) -> StoreResult<(String, Vec<SqlValue>)> {
    let filter = combined_filter(query);
    let (direction, after, bound) = page_order(query);
    let mut cursor = (String::new(), Vec::new());
    if let Some(at) = &query.cursor {
        let timestamp = SqlValue::Integer(at.timestamp_unix_nano.min(i64::MAX as u64) as i64);
        cursor.0 = format!(
            " AND (traces.timestamp_ns {after} ? OR (traces.timestamp_ns = ? \
             AND traces.trace_id {after} ?)) AND traces.timestamp_ns {bound} ?"
        );
        cursor.1 = vec![
            timestamp.clone(),
            timestamp.clone(),
            SqlValue::Blob(at.trace_id.as_bytes().to_vec()),
            timestamp,
        ];
    }
    let text = text.map(|(text, matches)| super::read::text_condition(text, matches));
    let rows = matching_rows(
        connection,
        project_id,
        &filter,
        (query.start_unix_nano, query.end_unix_nano),
        cursor,
        text,
        DRIVE_CAP,
    )?;
    let mut values = rows.values;
    values.push(SqlValue::Integer(query.limit as i64 + 1));
    Ok((
        format!(
            "SELECT {columns} {} ORDER BY traces.timestamp_ns {direction}, \
             traces.trace_id {direction} LIMIT ?",
            rows.from_where
        ),
        values,
    ))
}

/// The dashboard's figures of the traces of the window that the query's filter matches,
/// computed from their rows as the rollup would count them ([`facts_of_row`]).
pub(super) fn filtered_stats(
    connection: &Connection,
    project_id: &str,
    query: &StatsQuery,
    filter: &TraceFilter,
) -> StoreResult<TraceStats> {
    let _snapshot = connection.unchecked_transaction()?;
    let rows = matching_rows(
        connection,
        project_id,
        filter,
        (query.start_unix_nano, query.end_unix_nano),
        (String::new(), Vec::new()),
        None,
        STATS_DRIVE_CAP,
    )?;
    let mut statement = connection.prepare_cached(&format!(
        "SELECT traces.timestamp_ns, traces.status, traces.models, traces.record {}",
        rows.from_where
    ))?;
    let mut found = statement.query(rusqlite::params_from_iter(rows.values.iter()))?;
    let mut builder = StatsBuilder::new(query.clone());
    while let Some(row) = found.next()? {
        let text = |index| -> StoreResult<&str> {
            row.get_ref(index)?
                .as_str()
                .map_err(|error| StoreError::Corrupt(format!("trace row: {error}")))
        };
        let models = serde_json::from_str(text(2)?).unwrap_or_default();
        builder.add(&facts_of_row(row.get(0)?, text(1)?, models, text(3)?));
    }
    Ok(builder.finish())
}

/// `FROM traces … WHERE …` of the window's traces that `filter` matches (every trace of the
/// window without one), with its values; driven as a filtered stats query is.
pub(super) fn window_rows(
    connection: &Connection,
    project_id: &str,
    filter: Option<&TraceFilter>,
    (start, end): (u64, u64),
) -> StoreResult<(String, Vec<SqlValue>)> {
    let Some(filter) = filter else {
        let (start, end) = window(start, end);
        return Ok((
            "FROM traces INDEXED BY traces_by_time WHERE traces.project_id = ? \
             AND traces.timestamp_ns >= ? AND traces.timestamp_ns < ?"
                .to_owned(),
            vec![
                SqlValue::Text(project_id.to_owned()),
                SqlValue::Integer(start),
                SqlValue::Integer(end),
            ],
        ));
    };
    let rows = matching_rows(
        connection,
        project_id,
        filter,
        (start, end),
        (String::new(), Vec::new()),
        None,
        STATS_DRIVE_CAP,
    )?;
    Ok((rows.from_where, rows.values))
}

/// The statement of the rowids of the window's traces that `filter` matches (a deletion's
/// selection), with its values; driven as a filtered stats query is.
pub(super) fn matching_rowids(
    connection: &Connection,
    project_id: &str,
    filter: &TraceFilter,
    (start, end): (u64, u64),
) -> StoreResult<(String, Vec<SqlValue>)> {
    let (from_where, values) = window_rows(connection, project_id, Some(filter), (start, end))?;
    Ok((format!("SELECT traces.rowid {from_where}"), values))
}

/// The numeric and boolean score values of the window's traces that `filter` matches:
/// (trace timestamp, name, value), read from the project's scores (fewer than its traces).
pub(super) fn filtered_score_values(
    connection: &Connection,
    project_id: &str,
    query: &StatsQuery,
    filter: &TraceFilter,
) -> StoreResult<Vec<(u64, String, f64)>> {
    let (start, end) = window(query.start_unix_nano, query.end_unix_nano);
    let mut compiler = Compiler::new(connection, project_id);
    let predicate = compiler.trace_filter(filter)?;
    let mut values = vec![
        SqlValue::Text(project_id.to_owned()),
        SqlValue::Integer(start),
        SqlValue::Integer(end),
    ];
    values.append(&mut compiler.values);
    let mut statement = connection.prepare_cached(&format!(
        "SELECT traces.timestamp_ns, sc.name, sc.number
         FROM scores AS sc CROSS JOIN traces
           ON traces.project_id = sc.project_id AND traces.trace_id = sc.trace_id
         WHERE sc.project_id = ?1 AND sc.number IS NOT NULL
           AND traces.timestamp_ns >= ?2 AND traces.timestamp_ns < ?3 AND {predicate}"
    ))?;
    let rows = statement.query_map(rusqlite::params_from_iter(values.iter()), |row| {
        Ok((row.get::<_, i64>(0)? as u64, row.get(1)?, row.get(2)?))
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}
