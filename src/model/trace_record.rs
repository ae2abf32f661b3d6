//! TraceRecord: one LLM interaction, computed from the spans of a trace stored so far.
//!
//! The computation is a pure function of the set of spans (never of their arrival order), so
//! every backend that stores the same spans shows the same record, and a retried span changes
//! nothing.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::ids::{SpanId, TraceId};
use super::llm::{Cost, TokenUsage};
use super::span::StatusCode;

/// The facts of one stored span that a TraceRecord is computed from. Backends keep them in
/// columns so that recomputing a record never has to read attributes or messages.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SpanDigest {
    /// The span's id; it breaks ties between spans that start in the same nanosecond.
    pub span_id: Option<SpanId>,
    /// `None` for a root span.
    pub parent_span_id: Option<SpanId>,
    /// The span's name.
    pub name: String,
    /// Start, in nanoseconds since the Unix epoch.
    pub start_time_unix_nano: u64,
    /// End, in nanoseconds since the Unix epoch.
    pub end_time_unix_nano: u64,
    /// How the span ended.
    pub status: StatusCode,
    /// The resource's `service.name`.
    pub service_name: Option<String>,
    /// The span's input text.
    pub input: Option<String>,
    /// The span's output text.
    pub output: Option<String>,
    /// The span's session, as the application names it.
    pub session_id: Option<String>,
    /// The span's end user.
    pub user_id: Option<String>,
    /// The span's Gentrace pipeline.
    pub pipeline_id: Option<String>,
    /// Set for LLM call spans.
    pub llm: Option<LlmDigest>,
    /// Set for tool execution spans.
    pub tool_name: Option<String>,
}

/// The numbers of one LLM call that a trace sums up.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LlmDigest {
    /// The model that answered, else the one asked for.
    pub model: Option<String>,
    /// Tokens the call used.
    pub usage: TokenUsage,
    /// What the call cost, in USD.
    pub cost: Cost,
}

impl LlmDigest {
    /// The call's total tokens: reported, else prompt + completion (`None` when neither is).
    pub fn effective_total_tokens(&self) -> Option<i64> {
        self.usage
            .total
            .or_else(|| add(self.usage.prompt, self.usage.completion))
    }

    /// The call's total cost: reported, else prompt + completion cost.
    pub fn effective_total_cost(&self) -> Option<f64> {
        self.cost
            .total
            .or_else(|| add_cost(self.cost.prompt, self.cost.completion))
    }
}

/// One trace as an LLM interaction (SPEC §4).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct TraceRecord {
    /// The trace's id, lowercase hex.
    pub trace_id: String,
    /// The id of the project the trace belongs to.
    pub project: String,
    /// Start of the root span in Unix nanoseconds; the earliest start while the root is missing.
    /// Shown as `timestamp`, RFC 3339.
    #[serde(rename = "timestamp", with = "super::time::rfc3339_nanos")]
    pub timestamp_unix_nano: u64,
    /// The root span's input, else that of the earliest-starting span that has one.
    pub input: Option<String>,
    /// The root span's output, else that of the latest-ending span that has one.
    pub output: Option<String>,
    /// The root span's status code, `ok`, `error` or `unset`; `unset` while the root is missing.
    pub status: String,
    /// The root span's length in milliseconds, with a fraction; while the root is missing,
    /// from the earliest start to the latest end.
    pub duration_ms: f64,
    /// The root span's session, else the earliest span's that has one.
    pub session_id: Option<String>,
    /// The root span's user, else the earliest span's that has one.
    pub user_id: Option<String>,
    /// The root span's Gentrace pipeline, else the earliest span's that has one.
    pub pipeline_id: Option<String>,
    /// The root span's name; `None` while it is missing.
    pub root_span_name: Option<String>,
    /// The root span's `service.name`, else the earliest span's that has one.
    pub service_name: Option<String>,
    /// Spans of the trace stored so far.
    pub span_count: u64,
    /// The distinct models of its LLM calls (response model, else request model), sorted.
    pub models: Vec<String>,
    /// Input tokens summed over its LLM calls; `None` when no call says.
    pub prompt_token_count: Option<i64>,
    /// Output tokens summed over its LLM calls; `None` when no call says.
    pub completion_token_count: Option<i64>,
    /// All tokens summed over its LLM calls (each call's total, else its prompt + completion);
    /// `None` when no call says.
    pub total_token_count: Option<i64>,
    /// Cost of the input tokens in USD, summed where known.
    pub prompt_cost: Option<f64>,
    /// Cost of the output tokens in USD, summed where known.
    pub completion_cost: Option<f64>,
    /// Cost of its LLM calls in USD, summed where known.
    pub total_cost: Option<f64>,
    /// Spans that are LLM calls.
    pub llm_call_count: u64,
    /// Spans that run a tool.
    pub tool_call_count: u64,
    /// Tool spans that ended with an error status.
    pub tool_call_error_count: u64,
    /// How often each tool ran, by name.
    pub tool_call_name_counts: BTreeMap<String, u64>,
}

/// Failed tool spans carry this in their digest's status.
fn is_error(span: &SpanDigest) -> bool {
    span.status == StatusCode::Error
}

/// Orders spans by start time, then by span id, so that ties are broken the same way always.
fn start_order(span: &SpanDigest) -> (u64, Option<SpanId>) {
    (span.start_time_unix_nano, span.span_id)
}

fn end_order(span: &SpanDigest) -> (u64, Option<SpanId>) {
    (span.end_time_unix_nano, span.span_id)
}

fn add(sum: Option<i64>, value: Option<i64>) -> Option<i64> {
    match (sum, value) {
        (None, None) => None,
        (sum, value) => Some(sum.unwrap_or(0).saturating_add(value.unwrap_or(0))),
    }
}

fn add_cost(sum: Option<f64>, value: Option<f64>) -> Option<f64> {
    match (sum, value) {
        (None, None) => None,
        (sum, value) => Some(sum.unwrap_or(0.0) + value.unwrap_or(0.0)),
    }
}

impl TraceRecord {
    /// The span a trace's record takes its root from: the earliest without a parent. When it
    /// has an input and an output, the record's are its, whatever the other spans hold.
    pub fn root(spans: &[SpanDigest]) -> Option<&SpanDigest> {
        spans
            .iter()
            .filter(|span| span.parent_span_id.is_none())
            .min_by_key(|span| start_order(span))
    }

    /// Computes the record of a trace from the digests of all its stored spans.
    pub fn compute(project: &str, trace_id: TraceId, spans: &[SpanDigest]) -> Self {
        let root = Self::root(spans);
        let mut by_start: Vec<&SpanDigest> = spans.iter().collect();
        by_start.sort_by_key(|span| start_order(span));
        let earliest = by_start.first().copied();

        let first_with = |pick: fn(&SpanDigest) -> Option<&String>| -> Option<String> {
            root.and_then(pick)
                .or_else(|| by_start.iter().find_map(|span| pick(span)))
                .cloned()
        };
        let latest_output = root.and_then(|span| span.output.clone()).or_else(|| {
            spans
                .iter()
                .filter(|span| span.output.is_some())
                .max_by_key(|span| end_order(span))
                .and_then(|span| span.output.clone())
        });

        let (timestamp, duration_ms) = match root {
            Some(root) => (
                root.start_time_unix_nano,
                root.end_time_unix_nano
                    .saturating_sub(root.start_time_unix_nano) as f64
                    / 1e6,
            ),
            None => {
                let start = earliest.map_or(0, |span| span.start_time_unix_nano);
                let end = spans
                    .iter()
                    .map(|span| span.end_time_unix_nano)
                    .max()
                    .unwrap_or(start);
                (start, end.saturating_sub(start) as f64 / 1e6)
            }
        };

        let mut record = TraceRecord {
            trace_id: trace_id.to_hex(),
            project: project.to_owned(),
            timestamp_unix_nano: timestamp,
            input: first_with(|span| span.input.as_ref()),
            output: latest_output,
            status: root
                .map_or(StatusCode::Unset, |span| span.status)
                .as_str()
                .to_owned(),
            duration_ms,
            session_id: first_with(|span| span.session_id.as_ref()),
            user_id: first_with(|span| span.user_id.as_ref()),
            pipeline_id: first_with(|span| span.pipeline_id.as_ref()),
            root_span_name: root.map(|span| span.name.clone()),
            service_name: first_with(|span| span.service_name.as_ref()),
            span_count: spans.len() as u64,
            ..Default::default()
        };

        let mut models = BTreeSet::new();
        for span in spans {
            if let Some(llm) = &span.llm {
                record.llm_call_count += 1;
                if let Some(model) = &llm.model {
                    models.insert(model.clone());
                }
                record.prompt_token_count = add(record.prompt_token_count, llm.usage.prompt);
                record.completion_token_count =
                    add(record.completion_token_count, llm.usage.completion);
                record.total_token_count =
                    add(record.total_token_count, llm.effective_total_tokens());
                record.prompt_cost = add_cost(record.prompt_cost, llm.cost.prompt);
                record.completion_cost = add_cost(record.completion_cost, llm.cost.completion);
                record.total_cost = add_cost(record.total_cost, llm.effective_total_cost());
            }
            if let Some(tool) = &span.tool_name {
                record.tool_call_count += 1;
                if is_error(span) {
                    record.tool_call_error_count += 1;
                }
                *record
                    .tool_call_name_counts
                    .entry(tool.clone())
                    .or_default() += 1;
            }
        }
        record.models = models.into_iter().collect();
        record
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest(span: u8, parent: Option<u8>, start: u64, end: u64) -> SpanDigest {
        SpanDigest {
            span_id: Some(SpanId([span; 8])),
            parent_span_id: parent.map(|parent| SpanId([parent; 8])),
            name: format!("span-{span}"),
            start_time_unix_nano: start,
            end_time_unix_nano: end,
            ..Default::default()
        }
    }

    #[test]
    fn root_decides_timestamp_status_and_texts() {
        let root = SpanDigest {
            status: StatusCode::Error,
            input: Some("root in".into()),
            ..digest(1, None, 100, 900)
        };
        let child = SpanDigest {
            input: Some("child in".into()),
            output: Some("child out".into()),
            ..digest(2, Some(1), 50, 1000)
        };
        let record = TraceRecord::compute("p", TraceId([7; 16]), &[child.clone(), root.clone()]);
        assert_eq!(record.timestamp_unix_nano, 100);
        assert_eq!(record.status, "error");
        assert_eq!(record.duration_ms, 0.0008);
        assert_eq!(record.input.as_deref(), Some("root in"));
        assert_eq!(record.output.as_deref(), Some("child out"));
        assert_eq!(record.root_span_name.as_deref(), Some("span-1"));
        assert_eq!(record.span_count, 2);
        assert_eq!(
            record,
            TraceRecord::compute("p", TraceId([7; 16]), &[root, child])
        );
    }

    #[test]
    fn without_root_uses_earliest_span() {
        let early = SpanDigest {
            input: Some("early".into()),
            ..digest(2, Some(1), 10, 20)
        };
        let late = SpanDigest {
            input: Some("late".into()),
            output: Some("late out".into()),
            ..digest(3, Some(1), 30, 40)
        };
        let record = TraceRecord::compute("p", TraceId([7; 16]), &[late, early]);
        assert_eq!(record.timestamp_unix_nano, 10);
        assert_eq!(record.status, "unset");
        assert_eq!(record.input.as_deref(), Some("early"));
        assert_eq!(record.output.as_deref(), Some("late out"));
        assert_eq!(record.root_span_name, None);
    }

    #[test]
    fn sums_llm_and_tool_spans() {
        let llm = SpanDigest {
            llm: Some(LlmDigest {
                model: Some("gpt-4o".into()),
                usage: TokenUsage {
                    prompt: Some(19),
                    completion: Some(10),
                    total: None,
                },
                cost: Cost::default(),
            }),
            ..digest(2, Some(1), 10, 20)
        };
        let tool = SpanDigest {
            tool_name: Some("search".into()),
            status: StatusCode::Error,
            ..digest(3, Some(1), 30, 40)
        };
        let record = TraceRecord::compute("p", TraceId([7; 16]), &[llm, tool]);
        assert_eq!(record.total_token_count, Some(29));
        assert_eq!(record.models, vec!["gpt-4o".to_owned()]);
        assert_eq!(record.llm_call_count, 1);
        assert_eq!(record.tool_call_error_count, 1);
        assert_eq!(record.tool_call_name_counts["search"], 1);
        assert_eq!(record.total_cost, None);
    }
}
