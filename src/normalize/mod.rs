//! Normalization: what a span means as part of an LLM application, read from the attributes of
//! whichever convention its instrumentation used. Pure functions, no I/O.
//!
//! So far this reads the OpenInference-style `input.value`/`output.value` texts and the identity
//! attributes shared by several conventions; the LLM conventions of SPEC §5 build on the same
//! entry point.

use crate::model::attributes::find_str;
use crate::model::{Span, SpanSemantics};

/// Attribute keys read here, grouped by the convention that defines them.
pub mod keys {
    /// OpenInference: <https://github.com/Arize-ai/openinference/blob/main/spec/semantic_conventions.md>
    pub const INPUT_VALUE: &str = "input.value";
    pub const OUTPUT_VALUE: &str = "output.value";
    pub const SESSION_ID: &str = "session.id";
    pub const USER_ID: &str = "user.id";
    /// Gentrace: <https://gentrace.ai/docs>
    pub const GENTRACE_PIPELINE_ID: &str = "gentrace.pipeline_id";
}

/// Reads the LLM meaning of one span.
pub fn normalize_span(span: &Span) -> SpanSemantics {
    let attributes = &span.attributes;
    let text = |key: &str| find_str(attributes, key).map(str::to_owned);
    SpanSemantics {
        input: text(keys::INPUT_VALUE),
        output: text(keys::OUTPUT_VALUE),
        session_id: text(keys::SESSION_ID),
        user_id: text(keys::USER_ID),
        pipeline_id: text(keys::GENTRACE_PIPELINE_ID),
        llm: None,
        tool: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::span::test_support::make_span;
    use crate::model::{AttrValue, KeyValue};

    #[test]
    fn reads_input_and_output_values() {
        let span = Span {
            attributes: vec![
                KeyValue::new("input.value", AttrValue::String("Say hi".into())),
                KeyValue::new("output.value", AttrValue::String("Hi!".into())),
                KeyValue::new("session.id", AttrValue::String("s-1".into())),
            ],
            ..make_span(1, 1)
        };
        let semantics = normalize_span(&span);
        assert_eq!(semantics.input.as_deref(), Some("Say hi"));
        assert_eq!(semantics.output.as_deref(), Some("Hi!"));
        assert_eq!(semantics.session_id.as_deref(), Some("s-1"));
        assert_eq!(normalize_span(&make_span(1, 2)), SpanSemantics::default());
    }
}
