//! OTLP/HTTP receivers: extract, decode, one call, map the error.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::error::ApiError;
use super::{AppState, authenticate};
use crate::auth::{Access, Principal};
use crate::otlp::{self, Compression, Encoding};

use super::budget::DECODED_SIZE_FACTOR;

/// Bodies above this size are decoded on the blocking pool rather than on the async runtime.
const BLOCKING_DECODE_THRESHOLD: usize = 64 * 1024;

/// `POST /v1/traces` and its aliases.
pub async fn export_traces(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let (state, headers) = (&state, &headers);
    answer(headers, |encoding| async move {
        let ingest = Arc::clone(&state.ingest);
        let (principal, prepared) = decode(state, headers, body, move |project_id, body| {
            let request = otlp::decode_trace_request(encoding, body)?;
            Ok(ingest.prepare(project_id, request)?)
        })
        .await?;
        let outcome = state.ingest.store(&principal.project.id, prepared).await?;
        let response = otlp::trace_response(outcome.rejected, outcome.error_message);
        Ok(otlp::encode_trace_response(encoding, &response))
    })
    .await
}

/// `POST /v1/logs` and its aliases: GenAI content events are attached to their spans, other
/// records are acknowledged and not stored.
pub async fn export_logs(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let (state, headers) = (&state, &headers);
    answer(headers, |encoding| async move {
        let (principal, converted) = decode(state, headers, body, move |_, body| {
            let request = otlp::decode_logs_request(encoding, body)?;
            Ok(otlp::logs::content_events_from_request(request))
        })
        .await?;
        state
            .ingest
            .store_content_events(&principal.project.id, converted)
            .await?;
        Ok(otlp::encode_logs_response(encoding))
    })
    .await
}

/// `POST /v1/metrics` and its aliases: data points are counted, not stored (SPEC §3).
pub async fn export_metrics(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let (state, headers) = (&state, &headers);
    answer(headers, |encoding| async move {
        let (principal, points) = decode(state, headers, body, move |_, body| {
            Ok(otlp::metrics::decode_data_points(encoding, body)?)
        })
        .await?;
        state
            .ingest
            .count_metric_points(&principal.project.id, points);
        Ok(otlp::metrics::encode_metrics_response(encoding))
    })
    .await
}

/// Answers an export in the encoding its `Content-Type` names (415 in JSON for any other):
/// `handle` gives the response body, or the error to answer.
async fn answer<F: Future<Output = Result<Vec<u8>, ApiError>>>(
    headers: &HeaderMap,
    handle: impl FnOnce(Encoding) -> F,
) -> Response {
    match request_encoding(headers) {
        Ok(encoding) => respond(encoding, handle(encoding).await),
        Err(error) => error.into_otlp_response(Encoding::Json),
    }
}

/// Authenticates and reads a request, then decompresses and decodes its body off the runtime
/// when it is large: `work` gets the project's id and the decompressed body. The body's room
/// in the memory budget is held until `work` returns.
async fn decode<T: Send + 'static>(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
    work: impl FnOnce(&str, &[u8]) -> Result<T, ApiError> + Send + 'static,
) -> Result<(Arc<Principal>, T), ApiError> {
    let received = receive(state, headers, body).await?;
    let principal = Arc::clone(&received.principal);
    let project_id = principal.project.id.clone();
    let limit = state.limits.max_decompressed_bytes;
    let budget = state.budget.clone();
    let (compression, body_room) = (received.compression, received.reservation);
    let size = received.body.len();
    let decoded = off_runtime(&state.budget, size, move || {
        let _body_room = body_room;
        let body = otlp::decompress(compression, received.body, limit)?;
        let _decoded = budget.reserve(body.len().saturating_mul(DECODED_SIZE_FACTOR))?;
        work(&project_id, &body)
    })
    .await?;
    Ok((principal, decoded))
}

/// The encoding named by `Content-Type`; the error answers in JSON, the encoding being unknown.
fn request_encoding(headers: &HeaderMap) -> Result<Encoding, ApiError> {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(Encoding::from_content_type)
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "Content-Type must be application/x-protobuf or application/json",
            )
        })
}

fn respond(encoding: Encoding, result: Result<Vec<u8>, ApiError>) -> Response {
    match result {
        Ok(body) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, encoding.content_type())],
            body,
        )
            .into_response(),
        Err(error) => {
            if error.status.is_server_error() {
                tracing::warn!(status = %error.status, message = %error.message, "export failed");
            }
            error.into_otlp_response(encoding)
        }
    }
}

/// An authenticated request's body as sent.
struct Received {
    principal: Arc<Principal>,
    compression: Compression,
    body: bytes::Bytes,
    /// Holds the body's room in the memory budget until the body is decoded and dropped: a
    /// request then waiting for the store holds its spans' room in the queue instead.
    reservation: super::budget::Reservation,
}

fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok())
}

/// Authenticates, then reads the body (before decompression) within the limit.
async fn receive(state: &AppState, headers: &HeaderMap, body: Body) -> Result<Received, ApiError> {
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
    // Room for the body as sent: its declared length before reading it; a chunked body (which
    // declares none, and is limited to max_body_bytes while read) once it is read.
    let declared = declared_length(headers).map(|length| {
        usize::try_from(length)
            .unwrap_or(usize::MAX)
            .min(state.limits.max_body_bytes)
    });
    let mut reservation = match state.budget.reserve(declared.unwrap_or(0)) {
        Ok(reservation) => reservation,
        Err(error) => {
            discard_body(body, state.limits.max_body_bytes).await;
            return Err(error);
        }
    };
    let body = read_body(body, headers, state.limits.max_body_bytes).await?;
    if declared.is_none() {
        reservation = state.budget.reserve(body.len())?;
    }
    Ok(Received {
        principal,
        compression,
        body,
        reservation,
    })
}

/// Runs CPU work for a body of `size` bytes: inline when small, on the blocking pool when large.
/// A large body waits for one of the budget's decode slots first.
async fn off_runtime<T: Send + 'static>(
    budget: &super::MemoryBudget,
    size: usize,
    work: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    if size < BLOCKING_DECODE_THRESHOLD {
        return work();
    }
    let slot = budget.decode_slot().await?;
    tokio::task::spawn_blocking(move || {
        let _slot = slot;
        work()
    })
    .await
    .map_err(|error| ApiError::unavailable(format!("decoder failed: {error}")))?
}

/// Reads a body to its end (or past `limit` bytes) and drops it chunk by chunk, holding none
/// of it: a request refused before its body is read still gets its answer (503 with
/// `Retry-After`, which exporters back off on) rather than a connection closed under it while
/// it sends, which they may retry at once.
async fn discard_body(mut body: Body, limit: usize) {
    use http_body_util::BodyExt as _;
    let mut read = 0usize;
    while let Some(Ok(frame)) = body.frame().await {
        read += frame.data_ref().map_or(0, |data| data.len());
        if read > limit {
            break;
        }
    }
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
    if declared_length(headers).is_some_and(|length| length > limit as u64) {
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
