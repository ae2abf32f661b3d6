//! The ClickHouse backend: any number of stateless spanhouse servers in front of one ClickHouse
//! (or cluster). Spans go to a durable local spool first (`spool`), then to ClickHouse in large
//! batches (`deliver`); TraceRecords are kept in a read model at delivery (`trace_rows`);
//! projects, tokens, settings and counters live in ClickHouse, so every server sees them.

mod alerts;
mod delete;
mod deliver;
mod export;
mod filter_sql;
mod hidden;
mod insights;
mod metadata;
mod purge;
pub mod queries;
mod read;
pub mod rowbinary;
pub mod rows;
pub mod schema;
mod scores;
pub mod spool;
mod spool_format;
mod stats;
pub mod terms;
mod tombstones;
mod trace_compute;
pub mod trace_rows;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use super::{
    ActiveToken, ContentEventBatch, ControlPlane, CountDelta, LeaseGrant, NewToken, Project,
    SpanBatch, SpanStore, StoreError, StoreResult, StoredSpan, TokenInfo, TracePage, TraceQuery,
};
use super::{FilterKeys, SpanPage, SpanQuery};
use super::{PurgeReport, TraceSelection};
use super::{StatsQuery, TraceStats};
use crate::model::project::ProjectSettings;
use crate::model::score::Score;
use crate::model::{ContentEvent, TraceId, TraceRecord};
use crate::normalize::Normalizer;
use rows::{ContentEventRow, SpanRow};
use schema::{Dialect, SchemaOptions};
use spool::{Spool, SpoolFile};

pub struct ClickHouseStore {
    client: clickhouse::Client,
    spool: Arc<Spool>,
    flusher: tokio::task::JoinHandle<()>,
    /// The cluster the tables are created on, if any: mutations go to its local tables.
    cluster: Option<String>,
    /// Where purges' mutations go.
    purge_target: purge::Target,
}

impl Drop for ClickHouseStore {
    fn drop(&mut self) {
        self.flusher.abort();
    }
}

pub(crate) fn unavailable(error: clickhouse::error::Error) -> StoreError {
    StoreError::Unavailable(format!("clickhouse: {error}"))
}

/// A client for `options`, without a default database (statements name it).
pub fn client(options: &ClickHouseConfig) -> clickhouse::Client {
    clickhouse::Client::default()
        .with_url(&options.url)
        .with_user(&options.user)
        .with_password(&options.password)
        // ClickHouse 18.16 knows neither the header-carrying input format validation needs
        // nor server-side parameters: rows go as RowBinary, values are bound client-side.
        .with_validation(false)
        // A query still running after 30 s is stopped by the server (as the embedded store
        // stops its own): a read that heavy is a bug or an attack, not a page to wait for.
        .with_setting("max_execution_time", "30")
}

impl ClickHouseStore {
    /// Connects, creates or migrates the schema, and starts delivering the spool.
    pub async fn open(
        options: &ClickHouseConfig,
        data_dir: &std::path::Path,
        normalizer: Arc<Normalizer>,
    ) -> StoreResult<Self> {
        let bootstrap = client(options);
        let version: String = bootstrap
            .query("SELECT version()")
            .fetch_one()
            .await
            .map_err(unavailable)?;
        let dialect = Dialect::of_version(&version);
        let schema_options = SchemaOptions {
            database: options.database.clone(),
            cluster: options.cluster.clone(),
            retention_days: options.retention_days,
        };
        metadata::migrate(&bootstrap, dialect, &schema_options).await?;
        tracing::info!(
            version,
            ?dialect,
            database = options.database,
            "clickhouse ready"
        );
        let client = bootstrap.with_database(&options.database);
        // Spans stored before the read model existed get their rows, in the background.
        let builder = client.clone();
        tokio::spawn(async move {
            let server = format!("{:032x}", rand::random::<u128>());
            while let Err(error) = trace_rows::build(&builder, &server).await {
                tracing::error!(%error, "building the read model from stored spans failed; again in 30 s");
                tokio::time::sleep(Duration::from_secs(30)).await;
            }
        });
        let spool = Arc::new(Spool::open(
            &data_dir.join("spool"),
            options.spool_max_bytes,
        )?);
        let flusher = tokio::spawn(deliver::run(
            client.clone(),
            Arc::clone(&spool),
            normalizer,
            options.batch_max_spans,
            Duration::from_millis(options.flush_interval_ms),
        ));
        Ok(Self {
            client,
            spool,
            flusher,
            cluster: options.cluster.clone(),
            purge_target: purge::Target {
                database: options.database.clone(),
                cluster: options.cluster.clone(),
            },
        })
    }

    /// Encodes rows into a spool file and writes it, off the async threads.
    async fn spool(
        &self,
        items: usize,
        encode: impl FnOnce(SpoolFile) -> SpoolFile + Send + 'static,
    ) -> StoreResult<()> {
        let spool = Arc::clone(&self.spool);
        tokio::task::spawn_blocking(move || spool.append(encode(spool.file_for(items))))
            .await
            .map_err(|error| StoreError::Unavailable(format!("spool task failed: {error}")))?
    }
}

/// The dialect of the configured server, when it answers.
/// Where ClickHouse is and how spanhouse uses it, as `config` resolves it.
#[derive(Debug, Clone)]
pub struct ClickHouseConfig {
    /// The HTTP interface, `http://host:8123`.
    pub url: String,
    pub database: String,
    pub user: String,
    pub password: String,
    /// A cluster from the server's `remote_servers`: Replicated + Distributed tables.
    pub cluster: Option<String>,
    /// Days to keep spans (servers with TTL support: 20.3 and later).
    pub retention_days: Option<u32>,
    /// Largest local spool before writes are answered 503: 1 GiB.
    pub spool_max_bytes: u64,
    /// Most spans delivered to ClickHouse in one round: 20,000.
    pub batch_max_spans: u64,
    /// How often a small batch is delivered, in milliseconds: 200.
    pub flush_interval_ms: u64,
}

pub async fn server_dialect(config: &ClickHouseConfig) -> Option<Dialect> {
    let version: String = client(config)
        .query("SELECT version()")
        .fetch_one()
        .await
        .ok()?;
    Some(Dialect::of_version(&version))
}

/// A version that orders rewrites of a row: nanoseconds now.
pub(crate) fn version_now() -> u64 {
    crate::model::time::now_unix_nano()
}

#[async_trait]
impl SpanStore for ClickHouseStore {
    async fn sweep_orphan_content(&self, older_than_unix_nano: u64) -> StoreResult<u64> {
        // A mutation: ClickHouse rewrites the parts in the background.
        self.client
            .query(&queries::delete_orphan_content(self.cluster.as_deref()))
            .bind(older_than_unix_nano)
            .bind(older_than_unix_nano)
            .execute()
            .await
            .map_err(unavailable)?;
        Ok(0)
    }

    async fn ping(&self) -> StoreResult<()> {
        self.client
            .query("SELECT 1")
            .fetch_one::<u8>()
            .await
            .map(|_| ())
            .map_err(unavailable)
    }

    async fn buffered(&self, project_id: &str) -> u64 {
        self.spool.items_of(project_id)
    }

    async fn buffered_total(&self) -> u64 {
        self.spool.items()
    }

    fn corrupt_spool_files(&self) -> u64 {
        self.spool.corrupt_files()
    }

    async fn flush(&self, within: Duration) {
        let deadline = tokio::time::Instant::now() + within;
        while self.spool.items() > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let left = self.spool.items();
        if left > 0 {
            tracing::warn!(
                left,
                "ClickHouse did not take the whole spool; it is delivered at the next start"
            );
        }
    }

    async fn write_spans(&self, batches: Vec<SpanBatch>) -> StoreResult<()> {
        // Each request's spans are encoded on a blocking thread of their own, so that a write
        // of several requests uses both cores; then one file is written and synced.
        let version = version_now();
        let encoders: Vec<_> = batches
            .into_iter()
            .map(|batch| {
                let mut file = self.spool.file_for(batch.spans.len());
                tokio::task::spawn_blocking(move || {
                    file.push_spans_with(&batch.project_id, |put| {
                        for span in &batch.spans {
                            put(&SpanRow::new(&batch.project_id, span, version));
                        }
                    });
                    let terms: Vec<terms::TermRow> = batch
                        .spans
                        .iter()
                        .flat_map(|span| terms::term_rows(&batch.project_id, span))
                        .collect();
                    if !terms.is_empty() {
                        file.push_terms(&batch.project_id, &terms);
                    }
                    file
                })
            })
            .collect();
        let mut parts = Vec::with_capacity(encoders.len());
        for encoder in encoders {
            parts.push(
                encoder.await.map_err(|error| {
                    StoreError::Unavailable(format!("spool task failed: {error}"))
                })?,
            );
        }
        let spool = Arc::clone(&self.spool);
        tokio::task::spawn_blocking(move || spool.append_parts(parts))
            .await
            .map_err(|error| StoreError::Unavailable(format!("spool task failed: {error}")))?
    }

    async fn write_content_events(&self, batches: Vec<ContentEventBatch>) -> StoreResult<()> {
        let items = batches.iter().map(|batch| batch.events.len()).sum();
        self.spool(items, move |mut file| {
            for batch in &batches {
                let rows: Vec<ContentEventRow> = batch
                    .events
                    .iter()
                    .map(|content| deliver::content_event_row(&batch.project_id, content))
                    .collect();
                file.push_content_events(&batch.project_id, &rows);
            }
            file
        })
        .await
    }

    async fn query_traces(&self, project_id: &str, query: &TraceQuery) -> StoreResult<TracePage> {
        read::query_traces(&self.client, project_id, query).await
    }

    async fn get_trace(
        &self,
        project_id: &str,
        trace_id: TraceId,
    ) -> StoreResult<Option<(TraceRecord, Vec<StoredSpan>)>> {
        read::get_trace(&self.client, project_id, trace_id).await
    }

    async fn spans_of_traces(
        &self,
        project_id: &str,
        trace_ids: &[TraceId],
    ) -> StoreResult<Vec<StoredSpan>> {
        export::spans_of_traces(&self.client, project_id, trace_ids).await
    }

    async fn content_events_of_traces(
        &self,
        project_id: &str,
        trace_ids: &[TraceId],
    ) -> StoreResult<Vec<ContentEvent>> {
        export::content_events_of_traces(&self.client, project_id, trace_ids).await
    }

    async fn put_scores(&self, project_id: &str, scores: Vec<Score>) -> StoreResult<()> {
        scores::put_scores(&self.client, project_id, &scores).await
    }

    async fn delete_score(&self, project_id: &str, id: &str) -> StoreResult<bool> {
        scores::delete_score(&self.client, project_id, id).await
    }

    async fn score_values(
        &self,
        project_id: &str,
        start_unix_nano: u64,
        end_unix_nano: u64,
    ) -> StoreResult<Vec<(u64, String, f64)>> {
        scores::score_values(&self.client, project_id, start_unix_nano, end_unix_nano).await
    }

    async fn scores_of_traces(
        &self,
        project_id: &str,
        trace_ids: &[TraceId],
    ) -> StoreResult<Vec<Score>> {
        scores::scores_of_traces(&self.client, project_id, trace_ids).await
    }

    async fn insight_traces(
        &self,
        project_id: &str,
        window: (u64, u64),
        filter: Option<Arc<crate::filter::query::TraceFilter>>,
        sample: u64,
        sink: crate::store::insight_traces::InsightSink,
    ) -> StoreResult<()> {
        let scan = insights::Scan {
            project_id,
            window,
            filter: filter.as_deref(),
            sample,
        };
        insights::insight_traces(&self.client, &scan, &sink).await
    }

    async fn trace_stats(&self, project_id: &str, query: &StatsQuery) -> StoreResult<TraceStats> {
        stats::trace_stats(&self.client, project_id, query).await
    }

    async fn score_values_matching(
        &self,
        project_id: &str,
        query: &StatsQuery,
    ) -> StoreResult<Vec<(u64, String, f64)>> {
        match query.filter.as_deref() {
            Some(filter) => {
                stats::filtered_score_values(&self.client, project_id, query, filter).await
            }
            None => {
                scores::score_values(
                    &self.client,
                    project_id,
                    query.start_unix_nano,
                    query.end_unix_nano,
                )
                .await
            }
        }
    }

    async fn delete_traces(
        &self,
        project_id: &str,
        selection: &TraceSelection,
    ) -> StoreResult<u64> {
        delete::delete_traces(&self.client, project_id, selection).await
    }

    async fn purge(&self) -> StoreResult<PurgeReport> {
        purge::purge(&self.client, &self.purge_target).await
    }

    async fn query_spans(&self, project_id: &str, query: &SpanQuery) -> StoreResult<SpanPage> {
        read::query_spans(&self.client, project_id, query).await
    }

    async fn filter_keys(&self, project_id: &str) -> StoreResult<FilterKeys> {
        read::filter_keys(&self.client, project_id).await
    }
}

#[async_trait]
impl ControlPlane for ClickHouseStore {
    async fn create_project(&self, name: &str) -> StoreResult<Project> {
        metadata::create_project(&self.client, name).await
    }

    async fn list_projects(&self) -> StoreResult<Vec<Project>> {
        metadata::list_projects(&self.client).await
    }

    async fn find_project(&self, id_or_name: &str) -> StoreResult<Option<Project>> {
        metadata::find_project(&self.client, id_or_name).await
    }

    async fn create_token(&self, token: NewToken) -> StoreResult<()> {
        metadata::create_token(&self.client, token).await
    }

    async fn list_tokens(&self, project_id: &str) -> StoreResult<Vec<TokenInfo>> {
        metadata::list_tokens(&self.client, project_id).await
    }

    async fn revoke_token(&self, token_id: &str) -> StoreResult<bool> {
        metadata::revoke_token(&self.client, token_id).await
    }

    async fn active_tokens(&self) -> StoreResult<Vec<ActiveToken>> {
        metadata::active_tokens(&self.client).await
    }

    async fn deployment_secret(&self, name: &str, candidate: &[u8]) -> StoreResult<Vec<u8>> {
        metadata::deployment_secret(&self.client, name, candidate).await
    }

    async fn get_settings(&self, project_id: &str) -> StoreResult<ProjectSettings> {
        metadata::get_settings(&self.client, project_id).await
    }

    async fn put_settings(&self, project_id: &str, settings: &ProjectSettings) -> StoreResult<()> {
        metadata::put_settings(&self.client, project_id, settings).await
    }

    async fn all_settings(&self) -> StoreResult<Vec<(String, ProjectSettings)>> {
        metadata::all_settings(&self.client).await
    }

    async fn add_ingestion_counts(&self, deltas: Vec<CountDelta>) -> StoreResult<()> {
        metadata::add_ingestion_counts(&self.client, deltas).await
    }

    async fn ingestion_counts(
        &self,
        project_id: &str,
        start_unix_nano: u64,
        end_unix_nano: u64,
    ) -> StoreResult<Vec<CountDelta>> {
        metadata::ingestion_counts(&self.client, project_id, start_unix_nano, end_unix_nano).await
    }

    async fn acquire_lease(
        &self,
        name: &str,
        holder: &str,
        ttl: Duration,
    ) -> StoreResult<Option<LeaseGrant>> {
        alerts::acquire_lease(&self.client, name, holder, ttl).await
    }
}
