//! Typed attribute values, as OTLP defines them, with two JSON forms:
//!
//! - the *plain* form the query API shows (`"x"`, `3`, `1.5`, `true`, arrays, objects), and
//! - the *stored* form, which is lossless: plain JSON for strings, booleans, integers, finite
//!   doubles and arrays; a one-key object for everything plain JSON would blur
//!   (`{"kvlist": {..}}`, `{"bytes": "base64"}`, `{"double": "NaN"}`). An empty value is `null`.
//!
//! Integers and doubles stay apart in both forms because a double is always written with a
//! fraction or an exponent (`1.0`) and an integer never is.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::de::{self, MapAccess, SeqAccess, Visitor};
use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// One attribute value, with its OTLP type.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum AttrValue {
    /// An `AnyValue` with no value set.
    #[default]
    Empty,
    /// Text.
    String(String),
    /// A boolean.
    Bool(bool),
    /// A signed 64-bit integer, never shown with a fraction.
    Int(i64),
    /// A 64-bit float, NaN and the infinities included.
    Double(f64),
    /// Raw bytes; base64 text in both JSON forms.
    Bytes(Vec<u8>),
    /// A list of values, each with its own type.
    Array(Vec<AttrValue>),
    /// A nested key-value list (OTLP `kvlist`), in the order sent.
    Map(Vec<KeyValue>),
}

/// One key and its value; OTLP keeps them as an ordered list.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct KeyValue {
    /// The attribute's name, such as `gen_ai.request.model`.
    pub key: String,
    /// Its value, with its OTLP type.
    pub value: AttrValue,
}

impl KeyValue {
    pub fn new(key: impl Into<String>, value: AttrValue) -> Self {
        Self {
            key: key.into(),
            value,
        }
    }
}

impl AttrValue {
    /// The value as text when it is a string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            AttrValue::String(text) => Some(text),
            _ => None,
        }
    }

    /// The value as an integer, accepting integers, integral doubles and numeric strings.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            AttrValue::Int(number) => Some(*number),
            AttrValue::Double(number) if number.fract() == 0.0 && number.is_finite() => {
                Some(*number as i64)
            }
            AttrValue::String(text) => text.trim().parse().ok(),
            _ => None,
        }
    }

    /// The value as a float, accepting integers, doubles and numeric strings.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            AttrValue::Int(number) => Some(*number as f64),
            AttrValue::Double(number) => Some(*number),
            AttrValue::String(text) => text.trim().parse().ok(),
            _ => None,
        }
    }

    /// A rough count of the bytes this value holds, used for memory accounting.
    pub fn approximate_size(&self) -> usize {
        match self {
            AttrValue::String(text) => text.len(),
            AttrValue::Bytes(bytes) => bytes.len(),
            AttrValue::Array(values) => values.iter().map(AttrValue::approximate_size).sum(),
            AttrValue::Map(entries) => entries
                .iter()
                .map(|entry| entry.key.len() + entry.value.approximate_size())
                .sum(),
            _ => 8,
        }
    }
}

/// Finds the first value of `key` in an attribute list.
pub fn find<'a>(attributes: &'a [KeyValue], key: &str) -> Option<&'a AttrValue> {
    attributes
        .iter()
        .find(|entry| entry.key == key)
        .map(|entry| &entry.value)
}

/// Finds the first string value of `key` in an attribute list.
pub fn find_str<'a>(attributes: &'a [KeyValue], key: &str) -> Option<&'a str> {
    find(attributes, key).and_then(AttrValue::as_str)
}

// ---------------------------------------------------------------------------------------------
// Plain form (query API).

/// Serializes a value in the plain form of the query API.
pub struct Plain<'a, T: ?Sized>(pub &'a T);

impl Serialize for Plain<'_, AttrValue> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            AttrValue::Empty => serializer.serialize_none(),
            AttrValue::String(text) => serializer.serialize_str(text),
            AttrValue::Bool(flag) => serializer.serialize_bool(*flag),
            AttrValue::Int(number) => serializer.serialize_i64(*number),
            AttrValue::Double(number) if number.is_finite() => serializer.serialize_f64(*number),
            AttrValue::Double(number) => serializer.serialize_str(&non_finite_name(*number)),
            AttrValue::Bytes(bytes) => serializer.serialize_str(&BASE64.encode(bytes)),
            AttrValue::Array(values) => {
                let mut seq = serializer.serialize_seq(Some(values.len()))?;
                for value in values {
                    seq.serialize_element(&Plain(value))?;
                }
                seq.end()
            }
            AttrValue::Map(entries) => Plain(entries.as_slice()).serialize(serializer),
        }
    }
}

impl Serialize for Plain<'_, [KeyValue]> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for entry in self.0 {
            map.serialize_entry(&entry.key, &Plain(&entry.value))?;
        }
        map.end()
    }
}

impl Serialize for Plain<'_, Vec<KeyValue>> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        Plain(self.0.as_slice()).serialize(serializer)
    }
}

fn non_finite_name(number: f64) -> String {
    if number.is_nan() {
        "NaN".to_owned()
    } else if number > 0.0 {
        "Infinity".to_owned()
    } else {
        "-Infinity".to_owned()
    }
}

// ---------------------------------------------------------------------------------------------
// Stored form (lossless).

/// Serializes and deserializes a value in the lossless stored form.
pub struct Stored<T>(pub T);

/// Encodes an attribute list in the stored form.
pub fn to_stored_json(attributes: &[KeyValue]) -> String {
    serde_json::to_string(&Stored(attributes)).unwrap_or_else(|_| "{}".to_owned())
}

/// Decodes an attribute list from the stored form.
pub fn from_stored_json(text: &str) -> Result<Vec<KeyValue>, serde_json::Error> {
    serde_json::from_str::<Stored<Vec<KeyValue>>>(text).map(|stored| stored.0)
}

impl Serialize for Stored<&AttrValue> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            AttrValue::Empty => serializer.serialize_none(),
            AttrValue::String(text) => serializer.serialize_str(text),
            AttrValue::Bool(flag) => serializer.serialize_bool(*flag),
            AttrValue::Int(number) => serializer.serialize_i64(*number),
            AttrValue::Double(number) if number.is_finite() => serializer.serialize_f64(*number),
            AttrValue::Double(number) => tagged(serializer, "double", &non_finite_name(*number)),
            AttrValue::Bytes(bytes) => tagged(serializer, "bytes", &BASE64.encode(bytes)),
            AttrValue::Array(values) => {
                let mut seq = serializer.serialize_seq(Some(values.len()))?;
                for value in values {
                    seq.serialize_element(&Stored(value))?;
                }
                seq.end()
            }
            AttrValue::Map(entries) => tagged(serializer, "kvlist", &Stored(entries.as_slice())),
        }
    }
}

impl Serialize for Stored<&[KeyValue]> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for entry in self.0 {
            map.serialize_entry(&entry.key, &Stored(&entry.value))?;
        }
        map.end()
    }
}

fn tagged<S: Serializer, V: Serialize + ?Sized>(
    serializer: S,
    tag: &str,
    value: &V,
) -> Result<S::Ok, S::Error> {
    let mut map = serializer.serialize_map(Some(1))?;
    map.serialize_entry(tag, value)?;
    map.end()
}

impl<'de> Deserialize<'de> for Stored<Vec<KeyValue>> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(KeyValuesVisitor).map(Stored)
    }
}

impl<'de> Deserialize<'de> for Stored<AttrValue> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(StoredValueVisitor).map(Stored)
    }
}

/// Room for the entries a decoder says follow, within reason: a binary format (MessagePack)
/// reads the count from the data, and a damaged count must not reserve gigabytes — the vector
/// grows as entries actually arrive.
fn cautious_capacity<T>(size_hint: Option<usize>) -> usize {
    const MOST_RESERVED_BYTES: usize = 64 * 1024;
    size_hint
        .unwrap_or(0)
        .min(MOST_RESERVED_BYTES / std::mem::size_of::<T>())
}

struct KeyValuesVisitor;

impl<'de> Visitor<'de> for KeyValuesVisitor {
    type Value = Vec<KeyValue>;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("an object of stored attributes")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Self::Value, A::Error> {
        let mut entries = Vec::with_capacity(cautious_capacity::<KeyValue>(access.size_hint()));
        while let Some((key, value)) = access.next_entry::<String, Stored<AttrValue>>()? {
            entries.push(KeyValue::new(key, value.0));
        }
        Ok(entries)
    }
}

struct StoredValueVisitor;

impl<'de> Visitor<'de> for StoredValueVisitor {
    type Value = AttrValue;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("a stored attribute value")
    }

    fn visit_unit<E: de::Error>(self) -> Result<AttrValue, E> {
        Ok(AttrValue::Empty)
    }

    fn visit_none<E: de::Error>(self) -> Result<AttrValue, E> {
        Ok(AttrValue::Empty)
    }

    fn visit_bool<E: de::Error>(self, value: bool) -> Result<AttrValue, E> {
        Ok(AttrValue::Bool(value))
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<AttrValue, E> {
        Ok(AttrValue::Int(value))
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<AttrValue, E> {
        i64::try_from(value)
            .map(AttrValue::Int)
            .map_err(|_| E::custom("integer attribute out of range"))
    }

    fn visit_f64<E: de::Error>(self, value: f64) -> Result<AttrValue, E> {
        Ok(AttrValue::Double(value))
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<AttrValue, E> {
        Ok(AttrValue::String(value.to_owned()))
    }

    fn visit_string<E: de::Error>(self, value: String) -> Result<AttrValue, E> {
        Ok(AttrValue::String(value))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut access: A) -> Result<AttrValue, A::Error> {
        let mut values = Vec::with_capacity(cautious_capacity::<AttrValue>(access.size_hint()));
        while let Some(value) = access.next_element::<Stored<AttrValue>>()? {
            values.push(value.0);
        }
        Ok(AttrValue::Array(values))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<AttrValue, A::Error> {
        let Some(tag) = access.next_key::<String>()? else {
            return Err(de::Error::custom("empty tagged attribute value"));
        };
        let value = match tag.as_str() {
            "kvlist" => AttrValue::Map(access.next_value::<Stored<Vec<KeyValue>>>()?.0),
            "bytes" => {
                let text = access.next_value::<String>()?;
                AttrValue::Bytes(BASE64.decode(text).map_err(de::Error::custom)?)
            }
            "double" => match access.next_value::<String>()?.as_str() {
                "NaN" => AttrValue::Double(f64::NAN),
                "Infinity" => AttrValue::Double(f64::INFINITY),
                "-Infinity" => AttrValue::Double(f64::NEG_INFINITY),
                other => return Err(de::Error::custom(format!("unknown double {other:?}"))),
            },
            other => {
                return Err(de::Error::custom(format!(
                    "unknown attribute tag {other:?}"
                )));
            }
        };
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn every_kind() -> Vec<KeyValue> {
        vec![
            KeyValue::new("s", AttrValue::String("text".into())),
            KeyValue::new("b", AttrValue::Bool(true)),
            KeyValue::new("i", AttrValue::Int(-7)),
            KeyValue::new("whole_double", AttrValue::Double(2.0)),
            KeyValue::new("nan", AttrValue::Double(f64::INFINITY)),
            KeyValue::new("bytes", AttrValue::Bytes(vec![0, 159, 255])),
            KeyValue::new("empty", AttrValue::Empty),
            KeyValue::new(
                "array",
                AttrValue::Array(vec![AttrValue::Int(1), AttrValue::String("x".into())]),
            ),
            KeyValue::new(
                "map",
                AttrValue::Map(vec![KeyValue::new("bytes", AttrValue::Int(3))]),
            ),
        ]
    }

    #[test]
    fn stored_form_round_trips_every_type() {
        let attributes = every_kind();
        let stored = to_stored_json(&attributes);
        assert_eq!(from_stored_json(&stored).unwrap(), attributes);
    }

    #[test]
    fn plain_form_keeps_json_types() {
        let plain = serde_json::to_value(Plain(every_kind().as_slice())).unwrap();
        assert_eq!(plain["s"], "text");
        assert_eq!(plain["i"], -7);
        assert!(plain["whole_double"].is_f64());
        assert_eq!(plain["nan"], "Infinity");
        assert_eq!(plain["bytes"], "AJ//");
        assert_eq!(plain["map"]["bytes"], 3);
        assert!(plain["empty"].is_null());
    }
}
