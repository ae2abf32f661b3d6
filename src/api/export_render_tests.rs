//! The formats' details: CSV quoting read back, CSV columns against the TraceRecord, OTLP
//! lines holding whole traces.

use proptest::prelude::*;

use super::*;
use crate::model::TraceRecord;

/// A strict RFC 4180 reader, for reading rows back: `None` for malformed input.
pub(crate) fn parse_csv(text: &str) -> Option<Vec<Vec<String>>> {
    let mut rows = Vec::new();
    let mut row = Vec::new();
    let mut field = String::new();
    let mut chars = text.chars().peekable();
    let mut quoted = false;
    let mut at_field_start = true;
    while let Some(char) = chars.next() {
        if quoted {
            match char {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                    field.push('"');
                }
                '"' => quoted = false,
                other => field.push(other),
            }
            continue;
        }
        match char {
            '"' if at_field_start => {
                quoted = true;
                at_field_start = false;
            }
            '"' => return None,
            ',' => {
                row.push(std::mem::take(&mut field));
                at_field_start = true;
            }
            '\r' => {
                if chars.next() != Some('\n') {
                    return None;
                }
                row.push(std::mem::take(&mut field));
                rows.push(std::mem::take(&mut row));
                at_field_start = true;
            }
            '\n' => return None,
            other => {
                field.push(other);
                at_field_start = false;
            }
        }
    }
    (!quoted && row.is_empty() && field.is_empty()).then_some(rows)
}

proptest! {
    #![proptest_config(crate::test_support::bounded_cases())]

    /// Any fields, commas, quotes and line breaks included, read back as written.
    #[test]
    fn csv_rows_read_back_as_written(
        rows in prop::collection::vec(
            prop::collection::vec(
                prop_oneof![any::<String>(), "[ ,\"\r\na-z]{0,8}"],
                2..6,
            ),
            0..6,
        ),
    ) {
        let mut out = Vec::new();
        for row in &rows {
            let fields: Vec<&str> = row.iter().map(String::as_str).collect();
            csv_row(&mut out, &fields);
        }
        let text = String::from_utf8(out).unwrap();
        prop_assert_eq!(parse_csv(&text), Some(rows));
    }
}

#[test]
fn csv_quotes_only_what_needs_it() {
    let mut out = Vec::new();
    csv_row(
        &mut out,
        &["plain", "a,b", "say \"hi\"", "two\nlines", " padded", ""],
    );
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "plain,\"a,b\",\"say \"\"hi\"\"\",\"two\nlines\",\" padded\",\r\n"
    );
}

/// The CSV has a column for every field of a listed trace, and nothing else.
#[test]
fn csv_columns_are_the_trace_fields() {
    let trace = with_scores(vec![TraceRecord::default()], &[]).remove(0);
    let serde_json::Value::Object(fields) = serde_json::to_value(&trace).unwrap() else {
        panic!("a trace is an object");
    };
    let mut keys: Vec<&str> = fields.keys().map(String::as_str).collect();
    let mut columns = CSV_COLUMNS.to_vec();
    keys.sort_unstable();
    columns.sort_unstable();
    assert_eq!(keys, columns);
}

#[test]
fn csv_cells_are_text_numbers_json_or_empty() {
    let record = TraceRecord {
        trace_id: "ab".repeat(16),
        input: Some("hello, \"world\"".into()),
        duration_ms: 1.5,
        models: vec!["gpt-4o".into()],
        ..TraceRecord::default()
    };
    let page = ExportPage {
        page: crate::store::TracePage {
            traces: vec![record],
            next_cursor: None,
        },
        ..ExportPage::default()
    };
    let text = String::from_utf8(render_page(ExportFormat::Csv, page, true)).unwrap();
    let rows = parse_csv(&text).unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0], CSV_COLUMNS.to_vec());
    let cell = |name: &str| {
        let index = CSV_COLUMNS
            .iter()
            .position(|column| *column == name)
            .unwrap();
        rows[1][index].clone()
    };
    assert_eq!(cell("input"), "hello, \"world\"");
    assert_eq!(cell("output"), "");
    assert_eq!(cell("duration_ms"), "1.5");
    assert_eq!(cell("models"), "[\"gpt-4o\"]");
    assert_eq!(cell("scores"), "{}");
    assert_eq!(cell("timestamp"), "1970-01-01T00:00:00.000000000Z");
}

#[test]
fn formats_are_named_and_a_bad_one_is_refused() {
    assert_eq!(ExportFormat::parse(None).unwrap(), ExportFormat::Jsonl);
    assert_eq!(
        ExportFormat::parse(Some("otlp")).unwrap(),
        ExportFormat::Otlp
    );
    let error = ExportFormat::parse(Some("xml")).unwrap_err();
    assert_eq!(error.status, axum::http::StatusCode::BAD_REQUEST);
    assert!(error.message.contains("\"xml\""), "{}", error.message);
}
