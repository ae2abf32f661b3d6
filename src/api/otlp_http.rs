//! OTLP/HTTP receivers: extract, decode, one call, map the error.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;

use super::error::ApiError;
use super::{AppState, authenticate};
use crate::auth::Access;
use crate::ingest::{self, PreparedSpans};
use crate::otlp::{self, Compression, Encoding};

/// Bodies above this size are decoded on the blocking pool rather than on the async runtime.
const BLOCKING_DECODE_THRESHOLD: usize = 64 * 1024;

/// `POST /v1/traces` and its aliases.
pub async fn export_traces(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let Some(encoding) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(Encoding::from_content_type)
    else {
        return ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Content-Type must be application/x-protobuf or application/json",
        )
        .into_otlp_response(Encoding::Json);
    };
    match export(&state, &headers, encoding, body).await {
        Ok(outcome) => {
            let response = otlp::trace_response(outcome.rejected, outcome.error_message);
            (
                StatusCode::OK,
                [(header::CONTENT_TYPE, encoding.content_type())],
                otlp::encode_trace_response(encoding, &response),
            )
                .into_response()
        }
        Err(error) => {
            if error.status.is_server_error() {
                tracing::warn!(status = %error.status, message = %error.message, "export failed");
            }
            error.into_otlp_response(encoding)
        }
    }
}

async fn export(
    state: &AppState,
    headers: &HeaderMap,
    encoding: Encoding,
    body: Body,
) -> Result<ingest::IngestOutcome, ApiError> {
    let principal = authenticate(state, headers, Access::Ingest)?;
    let compression = Compression::from_content_encoding(
        headers
            .get(header::CONTENT_ENCODING)
            .and_then(|value| value.to_str().ok()),
    )
    .ok_or_else(|| {
        ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Content-Encoding must be gzip, deflate or identity",
        )
    })?;
    let body = read_body(body, headers, state.limits.max_body_bytes).await?;
    let max_decompressed = state.limits.max_decompressed_bytes;
    let normalizer = Arc::clone(&state.normalizer);
    let decode = move || -> Result<PreparedSpans, ApiError> {
        let body = otlp::decompress(compression, body, max_decompressed)?;
        let request: ExportTraceServiceRequest = otlp::decode_trace_request(encoding, &body)?;
        Ok(ingest::prepare(request, &normalizer))
    };
    let prepared = if headers
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<usize>().ok())
        .is_some_and(|length| length < BLOCKING_DECODE_THRESHOLD)
    {
        decode()?
    } else {
        tokio::task::spawn_blocking(decode)
            .await
            .map_err(|error| ApiError::unavailable(format!("decoder failed: {error}")))??
    };
    Ok(ingest::store_prepared(&state.pipeline, &principal.project.id, prepared).await?)
}

/// Reads the whole body, chunked or not, refusing more than `limit` bytes.
async fn read_body(
    body: Body,
    headers: &HeaderMap,
    limit: usize,
) -> Result<bytes::Bytes, ApiError> {
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("request body is larger than {limit} bytes"),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    if declared.is_some_and(|length| length > limit as u64) {
        return Err(too_large());
    }
    axum::body::to_bytes(body, limit).await.map_err(|error| {
        let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&error);
        while let Some(current) = source {
            if current.is::<http_body_util::LengthLimitError>() {
                return too_large();
            }
            source = current.source();
        }
        ApiError::bad_request(format!("could not read the request body: {error}"))
    })
}
