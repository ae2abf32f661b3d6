//! Timestamps: Unix nanoseconds inside, RFC 3339 UTC with nanoseconds outside.

use ::time::OffsetDateTime;
use ::time::format_description::well_known::Rfc3339;
use ::time::macros::format_description;

/// Formats Unix nanoseconds as `2024-05-01T12:00:00.123456789Z`.
pub fn format_rfc3339(unix_nano: u64) -> String {
    let format =
        format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:9]Z");
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(unix_nano))
        .ok()
        .and_then(|time| time.format(&format).ok())
        .unwrap_or_else(|| "1970-01-01T00:00:00.000000000Z".to_owned())
}

/// Parses an RFC 3339 timestamp (any offset) into Unix nanoseconds; times before 1970 clamp to 0.
pub fn parse_rfc3339(text: &str) -> Option<u64> {
    let time = OffsetDateTime::parse(text, &Rfc3339).ok()?;
    u64::try_from(time.unix_timestamp_nanos().max(0)).ok()
}

/// The current time in Unix nanoseconds.
pub fn now_unix_nano() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_nanos() as u64)
}

/// Serde support for Unix nanoseconds shown as RFC 3339 text.
pub mod rfc3339_nanos {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(unix_nano: &u64, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&super::format_rfc3339(*unix_nano))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
        let text = String::deserialize(deserializer)?;
        super::parse_rfc3339(&text)
            .ok_or_else(|| serde::de::Error::custom(format!("invalid timestamp {text:?}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_with_nine_digits_and_parses_back() {
        let text = format_rfc3339(1_700_000_000_000_000_123);
        assert_eq!(text, "2023-11-14T22:13:20.000000123Z");
        assert_eq!(parse_rfc3339(&text), Some(1_700_000_000_000_000_123));
        assert_eq!(
            parse_rfc3339("2023-11-14T23:13:20+01:00"),
            Some(1_700_000_000_000_000_000)
        );
        assert_eq!(parse_rfc3339("yesterday"), None);
    }
}
