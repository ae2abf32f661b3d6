//! The HTTP surface: OTLP/HTTP receivers, the JSON query API and health checks, on one router.

mod budget;
mod control;
pub mod error;
mod otlp_http;
mod query;
pub mod session;
mod stats;
mod tokens;
mod ui;
mod views;

use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{delete, get, post};

use crate::auth::{Access, Authenticator, Principal};
use crate::ingest::Ingest;
use crate::metrics::Metrics;
use crate::store::Store;
pub use error::ApiError;

/// Size limits of OTLP/HTTP requests.
#[derive(Debug, Clone, Copy)]
pub struct HttpLimits {
    /// Largest request body as sent (compressed), in bytes.
    pub max_body_bytes: usize,
    /// Largest request body after decompression, in bytes.
    pub max_decompressed_bytes: usize,
}

pub use budget::{DECODED_SIZE_FACTOR, MemoryBudget, Reservation};

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub auth: Arc<Authenticator>,
    pub ingest: Arc<Ingest>,
    pub metrics: Arc<Metrics>,
    pub limits: HttpLimits,
    /// Bounds the request bodies being read and decoded at once.
    pub budget: MemoryBudget,
    /// The web UI's session key and failed sign-ins.
    pub sessions: Arc<session::Sessions>,
}

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

/// The whole HTTP application.
pub fn app(state: AppState) -> Router {
    let mut router = Router::new();
    for path in TRACE_PATHS {
        router = router.route(path, post(otlp_http::export_traces));
    }
    for path in LOG_PATHS {
        router = router.route(path, post(otlp_http::export_logs));
    }
    for path in METRIC_PATHS {
        router = router.route(path, post(otlp_http::export_metrics));
    }
    router
        // OTLP bodies are read with their own limits (413 with an OTLP status body).
        .layer(DefaultBodyLimit::disable())
        .route("/api/v1/traces", get(query::list_traces))
        .route(
            "/api/v1/project/settings",
            get(control::get_settings).put(control::put_settings),
        )
        .route("/api/v1/ingestion", get(control::ingestion))
        .route("/api/v1/stats", get(stats::stats))
        .route("/api/v1/tokens", get(tokens::list).post(tokens::create))
        .route("/api/v1/tokens/{token_id}", delete(tokens::revoke))
        .route("/ui/login", post(session::login))
        .route("/ui/logout", post(session::logout))
        .route("/ui/session", get(session::current))
        .merge(ui::routes())
        .route("/metrics", get(control::metrics))
        .route("/api/v1/traces/{trace_id}", get(query::get_trace))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            session::csrf_guard,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            control::track,
        ))
        .with_state(state)
}

/// Authenticates a request from its headers: the `Authorization` header, else the web UI's
/// session cookie.
pub(crate) fn authenticate(
    state: &AppState,
    headers: &HeaderMap,
    access: Access,
) -> Result<Arc<Principal>, ApiError> {
    let header_text = |name: &str| headers.get(name).and_then(|value| value.to_str().ok());
    let project = header_text("x-project-id").or_else(|| header_text("x-dbnl-project-id"));
    if !headers.contains_key(header::AUTHORIZATION)
        && let Some(cookie) = session::session_cookie(headers)
    {
        return session::authenticate_session(state, cookie, project, access);
    }
    Ok(state
        .auth
        .authenticate(header_text(header::AUTHORIZATION.as_str()), project, access)?)
}

async fn healthz() -> impl IntoResponse {
    axum::Json(serde_json::json!({ "status": "ok" }))
}

/// Ready when the store answers. Either way it says how many spans wait for the store (in the
/// queue, and in a backend's spool), and how many spool files were set aside as undecodable.
async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    let buffered = state.ingest.pipeline.buffered() + state.store.buffered_total().await;
    let corrupt_spool_files = state.store.corrupt_spool_files();
    let (status, body) = match state.store.ping().await {
        Ok(()) => (
            StatusCode::OK,
            serde_json::json!({
                "status": "ready", "buffered": buffered,
                "corrupt_spool_files": corrupt_spool_files
            }),
        ),
        Err(error) => (
            StatusCode::SERVICE_UNAVAILABLE,
            serde_json::json!({
                "status": "unavailable", "error": error.to_string(), "buffered": buffered,
                "corrupt_spool_files": corrupt_spool_files
            }),
        ),
    };
    let mut response = (status, axum::Json(body)).into_response();
    if status == StatusCode::SERVICE_UNAVAILABLE {
        response.headers_mut().insert(
            header::RETRY_AFTER,
            axum::http::HeaderValue::from(error::RETRY_AFTER_SECONDS),
        );
    }
    response
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such endpoint")
}
