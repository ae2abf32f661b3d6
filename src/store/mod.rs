//! The storage trait: everything spanhouse keeps goes through it, and nothing above it knows
//! which backend runs. Each backend lives in its own module.

pub mod clickhouse;
pub mod codec;
pub mod content_events;
pub mod insight_traces;
pub mod rollup;
pub mod sketch;
pub mod sqlite;
pub mod terms;
pub mod trace_stats;

use async_trait::async_trait;

use std::sync::Arc;

use crate::filter::query::{SpanFilter, TraceFilter};
use crate::model::alert::{AlertEvent, AlertRule, AlertRuleState};
use crate::model::project::ProjectSettings;
pub use crate::model::project::{ActiveToken, NewToken, Project, TokenInfo};
use crate::model::score::Score;
use crate::model::{
    ContentEvent, NormalizedSpan, Span, SpanId, SpanSemantics, TraceId, TraceRecord,
};
pub use trace_stats::{StatsQuery, TraceStats};

/// The spans of one project that one write stores.
#[derive(Debug, Clone)]
pub struct SpanBatch {
    pub project_id: String,
    pub spans: Vec<NormalizedSpan>,
    /// What [`Store::prepare_traces`] computed ahead of the write, from parts of `spans` (the
    /// receiver may cut a request into parts, one per core; a trace may be in several).
    pub prepared: Vec<PreparedTraces>,
}

/// A store's own work on the traces of one request, done on the receiver's thread (see
/// [`Store::prepare_traces`]); one variant per backend that does such work.
#[derive(Debug, Clone)]
pub enum PreparedTraces {
    /// The embedded store's trace rows, computed and encoded ahead of its single writer.
    Sqlite(std::sync::Arc<sqlite::PreparedRows>),
}

/// The GenAI content events of one project that one write stores.
#[derive(Debug, Clone)]
pub struct ContentEventBatch {
    pub project_id: String,
    pub events: Vec<ContentEvent>,
}

/// One ingestion counter of one project in one time bucket, or an amount to add to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CountDelta {
    pub project_id: String,
    pub bucket_start_unix_nano: u64,
    /// `received`, `accepted`, `filtered`, `rejected`, `rate_limited` or `truncated`.
    pub counter: String,
    /// The filter rule or rejection reason; empty for the plain counters.
    pub label: String,
    pub value: u64,
}

/// Where a page of traces ends: the next page starts after this trace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceCursor {
    pub timestamp_unix_nano: u64,
    pub trace_id: TraceId,
}

/// A search over a project's TraceRecords, newest first (oldest first with `oldest_first`).
#[derive(Debug, Clone, Default)]
pub struct TraceQuery {
    /// Inclusive start of the window on the trace timestamp.
    pub start_unix_nano: u64,
    /// Exclusive end of the window.
    pub end_unix_nano: u64,
    pub limit: usize,
    pub cursor: Option<TraceCursor>,
    /// Case-insensitive substring of input or output.
    pub text: Option<String>,
    pub status: Option<String>,
    pub session_id: Option<String>,
    pub user_id: Option<String>,
    pub pipeline_id: Option<String>,
    pub model: Option<String>,
    /// The filter language's condition (SPEC §7), with the parameters above.
    pub filter: Option<Arc<TraceFilter>>,
    /// Oldest first (by timestamp, then trace id, both ascending), as export reads: the page
    /// then starts after `cursor` in that order. Newest first when `false`, as lists read.
    pub oldest_first: bool,
}

#[derive(Debug, Clone, Default)]
pub struct TracePage {
    pub traces: Vec<TraceRecord>,
    /// Set when more traces match beyond this page.
    pub next_cursor: Option<TraceCursor>,
}

/// Where a page of spans ends: the next page starts after this span.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpanCursor {
    pub start_unix_nano: u64,
    pub trace_id: TraceId,
    pub span_id: SpanId,
}

/// A search over a project's stored spans (`GET /api/v1/spans`), newest start first.
#[derive(Debug, Clone, Default)]
pub struct SpanQuery {
    /// Inclusive start of the window on the span's start time.
    pub start_unix_nano: u64,
    /// Exclusive end of the window.
    pub end_unix_nano: u64,
    pub limit: usize,
    pub cursor: Option<SpanCursor>,
    pub filter: Option<Arc<SpanFilter>>,
}

#[derive(Debug, Clone, Default)]
pub struct SpanPage {
    /// Newest start first (ties: trace id, then span id, descending).
    pub spans: Vec<StoredSpan>,
    /// Set when more spans match beyond this page.
    pub next_cursor: Option<SpanCursor>,
}

/// What a project's filters can name, for suggestions: keys seen in its terms
/// (`store::terms`) and the names of its scores, each sorted, at most [`MAX_FILTER_KEYS`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FilterKeys {
    pub attributes: Vec<String>,
    pub resource_attributes: Vec<String>,
    pub metadata: Vec<String>,
    pub scores: Vec<String>,
}

/// Most keys of each kind [`SpanStore::filter_keys`] answers.
pub const MAX_FILTER_KEYS: usize = 1000;

/// Which traces of a project a deletion removes.
#[derive(Debug, Clone)]
pub enum TraceSelection {
    /// These traces (ids the project does not have are ignored).
    Ids(Vec<TraceId>),
    /// The traces with a timestamp in `[start, end)` that the filter matches; every trace of
    /// the window without a filter (retention deletes `[0, cutoff)` so).
    Matching {
        start_unix_nano: u64,
        end_unix_nano: u64,
        filter: Option<Arc<TraceFilter>>,
    },
}

/// What one [`SpanStore::purge`] removed from disk.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PurgeReport {
    /// Traces whose rows were physically removed.
    pub traces: u64,
    /// Spans physically removed.
    pub spans: u64,
}

/// A stored span as read back.
#[derive(Debug, Clone)]
pub struct StoredSpan {
    pub span: Span,
    pub semantics: SpanSemantics,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The backend failed in a way a retry may fix (busy, disk full, connection lost).
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// The request conflicts with what is stored (a project name taken, say).
    #[error("{0}")]
    Conflict(String),
    #[error("{0} not found")]
    NotFound(String),
    /// Stored data could not be read back; a bug or a damaged store.
    #[error("stored data is damaged: {0}")]
    Corrupt(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// Everything spanhouse stores: the control plane, the alert rules and the spans.
/// Implementations must be safe to share between tasks; every backend implements each part.
pub trait Store: ControlPlane + AlertStore + SpanStore {}

impl<T: ControlPlane + AlertStore + SpanStore> Store for T {}

/// A lease granted by [`ControlPlane::acquire_lease`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseGrant {
    /// How long from the answer on the holder may act. No other holder is granted the lease
    /// before that has passed; the holder asks again before it does to keep it.
    pub valid_for: std::time::Duration,
}

/// Projects, tokens, the deployment's secrets, project settings and ingestion counters: small,
/// shared by every server of a deployment.
#[async_trait]
pub trait ControlPlane: Send + Sync + 'static {
    async fn create_project(&self, name: &str) -> StoreResult<Project>;

    async fn list_projects(&self) -> StoreResult<Vec<Project>>;

    /// Finds a project by id or by name.
    async fn find_project(&self, id_or_name: &str) -> StoreResult<Option<Project>>;

    async fn create_token(&self, token: NewToken) -> StoreResult<()>;

    async fn list_tokens(&self, project_id: &str) -> StoreResult<Vec<TokenInfo>>;

    /// Marks a token revoked; `false` when no such token exists.
    async fn revoke_token(&self, token_id: &str) -> StoreResult<bool>;

    async fn active_tokens(&self) -> StoreResult<Vec<ActiveToken>>;

    /// The deployment's secret called `name`, shared by every server of this store: the one
    /// stored, else `candidate`, stored now (callers pass fresh random bytes). Servers asking
    /// at once end with one value: SQLite keeps the first insert; ClickHouse, which has no
    /// unique keys, keeps every insert and answers the earliest, so a server that raced another
    /// gets the shared value when it asks again.
    async fn deployment_secret(&self, name: &str, candidate: &[u8]) -> StoreResult<Vec<u8>>;

    /// A project's ingestion settings; the defaults when none were saved.
    async fn get_settings(&self, project_id: &str) -> StoreResult<ProjectSettings>;

    async fn put_settings(&self, project_id: &str, settings: &ProjectSettings) -> StoreResult<()>;

    /// The settings of every project that saved some.
    async fn all_settings(&self) -> StoreResult<Vec<(String, ProjectSettings)>>;

    /// Adds to the persisted ingestion counters.
    async fn add_ingestion_counts(&self, deltas: Vec<CountDelta>) -> StoreResult<()>;

    /// The persisted counters of a project with bucket starts in `[start, end)`.
    async fn ingestion_counts(
        &self,
        project_id: &str,
        start_unix_nano: u64,
        end_unix_nano: u64,
    ) -> StoreResult<Vec<CountDelta>>;

    /// Takes or keeps the lease `name` for `holder` (a server's random id), so that one server
    /// of a deployment does a piece of work (alert evaluation): `Some` while `holder` holds it,
    /// `None` while another does. A holder that keeps asking within `ttl` keeps it; one that
    /// stops (it died) loses it within `ttl` or two. SQLite keeps a row of holder and expiry,
    /// changed in a transaction; ClickHouse, without transactions or unique keys, elects the
    /// earliest claim of each lease slot (see `store::clickhouse::alerts`).
    async fn acquire_lease(
        &self,
        name: &str,
        holder: &str,
        ttl: std::time::Duration,
    ) -> StoreResult<Option<LeaseGrant>>;
}

/// Alert rules, their states and the events of their changes (SPEC §10): small, shared by
/// every server of a deployment. Only the holder of the alerts lease writes states and events.
#[async_trait]
pub trait AlertStore: Send + Sync + 'static {
    /// Stores a rule, replacing the project's rule of the same id.
    async fn put_alert_rule(&self, rule: &AlertRule) -> StoreResult<()>;

    /// A project's rule by id; `None` when it has none of that id.
    async fn alert_rule(&self, project_id: &str, rule_id: &str) -> StoreResult<Option<AlertRule>>;

    /// A project's rules, oldest first; every project's with `None`.
    async fn alert_rules(&self, project_id: Option<&str>) -> StoreResult<Vec<AlertRule>>;

    /// Deletes a rule, its state and its events; `false` when the project has none of that id.
    async fn delete_alert_rule(&self, project_id: &str, rule_id: &str) -> StoreResult<bool>;

    /// The states of a project's rules (every project's with `None`). A rule without one has
    /// never changed state: it is ok.
    async fn alert_states(&self, project_id: Option<&str>) -> StoreResult<Vec<AlertRuleState>>;

    /// Records a change of state: the rule's new state and the event that notifies it. The
    /// state's `transitions` is one more than the stored one's.
    async fn record_alert_change(
        &self,
        state: &AlertRuleState,
        event: &AlertEvent,
    ) -> StoreResult<()>;

    /// Records the progress of an event's delivery, replacing the stored event of its id
    /// (attempts only grow; a finished event stays finished).
    async fn update_alert_event(&self, event: &AlertEvent) -> StoreResult<()>;

    /// A rule's events, newest first, at most `limit`.
    async fn alert_events(
        &self,
        project_id: &str,
        rule_id: &str,
        limit: usize,
    ) -> StoreResult<Vec<AlertEvent>>;

    /// The events of every project whose delivery has not finished, at or after `since`: what
    /// a server that takes the alerts lease over goes on delivering.
    async fn unfinished_alert_events(&self, since_unix_nano: u64) -> StoreResult<Vec<AlertEvent>>;
}

/// Spans, their content events and the reads of TraceRecords: the data plane.
#[async_trait]
pub trait SpanStore: Send + Sync + 'static {
    /// Checks that the store answers (for `/readyz`).
    async fn ping(&self) -> StoreResult<()>;

    /// Spans and content events of a project acknowledged but not yet in their final store
    /// (a backend that spools before its final store counts the spool here).
    async fn buffered(&self, _project_id: &str) -> u64 {
        0
    }

    /// The same, over all projects.
    async fn buffered_total(&self) -> u64 {
        0
    }

    /// Files of a backend's spool that could not be decoded and were set aside for an operator
    /// (never delivered): nonzero means acknowledged spans wait for a person, not for the store.
    fn corrupt_spool_files(&self) -> u64 {
        0
    }

    /// Called at graceful shutdown, after the last write: moves what is buffered to the final
    /// store if that can be done in `within`. What cannot stays buffered durably.
    async fn flush(&self, _within: std::time::Duration) {}

    /// Deletes the GenAI content events whose span has not arrived, of events older than
    /// `older_than_unix_nano`: a span that never comes must not keep its content forever.
    /// Returns how many were deleted, where the backend can tell (ClickHouse deletes in the
    /// background and answers 0).
    async fn sweep_orphan_content(&self, older_than_unix_nano: u64) -> StoreResult<u64>;

    /// Stores spans durably, ignoring spans already stored (same project, trace and span id),
    /// and brings the TraceRecords of the touched traces up to date. Returns once durable.
    async fn write_spans(&self, batches: Vec<SpanBatch>) -> StoreResult<()>;

    /// Sets each span's `NormalizedSpan::encoded_body` to the body as this store will write
    /// it, encoded on the receivers' threads (many) rather than by the store's writer (one);
    /// the spans go to [`Store::write_spans`] so. Leaving it `None`: the store encodes at
    /// write time.
    fn encode_spans(&self, _spans: &mut [NormalizedSpan]) {}

    /// Work on the traces of one request's spans that the store would otherwise do in its
    /// writer, done on the receivers' threads; it goes to [`Store::write_spans`] as
    /// `SpanBatch::prepared`, and the store uses it only where it still holds. `None`: nothing.
    fn prepare_traces(
        &self,
        _project_id: &str,
        _spans: &[NormalizedSpan],
    ) -> Option<PreparedTraces> {
        None
    }

    /// Stores GenAI content events durably (a retried event is stored once) and attaches them
    /// to their spans: a stored span is normalized again with all its content events and its
    /// trace's record recomputed; a span that arrives later is normalized with them then.
    async fn write_content_events(&self, batches: Vec<ContentEventBatch>) -> StoreResult<()>;

    async fn query_traces(&self, project_id: &str, query: &TraceQuery) -> StoreResult<TracePage>;

    /// A trace's record and spans ordered by start time, or `None` when the project has no such
    /// trace.
    async fn get_trace(
        &self,
        project_id: &str,
        trace_id: TraceId,
    ) -> StoreResult<Option<(TraceRecord, Vec<StoredSpan>)>>;

    /// Spans of the project with a start in the window that match the query's filter, newest
    /// start first.
    async fn query_spans(&self, project_id: &str, query: &SpanQuery) -> StoreResult<SpanPage>;

    /// The keys a project's filters can name (for suggestions).
    async fn filter_keys(&self, project_id: &str) -> StoreResult<FilterKeys>;

    /// The dashboard's figures of a project's traces with a timestamp in the window: per bucket,
    /// in total and per model (see [`trace_stats`]); only of the traces its filter matches,
    /// when it has one.
    async fn trace_stats(&self, project_id: &str, query: &StatsQuery) -> StoreResult<TraceStats>;

    /// The traces of `[start, end)` that the filter matches (every trace of the window
    /// without one), with what insights measure and segment them by, sent to `sink` in chunks
    /// of at most [`insight_traces::CHUNK`], in any order. Returns when all are sent, or
    /// early when the receiver is gone. `sample` above 1 reads only about one trace in
    /// `sample`, chosen by a key that has nothing to do with what the trace measures.
    async fn insight_traces(
        &self,
        project_id: &str,
        window: (u64, u64),
        filter: Option<Arc<TraceFilter>>,
        sample: u64,
        sink: insight_traces::InsightSink,
    ) -> StoreResult<()>;

    /// Stores scores, replacing those of the same ids: all of them or, on an error, none.
    async fn put_scores(&self, project_id: &str, scores: Vec<Score>) -> StoreResult<()>;

    /// Deletes a score of the project; `false` when it has none of that id.
    async fn delete_score(&self, project_id: &str, id: &str) -> StoreResult<bool>;

    /// The numeric and boolean (1 or 0) scores of the project's traces whose timestamp lies
    /// in `[start, end)`: (the trace's timestamp, the score's name, its value), any order.
    async fn score_values(
        &self,
        project_id: &str,
        start_unix_nano: u64,
        end_unix_nano: u64,
    ) -> StoreResult<Vec<(u64, String, f64)>>;

    /// [`SpanStore::score_values`] of the traces of the query's window that its filter
    /// matches (all of them without a filter): the score means of filtered stats.
    async fn score_values_matching(
        &self,
        project_id: &str,
        query: &StatsQuery,
    ) -> StoreResult<Vec<(u64, String, f64)>>;

    /// Deletes the selected traces of a project and returns how many it deleted. From the
    /// answer on they are absent from every read of every server of the store (by id, lists,
    /// `q`, stats, spans, scores, export); their spans, content events, scores, terms and search
    /// entries are physically removed by [`SpanStore::purge`]. Spans of a deleted trace that
    /// arrive later are stored as a new trace.
    async fn delete_traces(&self, project_id: &str, selection: &TraceSelection)
    -> StoreResult<u64>;

    /// Physically removes what deletions and retention left: rows, blocks, index entries, and
    /// the file pages or parts that held them. The server calls it at least every 5 minutes
    /// and soon after a deletion.
    async fn purge(&self) -> StoreResult<PurgeReport>;

    /// The scores of some traces of the project, each trace's oldest first.
    async fn scores_of_traces(
        &self,
        project_id: &str,
        trace_ids: &[TraceId],
    ) -> StoreResult<Vec<Score>>;

    /// The stored spans of some traces of the project, in one read (export asks for a page of
    /// traces at a time): each trace's spans together, by start time (ties: span id), as
    /// [`SpanStore::get_trace`] orders them; the traces in any order; ids the project has no
    /// trace of are skipped.
    async fn spans_of_traces(
        &self,
        project_id: &str,
        trace_ids: &[TraceId],
    ) -> StoreResult<Vec<StoredSpan>>;

    /// The GenAI content events (log records, see [`SpanStore::write_content_events`]) kept for
    /// spans of some traces of the project: each span's in the order the store normalizes them
    /// with, the spans in any order. Events whose span has not arrived are included.
    async fn content_events_of_traces(
        &self,
        project_id: &str,
        trace_ids: &[TraceId],
    ) -> StoreResult<Vec<ContentEvent>>;
}
