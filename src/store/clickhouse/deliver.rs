//! Delivery of the spool to ClickHouse: oldest files first, in large batches, one insert per
//! table and partition (day), retried with backoff while ClickHouse is down or slow. Spans are
//! normalized again with their GenAI content events from the logs signal, whichever arrived
//! first, before they are inserted.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use clickhouse::{Client, Row};
use serde::Deserialize;
use sha2::{Digest as _, Sha256};

use super::metadata::insert;
use super::queries::{SPANS_WITH_CONTENT, content_events_of_span, span_by_id};
use super::rows::{ContentEventRow, SpanRow};
use super::spool::{Spool, SpoolEntry};
use super::{unavailable, version_now};
use crate::model::attributes::{from_stored_json, to_stored_json};
use crate::model::{ContentEvent, Event, SpanId, TraceId};
use crate::normalize::Normalizer;
use crate::store::StoreResult;
use crate::store::codec::{SpanColumns, decode_span};

/// The row of a content event; its fingerprint deduplicates retries.
pub fn content_event_row(project_id: &str, content: &ContentEvent) -> ContentEventRow {
    let attributes = to_stored_json(&content.event.attributes);
    let mut fingerprint = Sha256::new();
    fingerprint.update(content.event.time_unix_nano.to_be_bytes());
    fingerprint.update(content.event.name.as_bytes());
    fingerprint.update([0]);
    fingerprint.update(attributes.as_bytes());
    ContentEventRow {
        project_id: project_id.to_owned(),
        trace_id: content.trace_id.to_hex(),
        span_id: content.span_id.to_hex(),
        time_ns: content.event.time_unix_nano,
        name: content.event.name.clone(),
        attributes,
        fingerprint: hex::encode(&fingerprint.finalize()[..16]),
    }
}

/// Delivers the spool until the store is dropped.
pub async fn run(
    client: Client,
    spool: Arc<Spool>,
    normalizer: Arc<Normalizer>,
    batch_max_items: u64,
    flush_interval: Duration,
) {
    let mut backoff = Duration::from_millis(100);
    loop {
        let files = match spool.oldest(batch_max_items) {
            Ok(files) => files,
            Err(error) => {
                tracing::error!(%error, "cannot read the spool");
                tokio::time::sleep(Duration::from_secs(5)).await;
                continue;
            }
        };
        if files.is_empty() {
            tokio::time::sleep(flush_interval).await;
            continue;
        }
        let sequences: Vec<u64> = files.iter().map(|(sequence, _)| *sequence).collect();
        let entries: Vec<SpoolEntry> = files.into_iter().flat_map(|(_, entries)| entries).collect();
        match deliver(&client, &normalizer, entries).await {
            Ok(()) => {
                spool.remove(&sequences);
                backoff = Duration::from_millis(100);
            }
            Err(error) => {
                tracing::warn!(%error, retry_in_ms = backoff.as_millis() as u64, "delivering to clickhouse failed");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(30));
            }
        }
    }
}

/// Inserts one batch of spool entries.
async fn deliver(
    client: &Client,
    normalizer: &Normalizer,
    entries: Vec<SpoolEntry>,
) -> StoreResult<()> {
    let mut spans = Vec::new();
    let mut events = Vec::new();
    for entry in entries {
        match entry {
            SpoolEntry::Spans(rows) => spans.extend(rows),
            SpoolEntry::ContentEvents(rows) => events.extend(rows),
        }
    }
    if !events.is_empty() {
        insert_by_day(client, "span_content_events", events.clone(), |row| {
            row.time_ns
        })
        .await?;
    }
    // Spans of this batch that have content events: normalize them with it.
    let mut with_content: HashSet<(String, String, String)> = HashSet::new();
    let mut by_project: BTreeMap<&str, HashSet<&str>> = BTreeMap::new();
    for span in &spans {
        by_project
            .entry(&span.project_id)
            .or_default()
            .insert(&span.trace_id);
    }
    for (project_id, trace_ids) in by_project {
        let trace_ids: Vec<&str> = trace_ids.into_iter().collect();
        let pairs: Vec<TraceSpan> = client
            .query(SPANS_WITH_CONTENT)
            .bind(project_id)
            .bind(trace_ids)
            .fetch_all()
            .await
            .map_err(unavailable)?;
        for pair in pairs {
            with_content.insert((project_id.to_owned(), pair.trace_id, pair.span_id));
        }
    }
    for span in &mut spans {
        let key = (
            span.project_id.clone(),
            span.trace_id.clone(),
            span.span_id.clone(),
        );
        if with_content.contains(&key) {
            renormalize(client, normalizer, span).await?;
        }
    }
    // Spans stored before their content events arrived: rewrite them with a newer version.
    let mut rewritten = Vec::new();
    let in_batch: HashSet<(&str, &str, &str)> = spans
        .iter()
        .map(|span| {
            (
                span.project_id.as_str(),
                span.trace_id.as_str(),
                span.span_id.as_str(),
            )
        })
        .collect();
    let mut done = HashSet::new();
    for event in &events {
        let key = (
            event.project_id.as_str(),
            event.trace_id.as_str(),
            event.span_id.as_str(),
        );
        if in_batch.contains(&key) || !done.insert(key) {
            continue;
        }
        let stored: Option<SpanRow> = client
            .query(&span_by_id())
            .bind(key.0)
            .bind(key.1)
            .bind(key.2)
            .fetch_optional()
            .await
            .map_err(unavailable)?;
        if let Some(mut span) = stored {
            renormalize(client, normalizer, &mut span).await?;
            span.version = version_now();
            rewritten.push(span);
        }
    }
    spans.extend(rewritten);
    if !spans.is_empty() {
        insert_by_day(client, "spans", spans, |row| row.start_ns).await?;
    }
    Ok(())
}

#[derive(Row, Deserialize)]
struct TraceSpan {
    trace_id: String,
    span_id: String,
}

/// Normalizes a span row again with all the content events stored for it.
async fn renormalize(
    client: &Client,
    normalizer: &Normalizer,
    row: &mut SpanRow,
) -> StoreResult<()> {
    let events: Vec<ContentEventRow> = client
        .query(&content_events_of_span())
        .bind(&row.project_id)
        .bind(&row.trace_id)
        .bind(&row.span_id)
        .fetch_all()
        .await
        .map_err(unavailable)?;
    let events: Vec<Event> = events
        .into_iter()
        .filter_map(|event| {
            Some(Event {
                time_unix_nano: event.time_ns,
                name: event.name,
                attributes: from_stored_json(&event.attributes).ok()?,
                dropped_attributes_count: 0,
            })
        })
        .collect();
    let span = decode_span(span_columns(row)?, &row.body)?;
    let semantics = normalizer.normalize(&span, &events);
    row.set_semantics(&semantics);
    Ok(())
}

pub(super) fn span_columns(row: &SpanRow) -> StoreResult<SpanColumns> {
    let corrupt = |what: &str| crate::store::StoreError::Corrupt(format!("span row: bad {what}"));
    Ok(SpanColumns {
        trace_id: TraceId::parse_hex(&row.trace_id).map_err(|_| corrupt("trace_id"))?,
        span_id: SpanId::parse_hex(&row.span_id).map_err(|_| corrupt("span_id"))?,
        parent_span_id: if row.parent_span_id.is_empty() {
            None
        } else {
            Some(SpanId::parse_hex(&row.parent_span_id).map_err(|_| corrupt("parent_span_id"))?)
        },
        name: row.name.clone(),
        kind: i32::from(row.kind),
        start_time_unix_nano: row.start_ns,
        end_time_unix_nano: row.end_ns,
        status_code: i32::from(row.status_code),
    })
}

/// One insert per day partition, as ClickHouse prefers.
async fn insert_by_day<T>(
    client: &Client,
    table: &str,
    rows: Vec<T>,
    time: impl Fn(&T) -> u64,
) -> StoreResult<()>
where
    T: serde::Serialize,
    for<'a> T: Row<Value<'a> = T>,
{
    let mut days: HashMap<u64, Vec<T>> = HashMap::new();
    for row in rows {
        days.entry(time(&row) / 86_400_000_000_000)
            .or_default()
            .push(row);
    }
    for rows in days.into_values() {
        insert(client, table, &rows).await?;
    }
    Ok(())
}
