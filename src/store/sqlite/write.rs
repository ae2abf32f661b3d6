//! The write path: one transaction per batch, spans deduplicated by their identity, and the
//! TraceRecord of every trace that gained a span recomputed from the spans stored so far
//! (`trace_rows`).
//! GenAI content events from the logs signal are kept per span; a span is normalized with
//! them whether it arrives before or after them.

use std::borrow::Cow;
use std::collections::{BTreeSet, HashMap};

use crate::store::content_events::{StoredContent, event_from_stored};
use rusqlite::types::ToSql;
use rusqlite::{
    CachedStatement, Connection, OptionalExtension, Statement, Transaction, TransactionBehavior,
    params, params_from_iter,
};

use super::blocks::{BlockWriter, BodyReader};
use super::read::{SPAN_COLUMNS, stored_span_from_row};
use super::term_index::TermWriter;
use super::trace_rows::{OldRow, Touched, TraceKey, Written, WrittenSpans, recompute_traces};
use crate::model::{EncodedBody, Event, LlmCall, Span, SpanId, SpanSemantics, TraceId};
use crate::normalize::Normalizer;
use crate::store::codec::{Compression, encode_stored_span};
use crate::store::{ContentEventBatch, SpanBatch, StoreResult};

pub(super) fn write_spans(
    connection: &mut Connection,
    batches: &[SpanBatch],
    normalizer: &Normalizer,
    compression: Compression,
) -> StoreResult<()> {
    let transaction = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut rows = TraceRows::new(&transaction)?;
    let mut touched = Touched::new();
    let mut written = Written::new();
    {
        let mut insert = transaction.prepare_cached(INSERT_SPAN)?;
        let mut terms = TermWriter::new(&transaction)?;
        let mut blocks = BlockWriter::new(&transaction);
        let mut events = transaction.prepare_cached(SELECT_CONTENT_EVENTS)?;
        // Most deployments never send content on the logs signal: one look saves a lookup
        // per span.
        let any_content = transaction
            .prepare_cached("SELECT EXISTS (SELECT 1 FROM span_content_events)")?
            .query_row([], |row| row.get::<_, bool>(0))?;
        for (index, batch) in batches.iter().enumerate() {
            for normalized in &batch.spans {
                let span = &normalized.span;
                let trace = (batch.project_id.as_str(), span.trace_id);
                let row = rows.find_or_allocate(trace)?;
                let content = if any_content {
                    content_events(&mut events, &batch.project_id, span.trace_id, span.span_id)?
                } else {
                    Vec::new()
                };
                let renormalized =
                    (!content.is_empty()).then(|| normalizer.normalize(span, &content));
                // Content events change the semantics: the blob encoded with the span's own is
                // stale then.
                let encoded;
                // The block this span's body points into, written once a span is stored in it.
                let mut in_block = None;
                let stored = match (&renormalized, &normalized.encoded_body) {
                    (None, Some(EncodedBody::Whole(stored))) => stored,
                    (None, Some(EncodedBody::Part { block, start, len })) => {
                        in_block = Some(block);
                        encoded = blocks.body(block, *start, *len)?;
                        &encoded
                    }
                    (renormalized, _) => {
                        let semantics = renormalized.as_ref().unwrap_or(&normalized.semantics);
                        encoded = encode_stored_span(span, semantics, compression);
                        &encoded
                    }
                };
                let inserted = insert_span(
                    &mut insert,
                    &batch.project_id,
                    row.key,
                    span,
                    renormalized.as_ref().unwrap_or(&normalized.semantics),
                    stored,
                )?;
                if inserted {
                    let span_key = transaction.last_insert_rowid();
                    terms.write(&batch.project_id, (row.key, span_key), span)?;
                    if let Some(block) = in_block {
                        blocks.stored(block)?;
                    }
                    let as_prepared = renormalized.is_none();
                    let semantics = match renormalized {
                        Some(semantics) => Cow::Owned(semantics),
                        None => Cow::Borrowed(&normalized.semantics),
                    };
                    written
                        .entry(trace)
                        .or_insert_with(|| WrittenSpans::new(index))
                        .push(index, as_prepared, span, semantics);
                    touched.insert(row.key, (trace, row.old));
                }
            }
        }
        terms.finish()?;
    }
    drop(rows);
    recompute_traces(&transaction, touched, &written, batches, compression)?;
    transaction.commit()?;
    Ok(())
}

/// A trace's row in `traces`: `key` is its rowid, by which its spans are found (`trace_key`);
/// `old` is `None` for a trace first seen in this transaction, whose row does not exist yet.
#[derive(Clone)]
struct TraceRow {
    key: i64,
    old: Option<OldRow>,
}

/// Finds the rows of the traces a transaction writes to, once per trace, and gives new traces
/// the next rowids: spans are inserted under their trace's key before the trace's row is
/// written. Only the writer holding the write lock allocates, so the keys cannot collide.
struct TraceRows<'t, 'a> {
    find: CachedStatement<'t>,
    next_key: Option<i64>,
    transaction: &'t Transaction<'t>,
    known: HashMap<TraceKey<'a>, TraceRow>,
}

impl<'t, 'a> TraceRows<'t, 'a> {
    fn new(transaction: &'t Transaction<'t>) -> StoreResult<Self> {
        Ok(Self {
            find: transaction.prepare_cached(
                "SELECT rowid, timestamp_ns, models, status, record FROM traces
                 WHERE project_id = ?1 AND trace_id = ?2",
            )?,
            next_key: None,
            transaction,
            known: HashMap::new(),
        })
    }

    /// The row of a stored trace, `None` when the trace has none.
    fn find(&mut self, trace: TraceKey<'a>) -> StoreResult<Option<TraceRow>> {
        if let Some(row) = self.known.get(&trace) {
            return Ok(Some(row.clone()));
        }
        let (project_id, trace_id) = trace;
        let found = self
            .find
            .query_row(params![project_id, trace_id.as_bytes()], |row| {
                Ok(TraceRow {
                    key: row.get(0)?,
                    old: Some(OldRow {
                        timestamp_ns: row.get(1)?,
                        models: row.get(2)?,
                        status: row.get(3)?,
                        record: row.get(4)?,
                    }),
                })
            })
            .optional()?;
        if let Some(row) = &found {
            self.known.insert(trace, row.clone());
        }
        Ok(found)
    }

    /// The row of a trace, allocated when the trace has none yet.
    fn find_or_allocate(&mut self, trace: TraceKey<'a>) -> StoreResult<TraceRow> {
        if let Some(row) = self.find(trace)? {
            return Ok(row);
        }
        let key = match self.next_key {
            Some(key) => key,
            None => self.transaction.query_row(
                "SELECT COALESCE(MAX(rowid), 0) + 1 FROM traces",
                [],
                |row| row.get(0),
            )?,
        };
        self.next_key = Some(key + 1);
        let row = TraceRow { key, old: None };
        self.known.insert(trace, row.clone());
        Ok(row)
    }
}

/// Content events older than `?1` whose span is not stored (a span is found through its
/// trace's row, by `trace_key`).
pub(super) const DELETE_ORPHAN_CONTENT: &str = "
    DELETE FROM span_content_events
    WHERE time_ns < ?1
      AND NOT EXISTS (
        SELECT 1 FROM traces JOIN spans ON spans.trace_key = traces.rowid
        WHERE traces.project_id = span_content_events.project_id
          AND traces.trace_id = span_content_events.trace_id
          AND spans.span_id = span_content_events.span_id)";

pub(super) fn write_content_events(
    connection: &mut Connection,
    batches: &[ContentEventBatch],
    normalizer: &Normalizer,
    compression: Compression,
) -> StoreResult<()> {
    let transaction = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut changed_spans: BTreeSet<(&str, TraceId, SpanId)> = BTreeSet::new();
    {
        let mut insert = transaction.prepare_cached(INSERT_CONTENT_EVENT)?;
        for batch in batches {
            for content in &batch.events {
                let stored = StoredContent::of(content);
                let inserted = insert.execute(params![
                    batch.project_id,
                    content.trace_id.as_bytes(),
                    content.span_id.as_bytes(),
                    content.event.time_unix_nano as i64,
                    content.event.name,
                    stored.attributes,
                    &stored.fingerprint[..],
                ])?;
                if inserted > 0 {
                    changed_spans.insert((&batch.project_id, content.trace_id, content.span_id));
                }
            }
        }
    }
    let mut touched = Touched::new();
    {
        let mut rows = TraceRows::new(&transaction)?;
        let mut select_span = transaction.prepare_cached(&format!(
            "SELECT {SPAN_COLUMNS} FROM spans INDEXED BY spans_by_trace
             WHERE project_id = ?1 AND trace_key = ?2 AND span_id = ?3"
        ))?;
        let mut events = transaction.prepare_cached(SELECT_CONTENT_EVENTS)?;
        let mut update = transaction.prepare_cached(UPDATE_SEMANTICS)?;
        let mut bodies = BodyReader::new(&transaction);
        for (project_id, trace_id, span_id) in changed_spans {
            // No row: the trace has no span stored yet.
            let Some(row) = rows.find((project_id, trace_id))? else {
                continue;
            };
            let stored = select_span
                .query_row(params![project_id, row.key, span_id.as_bytes()], |row| {
                    Ok(stored_span_from_row(row, &mut bodies))
                })
                .optional()?;
            // The span has not arrived yet: it is normalized with these events when it does.
            let Some(stored) = stored.transpose()? else {
                continue;
            };
            let content = content_events(&mut events, project_id, trace_id, span_id)?;
            let semantics = normalizer.normalize(&stored.span, &content);
            let derived = DerivedColumns::of(&semantics);
            let body = encode_stored_span(&stored.span, &semantics, compression);
            let key: [&dyn ToSql; 4] = [&project_id, &row.key, &span_id.as_bytes(), &body];
            update.execute(params_from_iter(key.into_iter().chain(derived.params())))?;
            touched.insert(row.key, ((project_id, trace_id), row.old));
        }
    }
    recompute_traces(&transaction, touched, &Written::new(), &[], compression)?;
    transaction.commit()?;
    Ok(())
}

const INSERT_CONTENT_EVENT: &str = "INSERT INTO span_content_events
    (project_id, trace_id, span_id, time_ns, name, attributes, fingerprint)
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
    ON CONFLICT (project_id, trace_id, span_id, fingerprint) DO NOTHING";

const SELECT_CONTENT_EVENTS: &str = "SELECT time_ns, name, attributes FROM span_content_events
    WHERE project_id = ?1 AND trace_id = ?2 AND span_id = ?3 ORDER BY time_ns, rowid";

fn content_events(
    statement: &mut Statement<'_>,
    project_id: &str,
    trace_id: TraceId,
    span_id: SpanId,
) -> StoreResult<Vec<Event>> {
    let rows = statement
        .query_map(
            params![project_id, trace_id.as_bytes(), span_id.as_bytes()],
            |row| {
                Ok((
                    row.get::<_, i64>(0)?,
                    row.get::<_, String>(1)?,
                    row.get::<_, String>(2)?,
                ))
            },
        )?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    rows.into_iter()
        .map(|(time, name, attributes)| event_from_stored(time as u64, name, &attributes))
        .collect()
}

/// The span columns that hold what normalization read, beside the semantics kept whole in the
/// body (formats 2 and 3): what queries filter and sum by.
struct DerivedColumns<'a> {
    session_id: Option<&'a str>,
    user_id: Option<&'a str>,
    pipeline_id: Option<&'a str>,
    model: Option<&'a str>,
    prompt_tokens: Option<i64>,
    completion_tokens: Option<i64>,
    total_tokens: Option<i64>,
    prompt_cost: Option<f64>,
    completion_cost: Option<f64>,
    total_cost: Option<f64>,
    is_llm: bool,
    tool_name: Option<&'a str>,
    llm_provider: Option<&'a str>,
    llm_operation: Option<&'a str>,
}

impl<'a> DerivedColumns<'a> {
    /// The 14 columns, in the order both statements list them.
    fn params(&self) -> [&dyn ToSql; 14] {
        [
            &self.session_id,
            &self.user_id,
            &self.pipeline_id,
            &self.model,
            &self.prompt_tokens,
            &self.completion_tokens,
            &self.total_tokens,
            &self.prompt_cost,
            &self.completion_cost,
            &self.total_cost,
            &self.is_llm,
            &self.tool_name,
            &self.llm_provider,
            &self.llm_operation,
        ]
    }

    fn of(semantics: &'a SpanSemantics) -> Self {
        let llm = semantics.llm.as_ref();
        Self {
            session_id: semantics.session_id.as_deref(),
            user_id: semantics.user_id.as_deref(),
            pipeline_id: semantics.pipeline_id.as_deref(),
            model: llm.and_then(LlmCall::model),
            prompt_tokens: llm.and_then(|llm| llm.usage.prompt),
            completion_tokens: llm.and_then(|llm| llm.usage.completion),
            total_tokens: llm.and_then(|llm| llm.usage.total),
            prompt_cost: llm.and_then(|llm| llm.cost.prompt),
            completion_cost: llm.and_then(|llm| llm.cost.completion),
            total_cost: llm.and_then(|llm| llm.cost.total),
            is_llm: llm.is_some(),
            tool_name: semantics.tool.as_ref().map(|tool| tool.name.as_str()),
            llm_provider: llm.and_then(|llm| llm.provider.as_deref()),
            llm_operation: llm.and_then(|llm| llm.operation.as_deref()),
        }
    }
}

/// `input`, `output`, `llm` and `tool` stay NULL: the body holds them (from format 2 on).
const INSERT_SPAN: &str = "INSERT INTO spans (
    project_id, trace_id, span_id, parent_span_id, name, kind, start_ns, end_ns, status_code,
    service_name, body, trace_key, session_id, user_id, pipeline_id, model, prompt_tokens,
    completion_tokens, total_tokens, prompt_cost, completion_cost, total_cost, is_llm, tool_name,
    llm_provider, llm_operation
) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19,
          ?20, ?21, ?22, ?23, ?24, ?25, ?26)
ON CONFLICT (trace_key, span_id) DO NOTHING";

pub(super) const UPDATE_SEMANTICS: &str = "UPDATE spans INDEXED BY spans_by_trace SET
    body = ?4, input = NULL, output = NULL, llm = NULL, tool = NULL,
    session_id = ?5, user_id = ?6, pipeline_id = ?7, model = ?8, prompt_tokens = ?9,
    completion_tokens = ?10, total_tokens = ?11, prompt_cost = ?12, completion_cost = ?13,
    total_cost = ?14, is_llm = ?15, tool_name = ?16, llm_provider = ?17, llm_operation = ?18
WHERE project_id = ?1 AND trace_key = ?2 AND span_id = ?3";

/// Inserts one span with its encoded body; `false` when it was stored before (a retry).
fn insert_span(
    insert: &mut Statement<'_>,
    project_id: &str,
    trace_key: i64,
    span: &Span,
    semantics: &SpanSemantics,
    body: &[u8],
) -> StoreResult<bool> {
    let derived = DerivedColumns::of(semantics);
    let parent = span.parent_span_id.as_ref().map(|parent| parent.as_bytes());
    let kind = span.kind.to_otlp();
    let start = span.start_time_unix_nano as i64;
    let end = span.end_time_unix_nano as i64;
    let status = span.status.code.to_otlp();
    let service_name = span.service_name();
    // A BLOB in the TEXT column: SQLite keeps blobs as they are; the reader accepts both.
    let columns: [&dyn ToSql; 12] = [
        &project_id,
        &span.trace_id.as_bytes(),
        &span.span_id.as_bytes(),
        &parent,
        &span.name,
        &kind,
        &start,
        &end,
        &status,
        &service_name,
        &body,
        &trace_key,
    ];
    let inserted = insert.execute(params_from_iter(
        columns.into_iter().chain(derived.params()),
    ))?;
    Ok(inserted > 0)
}
