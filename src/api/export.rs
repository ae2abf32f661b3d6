//! `GET /api/v1/export` (SPEC §9): every matching trace of the token's project, oldest first,
//! streamed in constant memory. The body is produced a page at a time as the client reads it
//! ([`Producer`]): a page of TraceRecords (`query_traces`, oldest first, so the filter
//! language and everything that hides a trace from lists apply), its spans, scores and content
//! events, rendered ([`super::export_render`]) and handed to the connection before the next
//! page is read.

use std::sync::Arc;

use async_trait::async_trait;
use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::export_render::{ExportFormat, render_page};
use super::export_walk::Walk;
use super::filters::trace_filter_param;
use super::query::{non_empty, status_param, timestamp_param};
use super::{ApiError, AppState, authenticate};
use crate::auth::Access;
use crate::model::score::Score;
use crate::model::time::now_unix_nano;
use crate::model::{ContentEvent, TraceId};
use crate::store::{Store, StoreResult, StoredSpan, TracePage, TraceQuery};

/// Traces read and rendered at once: what the server holds of an export at a time (with the
/// page's spans), and the size of one chunk of the body.
pub(super) const PAGE_TRACES: usize = 500;

/// The parameters of an export: SPEC §9's, and the quick filters of `GET /api/v1/traces`
/// (so that the traces page can download what it shows).
#[derive(Debug, Deserialize)]
pub struct ExportParams {
    format: Option<String>,
    start: Option<String>,
    end: Option<String>,
    filter: Option<String>,
    q: Option<String>,
    status: Option<String>,
    session_id: Option<String>,
    user_id: Option<String>,
    pipeline_id: Option<String>,
    model: Option<String>,
}

/// `GET /api/v1/export?format=jsonl|csv|otlp&start=&end=&filter=`
pub async fn export(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(params): Query<ExportParams>,
) -> Result<Response, ApiError> {
    let principal = authenticate(&state, &headers, Access::Read)?;
    let format = ExportFormat::parse(non_empty(params.format).as_deref())?;
    let (start, end) = export_window(params.start, params.end)?;
    let selection = TraceQuery {
        filter: trace_filter_param(params.filter)?,
        text: non_empty(params.q),
        status: status_param(params.status)?,
        session_id: non_empty(params.session_id),
        user_id: non_empty(params.user_id),
        pipeline_id: non_empty(params.pipeline_id),
        model: non_empty(params.model),
        ..TraceQuery::default()
    };
    let source = StoreSource {
        store: Arc::clone(&state.store),
        project_id: principal.project.id.clone(),
        format,
    };
    let mut producer = Producer::new(source, format, Walk::new(start, end), selection);
    // The first page is read before the answer: a failure of the store or of the filter (a
    // regular expression ClickHouse refuses) is still a status, not a cut body.
    let first = producer.next_chunk().await.transpose()?;
    let rest = futures_util::stream::unfold(producer, |mut producer| async move {
        let chunk = producer.next_chunk().await?;
        Some((
            chunk.map_err(|error| {
                tracing::warn!(error = %error.message, "export stopped: the store failed");
                std::io::Error::other(error.message)
            }),
            producer,
        ))
    });
    let body = futures_util::StreamExt::chain(
        futures_util::stream::iter(first.map(Ok::<Bytes, std::io::Error>)),
        rest,
    );
    let mut response = Body::from_stream(body).into_response();
    let response_headers = response.headers_mut();
    response_headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(format.content_type()),
    );
    response_headers.insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_static(format.content_disposition()),
    );
    response_headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

/// The window of `start` and `end`: by default everything, from the epoch to now.
fn export_window(start: Option<String>, end: Option<String>) -> Result<(u64, u64), ApiError> {
    let end = timestamp_param("end", end)?.unwrap_or_else(|| now_unix_nano() + 1);
    let start = timestamp_param("start", start)?.unwrap_or(0);
    if start > end {
        return Err(ApiError::bad_request("start must not be after end"));
    }
    Ok((start, end))
}

/// A page of the export: its traces, oldest first, and what the format shows of them.
#[derive(Debug, Default)]
pub(super) struct ExportPage {
    /// The page's traces, and where the next page starts.
    pub(super) page: TracePage,
    /// Their spans, each trace's by start time (jsonl and otlp).
    pub(super) spans: Vec<StoredSpan>,
    /// Their scores, each trace's oldest first.
    pub(super) scores: Vec<Score>,
    /// The content events of their spans (otlp only).
    pub(super) content: Vec<ContentEvent>,
}

/// Where pages come from: the store, or a test's list.
#[async_trait]
pub(super) trait PageSource: Send + 'static {
    async fn read(&self, query: &TraceQuery) -> StoreResult<ExportPage>;
}

struct StoreSource {
    store: Arc<dyn Store>,
    project_id: String,
    format: ExportFormat,
}

#[async_trait]
impl PageSource for StoreSource {
    async fn read(&self, query: &TraceQuery) -> StoreResult<ExportPage> {
        let page = self.store.query_traces(&self.project_id, query).await?;
        let trace_ids: Vec<TraceId> = page
            .traces
            .iter()
            .filter_map(|record| TraceId::parse_hex(&record.trace_id).ok())
            .collect();
        if trace_ids.is_empty() {
            return Ok(ExportPage {
                page,
                ..ExportPage::default()
            });
        }
        let project_id = self.project_id.as_str();
        let scores = self.store.scores_of_traces(project_id, &trace_ids).await?;
        let spans = match self.format {
            ExportFormat::Csv => Vec::new(),
            ExportFormat::Jsonl | ExportFormat::Otlp => {
                self.store.spans_of_traces(project_id, &trace_ids).await?
            }
        };
        let content = match self.format {
            ExportFormat::Otlp => {
                self.store
                    .content_events_of_traces(project_id, &trace_ids)
                    .await?
            }
            ExportFormat::Csv | ExportFormat::Jsonl => Vec::new(),
        };
        Ok(ExportPage {
            page,
            spans,
            scores,
            content,
        })
    }
}

/// Makes the body one page at a time: each call reads a page, renders it and lets it go, so
/// the export holds one page whatever the number of traces.
pub(super) struct Producer<S> {
    source: S,
    format: ExportFormat,
    walk: Walk,
    /// What to export: the filter and the quick filters; the walk sets the rest.
    selection: TraceQuery,
    /// Whether the format's header (CSV's) was written.
    started: bool,
}

impl<S: PageSource> Producer<S> {
    pub(super) fn new(source: S, format: ExportFormat, walk: Walk, selection: TraceQuery) -> Self {
        Self {
            source,
            format,
            walk,
            selection,
            started: false,
        }
    }

    /// The next chunk of the body; `None` once every matching trace was produced. Parts of
    /// the window without a match are read through until a page has traces or the window
    /// ends; a chunk is never empty (an export of nothing is CSV's header alone, or no chunk).
    pub(super) async fn next_chunk(&mut self) -> Option<Result<Bytes, ApiError>> {
        loop {
            let walked = self.walk.query()?;
            let query = TraceQuery {
                start_unix_nano: walked.start_unix_nano,
                end_unix_nano: walked.end_unix_nano,
                limit: walked.limit,
                cursor: walked.cursor,
                oldest_first: walked.oldest_first,
                ..self.selection.clone()
            };
            let page = match self.source.read(&query).await {
                Ok(page) => page,
                Err(error) => {
                    self.walk.stop();
                    return Some(Err(error.into()));
                }
            };
            self.walk.advance(&page.page);
            let header = !self.started;
            if page.page.traces.is_empty() && !(header && self.walk.is_done()) {
                continue;
            }
            self.started = true;
            let format = self.format;
            let rendered =
                tokio::task::spawn_blocking(move || render_page(format, page, header)).await;
            return match rendered {
                // Nothing matched and the format has no header.
                Ok(bytes) if bytes.is_empty() => None,
                Ok(bytes) => Some(Ok(Bytes::from(bytes))),
                Err(error) => Some(Err(ApiError::internal(format!(
                    "rendering failed: {error}"
                )))),
            };
        }
    }
}

#[cfg(test)]
#[path = "export_tests.rs"]
mod tests;
