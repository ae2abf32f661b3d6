//! The embedded default backend: one SQLite file in WAL mode.
//!
//! One writer connection takes every write, so the pipeline's batches become one transaction
//! each (group commit); a small pool of reader connections serves queries concurrently with it.
//! Connections are blocking, so every call runs on tokio's blocking pool. The text index for
//! `q` lives in a second file, kept up to date by a thread of its own (see `search`); WAL
//! checkpoints run on another, beside the writer (see `checkpoint`).

mod alerts;
mod background;
mod blocks;
mod checkpoint;
mod connection;
mod delete;
mod export;
mod filter_plan;
mod filter_sql;
mod insights;
mod metadata;
mod purge;
mod read;
mod rollup;
mod schema;
mod scores;
mod search;
mod span_query;
mod stats;
mod term_index;
mod text;
mod trace_rows;
pub use trace_rows::PreparedRows;
mod write;
mod writer_thread;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::Connection;

use super::{
    ContentEventBatch, FilterKeys, PreparedTraces, SpanBatch, SpanPage, SpanQuery, SpanStore,
    StoreError, StoreResult, StoredSpan, TracePage, TraceQuery,
};
use super::{StatsQuery, TraceStats};
use crate::filter::query::TraceFilter;
use crate::model::score::Score;
use crate::model::{ContentEvent, NormalizedSpan, TraceId, TraceRecord};
use crate::normalize::Normalizer;
pub use crate::store::codec::Compression;
pub use background::lower_thread_priority;
pub use connection::Synchronous;
use connection::{open_connection, open_wal};

/// How the SQLite store writes (`[sqlite]` in the configuration file).
#[derive(Debug, Clone, Copy, Default)]
pub struct SqliteOptions {
    /// How commits are made durable.
    pub synchronous: Synchronous,
    /// How span bodies and trace texts are compressed from now on; what was written with the
    /// other is still read.
    pub compression: Compression,
}

/// The SQLite store.
pub struct SqliteStore {
    path: PathBuf,
    /// Normalizes spans again when log records bring content for them.
    normalizer: Arc<Normalizer>,
    options: SqliteOptions,
    writer: writer_thread::WriterThread,
    readers: Arc<Mutex<Vec<Connection>>>,
    /// Queries running at once: one reader connection and one blocking thread each. The others
    /// wait without a thread.
    reader_slots: Arc<tokio::sync::Semaphore>,
    /// Longest a query may run: [`QUERY_TIME_LIMIT`].
    query_time_limit: Duration,
    /// `DATA_DIR/search.sqlite`, attached to every reader connection.
    search_path: PathBuf,
    /// Wakes the text indexer after writes.
    text_signal: Arc<background::Signal>,
    /// The text indexer, when [`SqliteStore::start_text_indexer`] started it.
    indexer: Mutex<Option<background::Worker>>,
    /// Checkpoints the WAL beside the writer; stopped by [`Store::flush`].
    checkpointer: Mutex<Option<background::Worker>>,
    /// One purge at a time (`purge`).
    purging: Arc<tokio::sync::Mutex<()>>,
    /// Set when a purge could not empty a WAL: the next one checkpoints again.
    purge_unfinished: Arc<std::sync::atomic::AtomicBool>,
}

impl From<rusqlite::Error> for StoreError {
    fn from(error: rusqlite::Error) -> Self {
        match error {
            rusqlite::Error::FromSqlConversionFailure(..)
            | rusqlite::Error::InvalidColumnType(..)
            | rusqlite::Error::IntegralValueOutOfRange(..) => {
                StoreError::Corrupt(error.to_string())
            }
            other => StoreError::Unavailable(other.to_string()),
        }
    }
}

/// Queries that run at once; more wait for one to end.
const MAX_READERS: usize = 8;
/// Longest a query may run before SQLite interrupts it.
const QUERY_TIME_LIMIT: Duration = Duration::from_secs(30);
/// SQLite virtual machine steps between two looks at the clock.
const PROGRESS_STEPS: std::ffi::c_int = 100_000;

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poison| poison.into_inner())
}

impl SqliteStore {
    /// Opens (creating if needed) `DATA_DIR/spanhouse.db` and brings its schema up to date.
    /// The text index is not kept up to date until [`SqliteStore::start_text_indexer`]: a
    /// command that opens the store beside a running server must not index as well. Searches are
    /// exact either way (traces the index has not caught up with are read).
    pub fn open(
        data_dir: &Path,
        options: SqliteOptions,
        normalizer: Arc<Normalizer>,
    ) -> StoreResult<Self> {
        let synchronous = options.synchronous;
        std::fs::create_dir_all(data_dir).map_err(|error| {
            StoreError::Unavailable(format!("cannot create {}: {error}", data_dir.display()))
        })?;
        let path = data_dir.join("spanhouse.db");
        let mut writer = open_connection(&path, synchronous)?;
        writer.pragma_update(None, "secure_delete", connection::WRITER_SECURE_DELETE)?;
        schema::migrate(&mut writer)?;
        let checkpoint_signal = Arc::new(background::Signal::default());
        checkpoint::hand_off(&mut writer, Arc::clone(&checkpoint_signal))?;
        let checkpointer =
            checkpoint::start(open_connection(&path, synchronous)?, checkpoint_signal)?;
        Ok(Self {
            path,
            normalizer,
            options,
            writer: writer_thread::WriterThread::start(writer)?,
            readers: Arc::new(Mutex::new(Vec::new())),
            reader_slots: Arc::new(tokio::sync::Semaphore::new(MAX_READERS)),
            query_time_limit: QUERY_TIME_LIMIT,
            search_path: data_dir.join(search::SEARCH_FILE),
            text_signal: Arc::default(),
            indexer: Mutex::new(None),
            checkpointer: Mutex::new(Some(checkpointer)),
            purging: Arc::default(),
            purge_unfinished: Arc::default(),
        })
    }

    /// Starts the thread that keeps the text index (`DATA_DIR/search.sqlite`) up to date,
    /// rebuilding the file first when it is missing or damaged. A server calls this once.
    pub fn start_text_indexer(&self) -> StoreResult<()> {
        let mut indexer = lock(&self.indexer);
        if indexer.is_none() {
            *indexer = Some(search::start_indexer(
                &self.path,
                &self.search_path,
                Arc::clone(&self.text_signal),
            )?);
        }
        Ok(())
    }

    /// Runs `work` on the writer connection, on the writer's thread.
    async fn with_writer<T, F>(&self, work: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> StoreResult<T> + Send + 'static,
    {
        self.writer.run(work).await
    }

    /// Runs `work` on a pooled reader connection on the blocking pool, at most
    /// [`MAX_READERS`] at once; a query still running after [`QUERY_TIME_LIMIT`] is
    /// interrupted and fails as unavailable.
    async fn with_reader<T, F>(&self, work: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    {
        let slot = Arc::clone(&self.reader_slots)
            .acquire_owned()
            .await
            .map_err(|_| StoreError::Unavailable("the store is closing".into()))?;
        let readers = Arc::clone(&self.readers);
        let limit = self.query_time_limit;
        let path = self.path.clone();
        let search_path = self.search_path.clone();
        let synchronous = self.options.synchronous;
        tokio::task::spawn_blocking(move || {
            let pooled = lock(&readers).pop();
            let mut connection = match pooled {
                Some(connection) => connection,
                None => {
                    let connection = open_connection(&path, synchronous)?;
                    search::attach(&connection, &search_path)?;
                    connection
                }
            };
            let _slot = slot;
            let deadline = std::time::Instant::now() + limit;
            connection.progress_handler(
                PROGRESS_STEPS,
                Some(move || std::time::Instant::now() > deadline),
            )?;
            let result = work(&connection).map_err(|error| match error {
                StoreError::Unavailable(message) if message.contains("interrupted") => {
                    StoreError::Unavailable(format!(
                        "the query ran longer than {} s and was stopped",
                        limit.as_secs_f64()
                    ))
                }
                other => other,
            });
            let cleared = connection.progress_handler(0, None::<fn() -> bool>);
            // A connection whose handler could not be cleared is not used again.
            let mut pool = lock(&readers);
            if cleared.is_ok() && pool.len() < MAX_READERS {
                pool.push(connection);
            }
            result
        })
        .await
        .map_err(|error| StoreError::Unavailable(format!("reader task failed: {error}")))?
    }
}

#[async_trait]
impl SpanStore for SqliteStore {
    async fn sweep_orphan_content(&self, older_than_unix_nano: u64) -> StoreResult<u64> {
        let cutoff = i64::try_from(older_than_unix_nano).unwrap_or(i64::MAX);
        self.with_writer(move |connection| {
            Ok(connection.execute(write::DELETE_ORPHAN_CONTENT, [cutoff])? as u64)
        })
        .await
    }

    /// The selection's rowids are found on a reader; the writer deletes them in batches of
    /// [`delete::DELETE_BATCH`], each one transaction, with ingest's writes in between.
    async fn delete_traces(
        &self,
        project_id: &str,
        selection: &super::TraceSelection,
    ) -> StoreResult<u64> {
        let owned_project = project_id.to_owned();
        let selection = selection.clone();
        let rowids = self
            .with_reader(move |connection| {
                delete::selected_rowids(connection, &owned_project, &selection)
            })
            .await?;
        let compression = self.options.compression;
        let mut deleted = 0;
        for batch in rowids.chunks(delete::DELETE_BATCH) {
            let (project_id, batch) = (project_id.to_owned(), batch.to_vec());
            deleted += self
                .with_writer(move |connection| {
                    delete::delete_rows(connection, &project_id, &batch, compression)
                })
                .await?;
        }
        Ok(deleted)
    }

    async fn purge(&self) -> StoreResult<super::PurgeReport> {
        let _one_at_a_time = self.purging.lock().await;
        let (path, search_path) = (self.path.clone(), self.search_path.clone());
        let (synchronous, unfinished) =
            (self.options.synchronous, Arc::clone(&self.purge_unfinished));
        tokio::task::spawn_blocking(move || {
            purge::purge(&path, &search_path, synchronous, &unfinished)
        })
        .await
        .map_err(|error| StoreError::Unavailable(format!("purge task failed: {error}")))?
    }

    async fn ping(&self) -> StoreResult<()> {
        self.with_reader(|connection| {
            connection.query_row("SELECT 1", [], |_| Ok(()))?;
            Ok(())
        })
        .await
    }

    async fn write_spans(&self, batches: Vec<SpanBatch>) -> StoreResult<()> {
        let normalizer = Arc::clone(&self.normalizer);
        let compression = self.options.compression;
        let (written, batches) = self
            .with_writer(move |connection| {
                Ok((
                    write::write_spans(connection, &batches, &normalizer, compression),
                    batches,
                ))
            })
            .await?;
        // Freeing a batch's spans took a tenth of the writer's time in a profile: leave it to
        // another thread, out of the single writer's path.
        tokio::task::spawn_blocking(move || drop(batches));
        written?;
        self.text_signal.notify();
        Ok(())
    }

    fn encode_spans(&self, spans: &mut [NormalizedSpan]) {
        crate::store::codec::encode_in_blocks(spans, self.options.compression);
    }

    /// Each trace's row, computed from these spans (a request's, or part of one): what the
    /// writer stores for a trace that is new, with all its spans here (the usual case of a
    /// load of whole traces). Any other trace's row the writer computes from all its spans.
    fn prepare_traces(&self, project_id: &str, spans: &[NormalizedSpan]) -> Option<PreparedTraces> {
        Some(PreparedTraces::Sqlite(Arc::new(trace_rows::prepare_rows(
            project_id,
            spans,
            self.options.compression,
        ))))
    }

    async fn write_content_events(&self, batches: Vec<ContentEventBatch>) -> StoreResult<()> {
        let normalizer = Arc::clone(&self.normalizer);
        let compression = self.options.compression;
        self.with_writer(move |connection| {
            write::write_content_events(connection, &batches, &normalizer, compression)
        })
        .await?;
        self.text_signal.notify();
        Ok(())
    }

    /// Stops the background threads. The text index is derived data: the indexer resumes from
    /// its mark at the next start.
    async fn flush(&self, _within: Duration) {
        let indexer = lock(&self.indexer).take();
        let checkpointer = lock(&self.checkpointer).take();
        let _ = tokio::task::spawn_blocking(move || {
            if let Some(mut indexer) = indexer {
                indexer.stop();
            }
            // Closing the last connection checkpoints what is left.
            if let Some(mut checkpointer) = checkpointer {
                checkpointer.stop();
            }
        })
        .await;
    }

    async fn query_traces(&self, project_id: &str, query: &TraceQuery) -> StoreResult<TracePage> {
        let project_id = project_id.to_owned();
        let query = query.clone();
        self.with_reader(move |connection| read::query_traces(connection, &project_id, &query))
            .await
    }

    async fn get_trace(
        &self,
        project_id: &str,
        trace_id: TraceId,
    ) -> StoreResult<Option<(TraceRecord, Vec<StoredSpan>)>> {
        let project_id = project_id.to_owned();
        self.with_reader(move |connection| read::get_trace(connection, &project_id, trace_id))
            .await
    }

    async fn put_scores(&self, project_id: &str, scores: Vec<Score>) -> StoreResult<()> {
        let project_id = project_id.to_owned();
        self.with_writer(move |connection| scores::put_scores(connection, &project_id, &scores))
            .await
    }

    async fn delete_score(&self, project_id: &str, id: &str) -> StoreResult<bool> {
        let (project_id, id) = (project_id.to_owned(), id.to_owned());
        self.with_writer(move |connection| scores::delete_score(connection, &project_id, &id))
            .await
    }

    async fn score_values(
        &self,
        project_id: &str,
        start_unix_nano: u64,
        end_unix_nano: u64,
    ) -> StoreResult<Vec<(u64, String, f64)>> {
        let project_id = project_id.to_owned();
        self.with_reader(move |connection| {
            scores::score_values(connection, &project_id, start_unix_nano, end_unix_nano)
        })
        .await
    }

    async fn scores_of_traces(
        &self,
        project_id: &str,
        trace_ids: &[TraceId],
    ) -> StoreResult<Vec<Score>> {
        let (project_id, trace_ids) = (project_id.to_owned(), trace_ids.to_vec());
        self.with_reader(move |connection| {
            scores::scores_of_traces(connection, &project_id, &trace_ids)
        })
        .await
    }

    async fn insight_traces(
        &self,
        project_id: &str,
        window: (u64, u64),
        filter: Option<Arc<TraceFilter>>,
        sample: u64,
        sink: crate::store::insight_traces::InsightSink,
    ) -> StoreResult<()> {
        let project_id = project_id.to_owned();
        self.with_reader(move |connection| {
            let scan = insights::Scan {
                project_id: &project_id,
                window,
                filter: filter.as_deref(),
                sample,
            };
            insights::insight_traces(connection, &scan, &sink)
        })
        .await
    }

    /// From the rollup; with a filter, from the matching trace rows (`filter_plan`).
    async fn trace_stats(&self, project_id: &str, query: &StatsQuery) -> StoreResult<TraceStats> {
        let project_id = project_id.to_owned();
        let query = query.clone();
        self.with_reader(move |connection| match &query.filter {
            Some(filter) => {
                filter_plan::filtered_stats(connection, &project_id, &query, &filter.clone())
            }
            None => stats::trace_stats(connection, &project_id, &query),
        })
        .await
    }

    async fn score_values_matching(
        &self,
        project_id: &str,
        query: &StatsQuery,
    ) -> StoreResult<Vec<(u64, String, f64)>> {
        let project_id = project_id.to_owned();
        let query = query.clone();
        self.with_reader(move |connection| match &query.filter {
            Some(filter) => {
                filter_plan::filtered_score_values(connection, &project_id, &query, filter)
            }
            None => scores::score_values(
                connection,
                &project_id,
                query.start_unix_nano,
                query.end_unix_nano,
            ),
        })
        .await
    }

    async fn query_spans(&self, project_id: &str, query: &SpanQuery) -> StoreResult<SpanPage> {
        let project_id = project_id.to_owned();
        let query = query.clone();
        self.with_reader(move |connection| span_query::query_spans(connection, &project_id, &query))
            .await
    }

    async fn filter_keys(&self, project_id: &str) -> StoreResult<FilterKeys> {
        let project_id = project_id.to_owned();
        self.with_reader(move |connection| span_query::filter_keys(connection, &project_id))
            .await
    }

    async fn spans_of_traces(
        &self,
        project_id: &str,
        trace_ids: &[TraceId],
    ) -> StoreResult<Vec<StoredSpan>> {
        let (project_id, trace_ids) = (project_id.to_owned(), trace_ids.to_vec());
        self.with_reader(move |connection| {
            export::spans_of_traces(connection, &project_id, &trace_ids)
        })
        .await
    }

    async fn content_events_of_traces(
        &self,
        project_id: &str,
        trace_ids: &[TraceId],
    ) -> StoreResult<Vec<ContentEvent>> {
        let (project_id, trace_ids) = (project_id.to_owned(), trace_ids.to_vec());
        self.with_reader(move |connection| {
            export::content_events_of_traces(connection, &project_id, &trace_ids)
        })
        .await
    }
}

#[cfg(test)]
mod delete_measure;
#[cfg(test)]
mod delete_tests;
#[cfg(test)]
mod filter_language_tests;
#[cfg(test)]
mod filter_tests;
#[cfg(test)]
mod rollup_tests;
#[cfg(test)]
mod span_format_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod trace_rows_tests;
