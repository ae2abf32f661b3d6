//! How the embedded store compresses what it keeps compressed (span blobs, trace texts): a tag
//! byte, the size of the bytes (4, little-endian), then one LZ4 block or one zstd frame. Each
//! thread keeps its zstd contexts.

use std::cell::RefCell;

use serde::Deserialize;

/// The embedded store's compression (`[sqlite] compression`), for what it writes from now on;
/// it reads both whatever the setting.
///
/// On the benchmark's LLM spans LZ4 takes 42 % of zstd's instructions (zstd spends half of its
/// on the entropy stage, which costs much for values of a few KiB) and leaves rows 42 % larger
/// (2,074 against 1,456 bytes). At full load for 60 s LZ4 stored 6 % more spans per second for
/// a fifth less CPU per span, but wrote 39 % more bytes, and at half load its p99 was worse
/// (123 against 109–116 ms) once the kernel's writeback of those bytes set in
/// (docs/benchmarks-log.md).
/// zstd stays the default: this machine's disk is a limit as much as its CPU. Since a request's
/// spans are compressed together ([`super::encode_in_blocks`]), the gap is smaller: 1000 of the
/// benchmark's spans in blocks take 8.6 ms and 1,414 bytes a span with LZ4, 12.4 ms and 1,009
/// bytes with zstd.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// Faster to write, ~40 % more bytes: for machines short of CPU rather than disk.
    Lz4,
    /// Smaller (about 70 % of LZ4's bytes for LLM text), for ~2.4 times its CPU.
    #[default]
    Zstd,
}

/// zstd's fastest regular level: on the benchmark's spans it keeps what level 3 keeps, in
/// two thirds to three quarters of the time (docs/benchmarks-log.md); its negative levels keep less
/// than LZ4 for more instructions.
const ZSTD_LEVEL: i32 = 1;

/// The most bytes a compressed value may claim to unpack to: far above any span a request can
/// carry, low enough that a damaged size cannot make a read allocate without bound.
const MOST_PACKED_BYTES: usize = 256 << 20;

thread_local! {
    /// Each thread's zstd contexts (and the compressor's output buffer), kept from value to value.
    static COMPRESSOR: RefCell<Option<(zstd::bulk::Compressor<'static>, Vec<u8>)>> =
        const { RefCell::new(None) };
    static DECOMPRESSOR: RefCell<Option<zstd::bulk::Decompressor<'static>>> =
        const { RefCell::new(None) };
}

/// `tag`, the size of `bytes` (4 bytes, little-endian) and their LZ4 block, exactly that long
/// (it may wait in a queue until written); `None` for more than 4 GiB.
pub(crate) fn lz4_behind(tag: u8, bytes: &[u8]) -> Option<Vec<u8>> {
    let size = u32::try_from(bytes.len()).ok()?;
    let mut out = vec![0; 5 + lz4_flex::block::get_maximum_output_size(bytes.len())];
    out[0] = tag;
    out[1..5].copy_from_slice(&size.to_le_bytes());
    // The output has room for the worst case, which is all `compress_into` can fail on.
    let written = lz4_flex::block::compress_into(bytes, &mut out[5..]).ok()?;
    out.truncate(5 + written);
    out.shrink_to_fit();
    Some(out)
}

/// What [`lz4_behind`] compressed, from the bytes after its tag; an error names the damage.
pub(crate) fn unlz4(bytes: &[u8]) -> Result<Vec<u8>, String> {
    let (size, block) = size_and_rest(bytes)?;
    let unpacked = lz4_flex::block::decompress(block, size).map_err(|error| error.to_string())?;
    if unpacked.len() != size {
        return Err(format!(
            "{} bytes where {size} were written",
            unpacked.len()
        ));
    }
    Ok(unpacked)
}

/// The size a compressed value claims, checked against [`MOST_PACKED_BYTES`], and the bytes
/// after it.
fn size_and_rest(bytes: &[u8]) -> Result<(usize, &[u8]), String> {
    let (size, rest) = bytes
        .split_first_chunk::<4>()
        .ok_or("its size is cut short")?;
    let size = u32::from_le_bytes(*size) as usize;
    if size > MOST_PACKED_BYTES {
        return Err(format!("it claims {size} bytes"));
    }
    Ok((size, rest))
}

/// `tag`, the size of `bytes` (4 bytes, little-endian) and their zstd frame, exactly that long
/// (it may wait in a queue until written); `None` when zstd cannot get a context, or for more
/// than 4 GiB.
pub(crate) fn zstd_behind(tag: u8, bytes: &[u8]) -> Option<Vec<u8>> {
    let size = u32::try_from(bytes.len()).ok()?;
    COMPRESSOR.with_borrow_mut(|state| {
        if state.is_none() {
            let mut compressor = zstd::bulk::Compressor::new(ZSTD_LEVEL).ok()?;
            // The size is stored before the frame; the frame need not repeat it.
            compressor
                .set_parameter(zstd::stream::raw::CParameter::ContentSizeFlag(false))
                .ok()?;
            *state = Some((compressor, Vec::new()));
        }
        let (compressor, buffer) = state.as_mut()?;
        buffer.clear();
        buffer.reserve(zstd::zstd_safe::compress_bound(bytes.len()));
        compressor.compress_to_buffer(bytes, buffer).ok()?;
        let mut out = Vec::with_capacity(5 + buffer.len());
        out.push(tag);
        out.extend_from_slice(&size.to_le_bytes());
        out.extend_from_slice(buffer);
        // A large value's buffer is not kept for the next.
        if buffer.capacity() > 1 << 20 {
            *buffer = Vec::new();
        }
        Some(out)
    })
}

/// What [`zstd_behind`] compressed, from the bytes after its tag; an error names the damage.
pub(crate) fn unzstd(bytes: &[u8]) -> Result<Vec<u8>, String> {
    let (size, frame) = size_and_rest(bytes)?;
    let unpacked = DECOMPRESSOR.with_borrow_mut(|state| {
        if state.is_none() {
            *state = Some(zstd::bulk::Decompressor::new()?);
        }
        let Some(decompressor) = state.as_mut() else {
            return Err(std::io::Error::other("no zstd context"));
        };
        decompressor.decompress(frame, size)
    });
    let unpacked = unpacked.map_err(|error| error.to_string())?;
    if unpacked.len() != size {
        return Err(format!(
            "{} bytes where {size} were written",
            unpacked.len()
        ));
    }
    Ok(unpacked)
}
