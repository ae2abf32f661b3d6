//! Trace rows: each trace's TraceRecord in `traces` (and its models in `trace_models`),
//! computed from the spans a transaction wrote and those stored before, or prepared by the
//! receivers for a trace whose spans all came in one request.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};

use rusqlite::{Statement, Transaction, params};

use super::blocks::BodyReader;
use super::read::{DIGEST_COLUMNS, digest_from_row};
use super::rollup::{RollupChanges, facts_of_row};
use super::text::stored_text;
use crate::model::{NormalizedSpan, Span, SpanDigest, SpanSemantics, TraceId, TraceRecord};
use crate::store::codec::Compression;
use crate::store::trace_stats::TraceFacts;
use crate::store::{PreparedTraces, SpanBatch, StoreError, StoreResult};

/// A trace as the writer finds it: its project and id.
pub(super) type TraceKey<'a> = (&'a str, TraceId);
/// What a trace's row in `traces` held before this transaction: what its `trace_models` rows
/// are keyed by, and what it counted in the rollup.
#[derive(Clone)]
pub(super) struct OldRow {
    pub(super) timestamp_ns: i64,
    pub(super) models: String,
    pub(super) status: String,
    pub(super) record: String,
}

/// The traces that gained a span or changed, by key: recomputed in the order of their rows.
pub(super) type Touched<'a> = BTreeMap<i64, (TraceKey<'a>, Option<OldRow>)>;

/// The spans a transaction wrote, by trace: recomputing a trace new in the transaction needs
/// nothing else, and one that had spans before takes these spans' texts from here rather than
/// decompressing what was just written.
pub(super) type Written<'a> = HashMap<TraceKey<'a>, WrittenSpans<'a>>;

/// The spans a transaction wrote to one trace, with the semantics they were stored with.
pub(super) struct WrittenSpans<'a> {
    /// The batch all of them came from, as it normalized them: the batch's prepared row of the
    /// trace may hold then. `None` once they come from two batches, or a span was normalized
    /// again here with its content events.
    batch: Option<usize>,
    spans: Vec<(&'a Span, Cow<'a, SpanSemantics>)>,
}

impl<'a> WrittenSpans<'a> {
    pub(super) fn new(batch: usize) -> Self {
        Self {
            batch: Some(batch),
            spans: Vec::new(),
        }
    }

    pub(super) fn push(
        &mut self,
        batch: usize,
        as_prepared: bool,
        span: &'a Span,
        semantics: Cow<'a, SpanSemantics>,
    ) {
        if !as_prepared || self.batch != Some(batch) {
            self.batch = None;
        }
        self.spans.push((span, semantics));
    }

    fn digests(&self) -> Vec<SpanDigest> {
        self.spans
            .iter()
            .map(|(span, semantics)| SpanDigest::of(span, semantics))
            .collect()
    }

    /// The row `batches` prepared for this trace, if its spans are exactly the ones written:
    /// all from that batch, as normalized there, from one part of it only, and as many as the
    /// row was computed from (a span the part holds twice, or one stored before, is written
    /// once or not at all).
    fn prepared_row<'b>(
        &self,
        batches: &'b [SpanBatch],
        trace_id: TraceId,
    ) -> Option<&'b TraceColumns> {
        let mut rows = self.prepared_rows(batches, trace_id)?;
        let row = rows.next()?;
        let one_part = rows.next().is_none();
        (one_part && row.span_count == self.spans.len() as u64).then_some(row)
    }

    /// The rows the batch of these spans prepared for this trace, one per part that held it.
    fn prepared_rows<'b>(
        &self,
        batches: &'b [SpanBatch],
        trace_id: TraceId,
    ) -> Option<impl Iterator<Item = &'b TraceColumns>> {
        Some(
            batches
                .get(self.batch?)?
                .prepared
                .iter()
                .filter_map(move |part| match part {
                    PreparedTraces::Sqlite(rows) => rows.0.get(&trace_id),
                }),
        )
    }
}

/// The rows of one request's traces, each computed from the request's spans alone, on the
/// receiver's thread rather than in the writer: a trace's row is taken from here when the trace
/// is new and every span written to it came from this request ([`WrittenSpans::prepared_row`]).
/// Made by [`prepare_rows`]; else the writer computes the row.
pub struct PreparedRows(HashMap<TraceId, TraceColumns>);

impl std::fmt::Debug for PreparedRows {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(formatter, "PreparedRows({} traces)", self.0.len())
    }
}

/// The rows of the traces of `spans`, one request's, as if each trace held only these spans.
pub(super) fn prepare_rows(
    project_id: &str,
    spans: &[NormalizedSpan],
    compression: Compression,
) -> PreparedRows {
    let mut by_trace: HashMap<TraceId, Vec<SpanDigest>> = HashMap::new();
    for normalized in spans {
        by_trace
            .entry(normalized.span.trace_id)
            .or_default()
            .push(SpanDigest::of(&normalized.span, &normalized.semantics));
    }
    let rows = by_trace
        .into_iter()
        .map(|(trace_id, digests)| {
            let record = TraceRecord::compute(project_id, trace_id, &digests);
            (trace_id, TraceColumns::of(record, compression, None))
        })
        .collect();
    PreparedRows(rows)
}

/// A trace's row as `INSERT_TRACE` and `UPDATE_TRACE` write it, from its record.
pub(super) struct TraceColumns {
    timestamp_ns: i64,
    status: String,
    /// As [`stored_text`] keeps them, with the texts themselves.
    input: (rusqlite::types::Value, Option<String>),
    output: (rusqlite::types::Value, Option<String>),
    session_id: Option<String>,
    user_id: Option<String>,
    pipeline_id: Option<String>,
    models_json: String,
    /// The record without input and output, which live in their own columns only.
    record_json: String,
    span_count: u64,
    /// What the row counts in the rollup, read back from the row's text as a later
    /// transaction that replaces the row reads it; its models are the row's.
    facts: TraceFacts,
}

impl TraceColumns {
    /// The row of `record`. A text equal to the one a receiver already stored for the trace in
    /// `prepared` is taken from there: a trace whose root comes after its children (as SDKs
    /// send them) takes its texts from the root, and the writer need not compress them again.
    fn of(mut record: TraceRecord, compression: Compression, prepared: Option<&Self>) -> Self {
        let stored =
            |text: Option<String>, prepared: Option<&(rusqlite::types::Value, _)>| match prepared {
                Some((value, prepared_text)) if *prepared_text == text => (value.clone(), text),
                _ => (stored_text(text.as_deref(), compression), text),
            };
        let input = stored(record.input.take(), prepared.map(|row| &row.input));
        let output = stored(record.output.take(), prepared.map(|row| &row.output));
        let record_json = serde_json::to_string(&record).unwrap_or_default();
        let models_json = serde_json::to_string(&record.models).unwrap_or_else(|_| "[]".into());
        let facts = facts_of_row(
            record.timestamp_unix_nano as i64,
            &record.status,
            record.models,
            &record_json,
        );
        Self {
            timestamp_ns: record.timestamp_unix_nano as i64,
            status: record.status,
            input,
            output,
            session_id: record.session_id,
            user_id: record.user_id,
            pipeline_id: record.pipeline_id,
            models_json,
            record_json,
            span_count: record.span_count,
            facts,
        }
    }
}

/// Recomputes the TraceRecord of each trace from its stored spans, and the rollup cells their
/// rows count in.
pub(super) fn recompute_traces(
    transaction: &Transaction<'_>,
    touched: Touched<'_>,
    written: &Written<'_>,
    batches: &[SpanBatch],
    compression: Compression,
) -> StoreResult<()> {
    // The text columns are empty for spans whose semantics live in their body (from format 2
    // on): `is_llm` is set for exactly those rows.
    let mut select = transaction.prepare_cached(&format!(
        "SELECT {DIGEST_COLUMNS}, rowid, is_llm IS NOT NULL FROM spans WHERE trace_key = ?1"
    ))?;
    let mut select_body = transaction.prepare_cached("SELECT body FROM spans WHERE rowid = ?1")?;
    let mut bodies = BodyReader::new(transaction);
    let mut insert = transaction.prepare_cached(INSERT_TRACE)?;
    let mut update = transaction.prepare_cached(UPDATE_TRACE)?;
    // Stamps for the text indexer (search.rs), read inside the write transaction rather than
    // kept in memory, so that they increase whoever writes.
    let mut text_seq: i64 = transaction
        .prepare_cached("SELECT COALESCE(MAX(text_seq), 0) FROM traces")?
        .query_row([], |row| row.get(0))?;
    // By primary key: an index by trace id would take each trace to a random page.
    let mut forget_model = transaction.prepare_cached(
        "DELETE FROM trace_models
         WHERE project_id = ?1 AND model = ?2 AND timestamp_ns = ?3 AND trace_id = ?4",
    )?;
    let mut add_model = transaction.prepare_cached(
        "INSERT OR IGNORE INTO trace_models (project_id, model, timestamp_ns, trace_id)
         VALUES (?1, ?2, ?3, ?4)",
    )?;
    let mut rollup = RollupChanges::default();
    for (trace_key, (key, old)) in touched {
        let (project_id, trace_id) = key;
        let spans = written.get(&key);
        let prepared = match (spans, &old) {
            (Some(spans), None) => spans.prepared_row(batches, trace_id),
            _ => None,
        };
        let computed;
        let row = match prepared {
            Some(row) => row,
            None => {
                let digests = match spans {
                    // No record yet: every span of the trace was written by this transaction.
                    Some(spans) if old.is_none() => spans.digests(),
                    spans => stored_digests_of(
                        &mut select,
                        (&mut select_body, &mut bodies),
                        trace_key,
                        spans,
                    )?,
                };
                let record = TraceRecord::compute(project_id, trace_id, &digests);
                // The texts of a row a receiver prepared for the trace's spans of this batch,
                // though the trace had spans before.
                let texts_from = spans
                    .and_then(|spans| spans.prepared_rows(batches, trace_id))
                    .and_then(|mut rows| rows.next());
                computed = TraceColumns::of(record, compression, texts_from);
                &computed
            }
        };
        text_seq += 1;
        let statement = if old.is_none() {
            &mut insert
        } else {
            &mut update
        };
        write_trace(statement, trace_key, project_id, trace_id, row, text_seq)?;
        if let Some(old) = old {
            let models: Vec<String> = serde_json::from_str(&old.models)
                .map_err(|error| StoreError::Corrupt(format!("trace models: {error}")))?;
            for model in &models {
                forget_model.execute(params![
                    project_id,
                    model,
                    old.timestamp_ns,
                    trace_id.as_bytes()
                ])?;
            }
            let old_facts = facts_of_row(old.timestamp_ns, &old.status, models, &old.record);
            rollup.retract(project_id, &old_facts);
        }
        rollup.add(project_id, &row.facts);
        for model in &row.facts.models {
            add_model.execute(params![
                project_id,
                model,
                row.timestamp_ns,
                trace_id.as_bytes()
            ])?;
        }
    }
    rollup.write(transaction)
}

/// The digests of every stored span of a trace, read back; the texts of spans whose semantics
/// are in their body come from `batch` (this batch's spans) or from the body. When the trace's
/// root is in `batch` with an input and an output, the record takes those, and the other
/// spans' bodies are not read for theirs (the usual case of a root sent after its children).
fn stored_digests_of(
    select: &mut Statement<'_>,
    (select_body, bodies): (&mut Statement<'_>, &mut BodyReader<'_>),
    trace_key: i64,
    batch: Option<&WrittenSpans<'_>>,
) -> StoreResult<Vec<SpanDigest>> {
    let rows = select
        .query_map([trace_key], |row| {
            Ok((
                digest_from_row(row)?,
                row.get::<_, i64>(21)?,
                row.get::<_, bool>(22)?,
            ))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let written = |digest: &SpanDigest| {
        batch.and_then(|batch| {
            batch
                .spans
                .iter()
                .find(|(span, _)| Some(span.span_id) == digest.span_id)
        })
    };
    let mut digests = Vec::with_capacity(rows.len());
    let mut unread = Vec::new();
    for (mut digest, rowid, texts_in_body) in rows {
        if texts_in_body {
            match written(&digest) {
                Some((_, semantics)) => {
                    (digest.input, digest.output) =
                        (semantics.input.clone(), semantics.output.clone());
                }
                None => unread.push((digests.len(), rowid)),
            }
        }
        digests.push(digest);
    }
    let root_has_texts = TraceRecord::root(&digests).is_some_and(|root| {
        root.input.is_some() && root.output.is_some() && written(root).is_some()
    });
    if !root_has_texts {
        for (index, rowid) in unread {
            let digest = &mut digests[index];
            (digest.input, digest.output) = select_body.query_row([rowid], |row| {
                let body = bodies.read(row.get_ref(0)?.as_bytes()?);
                Ok(body.and_then(|body| body.texts()))
            })??;
        }
    }
    Ok(digests)
}

/// A new trace's row, at the rowid its spans were stored under (?13).
const INSERT_TRACE: &str = "INSERT INTO traces (
    project_id, trace_id, timestamp_ns, status, input, output, session_id, user_id, pipeline_id,
    models, record, text_seq, rowid
) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)";

/// A stored trace takes the new `text_seq` (?12) when its input or output changed: the text
/// indexer re-indexes what was stamped after its mark. (On the right of `SET`, column names are
/// the row as it was.)
const UPDATE_TRACE: &str = "UPDATE traces SET
    timestamp_ns = ?3, status = ?4, input = ?5, output = ?6, session_id = ?7, user_id = ?8,
    pipeline_id = ?9, models = ?10, record = ?11,
    text_seq = CASE WHEN input IS NOT ?5 OR output IS NOT ?6 THEN ?12 ELSE text_seq END
WHERE rowid = ?13 AND project_id = ?1 AND trace_id = ?2";

/// Writes a trace's row with `statement`, `INSERT_TRACE` or `UPDATE_TRACE`.
fn write_trace(
    statement: &mut Statement<'_>,
    trace_key: i64,
    project_id: &str,
    trace_id: TraceId,
    row: &TraceColumns,
    text_seq: i64,
) -> StoreResult<()> {
    let changed = statement.execute(params![
        project_id,
        trace_id.as_bytes(),
        row.timestamp_ns,
        row.status,
        row.input.0,
        row.output.0,
        row.session_id,
        row.user_id,
        row.pipeline_id,
        row.models_json,
        row.record_json,
        text_seq,
        trace_key,
    ])?;
    if changed != 1 {
        return Err(StoreError::Corrupt(format!(
            "trace row {trace_key} is not the row of its trace"
        )));
    }
    Ok(())
}
