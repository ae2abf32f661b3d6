//! Prometheus metrics, written out in the text exposition format at `GET /metrics`.
//!
//! Per-project span counters come from [`IngestionStats`]; the request latency histograms (by
//! route and status), the store write latency histogram, the queue depth and the alert
//! evaluator's counters live here; a project's business figures in `project`.

pub mod project;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::stats::{IngestionStats, counter};

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// A latency histogram with fixed buckets.
#[derive(Default)]
pub struct Histogram {
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Histogram {
    pub fn observe(&self, elapsed: Duration) {
        let seconds = elapsed.as_secs_f64();
        for (bound, bucket) in BUCKETS.iter().zip(&self.buckets) {
            if seconds <= *bound {
                bucket.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micros
            .fetch_add(elapsed.as_micros() as u64, Ordering::Relaxed);
    }

    fn write(&self, out: &mut String, name: &str, labels: &str) {
        let separator = if labels.is_empty() { "" } else { "," };
        for (bound, bucket) in BUCKETS.iter().zip(&self.buckets) {
            let _ = writeln!(
                out,
                "{name}_bucket{{{labels}{separator}le=\"{bound}\"}} {}",
                bucket.load(Ordering::Relaxed)
            );
        }
        let count = self.count.load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "{name}_bucket{{{labels}{separator}le=\"+Inf\"}} {count}"
        );
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let braces = if labels.is_empty() {
            String::new()
        } else {
            format!("{{{labels}}}")
        };
        let _ = writeln!(out, "{name}_sum{braces} {sum}");
        let _ = writeln!(out, "{name}_count{braces} {count}");
    }
}

/// What this server's alert evaluator did (`alerts`).
#[derive(Debug, Default)]
pub struct AlertMetrics {
    /// Rules evaluated: each rule counts once per evaluation round.
    pub evaluations: AtomicU64,
    /// Webhook attempts answered 2xx.
    pub webhooks_delivered: AtomicU64,
    /// Webhook attempts that failed (any other answer, or none).
    pub webhooks_failed: AtomicU64,
    /// 1 while this server holds the alerts lease.
    pub lease_held: AtomicU64,
}

/// Everything measured outside the ingestion counters.
#[derive(Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(String, u16), std::sync::Arc<Histogram>>>,
    pub store_writes: Histogram,
    pub alerts: AlertMetrics,
    /// The business figures of each project, read once a minute (`project`).
    pub project_figures: project::ProjectFiguresCache,
}

impl Metrics {
    /// Records one request of `route` answered with `status` after `elapsed`.
    pub fn observe_request(&self, route: &str, status: u16, elapsed: Duration) {
        let histogram = {
            let mut requests = self
                .requests
                .lock()
                .unwrap_or_else(|poison| poison.into_inner());
            std::sync::Arc::clone(requests.entry((route.to_owned(), status)).or_default())
        };
        histogram.observe(elapsed);
    }

    /// The exposition text: the server's own figures, and the ingestion counters of `project`
    /// (its id and name) when the caller may see them; no other project's.
    pub fn render(
        &self,
        stats: &IngestionStats,
        queue_depth: u64,
        project: Option<(&str, &str)>,
    ) -> String {
        let mut out = String::new();
        let counters = [
            (
                counter::RECEIVED,
                "spanhouse_spans_received_total",
                "Spans received in decodable requests.",
                None,
            ),
            (
                counter::ACCEPTED,
                "spanhouse_spans_accepted_total",
                "Spans stored.",
                None,
            ),
            (
                counter::FILTERED,
                "spanhouse_spans_filtered_total",
                "Spans dropped by sampling or filter rules.",
                Some("rule"),
            ),
            (
                counter::REJECTED,
                "spanhouse_spans_rejected_total",
                "Spans refused, by reason.",
                Some("reason"),
            ),
            (
                counter::RATE_LIMITED,
                "spanhouse_spans_rate_limited_total",
                "Spans refused by the project's rate limit.",
                None,
            ),
            (
                counter::TRUNCATED,
                "spanhouse_spans_truncated_total",
                "Spans stored with a value cut to the length limit.",
                None,
            ),
            (
                counter::REDACTED,
                "spanhouse_values_redacted_total",
                "String values rewritten by the project's redaction rules.",
                None,
            ),
            (
                counter::METRIC_POINTS,
                "spanhouse_metric_points_received_total",
                "Data points of the metrics signal, acknowledged and not stored.",
                None,
            ),
        ];
        let totals = stats.totals();
        for (counter_name, metric, help, label_name) in counters {
            let _ = writeln!(out, "# HELP {metric} {help}\n# TYPE {metric} counter");
            for ((project_id, counter, label), value) in &totals {
                let Some((shown, project)) = project.filter(|(id, _)| *id == project_id) else {
                    continue;
                };
                if *counter != counter_name {
                    continue;
                }
                let project_id = shown;
                let mut labels = format!(
                    "project_id=\"{}\",project=\"{}\"",
                    escape(project_id),
                    escape(project)
                );
                if let Some(label_name) = label_name {
                    let _ = write!(labels, ",{label_name}=\"{}\"", escape(label));
                }
                let _ = writeln!(out, "{metric}{{{labels}}} {value}");
            }
        }
        let _ = writeln!(
            out,
            "# HELP spanhouse_ingest_queue_spans Spans and content events waiting for the store.\n\
             # TYPE spanhouse_ingest_queue_spans gauge\nspanhouse_ingest_queue_spans {queue_depth}"
        );
        let _ = writeln!(
            out,
            "# HELP spanhouse_store_write_duration_seconds Time of one store write (a batch).\n\
             # TYPE spanhouse_store_write_duration_seconds histogram"
        );
        self.store_writes
            .write(&mut out, "spanhouse_store_write_duration_seconds", "");
        let alerts = &self.alerts;
        let _ = writeln!(
            out,
            "# HELP spanhouse_alert_evaluations_total Alert rules evaluated by this server (only \
             the holder of the alerts lease evaluates).\n\
             # TYPE spanhouse_alert_evaluations_total counter\n\
             spanhouse_alert_evaluations_total {}\n\
             # HELP spanhouse_alert_webhook_attempts_total Alert webhook attempts of this server, \
             by result.\n\
             # TYPE spanhouse_alert_webhook_attempts_total counter\n\
             spanhouse_alert_webhook_attempts_total{{result=\"delivered\"}} {}\n\
             spanhouse_alert_webhook_attempts_total{{result=\"failed\"}} {}\n\
             # HELP spanhouse_alerts_lease_held 1 while this server holds the alerts lease.\n\
             # TYPE spanhouse_alerts_lease_held gauge\nspanhouse_alerts_lease_held {}",
            alerts.evaluations.load(Ordering::Relaxed),
            alerts.webhooks_delivered.load(Ordering::Relaxed),
            alerts.webhooks_failed.load(Ordering::Relaxed),
            alerts.lease_held.load(Ordering::Relaxed),
        );
        let _ = writeln!(
            out,
            "# HELP spanhouse_request_duration_seconds Time to answer a request, by route and status.\n\
             # TYPE spanhouse_request_duration_seconds histogram"
        );
        let requests = self
            .requests
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .clone();
        for ((route, status), histogram) in requests {
            let labels = format!("route=\"{}\",status=\"{status}\"", escape(&route));
            histogram.write(&mut out, "spanhouse_request_duration_seconds", &labels);
        }
        out
    }
}

/// Escapes a label value (backslash, quote, newline).
pub(crate) fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_histograms_and_escapes_labels() {
        let stats = IngestionStats::default();
        stats.record("p1", counter::FILTERED, "name == \"x\"", 3);
        stats.record("p1", counter::ACCEPTED, "", 7);
        let metrics = Metrics::default();
        metrics.observe_request("/v1/traces", 200, Duration::from_millis(3));
        metrics.store_writes.observe(Duration::from_millis(20));
        stats.record("p2", counter::ACCEPTED, "", 9);
        let text = metrics.render(&stats, 5, Some(("p1", "default")));
        assert!(!text.contains("p2"), "another project's series: {text}");
        let public = metrics.render(&stats, 5, None);
        assert!(!public.contains("project_id"), "{public}");
        assert!(
            public.contains("spanhouse_ingest_queue_spans 5"),
            "{public}"
        );
        assert!(text.contains(
            "spanhouse_spans_filtered_total{project_id=\"p1\",project=\"default\",rule=\"name == \\\"x\\\"\"} 3"
        ), "{text}");
        assert!(
            text.contains(
                "spanhouse_spans_accepted_total{project_id=\"p1\",project=\"default\"} 7"
            )
        );
        assert!(text.contains("spanhouse_ingest_queue_spans 5"));
        assert!(text.contains(
            "spanhouse_request_duration_seconds_bucket{route=\"/v1/traces\",status=\"200\",le=\"0.005\"} 1"
        ));
        assert!(text.contains(
            "spanhouse_request_duration_seconds_count{route=\"/v1/traces\",status=\"200\"} 1"
        ));
        assert!(text.contains("spanhouse_store_write_duration_seconds_count 1"));
    }
}
