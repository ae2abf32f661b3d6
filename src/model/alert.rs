//! Alert rules (SPEC §10): what a rule watches, when it holds, the state it is in, and the
//! record of each change of state with its webhook delivery. Pure: the rule's fields are parsed
//! and checked here, and the webhook's body is written here; the evaluator is `alerts`, the
//! storage `store::{sqlite,clickhouse}::alerts`.

use serde::{Deserialize, Serialize};

use super::time::format_rfc3339;

/// What a rule measures over the traces of its window (and filter): the insights' metrics
/// (`GET /api/v1/insights`), by the same names, so a metric reads the same on both.
pub use super::metric::Metric as AlertMetric;

/// How a rule compares its metric with its threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlertOp {
    /// `>`: the condition holds while the value is above the threshold.
    Above,
    /// `<`: the condition holds while the value is below the threshold.
    Below,
}

impl AlertOp {
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            ">" => Some(Self::Above),
            "<" => Some(Self::Below),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Above => ">",
            Self::Below => "<",
        }
    }

    /// Whether `value` meets the condition.
    pub fn holds(self, value: f64, threshold: f64) -> bool {
        match self {
            Self::Above => value > threshold,
            Self::Below => value < threshold,
        }
    }
}

/// Where a rule stands. A new rule is `Ok`; only a change of state is notified.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AlertState {
    /// The condition does not hold (or has not been seen to).
    #[default]
    Ok,
    /// The condition holds.
    Firing,
}

impl AlertState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Firing => "firing",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "ok" => Some(Self::Ok),
            "firing" => Some(Self::Firing),
            _ => None,
        }
    }

    /// What a webhook says of a change into this state: `firing`, or `resolved` back to ok.
    pub fn notified_as(self) -> &'static str {
        match self {
            Self::Ok => "resolved",
            Self::Firing => "firing",
        }
    }
}

/// What an admin sets of a rule (`POST` and `PUT /api/v1/alerts`), checked.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertRuleSpec {
    /// Shown in the UI and sent as the webhook's `alert`.
    pub name: String,
    pub metric: AlertMetric,
    /// The filter language's condition (SPEC §7) the traces must match; `None`: all of them.
    /// Checked by the API with the filter parser before it is stored.
    pub filter: Option<String>,
    /// The traces of the last this many seconds are measured.
    pub window_seconds: u64,
    pub op: AlertOp,
    pub threshold: f64,
    /// Below this many traces in the window the rule neither fires nor resolves.
    pub min_traces: Option<u64>,
    /// Where changes of state are POSTed: http or https, an admin's trust decision.
    pub webhook_url: String,
}

/// A stored rule.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertRule {
    /// `al_` and 32 hex digits.
    pub id: String,
    pub project_id: String,
    pub spec: AlertRuleSpec,
    /// The HMAC-SHA256 key of the webhook's signature, hex. Made at creation, shown once; kept
    /// because every delivery signs with it.
    pub secret: String,
    pub created_at_unix_nano: u64,
    pub updated_at_unix_nano: u64,
}

/// A rule's state as the evaluator last wrote it.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertRuleState {
    pub project_id: String,
    pub rule_id: String,
    pub state: AlertState,
    /// The value that made the last change.
    pub value: Option<f64>,
    /// When the state last changed.
    pub changed_at_unix_nano: u64,
    /// Changes of state so far: orders the rows of a rule's state without trusting any
    /// server's clock (a store keeps the row with the most).
    pub transitions: u64,
}

/// One change of state of a rule and the delivery of its webhook.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertEvent {
    /// `ev_` and 32 hex digits; also in the payload, so a receiver can drop a repeat.
    pub id: String,
    pub project_id: String,
    pub rule_id: String,
    /// The state changed into.
    pub state: AlertState,
    /// The metric's value that made the change.
    pub value: f64,
    pub threshold: f64,
    pub at_unix_nano: u64,
    /// The exact JSON body POSTed (and signed) at every attempt.
    pub payload: String,
    /// Attempts made so far.
    pub attempts: u32,
    /// A receiver answered 2xx.
    pub delivered: bool,
    /// No more attempts will be made: delivered, or given up.
    pub finished: bool,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
    pub last_attempt_unix_nano: Option<u64>,
}

/// Why a rule was refused; every message names the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AlertRuleError {
    #[error("name must be 1 to 200 characters")]
    Name,
    #[error(
        "metric must be traces, error_rate, p95_duration_ms, cost_per_trace, tokens_per_trace \
         or score:<name>, got {0:?}"
    )]
    Metric(String),
    #[error(
        "window must be a whole number of seconds, minutes, hours or days from 10s to 30d, \
         like 30s, 15m, 1h or 1d, got {0:?}"
    )]
    Window(String),
    #[error("op must be \">\" or \"<\", got {0:?}")]
    Op(String),
    #[error("threshold must be a finite number")]
    Threshold,
    #[error("webhook_url must be an http:// or https:// URL with a host, got {0:?}")]
    WebhookUrl(String),
}

/// The shortest window: what the evaluation interval can reach.
pub const MIN_WINDOW_SECONDS: u64 = 10;
/// The longest window: 30 days of rollup cells, read at every evaluation.
pub const MAX_WINDOW_SECONDS: u64 = 30 * 86_400;

/// `30s`, `15m`, `1h`, `1d` → seconds, from [`MIN_WINDOW_SECONDS`] to [`MAX_WINDOW_SECONDS`].
pub fn parse_window(text: &str) -> Result<u64, AlertRuleError> {
    let invalid = || AlertRuleError::Window(text.to_owned());
    // The unit is the last character, not the last byte: `5é` ends inside a character.
    let (unit_start, unit) = text.char_indices().next_back().ok_or_else(invalid)?;
    let digits = &text[..unit_start];
    if digits.is_empty() || !digits.bytes().all(|byte| byte.is_ascii_digit()) {
        return Err(invalid());
    }
    let number: u64 = digits.parse().map_err(|_| invalid())?;
    let unit_seconds = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3600,
        'd' => 86_400,
        _ => return Err(invalid()),
    };
    number
        .checked_mul(unit_seconds)
        .filter(|seconds| (MIN_WINDOW_SECONDS..=MAX_WINDOW_SECONDS).contains(seconds))
        .ok_or_else(invalid)
}

/// Seconds in the largest unit that divides them: `90` → `90s`, `900` → `15m`, `86400` → `1d`.
pub fn format_window(seconds: u64) -> String {
    for (unit, unit_seconds) in [('d', 86_400), ('h', 3600), ('m', 60)] {
        if seconds > 0 && seconds.is_multiple_of(unit_seconds) {
            return format!("{}{unit}", seconds / unit_seconds);
        }
    }
    format!("{seconds}s")
}

/// Checks a webhook URL's shape: http or https, with a host. Where it points is the admin's
/// decision (docs/alerts.md): no address is refused.
pub fn check_webhook_url(text: &str) -> Result<(), AlertRuleError> {
    let invalid = || AlertRuleError::WebhookUrl(text.to_owned());
    let uri: http::Uri = text.parse().map_err(|_| invalid())?;
    let scheme_ok = matches!(uri.scheme_str(), Some("http" | "https"));
    let host_ok = uri.host().is_some_and(|host| !host.is_empty());
    if scheme_ok && host_ok && text.len() <= 2048 {
        Ok(())
    } else {
        Err(invalid())
    }
}

/// A webhook URL as a read token sees it: scheme and host only, since paths and queries often
/// carry a credential (a chat service's incoming-webhook URL is one).
pub fn webhook_origin(text: &str) -> String {
    match text.parse::<http::Uri>() {
        Ok(uri) => format!(
            "{}://{}/…",
            uri.scheme_str().unwrap_or("http"),
            uri.host().unwrap_or_default()
        ),
        Err(_) => "…".to_owned(),
    }
}

/// The request body of a rule: every field as sent, before it is checked.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertRuleInput {
    pub name: String,
    pub metric: String,
    pub filter: Option<String>,
    pub window: String,
    pub op: String,
    pub threshold: f64,
    pub min_traces: Option<u64>,
    pub webhook_url: String,
}

impl AlertRuleInput {
    /// The rule's fields, checked (the filter's syntax is the API's to check). A blank filter
    /// is none; `min_traces` of 0 is none.
    pub fn check(self) -> Result<AlertRuleSpec, AlertRuleError> {
        let name = self.name.trim().to_owned();
        if name.is_empty() || name.chars().count() > 200 {
            return Err(AlertRuleError::Name);
        }
        let metric = AlertMetric::parse(&self.metric)
            .ok_or_else(|| AlertRuleError::Metric(self.metric.clone()))?;
        let window_seconds = parse_window(&self.window)?;
        let op = AlertOp::parse(&self.op).ok_or_else(|| AlertRuleError::Op(self.op.clone()))?;
        if !self.threshold.is_finite() {
            return Err(AlertRuleError::Threshold);
        }
        check_webhook_url(&self.webhook_url)?;
        Ok(AlertRuleSpec {
            name,
            metric,
            filter: self
                .filter
                .map(|filter| filter.trim().to_owned())
                .filter(|filter| !filter.is_empty()),
            window_seconds,
            op,
            threshold: self.threshold,
            min_traces: self.min_traces.filter(|traces| *traces > 0),
            webhook_url: self.webhook_url,
        })
    }
}

/// The webhook's JSON body, in this field order.
#[derive(Debug, Serialize)]
struct Payload<'a> {
    alert: &'a str,
    alert_id: &'a str,
    event_id: &'a str,
    project: &'a str,
    project_id: &'a str,
    state: &'static str,
    metric: String,
    value: f64,
    op: &'static str,
    threshold: f64,
    window: String,
    filter: Option<&'a str>,
    traces: u64,
    at: String,
}

/// The body POSTed for a change of `rule` into `state` (SPEC §10), with `alert_id`, `event_id`,
/// `project_id`, `op` and the window's `traces` beside the fields the SPEC names.
pub fn webhook_payload(
    rule: &AlertRule,
    project_name: &str,
    event_id: &str,
    state: AlertState,
    value: f64,
    traces: u64,
    at_unix_nano: u64,
) -> String {
    let payload = Payload {
        alert: &rule.spec.name,
        alert_id: &rule.id,
        event_id,
        project: project_name,
        project_id: &rule.project_id,
        state: state.notified_as(),
        metric: rule.spec.metric.to_string(),
        value,
        op: rule.spec.op.as_str(),
        threshold: rule.spec.threshold,
        window: format_window(rule.spec.window_seconds),
        filter: rule.spec.filter.as_deref(),
        traces,
        at: format_rfc3339(at_unix_nano),
    };
    // Only finite numbers reach here (a value is skipped when it is not one): cannot fail.
    serde_json::to_string(&payload).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input() -> AlertRuleInput {
        AlertRuleInput {
            name: " errors ".into(),
            metric: "error_rate".into(),
            filter: Some("  ".into()),
            window: "15m".into(),
            op: ">".into(),
            threshold: 0.1,
            min_traces: Some(0),
            webhook_url: "https://hooks.example.com/T000/abc?x=1".into(),
        }
    }

    #[test]
    fn metrics_read_back_as_written() {
        for text in [
            "traces",
            "error_rate",
            "p95_duration_ms",
            "cost_per_trace",
            "tokens_per_trace",
            "score:helpful",
        ] {
            assert_eq!(AlertMetric::parse(text).unwrap().to_string(), text);
        }
        for bad in ["", "score:", "Traces", "p50_duration_ms", "error_rate "] {
            assert_eq!(AlertMetric::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn windows() {
        assert_eq!(parse_window("30s"), Ok(30));
        assert_eq!(parse_window("15m"), Ok(900));
        assert_eq!(parse_window("1h"), Ok(3600));
        assert_eq!(parse_window("1d"), Ok(86_400));
        assert_eq!(parse_window("30d"), Ok(MAX_WINDOW_SECONDS));
        for bad in [
            "",
            "s",
            "9s",
            "31d",
            "-1m",
            "+1m",
            "1.5h",
            "5x",
            "5é",
            "é",
            "1 m",
            "99999999999999999999d",
        ] {
            assert_eq!(
                parse_window(bad),
                Err(AlertRuleError::Window(bad.into())),
                "{bad}"
            );
        }
        for seconds in [10, 90, 900, 3600, 5400, 86_400, 7 * 86_400] {
            assert_eq!(parse_window(&format_window(seconds)), Ok(seconds));
        }
        assert_eq!(format_window(900), "15m");
    }

    #[test]
    fn a_rule_is_trimmed_and_blank_fields_are_none() {
        let spec = input().check().unwrap();
        assert_eq!(spec.name, "errors");
        assert_eq!(spec.filter, None);
        assert_eq!(spec.min_traces, None);
        assert_eq!(spec.window_seconds, 900);
        assert_eq!(spec.op, AlertOp::Above);
    }

    #[test]
    fn each_bad_field_is_named() {
        type Change = fn(&mut AlertRuleInput);
        let cases: [(Change, &str); 7] = [
            (|rule| rule.name = "  ".into(), "name"),
            (|rule| rule.metric = "latency".into(), "metric"),
            (|rule| rule.window = "2w".into(), "window"),
            (|rule| rule.op = ">=".into(), "op"),
            (|rule| rule.threshold = f64::NAN, "threshold"),
            (
                |rule| rule.webhook_url = "ftp://example.com/x".into(),
                "webhook_url",
            ),
            (
                |rule| rule.webhook_url = "hooks.example.com/x".into(),
                "webhook_url",
            ),
        ];
        for (change, field) in cases {
            let mut rule = input();
            change(&mut rule);
            let message = rule.check().unwrap_err().to_string();
            assert!(message.starts_with(field), "{field}: {message}");
        }
    }

    #[test]
    fn webhook_urls() {
        for good in [
            "http://127.0.0.1:9000/hook",
            "https://hooks.example.com/services/T0/B0/x",
            "http://[::1]:8080/",
            "https://user:pass@example.com/x",
        ] {
            assert_eq!(check_webhook_url(good), Ok(()), "{good}");
        }
        for bad in [
            "",
            "file:///etc/passwd",
            "javascript:alert(1)",
            "gopher://example.com/",
            "http://",
            "/relative",
        ] {
            assert!(check_webhook_url(bad).is_err(), "{bad}");
        }
        assert_eq!(
            webhook_origin("https://hooks.example.com/T000/secret?token=x"),
            "https://hooks.example.com/…"
        );
    }

    #[test]
    fn the_payload_names_the_rule_its_state_and_numbers() {
        let rule = AlertRule {
            id: "al_1".into(),
            project_id: "p1".into(),
            spec: AlertRuleSpec {
                filter: Some("model == \"gpt-4o\"".into()),
                ..input().check().unwrap()
            },
            secret: "00".into(),
            created_at_unix_nano: 0,
            updated_at_unix_nano: 0,
        };
        let body = webhook_payload(&rule, "default", "ev_1", AlertState::Ok, 0.05, 40, 0);
        let json: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(json["alert"], "errors");
        assert_eq!(json["alert_id"], "al_1");
        assert_eq!(json["project"], "default");
        assert_eq!(json["state"], "resolved");
        assert_eq!(json["metric"], "error_rate");
        assert_eq!(json["value"], 0.05);
        assert_eq!(json["threshold"], 0.1);
        assert_eq!(json["window"], "15m");
        assert_eq!(json["filter"], "model == \"gpt-4o\"");
        assert_eq!(json["at"], "1970-01-01T00:00:00.000000000Z");
        assert!(
            body.starts_with("{\"alert\":\"errors\",\"alert_id\""),
            "{body}"
        );
    }
}
