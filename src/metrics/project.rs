//! A project's business figures on `/metrics`, for users who alert with Prometheus: traces,
//! errors, tokens, cost, p95 duration and score means of the traces of the last five whole
//! minutes (the minute running is left out, as it still fills).
//!
//! Gauges over a recent window rather than counters: traces are counted by their own timestamp,
//! spans of a trace keep arriving after it began, and deletion and retention take traces away,
//! so no count of the store only ever grows; and the store, not one server, knows the
//! deployment's traces, so every server of a deployment answers the same. The figures come from
//! the dashboard's per-minute rollups (five minutes' cells) and the window's scores, read at most
//! once per project and minute; a scrape between costs nothing.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};

use crate::store::rollup::{MINUTE_NANOS, minute_of};
use crate::store::{StatsQuery, Store, StoreResult};

/// Minutes the figures cover.
pub const WINDOW_MINUTES: u64 = 5;

/// The figures of one project's window.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ProjectFigures {
    pub traces: u64,
    pub errors: u64,
    pub tokens: i64,
    pub cost: f64,
    pub p95_ms: Option<f64>,
    /// Per score name: how many numeric and boolean scores, and their mean.
    pub scores: BTreeMap<String, (u64, f64)>,
}

/// The figures of each project, for the minute they were read in.
#[derive(Debug, Default)]
pub struct ProjectFiguresCache {
    entries: Mutex<HashMap<String, (u64, Arc<ProjectFigures>)>>,
}

impl ProjectFiguresCache {
    /// The project's figures of the five whole minutes before the one `now` is in.
    pub async fn figures(
        &self,
        store: &dyn Store,
        project_id: &str,
        now_unix_nano: u64,
    ) -> StoreResult<Arc<ProjectFigures>> {
        let minute = minute_of(now_unix_nano);
        let cached = self
            .entries
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .get(project_id)
            .filter(|(read_in, _)| *read_in == minute)
            .map(|(_, figures)| Arc::clone(figures));
        if let Some(figures) = cached {
            return Ok(figures);
        }
        let window = WINDOW_MINUTES * MINUTE_NANOS;
        let query = StatsQuery {
            start_unix_nano: minute.saturating_sub(window),
            end_unix_nano: minute,
            bucket_nanos: window,
            filter: None,
        };
        let totals = store.trace_stats(project_id, &query).await?.totals;
        let mut scores: BTreeMap<String, (u64, f64)> = BTreeMap::new();
        for (_, name, value) in store
            .score_values(project_id, query.start_unix_nano, query.end_unix_nano)
            .await?
        {
            let (count, sum) = scores.entry(name).or_default();
            *count += 1;
            *sum += value;
        }
        for (count, sum) in scores.values_mut() {
            *sum /= *count as f64;
        }
        let figures = Arc::new(ProjectFigures {
            traces: totals.traces,
            errors: totals.errors,
            tokens: totals.tokens,
            cost: totals.cost,
            p95_ms: totals.p95_ms,
            scores,
        });
        self.entries
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .insert(project_id.to_owned(), (minute, Arc::clone(&figures)));
        Ok(figures)
    }
}

/// The figures in the exposition format, labelled with the project's id and name.
pub fn render(project_id: &str, project_name: &str, figures: &ProjectFigures) -> String {
    let labels = format!(
        "project_id=\"{}\",project=\"{}\"",
        super::escape(project_id),
        super::escape(project_name)
    );
    let mut out = String::new();
    let window = "in the last five whole minutes (the running minute excluded)";
    let mut gauge = |name: &str, help: &str, value: String| {
        let _ = writeln!(
            out,
            "# HELP {name} {help} {window}.\n# TYPE {name} gauge\n{name}{{{labels}}} {value}"
        );
    };
    gauge(
        "spanhouse_project_traces",
        "Traces with a timestamp",
        figures.traces.to_string(),
    );
    gauge(
        "spanhouse_project_trace_errors",
        "Traces whose status is error, of those",
        figures.errors.to_string(),
    );
    gauge(
        "spanhouse_project_tokens",
        "Total tokens of those traces",
        figures.tokens.to_string(),
    );
    gauge(
        "spanhouse_project_cost_usd",
        "Total cost in USD of those traces",
        figures.cost.to_string(),
    );
    if let Some(p95_ms) = figures.p95_ms {
        gauge(
            "spanhouse_project_trace_duration_p95_seconds",
            "95th percentile of the duration of those traces",
            (p95_ms / 1000.0).to_string(),
        );
    }
    if !figures.scores.is_empty() {
        for (name, help) in [
            (
                "spanhouse_project_score_mean",
                "Mean of the numeric and boolean scores of each name of those traces",
            ),
            (
                "spanhouse_project_scores",
                "Numeric and boolean scores of each name of those traces",
            ),
        ] {
            let _ = writeln!(out, "# HELP {name} {help} {window}.\n# TYPE {name} gauge");
            for (score, (count, mean)) in &figures.scores {
                let value = if name.ends_with("mean") {
                    mean.to_string()
                } else {
                    count.to_string()
                };
                let _ = writeln!(
                    out,
                    "{name}{{{labels},score=\"{}\"}} {value}",
                    super::escape(score)
                );
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_gauges_with_the_project_and_escaped_scores() {
        let figures = ProjectFigures {
            traces: 40,
            errors: 4,
            tokens: 1200,
            cost: 0.25,
            p95_ms: Some(1500.0),
            scores: BTreeMap::from([("say \"hi\"".to_owned(), (2, 0.75))]),
        };
        let text = render("p1", "default", &figures);
        assert!(text.contains("# TYPE spanhouse_project_traces gauge\n"));
        assert!(
            text.contains("spanhouse_project_traces{project_id=\"p1\",project=\"default\"} 40\n")
        );
        assert!(
            text.contains(
                "spanhouse_project_trace_errors{project_id=\"p1\",project=\"default\"} 4\n"
            )
        );
        assert!(text.contains("spanhouse_project_trace_duration_p95_seconds{project_id=\"p1\",project=\"default\"} 1.5\n"));
        assert!(text.contains(
            "spanhouse_project_score_mean{project_id=\"p1\",project=\"default\",score=\"say \\\"hi\\\"\"} 0.75\n"
        ), "{text}");
        assert!(text.contains("spanhouse_project_scores{project_id=\"p1\",project=\"default\",score=\"say \\\"hi\\\"\"} 2\n"));
        let empty = render("p1", "default", &ProjectFigures::default());
        assert!(
            !empty.contains("p95") && !empty.contains("score"),
            "{empty}"
        );
    }
}
