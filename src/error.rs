//! The one error type at the edge: every failure maps to an HTTP status, a gRPC code, and
//! whether the client should retry.
//!
//! What a client may retry is decided here and nowhere else: OTLP exporters retry 429, 502, 503
//! and 504 (gRPC `RESOURCE_EXHAUSTED`, `UNAVAILABLE`, `DEADLINE_EXCEEDED`), and give up on
//! anything else. So only a state that passes gets one of those: a full queue, a spent memory
//! budget, a store that cannot be reached, a rate limit. A request that can never succeed — a
//! body that breaks a decoder, data the store calls corrupt or conflicting — is answered 500 or
//! 4xx, which no exporter retries forever.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::auth::AuthError;
use crate::ingest::IngestError;
use crate::otlp::{DecodeError, Encoding, encode_status};
use crate::pipeline::PipelineError;
use crate::store::StoreError;

/// Logs a handler's panic caught at the edge (HTTP and gRPC answer it as an internal error).
pub fn log_panic(panic: &(dyn std::any::Any + Send)) {
    let message = panic
        .downcast_ref::<&str>()
        .map(|text| (*text).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_default();
    tracing::error!(panic = %message, "a request handler panicked");
}

/// Seconds a client is asked to wait before retrying an overloaded server.
pub const RETRY_AFTER_SECONDS: u64 = 1;

#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    /// Set on retryable answers (429, 503).
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            retry_after: None,
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }

    pub fn unavailable(message: impl Into<String>) -> Self {
        Self {
            retry_after: Some(RETRY_AFTER_SECONDS),
            ..Self::new(StatusCode::SERVICE_UNAVAILABLE, message)
        }
    }

    /// A bug or data that cannot be read: 500, never retried.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, message)
    }

    /// Whether a client should send the same request again: only for a state that passes.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self.status,
            StatusCode::TOO_MANY_REQUESTS
                | StatusCode::BAD_GATEWAY
                | StatusCode::SERVICE_UNAVAILABLE
                | StatusCode::GATEWAY_TIMEOUT
        )
    }

    /// The gRPC code of this error (also the `code` of a `google.rpc.Status` body).
    pub fn grpc_code(&self) -> tonic::Code {
        match self.status {
            StatusCode::BAD_REQUEST | StatusCode::UNSUPPORTED_MEDIA_TYPE => {
                tonic::Code::InvalidArgument
            }
            StatusCode::PAYLOAD_TOO_LARGE => tonic::Code::InvalidArgument,
            StatusCode::UNAUTHORIZED => tonic::Code::Unauthenticated,
            StatusCode::FORBIDDEN => tonic::Code::PermissionDenied,
            StatusCode::NOT_FOUND => tonic::Code::NotFound,
            StatusCode::TOO_MANY_REQUESTS => tonic::Code::ResourceExhausted,
            StatusCode::SERVICE_UNAVAILABLE | StatusCode::BAD_GATEWAY => tonic::Code::Unavailable,
            StatusCode::REQUEST_TIMEOUT | StatusCode::GATEWAY_TIMEOUT => {
                tonic::Code::DeadlineExceeded
            }
            _ => tonic::Code::Internal,
        }
    }

    /// The error as an OTLP/HTTP response: a `google.rpc.Status` in the request's encoding.
    pub fn into_otlp_response(self, encoding: Encoding) -> Response {
        let body = encode_status(encoding, self.grpc_code() as i32, &self.message);
        let mut response = (
            self.status,
            [(header::CONTENT_TYPE, encoding.content_type())],
            body,
        )
            .into_response();
        self.add_headers(&mut response);
        response
    }

    pub fn into_grpc_status(self) -> tonic::Status {
        let mut status = tonic::Status::new(self.grpc_code(), self.message);
        if let Some(seconds) = self.retry_after
            && let Ok(value) = seconds.to_string().parse()
        {
            status.metadata_mut().insert("retry-after", value);
        }
        status
    }

    fn add_headers(&self, response: &mut Response) {
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"spanhouse\""),
            );
        }
    }
}

/// The query API's error body: `{"error": {"status": 404, "message": "..."}}`.
impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({
            "error": { "status": self.status.as_u16(), "message": self.message }
        });
        let mut response = (self.status, axum::Json(body)).into_response();
        self.add_headers(&mut response);
        response
    }
}

impl From<AuthError> for ApiError {
    fn from(error: AuthError) -> Self {
        let status = match error {
            AuthError::Missing | AuthError::Malformed(_) | AuthError::UnknownToken => {
                StatusCode::UNAUTHORIZED
            }
            AuthError::WrongRole { .. } | AuthError::WrongProject { .. } => StatusCode::FORBIDDEN,
        };
        Self::new(status, error.to_string())
    }
}

impl From<DecodeError> for ApiError {
    fn from(error: DecodeError) -> Self {
        let status = match error {
            DecodeError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            _ => StatusCode::BAD_REQUEST,
        };
        Self::new(status, error.to_string())
    }
}

impl From<PipelineError> for ApiError {
    fn from(error: PipelineError) -> Self {
        match error {
            PipelineError::TooManySpans { .. } => {
                Self::new(StatusCode::PAYLOAD_TOO_LARGE, error.to_string())
            }
            PipelineError::Overloaded { .. } | PipelineError::ShuttingDown => {
                Self::unavailable(error.to_string())
            }
            PipelineError::Store(store) => store.into(),
        }
    }
}

impl From<IngestError> for ApiError {
    fn from(error: IngestError) -> Self {
        match error {
            IngestError::TooManySpans { .. } => {
                Self::new(StatusCode::PAYLOAD_TOO_LARGE, error.to_string())
            }
            IngestError::RateLimited { retry_after } => Self {
                retry_after: Some(retry_after.as_secs_f64().ceil().max(1.0) as u64),
                ..Self::new(StatusCode::TOO_MANY_REQUESTS, error.to_string())
            },
            IngestError::Pipeline(error) => error.into(),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::NotFound(_) => Self::not_found(error.to_string()),
            // Retrying the same write meets the same conflict.
            StoreError::Conflict(_) => Self::new(StatusCode::CONFLICT, error.to_string()),
            StoreError::Unavailable(_) => Self::unavailable(error.to_string()),
            StoreError::Corrupt(_) => {
                tracing::error!(%error, "stored data could not be read");
                Self::new(StatusCode::INTERNAL_SERVER_ERROR, error.to_string())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_passing_state_is_retryable() {
        let retryable = [
            ApiError::from(PipelineError::Overloaded { capacity: 1 }),
            ApiError::from(PipelineError::Store(StoreError::Unavailable("down".into()))),
            ApiError::from(IngestError::RateLimited {
                retry_after: std::time::Duration::from_secs(2),
            }),
        ];
        for error in retryable {
            assert!(error.is_retryable(), "{error:?}");
            assert!(error.retry_after.is_some(), "{error:?}");
        }
        // A write the store calls corrupt or conflicting fails the same way every time.
        let permanent = [
            ApiError::from(PipelineError::Store(StoreError::Corrupt("bad row".into()))),
            ApiError::from(PipelineError::Store(StoreError::Conflict("taken".into()))),
            ApiError::internal("a decoder panicked"),
            ApiError::from(DecodeError::TooLarge { limit: 1 }),
        ];
        for error in permanent {
            assert!(!error.is_retryable(), "{error:?}");
            assert_eq!(error.retry_after, None, "{error:?}");
            assert_ne!(error.grpc_code(), tonic::Code::Unavailable, "{error:?}");
        }
        let timeout = ApiError::new(StatusCode::REQUEST_TIMEOUT, "slow");
        assert_eq!(timeout.grpc_code(), tonic::Code::DeadlineExceeded);
    }
}
