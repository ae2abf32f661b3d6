//! The reads export makes besides pages of traces (`read::query_traces`, oldest first): the
//! spans of a page's traces and the content events attached to them, each in one read
//! transaction. Every value is a bound parameter.

use rusqlite::{Connection, params};

use super::blocks::BodyReader;
use super::read::{stored_span_from_row, trace_spans_statement};
use crate::model::{ContentEvent, SpanId, TraceId};
use crate::store::content_events::event_from_stored;
use crate::store::{StoreError, StoreResult, StoredSpan};

/// The spans of each trace, by start time, as `read::get_trace` reads them: one prepared
/// statement run per trace (each a range of `spans_by_trace`), blocks decompressed once for
/// the spans they hold side by side.
pub(super) fn spans_of_traces(
    connection: &Connection,
    project_id: &str,
    trace_ids: &[TraceId],
) -> StoreResult<Vec<StoredSpan>> {
    let _snapshot = connection.unchecked_transaction()?;
    let mut statement = connection.prepare_cached(&trace_spans_statement())?;
    let mut bodies = BodyReader::new(connection);
    let mut spans = Vec::new();
    for trace_id in trace_ids {
        let mut rows = statement.query(params![project_id, trace_id.as_bytes()])?;
        while let Some(row) = rows.next()? {
            spans.push(stored_span_from_row(row, &mut bodies)?);
        }
    }
    Ok(spans)
}

/// Each span's content events in the order the writer normalizes with (time, then arrival):
/// a range of `span_content_events_identity` per trace. Stores that never received a log
/// record answer without looking a trace up.
pub(super) fn content_events_of_traces(
    connection: &Connection,
    project_id: &str,
    trace_ids: &[TraceId],
) -> StoreResult<Vec<ContentEvent>> {
    let _snapshot = connection.unchecked_transaction()?;
    let any: bool = connection
        .prepare_cached("SELECT EXISTS (SELECT 1 FROM span_content_events)")?
        .query_row([], |row| row.get(0))?;
    if !any {
        return Ok(Vec::new());
    }
    let mut statement = connection.prepare_cached(
        "SELECT span_id, time_ns, name, attributes FROM span_content_events
         WHERE project_id = ?1 AND trace_id = ?2 ORDER BY span_id, time_ns, rowid",
    )?;
    let corrupt = |error: crate::model::IdError| StoreError::Corrupt(error.to_string());
    let mut events = Vec::new();
    for trace_id in trace_ids {
        let mut rows = statement.query(params![project_id, trace_id.as_bytes()])?;
        while let Some(row) = rows.next()? {
            let span_id = SpanId::from_bytes(&row.get::<_, Vec<u8>>(0)?).map_err(corrupt)?;
            let attributes: String = row.get(3)?;
            events.push(ContentEvent {
                trace_id: *trace_id,
                span_id,
                event: event_from_stored(row.get::<_, i64>(1)? as u64, row.get(2)?, &attributes)?,
            });
        }
    }
    Ok(events)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The plan of `sql` with every parameter NULL, one line per step.
    fn plan(connection: &Connection, sql: &str) -> Vec<String> {
        let mut statement = connection
            .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
            .unwrap();
        let nulls = vec![rusqlite::types::Null; statement.parameter_count()];
        statement
            .query_map(rusqlite::params_from_iter(nulls), |row| {
                row.get::<_, String>(3)
            })
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap()
    }

    /// A trace's content events are a range of their unique index, sorted within it only.
    #[test]
    fn content_events_are_read_by_their_index() {
        let mut connection = Connection::open_in_memory().unwrap();
        super::super::schema::migrate(&mut connection).unwrap();
        let steps = plan(
            &connection,
            "SELECT span_id, time_ns, name, attributes FROM span_content_events
             WHERE project_id = ?1 AND trace_id = ?2 ORDER BY span_id, time_ns, rowid",
        );
        assert!(
            steps[0].starts_with(
                "SEARCH span_content_events USING INDEX span_content_events_identity \
                 (project_id=? AND trace_id=?)"
            ),
            "{steps:?}"
        );
    }
}
