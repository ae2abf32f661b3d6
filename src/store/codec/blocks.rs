//! The spans of a request are compressed together, in blocks: a block is the MessagePack of
//! some of them (as [`super::stored_span`] packs each) back to back, a trace's spans next to
//! each other, compressed once; each span's body (format 5) says where its part lies.
//!
//! Compressing a few KiB at a time cost the embedded store most of its CPU per span: zstd builds
//! its entropy tables and finds its first matches anew for each value. Spans share their
//! attribute keys, their semantics' field names and their models, and a trace's spans often
//! their texts (a chain repeats its LLM call's input and output; an agent sends its history
//! again with each call). On the benchmark's spans, all of whose texts differ, 1000 spans in
//! blocks take a third less CPU to compress and keep a fifth fewer bytes than one by one
//! (docs/benchmarks-log.md).
//!
//! Reading one span decompresses its whole block, so blocks stay small: at most
//! [`MOST_SPANS`] spans and about [`MOST_BYTES`] of MessagePack. They are not smaller than
//! that either: compressed, a block of 64 KiB is larger than one of the store's pages, which
//! SQLite stores in full overflow pages; a block of one trace (~6 KB here) took a page of its
//! own and wasted a third of it. A request's only span keeps a body of its own (format 4 or 3).

use std::collections::HashMap;
use std::sync::Arc;

use super::compressed::Compression;
use super::stored_span::{
    BLOCK_PART_FORMAT, StoredBody, body_error, compress_packed, pack_stored_span_into,
};
use crate::model::{EncodedBody, NormalizedSpan, TraceId};
use crate::store::StoreError;

/// The most spans in one block.
pub const MOST_SPANS: usize = 32;

/// A block takes no more spans once its MessagePack is this long (64 KiB): reading a span
/// decompresses at most this and one span more.
pub const MOST_BYTES: usize = 64 << 10;

/// Sets the `encoded_body` of every span: the spans in blocks, trace by trace, with
/// `compression`.
pub fn encode_in_blocks(spans: &mut [NormalizedSpan], compression: Compression) {
    let mut by_trace: HashMap<TraceId, Vec<usize>> = HashMap::new();
    let mut traces = Vec::new();
    for (index, normalized) in spans.iter().enumerate() {
        by_trace
            .entry(normalized.span.trace_id)
            .or_insert_with(|| {
                traces.push(normalized.span.trace_id);
                Vec::new()
            })
            .push(index);
    }
    let mut block = Block {
        // Room for a block and its last span, which takes it past its bound.
        packed: Vec::with_capacity(MOST_BYTES + MOST_BYTES / 4),
        members: Vec::new(),
    };
    for trace in traces {
        for index in &by_trace[&trace] {
            let normalized = &spans[*index];
            block.add(*index, |packed| {
                pack_stored_span_into(packed, &normalized.span, &normalized.semantics)
            });
            if block.members.len() >= MOST_SPANS || block.packed.len() >= MOST_BYTES {
                block.finish(spans, compression);
            }
        }
    }
    block.finish(spans, compression);
}

/// The block being filled: its spans' MessagePack, and each span's index and place in it.
struct Block {
    packed: Vec<u8>,
    members: Vec<(usize, u32, u32)>,
}

impl Block {
    /// Adds span `index`, which `pack` appends to the block's MessagePack.
    fn add(&mut self, index: usize, pack: impl FnOnce(&mut Vec<u8>)) {
        // A block's parts are addressed with 32 bits; a span's MessagePack is bounded far
        // below (a request is at most 128 MiB), and a block closes past 64 KiB.
        let start = self.packed.len();
        pack(&mut self.packed);
        let len = self.packed.len() - start;
        self.members.push((index, start as u32, len as u32));
    }

    /// Compresses the block and gives its spans their bodies; a span alone gets a body of its
    /// own. Empties the block.
    fn finish(&mut self, spans: &mut [NormalizedSpan], compression: Compression) {
        if self.members.is_empty() {
            return;
        }
        let compressed = compress_packed(&self.packed, compression);
        match self.members.as_slice() {
            [(index, ..)] => spans[*index].encoded_body = Some(EncodedBody::Whole(compressed)),
            members => {
                let block = Arc::new(compressed);
                for &(index, start, len) in members {
                    spans[index].encoded_body = Some(EncodedBody::Part {
                        block: Arc::clone(&block),
                        start,
                        len,
                    });
                }
            }
        }
        self.packed.clear();
        self.members.clear();
    }
}

/// Where a format 5 body's span lies: in the block with id `block`, `len` bytes from `start`
/// of its decompressed contents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockPart {
    pub block: i64,
    pub start: u32,
    pub len: u32,
}

impl BlockPart {
    /// The format 5 body pointing here.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(17);
        out.push(BLOCK_PART_FORMAT);
        out.extend_from_slice(&self.block.to_le_bytes());
        out.extend_from_slice(&self.start.to_le_bytes());
        out.extend_from_slice(&self.len.to_le_bytes());
        out
    }

    /// The part a body of format 5 points to; `None` for a body of another format.
    pub fn of_body(bytes: &[u8]) -> Option<Result<BlockPart, StoreError>> {
        let rest = bytes.strip_prefix(&[BLOCK_PART_FORMAT])?;
        let part = (|| {
            Some(BlockPart {
                block: i64::from_le_bytes(rest.get(..8)?.try_into().ok()?),
                start: u32::from_le_bytes(rest.get(8..12)?.try_into().ok()?),
                len: u32::from_le_bytes(rest.get(12..16)?.try_into().ok()?),
            })
        })();
        Some(
            part.filter(|_| rest.len() == 16)
                .ok_or_else(|| body_error(format!("a block part of {} bytes, not 16", rest.len()))),
        )
    }

    /// The body of this part, out of its block's decompressed contents.
    pub fn body(&self, block: &[u8]) -> Result<StoredBody, StoreError> {
        let start = self.start as usize;
        let packed = block.get(start..start + self.len as usize).ok_or_else(|| {
            body_error(format!(
                "bytes {start}..{} of a block of {}",
                start + self.len as usize,
                block.len()
            ))
        })?;
        Ok(StoredBody::from_message_pack(packed.to_vec()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::span::test_support::make_span;
    use crate::model::{Span, SpanSemantics};
    use crate::store::codec::{BlockPart, columns_of, decompress_packed};

    fn normalized(trace: u8, span: u8, text: &str) -> NormalizedSpan {
        NormalizedSpan {
            span: make_span(trace, span),
            semantics: SpanSemantics {
                input: Some(format!("{text} in")),
                output: Some(format!("{text} out")),
                ..Default::default()
            },
            encoded_body: None,
        }
    }

    /// The span and semantics an encoded body holds, whichever kind it is.
    fn read_back(normalized: &NormalizedSpan) -> (Span, SpanSemantics) {
        let body = match normalized.encoded_body.as_ref().unwrap() {
            EncodedBody::Whole(bytes) => crate::store::codec::decode_stored_body(bytes).unwrap(),
            EncodedBody::Part { block, start, len } => {
                let part = BlockPart {
                    block: 1,
                    start: *start,
                    len: *len,
                };
                let encoded = part.encode();
                assert_eq!(BlockPart::of_body(&encoded).unwrap().unwrap(), part);
                part.body(&decompress_packed(block).unwrap()).unwrap()
            }
        };
        let (span, semantics) = body.decode(columns_of(&normalized.span)).unwrap();
        (span, semantics.unwrap())
    }

    /// Where a span lies: its block's address and its start, `None` for a body of its own.
    fn place(normalized: &NormalizedSpan) -> Option<(*const Vec<u8>, u32)> {
        match normalized.encoded_body.as_ref()? {
            EncodedBody::Part { block, start, .. } => Some((Arc::as_ptr(block), *start)),
            EncodedBody::Whole(_) => None,
        }
    }

    #[test]
    fn a_requests_spans_share_a_block_trace_by_trace() {
        for compression in [Compression::Zstd, Compression::Lz4] {
            // Trace 1's spans interleaved with trace 2's single span and trace 3's two.
            let mut spans = vec![
                normalized(1, 1, "a"),
                normalized(2, 1, "b"),
                normalized(1, 2, "c"),
                normalized(3, 1, "d"),
                normalized(1, 3, "e"),
                normalized(3, 2, "f"),
            ];
            encode_in_blocks(&mut spans, compression);
            let places: Vec<_> = spans.iter().map(|span| place(span).unwrap()).collect();
            assert!(places.iter().all(|(block, _)| *block == places[0].0));
            // In the block: trace 1's spans, then trace 2's, then trace 3's.
            let order = |indexes: &[usize]| indexes.iter().map(|index| places[*index].1).collect();
            let starts: Vec<u32> = order(&[0, 2, 4, 1, 3, 5]);
            assert!(starts.is_sorted(), "{starts:?}");
            assert_eq!(starts[0], 0);
            for normalized in &spans {
                assert_eq!(
                    read_back(normalized),
                    (normalized.span.clone(), normalized.semantics.clone()),
                    "{compression:?}"
                );
            }
        }
        // A request's only span keeps a body of its own.
        let mut alone = vec![normalized(4, 1, "g")];
        encode_in_blocks(&mut alone, Compression::Zstd);
        assert!(matches!(alone[0].encoded_body, Some(EncodedBody::Whole(_))));
        assert_eq!(read_back(&alone[0]).1, alone[0].semantics);
    }

    #[test]
    fn a_block_closes_at_its_bounds() {
        // 33 small spans: a block of 32, and the last alone.
        let mut spans: Vec<_> = (1..=33).map(|span| normalized(1, span, "x")).collect();
        encode_in_blocks(&mut spans, Compression::Zstd);
        let parts = spans
            .iter()
            .filter(|span| matches!(span.encoded_body, Some(EncodedBody::Part { .. })))
            .count();
        assert_eq!(parts, MOST_SPANS);
        assert!(matches!(
            spans[32].encoded_body,
            Some(EncodedBody::Whole(_))
        ));

        // Spans of 40 KiB each: two to a block, past its bytes.
        let long = "word ".repeat(4 << 10);
        let mut spans: Vec<_> = (1..=5).map(|span| normalized(2, span, &long)).collect();
        encode_in_blocks(&mut spans, Compression::Zstd);
        let starts: Vec<u32> = spans
            .iter()
            .map(|span| match &span.encoded_body {
                Some(EncodedBody::Part { start, .. }) => *start,
                _ => u32::MAX,
            })
            .collect();
        assert_eq!(starts[0], 0);
        assert!(starts[1] > 0);
        assert_eq!(starts[2], 0);
        assert_eq!(starts[4], u32::MAX);
        for normalized in &spans {
            assert_eq!(read_back(normalized).1, normalized.semantics);
        }
    }

    #[test]
    fn damaged_block_parts_are_errors() {
        let part = BlockPart {
            block: 7,
            start: 10,
            len: 20,
        };
        let encoded = part.encode();
        assert!(BlockPart::of_body(&encoded[..16]).unwrap().is_err());
        assert!(
            BlockPart::of_body(&[encoded.as_slice(), &[0]].concat())
                .unwrap()
                .is_err()
        );
        assert!(BlockPart::of_body(&[4, 1, 2]).is_none());
        assert!(part.body(&[0; 29]).is_err());
        assert!(part.body(&[0; 30]).is_ok());
        assert!(decompress_packed(&[9, 1, 2]).is_err());
        assert!(decompress_packed(&[]).is_err());
        // The reader of single bodies refuses a part rather than misread it.
        assert!(crate::store::codec::decode_stored_body(&encoded).is_err());
    }
}
