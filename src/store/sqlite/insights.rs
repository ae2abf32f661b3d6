//! Insights' scan on the embedded store: the window's trace rows (those a filter matches,
//! driven as filtered stats are; one in `sample` by rowid), each with its metadata and tags from
//! the term index and its numeric scores, sent in chunks from a reader connection.

use rusqlite::Connection;
use rusqlite::types::Value as SqlValue;
use serde::Deserialize;

use super::filter_plan::window_rows;
use crate::store::insight_traces::{CHUNK, InsightSink, InsightTrace};
use crate::store::terms::TermKind;
use crate::store::{StoreError, StoreResult};

pub(super) use crate::store::insight_traces::Scan;

/// The figures of a trace's record that insights read (one parse, not an extraction each).
#[derive(Debug, Default, Deserialize)]
struct RecordFigures {
    #[serde(default)]
    duration_ms: Option<f64>,
    #[serde(default)]
    total_token_count: Option<i64>,
    #[serde(default)]
    total_cost: Option<f64>,
    #[serde(default)]
    service_name: Option<String>,
    #[serde(default)]
    root_span_name: Option<String>,
}

pub(super) fn insight_traces(
    connection: &Connection,
    scan: &Scan<'_>,
    sink: &InsightSink,
) -> StoreResult<()> {
    let _snapshot = connection.unchecked_transaction()?;
    let project_id = scan.project_id;
    let (mut from_where, mut where_values) =
        window_rows(connection, project_id, scan.filter, scan.window)?;
    if scan.sample > 1 {
        // Rowids are given in the order traces first arrive: one in `sample` of them.
        from_where.push_str(" AND traces.rowid % ? = 0");
        where_values.push(SqlValue::Integer(scan.sample.min(i64::MAX as u64) as i64));
    }
    let mut values = vec![
        SqlValue::Text(project_id.to_owned()),
        SqlValue::Integer(i64::from(TermKind::Metadata.code())),
        SqlValue::Integer(i64::from(TermKind::Tag.code())),
    ];
    let labelled: bool = connection
        .prepare_cached(
            "SELECT EXISTS (SELECT 1 FROM filter_keys WHERE project_id = ?1 AND kind IN (?2, ?3))",
        )?
        .query_row(rusqlite::params_from_iter(values.iter()), |row| row.get(0))?;
    // A trace's metadata and tags are terms of its spans: found per span through
    // `span_terms_by_span`, only under the project's metadata and tag keys (when it has any).
    let labels = if labelled {
        "(SELECT json_group_array(json_array(keys.kind, keys.key, terms.value))
          FROM spans AS s CROSS JOIN span_terms AS terms ON terms.span_key = s.rowid
          CROSS JOIN filter_keys AS keys ON keys.id = terms.key_id
          WHERE s.trace_key = traces.rowid AND typeof(terms.value) = 'text'
            AND terms.key_id IN (SELECT id FROM filter_keys
                                 WHERE project_id = ? AND kind IN (?, ?)))"
    } else {
        values.clear();
        "NULL"
    };
    let sql = format!(
        "SELECT traces.timestamp_ns, traces.status, traces.models, traces.pipeline_id,
                traces.record, {labels},
                (SELECT json_group_array(json_array(sc.name, sc.number)) FROM scores AS sc
                 WHERE sc.project_id = traces.project_id AND sc.trace_id = traces.trace_id
                   AND sc.number IS NOT NULL)
         {from_where}"
    );
    values.extend(where_values);
    let mut statement = connection.prepare_cached(&sql)?;
    let mut rows = statement.query(rusqlite::params_from_iter(values.iter()))?;
    let mut chunk = Vec::with_capacity(CHUNK);
    while let Some(row) = rows.next()? {
        chunk.push(trace_of_row(row)?);
        if chunk.len() == CHUNK && sink.blocking_send(std::mem::take(&mut chunk)).is_err() {
            return Ok(());
        }
    }
    if !chunk.is_empty() {
        let _ = sink.blocking_send(chunk);
    }
    Ok(())
}

fn trace_of_row(row: &rusqlite::Row<'_>) -> StoreResult<InsightTrace> {
    let corrupt = |what: &str| StoreError::Corrupt(format!("trace row: {what}"));
    let text = |index| -> StoreResult<&str> {
        row.get_ref(index)?
            .as_str()
            .map_err(|error| corrupt(&error.to_string()))
    };
    // A record that cannot be read counts with no figures, as the rollup counts it.
    let figures: RecordFigures = serde_json::from_str(text(4)?).unwrap_or_default();
    let mut trace = InsightTrace {
        timestamp_unix_nano: row.get::<_, i64>(0)?.max(0) as u64,
        is_error: text(1)? == "error",
        models: serde_json::from_str(text(2)?).map_err(|_| corrupt("models"))?,
        pipeline_id: row.get(3)?,
        duration_ms: figures.duration_ms.unwrap_or(0.0),
        total_tokens: figures.total_token_count.unwrap_or(0),
        total_cost: figures.total_cost.unwrap_or(0.0),
        service_name: figures.service_name,
        root_span_name: figures.root_span_name,
        ..Default::default()
    };
    if let Some(labels) = row.get::<_, Option<String>>(5)? {
        let labels: Vec<(u8, String, String)> =
            serde_json::from_str(&labels).map_err(|_| corrupt("terms"))?;
        for (kind, key, value) in labels {
            match TermKind::from_code(kind) {
                Some(TermKind::Metadata) => trace.metadata.push((key, value)),
                Some(TermKind::Tag) => trace.tags.push(value),
                _ => {}
            }
        }
    }
    if let Some(scores) = row.get::<_, Option<String>>(6)? {
        trace.scores = serde_json::from_str(&scores).map_err(|_| corrupt("scores"))?;
    }
    Ok(trace)
}
