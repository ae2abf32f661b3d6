//! Deletion (SPEC §9), admin only: `DELETE /api/v1/traces/{trace_id}` and `POST
//! /api/v1/traces/delete` with a filter of the trace context (an erasure request: `user_id ==
//! "u-17"`). From the answer on the traces are absent from every read; the server's purge, woken
//! here, removes what is left of them on disk soon after. Each deletion is logged with who
//! asked, what it selected and how many traces went, never their content.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};

use super::filters::trace_filter_param;
use super::query::{MAX_TIMESTAMP_NANOS, timestamp_param};
use super::{ApiError, AppState, authenticate};
use crate::auth::Access;
use crate::model::TraceId;
use crate::store::TraceSelection;

/// `POST /api/v1/traces/delete`'s body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeleteRequest {
    /// The trace context's filter language (SPEC §7); required: `"true"` selects every trace
    /// of the window.
    filter: Option<String>,
    /// RFC 3339; default: the earliest time (all time).
    start: Option<String>,
    /// RFC 3339, exclusive; default: the latest time a trace can have (all time).
    end: Option<String>,
}

/// `{"deleted": n}`
#[derive(Debug, Serialize)]
pub struct DeletedView {
    /// Traces deleted.
    pub deleted: u64,
}

/// `DELETE /api/v1/traces/{trace_id}`: 204, or 404 when the project has no such trace.
pub async fn delete_trace(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(trace_id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let principal = authenticate(&state, &headers, Access::Admin)?;
    let trace_id = TraceId::parse_hex(&trace_id)
        .map_err(|error| ApiError::bad_request(format!("trace_id {error}")))?;
    let deleted = state
        .store
        .delete_traces(&principal.project.id, &TraceSelection::Ids(vec![trace_id]))
        .await?;
    tracing::info!(
        project_id = %principal.project.id,
        project = %principal.project.name,
        token_id = %principal.token_id,
        selection = "by id",
        deleted,
        "deleted traces"
    );
    if deleted == 0 {
        return Err(ApiError::not_found(format!("trace {trace_id} not found")));
    }
    state.purge_signal.notify_one();
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /api/v1/traces/delete` `{"filter", "start"?, "end"?}` → `{"deleted": n}`.
pub async fn delete_matching(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<DeletedView>, ApiError> {
    let principal = authenticate(&state, &headers, Access::Admin)?;
    let request: DeleteRequest = serde_json::from_slice(&body).map_err(|error| {
        ApiError::bad_request(format!(
            "the body must be {{\"filter\": EXPR, \"start\"?, \"end\"?}}: {error}"
        ))
    })?;
    let (text, selection) = selection_of(request)?;
    let deleted = state
        .store
        .delete_traces(&principal.project.id, &selection)
        .await?;
    tracing::info!(
        project_id = %principal.project.id,
        project = %principal.project.name,
        token_id = %principal.token_id,
        filter = %text,
        deleted,
        "deleted traces"
    );
    if deleted > 0 {
        state.purge_signal.notify_one();
    }
    Ok(Json(DeletedView { deleted }))
}

/// The filter's text and the selection a request asks for: refused without a filter, with
/// one that does not parse, or with a window that ends before it starts.
fn selection_of(request: DeleteRequest) -> Result<(String, TraceSelection), ApiError> {
    let text = request
        .filter
        .filter(|text| !text.trim().is_empty())
        .ok_or_else(|| {
            ApiError::bad_request("filter is required (\"true\" deletes every trace of the window)")
        })?;
    let filter = trace_filter_param(Some(text.clone()))?;
    let start = timestamp_param("start", request.start)?.unwrap_or(0);
    let end = timestamp_param("end", request.end)?.unwrap_or(MAX_TIMESTAMP_NANOS);
    if start > end {
        return Err(ApiError::bad_request("start must not be after end"));
    }
    Ok((
        text,
        TraceSelection::Matching {
            start_unix_nano: start,
            end_unix_nano: end,
            filter,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(json: serde_json::Value) -> Result<(String, TraceSelection), ApiError> {
        selection_of(
            serde_json::from_value(json).map_err(|e| ApiError::bad_request(e.to_string()))?,
        )
    }

    #[test]
    fn a_request_needs_a_filter_that_parses_and_defaults_to_all_time() {
        for refused in [
            serde_json::json!({}),
            serde_json::json!({"filter": ""}),
            serde_json::json!({"filter": "user_id =="}),
            serde_json::json!({"filter": "true", "start": "yesterday"}),
            serde_json::json!({"filter": "true", "start": "2025-01-02T00:00:00Z",
                               "end": "2025-01-01T00:00:00Z"}),
        ] {
            let error = request(refused.clone()).unwrap_err();
            assert_eq!(error.status, StatusCode::BAD_REQUEST, "{refused}");
        }
        let (text, selection) =
            request(serde_json::json!({"filter": "user_id == \"u-17\""})).unwrap();
        assert_eq!(text, "user_id == \"u-17\"");
        let TraceSelection::Matching {
            start_unix_nano,
            end_unix_nano,
            filter,
        } = selection
        else {
            panic!("a filter selects by matching")
        };
        assert_eq!((start_unix_nano, end_unix_nano), (0, MAX_TIMESTAMP_NANOS));
        assert!(filter.is_some());
        assert!(request(serde_json::json!({"filter": "true"})).is_ok());
        let unknown =
            serde_json::from_value::<DeleteRequest>(serde_json::json!({"filtre": "true"}));
        assert!(unknown.is_err());
    }
}
