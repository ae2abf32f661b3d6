//! Webhook delivery: the event's body POSTed, signed with the rule's secret, retried with
//! exponential backoff, each attempt recorded in the event. One task per event, so that a slow
//! receiver delays nobody else. A task attempts only while its server holds the alerts lease
//! with time to spare for a whole attempt; when the lease passes, the event is left unfinished
//! and the next holder goes on with it (`Deliverer::resume`).

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hmac::{Hmac, KeyInit as _, Mac as _};
use sha2::Sha256;

use std::sync::atomic::Ordering;

use super::LeaseClock;
use crate::metrics::Metrics;
use crate::model::alert::{AlertEvent, AlertRule};
use crate::model::time::now_unix_nano;
use crate::store::Store;

/// The header that carries the signature: `sha256=<hex HMAC-SHA256 of the body>`.
pub const SIGNATURE_HEADER: &str = "x-spanhouse-signature";
/// The header that carries the event's id (also in the body), for receivers that de-duplicate.
pub const EVENT_HEADER: &str = "x-spanhouse-event";

/// Attempts per event: with [`backoff`], the last is about two minutes after the first.
pub const MAX_ATTEMPTS: u32 = 8;
/// Longest wait between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// Longest an attempt may take, connection included.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the lease must still run for an attempt to start: the attempt ends before another
/// server may take the lease over and send the event again.
const LEASE_NEEDED: Duration = Duration::from_secs(12);

/// Whether the HTTP client speaks TLS: reqwest is built without a TLS feature (Cargo.toml), so
/// https URLs are accepted as SPEC §10 asks but each delivery to one fails with a clear error.
const HTTPS_SUPPORTED: bool = false;

/// `sha256=` and the hex HMAC-SHA256 of `body` under `secret` (its text's bytes, as shown).
pub fn sign(secret: &str, body: &[u8]) -> String {
    let mut mac =
        <Hmac<Sha256>>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// The wait before attempt `attempt` (1 is the first retry): 1 s, 2 s, 4 s … at most a minute.
pub fn backoff(attempt: u32) -> Duration {
    let seconds = 1u64 << attempt.saturating_sub(1).min(6);
    Duration::from_secs(seconds).min(MAX_BACKOFF)
}

/// What one attempt came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// 2xx: delivered.
    Delivered,
    /// Worth another attempt: a 5xx, 408, 429, or no answer.
    Retry(String),
    /// Another attempt would meet the same answer: any other status.
    GiveUp(String),
}

/// An HTTP status as an [`Outcome`].
pub fn outcome_of_status(status: u16) -> Outcome {
    match status {
        200..=299 => Outcome::Delivered,
        408 | 429 | 500..=599 => Outcome::Retry(format!("HTTP {status}")),
        _ => Outcome::GiveUp(format!("HTTP {status}")),
    }
}

/// Applies one attempt's outcome to the event: attempts, and whether it is finished.
pub fn record_attempt(event: &mut AlertEvent, outcome: Outcome, at_unix_nano: u64) {
    event.attempts += 1;
    event.last_attempt_unix_nano = Some(at_unix_nano);
    match outcome {
        Outcome::Delivered => {
            event.delivered = true;
            event.finished = true;
            event.last_error = None;
        }
        Outcome::Retry(error) => {
            event.finished = event.attempts >= MAX_ATTEMPTS;
            event.last_error = Some(error);
        }
        Outcome::GiveUp(error) => {
            event.finished = true;
            event.last_error = Some(error);
        }
    }
}

/// Starts and tracks this server's deliveries.
pub struct Deliverer {
    client: reqwest::Client,
    store: Arc<dyn Store>,
    lease: Arc<LeaseClock>,
    metrics: Arc<Metrics>,
    /// Ids of the events a task of this server is delivering.
    in_flight: Mutex<HashSet<String>>,
    /// The delivery tasks, so that stopping the server stops them.
    tasks: Mutex<tokio::task::JoinSet<()>>,
}

impl Deliverer {
    pub fn new(store: Arc<dyn Store>, lease: Arc<LeaseClock>, metrics: Arc<Metrics>) -> Arc<Self> {
        let client = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            // A redirect would carry the signed body somewhere the admin did not name.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("spanhouse/", env!("CARGO_PKG_VERSION")))
            .build()
            .unwrap_or_default();
        Arc::new(Self {
            client,
            store,
            lease,
            metrics,
            in_flight: Mutex::new(HashSet::new()),
            tasks: Mutex::new(tokio::task::JoinSet::new()),
        })
    }

    /// Delivers `event` of `rule` in a task of its own, unless this server already is.
    pub fn start(self: &Arc<Self>, event: AlertEvent, rule: &AlertRule) {
        let fresh = self
            .in_flight
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .insert(event.id.clone());
        if !fresh {
            return;
        }
        let deliverer = Arc::clone(self);
        let (secret, url) = (rule.secret.clone(), rule.spec.webhook_url.clone());
        let mut tasks = self
            .tasks
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        // The results of finished tasks are of no use: let them go.
        while tasks.try_join_next().is_some() {}
        tasks.spawn(async move {
            let id = event.id.clone();
            deliverer.deliver(event, &secret, &url).await;
            deliverer
                .in_flight
                .lock()
                .unwrap_or_else(|poison| poison.into_inner())
                .remove(&id);
        });
    }

    /// Stops every delivery at once; what they left unfinished, the next holder of the lease
    /// delivers.
    pub fn stop(&self) {
        self.tasks
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .abort_all();
    }

    /// Goes on with the unfinished events of the last hour: a server that takes the lease over
    /// finishes what the last holder began. Events of deleted rules are finished undelivered.
    pub async fn resume(self: &Arc<Self>, rules: &[AlertRule]) {
        let since = now_unix_nano().saturating_sub(3600 * 1_000_000_000);
        let events = match self.store.unfinished_alert_events(since).await {
            Ok(events) => events,
            Err(error) => {
                tracing::warn!(%error, "reading unfinished alert deliveries failed");
                return;
            }
        };
        for mut event in events {
            match rules.iter().find(|rule| rule.id == event.rule_id) {
                Some(rule) => self.start(event, rule),
                None => {
                    event.finished = true;
                    event.last_error = Some("the rule was deleted".into());
                    let _ = self.store.update_alert_event(&event).await;
                }
            }
        }
    }

    async fn deliver(&self, mut event: AlertEvent, secret: &str, url: &str) {
        let signature = sign(secret, event.payload.as_bytes());
        while !event.finished {
            if event.attempts > 0 {
                tokio::time::sleep(backoff(event.attempts)).await;
            }
            if !self.wait_for_lease().await {
                tracing::info!(event = %event.id, "alerts lease passed; the next holder delivers");
                return;
            }
            let outcome = self.attempt(url, &event, &signature).await;
            let counter = match outcome {
                Outcome::Delivered => &self.metrics.alerts.webhooks_delivered,
                _ => &self.metrics.alerts.webhooks_failed,
            };
            counter.fetch_add(1, Ordering::Relaxed);
            record_attempt(&mut event, outcome, now_unix_nano());
            match (&event.last_error, event.finished) {
                (None, _) => tracing::info!(event = %event.id, "alert webhook delivered"),
                (Some(error), true) => tracing::warn!(
                    event = %event.id, attempts = event.attempts, %error,
                    "alert webhook not delivered; giving up"
                ),
                (Some(error), false) => tracing::info!(
                    event = %event.id, attempts = event.attempts, %error,
                    "alert webhook failed; will retry"
                ),
            }
            if let Err(error) = self.store.update_alert_event(&event).await {
                tracing::warn!(event = %event.id, %error, "recording a delivery attempt failed");
            }
        }
    }

    /// Waits (a few seconds at most) until the lease runs long enough for an attempt; `false`
    /// when this server no longer holds it.
    async fn wait_for_lease(&self) -> bool {
        for _ in 0..30 {
            if self.lease.held_for(LEASE_NEEDED) {
                return true;
            }
            if !self.lease.held_for(Duration::ZERO) {
                return false;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        false
    }

    async fn attempt(&self, url: &str, event: &AlertEvent, signature: &str) -> Outcome {
        if !HTTPS_SUPPORTED && url.starts_with("https:") {
            return Outcome::GiveUp(
                "https webhooks need TLS, which this build of spanhouse does not have; \
                 use an http URL (see docs/alerts.md)"
                    .into(),
            );
        }
        let sent = self
            .client
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(SIGNATURE_HEADER, signature)
            .header(EVENT_HEADER, &event.id)
            .body(event.payload.clone())
            .send()
            .await;
        match sent {
            Ok(response) => outcome_of_status(response.status().as_u16()),
            // A URL this client cannot send to fails the same way every time.
            Err(error) if error.is_builder() => Outcome::GiveUp(error_text(&error)),
            Err(error) => Outcome::Retry(error_text(&error)),
        }
    }
}

/// An error and its causes, for the event's `last_error`.
fn error_text(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::alert::AlertState;

    #[test]
    fn the_signature_is_the_hmac_of_the_body() {
        // RFC 4231, test case 2: key "Jefe".
        assert_eq!(
            sign("Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn backoff_doubles_up_to_a_minute() {
        let waits: Vec<u64> = (1..MAX_ATTEMPTS).map(|n| backoff(n).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 32, 60]);
        assert_eq!(backoff(40), MAX_BACKOFF);
    }

    #[test]
    fn statuses() {
        assert_eq!(outcome_of_status(204), Outcome::Delivered);
        for status in [408, 429, 500, 503] {
            assert!(
                matches!(outcome_of_status(status), Outcome::Retry(_)),
                "{status}"
            );
        }
        for status in [301, 400, 401, 404, 410] {
            assert!(
                matches!(outcome_of_status(status), Outcome::GiveUp(_)),
                "{status}"
            );
        }
    }

    #[test]
    fn attempts_finish_on_delivery_a_permanent_error_or_the_last_retry() {
        let mut event = AlertEvent {
            id: "ev".into(),
            project_id: "p".into(),
            rule_id: "r".into(),
            state: AlertState::Firing,
            value: 1.0,
            threshold: 0.5,
            at_unix_nano: 0,
            payload: "{}".into(),
            attempts: 0,
            delivered: false,
            finished: false,
            last_error: None,
            last_attempt_unix_nano: None,
        };
        let mut retried = event.clone();
        for _ in 1..MAX_ATTEMPTS {
            record_attempt(&mut retried, Outcome::Retry("HTTP 500".into()), 1);
            assert!(!retried.finished);
        }
        record_attempt(&mut retried, Outcome::Retry("HTTP 500".into()), 2);
        assert!(retried.finished && !retried.delivered);
        assert_eq!(retried.attempts, MAX_ATTEMPTS);

        let mut refused = event.clone();
        record_attempt(&mut refused, Outcome::GiveUp("HTTP 404".into()), 1);
        assert!(refused.finished && !refused.delivered);

        record_attempt(&mut event, Outcome::Retry("HTTP 503".into()), 1);
        record_attempt(&mut event, Outcome::Delivered, 2);
        assert!(event.finished && event.delivered);
        assert_eq!((event.attempts, event.last_error), (2, None));
    }
}
