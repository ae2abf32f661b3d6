//! The write path: one transaction per batch, spans deduplicated by their identity, and the
//! TraceRecord of every trace that gained a span recomputed from the spans stored so far.

use std::collections::BTreeSet;

use rusqlite::{Connection, Statement, TransactionBehavior, params};

use super::read::{DIGEST_COLUMNS, digest_from_row};
use crate::model::{NormalizedSpan, TraceId, TraceRecord};
use crate::store::codec::encode_body;
use crate::store::{SpanBatch, StoreResult};

pub(super) fn write_spans(connection: &mut Connection, batches: &[SpanBatch]) -> StoreResult<()> {
    let transaction = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut touched: BTreeSet<(&str, TraceId)> = BTreeSet::new();
    {
        let mut insert = transaction.prepare_cached(INSERT_SPAN)?;
        for batch in batches {
            for span in &batch.spans {
                if insert_span(&mut insert, &batch.project_id, span)? {
                    touched.insert((batch.project_id.as_str(), span.span.trace_id));
                }
            }
        }
    }
    {
        let mut select = transaction.prepare_cached(&format!(
            "SELECT {DIGEST_COLUMNS} FROM spans WHERE project_id = ?1 AND trace_id = ?2"
        ))?;
        let mut upsert = transaction.prepare_cached(UPSERT_TRACE)?;
        for (project_id, trace_id) in touched {
            let digests = select
                .query_map(params![project_id, trace_id.as_bytes()], digest_from_row)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            let record = TraceRecord::compute(project_id, trace_id, &digests);
            upsert_trace(&mut upsert, project_id, trace_id, &record)?;
        }
    }
    transaction.commit()?;
    Ok(())
}

const INSERT_SPAN: &str = "INSERT INTO spans (
    project_id, trace_id, span_id, parent_span_id, name, kind, start_ns, end_ns, status_code,
    service_name, body, input, output, session_id, user_id, pipeline_id, llm, model,
    prompt_tokens, completion_tokens, total_tokens, prompt_cost, completion_cost, total_cost, tool
) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19,
          ?20, ?21, ?22, ?23, ?24, ?25)
ON CONFLICT (project_id, trace_id, span_id) DO NOTHING";

/// Inserts one span; `false` when it was stored before (a retry).
fn insert_span(
    insert: &mut Statement<'_>,
    project_id: &str,
    normalized: &NormalizedSpan,
) -> StoreResult<bool> {
    let span = &normalized.span;
    let semantics = &normalized.semantics;
    let digest = normalized.digest();
    let llm_json = semantics
        .llm
        .as_ref()
        .map(|llm| serde_json::to_string(llm).unwrap_or_default());
    let tool_json = semantics
        .tool
        .as_ref()
        .map(|tool| serde_json::to_string(tool).unwrap_or_default());
    let llm = digest.llm.unwrap_or_default();
    let inserted = insert.execute(params![
        project_id,
        span.trace_id.as_bytes(),
        span.span_id.as_bytes(),
        span.parent_span_id.as_ref().map(|parent| parent.as_bytes()),
        span.name,
        span.kind.to_otlp(),
        span.start_time_unix_nano as i64,
        span.end_time_unix_nano as i64,
        span.status.code.to_otlp(),
        span.service_name(),
        encode_body(span),
        semantics.input,
        semantics.output,
        semantics.session_id,
        semantics.user_id,
        semantics.pipeline_id,
        llm_json,
        llm.model,
        llm.usage.prompt,
        llm.usage.completion,
        llm.usage.total,
        llm.cost.prompt,
        llm.cost.completion,
        llm.cost.total,
        tool_json,
    ])?;
    Ok(inserted > 0)
}

const UPSERT_TRACE: &str = "INSERT INTO traces (
    project_id, trace_id, timestamp_ns, status, input, output, session_id, user_id, pipeline_id,
    models, record
) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
ON CONFLICT (project_id, trace_id) DO UPDATE SET
    timestamp_ns = excluded.timestamp_ns, status = excluded.status, input = excluded.input,
    output = excluded.output, session_id = excluded.session_id, user_id = excluded.user_id,
    pipeline_id = excluded.pipeline_id, models = excluded.models, record = excluded.record";

fn upsert_trace(
    upsert: &mut Statement<'_>,
    project_id: &str,
    trace_id: TraceId,
    record: &TraceRecord,
) -> StoreResult<()> {
    // Input and output live in their own columns only; `record` holds the rest.
    let record_json = {
        let mut without_texts = record.clone();
        without_texts.input = None;
        without_texts.output = None;
        serde_json::to_string(&without_texts).unwrap_or_default()
    };
    upsert.execute(params![
        project_id,
        trace_id.as_bytes(),
        record.timestamp_unix_nano as i64,
        record.status,
        record.input,
        record.output,
        record.session_id,
        record.user_id,
        record.pipeline_id,
        serde_json::to_string(&record.models).unwrap_or_else(|_| "[]".into()),
        record_json,
    ])?;
    Ok(())
}
