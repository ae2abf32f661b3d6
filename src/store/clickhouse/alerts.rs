//! Alerts on ClickHouse (migration 7): rules, their states and events as ReplacingMergeTree
//! rows, and the lease that names the one server that evaluates them.
//!
//! Rows are never updated in place. A rule's newer version replaces it (a deletion is a version
//! marked deleted); a state's row with more `transitions` replaces it; an event's row with more
//! `progress` (attempts, then finished) replaces it: neither orders by a server's clock, so a
//! server whose clock is behind the last holder's still writes over it. Flags that a newer row
//! changes (`deleted`, `finished`) are read after `FINAL` in Rust, never in a `WHERE` a
//! server may apply before it.
//!
//! The lease: ClickHouse has no transaction and no unique key, so servers elect rather than
//! lock. Time is cut into slots of the lease's ttl, by ClickHouse's clock (`now()`): a server
//! that wants the lease inserts a claim for the current slot, whose `claimed_at` ClickHouse
//! fills in (`DEFAULT now()`), and the holder of a slot is its claim with the earliest
//! `claimed_at` (ties: the smaller holder id). An insert made later can never be earlier, so
//! every server reading the claims agrees — once the claims made before are all visible: a
//! claim counts only [`SETTLE_SECONDS`] after its `claimed_at`, time for an insert in flight to
//! land. The holder claims the next slot as soon as it holds one, before any other server may
//! (others claim a slot once it has begun, by ClickHouse's clock): that early claim is the
//! next slot's first whatever comes later, so it counts at once and the holder keeps the lease
//! without a gap while it lives. When it stops, its early claim keeps the next slot empty, and
//! another server holds the lease within two slots (and [`SETTLE_SECONDS`]).

use std::time::Duration;

use async_trait::async_trait;
use clickhouse::{Client, Row};
use serde::{Deserialize, Serialize};

use super::metadata::insert;
use super::schema::{Engine, Table};
use super::{ClickHouseStore, unavailable, version_now};
use crate::model::alert::{
    AlertEvent, AlertMetric, AlertOp, AlertRule, AlertRuleSpec, AlertRuleState, AlertState,
};
use crate::store::{AlertStore, LeaseGrant, StoreError, StoreResult};

/// Seconds a claim must have stood before its holder acts (see the module's documentation).
pub const SETTLE_SECONDS: u64 = 5;

#[derive(Debug, Clone, Row, Serialize, Deserialize)]
struct RuleRow {
    project_id: String,
    id: String,
    name: String,
    metric: String,
    filter: Option<String>,
    window_s: u64,
    op: String,
    threshold: f64,
    min_traces: Option<u64>,
    webhook_url: String,
    secret: String,
    created_at_ns: u64,
    updated_at_ns: u64,
    /// The newest version of an id is the rule.
    version: u64,
    /// 1 when the rule was deleted.
    deleted: u8,
}

#[derive(Debug, Clone, Row, Serialize, Deserialize)]
struct StateRow {
    project_id: String,
    rule_id: String,
    state: String,
    value: Option<f64>,
    changed_at_ns: u64,
    /// The row with the most is the state.
    transitions: u64,
}

#[derive(Debug, Clone, Row, Serialize, Deserialize)]
struct EventRow {
    id: String,
    project_id: String,
    rule_id: String,
    state: String,
    value: f64,
    threshold: f64,
    at_ns: u64,
    payload: String,
    attempts: u32,
    delivered: u8,
    finished: u8,
    last_error: Option<String>,
    last_attempt_ns: Option<u64>,
    /// `attempts × 2 + finished`: the row with the most is the event.
    progress: u64,
}

/// A claim as inserted: `claimed_at` is ClickHouse's to fill in.
#[derive(Debug, Clone, Row, Serialize, Deserialize)]
struct ClaimRow {
    name: String,
    slot: u64,
    holder: String,
}

#[derive(Debug, Clone, Row, Deserialize)]
struct Claim {
    slot: u64,
    holder: String,
    claimed_at: u32,
}

const RULE_COLUMNS: &str = "project_id, id, name, metric, filter, window_s, op, threshold, \
    min_traces, webhook_url, secret, created_at_ns, updated_at_ns, version, deleted";
const STATE_COLUMNS: &str = "project_id, rule_id, state, value, changed_at_ns, transitions";
const EVENT_COLUMNS: &str = "id, project_id, rule_id, state, value, threshold, at_ns, payload, \
    attempts, delivered, finished, last_error, last_attempt_ns, progress";

/// Placeholders: project id.
fn rules_of_project() -> String {
    format!(
        "SELECT {RULE_COLUMNS} FROM alert_rules FINAL WHERE project_id = ? ORDER BY created_at_ns, id"
    )
}

fn all_rules() -> String {
    format!("SELECT {RULE_COLUMNS} FROM alert_rules FINAL ORDER BY created_at_ns, id")
}

/// Placeholders: project id, rule id.
fn rule_by_id() -> String {
    format!("SELECT {RULE_COLUMNS} FROM alert_rules FINAL WHERE project_id = ? AND id = ?")
}

/// Placeholders: project id.
fn states_of_project() -> String {
    format!("SELECT {STATE_COLUMNS} FROM alert_states FINAL WHERE project_id = ?")
}

fn all_states() -> String {
    format!("SELECT {STATE_COLUMNS} FROM alert_states FINAL")
}

/// Placeholders: project id, rule id, limit.
fn events_of_rule() -> String {
    format!(
        "SELECT {EVENT_COLUMNS} FROM alert_events FINAL WHERE project_id = ? AND rule_id = ? \
         ORDER BY at_ns DESC, id DESC LIMIT ?"
    )
}

/// Placeholders: since (nanoseconds).
fn events_since() -> String {
    format!("SELECT {EVENT_COLUMNS} FROM alert_events FINAL WHERE at_ns >= ? ORDER BY at_ns, id")
}

const CLICKHOUSE_NOW: &str = "SELECT toUInt32(now())";

/// Placeholders: lease name, a slot, the next slot.
const CLAIMS: &str = "SELECT slot, holder, toUInt32(claimed_at) AS claimed_at FROM leases \
    WHERE name = ? AND slot IN (?, ?) ORDER BY slot, claimed_at, holder";

/// Every query of this file with sample values, for `queries::sample_queries`.
pub fn sample_queries() -> Vec<(&'static str, String, Vec<&'static str>)> {
    vec![
        ("alert_rules_of_project", rules_of_project(), vec!["'p'"]),
        ("alert_rules_all", all_rules(), vec![]),
        ("alert_rule_by_id", rule_by_id(), vec!["'p'", "'r'"]),
        ("alert_states_of_project", states_of_project(), vec!["'p'"]),
        ("alert_states_all", all_states(), vec![]),
        (
            "alert_events_of_rule",
            events_of_rule(),
            vec!["'p'", "'r'", "10"],
        ),
        ("alert_events_since", events_since(), vec!["0"]),
        ("clickhouse_now", CLICKHOUSE_NOW.to_owned(), vec![]),
        ("lease_claims", CLAIMS.to_owned(), vec!["'n'", "1", "2"]),
    ]
}

/// The tables of alerts (migration 7): rules by project and id, the newest version standing
/// (a deletion is a version marked deleted); each rule's state, the row with the most
/// transitions standing; each change of state with its webhook's delivery, the row with the
/// most progress standing; and the claims of the leases (a few rows per server and minute,
/// `claimed_at` filled in by ClickHouse: the earliest claim of a slot holds the lease).
pub(super) fn tables() -> Vec<Table> {
    vec![
        Table {
            name: "alert_rules",
            columns: "project_id String, id String, name String, metric String, \
                      filter Nullable(String), window_s UInt64, op String, threshold Float64, \
                      min_traces Nullable(UInt64), webhook_url String, secret String, \
                      created_at_ns UInt64, updated_at_ns UInt64, version UInt64, deleted UInt8",
            modern_indexes: "",
            engine: Engine::Replacing(Some("version")),
            partition_by: None,
            order_by: "(project_id, id)",
            expires: false,
            sharding_key: "cityHash64(project_id)",
        },
        Table {
            name: "alert_states",
            columns: "project_id String, rule_id String, state String, value Nullable(Float64), \
                      changed_at_ns UInt64, transitions UInt64",
            modern_indexes: "",
            engine: Engine::Replacing(Some("transitions")),
            partition_by: None,
            order_by: "(project_id, rule_id)",
            expires: false,
            sharding_key: "cityHash64(project_id)",
        },
        Table {
            name: "alert_events",
            columns: "id String, project_id String, rule_id String, state String, value Float64, \
                      threshold Float64, at_ns UInt64, payload String, attempts UInt32, \
                      delivered UInt8, finished UInt8, last_error Nullable(String), \
                      last_attempt_ns Nullable(UInt64), progress UInt64",
            modern_indexes: "",
            engine: Engine::Replacing(Some("progress")),
            partition_by: None,
            order_by: "(project_id, rule_id, at_ns, id)",
            expires: false,
            sharding_key: "cityHash64(project_id)",
        },
        Table {
            name: "leases",
            columns: "name String, slot UInt64, holder String, claimed_at DateTime DEFAULT now()",
            modern_indexes: "",
            engine: Engine::Replacing(None),
            partition_by: None,
            order_by: "(name, slot, claimed_at, holder)",
            expires: false,
            sharding_key: "cityHash64(name)",
        },
    ]
}

fn corrupt(what: &str) -> StoreError {
    StoreError::Corrupt(format!("alert: bad {what}"))
}

fn rule_row(rule: &AlertRule, version: u64, deleted: u8) -> RuleRow {
    let spec = &rule.spec;
    RuleRow {
        project_id: rule.project_id.clone(),
        id: rule.id.clone(),
        name: spec.name.clone(),
        metric: spec.metric.to_string(),
        filter: spec.filter.clone(),
        window_s: spec.window_seconds,
        op: spec.op.as_str().to_owned(),
        threshold: spec.threshold,
        min_traces: spec.min_traces,
        webhook_url: spec.webhook_url.clone(),
        secret: rule.secret.clone(),
        created_at_ns: rule.created_at_unix_nano,
        updated_at_ns: rule.updated_at_unix_nano,
        version,
        deleted,
    }
}

/// The rule a row holds; `None` for a deletion.
fn rule(row: RuleRow) -> StoreResult<Option<AlertRule>> {
    if row.deleted != 0 {
        return Ok(None);
    }
    Ok(Some(AlertRule {
        spec: AlertRuleSpec {
            name: row.name,
            metric: AlertMetric::parse(&row.metric).ok_or_else(|| corrupt("metric"))?,
            filter: row.filter,
            window_seconds: row.window_s,
            op: AlertOp::parse(&row.op).ok_or_else(|| corrupt("op"))?,
            threshold: row.threshold,
            min_traces: row.min_traces,
            webhook_url: row.webhook_url,
        },
        project_id: row.project_id,
        id: row.id,
        secret: row.secret,
        created_at_unix_nano: row.created_at_ns,
        updated_at_unix_nano: row.updated_at_ns,
    }))
}

fn rules(rows: Vec<RuleRow>) -> StoreResult<Vec<AlertRule>> {
    let mut rules = Vec::with_capacity(rows.len());
    for row in rows {
        rules.extend(rule(row)?);
    }
    Ok(rules)
}

fn state(row: StateRow) -> StoreResult<AlertRuleState> {
    Ok(AlertRuleState {
        state: AlertState::parse(&row.state).ok_or_else(|| corrupt("state"))?,
        project_id: row.project_id,
        rule_id: row.rule_id,
        value: row.value,
        changed_at_unix_nano: row.changed_at_ns,
        transitions: row.transitions,
    })
}

fn event_row(event: &AlertEvent) -> EventRow {
    EventRow {
        id: event.id.clone(),
        project_id: event.project_id.clone(),
        rule_id: event.rule_id.clone(),
        state: event.state.as_str().to_owned(),
        value: event.value,
        threshold: event.threshold,
        at_ns: event.at_unix_nano,
        payload: event.payload.clone(),
        attempts: event.attempts,
        delivered: u8::from(event.delivered),
        finished: u8::from(event.finished),
        last_error: event.last_error.clone(),
        last_attempt_ns: event.last_attempt_unix_nano,
        progress: u64::from(event.attempts) * 2 + u64::from(event.finished),
    }
}

fn event(row: EventRow) -> StoreResult<AlertEvent> {
    Ok(AlertEvent {
        state: AlertState::parse(&row.state).ok_or_else(|| corrupt("event state"))?,
        id: row.id,
        project_id: row.project_id,
        rule_id: row.rule_id,
        value: row.value,
        threshold: row.threshold,
        at_unix_nano: row.at_ns,
        payload: row.payload,
        attempts: row.attempts,
        delivered: row.delivered != 0,
        finished: row.finished != 0,
        last_error: row.last_error,
        last_attempt_unix_nano: row.last_attempt_ns,
    })
}

async fn fetch<T>(query: clickhouse::query::Query) -> StoreResult<Vec<T>>
where
    T: clickhouse::RowOwned + clickhouse::RowRead,
{
    query.fetch_all::<T>().await.map_err(unavailable)
}

/// See the module's documentation.
pub(super) async fn acquire_lease(
    client: &Client,
    name: &str,
    holder: &str,
    ttl: Duration,
) -> StoreResult<Option<LeaseGrant>> {
    let slot_seconds = ttl.as_secs().max(3 * SETTLE_SECONDS);
    let now: u32 = client
        .query(CLICKHOUSE_NOW)
        .fetch_one()
        .await
        .map_err(unavailable)?;
    let now = u64::from(now);
    let slot = now / slot_seconds;
    let slot_start = |slot: u64| slot * slot_seconds;
    let claims: Vec<Claim> =
        fetch(client.query(CLAIMS).bind(name).bind(slot).bind(slot + 1)).await?;
    let mine = |slot: u64| {
        claims
            .iter()
            .find(|claim| claim.slot == slot && claim.holder == holder)
    };
    // Made before its slot began: only the holder of the slot before claims so early, and
    // every other claim of the slot comes later.
    let early = |claim: &Claim| u64::from(claim.claimed_at) < slot_start(claim.slot);
    let claim = |slot: u64| ClaimRow {
        name: name.to_owned(),
        slot,
        holder: holder.to_owned(),
    };
    if mine(slot).is_none() {
        insert(client, "leases", &[claim(slot)]).await?;
    }
    // Ordered by slot, then claimed_at and holder: the first of a slot is its holder, once no
    // earlier claim can still be unseen.
    let Some(first) = claims.iter().find(|claim| claim.slot == slot) else {
        return Ok(None);
    };
    let settled = early(first) || now >= u64::from(first.claimed_at) + SETTLE_SECONDS;
    if first.holder != holder || !settled {
        return Ok(None);
    }
    // The next slot, claimed before any other server may: held through it too.
    let holds_next = match mine(slot + 1) {
        Some(next) => early(next),
        None => {
            insert(client, "leases", &[claim(slot + 1)]).await?;
            false
        }
    };
    let until = slot_start(slot + if holds_next { 2 } else { 1 });
    // `now` is a whole second: up to one more may have passed.
    Ok(Some(LeaseGrant {
        valid_for: Duration::from_secs(until.saturating_sub(now + 1)),
    }))
}

#[async_trait]
impl AlertStore for ClickHouseStore {
    async fn put_alert_rule(&self, rule: &AlertRule) -> StoreResult<()> {
        insert(
            &self.client,
            "alert_rules",
            &[rule_row(rule, version_now(), 0)],
        )
        .await
    }

    async fn alert_rule(&self, project_id: &str, rule_id: &str) -> StoreResult<Option<AlertRule>> {
        let rows: Vec<RuleRow> = fetch(
            self.client
                .query(&rule_by_id())
                .bind(project_id)
                .bind(rule_id),
        )
        .await?;
        Ok(rules(rows)?.into_iter().next())
    }

    async fn alert_rules(&self, project_id: Option<&str>) -> StoreResult<Vec<AlertRule>> {
        let rows: Vec<RuleRow> = match project_id {
            Some(project_id) => {
                fetch(self.client.query(&rules_of_project()).bind(project_id)).await?
            }
            None => fetch(self.client.query(&all_rules())).await?,
        };
        rules(rows)
    }

    async fn delete_alert_rule(&self, project_id: &str, rule_id: &str) -> StoreResult<bool> {
        // `FINAL`: at most the newest row of the id.
        let rows: Vec<RuleRow> = fetch(
            self.client
                .query(&rule_by_id())
                .bind(project_id)
                .bind(rule_id),
        )
        .await?;
        let Some(mut row) = rows.into_iter().find(|row| row.deleted == 0) else {
            return Ok(false);
        };
        row.version = version_now().max(row.version + 1);
        row.deleted = 1;
        insert(&self.client, "alert_rules", &[row]).await?;
        Ok(true)
    }

    async fn alert_states(&self, project_id: Option<&str>) -> StoreResult<Vec<AlertRuleState>> {
        let rows: Vec<StateRow> = match project_id {
            Some(project_id) => {
                fetch(self.client.query(&states_of_project()).bind(project_id)).await?
            }
            None => fetch(self.client.query(&all_states())).await?,
        };
        rows.into_iter().map(state).collect()
    }

    async fn record_alert_change(
        &self,
        state: &AlertRuleState,
        event: &AlertEvent,
    ) -> StoreResult<()> {
        // The event first: a state saved without its event would be a change never notified.
        insert(&self.client, "alert_events", &[event_row(event)]).await?;
        let row = StateRow {
            project_id: state.project_id.clone(),
            rule_id: state.rule_id.clone(),
            state: state.state.as_str().to_owned(),
            value: state.value,
            changed_at_ns: state.changed_at_unix_nano,
            transitions: state.transitions,
        };
        if let Err(error) = insert(&self.client, "alert_states", &[row]).await {
            // Without its state the change is made again at the next evaluation, with an event
            // of its own: this one must never be sent.
            let abandoned = AlertEvent {
                finished: true,
                last_error: Some("the change of state could not be saved".into()),
                ..event.clone()
            };
            let _ = insert(&self.client, "alert_events", &[event_row(&abandoned)]).await;
            return Err(error);
        }
        Ok(())
    }

    async fn update_alert_event(&self, event: &AlertEvent) -> StoreResult<()> {
        insert(&self.client, "alert_events", &[event_row(event)]).await
    }

    async fn alert_events(
        &self,
        project_id: &str,
        rule_id: &str,
        limit: usize,
    ) -> StoreResult<Vec<AlertEvent>> {
        let rows: Vec<EventRow> = fetch(
            self.client
                .query(&events_of_rule())
                .bind(project_id)
                .bind(rule_id)
                .bind(limit as u64),
        )
        .await?;
        rows.into_iter().map(event).collect()
    }

    async fn unfinished_alert_events(&self, since_unix_nano: u64) -> StoreResult<Vec<AlertEvent>> {
        let rows: Vec<EventRow> =
            fetch(self.client.query(&events_since()).bind(since_unix_nano)).await?;
        rows.into_iter()
            .filter(|row| row.finished == 0)
            .map(event)
            .collect()
    }
}
