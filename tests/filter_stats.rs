//! Filtered stats (SPEC §7) against a recomputation, on both backends (property test): random
//! traces — a tenant on one of their spans, a model, a status, a duration, a thumbs score — and
//! random filters over them; `/api/v1/stats?filter=` must equal the figures recomputed from the
//! listed TraceRecords of exactly the traces the test knows the filter selects, score means
//! included.

mod common;

use common::*;
use opentelemetry_proto::tonic::trace::v1::Span;
use proptest::prelude::*;
use proptest::test_runner::TestRunner;
use serde_json::{Value, json};
use spanhouse::model::time::format_rfc3339;
use spanhouse::store::trace_stats::{StatsQuery, aggregate};

const MINUTE: u64 = 60 * 1_000_000_000;
const TENANTS: [&str; 3] = ["acme", "globex", "initech"];

/// One generated trace.
#[derive(Debug, Clone)]
struct TraceSpec {
    minute: u64,
    duration_ms: u64,
    error: bool,
    /// An index into [`TENANTS`], on the LLM span; `None`: no tenant attribute.
    tenant: Option<usize>,
    /// `model-N`; `None`: no LLM call.
    model: Option<u8>,
    /// The thumbs score; `None`: not scored.
    thumbs: Option<bool>,
}

fn trace_spec() -> impl Strategy<Value = TraceSpec> {
    (
        0..10u64,
        1..10_000u64,
        any::<bool>(),
        proptest::option::of(0..TENANTS.len()),
        proptest::option::of(1..4u8),
        proptest::option::of(any::<bool>()),
    )
        .prop_map(
            |(minute, duration_ms, error, tenant, model, thumbs)| TraceSpec {
                minute,
                duration_ms,
                error,
                tenant,
                model,
                thumbs,
            },
        )
}

/// One condition over a trace: its filter text and what the test knows it selects.
#[derive(Debug, Clone)]
enum Atom {
    Tenant(usize),
    Slower(u64),
    Error,
    Thumbs(bool),
    Model(u8),
}

impl Atom {
    fn text(&self) -> String {
        match self {
            Atom::Tenant(tenant) => {
                format!(r#"span.attributes["tenant"] == "{}""#, TENANTS[*tenant])
            }
            Atom::Slower(ms) => format!("duration_ms > {ms}"),
            Atom::Error => r#"status == "error""#.into(),
            Atom::Thumbs(value) => format!(r#"scores["thumbs"] == {value}"#),
            Atom::Model(model) => format!(r#"model == "model-{model}""#),
        }
    }

    fn selects(&self, trace: &TraceSpec) -> bool {
        match self {
            Atom::Tenant(tenant) => trace.tenant == Some(*tenant),
            Atom::Slower(ms) => trace.duration_ms > *ms,
            Atom::Error => trace.error,
            Atom::Thumbs(value) => trace.thumbs == Some(*value),
            Atom::Model(model) => trace.model == Some(*model),
        }
    }
}

/// A filter: one atom, two joined by `and`, or one `or not` another.
#[derive(Debug, Clone)]
enum Filter {
    One(Atom),
    Both(Atom, Atom),
    EitherNot(Atom, Atom),
}

impl Filter {
    fn text(&self) -> String {
        match self {
            Filter::One(atom) => atom.text(),
            Filter::Both(left, right) => format!("{} and {}", left.text(), right.text()),
            Filter::EitherNot(left, right) => format!("{} or not {}", left.text(), right.text()),
        }
    }

    fn selects(&self, trace: &TraceSpec) -> bool {
        match self {
            Filter::One(atom) => atom.selects(trace),
            Filter::Both(left, right) => left.selects(trace) && right.selects(trace),
            Filter::EitherNot(left, right) => left.selects(trace) || !right.selects(trace),
        }
    }
}

fn atom() -> impl Strategy<Value = Atom> {
    prop_oneof![
        (0..TENANTS.len()).prop_map(Atom::Tenant),
        (0..10_000u64).prop_map(Atom::Slower),
        Just(Atom::Error),
        any::<bool>().prop_map(Atom::Thumbs),
        (1..4u8).prop_map(Atom::Model),
    ]
}

fn filter() -> impl Strategy<Value = Filter> {
    prop_oneof![
        atom().prop_map(Filter::One),
        (atom(), atom()).prop_map(|(left, right)| Filter::Both(left, right)),
        (atom(), atom()).prop_map(|(left, right)| Filter::EitherNot(left, right)),
    ]
}

fn spans_of(trace: u8, spec: &TraceSpec, start: u64) -> Vec<Span> {
    let root_start = start + spec.minute * MINUTE + u64::from(trace) * 1_000_000;
    let mut root = span(trace, 1, None, "agent", root_start);
    root.end_time_unix_nano = root_start + spec.duration_ms * 1_000_000;
    root.status.as_mut().unwrap().code = if spec.error { 2 } else { 1 };
    let mut child = span(trace, 2, Some(1), "chat", root_start + 1_000_000);
    if let Some(model) = spec.model {
        child.attributes = vec![
            string_attribute("gen_ai.operation.name", "chat"),
            string_attribute("gen_ai.request.model", &format!("model-{model}")),
            int_attribute("gen_ai.usage.input_tokens", i64::from(trace) * 10),
            int_attribute("gen_ai.usage.output_tokens", 7),
        ];
    }
    if let Some(tenant) = spec.tenant {
        child
            .attributes
            .push(string_attribute("tenant", TENANTS[tenant]));
    }
    vec![root, child]
}

async fn check(
    server: &TestServer,
    number: usize,
    traces: Vec<TraceSpec>,
    filters: Vec<Filter>,
) -> Result<(), TestCaseError> {
    let token = server
        .create_token(&format!("filter-stats-{number}"), "admin")
        .await;
    server.wait_for_token(&token).await;
    let start = recent(3 * 3600) / MINUTE * MINUTE;
    let end = start + 20 * MINUTE;
    let spans: Vec<Span> = traces
        .iter()
        .enumerate()
        .flat_map(|(index, spec)| spans_of(index as u8 + 1, spec, start))
        .collect();
    let response = server
        .post_protobuf("/v1/traces", &token, &request("svc", spans))
        .await;
    prop_assert_eq!(response.status(), 200);
    server.settle(&token).await;
    let scores: Vec<Value> = traces
        .iter()
        .enumerate()
        .filter_map(|(index, spec)| {
            spec.thumbs.map(|value| {
                json!({"trace_id": hex_trace(index as u8 + 1), "name": "thumbs", "value": value})
            })
        })
        .collect();
    if !scores.is_empty() {
        let (status, body) = server
            .post_json("/api/v1/scores", &token, json!({"scores": scores}))
            .await;
        prop_assert_eq!(status, 200, "{}", body);
    }
    let window = format!(
        "start={}&end={}",
        format_rfc3339(start),
        format_rfc3339(end)
    );
    let (status, page) = server
        .get_json(&format!("/api/v1/traces?limit=1000&{window}"), &token)
        .await;
    prop_assert_eq!(status, 200, "{}", page);
    let records = page["traces"].as_array().unwrap().clone();
    prop_assert_eq!(records.len(), traces.len());
    let query = StatsQuery {
        start_unix_nano: start,
        end_unix_nano: end,
        bucket_nanos: MINUTE,
        filter: None,
    };
    for filter in filters {
        let mut matching = Vec::new();
        let mut score_values = Vec::new();
        for record in &records {
            let trace_id = record["trace_id"].as_str().unwrap();
            let index = (0..traces.len())
                .find(|index| hex_trace(*index as u8 + 1) == trace_id)
                .unwrap();
            if filter.selects(&traces[index]) {
                let facts = trace_facts(record);
                if let Some(value) = traces[index].thumbs {
                    score_values.push((
                        facts.timestamp_unix_nano,
                        "thumbs".to_owned(),
                        if value { 1.0 } else { 0.0 },
                    ));
                }
                matching.push(facts);
            }
        }
        // Through JSON text, as the served figures came: serde_json may read a float's
        // shortest text one ulp off (4 / 11 as an error rate), the same way on both sides.
        let expected: Value = serde_json::from_str(
            &serde_json::to_string(&spanhouse::api::stats::stats_view(
                &query,
                &aggregate(&query, &matching),
                &score_values,
            ))
            .unwrap(),
        )
        .unwrap();
        let encoded: String = filter
            .text()
            .bytes()
            .map(|byte| format!("%{byte:02X}"))
            .collect();
        let (status, served) = server
            .get_json(
                &format!("/api/v1/stats?bucket=1m&{window}&filter={encoded}"),
                &token,
            )
            .await;
        prop_assert_eq!(status, 200, "{}", served);
        prop_assert_eq!(&served, &expected, "filter {}", filter.text());
    }
    Ok(())
}

#[test]
fn filtered_stats_equal_a_recomputation_over_the_matching_traces() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let server = runtime.block_on(TestServer::start());
    let mut runner = TestRunner::new(ProptestConfig {
        cases: if on_clickhouse() { 8 } else { 16 },
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    let number = std::sync::atomic::AtomicUsize::new(0);
    let case = (
        proptest::collection::vec(trace_spec(), 1..12),
        proptest::collection::vec(filter(), 1..5),
    );
    runner
        .run(&case, |(traces, filters)| {
            let number = number.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            runtime.block_on(check(&server, number, traces, filters))
        })
        .unwrap();
}
