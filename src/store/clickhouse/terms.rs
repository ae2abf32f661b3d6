//! The searchable terms of spans on ClickHouse (migration 5): `store::terms` of each span, and
//! its LLM call's provider and operation (the span filters' `llm.provider`, `llm.operation`,
//! which the `spans` table has no column for), one row each in `span_terms`. They are made on
//! the receivers' threads with the span rows, spooled with them and inserted at delivery, when
//! `filter_keys` learns their keys.

use clickhouse::Row;
use serde::{Deserialize, Serialize};

use crate::model::NormalizedSpan;
use crate::store::terms::{TermKind, TermValue, span_terms};

/// The kind code of an LLM call's provider (after `TermKind`'s codes).
pub const KIND_LLM_PROVIDER: u8 = 5;
/// The kind code of an LLM call's operation.
pub const KIND_LLM_OPERATION: u8 = 6;

/// `value_type` of a string term.
pub const TYPE_TEXT: u8 = 1;
/// `value_type` of an integer term (`number` holds it, `value` its decimal text).
pub const TYPE_INT: u8 = 2;
/// `value_type` of a float term (`number` holds it, `value` its text as Rust writes it).
pub const TYPE_FLOAT: u8 = 3;
/// `value_type` of a boolean term (`value` is `true` or `false`).
pub const TYPE_BOOL: u8 = 4;

/// One term of one span, as `span_terms` stores it.
#[derive(Debug, Clone, PartialEq, Row, Serialize, Deserialize)]
pub struct TermRow {
    pub project_id: String,
    /// `TermKind::code`, or [`KIND_LLM_PROVIDER`], [`KIND_LLM_OPERATION`].
    pub kind: u8,
    /// The attribute's or metadata entry's key; empty for tags and LLM facts.
    pub key: String,
    /// The value as text (what `IsMatch` reads, and equality of strings).
    pub value: String,
    /// `TYPE_TEXT`, `TYPE_INT`, `TYPE_FLOAT` or `TYPE_BOOL`.
    pub value_type: u8,
    /// The value of a number; 0 otherwise.
    pub number: f64,
    pub trace_id: String,
    pub span_id: String,
    /// The span's start, which the table is partitioned (and expired) by.
    pub start_ns: u64,
}

/// The term rows of one span.
pub fn term_rows(project_id: &str, normalized: &NormalizedSpan) -> Vec<TermRow> {
    let span = &normalized.span;
    let row = |kind: u8, key: String, value: String, value_type: u8, number: f64| TermRow {
        project_id: project_id.to_owned(),
        kind,
        key,
        value,
        value_type,
        number,
        trace_id: span.trace_id.to_hex(),
        span_id: span.span_id.to_hex(),
        start_ns: span.start_time_unix_nano,
    };
    let mut rows: Vec<TermRow> = span_terms(span)
        .into_iter()
        .map(|term| {
            let (value, value_type, number) = match term.value {
                TermValue::Text(text) => (text, TYPE_TEXT, 0.0),
                TermValue::Int(number) => (number.to_string(), TYPE_INT, number as f64),
                TermValue::Float(number) => (number.to_string(), TYPE_FLOAT, number),
                TermValue::Bool(flag) => (flag.to_string(), TYPE_BOOL, 0.0),
            };
            row(term.kind.code(), term.key, value, value_type, number)
        })
        .collect();
    if let Some(llm) = &normalized.semantics.llm {
        for (kind, value) in [
            (KIND_LLM_PROVIDER, &llm.provider),
            (KIND_LLM_OPERATION, &llm.operation),
        ] {
            if let Some(value) = value {
                rows.push(row(kind, String::new(), value.clone(), TYPE_TEXT, 0.0));
            }
        }
    }
    rows
}

/// Whether a kind's keys are listed by `filter_keys` (attributes, resource attributes,
/// metadata).
pub fn has_keys(kind: u8) -> bool {
    [TermKind::Attribute, TermKind::Resource, TermKind::Metadata]
        .iter()
        .any(|listed| listed.code() == kind)
}
