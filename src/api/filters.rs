//! The filter language at the edge (SPEC §7): `filter=` parameters, `GET /api/v1/spans` and
//! the keys a project's filters can name.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

use super::query::{MAX_TIMESTAMP_NANOS, limit_param, non_empty, window_params};
use super::views::SpanView;
use super::{ApiError, AppState, authenticate};
use crate::auth::Access;
use crate::filter::ParseError;
use crate::filter::query::{
    SpanFilter, TraceFilter, parse_span_filter, parse_trace_filter, span_context_names,
    trace_context_names,
};
use crate::model::{SpanId, TraceId};
use crate::store::{SpanCursor, SpanQuery};

fn refused(text: &str, error: ParseError) -> ApiError {
    ApiError::bad_request(format!(
        "filter: column {}: {} (in {text:?})",
        error.column, error.message
    ))
}

/// A `filter` parameter of the trace context; empty means none.
pub(super) fn trace_filter_param(
    value: Option<String>,
) -> Result<Option<Arc<TraceFilter>>, ApiError> {
    non_empty(value)
        .map(|text| {
            parse_trace_filter(&text)
                .map(Arc::new)
                .map_err(|error| refused(&text, error))
        })
        .transpose()
}

fn span_filter_param(value: Option<String>) -> Result<Option<Arc<SpanFilter>>, ApiError> {
    non_empty(value)
        .map(|text| {
            parse_span_filter(&text)
                .map(Arc::new)
                .map_err(|error| refused(&text, error))
        })
        .transpose()
}

#[derive(Debug, Deserialize)]
pub struct SpanListParams {
    start: Option<String>,
    end: Option<String>,
    limit: Option<String>,
    cursor: Option<String>,
    filter: Option<String>,
}

/// `GET /api/v1/spans`: one page of spans.
#[derive(Serialize)]
pub struct SpanListView {
    /// Newest start first, each with its `trace_id`.
    spans: Vec<SpanView>,
    /// Where the next page starts, to pass back as `cursor`; `None` on the last page.
    next_cursor: Option<String>,
}

/// `GET /api/v1/spans?filter=&start=&end=&limit=&cursor=`
pub async fn list_spans(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(params): Query<SpanListParams>,
) -> Result<Json<SpanListView>, ApiError> {
    let principal = authenticate(&state, &headers, Access::Read)?;
    let (start, end) = window_params(params.start, params.end)?;
    let query = SpanQuery {
        start_unix_nano: start,
        end_unix_nano: end,
        limit: limit_param(params.limit)?,
        cursor: non_empty(params.cursor)
            .map(|text| decode_cursor(&text))
            .transpose()?,
        filter: span_filter_param(params.filter)?,
    };
    let page = state
        .store
        .query_spans(&principal.project.id, &query)
        .await?;
    Ok(Json(SpanListView {
        spans: page.spans.iter().map(SpanView::from).collect(),
        next_cursor: page.next_cursor.map(|cursor| encode_cursor(&cursor)),
    }))
}

/// `GET /api/v1/filter/keys`: what a project's filters can name, for suggestions.
#[derive(Serialize)]
pub struct FilterKeysView {
    /// The paths of trace filters (`GET /api/v1/traces`, `/stats`).
    trace_fields: Vec<&'static str>,
    /// The paths of span filters (`GET /api/v1/spans`).
    span_fields: Vec<&'static str>,
    /// Span attribute keys the project has sent, sorted.
    attributes: Vec<String>,
    /// Resource attribute keys the project has sent, sorted.
    resource_attributes: Vec<String>,
    /// Trace metadata keys, sorted.
    metadata: Vec<String>,
    /// Score names, sorted.
    scores: Vec<String>,
}

pub async fn keys(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<FilterKeysView>, ApiError> {
    let principal = authenticate(&state, &headers, Access::Read)?;
    let keys = state.store.filter_keys(&principal.project.id).await?;
    Ok(Json(FilterKeysView {
        trace_fields: trace_context_names(),
        span_fields: span_context_names(),
        attributes: keys.attributes,
        resource_attributes: keys.resource_attributes,
        metadata: keys.metadata,
        scores: keys.scores,
    }))
}

fn encode_cursor(cursor: &SpanCursor) -> String {
    URL_SAFE_NO_PAD.encode(format!(
        "{}:{}:{}",
        cursor.start_unix_nano,
        cursor.trace_id.to_hex(),
        cursor.span_id.to_hex()
    ))
}

fn decode_cursor(text: &str) -> Result<SpanCursor, ApiError> {
    let invalid = || ApiError::bad_request("cursor is not one this server returned");
    let decoded = URL_SAFE_NO_PAD.decode(text).map_err(|_| invalid())?;
    let decoded = String::from_utf8(decoded).map_err(|_| invalid())?;
    let mut parts = decoded.split(':');
    let (Some(start), Some(trace_id), Some(span_id), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(invalid());
    };
    Ok(SpanCursor {
        start_unix_nano: start
            .parse()
            .ok()
            .filter(|unix_nano| *unix_nano <= MAX_TIMESTAMP_NANOS)
            .ok_or_else(invalid)?,
        trace_id: TraceId::parse_hex(trace_id).map_err(|_| invalid())?,
        span_id: SpanId::parse_hex(span_id).map_err(|_| invalid())?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn cursors_round_trip() {
        let cursor = SpanCursor {
            start_unix_nano: 7,
            trace_id: TraceId([3; 16]),
            span_id: SpanId([4; 8]),
        };
        assert_eq!(decode_cursor(&encode_cursor(&cursor)).unwrap(), cursor);
    }

    #[test]
    fn a_bad_filter_names_its_column_and_text() {
        let error = trace_filter_param(Some("duration_ms > ".into())).unwrap_err();
        assert_eq!(error.status, axum::http::StatusCode::BAD_REQUEST);
        assert!(
            error.message.starts_with("filter: column 15: "),
            "{}",
            error.message
        );
        assert!(
            error.message.contains("\"duration_ms > \""),
            "{}",
            error.message
        );
    }

    proptest! {
        #[test]
        fn arbitrary_cursors_and_filters_are_refused_or_read(text in ".{0,120}") {
            let _ = decode_cursor(&text);
            let _ = span_filter_param(Some(text.clone()));
            let _ = trace_filter_param(Some(text));
        }
    }
}
