//! zstd for what the embedded store keeps compressed (span blobs, trace texts): a tag byte, the
//! size of the bytes (4, little-endian) and one zstd frame. Each thread keeps its contexts.

use std::cell::RefCell;

/// zstd's fastest regular level: on the benchmark's spans it keeps what level 3 keeps, in
/// two thirds to three quarters of the time (BENCHMARKS.md); negative levels leave a span row
/// too large to share a page.
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
    let (size, frame) = bytes
        .split_first_chunk::<4>()
        .ok_or("its size is cut short")?;
    let size = u32::from_le_bytes(*size) as usize;
    if size > MOST_PACKED_BYTES {
        return Err(format!("it claims {size} bytes"));
    }
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
