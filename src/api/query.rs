//! The JSON query API (SPEC §4), scoped to the token's project.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;

use super::views::{SpanView, TraceListView, TraceView};
use super::{ApiError, AppState, authenticate};
use crate::auth::Access;
use crate::model::TraceId;
use crate::model::time::{now_unix_nano, parse_rfc3339};
use crate::store::{TraceCursor, TraceQuery};

const DEFAULT_WINDOW_NANOS: u64 = 24 * 3600 * 1_000_000_000;
const DEFAULT_LIMIT: usize = 50;
const MAX_LIMIT: usize = 1000;

#[derive(Debug, Deserialize)]
pub struct TraceListParams {
    start: Option<String>,
    end: Option<String>,
    limit: Option<String>,
    cursor: Option<String>,
    q: Option<String>,
    status: Option<String>,
    session_id: Option<String>,
    user_id: Option<String>,
    pipeline_id: Option<String>,
    model: Option<String>,
}

/// `GET /api/v1/traces`
pub async fn list_traces(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(params): Query<TraceListParams>,
) -> Result<Json<TraceListView>, ApiError> {
    let principal = authenticate(&state, &headers, Access::Read)?;
    let query = trace_query(params)?;
    let page = state
        .store
        .query_traces(&principal.project.id, &query)
        .await?;
    Ok(Json(TraceListView {
        traces: page.traces,
        next_cursor: page.next_cursor.map(|cursor| encode_cursor(&cursor)),
    }))
}

/// `GET /api/v1/traces/{trace_id}`
pub async fn get_trace(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(trace_id): Path<String>,
) -> Result<Json<TraceView>, ApiError> {
    let principal = authenticate(&state, &headers, Access::Read)?;
    let trace_id = TraceId::parse_hex(&trace_id)
        .map_err(|error| ApiError::bad_request(format!("trace_id {error}")))?;
    let (trace, spans) = state
        .store
        .get_trace(&principal.project.id, trace_id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("trace {trace_id} not found")))?;
    Ok(Json(TraceView {
        trace,
        spans: spans.iter().map(SpanView::from).collect(),
    }))
}

fn non_empty(value: Option<String>) -> Option<String> {
    value.filter(|value| !value.is_empty())
}

/// An optional RFC 3339 query parameter (`start`, `end`) in Unix nanoseconds; empty means absent.
pub(super) fn timestamp_param(name: &str, value: Option<String>) -> Result<Option<u64>, ApiError> {
    non_empty(value)
        .map(|text| {
            parse_rfc3339(&text).ok_or_else(|| {
                ApiError::bad_request(format!(
                    "{name} must be an RFC 3339 timestamp like 2024-05-01T12:00:00Z, got {text:?}"
                ))
            })
        })
        .transpose()
}

fn trace_query(params: TraceListParams) -> Result<TraceQuery, ApiError> {
    let end = timestamp_param("end", params.end)?.unwrap_or_else(|| now_unix_nano() + 1);
    let start =
        timestamp_param("start", params.start)?.unwrap_or(end.saturating_sub(DEFAULT_WINDOW_NANOS));
    if start > end {
        return Err(ApiError::bad_request("start must not be after end"));
    }
    let limit = match non_empty(params.limit) {
        None => DEFAULT_LIMIT,
        Some(text) => match text.parse::<usize>() {
            Ok(0) | Err(_) => {
                return Err(ApiError::bad_request(format!(
                    "limit must be a whole number from 1 to {MAX_LIMIT}, got {text:?}"
                )));
            }
            Ok(limit) => limit.min(MAX_LIMIT),
        },
    };
    let status = non_empty(params.status);
    if let Some(status) = &status
        && !matches!(status.as_str(), "ok" | "error" | "unset")
    {
        return Err(ApiError::bad_request(format!(
            "status must be ok, error or unset, got {status:?}"
        )));
    }
    Ok(TraceQuery {
        start_unix_nano: start,
        end_unix_nano: end,
        limit,
        cursor: non_empty(params.cursor)
            .map(|text| decode_cursor(&text))
            .transpose()?,
        text: non_empty(params.q),
        status,
        session_id: non_empty(params.session_id),
        user_id: non_empty(params.user_id),
        pipeline_id: non_empty(params.pipeline_id),
        model: non_empty(params.model),
    })
}

fn encode_cursor(cursor: &TraceCursor) -> String {
    URL_SAFE_NO_PAD.encode(format!(
        "{}:{}",
        cursor.timestamp_unix_nano,
        cursor.trace_id.to_hex()
    ))
}

fn decode_cursor(text: &str) -> Result<TraceCursor, ApiError> {
    let invalid = || ApiError::bad_request("cursor is not one this server returned");
    let decoded = URL_SAFE_NO_PAD.decode(text).map_err(|_| invalid())?;
    let decoded = String::from_utf8(decoded).map_err(|_| invalid())?;
    let (timestamp, trace_id) = decoded.split_once(':').ok_or_else(invalid)?;
    Ok(TraceCursor {
        timestamp_unix_nano: timestamp.parse().map_err(|_| invalid())?,
        trace_id: TraceId::parse_hex(trace_id).map_err(|_| invalid())?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_round_trips_and_rejects_garbage() {
        let cursor = TraceCursor {
            timestamp_unix_nano: 42,
            trace_id: TraceId([9; 16]),
        };
        assert_eq!(decode_cursor(&encode_cursor(&cursor)).unwrap(), cursor);
        assert!(decode_cursor("not-a-cursor").is_err());
    }
}
