//! Insights on synthetic traffic: a planted change is found, and only it, over many seeds; no
//! change is found where none was planted.

use std::collections::BTreeSet;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::segment::{Field, Segment};
use super::source::ListSource;
use super::{Comparison, DEFAULT_ALPHA, DEFAULT_MIN_TRACES, Metric, find};
use crate::store::insight_traces::InsightTrace;

const HOUR: u64 = 3_600_000_000_000;

/// What to plant in the window.
#[derive(Clone, Copy)]
pub struct Plant {
    /// Model `m-a`'s error rate in the window (2 % elsewhere).
    pub error_rate_of_a: f64,
    /// Pipeline `p-2`'s cost in the window, as a multiple.
    pub cost_of_p2: f64,
}

/// No change.
pub const NOTHING: Plant = Plant {
    error_rate_of_a: 0.02,
    cost_of_p2: 1.0,
};

/// Model `m-a` fails ten times as often; pipeline `p-2` costs twice as much.
pub const PLANTED: Plant = Plant {
    error_rate_of_a: 0.2,
    cost_of_p2: 2.0,
};

fn normal(rng: &mut StdRng) -> f64 {
    let (u, v): (f64, f64) = (rng.random_range(f64::EPSILON..1.0), rng.random());
    (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
}

/// `per_period` traces in the baseline `[0, 1 h)` and as many in the window `[1 h, 2 h)`:
/// three models and three pipelines drawn independently, two root span names, four teams in
/// metadata, a tag on some, log-normal durations, costs by tokens, a score on a third.
pub fn traffic(seed: u64, per_period: usize, plant: Plant) -> Vec<InsightTrace> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut traces = Vec::with_capacity(2 * per_period);
    for index in 0..2 * per_period {
        let window = index >= per_period;
        let model = ["m-a", "m-b", "m-c"][rng.random_range(0..3)];
        let pipeline = ["p-1", "p-2", "p-3"][rng.random_range(0..3)];
        let error_rate = if window && model == "m-a" {
            plant.error_rate_of_a
        } else {
            0.02
        };
        let tokens: i64 = rng.random_range(200..2000);
        let mut cost = tokens as f64 * 2e-6 * (1.0 + 0.2 * normal(&mut rng)).max(0.1);
        if window && pipeline == "p-2" {
            cost *= plant.cost_of_p2;
        }
        let mut trace = InsightTrace {
            timestamp_unix_nano: if window { HOUR } else { 0 } + rng.random_range(0..HOUR),
            is_error: rng.random_bool(error_rate),
            duration_ms: (6.0 + 0.5 * normal(&mut rng)).exp(),
            total_tokens: tokens,
            total_cost: cost,
            models: vec![model.to_owned()],
            pipeline_id: Some(pipeline.to_owned()),
            service_name: Some("app".to_owned()),
            root_span_name: Some(["chat", "rag"][rng.random_range(0..2)].to_owned()),
            metadata: vec![("team".into(), format!("t{}", rng.random_range(1..5)))],
            ..Default::default()
        };
        if rng.random_bool(0.3) {
            trace.tags.push("beta".into());
        }
        if rng.random_bool(0.33) {
            let helpful = if rng.random_bool(0.7) { 1.0 } else { 0.0 };
            trace.scores.push(("helpful".into(), helpful));
        }
        traces.push(trace);
    }
    traces
}

/// The last hour against the one before.
pub fn hours() -> Comparison {
    Comparison {
        window: (HOUR, 2 * HOUR),
        baseline: (0, HOUR),
        min_traces: DEFAULT_MIN_TRACES,
        alpha: DEFAULT_ALPHA,
        max_traces: super::DEFAULT_MAX_TRACES,
    }
}

/// What was found, as (metric, field, value).
async fn found(seed: u64, plant: Plant) -> BTreeSet<(String, String, String)> {
    let source = ListSource(traffic(seed, 3000, plant));
    let found = find(&source, &hours()).await.unwrap();
    assert!(found.tests > 50, "{} tests", found.tests);
    found
        .insights
        .iter()
        .map(|insight| {
            (
                insight.metric.to_string(),
                insight.segment.field.to_string(),
                insight.segment.value.clone(),
            )
        })
        .collect()
}

fn planted() -> BTreeSet<(String, String, String)> {
    [
        ("error_rate", "model", "m-a"),
        ("cost_per_trace", "pipeline_id", "p-2"),
    ]
    .into_iter()
    .map(|(metric, field, value)| (metric.to_owned(), field.to_owned(), value.to_owned()))
    .collect()
}

#[tokio::test]
async fn the_planted_changes_are_found_and_nothing_else() {
    for seed in 0..10 {
        assert_eq!(found(seed, PLANTED).await, planted(), "seed {seed}");
    }
}

#[tokio::test]
async fn fifty_null_runs_find_nothing() {
    for seed in 100..150 {
        let found = found(seed, NOTHING).await;
        assert!(found.is_empty(), "seed {seed}: {found:?}");
    }
}

#[tokio::test]
async fn a_change_everywhere_is_the_projects() {
    let mut traces = traffic(7, 3000, NOTHING);
    for trace in traces
        .iter_mut()
        .filter(|trace| trace.timestamp_unix_nano >= HOUR)
    {
        trace.duration_ms *= 3.0;
    }
    let found = find(&ListSource(traces), &hours()).await.unwrap();
    let latency: Vec<&Segment> = found
        .insights
        .iter()
        .filter(|insight| insight.metric == Metric::P95DurationMs)
        .map(|insight| &insight.segment)
        .collect();
    assert_eq!(latency, [&Segment::project()]);
    let insight = &found.insights[0];
    assert!((insight.change.unwrap() - 2.0).abs() < 0.2, "{insight:?}");
}

#[tokio::test]
async fn the_insight_carries_its_numbers() {
    let source = ListSource(traffic(3, 3000, PLANTED));
    let found = find(&source, &hours()).await.unwrap();
    let errors = found
        .insights
        .iter()
        .find(|insight| insight.metric == Metric::ErrorRate)
        .unwrap();
    assert_eq!(errors.segment.field, Field::Model);
    assert!((errors.baseline - 0.02).abs() < 0.015, "{errors:?}");
    assert!((errors.current - 0.2).abs() < 0.04, "{errors:?}");
    assert!(errors.p_value < DEFAULT_ALPHA && errors.z > 0.0);
    assert!(errors.traces > 800 && errors.baseline_traces > 800);
    // One scan, then one without each kept change that had echoes.
    assert!(
        found.scans >= 2 && found.scans <= 3,
        "{} scans",
        found.scans
    );
}

#[tokio::test]
async fn a_sample_finds_the_same_changes_and_scales_its_counts() {
    let source = ListSource(traffic(11, 6000, PLANTED));
    let comparison = Comparison {
        max_traces: 2000,
        ..hours()
    };
    let found = find(&source, &comparison).await.unwrap();
    assert_eq!(found.sample, 3);
    let names: BTreeSet<(String, String, String)> = found
        .insights
        .iter()
        .map(|insight| {
            (
                insight.metric.to_string(),
                insight.segment.field.to_string(),
                insight.segment.value.clone(),
            )
        })
        .collect();
    assert_eq!(names, planted());
    let errors = &found
        .insights
        .iter()
        .find(|insight| insight.metric == Metric::ErrorRate)
        .unwrap();
    // About a third of 6000 traces use m-a; the sample's count is scaled back.
    assert!((1700..2300).contains(&errors.traces), "{errors:?}");
    assert_eq!(errors.traces % 3, 0);
    let null = find(&ListSource(traffic(12, 6000, NOTHING)), &comparison)
        .await
        .unwrap();
    assert!(null.insights.is_empty(), "{:?}", null.insights);
}
