//! Traffic with planted changes, for the insights tests (API and browser): what changed is
//! known, so what insights find can be checked against it.

use opentelemetry_proto::tonic::trace::v1::Span;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::{double_attribute, int_attribute, span, string_attribute};

const MINUTE: u64 = 60 * 1_000_000_000;

/// Traces in each period.
pub const PER_PERIOD: usize = 1500;

/// The changes planted in the window, as insights name them: (metric, segment field, value).
pub const PLANTED: [(&str, &str, &str); 3] = [
    ("error_rate", "model", "m-a"),
    ("cost_per_trace", "pipeline_id", "p-2"),
    ("p95_duration_ms", r#"metadata["team"]"#, "t3"),
];

/// `period` of baseline from `start`, then `period` of window, [`PER_PERIOD`] traces each (none
/// in the last five minutes of a period): one LLM span per trace, three models and three
/// pipelines, a team in the trace metadata. `planted`: the changes of [`PLANTED`] in the window.
pub fn traffic(seed: u64, start: u64, period: u64, planted: bool) -> Vec<Span> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..2 * PER_PERIOD)
        .map(|index| {
            let window = index >= PER_PERIOD;
            let model = ["m-a", "m-b", "m-c"][rng.random_range(0..3)];
            let pipeline = ["p-1", "p-2", "p-3"][rng.random_range(0..3)];
            let error_rate = if planted && window && model == "m-a" {
                0.2
            } else {
                0.02
            };
            let tokens: i64 = rng.random_range(200..2000);
            let mut cost = tokens as f64 * 2e-6 * rng.random_range(0.7..1.3);
            if planted && window && pipeline == "p-2" {
                cost *= 2.0;
            }
            let begin =
                start + if window { period } else { 0 } + rng.random_range(0..period - 5 * MINUTE);
            let mut trace_id = [0u8; 16];
            trace_id[..8].copy_from_slice(&seed.to_be_bytes());
            trace_id[8..].copy_from_slice(&(index as u64 + 1).to_be_bytes());
            let mut root = span(1, 1, None, "chat", begin);
            root.trace_id = trace_id.to_vec();
            let team = ["t1", "t2", "t3", "t4"][rng.random_range(0..4)];
            let slow = if planted && window && team == "t3" {
                3
            } else {
                1
            };
            root.end_time_unix_nano = begin + slow * rng.random_range(200..3000) * 1_000_000;
            root.status.as_mut().unwrap().code = if rng.random_bool(error_rate) { 2 } else { 1 };
            root.attributes = vec![
                string_attribute("gen_ai.operation.name", "chat"),
                string_attribute("gen_ai.request.model", model),
                string_attribute("gentrace.pipeline_id", pipeline),
                int_attribute("gen_ai.usage.input_tokens", tokens - 100),
                int_attribute("gen_ai.usage.output_tokens", 100),
                double_attribute("gen_ai.usage.cost", cost),
                string_attribute("langfuse.trace.metadata.team", team),
            ];
            root
        })
        .collect()
}
