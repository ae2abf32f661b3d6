//! The reads export makes besides pages of traces (`read::query_traces`, oldest first): the
//! spans of a page's traces and their content events, a few queries per page rather than one
//! per trace. Spans are ordered by `(project_id, trace_id, span_id)`, so each trace is one
//! range of the primary key.

use clickhouse::Client;

use super::queries::CONTENT_EVENTS_OF_TRACES;
use super::rows::{ContentEventRow, SpanRow};
use super::trace_rows::{TRACE_IDS_PER_QUERY, spans_of_traces as spans_of_traces_sql};
use super::unavailable;
use crate::model::{ContentEvent, SpanId, TraceId};
use crate::store::content_events::event_from_stored;
use crate::store::{StoreError, StoreResult, StoredSpan};

fn hex_ids(trace_ids: &[TraceId]) -> Vec<String> {
    trace_ids.iter().map(TraceId::to_hex).collect()
}

/// Each trace's spans, by start time then span id (as `read::get_trace` orders them); of a
/// span stored in several versions, the latest.
pub async fn spans_of_traces(
    client: &Client,
    project_id: &str,
    trace_ids: &[TraceId],
) -> StoreResult<Vec<StoredSpan>> {
    let mut rows: Vec<SpanRow> = Vec::new();
    for chunk in trace_ids.chunks(TRACE_IDS_PER_QUERY) {
        let found: Vec<SpanRow> = client
            .query(&spans_of_traces_sql())
            .bind(project_id)
            .bind(hex_ids(chunk))
            .fetch_all()
            .await
            .map_err(unavailable)?;
        rows.extend(found);
    }
    // FINAL merges versions of one server's table; a version still apart (a cluster's shards
    // merging) is dropped here, the latest kept.
    rows.sort_by(|left, right| {
        (
            &left.trace_id,
            &left.span_id,
            std::cmp::Reverse(left.version),
        )
            .cmp(&(
                &right.trace_id,
                &right.span_id,
                std::cmp::Reverse(right.version),
            ))
    });
    rows.dedup_by(|later, kept| later.trace_id == kept.trace_id && later.span_id == kept.span_id);
    let mut spans = rows
        .iter()
        .map(|row| {
            let (span, semantics) = row.decode()?;
            Ok(StoredSpan { span, semantics })
        })
        .collect::<StoreResult<Vec<_>>>()?;
    spans.sort_by_key(|stored| {
        (
            stored.span.trace_id,
            stored.span.start_time_unix_nano,
            stored.span.span_id,
        )
    });
    Ok(spans)
}

/// The content events of the traces, each span's by time, then fingerprint: the order
/// delivery normalizes a span with.
pub async fn content_events_of_traces(
    client: &Client,
    project_id: &str,
    trace_ids: &[TraceId],
) -> StoreResult<Vec<ContentEvent>> {
    let mut events = Vec::new();
    for chunk in trace_ids.chunks(TRACE_IDS_PER_QUERY) {
        let rows: Vec<ContentEventRow> = client
            .query(CONTENT_EVENTS_OF_TRACES)
            .bind(project_id)
            .bind(hex_ids(chunk))
            .fetch_all()
            .await
            .map_err(unavailable)?;
        for row in rows {
            let corrupt = |error: crate::model::IdError| StoreError::Corrupt(error.to_string());
            events.push(ContentEvent {
                trace_id: TraceId::parse_hex(&row.trace_id).map_err(corrupt)?,
                span_id: SpanId::parse_hex(&row.span_id).map_err(corrupt)?,
                event: event_from_stored(row.time_ns, row.name, &row.attributes)?,
            });
        }
    }
    Ok(events)
}
