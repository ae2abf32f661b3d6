//! What the receivers hand to ingest once a request is decoded and converted: spanhouse's own
//! types, so that no wire format reaches past `otlp`.

use super::{ContentEvent, Span};

/// A span that could not be accepted, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RejectedSpan {
    /// Readable, for `partial_success.error_message`.
    pub reason: String,
}

/// The valid spans of a request and the rejected ones.
#[derive(Debug, Default)]
pub struct ConvertedSpans {
    /// The spans that follow OTLP's rules.
    pub spans: Vec<Span>,
    /// The others, each with its reason.
    pub rejected: Vec<RejectedSpan>,
}

impl ConvertedSpans {
    /// A readable summary for `partial_success.error_message`; empty when nothing was rejected.
    pub fn error_message(&self) -> String {
        match self.rejected.as_slice() {
            [] => String::new(),
            [only] => format!("1 span rejected: {}", only.reason),
            [first, ..] => format!(
                "{} spans rejected; first: {}",
                self.rejected.len(),
                first.reason
            ),
        }
    }
}

/// The content events of a request, and how many records carried none.
#[derive(Debug, Default)]
pub struct ConvertedLogs {
    /// The records that carry GenAI content, as events of their spans.
    pub content: Vec<ContentEvent>,
    /// Records acknowledged but not stored: no GenAI event name, or no valid span to attach to.
    pub ignored: usize,
}
