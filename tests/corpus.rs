//! Every payload captured from a real SDK or instrumentation (tests/fixtures/corpus, copied from
//! the shared corpus) is accepted whole and reads back.

mod common;

use std::collections::BTreeSet;
use std::path::Path;

use common::*;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use spanhouse::otlp::{Encoding, decode_trace_request};

fn corpus_files() -> Vec<std::path::PathBuf> {
    let directory = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/corpus");
    let mut files: Vec<_> = std::fs::read_dir(directory)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| {
            matches!(
                path.extension().and_then(|e| e.to_str()),
                Some("pb" | "json")
            )
        })
        .collect();
    files.sort();
    files
}

fn encoding_of(path: &Path) -> Encoding {
    if path.extension().and_then(|e| e.to_str()) == Some("json") {
        Encoding::Json
    } else {
        Encoding::Protobuf
    }
}

fn decode(path: &Path) -> ExportTraceServiceRequest {
    let body = std::fs::read(path).unwrap();
    decode_trace_request(encoding_of(path), &body)
        .unwrap_or_else(|error| panic!("{}: {error}", path.display()))
}

#[test]
fn every_corpus_file_decodes_without_rejections() {
    let files = corpus_files();
    assert!(files.len() >= 12, "corpus is missing files: {files:?}");
    for path in files {
        let converted = spanhouse::otlp::spans_from_request(decode(&path));
        assert!(!converted.spans.is_empty(), "{}", path.display());
        assert!(
            converted.rejected.is_empty(),
            "{}: {:?}",
            path.display(),
            converted.rejected
        );
    }
}

#[test]
fn json_and_protobuf_captures_of_the_same_span_agree() {
    let from_json = spanhouse::otlp::spans_from_request(decode(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/corpus/node-sdk.json"),
    ));
    let from_protobuf = spanhouse::otlp::spans_from_request(decode(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/corpus/node-sdk-1.pb"),
    ));
    let json_span = &from_json.spans[0];
    let protobuf_span = &from_protobuf.spans[0];
    assert_eq!(json_span.name, protobuf_span.name);
    assert_eq!(json_span.kind, protobuf_span.kind);
    let keys = |span: &spanhouse::model::Span| -> BTreeSet<String> {
        span.attributes.iter().map(|kv| kv.key.clone()).collect()
    };
    assert_eq!(keys(json_span), keys(protobuf_span));
    for (json_kv, protobuf_kv) in json_span.attributes.iter().zip(&protobuf_span.attributes) {
        assert_eq!(json_kv, protobuf_kv);
    }
}

#[tokio::test]
async fn every_corpus_file_is_stored_and_reads_back() {
    let server = TestServer::start().await;
    for path in corpus_files() {
        let request = decode(&path);
        let trace_ids: BTreeSet<String> = request
            .resource_spans
            .iter()
            .flat_map(|resource| &resource.scope_spans)
            .flat_map(|scope| &scope.spans)
            .map(|span| hex::encode(&span.trace_id))
            .collect();
        let encoding = encoding_of(&path);
        let response = server
            .post_as_admin("/v1/traces", encoding.content_type())
            .body(std::fs::read(&path).unwrap())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{}", path.display());
        for trace_id in trace_ids {
            let (status, trace) = server
                .get_json(&format!("/api/v1/traces/{trace_id}"), &server.admin_token)
                .await;
            assert_eq!(status, 200, "{}", path.display());
            assert!(trace["trace"]["span_count"].as_u64().unwrap() >= 1);
        }
    }

    // The hand-made SDK spans carry input.value/output.value as plain text.
    for file in ["python-sdk.pb", "node-sdk.json"] {
        let request = decode(
            &Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/fixtures/corpus")
                .join(file),
        );
        let trace_id = hex::encode(&request.resource_spans[0].scope_spans[0].spans[0].trace_id);
        let (_, trace) = server
            .get_json(&format!("/api/v1/traces/{trace_id}"), &server.admin_token)
            .await;
        assert_eq!(trace["trace"]["input"], "Say hi", "{file}");
        assert_eq!(trace["trace"]["output"], "Hi!", "{file}");
    }
    server.stop().await;
}
