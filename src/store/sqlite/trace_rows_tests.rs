//! Trace rows prepared on the receivers' threads ([`super::trace_rows::prepare_rows`]): the writer
//! stores the row a request prepared only where it equals what the writer would compute, and
//! computes the row itself everywhere else.

use super::SqliteStore;
use super::tests::open;
use crate::model::attributes::{AttrValue, KeyValue};
use crate::model::span::test_support::{make_span, text};
use crate::model::{
    ContentEvent, EncodedBody, Event, NormalizedSpan, Span, SpanId, TraceId, TraceRecord,
};
use crate::normalize::Normalizer;
use crate::store::{ContentEventBatch, SpanBatch, SpanStore, TraceQuery};

/// A span of trace `trace` normalized from `attributes`; the root when `span` is 1.
pub(super) fn span(trace: u8, span: u8, attributes: Vec<KeyValue>) -> Span {
    let base = make_span(trace, span);
    Span {
        parent_span_id: (span != 1).then_some(SpanId([1; 8])),
        start_time_unix_nano: base.start_time_unix_nano + u64::from(span) * 1_000,
        attributes,
        ..base
    }
}

/// An LLM call of `model`, with long texts (stored compressed) and usage.
pub(super) fn llm_span(trace: u8, number: u8, model: &str) -> Span {
    let input = format!("Question {number} for the model: ").repeat(12);
    let output = format!("Answer {number} of the model. ").repeat(12);
    span(
        trace,
        number,
        vec![
            text("gen_ai.operation.name", "chat"),
            text("gen_ai.system", "openai"),
            text("gen_ai.request.model", model),
            text("gen_ai.prompt.0.role", "user"),
            text("gen_ai.prompt.0.content", &input),
            text("gen_ai.completion.0.role", "assistant"),
            text("gen_ai.completion.0.content", &output),
            KeyValue::new("gen_ai.usage.input_tokens", AttrValue::Int(12)),
            KeyValue::new("gen_ai.usage.output_tokens", AttrValue::Int(30)),
        ],
    )
}

/// A request's spans as the receivers hand them over: normalized, encoded and, when `prepare`,
/// with the rows the store prepared from them.
pub(super) fn batch(
    store: &SqliteStore,
    project: &str,
    spans: Vec<Span>,
    prepare: bool,
) -> SpanBatch {
    let normalizer = Normalizer::default();
    let mut spans: Vec<NormalizedSpan> = spans
        .into_iter()
        .map(|span| NormalizedSpan {
            semantics: normalizer.normalize(&span, &[]),
            span,
            encoded_body: None,
        })
        .collect();
    store.encode_spans(&mut spans);
    let prepared = if prepare {
        store.prepare_traces(project, &spans).into_iter().collect()
    } else {
        Vec::new()
    };
    SpanBatch {
        project_id: project.into(),
        spans,
        prepared,
    }
}

/// A `gen_ai.choice` content event with `content`, for span `span` of trace `trace` of
/// project `p`, as the logs signal brings it.
pub(super) async fn write_choice(store: &SqliteStore, trace: u8, span: u8, content: &str) {
    let choice = Event {
        time_unix_nano: 1,
        name: "gen_ai.choice".into(),
        attributes: vec![KeyValue::new(
            "body",
            AttrValue::Map(vec![KeyValue::new(
                "message",
                AttrValue::Map(vec![text("content", content)]),
            )]),
        )],
        dropped_attributes_count: 0,
    };
    store
        .write_content_events(vec![ContentEventBatch {
            project_id: "p".into(),
            events: vec![ContentEvent {
                trace_id: TraceId([trace; 16]),
                span_id: SpanId([span; 8]),
                event: choice,
            }],
        }])
        .await
        .unwrap();
}

async fn record(store: &SqliteStore, project: &str, trace: u8) -> TraceRecord {
    let (record, _) = store
        .get_trace(project, TraceId([trace; 16]))
        .await
        .unwrap()
        .unwrap();
    record
}

fn whole_trace(trace: u8) -> Vec<Span> {
    vec![
        span(
            trace,
            1,
            vec![
                text(
                    "input.value",
                    &"What the user asked, at length. ".repeat(10),
                ),
                text("output.value", "Short answer."),
                text("session.id", "session-1"),
                text("user.id", "user-1"),
            ],
        ),
        llm_span(trace, 2, "gpt-4o"),
        llm_span(trace, 3, "gpt-4o-mini"),
    ]
}

/// The row prepared from a whole trace is the row the writer computes from the same spans.
#[tokio::test]
async fn a_prepared_row_is_the_row_the_writer_computes() {
    let directory = tempfile::tempdir().unwrap();
    let store = open(directory.path());
    let prepared = batch(&store, "a", whole_trace(5), true);
    assert_eq!(prepared.prepared.len(), 1);
    store.write_spans(vec![prepared]).await.unwrap();
    store
        .write_spans(vec![batch(&store, "b", whole_trace(5), false)])
        .await
        .unwrap();

    let from_prepared = record(&store, "a", 5).await;
    let computed = record(&store, "b", 5).await;
    assert_eq!(from_prepared.span_count, 3);
    assert_eq!(from_prepared.models, ["gpt-4o", "gpt-4o-mini"]);
    assert_eq!(from_prepared.session_id.as_deref(), Some("session-1"));
    assert!(from_prepared.input.as_deref().unwrap().len() > 128);
    assert_eq!(
        TraceRecord {
            project: "b".into(),
            ..from_prepared
        },
        computed
    );
    // Its models are found by the model filter, as a computed row's are.
    for project in ["a", "b"] {
        let query = TraceQuery {
            start_unix_nano: 0,
            end_unix_nano: u64::MAX,
            limit: 10,
            model: Some("gpt-4o-mini".into()),
            ..Default::default()
        };
        let page = store.query_traces(project, &query).await.unwrap();
        assert_eq!(page.traces.len(), 1, "{project}");
    }
}

/// The writer stores the prepared row, not one of its own, for a new trace whose spans all came
/// in the request that prepared it: a row prepared from other texts shows.
#[tokio::test]
async fn the_writer_stores_the_row_a_request_prepared() {
    let directory = tempfile::tempdir().unwrap();
    let store = open(directory.path());
    let mut spans = whole_trace(6);
    let mut written = batch(&store, "p", spans.clone(), false);
    spans[0].attributes = vec![text("input.value", "prepared from another input")];
    written.prepared = batch(&store, "p", spans, true).prepared;
    store.write_spans(vec![written]).await.unwrap();
    assert_eq!(
        record(&store, "p", 6).await.input.as_deref(),
        Some("prepared from another input")
    );
}

/// Where the spans written to a trace are not the spans a request prepared its row from, the
/// writer computes the row from the spans stored.
#[tokio::test]
async fn the_writer_computes_the_row_when_the_spans_differ_from_the_prepared_ones() {
    let directory = tempfile::tempdir().unwrap();
    let store = open(directory.path());
    let root_input = || "What the user asked, at length. ".repeat(10);

    // A trace split over two requests written in one transaction: each prepared a row from
    // its part.
    let [root, first, _] = <[Span; 3]>::try_from(whole_trace(7)).unwrap();
    store
        .write_spans(vec![
            batch(&store, "p", vec![first], true),
            batch(&store, "p", vec![root], true),
        ])
        .await
        .unwrap();
    let split = record(&store, "p", 7).await;
    assert_eq!(split.span_count, 2);
    assert_eq!(split.input, Some(root_input()));

    // A request holding the same span twice: the span is stored once.
    let root = whole_trace(8).remove(0);
    store
        .write_spans(vec![batch(&store, "p", vec![root.clone(), root], true)])
        .await
        .unwrap();
    assert_eq!(record(&store, "p", 8).await.span_count, 1);

    // Both in one transaction: as many spans written as the first request prepared from.
    let [root, first, _] = <[Span; 3]>::try_from(whole_trace(11)).unwrap();
    store
        .write_spans(vec![
            batch(&store, "p", vec![root.clone(), root], true),
            batch(&store, "p", vec![first], true),
        ])
        .await
        .unwrap();
    let mixed = record(&store, "p", 11).await;
    assert_eq!(mixed.span_count, 2);
    assert_eq!(mixed.models, ["gpt-4o"]);

    // The same as two parts of one request, each prepared on a thread of its own.
    let [root, first, _] = <[Span; 3]>::try_from(whole_trace(12)).unwrap();
    let mut parts = batch(&store, "p", vec![root.clone(), root, first.clone()], false);
    parts.prepared = [
        batch(
            &store,
            "p",
            parts.spans[..2]
                .iter()
                .map(|normalized| normalized.span.clone())
                .collect(),
            true,
        ),
        batch(&store, "p", vec![first], true),
    ]
    .into_iter()
    .flat_map(|part| part.prepared)
    .collect();
    store.write_spans(vec![parts]).await.unwrap();
    let parted = record(&store, "p", 12).await;
    assert_eq!(parted.span_count, 2);
    assert_eq!(parted.models, ["gpt-4o"]);

    // A trace with spans stored before.
    let [root, first, second] = <[Span; 3]>::try_from(whole_trace(9)).unwrap();
    store
        .write_spans(vec![batch(&store, "p", vec![first], true)])
        .await
        .unwrap();
    store
        .write_spans(vec![batch(&store, "p", vec![root, second], true)])
        .await
        .unwrap();
    let later = record(&store, "p", 9).await;
    assert_eq!(later.span_count, 3);
    assert_eq!(later.models, ["gpt-4o", "gpt-4o-mini"]);
    assert_eq!(later.input, Some(root_input()));

    // A span whose content arrived first, on the logs signal: the writer normalizes it again
    // with that content, which its request's row does not hold.
    write_choice(&store, 10, 1, "Pong from the logs.").await;
    let chat = span(
        10,
        1,
        vec![
            text("gen_ai.operation.name", "chat"),
            text("gen_ai.request.model", "gpt-4o-mini"),
        ],
    );
    store
        .write_spans(vec![batch(&store, "p", vec![chat], true)])
        .await
        .unwrap();
    assert_eq!(
        record(&store, "p", 10).await.output.as_deref(),
        Some("Pong from the logs.")
    );
}

/// Content arriving on the logs signal for a span stored in a block: the writer reads the span
/// from its block, normalizes it again and stores it with a body of its own; the block's other
/// span still reads from the block.
#[tokio::test]
async fn content_for_a_span_in_a_block_rewrites_that_span_alone() {
    let directory = tempfile::tempdir().unwrap();
    let store = open(directory.path());
    let chat = span(
        12,
        2,
        vec![
            text("gen_ai.operation.name", "chat"),
            text("gen_ai.request.model", "gpt-4o-mini"),
        ],
    );
    let written = batch(&store, "p", vec![llm_span(12, 1, "gpt-4o"), chat], true);
    assert!(
        written
            .spans
            .iter()
            .all(|span| matches!(span.encoded_body, Some(EncodedBody::Part { .. })))
    );
    store.write_spans(vec![written]).await.unwrap();
    write_choice(&store, 12, 2, "Late answer.").await;
    let (record, spans) = store
        .get_trace("p", TraceId([12; 16]))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.span_count, 2);
    assert_eq!(spans[0].span, llm_span(12, 1, "gpt-4o"));
    let first_output = spans[0].semantics.output.as_deref().unwrap_or_default();
    assert!(
        first_output.starts_with("Answer 1 of the model."),
        "{first_output}"
    );
    // The first span's body is still its part of the block (format 5), the second's its own
    // (format 4).
    let main = rusqlite::Connection::open(directory.path().join("spanhouse.db")).unwrap();
    let formats: Vec<i64> = main
        .prepare("SELECT unicode(CAST(substr(body, 1, 1) AS TEXT)) FROM spans ORDER BY span_id")
        .unwrap()
        .query_map([], |row| row.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(formats, [5, 4]);
    assert_eq!(spans[1].semantics.output.as_deref(), Some("Late answer."));
}
