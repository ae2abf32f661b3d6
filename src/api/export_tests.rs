//! The producer reads a page only when the body asks for the next chunk: an export holds one
//! page, whatever the number of traces.

use std::sync::atomic::{AtomicUsize, Ordering};

use super::*;
use crate::api::export_render::ExportFormat;
use crate::model::TraceRecord;
use crate::store::TraceCursor;

/// Pages of a list of traces, sorted oldest first, read as a store reads them; counts reads.
struct Listed {
    traces: Vec<TraceRecord>,
    reads: Arc<AtomicUsize>,
}

#[async_trait]
impl PageSource for Listed {
    async fn read(&self, query: &TraceQuery) -> StoreResult<ExportPage> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        let key = |trace: &TraceRecord| {
            (
                trace.timestamp_unix_nano,
                TraceId::parse_hex(&trace.trace_id).unwrap(),
            )
        };
        let after: Vec<&TraceRecord> = self
            .traces
            .iter()
            .filter(|trace| {
                trace.timestamp_unix_nano >= query.start_unix_nano
                    && trace.timestamp_unix_nano < query.end_unix_nano
                    && query.cursor.is_none_or(|cursor| {
                        key(trace) > (cursor.timestamp_unix_nano, cursor.trace_id)
                    })
            })
            .collect();
        let traces: Vec<TraceRecord> = after
            .iter()
            .take(query.limit)
            .map(|t| (*t).clone())
            .collect();
        let next_cursor = (after.len() > query.limit).then(|| {
            let (timestamp_unix_nano, trace_id) = key(traces.last().unwrap());
            TraceCursor {
                timestamp_unix_nano,
                trace_id,
            }
        });
        Ok(ExportPage {
            page: TracePage {
                traces,
                next_cursor,
            },
            ..ExportPage::default()
        })
    }
}

fn traces(count: u64) -> Vec<TraceRecord> {
    (0..count)
        .map(|index| {
            let mut id = [0u8; 16];
            id[8..].copy_from_slice(&(index + 1).to_be_bytes());
            TraceRecord {
                trace_id: TraceId(id).to_hex(),
                timestamp_unix_nano: 1_000 + index * 10,
                ..TraceRecord::default()
            }
        })
        .collect()
}

fn producer(count: u64, format: ExportFormat) -> (Producer<Listed>, Arc<AtomicUsize>) {
    let reads = Arc::new(AtomicUsize::new(0));
    let source = Listed {
        traces: traces(count),
        reads: Arc::clone(&reads),
    };
    (
        Producer::new(source, format, Walk::new(0, 1 << 40), TraceQuery::default()),
        reads,
    )
}

#[tokio::test]
async fn each_chunk_is_one_page_read_when_asked_for() {
    let count = 2 * PAGE_TRACES as u64 + 250;
    let (mut producer, reads) = producer(count, ExportFormat::Jsonl);
    assert_eq!(
        reads.load(Ordering::SeqCst),
        0,
        "nothing is read before it is asked for"
    );
    let mut lines = Vec::new();
    let mut chunks = 0;
    while let Some(chunk) = producer.next_chunk().await {
        chunks += 1;
        // One read per chunk (the walk's probe may cost one more read at a boundary).
        let read = reads.load(Ordering::SeqCst);
        assert!(read <= chunks + 1, "{read} reads for {chunks} chunks");
        let chunk = chunk.unwrap();
        let text = std::str::from_utf8(&chunk).unwrap();
        let in_chunk: Vec<serde_json::Value> = text
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect();
        assert!(
            in_chunk.len() <= PAGE_TRACES,
            "a chunk holds one page at most"
        );
        lines.extend(in_chunk);
    }
    assert_eq!(chunks, 3);
    let ids: Vec<String> = lines
        .iter()
        .map(|line| line["trace"]["trace_id"].as_str().unwrap().to_owned())
        .collect();
    let expected: Vec<String> = traces(count).into_iter().map(|t| t.trace_id).collect();
    assert_eq!(ids, expected, "every trace once, oldest first");
    assert!(
        lines
            .iter()
            .all(|line| line["spans"] == serde_json::json!([]))
    );
}

#[tokio::test]
async fn an_empty_export_is_a_header_or_nothing() {
    let (mut csv, _) = producer(0, ExportFormat::Csv);
    let header = csv.next_chunk().await.unwrap().unwrap();
    assert!(header.starts_with(b"trace_id,project,timestamp,"));
    assert!(csv.next_chunk().await.is_none());
    let (mut jsonl, _) = producer(0, ExportFormat::Jsonl);
    assert!(jsonl.next_chunk().await.is_none());
}
