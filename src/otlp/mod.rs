//! OTLP wire formats: content types, compression, protobuf and JSON bodies, and responses.
//! Nothing here knows about HTTP servers or storage; receivers call these functions.

pub mod convert;
pub mod export;
pub mod json;
pub mod json_logs;
pub mod logs;
pub mod metrics;

use std::io::Read;

use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use prost::Message;

pub use convert::spans_from_request;

/// The two OTLP/HTTP encodings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Protobuf,
    Json,
}

impl Encoding {
    /// Reads a `Content-Type` header value; `None` for anything OTLP does not define.
    pub fn from_content_type(content_type: &str) -> Option<Self> {
        let media_type = content_type
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        match media_type.as_str() {
            "application/x-protobuf" | "application/protobuf" => Some(Self::Protobuf),
            "application/json" => Some(Self::Json),
            _ => None,
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Self::Protobuf => "application/x-protobuf",
            Self::Json => "application/json",
        }
    }
}

/// Body compression named by `Content-Encoding`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    Identity,
    Gzip,
    Deflate,
}

impl Compression {
    /// Reads a `Content-Encoding` header value; `None` for an encoding spanhouse does not accept.
    pub fn from_content_encoding(content_encoding: Option<&str>) -> Option<Self> {
        match content_encoding
            .map(|value| value.trim().to_ascii_lowercase())
            .as_deref()
        {
            None | Some("") | Some("identity") => Some(Self::Identity),
            Some("gzip") | Some("x-gzip") => Some(Self::Gzip),
            Some("deflate") => Some(Self::Deflate),
            Some(_) => None,
        }
    }
}

/// Why a body could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("body is larger than {limit} bytes after decompression")]
    TooLarge { limit: usize },
    #[error("body is not valid {compression}: {source}")]
    Decompress {
        compression: &'static str,
        source: std::io::Error,
    },
    #[error("body is not a valid protobuf export request: {0}")]
    Protobuf(#[from] prost::DecodeError),
    #[error(transparent)]
    Json(#[from] json::JsonError),
}

/// Decompresses a body, stopping as soon as the output passes `limit` bytes so that a
/// decompression bomb never gets inflated in memory.
pub fn decompress(
    compression: Compression,
    body: bytes::Bytes,
    limit: usize,
) -> Result<bytes::Bytes, DecodeError> {
    decompress_metered(compression, body, limit, |_| Ok(()))
}

/// How far the output of [`decompress_metered`] grows between two of its calls to `admit`.
const METER_STEP: usize = 1024 * 1024;

/// [`decompress`], asking `admit(size)` before the output may grow to `size` bytes: a caller
/// takes memory from its budget step by step, and refuses (with its own error) a body that
/// would inflate past what it may hold. An identity body is returned as it is.
pub fn decompress_metered<E: From<DecodeError>>(
    compression: Compression,
    body: bytes::Bytes,
    limit: usize,
    mut admit: impl FnMut(usize) -> Result<(), E>,
) -> Result<bytes::Bytes, E> {
    let (name, mut reader): (&'static str, Box<dyn Read + '_>) = match compression {
        Compression::Identity => {
            if body.len() > limit {
                return Err(DecodeError::TooLarge { limit }.into());
            }
            return Ok(body);
        }
        Compression::Gzip => (
            "gzip",
            Box::new(flate2::read::MultiGzDecoder::new(&body[..])),
        ),
        Compression::Deflate => ("deflate", Box::new(DeflateReader::new(&body[..]))),
    };
    let mut output = Vec::new();
    loop {
        // One byte past the limit tells a body at the limit from one over it.
        let step = METER_STEP.min(limit.saturating_add(1) - output.len());
        admit(output.len() + step)?;
        output.reserve_exact(step);
        let read = (&mut reader)
            .take(step as u64)
            .read_to_end(&mut output)
            .map_err(|source| DecodeError::Decompress {
                compression: name,
                source,
            })?;
        if output.len() > limit {
            return Err(DecodeError::TooLarge { limit }.into());
        }
        if read < step {
            return Ok(bytes::Bytes::from(output));
        }
    }
}

/// HTTP's `deflate` is zlib-wrapped by the standard, raw deflate by some clients: accept both.
enum DeflateReader<'a> {
    Zlib(flate2::read::ZlibDecoder<&'a [u8]>),
    Raw(flate2::read::DeflateDecoder<&'a [u8]>),
}

impl<'a> DeflateReader<'a> {
    fn new(body: &'a [u8]) -> Self {
        // A zlib header's first byte names method 8 and its first two bytes are a multiple of 31.
        let is_zlib = body.len() >= 2
            && body[0] & 0x0f == 8
            && (u16::from(body[0]) << 8 | u16::from(body[1])) % 31 == 0;
        if is_zlib {
            Self::Zlib(flate2::read::ZlibDecoder::new(body))
        } else {
            Self::Raw(flate2::read::DeflateDecoder::new(body))
        }
    }
}

impl Read for DeflateReader<'_> {
    fn read(&mut self, buffer: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Self::Zlib(reader) => reader.read(buffer),
            Self::Raw(reader) => reader.read(buffer),
        }
    }
}

/// Decodes a logs export request in either encoding.
pub fn decode_logs_request(
    encoding: Encoding,
    body: &[u8],
) -> Result<opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest, DecodeError>
{
    match encoding {
        Encoding::Protobuf => Ok(
            opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest::decode(
                body,
            )?,
        ),
        Encoding::Json => Ok(json_logs::decode_logs_request(body)?),
    }
}

/// Encodes a logs export response (always a full success: logs are never rejected).
pub fn encode_logs_response(encoding: Encoding) -> Vec<u8> {
    match encoding {
        Encoding::Protobuf => {
            opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceResponse::default()
                .encode_to_vec()
        }
        Encoding::Json => b"{}".to_vec(),
    }
}

/// Decodes an export request in either encoding.
pub fn decode_trace_request(
    encoding: Encoding,
    body: &[u8],
) -> Result<ExportTraceServiceRequest, DecodeError> {
    match encoding {
        Encoding::Protobuf => Ok(ExportTraceServiceRequest::decode(body)?),
        Encoding::Json => Ok(json::decode_trace_request(body)?),
    }
}

/// The export response: `partial_success` only when spans were rejected.
pub fn trace_response(rejected_spans: usize, error_message: String) -> ExportTraceServiceResponse {
    let partial_success = (rejected_spans > 0).then_some(ExportTracePartialSuccess {
        rejected_spans: rejected_spans as i64,
        error_message,
    });
    ExportTraceServiceResponse { partial_success }
}

/// Encodes an export response in the request's encoding.
pub fn encode_trace_response(encoding: Encoding, response: &ExportTraceServiceResponse) -> Vec<u8> {
    match encoding {
        Encoding::Protobuf => response.encode_to_vec(),
        Encoding::Json => {
            let body = match &response.partial_success {
                None => serde_json::json!({}),
                Some(partial) => serde_json::json!({
                    "partialSuccess": {
                        "rejectedSpans": partial.rejected_spans.to_string(),
                        "errorMessage": partial.error_message,
                    }
                }),
            };
            body.to_string().into_bytes()
        }
    }
}

/// `google.rpc.Status`, the body of OTLP/HTTP error responses.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RpcStatus {
    #[prost(int32, tag = "1")]
    pub code: i32,
    #[prost(string, tag = "2")]
    pub message: String,
}

/// Encodes a `google.rpc.Status` with a gRPC code number in the request's encoding.
pub fn encode_status(encoding: Encoding, grpc_code: i32, message: &str) -> Vec<u8> {
    match encoding {
        Encoding::Protobuf => RpcStatus {
            code: grpc_code,
            message: message.to_owned(),
        }
        .encode_to_vec(),
        Encoding::Json => serde_json::json!({ "code": grpc_code, "message": message })
            .to_string()
            .into_bytes(),
    }
}

#[cfg(test)]
mod proptests;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metered_decompression_asks_before_it_grows_and_stops_when_refused() {
        use std::io::Write as _;
        let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gzip.write_all(&vec![7u8; 5 * METER_STEP]).unwrap();
        let body = bytes::Bytes::from(gzip.finish().unwrap());

        let mut asked = Vec::new();
        let inflated =
            decompress_metered(Compression::Gzip, body.clone(), 8 * METER_STEP, |size| {
                asked.push(size);
                Ok::<_, DecodeError>(())
            })
            .unwrap();
        assert_eq!(inflated.len(), 5 * METER_STEP);
        assert!(asked.windows(2).all(|pair| pair[0] < pair[1]), "{asked:?}");
        assert!(
            asked.iter().all(|size| *size <= 6 * METER_STEP),
            "{asked:?}"
        );

        // Refused at 2 MiB: the body never inflates past what was admitted.
        let refused = decompress_metered(Compression::Gzip, body, 8 * METER_STEP, |size| {
            if size > 2 * METER_STEP {
                Err(DecodeError::TooLarge { limit: size })
            } else {
                Ok(())
            }
        });
        assert!(matches!(refused, Err(DecodeError::TooLarge { limit }) if limit == 3 * METER_STEP));
    }
    use std::io::Write;

    fn gzip(data: &[u8]) -> bytes::Bytes {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(data).unwrap();
        encoder.finish().unwrap().into()
    }

    #[test]
    fn content_types() {
        assert_eq!(
            Encoding::from_content_type("application/json; charset=utf-8"),
            Some(Encoding::Json)
        );
        assert_eq!(
            Encoding::from_content_type("Application/X-Protobuf"),
            Some(Encoding::Protobuf)
        );
        assert_eq!(Encoding::from_content_type("text/plain"), None);
        assert_eq!(Compression::from_content_encoding(Some("br")), None);
    }

    #[test]
    fn decompression_stops_at_the_limit() {
        let bomb = gzip(&vec![0u8; 10 * 1024 * 1024]);
        assert!(bomb.len() < 64 * 1024);
        let error = decompress(Compression::Gzip, bomb.clone(), 1024 * 1024).unwrap_err();
        assert!(matches!(error, DecodeError::TooLarge { .. }));
        let inflated = decompress(Compression::Gzip, bomb, 16 * 1024 * 1024).unwrap();
        assert_eq!(inflated.len(), 10 * 1024 * 1024);
    }

    #[test]
    fn deflate_accepts_zlib_and_raw() {
        let mut zlib = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
        zlib.write_all(b"hello").unwrap();
        let mut raw = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::fast());
        raw.write_all(b"hello").unwrap();
        for body in [zlib.finish().unwrap(), raw.finish().unwrap()] {
            let output = decompress(Compression::Deflate, body.into(), 100).unwrap();
            assert_eq!(&output[..], b"hello");
        }
    }

    #[test]
    fn garbage_is_a_decode_error() {
        assert!(decode_trace_request(Encoding::Protobuf, b"\xff\xff\xff").is_err());
        assert!(decompress(Compression::Gzip, bytes::Bytes::from_static(b"nope"), 10).is_err());
    }
}
