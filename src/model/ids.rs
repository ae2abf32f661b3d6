//! Trace and span ids: fixed-size byte arrays, parsed once at the boundary and shown as lowercase hex.

use std::fmt;

use serde::{Serialize, Serializer};

/// Why a byte string or hex string is not a valid id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    /// The binary form has the wrong length.
    #[error("must be {expected} bytes, got {actual}")]
    WrongLength {
        /// The id's length in bytes.
        expected: usize,
        /// The length given, in bytes.
        actual: usize,
    },
    /// Every byte is zero, which OTLP reserves for "no id".
    #[error("must not be all zeroes")]
    AllZero,
    /// The text is not hex, or not of the id's length.
    #[error("is not a hex string of {expected} characters")]
    NotHex {
        /// The id's length in hex characters: twice its bytes.
        expected: usize,
    },
}

macro_rules! define_id {
    ($(#[$doc:meta])* $name:ident, $len:expr) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(
            /// The id's bytes, in the order OTLP sends them.
            pub [u8; $len],
        );

        impl $name {
            /// Length of the id in bytes.
            pub const LEN: usize = $len;

            /// Takes the id from its binary form; an all-zero id is invalid in OTLP.
            pub fn from_bytes(bytes: &[u8]) -> Result<Self, IdError> {
                let array: [u8; $len] = bytes.try_into().map_err(|_| IdError::WrongLength {
                    expected: $len,
                    actual: bytes.len(),
                })?;
                if array.iter().all(|byte| *byte == 0) {
                    return Err(IdError::AllZero);
                }
                Ok(Self(array))
            }

            /// Parses the lowercase or uppercase hex form used by OTLP/JSON and the query API.
            pub fn parse_hex(text: &str) -> Result<Self, IdError> {
                let mut array = [0u8; $len];
                hex::decode_to_slice(text, &mut array)
                    .map_err(|_| IdError::NotHex { expected: $len * 2 })?;
                Self::from_bytes(&array)
            }

            pub fn as_bytes(&self) -> &[u8] {
                &self.0
            }

            pub fn to_hex(&self) -> String {
                hex::encode(self.0)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                formatter.write_str(&self.to_hex())
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(formatter, "{}({})", stringify!($name), self.to_hex())
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(&self.to_hex())
            }
        }
    };
}

define_id!(
    /// A W3C trace id: 16 bytes, never all zero.
    TraceId,
    16
);
define_id!(
    /// A span id: 8 bytes, never all zero.
    SpanId,
    8
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip_is_lowercase() {
        let id = TraceId::parse_hex("5B8EFFF798038103D269B633813FC60C").unwrap();
        assert_eq!(id.to_hex(), "5b8efff798038103d269b633813fc60c");
        assert_eq!(TraceId::parse_hex(&id.to_hex()).unwrap(), id);
    }

    #[test]
    fn rejects_wrong_length_zero_and_garbage() {
        assert_eq!(
            SpanId::from_bytes(&[1, 2, 3]),
            Err(IdError::WrongLength {
                expected: 8,
                actual: 3
            })
        );
        assert_eq!(SpanId::from_bytes(&[0; 8]), Err(IdError::AllZero));
        assert_eq!(
            SpanId::parse_hex("zz00000000000000"),
            Err(IdError::NotHex { expected: 16 })
        );
    }
}
