//! The HTTP surface: the JSON query API, the web UI and health checks, on one router with the
//! OTLP/HTTP receivers (`receiver::http`, given to [`app`]).

mod alerts;
mod control;
mod delete;
mod export;
mod export_render;
mod export_walk;
mod filters;
mod insights;
mod query;
mod scores;
pub mod session;
pub mod stats;
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
pub use crate::error::ApiError;
use crate::ingest::Ingest;
use crate::metrics::Metrics;
use crate::store::Store;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub auth: Arc<Authenticator>,
    pub ingest: Arc<Ingest>,
    pub metrics: Arc<Metrics>,
    /// The web UI's session key and failed sign-ins.
    pub sessions: Arc<session::Sessions>,
    /// Wakes the server's purge after a deletion, so that deleted traces leave the disk soon.
    pub purge_signal: Arc<tokio::sync::Notify>,
}

/// The whole HTTP application: `otlp` (the receivers' routes, with their state) and the API.
/// A handler that panics is answered 500, which no client retries, and the server goes on.
pub fn app(state: AppState, otlp: Router) -> Router {
    otlp
        // OTLP bodies are read with their own limits (413 with an OTLP status body).
        .layer(DefaultBodyLimit::disable())
        .merge(api_routes(state.clone()))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            session::csrf_guard,
        ))
        .layer(axum::middleware::from_fn_with_state(state, control::track))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(
            panic_response,
        ))
}

/// A panic as a 500 with the API's error body; the panic is logged, its message not sent.
fn panic_response(panic: Box<dyn std::any::Any + Send + 'static>) -> axum::response::Response {
    crate::error::log_panic(panic.as_ref());
    ApiError::internal("the server failed on this request").into_response()
}

fn api_routes(state: AppState) -> Router {
    Router::new()
        .route("/api/v1/traces", get(query::list_traces))
        .route("/api/v1/export", get(export::export))
        .route(
            "/api/v1/project/settings",
            get(control::get_settings).put(control::put_settings),
        )
        .route("/api/v1/ingestion", get(control::ingestion))
        .route("/api/v1/stats", get(stats::stats))
        .route("/api/v1/insights", get(insights::insights))
        .route("/api/v1/spans", get(filters::list_spans))
        .route("/api/v1/filter/keys", get(filters::keys))
        .route("/api/v1/scores", post(scores::create))
        .route("/api/v1/scores/{score_id}", delete(scores::remove))
        .route("/api/v1/alerts", get(alerts::list).post(alerts::create))
        .route(
            "/api/v1/alerts/{alert_id}",
            get(alerts::get).put(alerts::replace).delete(alerts::remove),
        )
        .route("/api/v1/alerts/{alert_id}/events", get(alerts::events))
        .route("/api/v1/tokens", get(tokens::list).post(tokens::create))
        .route("/api/v1/tokens/{token_id}", delete(tokens::revoke))
        .route("/ui/login", post(session::login))
        .route("/ui/logout", post(session::logout))
        .route("/ui/session", get(session::current))
        .merge(ui::routes())
        .route("/metrics", get(control::metrics))
        .route(
            "/api/v1/traces/{trace_id}",
            get(query::get_trace).delete(delete::delete_trace),
        )
        .route("/api/v1/traces/delete", post(delete::delete_matching))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .fallback(not_found)
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
            axum::http::HeaderValue::from(crate::error::RETRY_AFTER_SECONDS),
        );
    }
    response
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such endpoint")
}

#[cfg(test)]
mod tests {
    use super::*;
    use tower::ServiceExt as _;

    async fn boom() -> &'static str {
        panic!("a bug")
    }

    #[tokio::test]
    async fn a_panicking_handler_is_answered_500_and_the_router_goes_on() {
        let router = Router::new()
            .route("/boom", get(boom))
            .route("/fine", get(|| async { "ok" }))
            .layer(tower_http::catch_panic::CatchPanicLayer::custom(
                panic_response,
            ));
        let request = |path: &str| {
            axum::http::Request::builder()
                .uri(path)
                .body(axum::body::Body::empty())
                .unwrap()
        };
        let response = router.clone().oneshot(request("/boom")).await.unwrap();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert!(!response.headers().contains_key(header::RETRY_AFTER));
        let body = axum::body::to_bytes(response.into_body(), 1024)
            .await
            .unwrap();
        assert!(
            !String::from_utf8_lossy(&body).contains("a bug"),
            "the panic is not sent"
        );
        let response = router.oneshot(request("/fine")).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }
}
