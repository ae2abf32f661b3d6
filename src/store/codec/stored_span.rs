//! A span as the embedded store keeps it in its `body` column: everything that has no column of
//! its own, with the span's semantics, in one compressed block behind a format byte.
//!
//! - 5: a part of a block: the span's format 4 or 3 contents compressed together with other
//!   spans of its request (see [`super::blocks`]); the body holds only the block's id (8 bytes)
//!   and where the span's two values lie in the decompressed block (start and length, 4 bytes
//!   each; all little-endian);
//! - 4: the body, then the semantics, as two MessagePack values back to back, compressed by
//!   zstd (one frame) behind their size (4 bytes, little-endian);
//! - 3: the same two values in one LZ4 block (its size prepended);
//! - 2: such a block holding the body's JSON, a newline, and the semantics' JSON;
//! - 1: such a block holding the body's JSON alone; the semantics are in the row's columns;
//! - no format byte: the body's JSON text, uncompressed, as format 1.
//!
//! [`encode_stored_span`] writes format 4 or 3, as the store's [`Compression`] says, and a
//! block is kept the same way ([`compress_packed`]); formats 1 and 2 are still read. The semantics repeat the span's texts (input, output, messages) that
//! the body's attributes already hold; compressed in one block, the repeat costs next to
//! nothing (docs/benchmarks-log.md measured it), where the plain columns it replaced doubled
//! what the store writes per span. MessagePack rather than JSON because the texts (LLM prompts and
//! completions, a KiB or more each, several times per span) are copied as they are instead of
//! escaped: JSON's string escaping was a tenth of the server's CPU at full ingest load. Of the
//! benchmark spans' MessagePack, zstd keeps ~23 % and LZ4 ~32 %, for 42 % of zstd's
//! instructions (see [`Compression`]).

use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize};

use super::compressed::{Compression, lz4_behind, unlz4, unzstd, zstd_behind};
use super::{BodyIn, SpanColumns, body_out};
use crate::model::{Span, SpanSemantics};
use crate::store::StoreError;

/// Format 5: see [`super::blocks`].
pub(super) const BLOCK_PART_FORMAT: u8 = 5;
const ZSTD_MESSAGE_PACK_FORMAT: u8 = 4;
const MESSAGE_PACK_FORMAT: u8 = 3;
const JSON_WITH_SEMANTICS_FORMAT: u8 = 2;
const JSON_LZ4_FORMAT: u8 = 1;

/// An empty MessagePack map: what [`write_message_pack`] falls back to.
const EMPTY_MAP: u8 = 0x80;

/// Encodes a span and its semantics: format 3 with LZ4, format 4 with zstd.
pub fn encode_stored_span(
    span: &Span,
    semantics: &SpanSemantics,
    compression: Compression,
) -> Vec<u8> {
    compress_packed(&pack_stored_span(span, semantics), compression)
}

/// The body, then the semantics, as MessagePack: what formats 4 and 3 compress, and what a
/// block holds for each of its spans.
fn pack_stored_span(span: &Span, semantics: &SpanSemantics) -> Vec<u8> {
    let mut packed = Vec::with_capacity(4096);
    pack_stored_span_into(&mut packed, span, semantics);
    packed
}

/// [`pack_stored_span`], appended to `packed` (a block's buffer: no copy of its own).
pub(crate) fn pack_stored_span_into(packed: &mut Vec<u8>, span: &Span, semantics: &SpanSemantics) {
    write_message_pack(packed, &body_out(span));
    write_message_pack(packed, semantics);
}

/// `packed` behind format byte 4 (zstd) or 3 (LZ4), as `compression` says.
pub(crate) fn compress_packed(packed: &[u8], compression: Compression) -> Vec<u8> {
    let encoded = match compression {
        Compression::Zstd => zstd_behind(ZSTD_MESSAGE_PACK_FORMAT, packed),
        Compression::Lz4 => None,
    };
    // LZ4 also when zstd failed to allocate its context.
    encoded
        .or_else(|| lz4_behind(MESSAGE_PACK_FORMAT, packed))
        // Past 4 GiB, which no request can carry (128 MiB at most, decompressed): the span's
        // columns alone, as when its MessagePack cannot be written.
        .or_else(|| lz4_behind(MESSAGE_PACK_FORMAT, &[EMPTY_MAP, EMPTY_MAP]))
        .unwrap_or_default()
}

/// What [`compress_packed`] compressed: a format 4 or 3 body's, or a block's, MessagePack.
pub(crate) fn decompress_packed(bytes: &[u8]) -> Result<Vec<u8>, StoreError> {
    match bytes.first() {
        Some(&ZSTD_MESSAGE_PACK_FORMAT) => unzstd(&bytes[1..]).map_err(body_error),
        Some(&MESSAGE_PACK_FORMAT) => unlz4(&bytes[1..]).map_err(body_error),
        other => Err(body_error(format!("a block of unknown format {other:?}"))),
    }
}

/// Appends one value as MessagePack with structs as maps of field names: the body's and the
/// semantics' types leave out empty fields when writing and default them when reading, which a
/// positional encoding (structs as arrays) would misread.
///
/// rmp-serde fails on I/O errors, which a `Vec` does not raise, and on errors a `Serialize`
/// implementation raises, which these do not; should that change, an empty map is still a
/// value the reader accepts: a body of the columns alone, or semantics of nothing.
fn write_message_pack(packed: &mut Vec<u8>, value: &impl Serialize) {
    let start = packed.len();
    let mut serializer = rmp_serde::Serializer::new(&mut *packed).with_struct_map();
    if value.serialize(&mut serializer).is_err() {
        packed.truncate(start);
        packed.push(EMPTY_MAP);
    }
}

/// A stored body, decompressed: read with [`StoredBody::decode`], or [`StoredBody::texts`] when
/// only the texts are wanted.
pub struct StoredBody(Contents);

enum Contents {
    /// Formats 5, 4 and 3: the body, then the semantics, as MessagePack.
    MessagePack(Vec<u8>),
    /// Format 2: the body's JSON, then the semantics' JSON from `semantics_at` (after the
    /// newline; JSON text never holds a raw newline, so the first one separates the two).
    JsonWithSemantics { text: String, semantics_at: usize },
    /// Format 1 and plain JSON text: the body alone.
    Json(String),
}

/// Input and output of the semantics, the rest of them skipped.
#[derive(Deserialize)]
struct Texts {
    #[serde(default)]
    input: Option<String>,
    #[serde(default)]
    output: Option<String>,
}

impl StoredBody {
    /// A body of formats 5, 4 or 3 from its MessagePack.
    pub(super) fn from_message_pack(packed: Vec<u8>) -> Self {
        Self(Contents::MessagePack(packed))
    }

    /// The span of `columns` and this body, and the semantics kept with it (the LLM call's
    /// texts put back, see [`SpanSemantics::with_llm_texts`]); `None` for bodies of formats
    /// before 2, whose semantics are in the row's columns.
    pub fn decode(
        &self,
        columns: SpanColumns,
    ) -> Result<(Span, Option<SpanSemantics>), StoreError> {
        match &self.0 {
            Contents::MessagePack(packed) => {
                let mut deserializer = message_pack_reader(packed);
                let body = BodyIn::deserialize(&mut deserializer).map_err(body_error)?;
                let semantics =
                    SpanSemantics::deserialize(&mut deserializer).map_err(semantics_error)?;
                Ok((body.into_span(columns)?, Some(semantics.with_llm_texts())))
            }
            Contents::JsonWithSemantics { text, semantics_at } => {
                let body: BodyIn =
                    serde_json::from_str(&text[..semantics_at - 1]).map_err(body_error)?;
                let semantics: SpanSemantics =
                    serde_json::from_str(&text[*semantics_at..]).map_err(semantics_error)?;
                Ok((body.into_span(columns)?, Some(semantics.with_llm_texts())))
            }
            Contents::Json(text) => {
                let body: BodyIn = serde_json::from_str(text).map_err(body_error)?;
                Ok((body.into_span(columns)?, None))
            }
        }
    }

    /// Only the input and output of the semantics, without building the span or the rest of
    /// the semantics; both `None` for bodies of formats before 2.
    pub fn texts(&self) -> Result<(Option<String>, Option<String>), StoreError> {
        let texts = match &self.0 {
            Contents::MessagePack(packed) => {
                let mut deserializer = message_pack_reader(packed);
                IgnoredAny::deserialize(&mut deserializer).map_err(body_error)?;
                Texts::deserialize(&mut deserializer).map_err(semantics_error)?
            }
            Contents::JsonWithSemantics { text, semantics_at } => {
                serde_json::from_str(&text[*semantics_at..]).map_err(semantics_error)?
            }
            Contents::Json(_) => return Ok((None, None)),
        };
        Ok((texts.input, texts.output))
    }
}

/// A MessagePack reader that stops at the nesting depth serde_json stops at (128; formats 1 and
/// 2 were read with it). Reading recurses once per level, and rmp-serde's own limit (1024) let
/// a damaged body run a test thread out of stack first. The writer has no limit, but what the
/// OTLP decoders let through nests about half as deep (their own limits: prost's 100 messages,
/// serde_json's 128, and each level of an attribute value takes two or more of theirs).
fn message_pack_reader(
    packed: &[u8],
) -> rmp_serde::Deserializer<rmp_serde::decode::ReadRefReader<'_, [u8]>> {
    let mut deserializer = rmp_serde::Deserializer::from_read_ref(packed);
    deserializer.set_max_depth(MOST_NESTED_LEVELS);
    deserializer
}

const MOST_NESTED_LEVELS: usize = 128;

pub(super) fn body_error(error: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("span body: {error}"))
}

fn semantics_error(error: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("span semantics: {error}"))
}

/// Reads a body written by [`encode_stored_span`] or by an earlier format.
pub fn decode_stored_body(bytes: &[u8]) -> Result<StoredBody, StoreError> {
    let decompressed = || unlz4(&bytes[1..]).map_err(body_error);
    let into_text = |bytes: Vec<u8>| String::from_utf8(bytes).map_err(body_error);
    let contents = match bytes.first() {
        Some(&BLOCK_PART_FORMAT) => {
            return Err(body_error(
                "the body is part of a block; the store reads it with its block",
            ));
        }
        Some(&ZSTD_MESSAGE_PACK_FORMAT | &MESSAGE_PACK_FORMAT) => {
            Contents::MessagePack(decompress_packed(bytes)?)
        }
        Some(&JSON_WITH_SEMANTICS_FORMAT) => {
            let text = into_text(decompressed()?)?;
            let newline = text
                .find('\n')
                .ok_or_else(|| StoreError::Corrupt("span body: semantics are missing".into()))?;
            Contents::JsonWithSemantics {
                text,
                semantics_at: newline + 1,
            }
        }
        Some(&JSON_LZ4_FORMAT) => Contents::Json(into_text(decompressed()?)?),
        _ => Contents::Json(into_text(bytes.to_vec())?),
    };
    Ok(StoredBody(contents))
}

/// Format 2 as the versions that wrote it did, for tests of what they left on disk.
#[cfg(test)]
pub(crate) fn encode_format_2(span: &Span, semantics: &SpanSemantics) -> Vec<u8> {
    let mut json = serde_json::to_vec(&body_out(span)).unwrap();
    json.push(b'\n');
    serde_json::to_writer(&mut json, semantics).unwrap();
    let mut out = vec![JSON_WITH_SEMANTICS_FORMAT];
    out.extend(lz4_flex::block::compress_prepend_size(&json));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::AttrValue;
    use crate::model::attributes::KeyValue;
    use crate::model::llm::{Cost, LlmCall, Message, TokenUsage, ToolCallRequest, ToolExecution};
    use crate::model::span::test_support::make_span;
    use crate::store::codec::columns_of;
    use crate::store::codec::tests::span_with_every_part;

    fn llm_semantics() -> SpanSemantics {
        SpanSemantics {
            input: Some("line one\nline two {\"json\": true}".into()),
            output: Some("answer".into()),
            session_id: Some("session".into()),
            user_id: Some("user".into()),
            pipeline_id: None,
            llm: Some(LlmCall {
                operation: Some("chat".into()),
                provider: Some("openai".into()),
                request_model: Some("gpt-4o".into()),
                response_model: Some("gpt-4o-2024-08-06".into()),
                input: None,
                output: None,
                input_messages: vec![
                    Message {
                        role: "system".into(),
                        content: Some("Be brief.".into()),
                        ..Default::default()
                    },
                    Message {
                        role: "tool".into(),
                        content: Some("{\"sum\": 4}".into()),
                        tool_call_id: Some("call_1".into()),
                        ..Default::default()
                    },
                ],
                output_messages: vec![Message {
                    role: "assistant".into(),
                    content: None,
                    tool_calls: vec![ToolCallRequest {
                        id: Some("call_2".into()),
                        name: "add".into(),
                        arguments: Some("{\"a\": 2, \"b\": 2}".into()),
                    }],
                    tool_call_id: None,
                    finish_reason: Some("tool_calls".into()),
                }],
                usage: TokenUsage {
                    prompt: Some(10),
                    completion: Some(5),
                    total: None,
                },
                cost: Cost {
                    prompt: Some(0.001),
                    completion: None,
                    total: Some(0.25),
                },
                finish_reasons: vec!["tool_calls".into()],
            }),
            tool: Some(ToolExecution {
                name: "add".into(),
                failed: true,
            }),
        }
    }

    fn decode(
        bytes: &[u8],
        columns: SpanColumns,
    ) -> Result<(Span, Option<SpanSemantics>), StoreError> {
        decode_stored_body(bytes)?.decode(columns)
    }

    const BOTH: [(Compression, u8); 2] = [
        (Compression::Lz4, MESSAGE_PACK_FORMAT),
        (Compression::Zstd, ZSTD_MESSAGE_PACK_FORMAT),
    ];

    #[test]
    fn formats_3_and_4_round_trip_the_span_and_its_semantics() {
        for (compression, format) in BOTH {
            let span = span_with_every_part();
            let semantics = llm_semantics();
            let bytes = encode_stored_span(&span, &semantics, compression);
            assert_eq!(bytes[0], format);
            let stored = decode_stored_body(&bytes).unwrap();
            let (decoded, decoded_semantics) = stored.decode(columns_of(&span)).unwrap();
            assert_eq!(decoded, span);
            assert_eq!(decoded_semantics, Some(semantics.clone().with_llm_texts()));
            assert_eq!(stored.texts().unwrap(), (semantics.input, semantics.output));

            // Empty semantics, a span with nothing in its body.
            let span = make_span(1, 2);
            let bytes = encode_stored_span(&span, &SpanSemantics::default(), compression);
            assert_eq!(bytes[0], format);
            let stored = decode_stored_body(&bytes).unwrap();
            let decoded = stored.decode(columns_of(&span)).unwrap();
            assert_eq!(decoded, (span, Some(SpanSemantics::default())));
            assert_eq!(stored.texts().unwrap(), (None, None));
        }
    }

    #[test]
    fn zstd_keeps_llm_text_smaller_than_lz4() {
        let text = crate::synthetic::filler(1024, 1);
        let span = Span {
            attributes: vec![KeyValue::new(
                "input.value",
                AttrValue::String(text.clone()),
            )],
            ..make_span(1, 2)
        };
        let semantics = SpanSemantics {
            input: Some(text),
            ..Default::default()
        };
        let [lz4, zstd] =
            BOTH.map(|(compression, _)| encode_stored_span(&span, &semantics, compression).len());
        assert!(zstd < lz4, "zstd {zstd} bytes, LZ4 {lz4}");
        assert!(lz4 < 1024, "LZ4 kept {lz4} bytes of two copies of 1 KiB");
    }

    #[test]
    fn formats_3_and_4_keep_a_nan_double() {
        let span = Span {
            attributes: vec![KeyValue::new("nan", AttrValue::Double(f64::NAN))],
            ..make_span(1, 2)
        };
        for (compression, _) in BOTH {
            let bytes = encode_stored_span(&span, &SpanSemantics::default(), compression);
            let (decoded, _) = decode(&bytes, columns_of(&span)).unwrap();
            assert!(
                matches!(decoded.attributes[0].value, AttrValue::Double(number) if number.is_nan())
            );
        }
    }

    #[test]
    fn message_pack_reads_values_nested_as_deep_as_the_otlp_decoders_allow() {
        let mut value = AttrValue::Int(1);
        for _ in 0..100 {
            value = AttrValue::Array(vec![value]);
        }
        let span = Span {
            attributes: vec![KeyValue::new("deep", value)],
            ..make_span(1, 2)
        };
        for (compression, _) in BOTH {
            let bytes = encode_stored_span(&span, &SpanSemantics::default(), compression);
            assert_eq!(decode(&bytes, columns_of(&span)).unwrap().0, span);
        }
    }

    #[test]
    fn earlier_formats_are_still_read() {
        let span = span_with_every_part();
        let semantics = llm_semantics();
        let format_2 = encode_format_2(&span, &semantics);
        let stored = decode_stored_body(&format_2).unwrap();
        let decoded = stored.decode(columns_of(&span)).unwrap();
        assert_eq!(
            decoded,
            (span.clone(), Some(semantics.clone().with_llm_texts()))
        );
        assert_eq!(
            stored.texts().unwrap(),
            (semantics.input.clone(), semantics.output.clone())
        );

        // Format 1 (the body alone, LZ4) and plain JSON: no semantics in the body.
        let plain = crate::store::codec::encode_body(&span);
        let mut format_1 = vec![JSON_LZ4_FORMAT];
        format_1.extend(lz4_flex::block::compress_prepend_size(plain.as_bytes()));
        for bytes in [format_1, plain.into_bytes()] {
            let stored = decode_stored_body(&bytes).unwrap();
            assert_eq!(
                stored.decode(columns_of(&span)).unwrap(),
                (span.clone(), None)
            );
            assert_eq!(stored.texts().unwrap(), (None, None));
        }
    }

    /// A span with its semantics as the versions that wrote format 2 stored them (captured from
    /// them, not from [`encode_format_2`]).
    const WRITTEN_IN_FORMAT_2: &[u8] = &[
        2, 22, 2, 0, 0, 240, 50, 123, 34, 97, 116, 116, 114, 105, 98, 117, 116, 101, 115, 34, 58,
        123, 34, 105, 110, 112, 117, 116, 46, 118, 97, 108, 117, 101, 34, 58, 34, 50, 32, 43, 32,
        50, 63, 92, 110, 92, 34, 115, 117, 109, 92, 34, 34, 44, 34, 110, 34, 58, 45, 51, 44, 34,
        100, 34, 58, 123, 34, 100, 111, 117, 98, 108, 39, 0, 240, 7, 45, 73, 110, 102, 105, 110,
        105, 116, 121, 34, 125, 125, 44, 34, 114, 101, 115, 111, 117, 114, 99, 101, 79, 0, 9, 93,
        0, 0, 29, 0, 79, 115, 99, 111, 112, 26, 0, 1, 35, 125, 10, 124, 0, 15, 118, 0, 2, 50, 111,
        117, 116, 27, 0, 247, 11, 52, 34, 44, 34, 115, 101, 115, 115, 105, 111, 110, 95, 105, 100,
        34, 58, 110, 117, 108, 108, 44, 34, 117, 115, 101, 114, 15, 0, 135, 112, 105, 112, 101,
        108, 105, 110, 101, 19, 0, 48, 108, 108, 109, 143, 0, 148, 111, 112, 101, 114, 97, 116,
        105, 111, 110, 58, 0, 240, 3, 112, 114, 111, 118, 105, 100, 101, 114, 34, 58, 34, 111, 112,
        101, 110, 97, 105, 34, 192, 0, 180, 113, 117, 101, 115, 116, 95, 109, 111, 100, 101, 108,
        41, 0, 138, 114, 101, 115, 112, 111, 110, 115, 101, 22, 0, 1, 46, 1, 112, 95, 109, 101,
        115, 115, 97, 103, 64, 1, 36, 91, 93, 172, 0, 8, 21, 0, 65, 123, 34, 114, 111, 40, 1, 242,
        3, 97, 115, 115, 105, 115, 116, 97, 110, 116, 34, 44, 34, 99, 111, 110, 116, 101, 110, 212,
        0, 32, 125, 93, 196, 0, 33, 97, 103, 25, 1, 100, 112, 114, 111, 109, 112, 116, 120, 0, 104,
        99, 111, 109, 112, 108, 101, 179, 0, 67, 116, 111, 116, 97, 151, 0, 16, 125, 32, 0, 32,
        115, 116, 218, 0, 15, 54, 0, 27, 0, 174, 1, 145, 115, 104, 95, 114, 101, 97, 115, 111, 110,
        184, 0, 16, 125, 89, 0, 144, 111, 108, 34, 58, 110, 117, 108, 108, 125,
    ];

    #[test]
    fn a_body_written_by_format_2_versions_still_reads() {
        let span = Span {
            attributes: vec![
                KeyValue::new("input.value", AttrValue::String("2 + 2?\n\"sum\"".into())),
                KeyValue::new("n", AttrValue::Int(-3)),
                KeyValue::new("d", AttrValue::Double(f64::NEG_INFINITY)),
            ],
            ..make_span(1, 2)
        };
        let semantics = SpanSemantics {
            input: Some("2 + 2?\n\"sum\"".into()),
            output: Some("4".into()),
            llm: Some(LlmCall {
                provider: Some("openai".into()),
                output_messages: vec![Message {
                    role: "assistant".into(),
                    content: Some("4".into()),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            ..Default::default()
        };
        let stored = decode_stored_body(WRITTEN_IN_FORMAT_2).unwrap();
        let decoded = stored.decode(columns_of(&span)).unwrap();
        assert_eq!(decoded, (span, Some(semantics.clone().with_llm_texts())));
        assert_eq!(stored.texts().unwrap(), (semantics.input, semantics.output));
    }

    /// Format 4 bytes around a MessagePack payload, claiming `size` bytes.
    fn format_4_claiming(packed: &[u8], size: u32) -> Vec<u8> {
        let mut out = vec![ZSTD_MESSAGE_PACK_FORMAT];
        out.extend_from_slice(&size.to_le_bytes());
        out.extend(zstd::bulk::compress(packed, 1).unwrap());
        out
    }

    /// `packed` as format 3, as [`encode_stored_span`] writes it with LZ4.
    fn encode_format_3(packed: &[u8]) -> Vec<u8> {
        lz4_behind(MESSAGE_PACK_FORMAT, packed).unwrap()
    }

    #[test]
    fn format_3_is_what_lz4_flex_prepends_its_size_to() {
        // The layout the versions before the setting wrote, with `compress_prepend_size`.
        let packed = b"the same words, the same words, the same words";
        let written = [
            &[MESSAGE_PACK_FORMAT][..],
            &lz4_flex::block::compress_prepend_size(packed),
        ]
        .concat();
        assert_eq!(encode_format_3(packed), written);
        assert_eq!(unlz4(&written[1..]).unwrap(), packed);
    }

    /// A MessagePack map of one entry with a short key; `value` is written as it is.
    fn one_entry_map(key: &str, value: &[u8]) -> Vec<u8> {
        let mut packed = vec![0x81, 0xa0 | key.len() as u8];
        packed.extend_from_slice(key.as_bytes());
        packed.extend_from_slice(value);
        packed
    }

    #[test]
    fn damaged_bodies_are_errors() {
        let span = make_span(1, 2);
        let good = encode_stored_span(&span, &llm_semantics(), Compression::Zstd);
        let good_packed = decompress_packed(&good).unwrap();
        let good_size = good_packed.len() as u32;
        let body_only = {
            let mut packed = Vec::new();
            write_message_pack(&mut packed, &body_out(&span));
            packed
        };
        let with_semantics = |body: Vec<u8>| [body, vec![EMPTY_MAP]].concat();
        // A map and an array that claim four billion entries.
        let huge_map = one_entry_map("attributes", &[0xdf, 0xff, 0xff, 0xff, 0xff]);
        let huge_array = one_entry_map(
            "attributes",
            &one_entry_map("a", &[0xdd, 0xff, 0xff, 0xff, 0xff]),
        );
        let deeply_nested = one_entry_map(
            "attributes",
            &one_entry_map("a", &[[0x91].repeat(5000), vec![0x01]].concat()),
        );
        let invalid_utf8 = one_entry_map("trace_state", &[0xa2, 0xff, 0xfe]);
        let wrong_type = one_entry_map("flags", &[0xa1, b'x']);
        let bad_link = one_entry_map(
            "links",
            &[&[0x91][..], &one_entry_map("trace_id", &[0xa1, b'z'])].concat(),
        );
        let damaged = [
            good[..good.len() / 2].to_vec(),
            good[..3].to_vec(),
            format_4_claiming(&good_packed, good_size - 1),
            format_4_claiming(&good_packed, good_size + 1),
            format_4_claiming(&good_packed, u32::MAX),
            [&good[..5], &[0xff; 16][..]].concat(),
            vec![MESSAGE_PACK_FORMAT, 200, 0, 0, 0, 1],
            [
                &[MESSAGE_PACK_FORMAT][..],
                &u32::MAX.to_le_bytes(),
                &[0x10, b'x'],
            ]
            .concat(),
            encode_format_3(&good_packed[..good_packed.len() - 1]),
            encode_format_3(&[]),
            encode_format_3(&[0xc1]),
            encode_format_3(&body_only),
            encode_format_3(&with_semantics(huge_map)),
            encode_format_3(&with_semantics(huge_array)),
            encode_format_3(&with_semantics(deeply_nested)),
            encode_format_3(&with_semantics(invalid_utf8)),
            encode_format_3(&with_semantics(wrong_type)),
            encode_format_3(&with_semantics(bad_link)),
            encode_format_3(&[&body_only[..], &one_entry_map("input", &[0x05])].concat()),
            vec![JSON_WITH_SEMANTICS_FORMAT, 200, 0, 0, 0, 1],
            vec![0xff, 0xfe],
        ];
        for (index, bytes) in damaged.iter().enumerate() {
            let decoded = decode(bytes, columns_of(&span));
            assert!(
                matches!(decoded, Err(StoreError::Corrupt(_))),
                "damaged body {index} read as {decoded:?}"
            );
        }
        // Damage in the semantics, seen when only the texts are read.
        for packed in [
            body_only.clone(),
            [&body_only[..], &one_entry_map("input", &[0x05])].concat(),
        ] {
            let stored = decode_stored_body(&encode_format_3(&packed)).unwrap();
            assert!(matches!(stored.texts(), Err(StoreError::Corrupt(_))));
        }
    }

    #[test]
    fn an_empty_map_reads_as_an_empty_body_and_no_semantics() {
        let span = make_span(1, 2);
        let bytes = encode_format_3(&[EMPTY_MAP, EMPTY_MAP]);
        let decoded = decode(&bytes, columns_of(&span)).unwrap();
        assert_eq!(decoded, (span, Some(SpanSemantics::default())));
    }
}
