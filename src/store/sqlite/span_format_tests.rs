//! The span format: semantics kept compressed with the body (formats 2, 3 and 4), spans of a
//! trace compressed together in blocks (format 5), rows written by earlier versions (texts in
//! columns, or format 2) still read and summed, and rows of either compression read whatever
//! the setting.

use rusqlite::Connection;

use super::SqliteStore;
use super::tests::{open, open_compressed, search_inputs};
use crate::model::span::test_support::make_span;
use crate::model::{NormalizedSpan, SpanId, SpanSemantics};
use crate::store::codec::Compression;
use crate::store::{SpanBatch, SpanStore, TraceQuery};

/// Writes one span in a batch of its own, encoded and prepared as the receivers do it.
async fn write_semantics(store: &SqliteStore, span: crate::model::Span, semantics: SpanSemantics) {
    write_batch(store, vec![(span, semantics)]).await;
}

/// Writes spans in one batch, encoded and prepared as the receivers do it.
async fn write_batch(store: &SqliteStore, spans: Vec<(crate::model::Span, SpanSemantics)>) {
    let mut spans: Vec<NormalizedSpan> = spans
        .into_iter()
        .map(|(span, semantics)| NormalizedSpan {
            span,
            semantics,
            encoded_body: None,
        })
        .collect();
    store.encode_spans(&mut spans);
    let prepared = store.prepare_traces("p", &spans).into_iter().collect();
    store
        .write_spans(vec![SpanBatch {
            project_id: "p".into(),
            spans,
            prepared,
        }])
        .await
        .unwrap();
}

/// Trace `[trace; 16]` of project `p` as the query API reads it; it must exist.
async fn read_trace(
    store: &SqliteStore,
    trace: u8,
) -> (crate::model::TraceRecord, Vec<crate::store::StoredSpan>) {
    store
        .get_trace("p", crate::model::TraceId([trace; 16]))
        .await
        .unwrap()
        .unwrap()
}

fn texts(input: &str, output: &str) -> SpanSemantics {
    SpanSemantics {
        input: Some(input.to_owned()),
        output: Some(output.to_owned()),
        ..Default::default()
    }
}

#[tokio::test]
async fn a_trace_split_over_batches_takes_earlier_texts_from_their_bodies() {
    let directory = tempfile::tempdir().unwrap();
    let store = open(directory.path());
    let child = crate::model::Span {
        parent_span_id: Some(SpanId([1; 8])),
        ..make_span(7, 2)
    };
    write_semantics(&store, child, texts("child in", "child out")).await;
    // The root, without texts of its own, arrives later: the record takes the child's texts,
    // which only the child's stored body holds.
    write_semantics(&store, make_span(7, 1), SpanSemantics::default()).await;
    let (record, spans) = read_trace(&store, 7).await;
    assert_eq!(record.span_count, 2);
    assert_eq!(record.root_span_name.as_deref(), Some("span-1"));
    assert_eq!(record.input.as_deref(), Some("child in"));
    assert_eq!(record.output.as_deref(), Some("child out"));
    assert_eq!(spans[1].semantics, texts("child in", "child out"));
}

/// A root sent after its children gives the record its texts; one without an output leaves
/// the record the latest child's, read back from the children's bodies.
#[tokio::test]
async fn a_late_root_gives_the_texts_it_has() {
    let directory = tempfile::tempdir().unwrap();
    let store = open(directory.path());
    for trace in [14, 15] {
        let children = (2..=3)
            .map(|span| {
                let child = crate::model::Span {
                    parent_span_id: Some(SpanId([1; 8])),
                    end_time_unix_nano: make_span(trace, span).end_time_unix_nano + u64::from(span),
                    ..make_span(trace, span)
                };
                let text = format!("child {span}");
                (child, texts(&text, &text))
            })
            .collect();
        write_batch(&store, children).await;
    }
    write_semantics(&store, make_span(14, 1), texts("root in", "root out")).await;
    let root_in = SpanSemantics {
        input: Some("root in".into()),
        ..Default::default()
    };
    write_semantics(&store, make_span(15, 1), root_in).await;

    let (both, _) = read_trace(&store, 14).await;
    assert_eq!(
        (both.input.as_deref(), both.output.as_deref()),
        (Some("root in"), Some("root out"))
    );
    let (input_only, _) = read_trace(&store, 15).await;
    assert_eq!(
        (input_only.input.as_deref(), input_only.output.as_deref()),
        (Some("root in"), Some("child 3"))
    );
    assert_eq!(input_only.span_count, 3);
}

#[tokio::test]
async fn spans_of_a_batch_share_a_block() {
    let directory = tempfile::tempdir().unwrap();
    let store = open(directory.path());
    let child = |trace: u8, span: u8| crate::model::Span {
        parent_span_id: Some(SpanId([1; 8])),
        ..make_span(trace, span)
    };
    // Traces 11 and 12 of three spans each, interleaved, and trace 13 of one.
    let mut spans = Vec::new();
    for span in [2, 3, 4] {
        for trace in [11, 12] {
            let text = format!("trace {trace} span {span}");
            spans.push((child(trace, span), texts(&text, &text)));
        }
    }
    spans.push((make_span(13, 1), texts("alone", "alone")));
    write_batch(&store, spans.clone()).await;
    // The roots, without texts, arrive later: their traces' records take their texts from the
    // children's parts of the blocks.
    write_batch(
        &store,
        vec![
            (make_span(11, 1), SpanSemantics::default()),
            (make_span(12, 1), SpanSemantics::default()),
        ],
    )
    .await;
    // A client's retry stores nothing, and no block either.
    write_batch(&store, spans.clone()).await;

    let main = Connection::open(directory.path().join("spanhouse.db")).unwrap();
    let count = |sql: &str| -> i64 { main.query_row(sql, [], |row| row.get(0)).unwrap() };
    assert_eq!(count("SELECT count(*) FROM span_blocks"), 2);
    assert_eq!(count("SELECT count(*) FROM spans"), 9);
    // Both batches in blocks, all nine spans parts of them.
    assert_eq!(
        count("SELECT count(*) FROM spans WHERE substr(body, 1, 1) = x'05'"),
        9
    );
    for trace in [11, 12] {
        let (record, stored) = read_trace(&store, trace).await;
        assert_eq!(record.span_count, 4);
        assert_eq!(record.input, Some(format!("trace {trace} span 2")));
        let read: Vec<_> = stored
            .into_iter()
            .filter(|stored| stored.span.parent_span_id.is_some())
            .map(|stored| (stored.span, stored.semantics))
            .collect();
        let written: Vec<_> = spans
            .iter()
            .filter(|(span, _)| span.trace_id.0[0] == trace)
            .cloned()
            .collect();
        assert_eq!(read, written);
    }
    assert_eq!(
        read_trace(&store, 13).await.1[0].semantics,
        texts("alone", "alone")
    );

    // A block gone is a clear error for the traces that need it (the roots' block), not for
    // the others.
    main.execute(
        "DELETE FROM span_blocks WHERE id = (SELECT max(id) FROM span_blocks)",
        [],
    )
    .unwrap();
    let error = store
        .get_trace("p", crate::model::TraceId([11; 16]))
        .await
        .unwrap_err();
    assert!(error.to_string().contains("is missing"), "{error}");
    assert_eq!(read_trace(&store, 13).await.0.span_count, 1);
}

#[tokio::test]
async fn a_store_reads_what_it_wrote_before_its_compression_changed() {
    let directory = tempfile::tempdir().unwrap();
    let long = |word: &str| format!("{word} ").repeat(60);
    let child = crate::model::Span {
        parent_span_id: Some(SpanId([1; 8])),
        ..make_span(9, 2)
    };
    {
        let store = open_compressed(directory.path(), Compression::Zstd);
        write_semantics(&store, child, texts(&long("zstd in"), &long("zstd out"))).await;
        store.flush(std::time::Duration::from_secs(5)).await;
    }
    let store = open_compressed(directory.path(), Compression::Lz4);
    // The root, with texts of its own: the trace's row is written again, now with LZ4, from
    // the child's zstd body and the root's LZ4 one.
    write_semantics(
        &store,
        make_span(9, 1),
        texts(&long("lz4 in"), &long("lz4 out")),
    )
    .await;
    write_semantics(&store, make_span(10, 1), texts(&long("only in"), "short")).await;

    let main = Connection::open(directory.path().join("spanhouse.db")).unwrap();
    let tags = |sql: &str| -> Vec<(i64, i64)> {
        main.prepare(sql)
            .unwrap()
            .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    };
    // Span bodies: format 4 (zstd), then format 3 (LZ4). Trace texts: tag 2 (LZ4) for both
    // traces, as written last; a short text stays TEXT.
    assert_eq!(
        tags("SELECT rowid, unicode(CAST(substr(body, 1, 1) AS TEXT)) FROM spans ORDER BY rowid"),
        [(1, 4), (2, 3), (3, 3)]
    );
    assert_eq!(
        tags("SELECT rowid, hex(substr(input, 1, 1)) = '02' FROM traces ORDER BY rowid"),
        [(1, 1), (2, 1)]
    );
    assert_eq!(
        tags("SELECT rowid, typeof(output) = 'text' FROM traces ORDER BY rowid"),
        [(1, 0), (2, 1)]
    );

    let (record, spans) = read_trace(&store, 9).await;
    assert_eq!(record.span_count, 2);
    assert_eq!(record.input, Some(long("lz4 in")));
    assert_eq!(record.output, Some(long("lz4 out")));
    assert_eq!(spans[0].semantics, texts(&long("lz4 in"), &long("lz4 out")));
    assert_eq!(
        spans[1].semantics,
        texts(&long("zstd in"), &long("zstd out"))
    );
    // Text search reads the compressed texts, and the short one (trace 10's output).
    assert_eq!(search_inputs(&store, "lz4 in lz4").await, [long("lz4 in")]);
    assert_eq!(search_inputs(&store, "only in").await, [long("only in")]);
    assert_eq!(search_inputs(&store, "short").await, [long("only in")]);
}

#[tokio::test]
async fn spans_written_before_format_2_are_read_and_summed() {
    let directory = tempfile::tempdir().unwrap();
    let store = open(directory.path());
    let root = make_span(8, 1);
    let llm = crate::model::LlmCall {
        provider: Some("openai".into()),
        response_model: Some("gpt-4o".into()),
        usage: crate::model::llm::TokenUsage {
            prompt: Some(10),
            completion: Some(5),
            total: Some(15),
        },
        ..Default::default()
    };
    let old_semantics = SpanSemantics {
        llm: Some(llm.clone()),
        ..texts("old in", "old out")
    };
    write_semantics(&store, root.clone(), old_semantics.clone()).await;
    // Rewrite the row as versions before format 2 wrote it: the body alone (LZ4), the texts
    // and the LLM call in their columns, the two newer columns NULL.
    {
        let mut body = vec![1u8];
        body.extend(lz4_flex::block::compress_prepend_size(
            crate::store::codec::encode_body(&root).as_bytes(),
        ));
        let connection = Connection::open(directory.path().join("spanhouse.db")).unwrap();
        let changed = connection
            .execute(
                "UPDATE spans SET body = ?1, input = 'old in', output = 'old out', llm = ?2,
                 is_llm = NULL, tool_name = NULL",
                rusqlite::params![body, serde_json::to_string(&llm).unwrap()],
            )
            .unwrap();
        assert_eq!(changed, 1);
    }
    let child = crate::model::Span {
        parent_span_id: Some(SpanId([1; 8])),
        ..make_span(8, 2)
    };
    write_semantics(&store, child, texts("new in", "new out")).await;

    let (record, spans) = read_trace(&store, 8).await;
    assert_eq!(record.span_count, 2);
    assert_eq!(record.input.as_deref(), Some("old in"));
    assert_eq!(record.output.as_deref(), Some("old out"));
    assert_eq!(record.llm_call_count, 1);
    assert_eq!(record.models, ["gpt-4o"]);
    assert_eq!(record.total_token_count, Some(15));
    assert_eq!(spans[0].span, root);
    assert_eq!(spans[0].semantics, old_semantics.with_llm_texts());
    assert_eq!(spans[1].semantics, texts("new in", "new out"));
}

#[tokio::test]
async fn spans_written_in_format_2_are_read_and_give_their_texts() {
    let directory = tempfile::tempdir().unwrap();
    let store = open(directory.path());
    let child = crate::model::Span {
        parent_span_id: Some(SpanId([1; 8])),
        ..make_span(9, 2)
    };
    let child_semantics = SpanSemantics {
        llm: Some(crate::model::LlmCall {
            response_model: Some("gpt-4o".into()),
            ..Default::default()
        }),
        ..texts("format 2 in", "format 2 out")
    };
    write_semantics(&store, child.clone(), child_semantics.clone()).await;
    // Rewrite the row as the versions that wrote format 2 did.
    {
        let body = crate::store::codec::encode_format_2(&child, &child_semantics);
        let connection = Connection::open(directory.path().join("spanhouse.db")).unwrap();
        let changed = connection
            .execute("UPDATE spans SET body = ?1", rusqlite::params![body])
            .unwrap();
        assert_eq!(changed, 1);
    }
    // The root arrives later, without texts of its own: the record takes the child's, from its
    // format 2 body.
    write_semantics(&store, make_span(9, 1), SpanSemantics::default()).await;

    let (record, spans) = read_trace(&store, 9).await;
    assert_eq!(record.span_count, 2);
    assert_eq!(record.input.as_deref(), Some("format 2 in"));
    assert_eq!(record.output.as_deref(), Some("format 2 out"));
    assert_eq!(record.models, ["gpt-4o"]);
    assert_eq!(spans[1].span, child);
    assert_eq!(spans[1].semantics, child_semantics.with_llm_texts());
}

/// A trace whose root, of another model, arrives in a later batch and moves its timestamp: its rows in
/// `trace_models` (deleted by primary key, from the row's old timestamp and models) follow.
#[tokio::test]
async fn a_trace_split_over_batches_keeps_its_models_current() {
    let directory = tempfile::tempdir().unwrap();
    let store = open(directory.path());
    let with_model = |model: &str| SpanSemantics {
        llm: Some(crate::model::LlmCall {
            response_model: Some(model.into()),
            ..Default::default()
        }),
        ..Default::default()
    };
    let trace_id = crate::model::TraceId([9; 16]);
    let root = make_span(9, 1);
    let child = crate::model::Span {
        parent_span_id: Some(SpanId([1; 8])),
        start_time_unix_nano: root.start_time_unix_nano + 1_000,
        ..make_span(9, 2)
    };
    write_semantics(&store, child, with_model("model-b")).await;
    let (before, _) = store.get_trace("p", trace_id).await.unwrap().unwrap();
    write_semantics(&store, root, with_model("model-a")).await;

    let connection = Connection::open(directory.path().join("spanhouse.db")).unwrap();
    let rows: Vec<(String, i64)> = connection
        .prepare("SELECT model, timestamp_ns FROM trace_models ORDER BY model")
        .unwrap()
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap();
    let (record, spans) = store.get_trace("p", trace_id).await.unwrap().unwrap();
    assert_eq!(spans.len(), 2);
    assert_ne!(record.timestamp_unix_nano, before.timestamp_unix_nano);
    let timestamp = record.timestamp_unix_nano as i64;
    assert_eq!(
        rows,
        [
            ("model-a".to_string(), timestamp),
            ("model-b".to_string(), timestamp)
        ]
    );
    for model in ["model-a", "model-b"] {
        let query = TraceQuery {
            start_unix_nano: 0,
            end_unix_nano: u64::MAX,
            limit: 10,
            model: Some(model.into()),
            ..Default::default()
        };
        let page = store.query_traces("p", &query).await.unwrap();
        assert_eq!(page.traces.len(), 1, "{model}");
    }
}
