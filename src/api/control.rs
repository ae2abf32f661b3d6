//! Ingestion control and visibility: project settings, ingestion counters, Prometheus metrics.

use axum::Json;
use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::query::timestamp_param;
use super::{ApiError, AppState, authenticate};
use crate::auth::Access;
use crate::model::time::now_unix_nano;
use crate::settings::ProjectSettings;
use crate::stats::{BUCKET_NANOS, Bucket, Counts, into_buckets};

/// `GET /api/v1/project/settings` (read or admin).
pub async fn get_settings(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<ProjectSettings>, ApiError> {
    let principal = authenticate(&state, &headers, Access::Read)?;
    Ok(Json(state.store.get_settings(&principal.project.id).await?))
}

/// `PUT /api/v1/project/settings` (admin): validated, saved, applied here at once and by other
/// servers within seconds.
pub async fn put_settings(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Json<ProjectSettings>, ApiError> {
    let principal = authenticate(&state, &headers, Access::Admin)?;
    let settings: ProjectSettings = serde_json::from_slice(&body)
        .map_err(|error| ApiError::bad_request(format!("invalid settings: {error}")))?;
    settings
        .compile()
        .map_err(|error| ApiError::bad_request(error.to_string()))?;
    state
        .store
        .put_settings(&principal.project.id, &settings)
        .await?;
    if let Err(error) = state.ingest.rules.refresh(state.store.as_ref()).await {
        tracing::warn!(%error, "settings saved; this server applies them at its next reload");
    }
    Ok(Json(settings))
}

#[derive(Debug, Deserialize)]
pub struct IngestionParams {
    start: Option<String>,
    end: Option<String>,
    bucket: Option<String>,
}

/// `GET /api/v1/ingestion`: what happened to the project's spans over time.
#[derive(Debug, Serialize)]
pub struct IngestionView {
    /// Every bucket of the window, empty ones included, oldest first.
    buckets: Vec<Bucket>,
    /// The counters summed over the window.
    totals: Counts,
    /// Spans and content events accepted by this server and waiting for the store.
    buffered: u64,
    /// False when the stored counts could not be read (the store is down): `buckets` and
    /// `totals` then hold only the counts this server has not saved yet.
    counts_complete: bool,
    /// Why the counts are incomplete, for a person; absent when they are complete.
    #[serde(skip_serializing_if = "Option::is_none")]
    warning: Option<String>,
}

/// `GET /api/v1/ingestion?start=&end=&bucket=60s`: the project's counters over time.
pub async fn ingestion(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(params): Query<IngestionParams>,
) -> Result<Json<IngestionView>, ApiError> {
    let principal = authenticate(&state, &headers, Access::Read)?;
    let width = parse_bucket(params.bucket.as_deref())?;
    let end = timestamp_param("end", params.end)?.unwrap_or_else(now_unix_nano);
    let start =
        timestamp_param("start", params.start)?.unwrap_or(end.saturating_sub(3600 * 1_000_000_000));
    if start >= end {
        return Err(ApiError::bad_request("start must be before end"));
    }
    if (end - start) / width > 10_000 {
        return Err(ApiError::bad_request(
            "more than 10000 buckets; use a larger bucket",
        ));
    }
    // Buckets start on whole multiples of their width; the last one holds `end`.
    let aligned_start = start / width * width;
    let aligned_end = end.div_ceil(width) * width;
    let project_id = &principal.project.id;
    // `buffered` needs only this server (its queue and spool), so it is answered even while
    // the store is down, the moment it matters most.
    let (rows, unread) = state
        .ingest
        .stats
        .counts_or_held(state.store.as_ref(), project_id, aligned_start, aligned_end)
        .await;
    if let Some(error) = &unread {
        tracing::warn!(%error, project_id, "ingestion counts answered without the stored ones");
    }
    let (buckets, totals) = into_buckets(&rows, aligned_start, aligned_end, width);
    Ok(Json(IngestionView {
        buckets,
        totals,
        buffered: state.ingest.pipeline.buffered_for(project_id)
            + state.store.buffered(project_id).await,
        counts_complete: unread.is_none(),
        warning: unread.map(|_| {
            "the stored counts could not be read (is the store down?): the counts show only \
             what this server has not saved yet; buffered is complete"
                .to_owned()
        }),
    }))
}

/// The widest bucket: a year and a day. No window the API answers needs a wider one, and the
/// bound keeps `number × unit` in nanoseconds far from overflowing `u64`.
pub(super) const MAX_BUCKET_NANOS: u64 = 366 * 86_400 * 1_000_000_000;

/// `60s`, `5m`, `1h`, `1d`: a whole number of minutes, at most [`MAX_BUCKET_NANOS`].
pub(super) fn parse_bucket(text: Option<&str>) -> Result<u64, ApiError> {
    let Some(text) = text.filter(|text| !text.is_empty()) else {
        return Ok(BUCKET_NANOS);
    };
    let invalid = || {
        ApiError::bad_request(format!(
            "bucket must be a whole number of minutes from 1m to 366d, like 60s, 5m, 1h or 1d, \
             got {text:?}"
        ))
    };
    // The unit is the last character, not the last byte: `5é` ends inside a character.
    let Some((unit_start, unit)) = text.char_indices().next_back() else {
        return Err(invalid());
    };
    let number: u64 = text[..unit_start].parse().map_err(|_| invalid())?;
    let seconds_per_unit = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3600,
        'd' => 86_400,
        _ => return Err(invalid()),
    };
    let nanos = number
        .checked_mul(seconds_per_unit)
        .and_then(|seconds| seconds.checked_mul(1_000_000_000))
        .filter(|nanos| (1..=MAX_BUCKET_NANOS).contains(nanos) && nanos % BUCKET_NANOS == 0)
        .ok_or_else(invalid)?;
    Ok(nanos)
}

/// `GET /metrics`: Prometheus text format. Without a token, the server's own figures only;
/// with a read or admin token (or a UI session), also that project's ingestion counters and
/// business figures (`metrics::project`).
pub async fn metrics(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let signed_in = headers.contains_key(header::AUTHORIZATION)
        || super::session::session_cookie(&headers).is_some();
    let principal = match signed_in.then(|| authenticate(&state, &headers, Access::Read)) {
        Some(Err(error)) => return error.into_response(),
        Some(Ok(principal)) => Some(principal),
        None => None,
    };
    let project = principal.as_ref().map(|principal| {
        (
            principal.project.id.as_str(),
            principal.project.name.as_str(),
        )
    });
    let mut text = state.metrics.render(
        &state.ingest.stats,
        state.ingest.pipeline.buffered(),
        project,
    );
    if let Some((project_id, project_name)) = project {
        let figures = state
            .metrics
            .project_figures
            .figures(state.store.as_ref(), project_id, now_unix_nano())
            .await;
        match figures {
            Ok(figures) => text.push_str(&crate::metrics::project::render(
                project_id,
                project_name,
                &figures,
            )),
            Err(error) => {
                tracing::warn!(%error, project_id, "the project's figures are left out of /metrics")
            }
        }
    }
    (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

/// Measures every request by its route and status.
pub async fn track(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |path| path.as_str().to_owned());
    let started = std::time::Instant::now();
    let response = next.run(request).await;
    state
        .metrics
        .observe_request(&route, response.status().as_u16(), started.elapsed());
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn bucket_widths() {
        assert_eq!(parse_bucket(None).unwrap(), 60_000_000_000);
        assert_eq!(parse_bucket(Some("5m")).unwrap(), 300_000_000_000);
        assert_eq!(parse_bucket(Some("1h")).unwrap(), 3_600_000_000_000);
        assert_eq!(parse_bucket(Some("366d")).unwrap(), MAX_BUCKET_NANOS);
        for bad in [
            "30s",
            "0m",
            "m",
            "5x",
            "-1m",
            "5é",
            "é",
            "367d",
            "2161727821137838080s",
            "18446744073709551615d",
        ] {
            let error = parse_bucket(Some(bad)).unwrap_err();
            assert_eq!(error.status, StatusCode::BAD_REQUEST, "{bad}");
            assert!(error.message.contains("bucket"), "{bad}: {}", error.message);
        }
    }

    proptest! {
        #![proptest_config(crate::test_support::bounded_cases())]

        /// Any text is a width within the bounds or a 400 naming `bucket`; never a panic.
        #[test]
        fn any_bucket_text_is_a_bounded_width_or_an_error(text in any::<String>()) {
            check_bucket(&text)?;
        }

        /// Texts near the grammar (digits, a unit, sometimes a multi-byte character) reach the
        /// arithmetic that random text rarely does.
        #[test]
        fn bucket_like_text_is_a_bounded_width_or_an_error(
            text in "[+-]?[0-9]{0,22}(s|m|h|d|é|ß|€|\\PC)?",
        ) {
            check_bucket(&text)?;
        }
    }

    fn check_bucket(text: &str) -> Result<(), TestCaseError> {
        match parse_bucket(Some(text)) {
            Ok(width) => {
                prop_assert!((BUCKET_NANOS..=MAX_BUCKET_NANOS).contains(&width));
                prop_assert_eq!(width % BUCKET_NANOS, 0);
            }
            Err(error) => {
                prop_assert_eq!(error.status, StatusCode::BAD_REQUEST);
                prop_assert!(error.message.contains("bucket"), "{}", error.message);
            }
        }
        Ok(())
    }
}
