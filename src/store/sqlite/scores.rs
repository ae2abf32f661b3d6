//! Scores on the embedded store: one row per score id, written in one transaction per request.

use rusqlite::{Connection, params};

use crate::model::score::{Score, ScoreValue};
use crate::model::{SpanId, TraceId};
use crate::store::{StoreError, StoreResult};

/// Stores the scores, replacing those of the same ids; all or none.
pub(super) fn put_scores(
    connection: &mut Connection,
    project_id: &str,
    scores: &[Score],
) -> StoreResult<()> {
    let transaction = connection.transaction()?;
    {
        let mut statement = transaction.prepare_cached(
            "INSERT OR REPLACE INTO scores (project_id, id, trace_id, span_id, name, data_type,
                 number, label, comment, source, created_at_ns)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
        )?;
        for score in scores {
            let (number, label) = score.value.to_columns();
            statement.execute(params![
                project_id,
                score.id,
                score.trace_id.as_bytes(),
                score.span_id.as_ref().map(SpanId::as_bytes),
                score.name,
                score.value.data_type(),
                number,
                label,
                score.comment,
                score.source,
                score.created_at_unix_nano.min(i64::MAX as u64) as i64,
            ])?;
        }
    }
    transaction.commit()?;
    Ok(())
}

pub(super) fn delete_score(
    connection: &mut Connection,
    project_id: &str,
    id: &str,
) -> StoreResult<bool> {
    let deleted = connection.execute(
        "DELETE FROM scores WHERE project_id = ?1 AND id = ?2",
        params![project_id, id],
    )?;
    Ok(deleted > 0)
}

fn corrupt(what: &str) -> StoreError {
    StoreError::Corrupt(format!("score: bad {what}"))
}

/// The scores of some traces, each trace's oldest first.
pub(super) fn scores_of_traces(
    connection: &Connection,
    project_id: &str,
    trace_ids: &[TraceId],
) -> StoreResult<Vec<Score>> {
    let mut statement = connection.prepare_cached(
        "SELECT id, trace_id, span_id, name, data_type, number, label, comment, source,
                created_at_ns
         FROM scores WHERE project_id = ?1 AND trace_id = ?2 ORDER BY created_at_ns, id",
    )?;
    let mut scores = Vec::new();
    for trace_id in trace_ids {
        let mut rows = statement.query(params![project_id, trace_id.as_bytes()])?;
        while let Some(row) = rows.next()? {
            let data_type: String = row.get(4)?;
            let value = ScoreValue::from_columns(&data_type, row.get(5)?, row.get(6)?)
                .ok_or_else(|| corrupt("value"))?;
            let span_id: Option<Vec<u8>> = row.get(2)?;
            scores.push(Score {
                id: row.get(0)?,
                trace_id: TraceId::from_bytes(&row.get::<_, Vec<u8>>(1)?)
                    .map_err(|_| corrupt("trace id"))?,
                span_id: span_id
                    .map(|bytes| SpanId::from_bytes(&bytes))
                    .transpose()
                    .map_err(|_| corrupt("span id"))?,
                name: row.get(3)?,
                value,
                comment: row.get(7)?,
                source: row.get(8)?,
                created_at_unix_nano: row.get::<_, i64>(9)? as u64,
            });
        }
    }
    Ok(scores)
}

/// The numeric scores of a window's traces. The scores drive (CROSS JOIN keeps them the outer
/// loop): without statistics SQLite could take the window's traces outside, a million of
/// them, and scan the project's scores for each.
const SCORE_VALUES: &str = "SELECT traces.timestamp_ns, scores.name, scores.number
    FROM scores INDEXED BY scores_by_trace CROSS JOIN traces INDEXED BY traces_identity
      ON traces.project_id = scores.project_id AND traces.trace_id = scores.trace_id
    WHERE scores.project_id = ?1 AND scores.number IS NOT NULL
      AND traces.timestamp_ns >= ?2 AND traces.timestamp_ns < ?3";

/// See [`crate::store::SpanStore::score_values`].
pub(super) fn score_values(
    connection: &Connection,
    project_id: &str,
    start_unix_nano: u64,
    end_unix_nano: u64,
) -> StoreResult<Vec<(u64, String, f64)>> {
    let mut statement = connection.prepare_cached(SCORE_VALUES)?;
    let rows = statement.query_map(
        params![
            project_id,
            start_unix_nano.min(i64::MAX as u64) as i64,
            end_unix_nano.min(i64::MAX as u64) as i64
        ],
        |row| Ok((row.get::<_, i64>(0)? as u64, row.get(1)?, row.get(2)?)),
    )?;
    Ok(rows.collect::<Result<_, _>>()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn score_values_read_the_scores_then_each_ones_trace() {
        let mut connection = Connection::open_in_memory().unwrap();
        super::super::schema::migrate(&mut connection).unwrap();
        let plan: Vec<String> = connection
            .prepare(&format!("EXPLAIN QUERY PLAN {SCORE_VALUES}"))
            .unwrap()
            .query_map(params!["p", 0, 1], |row| row.get::<_, String>(3))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert!(
            plan[0].contains("scores USING INDEX scores_by_trace"),
            "{plan:?}"
        );
        assert!(
            plan[1].contains("traces USING INDEX traces_identity"),
            "{plan:?}"
        );
    }
}
