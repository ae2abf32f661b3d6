//! Delivery of the spool to ClickHouse: oldest files first, in large batches, one insert per
//! table and partition (day), retried with backoff while ClickHouse is down or slow. Spans are
//! normalized again with their GenAI content events from the logs signal, whichever arrived
//! first, before they are inserted.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use crate::store::content_events::{StoredContent, event_from_stored};
use bytes::Bytes;
use clickhouse::{Client, Row};
use serde::Deserialize;
use tokio::task::{JoinError, JoinSet};

use super::metadata::insert;
use super::queries::{SPANS_WITH_CONTENT, content_events_of_span, span_by_id};
use super::rowbinary::{
    Reader, insert_statement, put_span, read_content_event, read_span, read_term, scan_span,
};
use super::rows::{ContentEventRow, SpanRow};
use super::spool::{Claim, Kind, Spool, SpoolEntry};
use super::terms::{TermRow, has_keys};
use super::trace_rows::{self, TRACE_IDS_PER_QUERY};
use super::{unavailable, version_now};
use crate::model::{ContentEvent, Event};
use crate::normalize::Normalizer;
use crate::store::StoreResult;

/// The row of a content event; its fingerprint deduplicates retries.
pub fn content_event_row(project_id: &str, content: &ContentEvent) -> ContentEventRow {
    let stored = StoredContent::of(content);
    ContentEventRow {
        project_id: project_id.to_owned(),
        trace_id: content.trace_id.to_hex(),
        span_id: content.span_id.to_hex(),
        time_ns: content.event.time_unix_nano,
        name: content.event.name.clone(),
        attributes: stored.attributes,
        fingerprint: hex::encode(stored.fingerprint),
    }
}

/// Batches being inserted at once. One insert keeps one ClickHouse thread busy while the
/// server waits; with two, the second core is used while the first insert is written.
const IN_FLIGHT: usize = 2;

/// Delivers the spool until the store is dropped.
///
/// Batches of spans alone are inserted up to `IN_FLIGHT` at once, in any order (each is
/// independent: its spans are normalized with the content events already stored). A batch with
/// content events runs alone, after every earlier batch is stored and before any later one
/// starts: it rewrites spans stored before it, and later spans find its events.
pub async fn run(
    client: Client,
    spool: Arc<Spool>,
    normalizer: Arc<Normalizer>,
    batch_max_items: u64,
    flush_interval: Duration,
) {
    let mut backoff = Duration::from_millis(100);
    let mut tasks: JoinSet<(Claim, StoreResult<()>)> = JoinSet::new();
    let mut exclusive = false;
    loop {
        // Reap finished batches; wait for one while no other may start.
        let finished = if tasks.len() >= IN_FLIGHT || (exclusive && !tasks.is_empty()) {
            tasks.join_next().await
        } else {
            tasks.try_join_next()
        };
        if let Some(finished) = finished {
            if settle(finished) {
                tracing::debug!(
                    retry_in_ms = backoff.as_millis() as u64,
                    "delivery backs off"
                );
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(30));
            } else {
                backoff = Duration::from_millis(100);
            }
            if tasks.is_empty() {
                exclusive = false;
            }
            continue;
        }
        // Few large inserts: ClickHouse merges every part it is given, so many small ones cost
        // it more CPU than the rows themselves. A batch waits until it is full or its oldest
        // file has waited `flush_interval`.
        let (items, age) = spool.waiting();
        if items == 0 || (items < batch_max_items && age < flush_interval) {
            let wait = if items == 0 {
                flush_interval
            } else {
                flush_interval - age
            };
            tokio::time::sleep(wait.min(Duration::from_millis(50))).await;
            continue;
        }
        let files = match spool.take_oldest(batch_max_items) {
            Ok(files) => files,
            Err(error) => {
                tracing::error!(%error, "cannot read the spool");
                tokio::time::sleep(Duration::from_secs(5)).await;
                continue;
            }
        };
        if files.is_empty() {
            continue;
        }
        let sequences: Vec<u64> = files.iter().map(|(sequence, _)| *sequence).collect();
        // From here the files are released whatever becomes of the task, a panic included.
        let claim = Claim::new(Arc::clone(&spool), sequences);
        let entries: Vec<SpoolEntry> = files.into_iter().flat_map(|(_, entries)| entries).collect();
        let has_events = entries
            .iter()
            .any(|entry| entry.kind == Kind::ContentEvents);
        if has_events {
            // After every earlier batch: wait for those in flight (this one is claimed
            // meanwhile).
            while let Some(finished) = tasks.join_next().await {
                settle(finished);
            }
            exclusive = true;
        }
        let client = client.clone();
        let normalizer = Arc::clone(&normalizer);
        tasks.spawn(async move {
            let result = deliver(&client, &normalizer, entries).await;
            (claim, result)
        });
    }
}

/// Ends a finished batch: its files are removed once delivered, and offered again otherwise
/// (a task that panicked released them as its claim was dropped). Returns whether it failed.
fn settle(finished: Result<(Claim, StoreResult<()>), JoinError>) -> bool {
    match finished {
        Ok((claim, Ok(()))) => {
            claim.delivered();
            false
        }
        Ok((claim, Err(error))) => {
            drop(claim);
            tracing::warn!(%error, "delivering to clickhouse failed");
            true
        }
        Err(error) => {
            tracing::error!(%error, "a delivery task failed; its files are offered again");
            true
        }
    }
}

const DAY_NS: u64 = 86_400_000_000_000;

/// Inserts one batch of spool entries. Span rows go as the spool has them (RowBinary), copied
/// into one insert per day; only spans with GenAI content events are decoded, normalized again
/// and encoded.
async fn deliver(
    client: &Client,
    normalizer: &Normalizer,
    entries: Vec<SpoolEntry>,
) -> StoreResult<()> {
    #[cfg(test)]
    tests::panic_if_asked(&entries);
    let mut span_entries = Vec::new();
    let mut term_entries = Vec::new();
    let mut events = Vec::new();
    for entry in entries {
        match entry.kind {
            Kind::Spans => span_entries.push(entry),
            Kind::SpanTerms => term_entries.push(entry),
            Kind::ContentEvents => {
                let mut reader = Reader::new(&entry.data);
                for _ in 0..entry.rows {
                    events.push(read_content_event(&mut reader)?);
                }
            }
        }
    }
    if !events.is_empty() {
        insert_by_day(client, "span_content_events", events.clone(), |row| {
            row.time_ns
        })
        .await?;
    }
    let mut keys = Vec::new();
    for (index, entry) in span_entries.iter().enumerate() {
        let mut reader = Reader::new(&entry.data);
        for _ in 0..entry.rows {
            keys.push((index, scan_span(&mut reader)?));
        }
        if !reader.is_empty() {
            return Err(crate::store::StoreError::Corrupt(
                "spool entry: bytes past its rows".into(),
            ));
        }
    }
    // Spans of this batch that have content events: normalize them with it.
    let mut with_content: HashMap<&str, HashMap<String, HashSet<String>>> = HashMap::new();
    let mut by_project: BTreeMap<&str, HashSet<&str>> = BTreeMap::new();
    for (_, key) in &keys {
        by_project
            .entry(key.project_id)
            .or_default()
            .insert(key.trace_id);
    }
    for (project_id, trace_ids) in by_project {
        let trace_ids: Vec<&str> = trace_ids.into_iter().collect();
        let mut pairs: Vec<TraceSpan> = Vec::new();
        // The ids are bound into the query's text, which ClickHouse caps (max_query_size,
        // 256 KiB by default): a few thousand per query.
        for chunk in trace_ids.chunks(TRACE_IDS_PER_QUERY) {
            pairs.extend(
                client
                    .query(SPANS_WITH_CONTENT)
                    .bind(project_id)
                    .bind(chunk)
                    .fetch_all::<TraceSpan>()
                    .await
                    .map_err(unavailable)?,
            );
        }
        for pair in pairs {
            with_content
                .entry(project_id)
                .or_default()
                .entry(pair.trace_id)
                .or_default()
                .insert(pair.span_id);
        }
    }
    // Per day, the rows as chunks of the spool's bytes: runs of rows of one entry are slices
    // of it (no copy); a span normalized again is encoded anew.
    let mut days: HashMap<u64, Vec<Bytes>> = HashMap::new();
    let mut run: Option<(usize, u64, usize, usize)> = None; // entry, day, start, end
    let flush = |days: &mut HashMap<u64, Vec<Bytes>>, run: Option<(usize, u64, usize, usize)>| {
        if let Some((index, day, start, end)) = run {
            let data: &Bytes = &span_entries[index].data;
            days.entry(day).or_default().push(data.slice(start..end));
        }
    };
    for (index, key) in &keys {
        let day = key.start_ns / DAY_NS;
        let has_content = with_content
            .get(key.project_id)
            .and_then(|traces| traces.get(key.trace_id))
            .is_some_and(|spans| spans.contains(key.span_id));
        if has_content {
            flush(&mut days, run.take());
            let data = &span_entries[*index].data;
            let mut span = read_span(&mut Reader::new(&data[key.start..key.end]))?;
            renormalize(client, normalizer, &mut span).await?;
            let mut bytes = Vec::new();
            put_span(&mut bytes, &span);
            days.entry(day).or_default().push(bytes.into());
            continue;
        }
        match &mut run {
            Some((run_index, run_day, _, end))
                if *run_index == *index && *run_day == day && *end == key.start =>
            {
                *end = key.end;
            }
            _ => {
                flush(&mut days, run.take());
                run = Some((*index, day, key.start, key.end));
            }
        }
    }
    flush(&mut days, run.take());
    // Spans stored before their content events arrived: rewrite them with a newer version.
    let in_batch: HashSet<(&str, &str, &str)> = keys
        .iter()
        .map(|(_, key)| (key.project_id, key.trace_id, key.span_id))
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
            let mut bytes = Vec::new();
            put_span(&mut bytes, &span);
            days.entry(span.start_ns / DAY_NS)
                .or_default()
                .push(bytes.into());
        }
    }
    // One insert per day partition, as ClickHouse prefers.
    let statement = insert_statement::<SpanRow>("spans");
    for chunks in days.into_values() {
        let mut insert = client.insert_formatted_with(statement.clone());
        for chunk in chunks {
            insert.send(chunk).await.map_err(unavailable)?;
        }
        insert.end().await.map_err(unavailable)?;
    }
    insert_terms(client, &term_entries).await?;
    // The read model of every trace the batch touched: from the spans in hand for a trace
    // new to the store, else from all its stored spans.
    let mut in_hand_rows = Vec::with_capacity(keys.len());
    for (index, key) in &keys {
        let data = &span_entries[*index].data;
        in_hand_rows.push(read_span(&mut Reader::new(&data[key.start..key.end]))?);
    }
    let mut in_hand: BTreeMap<&str, HashMap<&str, Vec<&SpanRow>>> = BTreeMap::new();
    let mut stored_only: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for ((_, key), row) in keys.iter().zip(&in_hand_rows) {
        // A span normalized again with content events is stored as it was rewritten.
        if with_content
            .get(key.project_id)
            .is_some_and(|traces| traces.contains_key(key.trace_id))
        {
            stored_only
                .entry(key.project_id)
                .or_default()
                .push(key.trace_id);
            continue;
        }
        in_hand
            .entry(key.project_id)
            .or_default()
            .entry(key.trace_id)
            .or_default()
            .push(row);
    }
    for event in &events {
        stored_only
            .entry(event.project_id.as_str())
            .or_default()
            .push(event.trace_id.as_str());
    }
    let projects: BTreeSet<&str> = in_hand.keys().chain(stored_only.keys()).copied().collect();
    let nothing = HashMap::new();
    for project_id in projects {
        trace_rows::refresh(
            client,
            project_id,
            in_hand.get(project_id).unwrap_or(&nothing),
            stored_only.get(project_id).map_or(&[], Vec::as_slice),
        )
        .await?;
    }
    Ok(())
}

/// Inserts the spans' terms as spooled (one insert per batch: `span_terms` is partitioned by
/// month), and their keys into `filter_keys`.
async fn insert_terms(client: &Client, entries: &[SpoolEntry]) -> StoreResult<()> {
    if entries.iter().all(|entry| entry.rows == 0) {
        return Ok(());
    }
    let mut keys: BTreeSet<(&str, u8, String)> = BTreeSet::new();
    for entry in entries {
        let mut reader = Reader::new(&entry.data);
        for _ in 0..entry.rows {
            let row = read_term(&mut reader)?;
            if has_keys(row.kind) {
                keys.insert((entry.project_id.as_str(), row.kind, row.key));
            }
        }
    }
    let mut terms = client.insert_formatted_with(insert_statement::<TermRow>("span_terms"));
    for entry in entries {
        terms.send(entry.data.clone()).await.map_err(unavailable)?;
    }
    terms.end().await.map_err(unavailable)?;
    let rows: Vec<FilterKeyRow> = keys
        .into_iter()
        .map(|(project_id, kind, key)| FilterKeyRow {
            project_id: project_id.to_owned(),
            kind,
            key,
        })
        .collect();
    if !rows.is_empty() {
        insert(client, "filter_keys", &rows).await?;
    }
    Ok(())
}

/// A key a project's filters can name (`filter_keys`).
#[derive(Row, serde::Serialize, Deserialize)]
pub struct FilterKeyRow {
    pub project_id: String,
    pub kind: u8,
    pub key: String,
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
        .map(|event| event_from_stored(event.time_ns, event.name, &event.attributes))
        .collect::<StoreResult<_>>()?;
    let (span, _) = row.decode()?;
    let semantics = normalizer.normalize(&span, &events);
    row.set_semantics(&span, &semantics);
    Ok(())
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
        days.entry(time(&row) / DAY_NS).or_default().push(row);
    }
    for rows in days.into_values() {
        insert(client, table, &rows).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::store::clickhouse::rowbinary::tests::span_row;
    use crate::store::clickhouse::spool::SpoolFile;

    /// Delivering an entry of this project panics, as a bug in `deliver` would.
    const PANICS: &str = "panics-in-delivery";

    /// How often a delivery panicked as asked.
    static PANICKED: AtomicUsize = AtomicUsize::new(0);

    pub(super) fn panic_if_asked(entries: &[SpoolEntry]) {
        if entries.iter().any(|entry| entry.project_id == PANICS) {
            PANICKED.fetch_add(1, Ordering::SeqCst);
            panic!("delivery panics, as a test asked");
        }
    }

    /// A delivery task that panics releases its files: they are offered again (and, here,
    /// panic again), rather than staying claimed and undelivered until a restart.
    #[tokio::test]
    async fn a_panicking_delivery_releases_its_files() {
        let directory = tempfile::tempdir().unwrap();
        let spool = Arc::new(Spool::open(directory.path(), 1 << 20).unwrap());
        let mut file = SpoolFile::new();
        file.push_spans(PANICS, [&span_row("a", true)]);
        spool.append(file).unwrap();
        // Nothing listens here; the panic comes before ClickHouse would be asked anything.
        let client = Client::default().with_url("http://127.0.0.1:9");
        let delivery = tokio::spawn(run(
            client,
            Arc::clone(&spool),
            Arc::new(Normalizer::default()),
            100,
            Duration::ZERO,
        ));
        for _ in 0..100 {
            if PANICKED.load(Ordering::SeqCst) >= 2 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        delivery.abort();
        assert!(
            PANICKED.load(Ordering::SeqCst) >= 2,
            "the file was not offered again after its delivery panicked"
        );
        assert_eq!(spool.items(), 1, "still spooled, to be delivered");
        assert!(!delivery.await.unwrap_err().is_panic(), "the loop survived");
    }
}
