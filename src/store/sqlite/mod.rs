//! The embedded default backend: one SQLite file in WAL mode.
//!
//! One writer connection takes every write, so the pipeline's batches become one transaction
//! each (group commit); a small pool of reader connections serves queries concurrently with it.
//! Connections are blocking, so every call runs on tokio's blocking pool. The text index for
//! `q` lives in a second file, kept up to date by a thread of its own (see `search`); WAL
//! checkpoints run on another, beside the writer (see `checkpoint`).

mod background;
mod blocks;
mod checkpoint;
mod connection;
mod read;
mod schema;
mod search;
mod stats;
mod text;
mod trace_rows;
pub use trace_rows::PreparedRows;
mod write;
mod writer_thread;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, params};

use super::{
    ActiveToken, ContentEventBatch, ControlPlane, CountDelta, NewToken, PreparedTraces, Project,
    SpanBatch, SpanStore, StoreError, StoreResult, StoredSpan, TokenInfo, TracePage, TraceQuery,
};
use super::{StatsQuery, TraceStats};
use crate::model::project::ProjectSettings;
use crate::model::project::Role;
use crate::model::time::now_unix_nano;
use crate::model::{NormalizedSpan, TraceId, TraceRecord};
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
    /// `DATA_DIR/search.sqlite`, attached to every reader connection.
    search_path: PathBuf,
    /// Wakes the text indexer after writes.
    text_signal: Arc<background::Signal>,
    /// The text indexer, when [`SqliteStore::start_text_indexer`] started it.
    indexer: Mutex<Option<background::Worker>>,
    /// Checkpoints the WAL beside the writer; stopped by [`Store::flush`].
    checkpointer: Mutex<Option<background::Worker>>,
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
            search_path: data_dir.join(search::SEARCH_FILE),
            text_signal: Arc::default(),
            indexer: Mutex::new(None),
            checkpointer: Mutex::new(Some(checkpointer)),
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

    /// Runs `work` on a pooled reader connection on the blocking pool.
    async fn with_reader<T, F>(&self, work: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    {
        let readers = Arc::clone(&self.readers);
        let path = self.path.clone();
        let search_path = self.search_path.clone();
        let synchronous = self.options.synchronous;
        tokio::task::spawn_blocking(move || {
            let pooled = lock(&readers).pop();
            let connection = match pooled {
                Some(connection) => connection,
                None => {
                    let connection = open_connection(&path, synchronous)?;
                    search::attach(&connection, &search_path)?;
                    connection
                }
            };
            let result = work(&connection);
            let mut pool = lock(&readers);
            if pool.len() < 8 {
                pool.push(connection);
            }
            result
        })
        .await
        .map_err(|error| StoreError::Unavailable(format!("reader task failed: {error}")))?
    }
}

fn random_project_id() -> String {
    use rand::RngCore as _;
    let mut bytes = [0u8; 8];
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

fn project_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Project> {
    Ok(Project {
        id: row.get(0)?,
        name: row.get(1)?,
        created_at_unix_nano: row.get::<_, i64>(2)? as u64,
    })
}

fn parse_settings(text: &str) -> StoreResult<ProjectSettings> {
    serde_json::from_str(text).map_err(|error| StoreError::Corrupt(format!("settings: {error}")))
}

fn role_from_text(text: &str) -> StoreResult<Role> {
    Role::parse(text).ok_or_else(|| StoreError::Corrupt(format!("unknown role {text:?}")))
}

#[async_trait]
impl SpanStore for SqliteStore {
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

    async fn trace_stats(&self, project_id: &str, query: &StatsQuery) -> StoreResult<TraceStats> {
        let project_id = project_id.to_owned();
        let query = *query;
        self.with_reader(move |connection| stats::trace_stats(connection, &project_id, &query))
            .await
    }
}

#[async_trait]
impl ControlPlane for SqliteStore {
    async fn create_project(&self, name: &str) -> StoreResult<Project> {
        let name = name.to_owned();
        self.with_writer(move |connection| {
            let project = Project {
                id: random_project_id(),
                name,
                created_at_unix_nano: now_unix_nano(),
            };
            let inserted = connection.execute(
                "INSERT INTO projects (id, name, created_at_ns) VALUES (?1, ?2, ?3)
                 ON CONFLICT DO NOTHING",
                params![
                    project.id,
                    project.name,
                    project.created_at_unix_nano as i64
                ],
            )?;
            if inserted == 0 {
                return Err(StoreError::Conflict(format!(
                    "a project named {:?} already exists",
                    project.name
                )));
            }
            Ok(project)
        })
        .await
    }

    async fn list_projects(&self) -> StoreResult<Vec<Project>> {
        self.with_reader(|connection| {
            let mut statement = connection.prepare(
                "SELECT id, name, created_at_ns FROM projects ORDER BY created_at_ns, name",
            )?;
            let projects = statement
                .query_map([], project_from_row)?
                .collect::<rusqlite::Result<_>>()?;
            Ok(projects)
        })
        .await
    }

    async fn find_project(&self, id_or_name: &str) -> StoreResult<Option<Project>> {
        let key = id_or_name.to_owned();
        self.with_reader(move |connection| {
            Ok(connection
                .query_row(
                    "SELECT id, name, created_at_ns FROM projects WHERE id = ?1 OR name = ?1
                     ORDER BY id = ?1 DESC LIMIT 1",
                    [key],
                    project_from_row,
                )
                .optional()?)
        })
        .await
    }

    async fn create_token(&self, token: NewToken) -> StoreResult<()> {
        self.with_writer(move |connection| {
            connection.execute(
                "INSERT INTO tokens (id, project_id, role, name, secret_hash, created_at_ns)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    token.id,
                    token.project_id,
                    token.role.as_str(),
                    token.name,
                    token.secret_hash.as_slice(),
                    now_unix_nano() as i64
                ],
            )?;
            Ok(())
        })
        .await
    }

    async fn list_tokens(&self, project_id: &str) -> StoreResult<Vec<TokenInfo>> {
        let project_id = project_id.to_owned();
        self.with_reader(move |connection| {
            let mut statement = connection.prepare(
                "SELECT id, project_id, role, name, created_at_ns, revoked_at_ns FROM tokens
                 WHERE project_id = ?1 ORDER BY created_at_ns, id",
            )?;
            let rows = statement.query_map([project_id], |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    row.get::<_, String>(1)?,
                    row.get::<_, String>(2)?,
                    row.get::<_, Option<String>>(3)?,
                    row.get::<_, i64>(4)?,
                    row.get::<_, Option<i64>>(5)?,
                ))
            })?;
            let mut tokens = Vec::new();
            for row in rows {
                let (id, project_id, role, name, created, revoked) = row?;
                tokens.push(TokenInfo {
                    id,
                    project_id,
                    role: role_from_text(&role)?,
                    name,
                    created_at_unix_nano: created as u64,
                    revoked_at_unix_nano: revoked.map(|revoked| revoked as u64),
                });
            }
            Ok(tokens)
        })
        .await
    }

    async fn revoke_token(&self, token_id: &str) -> StoreResult<bool> {
        let token_id = token_id.to_owned();
        self.with_writer(move |connection| {
            let exists = connection
                .query_row(
                    "SELECT 1 FROM tokens WHERE id = ?1",
                    [&token_id],
                    |_| Ok(()),
                )
                .optional()?
                .is_some();
            connection.execute(
                "UPDATE tokens SET revoked_at_ns = ?2 WHERE id = ?1 AND revoked_at_ns IS NULL",
                params![token_id, now_unix_nano() as i64],
            )?;
            Ok(exists)
        })
        .await
    }

    async fn active_tokens(&self) -> StoreResult<Vec<ActiveToken>> {
        self.with_reader(|connection| {
            let mut statement = connection.prepare(
                "SELECT t.secret_hash, t.id, t.role, p.id, p.name, p.created_at_ns
                 FROM tokens t JOIN projects p ON p.id = t.project_id
                 WHERE t.revoked_at_ns IS NULL",
            )?;
            let rows = statement.query_map([], |row| {
                Ok((
                    row.get::<_, Vec<u8>>(0)?,
                    row.get::<_, String>(1)?,
                    row.get::<_, String>(2)?,
                    Project {
                        id: row.get(3)?,
                        name: row.get(4)?,
                        created_at_unix_nano: row.get::<_, i64>(5)? as u64,
                    },
                ))
            })?;
            let mut tokens = Vec::new();
            for row in rows {
                let (hash, token_id, role, project) = row?;
                let secret_hash: [u8; 32] = hash
                    .try_into()
                    .map_err(|_| StoreError::Corrupt("token hash is not 32 bytes".into()))?;
                tokens.push(ActiveToken {
                    secret_hash,
                    token_id,
                    role: role_from_text(&role)?,
                    project,
                });
            }
            Ok(tokens)
        })
        .await
    }

    async fn deployment_secret(&self, name: &str, candidate: &[u8]) -> StoreResult<Vec<u8>> {
        const SELECT: &str = "SELECT value FROM deployment_secrets WHERE name = ?1";
        let key = name.to_owned();
        let stored: Option<Vec<u8>> = self
            .with_reader(move |connection| {
                Ok(connection
                    .query_row(SELECT, [key], |row| row.get(0))
                    .optional()?)
            })
            .await?;
        if let Some(stored) = stored {
            return Ok(stored);
        }
        // Inserted and read back by the one writer: of servers racing here, the first wins.
        let key = name.to_owned();
        let candidate = candidate.to_vec();
        self.with_writer(move |connection| {
            connection.execute(
                "INSERT INTO deployment_secrets (name, value, created_at_ns) VALUES (?1, ?2, ?3)
                 ON CONFLICT DO NOTHING",
                params![key, candidate, now_unix_nano() as i64],
            )?;
            Ok(connection.query_row(SELECT, [key], |row| row.get(0))?)
        })
        .await
    }

    async fn get_settings(&self, project_id: &str) -> StoreResult<ProjectSettings> {
        let project_id = project_id.to_owned();
        self.with_reader(move |connection| {
            let text: Option<String> = connection
                .query_row(
                    "SELECT settings FROM project_settings WHERE project_id = ?1",
                    [project_id],
                    |row| row.get(0),
                )
                .optional()?;
            text.map_or(Ok(ProjectSettings::default()), |text| parse_settings(&text))
        })
        .await
    }

    async fn put_settings(&self, project_id: &str, settings: &ProjectSettings) -> StoreResult<()> {
        let project_id = project_id.to_owned();
        let text = serde_json::to_string(settings)
            .map_err(|error| StoreError::Corrupt(error.to_string()))?;
        self.with_writer(move |connection| {
            connection.execute(
                "INSERT INTO project_settings (project_id, settings, updated_at_ns)
                 VALUES (?1, ?2, ?3)
                 ON CONFLICT (project_id) DO UPDATE SET
                     settings = excluded.settings, updated_at_ns = excluded.updated_at_ns",
                params![project_id, text, now_unix_nano() as i64],
            )?;
            Ok(())
        })
        .await
    }

    async fn all_settings(&self) -> StoreResult<Vec<(String, ProjectSettings)>> {
        self.with_reader(|connection| {
            let mut statement =
                connection.prepare_cached("SELECT project_id, settings FROM project_settings")?;
            let rows = statement
                .query_map([], |row| {
                    Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            rows.into_iter()
                .map(|(project_id, text)| Ok((project_id, parse_settings(&text)?)))
                .collect()
        })
        .await
    }

    async fn add_ingestion_counts(&self, deltas: Vec<CountDelta>) -> StoreResult<()> {
        self.with_writer(move |connection| {
            let transaction = connection.transaction()?;
            {
                let mut add = transaction.prepare_cached(
                    "INSERT INTO ingestion_counts (project_id, bucket_start_ns, counter, label, value)
                     VALUES (?1, ?2, ?3, ?4, ?5)
                     ON CONFLICT (project_id, bucket_start_ns, counter, label)
                     DO UPDATE SET value = value + excluded.value",
                )?;
                for delta in &deltas {
                    add.execute(params![
                        delta.project_id,
                        delta.bucket_start_unix_nano as i64,
                        delta.counter,
                        delta.label,
                        delta.value as i64
                    ])?;
                }
            }
            transaction.commit()?;
            Ok(())
        })
        .await
    }

    async fn ingestion_counts(
        &self,
        project_id: &str,
        start_unix_nano: u64,
        end_unix_nano: u64,
    ) -> StoreResult<Vec<CountDelta>> {
        let project_id = project_id.to_owned();
        self.with_reader(move |connection| {
            let mut statement = connection.prepare_cached(
                "SELECT bucket_start_ns, counter, label, value FROM ingestion_counts
                 WHERE project_id = ?1 AND bucket_start_ns >= ?2 AND bucket_start_ns < ?3
                 ORDER BY bucket_start_ns",
            )?;
            let rows = statement
                .query_map(
                    params![
                        project_id,
                        start_unix_nano.min(i64::MAX as u64) as i64,
                        end_unix_nano.min(i64::MAX as u64) as i64
                    ],
                    |row| {
                        Ok(CountDelta {
                            project_id: project_id.clone(),
                            bucket_start_unix_nano: row.get::<_, i64>(0)? as u64,
                            counter: row.get(1)?,
                            label: row.get(2)?,
                            value: row.get::<_, i64>(3)? as u64,
                        })
                    },
                )?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows)
        })
        .await
    }
}

#[cfg(test)]
mod span_format_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod trace_rows_tests;
