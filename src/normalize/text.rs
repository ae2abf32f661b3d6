//! The text rules: what a span's input or output value shows.
//!
//! - A plain string is kept as it is.
//! - A JSON string (`"\"Hello\""`) shows its content.
//! - JSON that holds a request or a response (OpenAI `messages`, `choices`, a message list) shows
//!   the text read from its messages: the last user message for input, the first choice for
//!   output. When the span has messages of its own (flattened or GenAI attributes), those are
//!   used instead of the JSON.
//! - Any other JSON is kept as its text.

use serde_json::Value;

use super::messages::{input_text, messages_from_json, output_text};
use super::values::parse_json_text;
use crate::model::llm::Message;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Input,
    Output,
}

/// The text a value attribute shows, given the messages the span already has.
pub fn display_text(raw: &str, direction: Direction, span_messages: &[Message]) -> Option<String> {
    let Some(json) = parse_json_text(raw) else {
        return Some(raw.to_owned());
    };
    if let Value::String(text) = json {
        return Some(text);
    }
    let pick = |messages: &[Message]| match direction {
        Direction::Input => input_text(messages),
        Direction::Output => output_text(messages),
    };
    if !span_messages.is_empty()
        && let Some(text) = pick(span_messages)
    {
        return Some(text);
    }
    if let Some(messages) = messages_from_json(&json)
        && let Some(text) = pick(&messages)
    {
        return Some(text);
    }
    Some(raw.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules() {
        assert_eq!(
            display_text("Say hi", Direction::Input, &[]).as_deref(),
            Some("Say hi")
        );
        assert_eq!(
            display_text("\"Hi!\"", Direction::Output, &[]).as_deref(),
            Some("Hi!")
        );
        let request = r#"{"model": "m", "messages": [{"role": "user", "content": "Q"}]}"#;
        assert_eq!(
            display_text(request, Direction::Input, &[]).as_deref(),
            Some("Q")
        );
        let response = r#"{"choices": [{"message": {"role": "assistant", "content": "A"}}]}"#;
        assert_eq!(
            display_text(response, Direction::Output, &[]).as_deref(),
            Some("A")
        );
        let args = r#"[{"q": "Say hello"}]"#;
        assert_eq!(
            display_text(args, Direction::Input, &[]).as_deref(),
            Some(args)
        );
    }
}
