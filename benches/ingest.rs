//! Criterion benchmarks of the ingest path, one stage at a time, on the load generator's
//! traffic (1000 LLM spans per request, 1 KiB input and output, ~12 attributes, a mix of
//! conventions): decoding a protobuf request into spans, normalizing them, encoding and decoding
//! the embedded store's stored spans, the embedded store's batch write, and redaction with every
//! detector on. `bench/run.sh` runs
//! them; BENCHMARKS.md has the numbers.

use std::sync::Arc;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message as _;
use spanhouse::model::project::RedactRule;
use spanhouse::model::{AttrValue, EncodedBody, KeyValue, NormalizedSpan, Span};
use spanhouse::normalize::Normalizer;
use spanhouse::otlp::{Encoding, decode_trace_request, spans_from_request};
use spanhouse::redact::{DETECTORS, Redactor};
use spanhouse::store::codec::{
    columns_of, decode_stored_body, encode_in_blocks, encode_stored_span,
};
use spanhouse::store::sqlite::{Compression, SqliteOptions, SqliteStore, Synchronous};
use spanhouse::store::{SpanBatch, Store};
use spanhouse::synthetic::{Convention, Shape, make_request};

const SPANS: usize = 1000;

/// The server's allocator (src/main.rs), so that these stages cost what they cost in the server:
/// decoding and normalizing are mostly allocating and freeing strings, vectors and JSON values,
/// and glibc's malloc takes several times mimalloc's instructions for each.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn request(run: u64) -> ExportTraceServiceRequest {
    let shape = Shape {
        spans_per_request: SPANS,
        spans_per_trace: 5,
        text_bytes: 1024,
        convention: Convention::Mix,
        late_roots: false,
    };
    make_request(&shape, run, 0, 0).0
}

fn decode_and_normalize(criterion: &mut Criterion) {
    let body = request(1).encode_to_vec();
    let normalizer = Normalizer::default();
    let mut group = criterion.benchmark_group("ingest");
    group.throughput(Throughput::Elements(SPANS as u64));
    group.bench_function("decode 1000 spans (protobuf → spans)", |bencher| {
        bencher.iter(|| {
            let request = decode_trace_request(Encoding::Protobuf, &body).unwrap();
            spans_from_request(request).spans.len()
        })
    });
    let spans = spans_from_request(request(1)).spans;
    group.bench_function("normalize 1000 spans", |bencher| {
        bencher.iter(|| {
            spans
                .iter()
                .map(|span| normalizer.normalize(span, &[]))
                .filter(|semantics| semantics.llm.is_some())
                .count()
        })
    });
    group.bench_function("decode + normalize 1000 spans", |bencher| {
        bencher.iter(|| {
            let request = decode_trace_request(Encoding::Protobuf, &body).unwrap();
            spans_from_request(request)
                .spans
                .iter()
                .map(|span| normalizer.normalize(span, &[]))
                .filter(|semantics| semantics.llm.is_some())
                .count()
        })
    });
    group.finish();
}

/// The stored span of the embedded store (`store::codec::encode_stored_span`): encoded on the
/// receivers' threads for every span, decoded when a trace is read, and its texts alone read by
/// the writer for spans of a trace written in earlier batches.
fn stored_span_codec(criterion: &mut Criterion) {
    let normalizer = Normalizer::default();
    let normalized: Vec<_> = spans_from_request(request(1))
        .spans
        .into_iter()
        .map(|span| {
            let semantics = normalizer.normalize(&span, &[]);
            (span, semantics)
        })
        .collect();
    let encoded: Vec<Vec<u8>> = normalized
        .iter()
        .map(|(span, semantics)| encode_stored_span(span, semantics, Compression::default()))
        .collect();
    let mut group = criterion.benchmark_group("store codec");
    group.throughput(Throughput::Elements(SPANS as u64));
    for (name, compression) in [("LZ4", Compression::Lz4), ("zstd", Compression::Zstd)] {
        let encode = |(span, semantics): &(_, _)| encode_stored_span(span, semantics, compression);
        let bytes: usize = normalized.iter().map(|span| encode(span).len()).sum();
        println!("{name}: {} bytes per stored span", bytes / normalized.len());
        group.bench_function(format!("encode 1000 stored spans ({name})"), |bencher| {
            bencher.iter(|| {
                normalized
                    .iter()
                    .map(|span| encode(span).len())
                    .sum::<usize>()
            })
        });
    }
    // The receivers' path: a request's spans of one trace compressed together.
    let unencoded: Vec<NormalizedSpan> = normalized
        .iter()
        .map(|(span, semantics)| NormalizedSpan {
            span: span.clone(),
            semantics: semantics.clone(),
            encoded_body: None,
        })
        .collect();
    for (name, compression) in [("LZ4", Compression::Lz4), ("zstd", Compression::Zstd)] {
        let mut spans = unencoded.clone();
        encode_in_blocks(&mut spans, compression);
        println!(
            "{name} in blocks: {} bytes per stored span",
            stored_bytes(&spans) / spans.len()
        );
        group.bench_function(format!("encode 1000 spans in blocks ({name})"), |bencher| {
            bencher.iter_batched(
                || unencoded.clone(),
                |mut spans| {
                    encode_in_blocks(&mut spans, compression);
                    spans
                },
                BatchSize::SmallInput,
            )
        });
    }
    group.bench_function("decode 1000 stored spans", |bencher| {
        bencher.iter(|| {
            normalized
                .iter()
                .zip(&encoded)
                .map(|((span, _), bytes)| {
                    let (decoded, semantics) = decode_stored_body(bytes)
                        .and_then(|stored| stored.decode(columns_of(span)))
                        .unwrap();
                    decoded.attributes.len() + usize::from(semantics.is_some())
                })
                .sum::<usize>()
        })
    });
    group.bench_function("texts of 1000 stored spans", |bencher| {
        bencher.iter(|| {
            encoded
                .iter()
                .map(|bytes| {
                    let (input, _) = decode_stored_body(bytes)
                        .and_then(|stored| stored.texts())
                        .unwrap();
                    input.map_or(0, |input| input.len())
                })
                .sum::<usize>()
        })
    });
    group.finish();
}

/// What spans encoded in blocks store: each body of its own, each block once, and a
/// 17-byte body per part of a block.
fn stored_bytes(spans: &[NormalizedSpan]) -> usize {
    let mut blocks = std::collections::HashSet::new();
    spans
        .iter()
        .map(|span| match &span.encoded_body {
            Some(EncodedBody::Whole(bytes)) => bytes.len(),
            Some(EncodedBody::Part { block, .. }) => {
                17 + if blocks.insert(Arc::as_ptr(block)) {
                    block.len()
                } else {
                    0
                }
            }
            None => 0,
        })
        .sum()
}

fn store_write(criterion: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let directory = tempfile::tempdir().unwrap();
    // NORMAL: the benchmark measures the store's own work, not this disk's fsync latency
    // (the load generator measures the whole path with the FULL default).
    let store: Arc<dyn Store> = Arc::new(
        SqliteStore::open(
            directory.path(),
            SqliteOptions {
                synchronous: Synchronous::Normal,
                compression: Compression::default(),
            },
            Arc::new(Normalizer::default()),
        )
        .unwrap(),
    );
    let normalizer = Normalizer::default();
    let mut run = 10;
    let mut group = criterion.benchmark_group("store");
    group.throughput(Throughput::Elements(SPANS as u64));
    group.sample_size(20);
    group.bench_function("sqlite batch write of 1000 new spans", |bencher| {
        bencher.iter_batched(
            || {
                run += 1;
                let spans = spans_from_request(request(run))
                    .spans
                    .into_iter()
                    .map(|span| NormalizedSpan {
                        semantics: normalizer.normalize(&span, &[]),
                        encoded_body: None,
                        span,
                    })
                    .collect();
                vec![SpanBatch {
                    project_id: "bench".into(),
                    spans,
                    prepared: Vec::new(),
                }]
            },
            |batches| runtime.block_on(store.write_spans(batches)).unwrap(),
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

/// Redaction with every built-in detector on (`redact::Redactor`), against normalization of the
/// same spans: the load generator's spans, which hold nothing to redact (the common case); the
/// same with an email, a card number, a key and a phone number in every tenth span's prompt; and
/// the spans captured from real instrumentation libraries (tests/fixtures/corpus).
fn redaction(criterion: &mut Criterion) {
    let rules: Vec<RedactRule> = DETECTORS
        .iter()
        .map(|name| RedactRule::Detector((*name).to_owned()))
        .collect();
    let redactor = Redactor::new(&rules).unwrap().unwrap();
    let clean = spans_from_request(request(1)).spans;
    let mut with_pii = clean.clone();
    for span in with_pii.iter_mut().step_by(10) {
        span.attributes.push(KeyValue::new(
            "input.value",
            AttrValue::String(
                "Reach me at jane.doe@example.com or +1 415 555 0134; card 4111 1111 1111 1111; \
                 my key is sk-proj-Zx81fKqLmNoPq3RsTuVwXyZ0123456789abc"
                    .into(),
            ),
        ));
    }
    let corpus_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/corpus");
    let corpus: Vec<Span> = std::fs::read_dir(corpus_dir)
        .unwrap()
        .flatten()
        .filter(|entry| entry.path().extension().is_some_and(|ext| ext == "pb"))
        .flat_map(|entry| {
            let body = std::fs::read(entry.path()).unwrap();
            let request = decode_trace_request(Encoding::Protobuf, &body).unwrap();
            spans_from_request(request).spans
        })
        .collect();
    let normalizer = Normalizer::default();
    let mut group = criterion.benchmark_group("redact");
    for (name, spans) in [
        ("1000 spans, nothing to redact", &clean),
        ("1000 spans, every 10th with PII", &with_pii),
    ] {
        group.throughput(Throughput::Elements(spans.len() as u64));
        group.bench_function(format!("redact {name}"), |bencher| {
            bencher.iter_batched(
                || spans.clone(),
                |mut spans| {
                    let shared = redactor.redact_shared(&mut spans);
                    shared
                        + spans
                            .iter_mut()
                            .map(|span| redactor.redact_span(span))
                            .sum::<usize>()
                },
                BatchSize::LargeInput,
            )
        });
        group.bench_function(
            format!("clone only (the baseline of redact) {name}"),
            |bencher| {
                bencher.iter_batched(|| spans.clone(), |spans| spans.len(), BatchSize::LargeInput)
            },
        );
    }
    // Each detector alone, on the spans with nothing to redact: where the time goes.
    group.throughput(Throughput::Elements(clean.len() as u64));
    for name in DETECTORS {
        let alone = Redactor::new(&[RedactRule::Detector(name.to_owned())])
            .unwrap()
            .unwrap();
        group.bench_function(
            format!("{name} alone, 1000 spans, nothing to redact"),
            |bencher| {
                bencher.iter_batched(
                    || clean.clone(),
                    |mut spans| {
                        spans
                            .iter_mut()
                            .map(|span| alone.redact_span(span))
                            .sum::<usize>()
                    },
                    BatchSize::LargeInput,
                )
            },
        );
    }
    group.throughput(Throughput::Elements(corpus.len() as u64));
    group.bench_function(
        format!("redact the corpus ({} spans)", corpus.len()),
        |bencher| {
            bencher.iter_batched(
                || corpus.clone(),
                |mut spans| {
                    spans
                        .iter_mut()
                        .map(|span| redactor.redact_span(span))
                        .sum::<usize>()
                },
                BatchSize::LargeInput,
            )
        },
    );
    group.bench_function(
        format!("normalize the corpus ({} spans)", corpus.len()),
        |bencher| {
            bencher.iter(|| {
                corpus
                    .iter()
                    .map(|span| normalizer.normalize(span, &[]))
                    .filter(|semantics| semantics.llm.is_some())
                    .count()
            })
        },
    );
    group.finish();
}

criterion_group!(
    benches,
    decode_and_normalize,
    stored_span_codec,
    store_write,
    redaction
);
criterion_main!(benches);
