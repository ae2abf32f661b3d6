//! Token administration of the caller's own project (admin): list, create (the secret is in
//! the answer once), revoke.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::{ApiError, AppState, authenticate};
use crate::auth::{Access, Role, generate_token_id, generate_token_secret, hash_token};
use crate::model::time::format_rfc3339;
use crate::store::{NewToken, TokenInfo};

/// A token as listed: never its secret.
#[derive(Debug, Serialize)]
pub struct TokenView {
    /// The token's public id (`tok_…`), what `DELETE /api/v1/tokens/{id}` takes.
    id: String,
    /// `ingest`, `read` or `admin`.
    role: &'static str,
    /// The label given at creation.
    name: Option<String>,
    /// When it was created, RFC 3339 UTC with nanoseconds.
    created_at: String,
    /// When it was revoked, RFC 3339; `None` while it is active.
    revoked_at: Option<String>,
}

impl From<&TokenInfo> for TokenView {
    fn from(token: &TokenInfo) -> Self {
        Self {
            id: token.id.clone(),
            role: token.role.as_str(),
            name: token.name.clone(),
            created_at: format_rfc3339(token.created_at_unix_nano),
            revoked_at: token.revoked_at_unix_nano.map(format_rfc3339),
        }
    }
}

/// `GET /api/v1/tokens`.
#[derive(Debug, Serialize)]
pub struct TokenListView {
    /// The project's tokens, revoked ones included, oldest first.
    tokens: Vec<TokenView>,
}

/// `GET /api/v1/tokens`
pub async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<TokenListView>, ApiError> {
    let principal = authenticate(&state, &headers, Access::Admin)?;
    let tokens = state.store.list_tokens(&principal.project.id).await?;
    Ok(Json(TokenListView {
        tokens: tokens.iter().map(TokenView::from).collect(),
    }))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateRequest {
    role: String,
    name: Option<String>,
}

/// `POST /api/v1/tokens`: the new token, with its secret.
#[derive(Debug, Serialize)]
pub struct CreatedView {
    /// The new token's public id.
    id: String,
    /// `ingest`, `read` or `admin`.
    role: &'static str,
    /// The label, trimmed; `None` when none (or a blank one) was given.
    name: Option<String>,
    /// The secret, shown this once; only its hash is stored.
    token: String,
}

/// `POST /api/v1/tokens` with `{"role": "ingest|read|admin", "name": "..."}` → 201, marked
/// `no-store`: the answer holds the secret.
pub async fn create(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let principal = authenticate(&state, &headers, Access::Admin)?;
    let request: CreateRequest = serde_json::from_slice(&body)
        .map_err(|error| ApiError::bad_request(format!("invalid token request: {error}")))?;
    let role = Role::parse(&request.role).ok_or_else(|| {
        ApiError::bad_request(format!(
            "role must be ingest, read or admin, got {:?}",
            request.role
        ))
    })?;
    let name = request
        .name
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty());
    if name.as_ref().is_some_and(|name| name.chars().count() > 200) {
        return Err(ApiError::bad_request("name is longer than 200 characters"));
    }
    let secret = generate_token_secret();
    let id = generate_token_id();
    state
        .store
        .create_token(NewToken {
            id: id.clone(),
            project_id: principal.project.id.clone(),
            role,
            name: name.clone(),
            secret_hash: hash_token(&secret),
        })
        .await?;
    refresh_tokens(&state).await;
    let created = CreatedView {
        id,
        role: role.as_str(),
        name,
        token: secret,
    };
    Ok(super::session::no_store(
        (StatusCode::CREATED, Json(created)).into_response(),
    ))
}

/// `DELETE /api/v1/tokens/{id}` → 204; 404 for a token of another project, as for none.
pub async fn revoke(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(token_id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let principal = authenticate(&state, &headers, Access::Admin)?;
    let owned = state
        .store
        .list_tokens(&principal.project.id)
        .await?
        .iter()
        .any(|token| token.id == token_id);
    if !owned || !state.store.revoke_token(&token_id).await? {
        return Err(ApiError::not_found(format!("token {token_id} not found")));
    }
    refresh_tokens(&state).await;
    Ok(StatusCode::NO_CONTENT)
}

/// Applies a change on this server at once; other servers follow within seconds.
async fn refresh_tokens(state: &AppState) {
    if let Err(error) = state.auth.refresh(state.store.as_ref()).await {
        tracing::warn!(%error, "token change saved; this server applies it at its next reload");
    }
}
