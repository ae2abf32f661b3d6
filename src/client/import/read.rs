//! Reading OTLP files as the OpenTelemetry Collector's file exporter and OTLP tools write them,
//! one document at a time, so a file of any size is read in bounded memory.
//!
//! A file is first undone of its compression, recognised by its magic bytes (gzip, or zstd —
//! the file exporter's "native" compression of the whole stream). What is left is one of:
//!
//! - OTLP/JSON: one export request per line (the file exporter's `format: json`), or whole
//!   documents (pretty-printed, several in a row);
//! - length-prefixed records: a 4-byte big-endian length before each record (the file
//!   exporter's `format: proto`, and its older per-record `compression: zstd` for either
//!   format); a record is protobuf or JSON, itself zstd-compressed or not;
//! - one protobuf `ExportTraceServiceRequest` (an OTLP/HTTP body saved to a file).
//!
//! JSON says which signal it holds (`resourceSpans`, `resourceLogs`, `resourceMetrics`);
//! protobuf does not, and is read as traces.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message as _;
use serde_json::Value;

use crate::otlp::{json, json_logs};

/// Largest record or JSON line read into memory: an export request bigger than this is not
/// something an exporter sends (servers refuse far less).
pub const MAX_RECORD_BYTES: usize = 256 * 1024 * 1024;

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

/// One export request read from a file.
#[derive(Debug)]
pub enum Document {
    Traces(ExportTraceServiceRequest),
    Logs(ExportLogsServiceRequest),
    /// A metrics request: spanhouse only counts metric points, so the importer skips them.
    Metrics,
}

/// Why a file could not be read (further); says where.
#[derive(Debug, thiserror::Error)]
#[error("{problem} (document {document}, after {offset} bytes of its content)")]
pub struct ReadError {
    /// What was wrong.
    pub problem: String,
    /// The 1-based number of the document being read.
    pub document: u64,
    /// Decompressed bytes read before it.
    pub offset: u64,
}

/// Counts the bytes read from the file itself (compressed), for the progress bar.
struct Counting<R> {
    inner: R,
    read: Arc<AtomicU64>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let read = self.inner.read(buf)?;
        self.read.fetch_add(read as u64, Ordering::Relaxed);
        Ok(read)
    }
}

/// Reads every document of a file in order and hands each to `each`; stops early when `each`
/// answers `false`. `progress` grows by the bytes of the file read.
pub fn read_file(
    path: &Path,
    progress: Arc<AtomicU64>,
    each: &mut dyn FnMut(Document) -> bool,
) -> Result<(), ReadError> {
    let file = File::open(path).map_err(|error| ReadError {
        problem: format!("cannot open: {error}"),
        document: 0,
        offset: 0,
    })?;
    let raw = BufReader::with_capacity(
        256 * 1024,
        Counting {
            inner: file,
            read: progress,
        },
    );
    read_stream(raw, each)
}

/// [`read_file`] over any reader.
pub fn read_stream(
    mut raw: impl BufRead + 'static,
    each: &mut dyn FnMut(Document) -> bool,
) -> Result<(), ReadError> {
    let head = raw.fill_buf().map_err(|error| io_error(error, 0, 0))?;
    let content: Box<dyn BufRead> = if head.starts_with(&GZIP_MAGIC) {
        Box::new(BufReader::new(flate2::bufread::MultiGzDecoder::new(raw)))
    } else if head.starts_with(&ZSTD_MAGIC) {
        let decoder =
            zstd::stream::read::Decoder::with_buffer(raw).map_err(|error| io_error(error, 0, 0))?;
        Box::new(BufReader::new(decoder))
    } else {
        Box::new(raw)
    };
    Reader {
        content,
        document: 0,
        offset: 0,
    }
    .run(each)
}

fn io_error(error: io::Error, document: u64, offset: u64) -> ReadError {
    ReadError {
        problem: format!("cannot read: {error}"),
        document,
        offset,
    }
}

struct Reader {
    content: Box<dyn BufRead>,
    /// Documents read so far.
    document: u64,
    /// Decompressed bytes consumed so far.
    offset: u64,
}

impl Reader {
    fn fail(&self, problem: impl Into<String>) -> ReadError {
        ReadError {
            problem: problem.into(),
            document: self.document + 1,
            offset: self.offset,
        }
    }

    fn run(mut self, each: &mut dyn FnMut(Document) -> bool) -> Result<(), ReadError> {
        // Field 1 (`resource_spans`), length-delimited, starts a protobuf request: 0x0A, which
        // is also a newline before JSON. A length prefix starts with a zero byte below 16 MiB.
        let head = self
            .content
            .fill_buf()
            .map_err(|error| io_error(error, 1, 0))?;
        let json_follows = head
            .iter()
            .find(|byte| !byte.is_ascii_whitespace())
            .is_some_and(|&byte| byte == b'{' || byte == 0xEF);
        if head.first() == Some(&0x0A) && !json_follows {
            return self.protobuf_document(each);
        }
        let first = loop {
            let head = self
                .content
                .fill_buf()
                .map_err(|error| io_error(error, 1, self.offset))?;
            match head.first() {
                None => return Ok(()),
                Some(b' ' | b'\t' | b'\r' | b'\n') => {
                    self.content.consume(1);
                    self.offset += 1;
                }
                Some(&byte) => break byte,
            }
        };
        match first {
            b'{' | 0xEF => self.json_lines(each),
            _ => self.length_prefixed(each),
        }
    }

    /// JSON documents, one per line or spread over lines.
    fn json_lines(&mut self, each: &mut dyn FnMut(Document) -> bool) -> Result<(), ReadError> {
        let mut line = Vec::new();
        loop {
            line.clear();
            let read = (&mut self.content)
                .take(MAX_RECORD_BYTES as u64 + 1)
                .read_until(b'\n', &mut line)
                .map_err(|error| io_error(error, self.document + 1, self.offset))?;
            if read == 0 {
                return Ok(());
            }
            if line.len() > MAX_RECORD_BYTES {
                return Err(self.fail(format!("a line longer than {MAX_RECORD_BYTES} bytes")));
            }
            let text = line.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&line);
            if text.iter().all(u8::is_ascii_whitespace) {
                self.offset += read as u64;
                continue;
            }
            match serde_json::from_slice::<Value>(text) {
                Ok(value) => {
                    self.offset += read as u64;
                    if !self.emit_json(&value, each)? {
                        return Ok(());
                    }
                }
                // A document spread over lines: the rest of the file is read whole.
                Err(error) if error.is_eof() => {
                    let mut rest = text.to_vec();
                    (&mut self.content)
                        .take(MAX_RECORD_BYTES as u64)
                        .read_to_end(&mut rest)
                        .map_err(|error| io_error(error, self.document + 1, self.offset))?;
                    return self.json_documents(&rest, each);
                }
                Err(error) => return Err(self.fail(format!("not JSON: {error}"))),
            }
        }
    }

    /// Whole JSON documents in a row.
    fn json_documents(
        &mut self,
        text: &[u8],
        each: &mut dyn FnMut(Document) -> bool,
    ) -> Result<(), ReadError> {
        let mut stream = serde_json::Deserializer::from_slice(text).into_iter::<Value>();
        let start = self.offset;
        while let Some(value) = stream.next() {
            let value = value.map_err(|error| self.fail(format!("not JSON: {error}")))?;
            self.offset = start + stream.byte_offset() as u64;
            if !self.emit_json(&value, each)? {
                break;
            }
        }
        Ok(())
    }

    fn emit_json(
        &mut self,
        value: &Value,
        each: &mut dyn FnMut(Document) -> bool,
    ) -> Result<bool, ReadError> {
        let has = |camel: &str, snake: &str| {
            value
                .as_object()
                .is_some_and(|object| object.contains_key(camel) || object.contains_key(snake))
        };
        let document = if has("resourceSpans", "resource_spans") {
            Document::Traces(
                json::trace_request_from_value(value)
                    .map_err(|error| self.fail(error.to_string()))?,
            )
        } else if has("resourceLogs", "resource_logs") {
            Document::Logs(
                json_logs::logs_request_from_value(value)
                    .map_err(|error| self.fail(error.to_string()))?,
            )
        } else if has("resourceMetrics", "resource_metrics") {
            Document::Metrics
        } else {
            return Err(self.fail(
                "not an OTLP export request (no resourceSpans, resourceLogs or resourceMetrics)",
            ));
        };
        self.document += 1;
        Ok(each(document))
    }

    /// The file exporter's records: a 4-byte big-endian length, then the record.
    fn length_prefixed(&mut self, each: &mut dyn FnMut(Document) -> bool) -> Result<(), ReadError> {
        loop {
            let mut prefix = [0u8; 4];
            match read_exact_or_end(&mut self.content, &mut prefix) {
                Ok(false) => return Ok(()),
                Ok(true) => {}
                Err(error) => return Err(io_error(error, self.document + 1, self.offset)),
            }
            let length = u32::from_be_bytes(prefix) as usize;
            if length > MAX_RECORD_BYTES {
                return Err(self.fail(format!(
                    "a record of {length} bytes (at most {MAX_RECORD_BYTES}); \
                     is this an OTLP file?"
                )));
            }
            // Grown as bytes arrive, not allocated from the prefix: a damaged prefix must not
            // cost its claimed size in memory.
            let mut record = Vec::new();
            let read = (&mut self.content)
                .take(length as u64)
                .read_to_end(&mut record)
                .map_err(|error| io_error(error, self.document + 1, self.offset))?;
            if read < length {
                return Err(self.fail(format!(
                    "a record cut short: {length} bytes announced, {read} in the file"
                )));
            }
            self.offset += 4 + length as u64;
            if record.starts_with(&ZSTD_MAGIC) {
                record = decompress_record(&record).map_err(|problem| self.fail(problem))?;
            }
            let keep_going = if record.first() == Some(&b'{') {
                let value = serde_json::from_slice::<Value>(&record)
                    .map_err(|error| self.fail(format!("not JSON: {error}")))?;
                self.emit_json(&value, each)?
            } else {
                self.emit_protobuf(&record, each)?
            };
            if !keep_going {
                return Ok(());
            }
        }
    }

    /// One protobuf request, the whole (decompressed) file.
    fn protobuf_document(
        &mut self,
        each: &mut dyn FnMut(Document) -> bool,
    ) -> Result<(), ReadError> {
        let mut body = Vec::new();
        (&mut self.content)
            .take(MAX_RECORD_BYTES as u64 + 1)
            .read_to_end(&mut body)
            .map_err(|error| io_error(error, 1, self.offset))?;
        if body.len() > MAX_RECORD_BYTES {
            return Err(self.fail(format!(
                "a protobuf document longer than {MAX_RECORD_BYTES} bytes; \
                 write it as length-prefixed records"
            )));
        }
        self.emit_protobuf(&body, each)?;
        Ok(())
    }

    fn emit_protobuf(
        &mut self,
        body: &[u8],
        each: &mut dyn FnMut(Document) -> bool,
    ) -> Result<bool, ReadError> {
        let request = ExportTraceServiceRequest::decode(body).map_err(|error| {
            self.fail(format!(
                "not an OTLP protobuf ExportTraceServiceRequest: {error}"
            ))
        })?;
        self.document += 1;
        Ok(each(Document::Traces(request)))
    }
}

/// Fills `buf`, or answers `false` at a clean end of the stream (no byte of `buf` read).
fn read_exact_or_end(reader: &mut dyn BufRead, buf: &mut [u8]) -> io::Result<bool> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) if filled == 0 => return Ok(false),
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the file ends inside a record's length",
                ));
            }
            Ok(read) => filled += read,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
    }
    Ok(true)
}

/// A zstd-compressed record (the file exporter's per-record compression), inflated to at most
/// [`MAX_RECORD_BYTES`].
fn decompress_record(record: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    zstd::stream::read::Decoder::new(record)
        .map_err(|error| format!("cannot decompress a record: {error}"))?
        .take(MAX_RECORD_BYTES as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|error| format!("cannot decompress a record: {error}"))?;
    if out.len() > MAX_RECORD_BYTES {
        return Err(format!("a record inflating past {MAX_RECORD_BYTES} bytes"));
    }
    Ok(out)
}

#[cfg(test)]
#[path = "read_tests.rs"]
mod tests;
