//! Alerts on the embedded store (migration 15): rules, their states and events, and the lease
//! that names the one server that evaluates them (`leases`: holder and expiry, changed in an
//! immediate transaction, so processes sharing the file agree).

use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, Row, TransactionBehavior, params};

use super::SqliteStore;
use crate::model::alert::{
    AlertEvent, AlertMetric, AlertOp, AlertRule, AlertRuleSpec, AlertRuleState, AlertState,
};
use crate::model::time::now_unix_nano;
use crate::store::{AlertStore, LeaseGrant, StoreError, StoreResult};

fn corrupt(what: &str) -> StoreError {
    StoreError::Corrupt(format!("alert: bad {what}"))
}

/// Nanoseconds as SQLite's signed integer.
fn nanos(value: u64) -> i64 {
    value.min(i64::MAX as u64) as i64
}

const RULE_COLUMNS: &str = "project_id, id, name, metric, filter, window_s, op, threshold, \
    min_traces, webhook_url, secret, created_at_ns, updated_at_ns";

fn rule_from_row(row: &Row<'_>) -> StoreResult<AlertRule> {
    let metric: String = row.get(3)?;
    let op: String = row.get(6)?;
    Ok(AlertRule {
        project_id: row.get(0)?,
        id: row.get(1)?,
        spec: AlertRuleSpec {
            name: row.get(2)?,
            metric: AlertMetric::parse(&metric).ok_or_else(|| corrupt("metric"))?,
            filter: row.get(4)?,
            window_seconds: row.get::<_, i64>(5)? as u64,
            op: AlertOp::parse(&op).ok_or_else(|| corrupt("op"))?,
            threshold: row.get(7)?,
            min_traces: row.get::<_, Option<i64>>(8)?.map(|traces| traces as u64),
            webhook_url: row.get(9)?,
        },
        secret: row.get(10)?,
        created_at_unix_nano: row.get::<_, i64>(11)? as u64,
        updated_at_unix_nano: row.get::<_, i64>(12)? as u64,
    })
}

fn state_from_row(row: &Row<'_>) -> StoreResult<AlertRuleState> {
    let state: String = row.get(2)?;
    Ok(AlertRuleState {
        project_id: row.get(0)?,
        rule_id: row.get(1)?,
        state: AlertState::parse(&state).ok_or_else(|| corrupt("state"))?,
        value: row.get(3)?,
        changed_at_unix_nano: row.get::<_, i64>(4)? as u64,
        transitions: row.get::<_, i64>(5)? as u64,
    })
}

const EVENT_COLUMNS: &str = "id, project_id, rule_id, state, value, threshold, at_ns, payload, \
    attempts, delivered, finished, last_error, last_attempt_ns";

fn event_from_row(row: &Row<'_>) -> StoreResult<AlertEvent> {
    let state: String = row.get(3)?;
    Ok(AlertEvent {
        id: row.get(0)?,
        project_id: row.get(1)?,
        rule_id: row.get(2)?,
        state: AlertState::parse(&state).ok_or_else(|| corrupt("event state"))?,
        value: row.get(4)?,
        threshold: row.get(5)?,
        at_unix_nano: row.get::<_, i64>(6)? as u64,
        payload: row.get(7)?,
        attempts: row.get::<_, i64>(8)? as u32,
        delivered: row.get::<_, i64>(9)? != 0,
        finished: row.get::<_, i64>(10)? != 0,
        last_error: row.get(11)?,
        last_attempt_unix_nano: row.get::<_, Option<i64>>(12)?.map(|at| at as u64),
    })
}

/// Rows of a query, each read by `read`.
fn collect<T>(
    connection: &Connection,
    sql: &str,
    parameters: impl rusqlite::Params,
    read: fn(&Row<'_>) -> StoreResult<T>,
) -> StoreResult<Vec<T>> {
    let mut statement = connection.prepare_cached(sql)?;
    let mut rows = statement.query(parameters)?;
    let mut values = Vec::new();
    while let Some(row) = rows.next()? {
        values.push(read(row)?);
    }
    Ok(values)
}

fn write_event(connection: &Connection, event: &AlertEvent) -> StoreResult<()> {
    connection.execute(
        &format!(
            "INSERT INTO alert_events ({EVENT_COLUMNS})
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)
             ON CONFLICT (id) DO UPDATE SET
                 attempts = max(attempts, excluded.attempts),
                 delivered = max(delivered, excluded.delivered),
                 finished = max(finished, excluded.finished),
                 last_error = excluded.last_error,
                 last_attempt_ns = excluded.last_attempt_ns"
        ),
        params![
            event.id,
            event.project_id,
            event.rule_id,
            event.state.as_str(),
            event.value,
            event.threshold,
            nanos(event.at_unix_nano),
            event.payload,
            i64::from(event.attempts),
            i64::from(event.delivered),
            i64::from(event.finished),
            event.last_error,
            event.last_attempt_unix_nano.map(nanos),
        ],
    )?;
    Ok(())
}

/// Takes the lease when nobody holds it, its holder's time ran out, or `holder` holds it.
pub(super) fn acquire_lease(
    connection: &mut Connection,
    name: &str,
    holder: &str,
    ttl: Duration,
) -> StoreResult<Option<LeaseGrant>> {
    let ttl_nanos = u64::try_from(ttl.as_nanos()).unwrap_or(u64::MAX);
    let transaction = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let now = now_unix_nano();
    let current: Option<(String, i64)> = transaction
        .query_row(
            "SELECT holder, expires_at_ns FROM leases WHERE name = ?1",
            [name],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .optional()?;
    let free = match &current {
        None => true,
        Some((current_holder, expires)) => current_holder == holder || *expires <= nanos(now),
    };
    if !free {
        return Ok(None);
    }
    let expires = now.saturating_add(ttl_nanos);
    transaction.execute(
        "INSERT INTO leases (name, holder, expires_at_ns) VALUES (?1, ?2, ?3)
         ON CONFLICT (name) DO UPDATE SET
             holder = excluded.holder, expires_at_ns = excluded.expires_at_ns",
        params![name, holder, nanos(expires)],
    )?;
    transaction.commit()?;
    // From the commit on: the expiry was counted from before it.
    Ok(Some(LeaseGrant {
        valid_for: Duration::from_nanos(expires.saturating_sub(now_unix_nano())),
    }))
}

#[async_trait]
impl AlertStore for SqliteStore {
    async fn put_alert_rule(&self, rule: &AlertRule) -> StoreResult<()> {
        let rule = rule.clone();
        self.with_writer(move |connection| {
            let spec = &rule.spec;
            connection.execute(
                &format!(
                    "INSERT OR REPLACE INTO alert_rules ({RULE_COLUMNS})
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)"
                ),
                params![
                    rule.project_id,
                    rule.id,
                    spec.name,
                    spec.metric.to_string(),
                    spec.filter,
                    nanos(spec.window_seconds),
                    spec.op.as_str(),
                    spec.threshold,
                    spec.min_traces.map(nanos),
                    spec.webhook_url,
                    rule.secret,
                    nanos(rule.created_at_unix_nano),
                    nanos(rule.updated_at_unix_nano),
                ],
            )?;
            Ok(())
        })
        .await
    }

    async fn alert_rule(&self, project_id: &str, rule_id: &str) -> StoreResult<Option<AlertRule>> {
        let (project_id, rule_id) = (project_id.to_owned(), rule_id.to_owned());
        self.with_reader(move |connection| {
            let sql =
                format!("SELECT {RULE_COLUMNS} FROM alert_rules WHERE project_id = ?1 AND id = ?2");
            Ok(collect(
                connection,
                &sql,
                params![project_id, rule_id],
                rule_from_row,
            )?
            .into_iter()
            .next())
        })
        .await
    }

    async fn alert_rules(&self, project_id: Option<&str>) -> StoreResult<Vec<AlertRule>> {
        let project_id = project_id.map(str::to_owned);
        self.with_reader(move |connection| {
            let sql = format!(
                "SELECT {RULE_COLUMNS} FROM alert_rules WHERE ?1 IS NULL OR project_id = ?1
                 ORDER BY created_at_ns, id"
            );
            collect(connection, &sql, [project_id], rule_from_row)
        })
        .await
    }

    async fn delete_alert_rule(&self, project_id: &str, rule_id: &str) -> StoreResult<bool> {
        let (project_id, rule_id) = (project_id.to_owned(), rule_id.to_owned());
        self.with_writer(move |connection| {
            let transaction = connection.transaction()?;
            let deleted = transaction.execute(
                "DELETE FROM alert_rules WHERE project_id = ?1 AND id = ?2",
                params![project_id, rule_id],
            )?;
            for table in ["alert_states", "alert_events"] {
                transaction.execute(
                    &format!("DELETE FROM {table} WHERE project_id = ?1 AND rule_id = ?2"),
                    params![project_id, rule_id],
                )?;
            }
            transaction.commit()?;
            Ok(deleted > 0)
        })
        .await
    }

    async fn alert_states(&self, project_id: Option<&str>) -> StoreResult<Vec<AlertRuleState>> {
        let project_id = project_id.map(str::to_owned);
        self.with_reader(move |connection| {
            collect(
                connection,
                "SELECT project_id, rule_id, state, value, changed_at_ns, transitions
                 FROM alert_states WHERE ?1 IS NULL OR project_id = ?1",
                [project_id],
                state_from_row,
            )
        })
        .await
    }

    async fn record_alert_change(
        &self,
        state: &AlertRuleState,
        event: &AlertEvent,
    ) -> StoreResult<()> {
        let (state, event) = (state.clone(), event.clone());
        self.with_writer(move |connection| {
            let transaction = connection.transaction()?;
            transaction.execute(
                "INSERT OR REPLACE INTO alert_states
                     (project_id, rule_id, state, value, changed_at_ns, transitions)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    state.project_id,
                    state.rule_id,
                    state.state.as_str(),
                    state.value,
                    nanos(state.changed_at_unix_nano),
                    nanos(state.transitions),
                ],
            )?;
            write_event(&transaction, &event)?;
            transaction.commit()?;
            Ok(())
        })
        .await
    }

    async fn update_alert_event(&self, event: &AlertEvent) -> StoreResult<()> {
        let event = event.clone();
        self.with_writer(move |connection| write_event(connection, &event))
            .await
    }

    async fn alert_events(
        &self,
        project_id: &str,
        rule_id: &str,
        limit: usize,
    ) -> StoreResult<Vec<AlertEvent>> {
        let (project_id, rule_id) = (project_id.to_owned(), rule_id.to_owned());
        self.with_reader(move |connection| {
            let sql = format!(
                "SELECT {EVENT_COLUMNS} FROM alert_events WHERE project_id = ?1 AND rule_id = ?2
                 ORDER BY at_ns DESC, id DESC LIMIT ?3"
            );
            collect(
                connection,
                &sql,
                params![project_id, rule_id, nanos(limit as u64)],
                event_from_row,
            )
        })
        .await
    }

    async fn unfinished_alert_events(&self, since_unix_nano: u64) -> StoreResult<Vec<AlertEvent>> {
        self.with_reader(move |connection| {
            let sql = format!(
                "SELECT {EVENT_COLUMNS} FROM alert_events WHERE finished = 0 AND at_ns >= ?1
                 ORDER BY at_ns"
            );
            collect(connection, &sql, [nanos(since_unix_nano)], event_from_row)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::ControlPlane;

    fn rule(project_id: &str, id: &str, created: u64) -> AlertRule {
        AlertRule {
            id: id.into(),
            project_id: project_id.into(),
            spec: AlertRuleSpec {
                name: format!("rule {id}"),
                metric: AlertMetric::Score("helpful".into()),
                filter: Some("model == \"gpt-4o\"".into()),
                window_seconds: 900,
                op: AlertOp::Below,
                threshold: 0.5,
                min_traces: Some(10),
                webhook_url: "http://127.0.0.1:9/hook".into(),
            },
            secret: "shwh_00".into(),
            created_at_unix_nano: created,
            updated_at_unix_nano: created,
        }
    }

    fn event(rule: &AlertRule, id: &str, at: u64) -> AlertEvent {
        AlertEvent {
            id: id.into(),
            project_id: rule.project_id.clone(),
            rule_id: rule.id.clone(),
            state: AlertState::Firing,
            value: 0.25,
            threshold: 0.5,
            at_unix_nano: at,
            payload: "{}".into(),
            attempts: 0,
            delivered: false,
            finished: false,
            last_error: None,
            last_attempt_unix_nano: None,
        }
    }

    #[tokio::test]
    async fn one_holder_at_a_time_until_its_time_runs_out() {
        let directory = tempfile::tempdir().unwrap();
        let store = super::super::tests::open(directory.path());
        let ttl = Duration::from_secs(30);
        let granted = store.acquire_lease("alerts", "a", ttl).await.unwrap();
        assert!(granted.is_some_and(|grant| grant.valid_for <= ttl));
        assert_eq!(store.acquire_lease("alerts", "b", ttl).await.unwrap(), None);
        assert!(
            store
                .acquire_lease("alerts", "a", ttl)
                .await
                .unwrap()
                .is_some()
        );
        // Another lease is another row.
        assert!(
            store
                .acquire_lease("other", "b", ttl)
                .await
                .unwrap()
                .is_some()
        );
        // A grant of no time runs out at once: the next asker takes the lease.
        store
            .acquire_lease("alerts", "a", Duration::ZERO)
            .await
            .unwrap();
        assert!(
            store
                .acquire_lease("alerts", "b", ttl)
                .await
                .unwrap()
                .is_some()
        );
        assert_eq!(store.acquire_lease("alerts", "a", ttl).await.unwrap(), None);
    }

    #[tokio::test]
    async fn rules_states_and_events_by_project() {
        let directory = tempfile::tempdir().unwrap();
        let store = super::super::tests::open(directory.path());
        let (first, second, theirs) = (rule("p", "r1", 1), rule("p", "r2", 2), rule("q", "r3", 3));
        for rule in [&second, &first, &theirs] {
            store.put_alert_rule(rule).await.unwrap();
        }
        assert_eq!(
            store.alert_rules(Some("p")).await.unwrap(),
            [first.clone(), second.clone()]
        );
        assert_eq!(store.alert_rules(None).await.unwrap().len(), 3);
        assert_eq!(store.alert_rule("q", "r1").await.unwrap(), None);
        assert_eq!(
            store.alert_rule("p", "r1").await.unwrap(),
            Some(first.clone())
        );

        let state = AlertRuleState {
            project_id: "p".into(),
            rule_id: "r1".into(),
            state: AlertState::Firing,
            value: Some(0.25),
            changed_at_unix_nano: 10,
            transitions: 1,
        };
        let mut fired = event(&first, "e1", 10);
        store.record_alert_change(&state, &fired).await.unwrap();
        let later = event(&first, "e2", 20);
        store.record_alert_change(&state, &later).await.unwrap();
        assert_eq!(store.alert_states(Some("p")).await.unwrap(), [state]);
        assert_eq!(store.alert_states(Some("q")).await.unwrap(), []);
        let newest_first: Vec<String> = store
            .alert_events("p", "r1", 10)
            .await
            .unwrap()
            .into_iter()
            .map(|event| event.id)
            .collect();
        assert_eq!(newest_first, ["e2", "e1"]);

        fired.attempts = 2;
        fired.delivered = true;
        fired.finished = true;
        fired.last_attempt_unix_nano = Some(15);
        store.update_alert_event(&fired).await.unwrap();
        let unfinished = store.unfinished_alert_events(0).await.unwrap();
        assert_eq!(unfinished, std::slice::from_ref(&later));
        assert_eq!(store.unfinished_alert_events(21).await.unwrap(), []);
        assert_eq!(store.alert_events("p", "r1", 1).await.unwrap(), [later]);

        assert!(store.delete_alert_rule("p", "r1").await.unwrap());
        assert!(!store.delete_alert_rule("p", "r1").await.unwrap());
        assert!(!store.delete_alert_rule("q", "r2").await.unwrap());
        assert_eq!(store.alert_states(None).await.unwrap(), []);
        assert_eq!(store.alert_events("p", "r1", 10).await.unwrap(), []);
        assert_eq!(store.alert_rules(Some("p")).await.unwrap(), [second]);
    }
}
