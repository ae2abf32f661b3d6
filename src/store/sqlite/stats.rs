//! The dashboard's aggregation on SQLite, in SQL: counts and sums per group, and the
//! nearest-rank percentiles of `store::trace_stats` (ClickHouse's `quantileExact`) from window
//! functions. SQLite sorts each group with its own bounded sorter, spilling to temporary files,
//! so a long window costs time, never memory proportional to its traces (the reference
//! [`aggregate`](crate::store::trace_stats::aggregate) holds them all, and the tests check the
//! two agree).

use rusqlite::{Connection, ToSql};

use crate::store::StoreResult;
use crate::store::trace_stats::{ModelStats, StatsBucket, StatsFigures, StatsQuery, TraceStats};

/// The facts of the window's traces; `?1` project, `?2`..`?3` the window.
const TRACES: &str = "
    SELECT t.timestamp_ns AS ts, t.status = 'error' AS err,
           coalesce(json_extract(t.record, '$.duration_ms'), 0.0) AS d,
           coalesce(json_extract(t.record, '$.total_token_count'), 0) AS tok,
           coalesce(json_extract(t.record, '$.total_cost'), 0.0) AS cost
    FROM traces AS t
    WHERE t.project_id = ?1 AND t.timestamp_ns >= ?2 AND t.timestamp_ns < ?3";

/// The same, once per model of each trace.
const TRACES_BY_MODEL: &str = "
    SELECT m.model AS model,
           t.status = 'error' AS err,
           coalesce(json_extract(t.record, '$.duration_ms'), 0.0) AS d,
           coalesce(json_extract(t.record, '$.total_token_count'), 0) AS tok,
           coalesce(json_extract(t.record, '$.total_cost'), 0.0) AS cost
    FROM trace_models AS m
    JOIN traces AS t ON t.project_id = m.project_id AND t.trace_id = m.trace_id
    WHERE m.project_id = ?1 AND m.timestamp_ns >= ?2 AND m.timestamp_ns < ?3";

/// The figures of `rows` per value of `group`: the rank of a percentile is
/// `floor(level * n) + 1`, the level times `n` in floating point as `quantileExact` does.
fn figures_sql(rows: &str, group: &str) -> String {
    format!(
        "WITH w AS ({rows}),
         r AS (SELECT {group} AS g, err, d, tok, cost,
                      row_number() OVER (PARTITION BY {group} ORDER BY d) AS rn,
                      count(*) OVER (PARTITION BY {group}) AS n
               FROM w)
         SELECT g, count(*), total(err), total(tok), total(cost),
                max(CASE WHEN rn = min(n, CAST(0.5 * n AS INTEGER) + 1) THEN d END),
                max(CASE WHEN rn = min(n, CAST(0.95 * n AS INTEGER) + 1) THEN d END)
         FROM r GROUP BY g ORDER BY g"
    )
}

/// Runs a figures query; returns each group's key and figures.
fn figures<K: rusqlite::types::FromSql>(
    connection: &Connection,
    sql: &str,
    params: &[&dyn ToSql],
) -> StoreResult<Vec<(K, StatsFigures)>> {
    let mut statement = connection.prepare_cached(sql)?;
    let rows = statement.query_map(params, |row| {
        Ok((
            row.get::<_, K>(0)?,
            StatsFigures {
                traces: row.get::<_, i64>(1)? as u64,
                errors: row.get::<_, f64>(2)? as u64,
                tokens: row.get::<_, f64>(3)? as i64,
                cost: row.get(4)?,
                p50_ms: row.get(5)?,
                p95_ms: row.get(6)?,
            },
        ))
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

pub(super) fn trace_stats(
    connection: &Connection,
    project_id: &str,
    query: &StatsQuery,
) -> StoreResult<TraceStats> {
    let start = query.start_unix_nano.min(i64::MAX as u64) as i64;
    let end = query.end_unix_nano.min(i64::MAX as u64) as i64;
    let width = query.bucket_nanos.clamp(1, i64::MAX as u64) as i64;
    let window: [&dyn ToSql; 3] = [&project_id, &start, &end];
    let buckets = figures::<i64>(
        connection,
        &figures_sql(TRACES, "(ts - ?2) / ?4"),
        &[&project_id, &start, &end, &width],
    )?;
    let totals = figures::<i64>(connection, &figures_sql(TRACES, "0"), &window)?;
    let mut models =
        figures::<String>(connection, &figures_sql(TRACES_BY_MODEL, "model"), &window)?;
    models.sort_by(|a, b| b.1.traces.cmp(&a.1.traces).then_with(|| a.0.cmp(&b.0)));
    Ok(TraceStats {
        buckets: buckets
            .into_iter()
            .map(|(index, figures)| StatsBucket {
                index: index as u64,
                figures,
            })
            .collect(),
        totals: totals
            .into_iter()
            .next()
            .map(|(_, figures)| figures)
            .unwrap_or_default(),
        models: models
            .into_iter()
            .map(|(model, figures)| ModelStats { model, figures })
            .collect(),
    })
}
