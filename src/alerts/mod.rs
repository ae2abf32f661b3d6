//! Alert evaluation (SPEC §10): one task per server, of which only the holder of the store's
//! `alerts` lease works, so that a deployment evaluates each rule once and notifies each change
//! once.
//!
//! Every tick (the evaluation interval, at most [`TICK`]) the task asks for the lease
//! ([`crate::store::ControlPlane::acquire_lease`]); while it holds it, it evaluates every rule
//! of every project once per interval (`evaluate`): the rule's metric over its window, and
//! whether that changes its state (ok or firing). A change is recorded in the store — the new
//! state with its event, so that a server that takes the lease over carries on from it — and
//! then notified by a signed webhook in a task of its own (`deliver`). A server that takes the
//! lease first goes on with the deliveries its predecessor left unfinished.

pub mod deliver;
pub mod evaluate;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use std::sync::atomic::Ordering;

use crate::metrics::Metrics;
use crate::model::alert::{AlertEvent, AlertRule, AlertRuleState, AlertState, webhook_payload};
use crate::model::time::now_unix_nano;
use crate::store::{Store, StoreResult};
use deliver::Deliverer;

/// The lease's name in the store.
pub const LEASE_NAME: &str = "alerts";
/// How long a grant of the lease lasts; its holder renews it every tick.
pub const LEASE_TTL: Duration = Duration::from_secs(30);
/// Longest time between two asks for the lease, whatever the evaluation interval.
pub const TICK: Duration = Duration::from_secs(5);
/// How long the lease must still run for a change of state to be recorded.
const LEASE_NEEDED_TO_RECORD: Duration = Duration::from_secs(3);

/// Until when this server holds the alerts lease, as the last grant said.
#[derive(Debug, Default)]
pub struct LeaseClock {
    valid_until: Mutex<Option<Instant>>,
}

impl LeaseClock {
    fn set(&self, valid_until: Option<Instant>) {
        *self
            .valid_until
            .lock()
            .unwrap_or_else(|poison| poison.into_inner()) = valid_until;
    }

    /// Whether this server holds the lease for at least `time` more.
    pub fn held_for(&self, time: Duration) -> bool {
        self.valid_until
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .is_some_and(|until| until > Instant::now() + time)
    }
}

/// The running evaluator; [`Alerts::stop`] ends it and its deliveries.
pub struct Alerts {
    task: tokio::task::JoinHandle<()>,
    lease: Arc<LeaseClock>,
    deliverer: Arc<Deliverer>,
}

impl Alerts {
    /// Starts the evaluator of a server: rules are evaluated every `interval` while this server
    /// holds the lease; what it does is counted in `metrics`.
    pub fn start(store: Arc<dyn Store>, interval: Duration, metrics: Arc<Metrics>) -> Self {
        let lease = Arc::new(LeaseClock::default());
        let holder = format!("{:032x}", rand::random::<u128>());
        let deliverer =
            Deliverer::new(Arc::clone(&store), Arc::clone(&lease), Arc::clone(&metrics));
        let evaluator = Evaluator {
            store: Arc::clone(&store),
            deliverer: Arc::clone(&deliverer),
            lease: Arc::clone(&lease),
            metrics: Arc::clone(&metrics),
            written: HashMap::new(),
        };
        let task = tokio::spawn(run(evaluator, interval, holder));
        Self {
            task,
            lease,
            deliverer,
        }
    }

    /// Stops evaluating and delivering; the next holder of the lease finishes the deliveries
    /// left unfinished.
    pub fn stop(self) {
        self.task.abort();
        self.lease.set(None);
        self.deliverer.stop();
    }
}

async fn run(mut evaluator: Evaluator, interval: Duration, holder: String) {
    let (store, lease, metrics) = (
        Arc::clone(&evaluator.store),
        Arc::clone(&evaluator.lease),
        Arc::clone(&evaluator.metrics),
    );
    let mut ticks = tokio::time::interval(interval.min(TICK));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_evaluation: Option<Instant> = None;
    let mut holding = false;
    loop {
        ticks.tick().await;
        // Counted from before the ask: the grant runs from the store's answer, later.
        let asked = Instant::now();
        match store.acquire_lease(LEASE_NAME, &holder, LEASE_TTL).await {
            Ok(grant) => lease.set(grant.map(|grant| asked + grant.valid_for)),
            // The last grant still runs out when it says.
            Err(error) => tracing::warn!(%error, "asking for the alerts lease failed"),
        }
        let held = lease.held_for(Duration::ZERO);
        metrics
            .alerts
            .lease_held
            .store(u64::from(held), Ordering::Relaxed);
        if !held {
            if holding {
                tracing::info!("this server no longer evaluates alerts");
            }
            holding = false;
            continue;
        }
        let due = last_evaluation.is_none_or(|last| last.elapsed() >= interval);
        if !holding || due {
            last_evaluation = Some(Instant::now());
            if let Err(error) = evaluator.evaluate_all(!holding).await {
                tracing::warn!(%error, "evaluating alert rules failed; will retry");
                continue;
            }
            if !holding {
                tracing::info!("this server evaluates alerts");
            }
            holding = true;
        }
    }
}

struct Evaluator {
    store: Arc<dyn Store>,
    deliverer: Arc<Deliverer>,
    lease: Arc<LeaseClock>,
    metrics: Arc<Metrics>,
    /// The states this server wrote, by rule id: a store whose reads lag its writes (a
    /// ClickHouse cluster) cannot make it notify a change twice.
    written: HashMap<String, AlertRuleState>,
}

impl Evaluator {
    /// Evaluates every rule once; `resume`: first go on with unfinished deliveries.
    async fn evaluate_all(&mut self, resume: bool) -> StoreResult<()> {
        let rules = self.store.alert_rules(None).await?;
        if resume {
            self.written.clear();
            self.deliverer.resume(&rules).await;
        }
        let mut states: HashMap<String, AlertRuleState> = self
            .store
            .alert_states(None)
            .await?
            .into_iter()
            .map(|state| (state.rule_id.clone(), state))
            .collect();
        for (rule_id, written) in &self.written {
            let stored = states.get(rule_id);
            if stored.is_none_or(|stored| stored.transitions < written.transitions) {
                states.insert(rule_id.clone(), written.clone());
            }
        }
        let project_names: HashMap<String, String> = self
            .store
            .list_projects()
            .await?
            .into_iter()
            .map(|project| (project.id, project.name))
            .collect();
        for rule in &rules {
            if !self.lease.held_for(LEASE_NEEDED_TO_RECORD) {
                break;
            }
            let project_name = project_names
                .get(&rule.project_id)
                .map_or(rule.project_id.as_str(), String::as_str);
            if let Err(error) = self
                .evaluate(rule, states.get(&rule.id), project_name)
                .await
            {
                tracing::warn!(rule = %rule.id, project_id = %rule.project_id, %error,
                    "evaluating an alert rule failed");
            }
        }
        Ok(())
    }

    /// Measures a rule, and records and notifies a change of its state.
    async fn evaluate(
        &mut self,
        rule: &AlertRule,
        current: Option<&AlertRuleState>,
        project_name: &str,
    ) -> Result<(), evaluate::MeasureError> {
        let now = now_unix_nano();
        let measurement = evaluate::measure(self.store.as_ref(), rule, now).await?;
        self.metrics
            .alerts
            .evaluations
            .fetch_add(1, Ordering::Relaxed);
        let current_state = current.map_or(AlertState::Ok, |state| state.state);
        let Some(next) = evaluate::decide(&rule.spec, current_state, &measurement) else {
            return Ok(());
        };
        let Some(value) = measurement.value else {
            return Ok(());
        };
        if !self.lease.held_for(LEASE_NEEDED_TO_RECORD) {
            return Ok(());
        }
        let event_id = format!("ev_{:032x}", rand::random::<u128>());
        let event = AlertEvent {
            payload: webhook_payload(
                rule,
                project_name,
                &event_id,
                next,
                value,
                measurement.traces,
                now,
            ),
            id: event_id,
            project_id: rule.project_id.clone(),
            rule_id: rule.id.clone(),
            state: next,
            value,
            threshold: rule.spec.threshold,
            at_unix_nano: now,
            attempts: 0,
            delivered: false,
            finished: false,
            last_error: None,
            last_attempt_unix_nano: None,
        };
        let state = AlertRuleState {
            project_id: rule.project_id.clone(),
            rule_id: rule.id.clone(),
            state: next,
            value: Some(value),
            changed_at_unix_nano: now,
            transitions: current.map_or(0, |state| state.transitions) + 1,
        };
        self.store.record_alert_change(&state, &event).await?;
        tracing::info!(rule = %rule.id, project_id = %rule.project_id, state = next.as_str(),
            value, "alert rule changed state");
        self.written.insert(rule.id.clone(), state);
        self.deliverer.start(event, rule);
        Ok(())
    }
}
