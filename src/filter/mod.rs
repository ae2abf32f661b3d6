//! Filter conditions in the OpenTelemetry Collector's OTTL condition language, over spans.
//!
//! A condition is parsed and compiled once, when a project's settings are saved (errors carry
//! the column), and evaluated for each span at ingest. A span that matches any of a project's
//! conditions is dropped, as the Collector's filter processor does.
//!
//! Supported: paths `name`, `kind`, `status.code`, `status.message`, `trace_id`, `span_id`,
//! `parent_span_id` (also `.string`: lowercase hex), `trace_state`, `attributes["k"]`,
//! `resource.attributes["k"]`, `instrumentation_scope.name|version|attributes["k"]`,
//! `start_time_unix_nano`, `end_time_unix_nano` (optionally prefixed `span.`; map values indexed
//! further with `["k"]`); string, int, float, bool literals and `nil`; `==`, `!=`, `<`, `<=`,
//! `>`, `>=`; `and`, `or`, `not`, parentheses; the constants `SPAN_KIND_*` and `STATUS_CODE_*`;
//! the functions `IsMatch(target, "regex")`, `IsString`, `IsInt`, `IsDouble`, `IsBool`,
//! `IsMap`, `IsList`.

mod eval;
mod lexer;
mod parser;

use std::fmt;

pub mod query;

pub use parser::{
    Call, Comparator, Condition, Expr, Literal, PathContext, PathShape, SpanPaths, TypeCheck,
};

/// Longest condition accepted, in characters.
pub const MAX_CONDITION_LENGTH: usize = 4096;

/// Why a condition does not parse: what and where (1-based column).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub column: usize,
    pub message: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "column {}: {}", self.column, self.message)
    }
}

impl std::error::Error for ParseError {}

/// Parses and compiles a condition over spans at ingest.
pub fn parse(text: &str) -> Result<Condition, ParseError> {
    parse_in(&SpanPaths, text)
}

/// Parses a condition whose paths `context` resolves.
pub fn parse_in<C: PathContext>(context: &C, text: &str) -> Result<Condition<C::Path>, ParseError> {
    if text.chars().count() > MAX_CONDITION_LENGTH {
        return Err(ParseError {
            column: MAX_CONDITION_LENGTH,
            message: format!("condition is longer than {MAX_CONDITION_LENGTH} characters"),
        });
    }
    let tokens = lexer::tokenize(text)?;
    parser::Parser::new(context, tokens, text.chars().count()).parse()
}

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;
