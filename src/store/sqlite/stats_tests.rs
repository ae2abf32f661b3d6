//! The dashboard's SQL aggregation against the reference reduction of `store::trace_stats`, on
//! the same stored traces: the same buckets, counts, sums and nearest-rank percentiles.

use rand::{Rng as _, SeedableRng as _};

use super::tests::open;
use crate::model::llm::{LlmCall, TokenUsage};
use crate::model::span::test_support::make_span;
use crate::model::{NormalizedSpan, SpanSemantics, StatusCode, TraceId};
use crate::store::trace_stats::{StatsQuery, TraceFacts, aggregate};
use crate::store::{SpanBatch, SpanStore, TraceQuery};

const BASE: u64 = 1_700_000_000_000_000_000;
const MINUTE: u64 = 60_000_000_000;

/// `count` one-span traces over an hour: random durations (many equal), errors, models, tokens.
fn random_traces(seed: u64, count: u32) -> Vec<NormalizedSpan> {
    let mut random = rand::rngs::StdRng::seed_from_u64(seed);
    (0..count)
        .map(|index| {
            let mut span = make_span(1, 1);
            let mut id = [0u8; 16];
            id[..4].copy_from_slice(&index.to_be_bytes());
            id[8..].copy_from_slice(&seed.to_be_bytes());
            span.trace_id = TraceId(id);
            span.start_time_unix_nano = BASE + random.random_range(0..60 * MINUTE);
            let millis = random.random_range(1..40u64) * 25;
            span.end_time_unix_nano = span.start_time_unix_nano + millis * 1_000_000;
            if random.random_bool(0.1) {
                span.status.code = StatusCode::Error;
            }
            let llm = random.random_bool(0.7).then(|| LlmCall {
                response_model: Some(["a", "b", "c"][random.random_range(0..3)].to_owned()),
                usage: TokenUsage {
                    prompt: Some(random.random_range(0..100)),
                    completion: Some(random.random_range(0..100)),
                    total: None,
                },
                ..Default::default()
            });
            NormalizedSpan {
                span,
                semantics: SpanSemantics {
                    llm,
                    ..Default::default()
                },
                encoded_body: None,
            }
        })
        .collect()
}

#[tokio::test]
async fn sql_aggregation_matches_the_reference_reduction() {
    for seed in [1, 2, 3] {
        let directory = tempfile::tempdir().unwrap();
        let store = open(directory.path());
        store
            .write_spans(vec![SpanBatch {
                project_id: "p".into(),
                spans: random_traces(seed, 400),
                prepared: Vec::new(),
            }])
            .await
            .unwrap();
        let page = store
            .query_traces(
                "p",
                &TraceQuery {
                    start_unix_nano: 0,
                    end_unix_nano: u64::MAX,
                    limit: 1000,
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        let facts: Vec<TraceFacts> = page
            .traces
            .iter()
            .map(|record| TraceFacts {
                timestamp_unix_nano: record.timestamp_unix_nano,
                is_error: record.status == "error",
                duration_ms: record.duration_ms,
                total_tokens: record.total_token_count.unwrap_or(0),
                total_cost: record.total_cost.unwrap_or(0.0),
                models: record.models.clone(),
            })
            .collect();
        assert_eq!(facts.len(), 400);
        // A window that cuts the hour, in 7-minute buckets.
        let query = StatsQuery {
            start_unix_nano: BASE + 5 * MINUTE,
            end_unix_nano: BASE + 52 * MINUTE,
            bucket_nanos: 7 * MINUTE,
        };
        let from_sql = store.trace_stats("p", &query).await.unwrap();
        let reference = aggregate(&query, &facts);
        let same = |sql: &crate::store::trace_stats::StatsFigures,
                    reference: &crate::store::trace_stats::StatsFigures,
                    what: &str| {
            assert_eq!(sql.traces, reference.traces, "{seed} {what}");
            assert_eq!(sql.errors, reference.errors, "{seed} {what}");
            assert_eq!(sql.tokens, reference.tokens, "{seed} {what}");
            assert_eq!(sql.p50_ms, reference.p50_ms, "{seed} {what}");
            assert_eq!(sql.p95_ms, reference.p95_ms, "{seed} {what}");
            assert!((sql.cost - reference.cost).abs() < 1e-9, "{seed} {what}");
        };
        same(&from_sql.totals, &reference.totals, "totals");
        assert!(from_sql.totals.traces > 100 && from_sql.totals.traces < 400);
        assert_eq!(from_sql.buckets.len(), reference.buckets.len(), "{seed}");
        for (sql, reference) in from_sql.buckets.iter().zip(&reference.buckets) {
            assert_eq!(sql.index, reference.index, "{seed}");
            same(
                &sql.figures,
                &reference.figures,
                &format!("bucket {}", sql.index),
            );
        }
        assert_eq!(from_sql.models.len(), reference.models.len(), "{seed}");
        for (sql, reference) in from_sql.models.iter().zip(&reference.models) {
            assert_eq!(sql.model, reference.model, "{seed}");
            same(&sql.figures, &reference.figures, &sql.model);
        }
    }
}
