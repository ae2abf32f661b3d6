//! OTLP/HTTP: `POST /v1/traces`, `/v1/logs` and `/v1/metrics` under the four prefixes LLM
//! platforms use. Each handler is the shared path of `receiver` with its signal's decoding.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;

use super::{DECODED_SIZE_FACTOR, Receivers};
use crate::auth::{Access, Principal};
use crate::error::ApiError;
use crate::otlp::{self, Compression, Encoding};

/// Identity bodies below this size are decoded on the async runtime; compressed bodies, whose
/// decompressed size is unknown, and larger ones take a decode slot on the blocking pool.
const BLOCKING_DECODE_THRESHOLD: usize = 64 * 1024;

/// The paths LLM platforms use for OTLP traces; all are served alike.
pub const TRACE_PATHS: [&str; 4] = [
    "/v1/traces",
    "/otel/v1/traces",
    "/api/otel/v1/traces",
    "/api/public/otel/v1/traces",
];

/// The same prefixes for the logs signal.
pub const LOG_PATHS: [&str; 4] = [
    "/v1/logs",
    "/otel/v1/logs",
    "/api/otel/v1/logs",
    "/api/public/otel/v1/logs",
];

/// The same prefixes for the metrics signal.
pub const METRIC_PATHS: [&str; 4] = [
    "/v1/metrics",
    "/otel/v1/metrics",
    "/api/otel/v1/metrics",
    "/api/public/otel/v1/metrics",
];

/// The OTLP/HTTP routes, with their state.
pub fn routes(receivers: Receivers) -> Router {
    let mut router = Router::new();
    for path in TRACE_PATHS {
        router = router.route(path, post(export_traces));
    }
    for path in LOG_PATHS {
        router = router.route(path, post(export_logs));
    }
    for path in METRIC_PATHS {
        router = router.route(path, post(export_metrics));
    }
    router.with_state(receivers)
}

/// `POST /v1/traces` and its aliases.
async fn export_traces(
    State(receivers): State<Receivers>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let (receivers, headers) = (&receivers, &headers);
    answer(headers, |encoding| async move {
        let ingest = Arc::clone(&receivers.ingest);
        let (principal, prepared) = decode(receivers, headers, body, move |project_id, body| {
            let request = otlp::decode_trace_request(encoding, body)?;
            Ok(ingest.prepare(project_id, otlp::spans_from_request(request))?)
        })
        .await?;
        let outcome = receivers
            .ingest
            .store(&principal.project.id, prepared)
            .await?;
        let response = otlp::trace_response(outcome.rejected, outcome.error_message);
        Ok(otlp::encode_trace_response(encoding, &response))
    })
    .await
}

/// `POST /v1/logs` and its aliases: GenAI content events are attached to their spans, other
/// records are acknowledged and not stored.
async fn export_logs(
    State(receivers): State<Receivers>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let (receivers, headers) = (&receivers, &headers);
    answer(headers, |encoding| async move {
        let (principal, converted) = decode(receivers, headers, body, move |_, body| {
            let request = otlp::decode_logs_request(encoding, body)?;
            Ok(otlp::logs::content_events_from_request(request))
        })
        .await?;
        receivers
            .ingest
            .store_content_events(&principal.project.id, converted)
            .await?;
        Ok(otlp::encode_logs_response(encoding))
    })
    .await
}

/// `POST /v1/metrics` and its aliases: data points are counted, not stored (SPEC §3).
async fn export_metrics(
    State(receivers): State<Receivers>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let (receivers, headers) = (&receivers, &headers);
    answer(headers, |encoding| async move {
        let (principal, points) = decode(receivers, headers, body, move |_, body| {
            Ok(otlp::metrics::decode_data_points(encoding, body)?)
        })
        .await?;
        receivers
            .ingest
            .accept_metric_points(&principal.project.id, points)?;
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

/// The shared path: authenticates from the headers, takes room for the body in the project's
/// share of the memory budget, reads the body within the time limit, then decompresses (under
/// the budget) and runs `work` on the decompressed body, off the runtime unless the body is
/// small and plain. The room is held until `work` returns.
async fn decode<T: Send + 'static>(
    receivers: &Receivers,
    headers: &HeaderMap,
    body: Body,
    work: impl FnOnce(&str, &[u8]) -> Result<T, ApiError> + Send + 'static,
) -> Result<(Arc<Principal>, T), ApiError> {
    let limits = receivers.limits;
    let principal = authenticate(receivers, headers)?;
    let compression = request_compression(headers)?;
    let project_id = principal.project.id.clone();
    // Room for the body as sent: its declared length before reading it; a chunked body (which
    // declares none, and is limited to max_body_bytes while read) as it turns out.
    let declared = declared_length(headers).map(|length| {
        usize::try_from(length).map_or(usize::MAX, |length| length.min(limits.max_body_bytes))
    });
    let mut room = match receivers
        .admission
        .promise(&project_id, declared.unwrap_or(0))
    {
        Ok(room) => room,
        Err(error) => {
            discard_body(body, limits.max_body_bytes, limits.body_read_timeout).await;
            return Err(error);
        }
    };
    let raw = read_body(
        body,
        headers,
        limits.max_body_bytes,
        limits.body_read_timeout,
    )
    .await?;
    room.arrived();
    room.grow_to(raw.len())?;

    let run = move || {
        let sent = raw.len();
        let body =
            otlp::decompress_metered(compression, raw, limits.max_decompressed_bytes, |size| {
                room.grow_to(sent.saturating_add(size.saturating_mul(DECODED_SIZE_FACTOR)))
            })?;
        room.grow_to(sent.saturating_add(body.len().saturating_mul(DECODED_SIZE_FACTOR)))?;
        let decoded = work(&project_id, &body);
        drop(room);
        decoded
    };
    let inline = compression == Compression::Identity
        && declared.unwrap_or(usize::MAX) < BLOCKING_DECODE_THRESHOLD;
    let decoded = if inline {
        run()?
    } else {
        let slot = receivers.admission.decode_slot().await?;
        tokio::task::spawn_blocking(move || {
            let _slot = slot;
            run()
        })
        .await
        .map_err(|error| ApiError::internal(format!("decoding the request failed: {error}")))??
    };
    Ok((principal, decoded))
}

/// The token of an OTLP request: `Authorization` (Bearer, or Basic with the token as password),
/// with an optional project header.
fn authenticate(receivers: &Receivers, headers: &HeaderMap) -> Result<Arc<Principal>, ApiError> {
    let text = |name: &str| headers.get(name).and_then(|value| value.to_str().ok());
    let project = text("x-project-id").or_else(|| text("x-dbnl-project-id"));
    Ok(receivers.auth.authenticate(
        text(header::AUTHORIZATION.as_str()),
        project,
        Access::Ingest,
    )?)
}

fn request_compression(headers: &HeaderMap) -> Result<Compression, ApiError> {
    Compression::from_content_encoding(
        headers
            .get(header::CONTENT_ENCODING)
            .and_then(|value| value.to_str().ok()),
    )
    .ok_or_else(|| {
        ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Content-Encoding must be gzip, deflate or identity",
        )
    })
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

fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok())
}

fn timed_out(limit: Duration) -> ApiError {
    ApiError::new(
        StatusCode::REQUEST_TIMEOUT,
        format!(
            "the request body did not arrive within {} s",
            limit.as_secs_f64()
        ),
    )
}

/// Reads a body to its end (or past `limit` bytes) and drops it chunk by chunk, holding none
/// of it: a request refused before its body is read still gets its answer (503 with
/// `Retry-After`, which exporters back off on) rather than a connection closed under it while
/// it sends, which they may retry at once.
/// Gives up after `timeout`, as reading does.
async fn discard_body(mut body: Body, limit: usize, timeout: Duration) {
    use http_body_util::BodyExt as _;
    let drain = async {
        let mut read = 0usize;
        while let Some(Ok(frame)) = body.frame().await {
            read += frame.data_ref().map_or(0, |data| data.len());
            if read > limit {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(timeout, drain).await;
}

/// Reads the whole body, chunked or not, refusing more than `limit` bytes, and a body that
/// takes longer than `timeout` to arrive (408: a client that stalls holds its room no longer).
async fn read_body(
    body: Body,
    headers: &HeaderMap,
    limit: usize,
    timeout: Duration,
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
    let read = tokio::time::timeout(timeout, axum::body::to_bytes(body, limit))
        .await
        .map_err(|_| timed_out(timeout))?;
    read.map_err(|error| {
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
