//! One evaluation of a rule: its metric over the traces of its window (from the same store reads
//! the dashboard makes: `trace_stats`, and `score_values_matching` for a score's mean), and
//! whether that changes its state.

use std::sync::Arc;

use crate::filter::query::parse_trace_filter;
use crate::model::alert::{AlertMetric, AlertRule, AlertRuleSpec, AlertState};
use crate::store::{StatsQuery, Store, StoreError};

/// A rule's metric over its window now.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Measurement {
    /// `None` when the window holds nothing to measure (a rate or mean of no traces, a p95
    /// of none, a score nobody gave): the rule then keeps its state.
    pub value: Option<f64>,
    /// Traces of the window the filter matches.
    pub traces: u64,
}

/// Why a rule could not be measured.
#[derive(Debug, thiserror::Error)]
pub enum MeasureError {
    /// The stored filter no longer parses (the API checked it when it was saved).
    #[error("the rule's filter does not parse: {0}")]
    Filter(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The traces of `[now − window, now)`. Without a filter the store reads its per-minute
/// rollups, whose first minute is read whole: the window then reaches back to the start of
/// that minute (up to 59 s more).
pub fn window_query(spec: &AlertRuleSpec, now_unix_nano: u64) -> Result<StatsQuery, MeasureError> {
    let window_nanos = spec.window_seconds.saturating_mul(1_000_000_000);
    let filter = spec
        .filter
        .as_deref()
        .map(|text| {
            parse_trace_filter(text)
                .map(Arc::new)
                .map_err(|error| MeasureError::Filter(error.to_string()))
        })
        .transpose()?;
    Ok(StatsQuery {
        start_unix_nano: now_unix_nano.saturating_sub(window_nanos),
        end_unix_nano: now_unix_nano,
        bucket_nanos: window_nanos.max(1),
        filter,
    })
}

/// Measures a rule's metric now.
pub async fn measure(
    store: &dyn Store,
    rule: &AlertRule,
    now_unix_nano: u64,
) -> Result<Measurement, MeasureError> {
    let query = window_query(&rule.spec, now_unix_nano)?;
    let totals = store.trace_stats(&rule.project_id, &query).await?.totals;
    let traces = totals.traces;
    let per_trace = |sum: f64| (traces > 0).then(|| sum / traces as f64);
    let value = match &rule.spec.metric {
        AlertMetric::Traces => Some(traces as f64),
        AlertMetric::ErrorRate => per_trace(totals.errors as f64),
        AlertMetric::P95DurationMs => totals.p95_ms,
        AlertMetric::CostPerTrace => per_trace(totals.cost),
        AlertMetric::TokensPerTrace => per_trace(totals.tokens as f64),
        AlertMetric::Score(name) => {
            let values = store
                .score_values_matching(&rule.project_id, &query)
                .await?;
            let (count, sum) = values
                .iter()
                .filter(|(_, score, _)| score == name)
                .fold((0u64, 0.0), |(count, sum), (_, _, value)| {
                    (count + 1, sum + value)
                });
            (count > 0).then(|| sum / count as f64)
        }
    };
    Ok(Measurement {
        value: value.filter(|value| value.is_finite()),
        traces,
    })
}

/// The state a rule in `current` changes to on `measurement`; `None` when it stays. A rule
/// without a value, or with fewer traces than its `min_traces`, neither fires nor resolves.
pub fn decide(
    spec: &AlertRuleSpec,
    current: AlertState,
    measurement: &Measurement,
) -> Option<AlertState> {
    let value = measurement.value?;
    if spec
        .min_traces
        .is_some_and(|minimum| measurement.traces < minimum)
    {
        return None;
    }
    let holds = spec.op.holds(value, spec.threshold);
    match (current, holds) {
        (AlertState::Ok, true) => Some(AlertState::Firing),
        (AlertState::Firing, false) => Some(AlertState::Ok),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::alert::AlertOp;

    fn spec(op: AlertOp, threshold: f64, min_traces: Option<u64>) -> AlertRuleSpec {
        AlertRuleSpec {
            name: "errors".into(),
            metric: AlertMetric::ErrorRate,
            filter: None,
            window_seconds: 900,
            op,
            threshold,
            min_traces,
            webhook_url: "http://127.0.0.1:1/".into(),
        }
    }

    fn measured(value: Option<f64>, traces: u64) -> Measurement {
        Measurement { value, traces }
    }

    #[test]
    fn fires_when_the_condition_starts_and_resolves_when_it_ends() {
        let rule = spec(AlertOp::Above, 0.1, None);
        let high = measured(Some(0.5), 10);
        let low = measured(Some(0.05), 10);
        assert_eq!(
            decide(&rule, AlertState::Ok, &high),
            Some(AlertState::Firing)
        );
        assert_eq!(decide(&rule, AlertState::Firing, &high), None);
        assert_eq!(
            decide(&rule, AlertState::Firing, &low),
            Some(AlertState::Ok)
        );
        assert_eq!(decide(&rule, AlertState::Ok, &low), None);
        // At the threshold the condition (strictly above) does not hold.
        assert_eq!(
            decide(&rule, AlertState::Firing, &measured(Some(0.1), 10)),
            Some(AlertState::Ok)
        );
        let below = spec(AlertOp::Below, 5.0, None);
        assert_eq!(
            decide(&below, AlertState::Ok, &measured(Some(0.0), 0)),
            Some(AlertState::Firing)
        );
    }

    #[test]
    fn too_few_traces_or_no_value_keep_the_state() {
        let rule = spec(AlertOp::Above, 0.1, Some(20));
        for state in [AlertState::Ok, AlertState::Firing] {
            assert_eq!(decide(&rule, state, &measured(Some(0.9), 19)), None);
            assert_eq!(decide(&rule, state, &measured(Some(0.0), 19)), None);
            assert_eq!(decide(&rule, state, &measured(None, 100)), None);
        }
        assert_eq!(
            decide(&rule, AlertState::Ok, &measured(Some(0.9), 20)),
            Some(AlertState::Firing)
        );
    }

    #[test]
    fn the_window_ends_now_and_carries_the_filter() {
        let mut rule = spec(AlertOp::Above, 0.1, None);
        rule.filter = Some("status == \"error\"".into());
        let query = window_query(&rule, 1_000_000_000_000).unwrap();
        assert_eq!(query.end_unix_nano, 1_000_000_000_000);
        assert_eq!(query.start_unix_nano, 100_000_000_000);
        assert!(query.filter.is_some());
        rule.filter = Some("status ==".into());
        assert!(matches!(
            window_query(&rule, 0),
            Err(MeasureError::Filter(_))
        ));
    }
}
