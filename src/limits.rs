//! Limits on what one span may hold. A value over a limit is cut and marked, never silently
//! dropped, and the span is counted as truncated.

use crate::model::{AttrValue, Event, KeyValue, Span};

#[derive(Debug, Clone, Copy)]
pub struct SpanLimits {
    /// Longest string or bytes value kept, in bytes.
    pub max_attribute_value_bytes: usize,
    /// Deepest nesting of arrays and maps kept; deeper values are replaced by a marker.
    pub max_attribute_depth: usize,
    /// Most spans accepted in one request; more is answered 413.
    pub max_spans_per_request: usize,
}

impl Default for SpanLimits {
    fn default() -> Self {
        Self {
            max_attribute_value_bytes: 1024 * 1024,
            max_attribute_depth: 16,
            max_spans_per_request: 50_000,
        }
    }
}

/// Cuts the span's attribute and event values to the limits; `true` when anything was cut.
pub fn truncate_span(span: &mut Span, limits: &SpanLimits) -> bool {
    let mut truncated = truncate_all(&mut span.attributes, limits, 1);
    for event in &mut span.events {
        truncated |= truncate_all(&mut event.attributes, limits, 1);
    }
    truncated
}

/// Cuts a content event's attribute values (a log record's attributes and body) to the limits;
/// `true` when anything was cut.
pub fn truncate_event(event: &mut Event, limits: &SpanLimits) -> bool {
    truncate_all(&mut event.attributes, limits, 1)
}

fn truncate_all(attributes: &mut [KeyValue], limits: &SpanLimits, depth: usize) -> bool {
    let mut truncated = false;
    for entry in attributes {
        truncated |= truncate_value(&mut entry.value, limits, depth);
    }
    truncated
}

fn truncate_value(value: &mut AttrValue, limits: &SpanLimits, depth: usize) -> bool {
    match value {
        AttrValue::String(text) if text.len() > limits.max_attribute_value_bytes => {
            let original = text.len();
            let mut cut = limits.max_attribute_value_bytes;
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            text.truncate(cut);
            text.push_str(&format!("…[truncated by spanhouse: {original} bytes]"));
            true
        }
        AttrValue::Bytes(bytes) if bytes.len() > limits.max_attribute_value_bytes => {
            bytes.truncate(limits.max_attribute_value_bytes);
            true
        }
        AttrValue::Array(_) | AttrValue::Map(_) if depth > limits.max_attribute_depth => {
            *value = AttrValue::String(format!(
                "[nested deeper than {} levels: truncated by spanhouse]",
                limits.max_attribute_depth
            ));
            true
        }
        AttrValue::Array(values) => {
            let mut truncated = false;
            for item in values {
                truncated |= truncate_value(item, limits, depth + 1);
            }
            truncated
        }
        AttrValue::Map(entries) => truncate_all(entries, limits, depth + 1),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::span::test_support::make_span;

    #[test]
    fn long_and_deep_values_are_cut_and_marked() {
        let limits = SpanLimits {
            max_attribute_value_bytes: 5,
            max_attribute_depth: 2,
            max_spans_per_request: 10,
        };
        let mut deep = AttrValue::Int(1);
        for _ in 0..4 {
            deep = AttrValue::Array(vec![deep]);
        }
        let mut span = Span {
            attributes: vec![
                KeyValue::new("long", AttrValue::String("ééééé".into())),
                KeyValue::new("short", AttrValue::String("ok".into())),
                KeyValue::new("deep", deep),
            ],
            ..make_span(1, 1)
        };
        assert!(truncate_span(&mut span, &limits));
        assert_eq!(
            span.attributes[0].value.as_str(),
            Some("éé…[truncated by spanhouse: 10 bytes]")
        );
        assert_eq!(span.attributes[1].value.as_str(), Some("ok"));
        let AttrValue::Array(level1) = &span.attributes[2].value else {
            panic!("kept the first level")
        };
        let AttrValue::Array(level2) = &level1[0] else {
            panic!("kept the second level")
        };
        assert!(level2[0].as_str().unwrap().contains("nested deeper"));
        let mut small = make_span(1, 2);
        assert!(!truncate_span(&mut small, &limits));
    }
}
