//! The JSON query API (SPEC §4), scoped to the token's project.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;

use super::filters::trace_filter_param;
use super::scores::{ScoreView, with_scores};
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
    filter: Option<String>,
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
    let trace_ids: Vec<TraceId> = page
        .traces
        .iter()
        .filter_map(|record| TraceId::parse_hex(&record.trace_id).ok())
        .collect();
    let scores = state
        .store
        .scores_of_traces(&principal.project.id, &trace_ids)
        .await?;
    Ok(Json(TraceListView {
        traces: with_scores(page.traces, &scores),
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
    let scores = state
        .store
        .scores_of_traces(&principal.project.id, &[trace_id])
        .await?;
    Ok(Json(TraceView {
        trace: with_scores(vec![trace], &scores).remove(0),
        spans: spans.iter().map(SpanView::from).collect(),
        scores: scores.iter().map(ScoreView::from).collect(),
    }))
}

pub(super) fn non_empty(value: Option<String>) -> Option<String> {
    value.filter(|value| !value.is_empty())
}

/// The latest time a query parameter may name: `i64::MAX` nanoseconds, 2262-04-11T23:47:16Z.
/// Both stores keep times as signed 64-bit nanoseconds (ClickHouse's `DateTime64(9)` ends there
/// too), and the headroom above it lets a window be widened to whole buckets without overflow.
pub(super) const MAX_TIMESTAMP_NANOS: u64 = i64::MAX as u64;

/// An optional RFC 3339 query parameter (`start`, `end`) in Unix nanoseconds; empty means absent.
/// Times before 1970 clamp to 0; times after [`MAX_TIMESTAMP_NANOS`] are refused.
pub(super) fn timestamp_param(name: &str, value: Option<String>) -> Result<Option<u64>, ApiError> {
    non_empty(value)
        .map(|text| {
            parse_rfc3339(&text)
                .filter(|unix_nano| *unix_nano <= MAX_TIMESTAMP_NANOS)
                .ok_or_else(|| {
                    ApiError::bad_request(format!(
                        "{name} must be an RFC 3339 timestamp like 2024-05-01T12:00:00Z, no later \
                         than 2262-04-11T23:47:16Z, got {text:?}"
                    ))
                })
        })
        .transpose()
}

fn trace_query(params: TraceListParams) -> Result<TraceQuery, ApiError> {
    let (start, end) = window_params(params.start, params.end)?;
    let limit = limit_param(params.limit)?;
    let status = status_param(params.status)?;
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
        filter: trace_filter_param(params.filter)?,
        oldest_first: false,
    })
}

/// The `status` parameter: `ok`, `error` or `unset`; empty means absent.
pub(super) fn status_param(value: Option<String>) -> Result<Option<String>, ApiError> {
    let status = non_empty(value);
    if let Some(status) = &status
        && !matches!(status.as_str(), "ok" | "error" | "unset")
    {
        return Err(ApiError::bad_request(format!(
            "status must be ok, error or unset, got {status:?}"
        )));
    }
    Ok(status)
}

/// The `limit` parameter: 1 to [`MAX_LIMIT`], [`DEFAULT_LIMIT`] when absent.
pub(super) fn limit_param(value: Option<String>) -> Result<usize, ApiError> {
    match non_empty(value) {
        None => Ok(DEFAULT_LIMIT),
        Some(text) => match text.parse::<usize>() {
            Ok(0) | Err(_) => Err(ApiError::bad_request(format!(
                "limit must be a whole number from 1 to {MAX_LIMIT}, got {text:?}"
            ))),
            Ok(limit) => Ok(limit.min(MAX_LIMIT)),
        },
    }
}

/// The window of `start` and `end`: by default the last 24 hours.
pub(super) fn window_params(
    start: Option<String>,
    end: Option<String>,
) -> Result<(u64, u64), ApiError> {
    let end = timestamp_param("end", end)?.unwrap_or_else(|| now_unix_nano() + 1);
    let start =
        timestamp_param("start", start)?.unwrap_or(end.saturating_sub(DEFAULT_WINDOW_NANOS));
    if start > end {
        return Err(ApiError::bad_request("start must not be after end"));
    }
    Ok((start, end))
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
        timestamp_unix_nano: timestamp
            .parse()
            .ok()
            .filter(|unix_nano| *unix_nano <= MAX_TIMESTAMP_NANOS)
            .ok_or_else(invalid)?,
        trace_id: TraceId::parse_hex(trace_id).map_err(|_| invalid())?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::StatusCode;
    use proptest::prelude::*;

    #[test]
    fn cursor_round_trips_and_rejects_garbage() {
        let cursor = TraceCursor {
            timestamp_unix_nano: 42,
            trace_id: TraceId([9; 16]),
        };
        assert_eq!(decode_cursor(&encode_cursor(&cursor)).unwrap(), cursor);
        assert!(decode_cursor("not-a-cursor").is_err());
        // A timestamp past what the stores hold would wrap to a negative number in SQL.
        let past_the_stores = URL_SAFE_NO_PAD.encode(format!("{}:{}", u64::MAX, "09".repeat(16)));
        assert!(decode_cursor(&past_the_stores).is_err());
    }

    #[test]
    fn timestamps_are_bounded_by_what_the_stores_hold() {
        let last = timestamp_param("end", Some("2262-04-11T23:47:16Z".into())).unwrap();
        assert!(last.is_some_and(|unix_nano| unix_nano <= MAX_TIMESTAMP_NANOS));
        for bad in [
            "2262-04-12T00:00:00Z",
            "9999-12-31T23:59:59Z",
            "garbage",
            "1714564800",
        ] {
            let error = timestamp_param("end", Some(bad.into())).unwrap_err();
            assert!(
                error.message.starts_with("end must be"),
                "{}",
                error.message
            );
        }
        assert_eq!(
            timestamp_param("start", Some("1960-01-01T00:00:00Z".into())).unwrap(),
            Some(0)
        );
    }

    #[test]
    fn malformed_list_parameters_are_refused() {
        for (name, value) in [
            ("limit", "-1"),
            ("limit", "0"),
            ("limit", "99999999999999999999"),
            ("cursor", "garbage"),
            ("status", "bad"),
            ("start", "garbage"),
        ] {
            let mut params = list_params(None, None, None, None, None);
            match name {
                "limit" => params.limit = Some(value.into()),
                "cursor" => params.cursor = Some(value.into()),
                "status" => params.status = Some(value.into()),
                _ => params.start = Some(value.into()),
            }
            let error = trace_query(params).unwrap_err();
            assert_eq!(error.status, StatusCode::BAD_REQUEST);
            assert!(error.message.contains(name), "{name}: {}", error.message);
        }
    }

    fn list_params(
        start: Option<String>,
        end: Option<String>,
        limit: Option<String>,
        cursor: Option<String>,
        status: Option<String>,
    ) -> TraceListParams {
        TraceListParams {
            start,
            end,
            limit,
            cursor,
            q: None,
            status,
            session_id: None,
            user_id: None,
            pipeline_id: None,
            model: None,
            filter: None,
        }
    }

    /// Text near RFC 3339, with years around the bounds (1970, 2262) and odd offsets and fractions.
    fn timestamp_text() -> impl Strategy<Value = String> {
        prop_oneof![
            any::<String>(),
            "(0000|1969|1970|2024|2262|2263|9999)-[01][0-9]-[0-3][0-9]T[0-2][0-9]:[0-5][0-9]:[0-6][0-9](\\.[0-9]{1,12})?(Z|z|[+-][0-2][0-9]:[0-5][0-9])",
            "[0-9]{1,21}",
        ]
    }

    fn optional(text: impl Strategy<Value = String>) -> impl Strategy<Value = Option<String>> {
        proptest::option::of(text)
    }

    proptest! {
        #![proptest_config(crate::test_support::bounded_cases())]

        /// Any list parameters give a query within the bounds or a 400 naming the parameter.
        #[test]
        fn list_parameters_are_a_bounded_query_or_a_named_error(
            start in optional(timestamp_text()),
            end in optional(timestamp_text()),
            limit in optional(prop_oneof![any::<String>(), "-?[0-9]{1,22}"]),
            cursor in optional(prop_oneof![any::<String>(), "[A-Za-z0-9_-]{0,80}"]),
            status in optional(prop_oneof![any::<String>(), "(ok|error|unset|OK)"]),
        ) {
            match trace_query(list_params(start, end, limit, cursor, status)) {
                Ok(query) => {
                    prop_assert!(query.start_unix_nano <= query.end_unix_nano);
                    prop_assert!((1..=MAX_LIMIT).contains(&query.limit));
                    if let Some(cursor) = query.cursor {
                        prop_assert!(cursor.timestamp_unix_nano <= MAX_TIMESTAMP_NANOS);
                    }
                }
                Err(error) => {
                    prop_assert_eq!(error.status, StatusCode::BAD_REQUEST);
                    let names_a_parameter = ["start", "end", "limit", "cursor", "status"]
                        .iter()
                        .any(|name| error.message.contains(name));
                    prop_assert!(names_a_parameter, "{}", error.message);
                }
            }
        }

        /// Every cursor this server hands out reads back as itself.
        #[test]
        fn cursors_round_trip(
            timestamp_unix_nano in 0..=MAX_TIMESTAMP_NANOS,
            trace_id in any::<[u8; 16]>().prop_filter("not all zero", |id| id != &[0; 16]),
        ) {
            let cursor = TraceCursor { timestamp_unix_nano, trace_id: TraceId(trace_id) };
            prop_assert_eq!(decode_cursor(&encode_cursor(&cursor)).unwrap(), cursor);
        }

        /// Base64 of arbitrary text (so decoding gets past the first step) is a cursor or a 400.
        #[test]
        fn decoded_garbage_is_a_cursor_or_an_error(text in any::<String>()) {
            if let Err(error) = decode_cursor(&URL_SAFE_NO_PAD.encode(&text)) {
                prop_assert_eq!(error.status, StatusCode::BAD_REQUEST);
            }
        }
    }
}
