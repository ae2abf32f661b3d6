//! The web UI: static files embedded in the binary (`ui/`), served at `/` and `/ui/…` with a
//! Content-Security-Policy that allows no inline script or style. The page talks to the JSON
//! API with the session cookie (see `session`).

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::{ApiError, AppState};

/// No inline scripts or styles, nothing from elsewhere, no framing.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
    style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; \
    form-action 'self'; frame-ancestors 'none'";

/// Every embedded file: its name under `/ui/`, content type and bytes.
const ASSETS: &[(&str, &str, &str)] = &[
    ("app.js", JS, include_str!("../../ui/app.js")),
    ("api.js", JS, include_str!("../../ui/api.js")),
    ("dom.js", JS, include_str!("../../ui/dom.js")),
    ("charts.js", JS, include_str!("../../ui/charts.js")),
    ("traces.js", JS, include_str!("../../ui/traces.js")),
    ("trace.js", JS, include_str!("../../ui/trace.js")),
    ("dashboard.js", JS, include_str!("../../ui/dashboard.js")),
    ("insights.js", JS, include_str!("../../ui/insights.js")),
    ("ingestion.js", JS, include_str!("../../ui/ingestion.js")),
    ("settings.js", JS, include_str!("../../ui/settings.js")),
    ("alerts.js", JS, include_str!("../../ui/alerts.js")),
    (
        "style.css",
        "text/css; charset=utf-8",
        include_str!("../../ui/style.css"),
    ),
];

const JS: &str = "text/javascript; charset=utf-8";
const INDEX_HTML: &str = include_str!("../../ui/index.html");

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(index))
        .route("/ui/{file}", get(asset))
}

fn with_security_headers(content_type: &'static str, body: &'static str) -> Response {
    let mut response = (StatusCode::OK, body).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

async fn index() -> Response {
    with_security_headers("text/html; charset=utf-8", INDEX_HTML)
}

async fn asset(Path(file): Path<String>) -> Result<Response, ApiError> {
    ASSETS
        .iter()
        .find(|(name, _, _)| *name == file)
        .map(|(_, content_type, body)| with_security_headers(content_type, body))
        .ok_or_else(|| ApiError::not_found(format!("no UI file {file}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_hold_no_inline_script_or_style_and_no_html_sinks() {
        assert!(!INDEX_HTML.contains("<script>"));
        assert!(!INDEX_HTML.contains("style="));
        assert!(!INDEX_HTML.contains(" on"), "no inline event handlers");
        for (name, _, body) in ASSETS {
            for sink in [
                "innerHTML",
                "outerHTML",
                "insertAdjacentHTML",
                "document.write",
                "eval(",
            ] {
                assert!(!body.contains(sink), "{name} uses {sink}");
            }
        }
    }

    #[test]
    fn every_module_imported_is_embedded() {
        for (name, _, body) in ASSETS {
            for line in body.lines().filter(|line| line.contains("from \"./")) {
                let imported = line
                    .split("from \"./")
                    .nth(1)
                    .and_then(|rest| rest.split('"').next())
                    .unwrap_or_default();
                assert!(
                    ASSETS.iter().any(|(other, _, _)| *other == imported),
                    "{name} imports {imported}, which is not embedded"
                );
            }
        }
    }

    #[tokio::test]
    async fn assets_carry_the_content_security_policy() {
        let response = asset(Path("app.js".to_owned())).await.unwrap();
        assert_eq!(
            response.headers()[header::CONTENT_SECURITY_POLICY],
            CONTENT_SECURITY_POLICY
        );
        assert!(asset(Path("../Cargo.toml".to_owned())).await.is_err());
        let index = index().await;
        assert_eq!(index.headers()[header::X_FRAME_OPTIONS], "DENY");
    }
}
