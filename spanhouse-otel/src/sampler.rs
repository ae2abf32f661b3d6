//! The sampler that keeps what the application marked as sampled, and only that by default.
//!
//! Decision order for a span:
//! 1. It has a parent span: the parent's decision (parent-based), so a trace is kept or dropped
//!    whole and a child never differs from its root.
//! 2. A root: any configured key (default `spanhouse.sample`, `gentrace.sample`) in the
//!    context's baggage or in the span's attributes says `true`: keep. Else one says anything
//!    other than `true` (say `false`): drop.
//! 3. None says anything: the wrapped sampler decides (default: drop, so unsampled spans never
//!    leave the process).

use opentelemetry::baggage::BaggageExt as _;
use opentelemetry::trace::{Link, SpanKind, TraceContextExt as _, TraceId, TraceState};
use opentelemetry::{Context, KeyValue, Value};
use opentelemetry_sdk::trace::{Sampler, SamplingDecision, SamplingResult, ShouldSample};

use crate::keys::DEFAULT_SAMPLE_KEYS;

/// Keeps a span when its context's baggage or its attributes say `sample=true`; parent-based;
/// defers to another sampler when nothing marks the root.
#[derive(Debug, Clone)]
pub struct SpanhouseSampler<S = Sampler> {
    keys: Vec<String>,
    fallback: S,
}

impl Default for SpanhouseSampler<Sampler> {
    /// Default keys; roots that no key marks are dropped.
    fn default() -> Self {
        Self::wrapping(Sampler::AlwaysOff)
    }
}

impl<S: ShouldSample + Clone + 'static> SpanhouseSampler<S> {
    /// Default keys; `fallback` decides for roots that no key marks (say
    /// `Sampler::TraceIdRatioBased(0.01)` to keep a share of the rest).
    pub fn wrapping(fallback: S) -> Self {
        Self {
            keys: DEFAULT_SAMPLE_KEYS
                .iter()
                .map(|&key| key.to_owned())
                .collect(),
            fallback,
        }
    }

    /// Reads these keys instead of the default ones.
    pub fn with_keys<K: Into<String>>(mut self, keys: impl IntoIterator<Item = K>) -> Self {
        self.keys = keys.into_iter().map(Into::into).collect();
        self
    }

    /// What the keys say for a root span: `Some(true)` keep, `Some(false)` drop, `None` silent.
    fn marked(&self, context: Option<&Context>, attributes: &[KeyValue]) -> Option<bool> {
        let mut verdict = None;
        for key in &self.keys {
            let from_baggage = context
                .and_then(|context| context.baggage().get(key))
                .map(|value| says_true(value.as_str()));
            let from_attributes = attributes
                .iter()
                .find(|attribute| attribute.key.as_str() == key)
                .map(|attribute| value_says_true(&attribute.value));
            for said in [from_baggage, from_attributes].into_iter().flatten() {
                if said {
                    return Some(true);
                }
                verdict = Some(false);
            }
        }
        verdict
    }
}

fn says_true(text: &str) -> bool {
    text.trim().eq_ignore_ascii_case("true")
}

fn value_says_true(value: &Value) -> bool {
    match value {
        Value::Bool(flag) => *flag,
        Value::String(text) => says_true(text.as_str()),
        _ => false,
    }
}

fn decided(decision: SamplingDecision, trace_state: TraceState) -> SamplingResult {
    SamplingResult {
        decision,
        attributes: Vec::new(),
        trace_state,
    }
}

impl<S: ShouldSample + Clone + 'static> ShouldSample for SpanhouseSampler<S> {
    fn should_sample(
        &self,
        parent_context: Option<&Context>,
        trace_id: TraceId,
        name: &str,
        span_kind: &SpanKind,
        attributes: &[KeyValue],
        links: &[Link],
    ) -> SamplingResult {
        if let Some(parent) = parent_context.filter(|context| context.has_active_span()) {
            let span = parent.span();
            let parent_span = span.span_context();
            let decision = if parent_span.is_sampled() {
                SamplingDecision::RecordAndSample
            } else {
                SamplingDecision::Drop
            };
            return decided(decision, parent_span.trace_state().clone());
        }
        match self.marked(parent_context, attributes) {
            Some(true) => decided(SamplingDecision::RecordAndSample, TraceState::default()),
            Some(false) => decided(SamplingDecision::Drop, TraceState::default()),
            None => self.fallback.should_sample(
                parent_context,
                trace_id,
                name,
                span_kind,
                attributes,
                links,
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use opentelemetry::baggage::BaggageExt as _;
    use opentelemetry::trace::{SpanContext, SpanId, TraceFlags};

    use super::*;

    fn decide(
        sampler: &impl ShouldSample,
        context: Option<&Context>,
        attributes: &[KeyValue],
    ) -> SamplingDecision {
        sampler
            .should_sample(
                context,
                TraceId::from(7),
                "span",
                &SpanKind::Internal,
                attributes,
                &[],
            )
            .decision
    }

    fn with_baggage(key: &str, value: &str) -> Context {
        Context::new().with_baggage([KeyValue::new(key.to_owned(), value.to_owned())])
    }

    fn with_parent(sampled: bool) -> Context {
        let flags = if sampled {
            TraceFlags::SAMPLED
        } else {
            TraceFlags::default()
        };
        let parent = SpanContext::new(
            TraceId::from(7),
            SpanId::from(3),
            flags,
            false,
            TraceState::default(),
        );
        Context::new().with_remote_span_context(parent)
    }

    const KEEP: SamplingDecision = SamplingDecision::RecordAndSample;
    const DROP: SamplingDecision = SamplingDecision::Drop;

    #[test]
    fn a_root_without_a_mark_is_dropped_by_default() {
        let sampler = SpanhouseSampler::default();
        assert_eq!(decide(&sampler, None, &[]), DROP);
        assert_eq!(decide(&sampler, Some(&Context::new()), &[]), DROP);
        assert_eq!(
            decide(&sampler, Some(&with_baggage("other", "true")), &[]),
            DROP
        );
    }

    #[test]
    fn either_default_baggage_entry_saying_true_keeps_a_root() {
        let sampler = SpanhouseSampler::default();
        for key in ["spanhouse.sample", "gentrace.sample"] {
            for value in ["true", "TRUE", " True "] {
                let context = with_baggage(key, value);
                assert_eq!(decide(&sampler, Some(&context), &[]), KEEP, "{key}={value}");
            }
        }
    }

    #[test]
    fn an_attribute_saying_true_keeps_a_root() {
        let sampler = SpanhouseSampler::default();
        let as_string = [KeyValue::new("gentrace.sample", "true")];
        let as_bool = [KeyValue::new("spanhouse.sample", true)];
        assert_eq!(decide(&sampler, None, &as_string), KEEP);
        assert_eq!(decide(&sampler, None, &as_bool), KEEP);
    }

    #[test]
    fn a_mark_saying_false_drops_even_when_the_fallback_keeps() {
        let sampler = SpanhouseSampler::wrapping(Sampler::AlwaysOn);
        let context = with_baggage("spanhouse.sample", "false");
        assert_eq!(decide(&sampler, Some(&context), &[]), DROP);
        let attributes = [KeyValue::new("gentrace.sample", false)];
        assert_eq!(decide(&sampler, None, &attributes), DROP);
        let number = [KeyValue::new("gentrace.sample", 1_i64)];
        assert_eq!(decide(&sampler, None, &number), DROP);
    }

    #[test]
    fn true_wins_over_false_between_keys() {
        let sampler = SpanhouseSampler::default();
        let context = with_baggage("spanhouse.sample", "false");
        let attributes = [KeyValue::new("gentrace.sample", "true")];
        assert_eq!(decide(&sampler, Some(&context), &attributes), KEEP);
    }

    #[test]
    fn the_fallback_decides_unmarked_roots() {
        let sampler = SpanhouseSampler::wrapping(Sampler::AlwaysOn);
        assert_eq!(decide(&sampler, None, &[]), KEEP);
        assert_eq!(decide(&sampler, Some(&Context::new()), &[]), KEEP);
    }

    #[test]
    fn children_follow_their_parent_whatever_they_carry() {
        let sampler = SpanhouseSampler::wrapping(Sampler::AlwaysOn);
        let sampled_parent = with_parent(true);
        assert_eq!(decide(&sampler, Some(&sampled_parent), &[]), KEEP);
        let unmarked_child = [KeyValue::new("spanhouse.sample", "false")];
        assert_eq!(
            decide(&sampler, Some(&sampled_parent), &unmarked_child),
            KEEP
        );

        let dropped_parent = with_parent(false).with_baggage([KeyValue::new(
            "spanhouse.sample".to_owned(),
            "true".to_owned(),
        )]);
        let marked_child = [KeyValue::new("gentrace.sample", "true")];
        assert_eq!(decide(&sampler, Some(&dropped_parent), &marked_child), DROP);
    }

    #[test]
    fn the_parents_trace_state_is_kept() {
        let sampler = SpanhouseSampler::default();
        let state = TraceState::from_key_value([("vendor", "x")]).unwrap();
        let parent = SpanContext::new(
            TraceId::from(7),
            SpanId::from(3),
            TraceFlags::SAMPLED,
            true,
            state.clone(),
        );
        let context = Context::new().with_remote_span_context(parent);
        let result = sampler.should_sample(
            Some(&context),
            TraceId::from(7),
            "child",
            &SpanKind::Internal,
            &[],
            &[],
        );
        assert_eq!(result.trace_state, state);
    }

    #[test]
    fn custom_keys_replace_the_defaults() {
        let sampler = SpanhouseSampler::default().with_keys(["app.keep"]);
        assert_eq!(
            decide(&sampler, Some(&with_baggage("app.keep", "true")), &[]),
            KEEP
        );
        assert_eq!(
            decide(
                &sampler,
                Some(&with_baggage("spanhouse.sample", "true")),
                &[]
            ),
            DROP
        );
    }
}
