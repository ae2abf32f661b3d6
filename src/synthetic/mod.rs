//! Synthetic LLM traffic: realistic traces in the conventions spanhouse reads, for the load
//! generator (`examples/loadgen.rs`) and the benchmarks (`benches/`). Pure; no I/O.

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};

mod template;

pub use template::{Template, TemplateError};

/// Which convention generated LLM spans use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Convention {
    Genai,
    Openinference,
    Traceloop,
    /// A third of each.
    Mix,
}

fn text(key: &str, value: impl Into<String>) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.into())),
        }),
        ..Default::default()
    }
}

fn int(key: &str, value: i64) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::IntValue(value)),
        }),
        ..Default::default()
    }
}

/// Text of `bytes` bytes that differs per span and reads like English prose to a compressor and
/// to the trigram index: words of a 384-word vocabulary drawn with Zipf-like frequencies,
/// sentences with capitals, commas and full stops. A KiB of it holds ~525 distinct trigrams and
/// LZ4 keeps ~860 bytes of it, about what English prose gives (465–540 trigrams and 748–826
/// bytes for passages of the GPL's text); text of a few repeated words would flatter the
/// store's compression and its text index.
pub fn filler(bytes: usize, seed: u64) -> String {
    let (words, table) = vocabulary();
    // Scrambled: xorshift is linear, and neighbouring seeds (or seeds one bit apart, which a
    // `| 1` used to merge) gave texts shared by several spans of a request.
    let mut state = scramble(seed).max(1);
    let mut out = String::with_capacity(bytes + 24);
    let mut sentence_start = true;
    while out.len() < bytes {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let word = words[usize::from(table[(state as usize) & (table.len() - 1)])];
        if sentence_start {
            let mut chars = word.chars();
            if let Some(first) = chars.next() {
                out.push(first.to_ascii_uppercase());
                out.push_str(chars.as_str());
            }
        } else {
            out.push_str(word);
        }
        sentence_start = false;
        // The high bits: the word's choice used the low ones.
        match (state >> 56) % 50 {
            0..=3 => {
                out.push('.');
                sentence_start = true;
            }
            4..=6 => out.push(','),
            _ => {}
        }
        out.push(' ');
    }
    out.truncate(bytes);
    out
}

/// Common English words and words of LLM applications, most frequent first, separated by
/// white space.
const WORDS: &str = include_str!("words.txt");

/// The words of `WORDS`, and draws of them by Zipf-like frequency (the k-th word's weight ∝
/// 1 / k^0.9) as a table indexed by 14 random bits: one lookup per word keeps the load
/// generator's own CPU low.
fn vocabulary() -> &'static (Vec<&'static str>, Vec<u16>) {
    const SLOTS: usize = 1 << 14;
    static VOCABULARY: std::sync::OnceLock<(Vec<&'static str>, Vec<u16>)> =
        std::sync::OnceLock::new();
    VOCABULARY.get_or_init(|| {
        let words: Vec<&str> = WORDS.split_whitespace().collect();
        let weights: Vec<f64> = (1..=words.len())
            .map(|rank| 1.0 / (rank as f64).powf(0.9))
            .collect();
        let total: f64 = weights.iter().sum();
        let mut table = Vec::with_capacity(SLOTS);
        let mut cumulative = 0.0;
        for (word, weight) in weights.iter().enumerate() {
            cumulative += weight;
            // Every word gets at least one slot; the last takes the slots rounding left over.
            let end = ((cumulative / total * SLOTS as f64).round() as usize).max(table.len() + 1);
            let end = if word + 1 == words.len() {
                SLOTS
            } else {
                end.min(SLOTS)
            };
            table.resize(end, word as u16);
        }
        (words, table)
    })
}

/// The attributes of one LLM span in a convention (about 12 attributes).
pub fn llm_attributes(
    convention: Convention,
    index: u64,
    input: String,
    output: String,
) -> Vec<KeyValue> {
    let convention = match convention {
        Convention::Mix => [
            Convention::Genai,
            Convention::Openinference,
            Convention::Traceloop,
        ][(index % 3) as usize],
        other => other,
    };
    match convention {
        Convention::Openinference => vec![
            text("openinference.span.kind", "LLM"),
            text("llm.system", "openai"),
            text("llm.model_name", "gpt-4o-mini-2024-07-18"),
            text("input.value", input.clone()),
            text("output.value", output.clone()),
            text("llm.input_messages.0.message.role", "user"),
            text("llm.input_messages.0.message.content", input),
            text("llm.output_messages.0.message.role", "assistant"),
            text("llm.output_messages.0.message.content", output),
            int("llm.token_count.prompt", 250),
            int("llm.token_count.completion", 250),
            int("llm.token_count.total", 500),
        ],
        Convention::Traceloop => vec![
            text("gen_ai.operation.name", "chat"),
            text("gen_ai.provider.name", "openai"),
            text("gen_ai.request.model", "gpt-4o-mini"),
            text("gen_ai.response.model", "gpt-4o-mini-2024-07-18"),
            text(
                "gen_ai.input.messages",
                serde_json::json!([{"role": "user", "parts": [{"type": "text", "content": input}]}])
                    .to_string(),
            ),
            text(
                "gen_ai.output.messages",
                serde_json::json!([{"role": "assistant", "parts": [{"type": "text", "content": output}], "finish_reason": "stop"}])
                    .to_string(),
            ),
            int("gen_ai.usage.input_tokens", 250),
            int("gen_ai.usage.output_tokens", 250),
            text("traceloop.span.kind", "task"),
            text("traceloop.entity.name", "answer"),
            text("session.id", format!("session-{}", index % 97)),
            text("user.id", format!("user-{}", index % 13)),
        ],
        _ => vec![
            text("gen_ai.operation.name", "chat"),
            text("gen_ai.system", "openai"),
            text("gen_ai.request.model", "gpt-4o-mini"),
            text("gen_ai.response.model", "gpt-4o-mini-2024-07-18"),
            int("gen_ai.usage.input_tokens", 250),
            int("gen_ai.usage.output_tokens", 250),
            text("input.value", input),
            text("output.value", output),
            text("gen_ai.response.finish_reasons", "stop"),
            text("session.id", format!("session-{}", index % 97)),
            text("user.id", format!("user-{}", index % 13)),
            int("gen_ai.request.max_tokens", 512),
        ],
    }
}

/// The shape of generated traffic.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    pub spans_per_request: usize,
    /// Spans per trace; the first is the root.
    pub spans_per_trace: usize,
    /// Bytes of input text and of output text on each span.
    pub text_bytes: usize,
    pub convention: Convention,
    /// Each trace's root sent with the next request, after its children, as SDKs' batch
    /// processors do (children end first); the first request's roots are of traces alone.
    pub late_roots: bool,
}

/// splitmix64's finalizer: a bijection of `u64` that spreads neighbouring numbers apart.
pub fn scramble(mut value: u64) -> u64 {
    value = (value ^ (value >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    value = (value ^ (value >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    value ^ (value >> 31)
}

/// One request, ids unique to `run`, `connection` and `request`; returns it and the ids of the
/// traces it completes (their roots).
pub fn make_request(
    options: &Shape,
    run: u64,
    connection: u64,
    request: u64,
) -> (ExportTraceServiceRequest, Vec<[u8; 16]>) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let per_trace = options.spans_per_trace.max(1);
    let mut trace_ids = Vec::new();
    let spans = (0..options.spans_per_request)
        .map(|index| {
            let position = index % per_trace;
            // With late roots, a request's root spans are of the previous request's traces.
            let late = options.late_roots && position == 0;
            // The request's field of the trace number is 28 bits wide: the first request's late
            // roots (of "request -1") must not spill into the connection's bits, or every
            // connection would send the same root-only traces.
            let sent_with = if late {
                request.wrapping_sub(1) & ((1 << 28) - 1)
            } else {
                request
            };
            let trace_number = (connection << 40) | (sent_with << 12) | (index / per_trace) as u64;
            let mut trace_id = [0u8; 16];
            // Scrambled as SDKs' random ids are, so that the store sees ids in no order; the
            // mix is a bijection, so ids stay unique.
            trace_id[..8].copy_from_slice(&scramble(trace_number).to_be_bytes());
            trace_id[8..].copy_from_slice(&run.to_be_bytes());
            // The traces sent whole by the end of this request (a late root of the first
            // request has no children: its trace is not counted).
            if position == 0 && !(late && request == 0) {
                trace_ids.push(trace_id);
            }
            let span_id = |position: usize| {
                let mut id = (trace_number.wrapping_mul(31) ^ run).to_be_bytes();
                id[7] = id[7].wrapping_add(position as u8 + 1);
                id[0] |= 1;
                id.to_vec()
            };
            // Each span's own texts: neighbouring traces and positions must not meet on one
            // seed (`trace_number ^ position` did: trace 8's second span and trace 9's root),
            // or spans would share texts no real trace shares, flattering compression.
            let seed =
                scramble(scramble(trace_number ^ scramble(run)).wrapping_add(position as u64));
            // Segments for the filter language: a tenant attribute (50 values, 2 % of traces
            // each), trace metadata (1,000 customers) and durations from 0.8 s to 10.7 s.
            let mix = scramble(trace_number);
            let attributes = if position == 0 {
                vec![
                    text("input.value", filler(options.text_bytes, seed)),
                    text("output.value", filler(options.text_bytes, seed ^ 7)),
                    text("session.id", format!("session-{}", trace_number % 97)),
                    text("tenant", format!("tenant-{}", mix % 50)),
                    text(
                        "langfuse.trace.metadata.customer",
                        format!("customer-{}", (mix >> 8) % 1000),
                    ),
                ]
            } else {
                llm_attributes(
                    options.convention,
                    trace_number + position as u64,
                    filler(options.text_bytes, seed),
                    filler(options.text_bytes, seed ^ 7),
                )
            };
            Span {
                trace_id: trace_id.to_vec(),
                span_id: span_id(position),
                parent_span_id: if position == 0 {
                    Vec::new()
                } else {
                    span_id(0)
                },
                name: if position == 0 {
                    "interaction".into()
                } else {
                    "chat gpt-4o-mini".into()
                },
                kind: if position == 0 { 2 } else { 3 },
                start_time_unix_nano: now + position as u64 * 1_000_000,
                end_time_unix_nano: if position == 0 {
                    now + 800_000_000 + (mix >> 20) % 100 * 100_000_000
                } else {
                    now + 800_000_000
                },
                attributes,
                status: Some(Status {
                    code: 1,
                    message: String::new(),
                }),
                ..Default::default()
            }
        })
        .collect();
    let request = ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![text("service.name", "loadgen")],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            schema_url: String::new(),
        }],
    };
    (request, trace_ids)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    /// Distinct lower-case character trigrams, what the text index keeps per trace.
    fn distinct_trigrams(text: &str) -> usize {
        let chars: Vec<char> = text.to_lowercase().chars().collect();
        chars.windows(3).collect::<HashSet<_>>().len()
    }

    /// Every text of a request is its own: no two spans, of one trace or of two, share an
    /// input or an output, and no span's input is another's output.
    #[test]
    fn every_span_of_a_request_has_texts_of_its_own() {
        /// The filler texts of a value: the value itself, or the `content` of GenAI JSON
        /// messages.
        fn texts_in(value: &str, texts: &mut HashSet<String>) {
            match serde_json::from_str::<serde_json::Value>(value) {
                Ok(json) => {
                    for message in json.as_array().into_iter().flatten() {
                        for part in message["parts"].as_array().into_iter().flatten() {
                            texts_in(part["content"].as_str().unwrap_or_default(), texts);
                        }
                    }
                }
                Err(_) if value.len() == 64 => {
                    texts.insert(value.to_owned());
                }
                Err(_) => {}
            }
        }
        let shape = Shape {
            spans_per_request: 1000,
            spans_per_trace: 5,
            text_bytes: 64,
            convention: Convention::Mix,
            late_roots: false,
        };
        let (request, _) = make_request(&shape, 3, 1, 2);
        let mut all = HashSet::new();
        for span in &request.resource_spans[0].scope_spans[0].spans {
            let mut own = HashSet::new();
            for attribute in &span.attributes {
                if let Some(any_value::Value::StringValue(value)) = attribute
                    .value
                    .as_ref()
                    .and_then(|value| value.value.as_ref())
                {
                    texts_in(value, &mut own);
                }
            }
            assert_eq!(own.len(), 2, "{}: {own:?}", span.name);
            all.extend(own);
        }
        assert_eq!(all.len(), 2000);
    }

    /// With late roots, a request's roots are of the previous request's traces, whose
    /// children it sent; it reports those traces, complete, and not its own.
    #[test]
    fn late_roots_come_with_the_next_request() {
        let shape = Shape {
            spans_per_request: 10,
            spans_per_trace: 5,
            text_bytes: 16,
            convention: Convention::Mix,
            late_roots: true,
        };
        let spans = |request: u64| {
            let (sent, traces) = make_request(&shape, 3, 0, request);
            (sent.resource_spans[0].scope_spans[0].spans.clone(), traces)
        };
        let (first, first_traces) = spans(0);
        let (second, second_traces) = spans(1);
        // The first request's roots are of traces alone; it completes none. Another
        // connection's are other traces.
        assert!(first_traces.is_empty());
        let other = make_request(&shape, 3, 1, 0).0;
        let other_spans = &other.resource_spans[0].scope_spans[0].spans;
        assert!(
            first
                .iter()
                .all(|span| other_spans.iter().all(|o| o.trace_id != span.trace_id))
        );
        let children_of = |spans: &[Span], trace: &[u8]| {
            spans
                .iter()
                .filter(|span| span.trace_id == trace && !span.parent_span_id.is_empty())
                .count()
        };
        assert_eq!(second_traces.len(), 2);
        for trace in &second_traces {
            // Its root in the second request, its four children in the first.
            let root = second
                .iter()
                .find(|span| span.trace_id == trace && span.parent_span_id.is_empty())
                .unwrap();
            assert_eq!(children_of(&first, trace), 4);
            assert_eq!(children_of(&second, trace), 0);
            assert!(
                first
                    .iter()
                    .filter(|span| span.trace_id == trace)
                    .all(|child| child.parent_span_id == root.span_id)
            );
        }
    }

    #[test]
    fn filler_is_as_varied_as_english_prose() {
        // Bounds around English prose (a KiB of the GPL's text: 465–540 distinct trigrams, LZ4
        // keeping 748–826 bytes); the earlier filler, 16 repeated words, had 141 and kept 477.
        for seed in [1, 2, 0xdead_beef, u64::MAX] {
            let text = filler(1024, seed);
            assert_eq!(text.len(), 1024);
            let trigrams = distinct_trigrams(&text);
            assert!(
                (400..700).contains(&trigrams),
                "{trigrams} distinct trigrams"
            );
            let kept = lz4_flex::compress(text.as_bytes()).len();
            assert!(kept > 600, "LZ4 shrank a KiB of filler to {kept} bytes");
            assert!(text.contains(". "), "no sentence ends in {text}");
        }
        assert_ne!(filler(1024, 1), filler(1024, 2));
        assert_ne!(filler(1024, 2), filler(1024, 3));
        let (words, _) = vocabulary();
        assert_eq!(words.len(), 384);
        assert_eq!(
            words.iter().collect::<HashSet<_>>().len(),
            384,
            "a word listed twice"
        );
    }
}
