//! What insights (`crate::insights`) read of each trace: its measures and the segments it
//! belongs to, streamed from either backend in chunks.

/// One trace as insights measure and segment it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct InsightTrace {
    /// Its timestamp (its root's start), in nanoseconds since the Unix epoch.
    pub timestamp_unix_nano: u64,
    /// Its status is `error`.
    pub is_error: bool,
    /// Its `duration_ms`.
    pub duration_ms: f64,
    /// Its `total_token_count`; 0 when unknown.
    pub total_tokens: i64,
    /// Its `total_cost` in USD; 0 when unknown.
    pub total_cost: f64,
    /// The models of its LLM calls.
    pub models: Vec<String>,
    /// Its `pipeline_id`.
    pub pipeline_id: Option<String>,
    /// Its `service_name`.
    pub service_name: Option<String>,
    /// Its `root_span_name`.
    pub root_span_name: Option<String>,
    /// Its trace metadata, `(key, value)`, as the filter language's `metadata["key"]` finds them.
    pub metadata: Vec<(String, String)>,
    /// Its tags, as the filter language's `tags` finds them.
    pub tags: Vec<String>,
    /// Its numeric and boolean (1 or 0) scores, `(name, value)`.
    pub scores: Vec<(String, f64)>,
}

/// What one scan reads: the traces of a project's window that a filter matches, one in
/// `sample` of them (1: all).
#[derive(Debug, Clone, Copy)]
pub struct Scan<'a> {
    /// The project.
    pub project_id: &'a str,
    /// `[start, end)` of the trace timestamp, in nanoseconds since the Unix epoch.
    pub window: (u64, u64),
    /// The filter, if any.
    pub filter: Option<&'a crate::filter::query::TraceFilter>,
    /// Read one trace in this many (at least 1).
    pub sample: u64,
}

/// Traces in a chunk a backend sends at once.
pub const CHUNK: usize = 1000;

/// Where a backend sends the chunks of a scan; the scan ends early, without an error, when the
/// receiver is dropped.
pub type InsightSink = tokio::sync::mpsc::Sender<Vec<InsightTrace>>;
