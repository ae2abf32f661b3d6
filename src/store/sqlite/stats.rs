//! The dashboard's aggregation on SQLite: one indexed scan of the window's trace rows, streamed
//! into the shared [`StatsBuilder`] (SQLite has no percentile function), which keeps 8 bytes a
//! trace per group for the percentiles and no trace.

use rusqlite::{Connection, params};

use crate::store::StoreResult;
use crate::store::trace_stats::{StatsBuilder, StatsQuery, TraceFacts, TraceStats};

pub(super) fn trace_stats(
    connection: &Connection,
    project_id: &str,
    query: &StatsQuery,
) -> StoreResult<TraceStats> {
    let mut statement = connection.prepare_cached(
        "SELECT timestamp_ns, status, json_extract(record, '$.duration_ms'),
                json_extract(record, '$.total_token_count'), json_extract(record, '$.total_cost'),
                models
         FROM traces WHERE project_id = ?1 AND timestamp_ns >= ?2 AND timestamp_ns < ?3",
    )?;
    let mut rows = statement.query(params![
        project_id,
        query.start_unix_nano.min(i64::MAX as u64) as i64,
        query.end_unix_nano.min(i64::MAX as u64) as i64
    ])?;
    let mut builder = StatsBuilder::new(*query);
    while let Some(row) = rows.next()? {
        let models = row.get_ref(5)?.as_str().unwrap_or("[]");
        builder.add(&TraceFacts {
            timestamp_unix_nano: row.get::<_, i64>(0)? as u64,
            is_error: row.get::<_, String>(1)? == "error",
            duration_ms: row.get::<_, Option<f64>>(2)?.unwrap_or(0.0),
            total_tokens: row.get::<_, Option<i64>>(3)?.unwrap_or(0),
            total_cost: row.get::<_, Option<f64>>(4)?.unwrap_or(0.0),
            models: serde_json::from_str(models).unwrap_or_default(),
        });
    }
    Ok(builder.finish())
}
