//! Web UI sessions. Signing in with a read or admin token gives a signed session cookie
//! (`HttpOnly; SameSite=Strict`) and a CSRF token the page keeps in memory; the JSON API
//! accepts the cookie in place of an `Authorization` header, and every state-changing request
//! made with it must carry the CSRF token in `x-csrf-token`.
//!
//! No server keeps a session (see `signing`): the cookie names its token, project, role and end
//! under a MAC with the deployment's key, so every server of the store accepts it and a restart
//! keeps it. It works only while its token is active, so revoking the token ends it at each
//! server's next token reload. Signing out clears the cookie in the browser; a copy of the
//! cookie stays valid until it expires or its token is revoked (docs/ui.md says why).
//! Failed sign-ins are limited per client (`attempts`).

mod attempts;
mod signing;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};

use super::{ApiError, AppState};
use crate::auth::{Access, Authenticator, Principal, Role};
use crate::model::time::now_unix_nano;
use crate::store::{Store, StoreResult};
use signing::{SessionClaims, SessionKey};

pub const COOKIE_NAME: &str = "spanhouse_session";
pub const CSRF_HEADER: &str = "x-csrf-token";
/// A session ends this long after sign-in.
const SESSION_LIFETIME: Duration = Duration::from_secs(12 * 3600);

/// What this server needs for sessions: the deployment's signing key and the failed sign-ins
/// it has seen.
pub struct Sessions {
    key: SessionKey,
    attempts: attempts::SignInAttempts,
}

impl Sessions {
    /// Reads the deployment's session key, making it if this is the first server to need one.
    pub async fn load(store: &dyn Store) -> StoreResult<Self> {
        Ok(Self {
            key: SessionKey::load(store).await?,
            attempts: attempts::SignInAttempts::default(),
        })
    }

    /// Reads the key again (with the tokens), so that servers that raced to make the first key
    /// agree within a reload.
    pub async fn refresh(&self, store: &dyn Store) -> StoreResult<()> {
        self.key.refresh(store).await
    }

    /// The claims of a valid cookie and the caller they stand for: the cookie's MAC holds, it
    /// has not expired, and its token is still active with the project and role it names.
    fn open(&self, auth: &Authenticator, cookie: &str) -> Option<(SessionClaims, Arc<Principal>)> {
        let claims = self.key.verify(cookie, now_unix_seconds())?;
        let principal = auth.principal_of_token_id(&claims.token_id)?;
        let same =
            principal.project.id == claims.project_id && principal.role.as_str() == claims.role;
        same.then_some((claims, principal))
    }
}

fn now_unix_seconds() -> u64 {
    now_unix_nano() / 1_000_000_000
}

/// The session cookie's value in a request's cookies.
pub fn session_cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE_NAME)
        .map(|(_, value)| value)
        .filter(|value| !value.is_empty())
}

/// The caller of a request made with a session cookie.
pub fn authenticate_session(
    state: &AppState,
    cookie: &str,
    project_header: Option<&str>,
    access: Access,
) -> Result<Arc<Principal>, ApiError> {
    let (_, principal) = state
        .sessions
        .open(&state.auth, cookie)
        .ok_or_else(|| ApiError::new(StatusCode::UNAUTHORIZED, "session expired; sign in again"))?;
    Authenticator::check_project(&principal, project_header)?;
    Authenticator::check_role(&principal, access)?;
    Ok(principal)
}

/// Refuses a state-changing request made with a session cookie (and no `Authorization`
/// header) unless it carries the session's CSRF token. Sign-in opens a session, so it is exempt.
pub async fn csrf_guard(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let safe = matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    );
    let headers = request.headers();
    if safe || headers.contains_key(header::AUTHORIZATION) || request.uri().path() == "/ui/login" {
        return next.run(request).await;
    }
    if let Some(cookie) = session_cookie(headers)
        && let Some(claims) = state.sessions.key.verify(cookie, now_unix_seconds())
    {
        let expected = state.sessions.key.csrf_token(&claims);
        let sent = headers
            .get(CSRF_HEADER)
            .and_then(|value| value.to_str().ok());
        let matches = sent.is_some_and(|sent| same_secret(sent.as_bytes(), expected.as_bytes()));
        if !matches {
            return ApiError::new(
                StatusCode::FORBIDDEN,
                "missing or wrong x-csrf-token for this session",
            )
            .into_response();
        }
    }
    next.run(request).await
}

/// Compares two secrets in time that depends only on their lengths, so that a wrong CSRF token
/// tells an attacker nothing about how much of it was right.
fn same_secret(sent: &[u8], expected: &[u8]) -> bool {
    sent.len() == expected.len()
        && sent
            .iter()
            .zip(expected)
            .fold(0u8, |difference, (a, b)| difference | (a ^ b))
            == 0
}

/// Marks an answer that carries a secret (a token, a session cookie, a CSRF token) as one no
/// browser or proxy may keep.
pub(super) fn no_store(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

#[derive(Debug, Deserialize)]
pub struct LoginRequest {
    token: String,
}

/// What the page knows about its session.
#[derive(Debug, Serialize)]
pub struct SessionView {
    /// The id of the project signed in to.
    project_id: String,
    /// That project's name.
    project_name: String,
    /// `read` or `admin`: the role of the token signed in with.
    role: &'static str,
    /// What every state-changing request made with the cookie sends in `x-csrf-token`; the
    /// page keeps it in memory only.
    csrf_token: String,
}

fn session_view(principal: &Principal, csrf_token: String) -> SessionView {
    SessionView {
        project_id: principal.project.id.clone(),
        project_name: principal.project.name.clone(),
        role: principal.role.as_str(),
        csrf_token,
    }
}

/// Whether the browser reached us over HTTPS. spanhouse speaks plain HTTP, so this is what a
/// TLS proxy in front says in `X-Forwarded-Proto` or `Forwarded`. Believing a forged header
/// only adds `Secure`, which keeps the cookie off plain HTTP: no harm to anyone but the forger.
fn came_over_https(headers: &HeaderMap) -> bool {
    let header_text = |name: &str| {
        headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .map(str::to_ascii_lowercase)
    };
    let forwarded_proto = header_text("x-forwarded-proto")
        .is_some_and(|proto| proto.split(',').next().map(str::trim) == Some("https"));
    let forwarded = header_text("forwarded").is_some_and(|forwarded| {
        forwarded
            .split([';', ','])
            .any(|pair| pair.trim() == "proto=https")
    });
    forwarded_proto || forwarded
}

fn cookie(value: &str, max_age_seconds: u64, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    let text = format!(
        "{COOKIE_NAME}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age_seconds}{secure}"
    );
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// `POST /ui/login` with `{"token": "..."}` (JSON only, which a cross-site form cannot send).
/// A client that failed too often lately gets 429 before its token is even looked at.
pub async fn login(
    State(state): State<AppState>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let client: Option<IpAddr> = peer.map(|Extension(ConnectInfo(address))| address.ip());
    let now = Instant::now();
    if let Err(wait) = state.sessions.attempts.check(client, now) {
        let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        let error = ApiError {
            retry_after: Some(seconds.max(1)),
            ..ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                format!(
                    "too many failed sign-ins from this address; try again in {} s",
                    seconds.max(1)
                ),
            )
        };
        return no_store(error.into_response());
    }
    let answer = sign_in(&state, &headers, &body);
    if answer.is_err() {
        state.sessions.attempts.record_failure(client, now);
    }
    no_store(answer.into_response())
}

fn sign_in(state: &AppState, headers: &HeaderMap, body: &[u8]) -> Result<Response, ApiError> {
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("application/json"));
    if !is_json {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "send {\"token\": \"...\"} as application/json",
        ));
    }
    let request: LoginRequest = serde_json::from_slice(body)
        .map_err(|error| ApiError::bad_request(format!("invalid sign-in request: {error}")))?;
    let principal = state
        .auth
        .principal_of_secret(request.token.trim())
        .ok_or_else(|| ApiError::new(StatusCode::UNAUTHORIZED, "unknown or revoked token"))?;
    if principal.role == Role::Ingest {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "an ingest token cannot sign in; use a read or admin token",
        ));
    }
    let claims = SessionClaims::new(
        &principal.token_id,
        &principal.project.id,
        principal.role.as_str(),
        now_unix_seconds() + SESSION_LIFETIME.as_secs(),
    );
    let key = &state.sessions.key;
    let mut response = Json(session_view(&principal, key.csrf_token(&claims))).into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        cookie(
            &key.sign(&claims),
            SESSION_LIFETIME.as_secs(),
            came_over_https(headers),
        ),
    );
    Ok(response)
}

/// `GET /ui/session`: the signed-in project, role and CSRF token (after a page reload).
pub async fn current(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let session =
        session_cookie(&headers).and_then(|cookie| state.sessions.open(&state.auth, cookie));
    let answer = match session {
        Some((claims, principal)) => Json(session_view(
            &principal,
            state.sessions.key.csrf_token(&claims),
        ))
        .into_response(),
        None => ApiError::new(StatusCode::UNAUTHORIZED, "not signed in").into_response(),
    };
    no_store(answer)
}

/// `POST /ui/logout`: clears the cookie (CSRF-checked like every change). Nothing is kept on
/// the server to end: a copy of the cookie stays valid until it expires or its token is revoked.
pub async fn logout(headers: HeaderMap) -> Response {
    let mut response = StatusCode::NO_CONTENT.into_response();
    response
        .headers_mut()
        .insert(header::SET_COOKIE, cookie("", 0, came_over_https(&headers)));
    no_store(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_session_cookie() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("theme=dark; spanhouse_session=abc; x=y"),
        );
        assert_eq!(session_cookie(&headers), Some("abc"));
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("spanhouse_session="),
        );
        assert_eq!(session_cookie(&headers), None);
    }

    #[test]
    fn the_cookie_is_secure_when_a_proxy_says_https() {
        let mut headers = HeaderMap::new();
        assert!(!came_over_https(&headers));
        headers.insert("x-forwarded-proto", HeaderValue::from_static("HTTPS"));
        assert!(came_over_https(&headers));
        headers.insert("x-forwarded-proto", HeaderValue::from_static("http"));
        assert!(!came_over_https(&headers));
        headers.insert(
            "forwarded",
            HeaderValue::from_static("for=192.0.2.1;proto=https"),
        );
        assert!(came_over_https(&headers));
        let value = cookie("v", 10, true);
        assert!(value.to_str().unwrap().ends_with("Max-Age=10; Secure"));
        assert!(!cookie("v", 10, false).to_str().unwrap().contains("Secure"));
    }
}
