//! Web UI sessions. Signing in with a read or admin token gives a random session id in an
//! `HttpOnly; SameSite=Strict` cookie and a CSRF token the page keeps in memory; the JSON API
//! accepts the cookie in place of an `Authorization` header, and every state-changing request
//! made with it must carry the CSRF token in `x-csrf-token`.
//!
//! Sessions live in this server's memory (a restart signs everyone out) and keep only the hash
//! of the token they were opened with, so revoking the token ends them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use rand::RngCore as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use super::{ApiError, AppState};
use crate::auth::{Access, Authenticator, Principal, Role, hash_token};

pub const COOKIE_NAME: &str = "spanhouse_session";
pub const CSRF_HEADER: &str = "x-csrf-token";
/// A session ends this long after sign-in.
const SESSION_LIFETIME: Duration = Duration::from_secs(12 * 3600);
/// Most sessions kept at once; past it the oldest go first.
const MAX_SESSIONS: usize = 10_000;

struct Session {
    token_hash: [u8; 32],
    csrf_token: String,
    expires_at: Instant,
}

/// The open sessions, by the SHA-256 of their id.
#[derive(Default)]
pub struct Sessions {
    sessions: Mutex<HashMap<[u8; 32], Session>>,
}

fn random_hex(bytes: usize) -> String {
    let mut buffer = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut buffer);
    hex::encode(buffer)
}

fn session_key(session_id: &str) -> [u8; 32] {
    Sha256::digest(session_id.as_bytes()).into()
}

impl Sessions {
    /// Opens a session for a token; returns its id and CSRF token.
    pub fn open(&self, token_hash: [u8; 32]) -> (String, String) {
        let session_id = random_hex(32);
        let csrf_token = random_hex(32);
        let now = Instant::now();
        let mut sessions = self.lock();
        sessions.retain(|_, session| session.expires_at > now);
        if sessions.len() >= MAX_SESSIONS
            && let Some(oldest) = sessions
                .iter()
                .min_by_key(|(_, session)| session.expires_at)
                .map(|(key, _)| *key)
        {
            sessions.remove(&oldest);
        }
        sessions.insert(
            session_key(&session_id),
            Session {
                token_hash,
                csrf_token: csrf_token.clone(),
                expires_at: now + SESSION_LIFETIME,
            },
        );
        (session_id, csrf_token)
    }

    /// The token hash and CSRF token of a live session.
    fn find(&self, session_id: &str) -> Option<([u8; 32], String)> {
        let key = session_key(session_id);
        let mut sessions = self.lock();
        match sessions.get(&key) {
            Some(session) if session.expires_at > Instant::now() => {
                Some((session.token_hash, session.csrf_token.clone()))
            }
            Some(_) => {
                sessions.remove(&key);
                None
            }
            None => None,
        }
    }

    pub fn close(&self, session_id: &str) {
        self.lock().remove(&session_key(session_id));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], Session>> {
        self.sessions
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }
}

/// The session id in a request's cookies.
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
    session_id: &str,
    project_header: Option<&str>,
    access: Access,
) -> Result<Arc<Principal>, ApiError> {
    let expired = || ApiError::new(StatusCode::UNAUTHORIZED, "session expired; sign in again");
    let (token_hash, _) = state.sessions.find(session_id).ok_or_else(expired)?;
    let principal = state
        .auth
        .principal_of_hash(&token_hash)
        .ok_or_else(expired)?;
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
    if let Some(session_id) = session_cookie(headers)
        && let Some((_, csrf_token)) = state.sessions.find(session_id)
    {
        let sent = headers
            .get(CSRF_HEADER)
            .and_then(|value| value.to_str().ok());
        let matches = sent.is_some_and(|sent| same_secret(sent.as_bytes(), csrf_token.as_bytes()));
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

#[derive(Debug, Deserialize)]
pub struct LoginRequest {
    token: String,
}

/// What the page knows about its session.
#[derive(Debug, Serialize)]
pub struct SessionView {
    project_id: String,
    project_name: String,
    role: &'static str,
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

fn cookie(value: &str, max_age_seconds: u64) -> HeaderValue {
    let text = format!(
        "{COOKIE_NAME}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age_seconds}"
    );
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// `POST /ui/login` with `{"token": "..."}` (JSON only, which a cross-site form cannot send).
pub async fn login(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
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
    let request: LoginRequest = serde_json::from_slice(&body)
        .map_err(|error| ApiError::bad_request(format!("invalid sign-in request: {error}")))?;
    let secret = request.token.trim();
    let principal = state
        .auth
        .principal_of_secret(secret)
        .ok_or_else(|| ApiError::new(StatusCode::UNAUTHORIZED, "unknown or revoked token"))?;
    if principal.role == Role::Ingest {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "an ingest token cannot sign in; use a read or admin token",
        ));
    }
    let (session_id, csrf_token) = state.sessions.open(hash_token(secret));
    let mut response = Json(session_view(&principal, csrf_token)).into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        cookie(&session_id, SESSION_LIFETIME.as_secs()),
    );
    Ok(response)
}

/// `GET /ui/session`: the signed-in project, role and CSRF token (after a page reload).
pub async fn current(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<SessionView>, ApiError> {
    let no_session = || ApiError::new(StatusCode::UNAUTHORIZED, "not signed in");
    let session_id = session_cookie(&headers).ok_or_else(no_session)?;
    let (_, csrf_token) = state.sessions.find(session_id).ok_or_else(no_session)?;
    let principal = authenticate_session(&state, session_id, None, Access::Read)?;
    Ok(Json(session_view(&principal, csrf_token)))
}

/// `POST /ui/logout`: ends the session (CSRF-checked like every change) and clears the cookie.
pub async fn logout(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if let Some(session_id) = session_cookie(&headers) {
        state.sessions.close(session_id);
    }
    let mut response = StatusCode::NO_CONTENT.into_response();
    response
        .headers_mut()
        .insert(header::SET_COOKIE, cookie("", 0));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_open_find_and_close() {
        let sessions = Sessions::default();
        let (id, csrf) = sessions.open([7; 32]);
        assert_eq!(id.len(), 64);
        assert_eq!(sessions.find(&id), Some(([7; 32], csrf)));
        assert_eq!(sessions.find("other"), None);
        sessions.close(&id);
        assert_eq!(sessions.find(&id), None);
    }

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
}
