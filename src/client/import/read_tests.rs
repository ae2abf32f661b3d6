use std::io::Write as _;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use proptest::prelude::*;
use prost::Message as _;

use super::*;

fn request(name: &str) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans: vec![Span {
                    trace_id: vec![1; 16],
                    span_id: vec![2; 8],
                    name: name.into(),
                    start_time_unix_nano: 1,
                    end_time_unix_nano: 2,
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

fn json(name: &str) -> String {
    format!(
        r#"{{"resourceSpans":[{{"scopeSpans":[{{"spans":[{{"traceId":"01010101010101010101010101010101","spanId":"0202020202020202","name":"{name}","startTimeUnixNano":"1","endTimeUnixNano":"2"}}]}}]}}]}}"#
    )
}

fn names(bytes: Vec<u8>) -> Result<Vec<String>, ReadError> {
    let mut names = Vec::new();
    read_stream(std::io::Cursor::new(bytes), &mut |document| {
        match document {
            Document::Traces(request) => names.extend(
                request
                    .resource_spans
                    .into_iter()
                    .flat_map(|resource| resource.scope_spans)
                    .flat_map(|scope| scope.spans)
                    .map(|span| span.name),
            ),
            Document::Logs(_) => names.push("logs".into()),
            Document::Metrics => names.push("metrics".into()),
        }
        true
    })?;
    Ok(names)
}

fn prefixed(records: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    for record in records {
        out.extend((record.len() as u32).to_be_bytes());
        out.extend(record);
    }
    out
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

fn zstd(bytes: &[u8]) -> Vec<u8> {
    zstd::stream::encode_all(bytes, 1).unwrap()
}

#[test]
fn every_format_of_the_file_exporter_and_of_otlp_documents_is_read() {
    let lines = format!("{}\n\n{}\n", json("a"), json("b")).into_bytes();
    let expected = vec!["a".to_owned(), "b".to_owned()];
    assert_eq!(names(lines.clone()).unwrap(), expected, "JSON lines");
    assert_eq!(names(gzip(&lines)).unwrap(), expected, "gzip JSON lines");
    assert_eq!(
        names(zstd(&lines)).unwrap(),
        expected,
        "zstd stream of JSON lines"
    );
    let protobuf = [request("a").encode_to_vec(), request("b").encode_to_vec()];
    assert_eq!(
        names(prefixed(&protobuf)).unwrap(),
        expected,
        "length-prefixed protobuf"
    );
    let per_record = [zstd(&protobuf[0]), zstd(&protobuf[1])];
    assert_eq!(
        names(prefixed(&per_record)).unwrap(),
        expected,
        "zstd records"
    );
    let json_records = [zstd(json("a").as_bytes()), json("b").into_bytes()];
    assert_eq!(
        names(prefixed(&json_records)).unwrap(),
        expected,
        "JSON records"
    );
    assert_eq!(
        names(zstd(&prefixed(&protobuf))).unwrap(),
        expected,
        "zstd stream of records"
    );
    assert_eq!(
        names(protobuf[0].clone()).unwrap(),
        vec!["a"],
        "protobuf document"
    );
    let value: serde_json::Value = serde_json::from_str(&json("a")).unwrap();
    let pretty = format!(
        "{}\n{}",
        serde_json::to_string_pretty(&value).unwrap(),
        serde_json::to_string_pretty(
            &serde_json::from_str::<serde_json::Value>(&json("b")).unwrap()
        )
        .unwrap()
    );
    assert_eq!(
        names(pretty.into_bytes()).unwrap(),
        expected,
        "pretty documents"
    );
    assert_eq!(
        names(Vec::new()).unwrap(),
        Vec::<String>::new(),
        "an empty file"
    );
}

#[test]
fn logs_and_metrics_documents_are_told_apart() {
    let lines = format!(
        "{}\n{{\"resourceLogs\":[]}}\n{{\"resource_metrics\":[]}}\n",
        json("a")
    );
    assert_eq!(
        names(lines.into_bytes()).unwrap(),
        vec!["a", "logs", "metrics"]
    );
}

#[test]
fn damage_is_reported_with_where_it_is() {
    let error = names(format!("{}\n{{\"spans\": 1}}\n", json("a")).into_bytes()).unwrap_err();
    assert_eq!(error.document, 2, "{error}");
    assert!(
        error.to_string().contains("not an OTLP export request"),
        "{error}"
    );
    let error = names(format!("{}\nnot json\n", json("a")).into_bytes()).unwrap_err();
    assert!(error.to_string().contains("not JSON"), "{error}");
    let mut cut = prefixed(&[request("a").encode_to_vec()]);
    cut.truncate(cut.len() - 3);
    let error = names(cut).unwrap_err();
    assert!(error.to_string().contains("cut short"), "{error}");
    let error = names(vec![0x7f, 0xff, 0xff, 0xff, 1, 2]).unwrap_err();
    assert!(error.to_string().contains("bytes (at most"), "{error}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Arbitrary bytes, raw or behind either compression's magic: an error or documents,
    /// never a panic.
    #[test]
    fn arbitrary_bytes_never_panic(
        bytes in proptest::collection::vec(any::<u8>(), 0..512),
        magic in 0usize..4,
    ) {
        let mut input = match magic {
            0 => Vec::new(),
            1 => vec![0x1f, 0x8b],
            2 => vec![0x28, 0xb5, 0x2f, 0xfd],
            _ => vec![0, 0, 0],
        };
        input.extend(bytes);
        let _ = names(input);
    }

    /// Valid records with their tails cut anywhere: an error or a prefix of the names.
    #[test]
    fn cut_files_give_a_prefix_or_an_error(cut in 0usize..200) {
        let full = prefixed(&[request("a").encode_to_vec(), request("b").encode_to_vec()]);
        let cut = cut.min(full.len());
        if let Ok(found) = names(full[..cut].to_vec()) {
            prop_assert!(["a", "b"].starts_with(&found.iter().map(String::as_str).collect::<Vec<_>>()));
        }
    }
}
