//! Reading attribute values the way instrumentations write them: numbers as ints, doubles or
//! strings, structures as OTLP arrays and maps or as JSON text.

use serde_json::Value;

use crate::model::attributes::{AttrValue, KeyValue, find};

/// The value as JSON: OTLP arrays and maps become JSON arrays and objects; a string holding JSON
/// (an object, an array or a quoted string) is parsed; any other string stays a JSON string.
pub fn to_json(value: &AttrValue) -> Value {
    match value {
        AttrValue::Empty => Value::Null,
        AttrValue::String(text) => {
            parse_json_text(text).unwrap_or_else(|| Value::String(text.clone()))
        }
        AttrValue::Bool(flag) => Value::Bool(*flag),
        AttrValue::Int(number) => Value::from(*number),
        AttrValue::Double(number) => {
            serde_json::Number::from_f64(*number).map_or(Value::Null, Value::Number)
        }
        AttrValue::Bytes(_) => Value::Null,
        AttrValue::Array(values) => Value::Array(values.iter().map(to_json_shallow).collect()),
        AttrValue::Map(entries) => Value::Object(
            entries
                .iter()
                .map(|entry| (entry.key.clone(), to_json_shallow(&entry.value)))
                .collect(),
        ),
    }
}

/// Like [`to_json`], but strings inside structures stay strings (they are content, not JSON).
fn to_json_shallow(value: &AttrValue) -> Value {
    match value {
        AttrValue::String(text) => Value::String(text.clone()),
        other => to_json(other),
    }
}

/// JSON as an attribute value: objects become maps, arrays arrays, numbers ints or doubles.
pub fn from_json(value: &Value) -> AttrValue {
    match value {
        Value::Null => AttrValue::Empty,
        Value::Bool(flag) => AttrValue::Bool(*flag),
        Value::Number(number) => number.as_i64().map_or_else(
            || AttrValue::Double(number.as_f64().unwrap_or(f64::NAN)),
            AttrValue::Int,
        ),
        Value::String(text) => AttrValue::String(text.clone()),
        Value::Array(items) => AttrValue::Array(items.iter().map(from_json).collect()),
        Value::Object(entries) => AttrValue::Map(
            entries
                .iter()
                .map(|(key, value)| KeyValue::new(key.clone(), from_json(value)))
                .collect(),
        ),
    }
}

/// Parses text that is a JSON object, array or string; `None` for anything else.
pub fn parse_json_text(text: &str) -> Option<Value> {
    let trimmed = text.trim_start();
    if !(trimmed.starts_with('{') || trimmed.starts_with('[') || trimmed.starts_with('"')) {
        return None;
    }
    serde_json::from_str(text).ok()
}

/// The first of `keys` present as a non-empty string.
pub fn first_text(attributes: &[KeyValue], keys: &[&str]) -> Option<String> {
    keys.iter().find_map(|key| match find(attributes, key) {
        Some(AttrValue::String(text)) if !text.is_empty() => Some(text.clone()),
        Some(AttrValue::Int(number)) => Some(number.to_string()),
        _ => None,
    })
}

/// The first of `keys` present as a whole number (int, integral double or numeric string).
pub fn first_int(attributes: &[KeyValue], keys: &[&str]) -> Option<i64> {
    keys.iter()
        .find_map(|key| find(attributes, key).and_then(AttrValue::as_i64))
}

/// The first of `keys` present as a number.
pub fn first_float(attributes: &[KeyValue], keys: &[&str]) -> Option<f64> {
    keys.iter()
        .find_map(|key| find(attributes, key).and_then(AttrValue::as_f64))
        .filter(|number| number.is_finite())
}

/// A JSON value as display text: strings as they are, anything else as compact JSON.
pub fn json_as_text(value: &Value) -> Option<String> {
    match value {
        Value::Null => None,
        Value::String(text) => Some(text.clone()),
        other => Some(other.to_string()),
    }
}

/// A JSON number or numeric string as an integer.
pub fn json_int(value: &Value) -> Option<i64> {
    match value {
        Value::Number(number) => number.as_i64().or_else(|| {
            number
                .as_f64()
                .filter(|f| f.fract() == 0.0)
                .map(|f| f as i64)
        }),
        Value::String(text) => text.trim().parse().ok(),
        _ => None,
    }
}

/// A JSON number or numeric string as a float.
pub fn json_float(value: &Value) -> Option<f64> {
    match value {
        Value::Number(number) => number.as_f64(),
        Value::String(text) => text.trim().parse().ok(),
        _ => None,
    }
    .filter(|number: &f64| number.is_finite())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_holding_json_are_parsed_only_at_the_top() {
        let value = AttrValue::String("[{\"role\": \"user\"}]".into());
        assert_eq!(to_json(&value)[0]["role"], "user");
        let plain = AttrValue::String("hello [world]".into());
        assert_eq!(to_json(&plain), Value::String("hello [world]".into()));
        let nested = AttrValue::Array(vec![AttrValue::String("{\"a\":1}".into())]);
        assert_eq!(to_json(&nested)[0], Value::String("{\"a\":1}".into()));
    }
}
