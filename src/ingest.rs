//! What happens to an export request once it is decoded and converted, for every receiver
//! alike: the project's redaction rules applied to every string value (first, so that nothing
//! after sees what they remove), values cut to the limits, the project's sampling attribute and
//! filters applied, the rest normalized, rate-limited and handed to the pipeline. Every span is
//! counted under what happened to it (`stats`); log records and metric points take the same rate
//! limit and are counted too.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use crate::limits::{SpanLimits, truncate_event, truncate_span};
use crate::model::attributes::find;
use crate::model::{AttrValue, ConvertedLogs, ConvertedSpans, NormalizedSpan, Span, TraceId};
use crate::normalize::Normalizer;
use crate::pipeline::{Pipeline, PipelineError};
use crate::redact::Redactor;
use crate::settings::{ProjectRules, RulesCache};
use crate::stats::{IngestionStats, RETENTION_RULE, SAMPLING_RULE, counter, reason, signal};
use crate::store::{PreparedTraces, Store};

/// Spans a request must hold for its preparation to be split over another thread.
const MIN_SPANS_PER_THREAD: usize = 200;

/// Why a decoded request is not stored.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("request has {count} spans; at most {limit} are accepted per request")]
    TooManySpans { count: usize, limit: usize },
    #[error("the project's rate limit is exceeded; retry in {} s", retry_after.as_secs().max(1))]
    RateLimited { retry_after: Duration },
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
}

/// The spans of one request, ready to store, and what happened to the others.
#[derive(Debug, Default)]
pub struct PreparedSpans {
    pub spans: Vec<NormalizedSpan>,
    pub rejected: usize,
    /// Readable reason for `partial_success.error_message`; empty when nothing was rejected.
    pub error_message: String,
    /// Spans among `spans` with a value cut to the limits.
    pub truncated: usize,
    /// The store's work on the spans' traces, one per part ([`Store::prepare_traces`]).
    traces: Vec<PreparedTraces>,
}

/// The outcome of an accepted request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngestOutcome {
    pub accepted: usize,
    pub rejected: usize,
    pub error_message: String,
}

/// The ingest path shared by the receivers.
pub struct Ingest {
    pub pipeline: Pipeline,
    /// The store the pipeline writes to, for its [`Store::encode_spans`].
    pub store: Arc<dyn Store>,
    pub normalizer: Arc<Normalizer>,
    pub rules: Arc<RulesCache>,
    pub stats: Arc<IngestionStats>,
    pub limits: SpanLimits,
}

impl Ingest {
    /// Limits, filters and normalizes the spans of a request. CPU work only: receivers run it
    /// off the async runtime for large requests.
    pub fn prepare(
        &self,
        project_id: &str,
        mut converted: ConvertedSpans,
    ) -> Result<PreparedSpans, IngestError> {
        let received = converted.spans.len() + converted.rejected.len();
        self.stats
            .record(project_id, counter::RECEIVED, "", received as u64);
        if received > self.limits.max_spans_per_request {
            self.stats.record(
                project_id,
                counter::REJECTED,
                reason::TOO_MANY_SPANS,
                received as u64,
            );
            return Err(IngestError::TooManySpans {
                count: received,
                limit: self.limits.max_spans_per_request,
            });
        }
        self.stats.record(
            project_id,
            counter::REJECTED,
            reason::INVALID_SPAN,
            converted.rejected.len() as u64,
        );
        let rules = self.rules.get(project_id);
        // Redaction comes first: the reasons of rejected spans quote their names, and sampling,
        // filters, normalization, the store, the spool and the logs see only redacted values.
        let spans = std::mem::take(&mut converted.spans);
        let spans = match rules.as_ref().and_then(|rules| rules.redactor.as_ref()) {
            Some(redactor) => {
                let mut redacted = 0;
                for rejected in &mut converted.rejected {
                    redacted += usize::from(redactor.redact_text(&mut rejected.reason));
                }
                let (spans, redacted_spans) = self.redact_all(redactor, spans);
                redacted += redacted_spans;
                self.stats
                    .record(project_id, counter::REDACTED, "", redacted as u64);
                spans
            }
            None => spans,
        };
        for rejected in converted.rejected.iter().take(3) {
            tracing::debug!(project = project_id, reason = %rejected.reason, "rejected span");
        }
        let error_message = converted.error_message();
        let kept = match &rules {
            Some(rules) => self.apply_rules(project_id, rules, spans),
            None => spans,
        };
        let kept = self.drop_expired(project_id, kept);
        if !self.pipeline.has_room(kept.len()) {
            self.stats.record(
                project_id,
                counter::REJECTED,
                reason::OVERLOADED,
                kept.len() as u64,
            );
            return Err(PipelineError::Overloaded {
                capacity: self.pipeline.capacity(),
            }
            .into());
        }
        let (spans, truncated, traces) = self.normalize_all(project_id, kept);
        Ok(PreparedSpans {
            spans,
            traces,
            rejected: converted.rejected.len(),
            error_message,
            truncated,
        })
    }

    /// Truncates, normalizes and encodes the spans of a request, and has the store prepare
    /// their traces part by part; returns them with how many were truncated. Below full load a
    /// large request is split over the machine's cores: a request's latency is this work plus
    /// the write, and the other cores are idle.
    fn normalize_all(
        &self,
        project_id: &str,
        spans: Vec<Span>,
    ) -> (Vec<NormalizedSpan>, usize, Vec<PreparedTraces>) {
        let parts = self.parts_for(spans.len());
        let parts = in_parts(spans, parts, |part| {
            let mut truncated = 0;
            let mut spans: Vec<NormalizedSpan> = part
                .into_iter()
                .map(|mut span| {
                    truncated += usize::from(truncate_span(&mut span, &self.limits));
                    let semantics = self.normalizer.normalize(&span, &[]);
                    NormalizedSpan {
                        encoded_body: None,
                        semantics,
                        span,
                    }
                })
                .collect();
            self.store.encode_spans(&mut spans);
            let traces = self.store.prepare_traces(project_id, &spans);
            (spans, truncated, traces)
        });
        let mut all = Vec::with_capacity(parts.iter().map(|(spans, ..)| spans.len()).sum());
        let mut truncated = 0;
        let mut traces = Vec::new();
        for (spans, part_truncated, part_traces) in parts {
            all.extend(spans);
            truncated += part_truncated;
            traces.extend(part_traces);
        }
        (all, truncated, traces)
    }

    /// How many parts to split the work on `spans` spans of a request into. Split only while
    /// less than this request's worth of spans waits to be written, i.e. below full load: at
    /// full load every core is busy anyway, and a thread per part then cost memory and speed
    /// (4x overload: 507-519 MiB and 9,100-9,500 spans/s split, 416-425 MiB and 11,300-12,000
    /// spans/s not).
    fn parts_for(&self, spans: usize) -> usize {
        let idle = self.pipeline.buffered() < spans as u64;
        if !idle {
            return 1;
        }
        std::thread::available_parallelism()
            .map_or(1, usize::from)
            .min(spans / MIN_SPANS_PER_THREAD)
            .max(1)
    }

    /// Redacts the spans of a request, split over cores as normalization is; returns them with
    /// the number of values changed. Resources and scopes, shared by many spans, are done once.
    fn redact_all(&self, redactor: &Redactor, mut spans: Vec<Span>) -> (Vec<Span>, usize) {
        let shared = redactor.redact_shared(&mut spans);
        let parts = self.parts_for(spans.len());
        let parts = in_parts(spans, parts, |mut part| {
            let changed: usize = part.iter_mut().map(|span| redactor.redact_span(span)).sum();
            (part, changed)
        });
        let mut all = Vec::with_capacity(parts.iter().map(|(spans, _)| spans.len()).sum());
        let mut changed = shared;
        for (spans, part_changed) in parts {
            all.extend(spans);
            changed += part_changed;
        }
        (all, changed)
    }

    /// Filters the spans that start before the project's retention keeps (rule `retention`):
    /// retention would delete their trace, whose timestamp is a span's start, at its next run.
    fn drop_expired(&self, project_id: &str, mut spans: Vec<Span>) -> Vec<Span> {
        let Some(days) = self.rules.retention_days(project_id) else {
            return spans;
        };
        let cutoff = crate::settings::retention_cutoff(crate::model::time::now_unix_nano(), days);
        let before = spans.len();
        spans.retain(|span| span.start_time_unix_nano >= cutoff);
        let dropped = before - spans.len();
        if dropped > 0 {
            self.stats.record(
                project_id,
                counter::FILTERED,
                RETENTION_RULE,
                dropped as u64,
            );
        }
        spans
    }

    /// The sampling attribute, then the filter conditions; counts what they drop, by rule.
    fn apply_rules(&self, project_id: &str, rules: &ProjectRules, spans: Vec<Span>) -> Vec<Span> {
        let spans = match &rules.settings.sample_attribute {
            Some(attribute) => {
                let (kept, dropped) = sample(spans, attribute);
                self.stats
                    .record(project_id, counter::FILTERED, SAMPLING_RULE, dropped as u64);
                kept
            }
            None => spans,
        };
        if rules.filters.is_empty() {
            return spans;
        }
        spans
            .into_iter()
            .filter(|span| {
                let Some((rule, _)) = rules
                    .filters
                    .iter()
                    .find(|(_, condition)| condition.matches(span))
                else {
                    return true;
                };
                self.stats.record(project_id, counter::FILTERED, rule, 1);
                false
            })
            .collect()
    }

    /// Rate-limits and stores prepared spans; returns once they are durable.
    pub async fn store(
        &self,
        project_id: &str,
        prepared: PreparedSpans,
    ) -> Result<IngestOutcome, IngestError> {
        let accepted = prepared.spans.len();
        self.take_rate(project_id, accepted, signal::SPANS, accepted as u64)?;
        if let Err(error) = self
            .pipeline
            .submit(project_id, prepared.spans, prepared.traces)
            .await
        {
            let why = match &error {
                PipelineError::Overloaded { .. } | PipelineError::ShuttingDown => {
                    reason::OVERLOADED
                }
                PipelineError::TooManySpans { .. } => reason::TOO_MANY_SPANS,
                PipelineError::Store(_) => reason::STORE_UNAVAILABLE,
            };
            self.stats
                .record(project_id, counter::REJECTED, why, accepted as u64);
            return Err(error.into());
        }
        self.stats
            .record(project_id, counter::ACCEPTED, "", accepted as u64);
        self.stats.record(
            project_id,
            counter::TRUNCATED,
            "",
            prepared.truncated as u64,
        );
        Ok(IngestOutcome {
            accepted,
            rejected: prepared.rejected,
            error_message: prepared.error_message,
        })
    }

    /// Counts the data points of a metrics request, which are acknowledged and not stored. The
    /// request takes one unit of the project's rate limit: the points cost spanhouse nothing to
    /// keep, and SDKs export them on a timer, so they must not starve the project's spans.
    pub fn accept_metric_points(&self, project_id: &str, points: u64) -> Result<(), IngestError> {
        self.take_rate(project_id, 1, signal::METRICS, points)?;
        self.stats
            .record(project_id, counter::METRIC_POINTS, "", points);
        Ok(())
    }

    /// Stores the GenAI content events of a logs request; returns once they are durable. Each
    /// record takes a unit of the project's rate limit, as a span does, and its values are cut
    /// to the same limits; records are counted as `log_records`.
    pub async fn store_content_events(
        &self,
        project_id: &str,
        mut converted: ConvertedLogs,
    ) -> Result<(), IngestError> {
        let records = (converted.content.len() + converted.ignored) as u64;
        self.stats
            .record(project_id, counter::LOG_RECORDS, "", records);
        if let Some(rules) = self.rules.get(project_id)
            && let Some(redactor) = &rules.redactor
        {
            let redacted: usize = converted
                .content
                .iter_mut()
                .map(|content| redactor.redact_event(&mut content.event))
                .sum();
            self.stats
                .record(project_id, counter::REDACTED, "", redacted as u64);
        }
        if converted.ignored > 0 {
            tracing::debug!(
                records = converted.ignored,
                "log records without GenAI content for a span"
            );
        }
        let kept = converted.content.len();
        self.take_rate(project_id, kept, signal::LOGS, kept as u64)?;
        let truncated = converted
            .content
            .iter_mut()
            .filter_map(|content| truncate_event(&mut content.event, &self.limits).then_some(()))
            .count();
        self.stats.record(
            project_id,
            counter::TRUNCATED,
            signal::LOGS,
            truncated as u64,
        );
        self.pipeline
            .submit_content_events(project_id, converted.content)
            .await?;
        Ok(())
    }

    /// Takes `units` from the project's rate limit, if it has one; counts `count` items of
    /// `signal` as rate limited when it refuses.
    fn take_rate(
        &self,
        project_id: &str,
        units: usize,
        signal: &str,
        count: u64,
    ) -> Result<(), IngestError> {
        let Some(rules) = self.rules.get(project_id) else {
            return Ok(());
        };
        match rules
            .rate_limiter
            .as_ref()
            .map(|limiter| limiter.try_take(units))
        {
            Some(Err(retry_after)) if units > 0 => {
                self.stats
                    .record(project_id, counter::RATE_LIMITED, signal, count);
                Err(IngestError::RateLimited { retry_after })
            }
            _ => Ok(()),
        }
    }
}

/// Whether a span carries the sampling attribute set to true (`"true"` or `true`).
fn is_sampled(span: &Span, attribute: &str) -> bool {
    match find(&span.attributes, attribute) {
        Some(AttrValue::String(text)) => text.eq_ignore_ascii_case("true"),
        Some(AttrValue::Bool(flag)) => *flag,
        _ => false,
    }
}

/// Keeps the sampled spans and every span of a trace that has a sampled span in the same
/// request, so that sampling never orphans part of a kept trace. Returns the kept spans and how
/// many were dropped.
fn sample(spans: Vec<Span>, attribute: &str) -> (Vec<Span>, usize) {
    let sampled_traces: HashSet<TraceId> = spans
        .iter()
        .filter(|span| is_sampled(span, attribute))
        .map(|span| span.trace_id)
        .collect();
    let total = spans.len();
    let kept: Vec<Span> = spans
        .into_iter()
        .filter(|span| sampled_traces.contains(&span.trace_id))
        .collect();
    let dropped = total - kept.len();
    (kept, dropped)
}

/// `work` done on `items` cut into `parts` consecutive parts, all but the first on threads of
/// their own; the results of the parts, in order. A part whose thread cannot start is worked on
/// this one; a panic in a part goes on here, as if this thread had worked it.
fn in_parts<T: Send, R: Send>(
    items: Vec<T>,
    parts: usize,
    work: impl Fn(Vec<T>) -> R + Sync,
) -> Vec<R> {
    if parts <= 1 {
        return vec![work(items)];
    }
    // Each part waits in a slot for its thread, so that a thread that never started leaves
    // its part behind.
    let part_size = items.len().div_ceil(parts).max(1);
    let mut rest = items;
    let mut slots = Vec::with_capacity(parts);
    while rest.len() > part_size {
        let tail = rest.split_off(part_size);
        slots.push(Mutex::new(Some(rest)));
        rest = tail;
    }
    slots.push(Mutex::new(Some(rest)));
    let take = |slot: &Mutex<Option<Vec<T>>>| {
        slot.lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
            .unwrap_or_default()
    };
    std::thread::scope(|scope| {
        let threads: Vec<_> = slots[1..]
            .iter()
            .map(|slot| {
                std::thread::Builder::new()
                    .name("spanhouse-prepare".into())
                    .spawn_scoped(scope, || work(take(slot)))
                    .ok()
            })
            .collect();
        let mut all = vec![work(take(&slots[0]))];
        for (slot, thread) in slots[1..].iter().zip(threads) {
            all.push(match thread {
                Some(thread) => thread
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
                None => work(take(slot)),
            });
        }
        all
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::KeyValue;
    use crate::model::span::test_support::make_span;

    #[test]
    fn working_in_parts_keeps_every_item_in_order() {
        for (count, parts) in [(0, 2), (1, 2), (5, 2), (1000, 2), (1001, 3), (7, 1), (3, 8)] {
            let items: Vec<usize> = (0..count).collect();
            let threads = Mutex::new(HashSet::new());
            let mapped = in_parts(items, parts, |part| {
                if !part.is_empty() {
                    threads.lock().unwrap().insert(std::thread::current().id());
                }
                part.into_iter().map(|item| item * 2).collect::<Vec<_>>()
            })
            .concat();
            assert_eq!(mapped, (0..count).map(|item| item * 2).collect::<Vec<_>>());
            // Every part with items ran on a thread of its own.
            let expected_threads = parts.min(count).max(usize::from(count > 0));
            assert_eq!(
                threads.into_inner().unwrap().len(),
                expected_threads,
                "{count}/{parts}"
            );
        }
    }

    #[test]
    fn sampling_keeps_whole_traces_of_the_request() {
        let sampled_root = Span {
            attributes: vec![KeyValue::new(
                "gentrace.sample",
                AttrValue::String("true".into()),
            )],
            ..make_span(1, 1)
        };
        let child_without_attribute = make_span(1, 2);
        let other_trace = make_span(2, 1);
        let explicitly_false = Span {
            attributes: vec![KeyValue::new(
                "gentrace.sample",
                AttrValue::String("false".into()),
            )],
            ..make_span(3, 1)
        };
        let boolean = Span {
            attributes: vec![KeyValue::new("gentrace.sample", AttrValue::Bool(true))],
            ..make_span(4, 1)
        };
        let (kept, dropped) = sample(
            vec![
                sampled_root,
                child_without_attribute,
                other_trace,
                explicitly_false,
                boolean,
            ],
            "gentrace.sample",
        );
        assert_eq!(dropped, 2);
        let kept: Vec<(u8, u8)> = kept
            .iter()
            .map(|span| (span.trace_id.0[0], span.span_id.0[0]))
            .collect();
        assert_eq!(kept, vec![(1, 1), (1, 2), (4, 1)]);
    }
}
