//! `spanhouse serve`: opens the store, starts the pipeline and the receivers, and stops them in
//! order.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::api::session::Sessions;
mod http;
mod lifecycle;

use crate::alerts::Alerts;
use crate::api::{self, AppState};
use crate::auth::{self, Authenticator, Role, TOKEN_REFRESH_INTERVAL};
use crate::config::{Config, StorageKind};
use crate::ingest::Ingest;
use crate::limits::SpanLimits;
use crate::metrics::Metrics;
use crate::normalize::Normalizer;
use crate::normalize::pricing::Pricing;
use crate::pipeline::{Pipeline, PipelineLimits};
use crate::receiver::{Admission, ReceiverLimits, Receivers, grpc};
use crate::settings::RulesCache;
use crate::stats::IngestionStats;
use crate::store::clickhouse::ClickHouseStore;
use crate::store::sqlite::SqliteStore;
use crate::store::{NewToken, Store};

/// The normalizer the configuration asks for (its price table).
pub fn normalizer(config: &Config) -> Arc<Normalizer> {
    Arc::new(Normalizer::new(Pricing::with_overrides(&config.pricing)))
}

/// Who opens a store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreUser {
    /// `spanhouse serve`: also runs the store's own background work (SQLite's text indexer).
    Server,
    /// An admin command, possibly beside a running server, whose background work it must not
    /// duplicate.
    Command,
}

/// Opens the configured store.
pub async fn open_store(config: &Config, user: StoreUser) -> anyhow::Result<Arc<dyn Store>> {
    match config.storage {
        StorageKind::Sqlite => {
            let store = SqliteStore::open(&config.data_dir, config.sqlite, normalizer(config))
                .with_context(|| format!("opening the store in {}", config.data_dir.display()))?;
            if user == StoreUser::Server {
                store.start_text_indexer().with_context(|| {
                    format!("opening the text index in {}", config.data_dir.display())
                })?;
            }
            Ok(Arc::new(store))
        }
        StorageKind::Clickhouse => {
            let clickhouse = &config.clickhouse;
            let store = ClickHouseStore::open(clickhouse, &config.data_dir, normalizer(config))
                .await
                .with_context(|| format!("opening ClickHouse at {}", clickhouse.url))?;
            Ok(Arc::new(store))
        }
    }
}

/// A server that is running; dropping it does not stop it, [`RunningServer::shutdown`] does.
pub struct RunningServer {
    pub http_addr: SocketAddr,
    pub grpc_addr: SocketAddr,
    /// The admin token created on first start, if this start created one.
    pub bootstrap_token: Option<String>,
    stop: watch::Sender<bool>,
    http: JoinHandle<std::io::Result<()>>,
    grpc: JoinHandle<Result<(), tonic::transport::Error>>,
    writer: JoinHandle<()>,
    refresher: JoinHandle<()>,
    flusher: JoinHandle<()>,
    sweeper: JoinHandle<()>,
    /// Retention and the purge (`lifecycle`).
    lifecycle: JoinHandle<()>,
    /// Alert evaluation, while this server holds the alerts lease.
    alerts: Alerts,
    stats: Arc<IngestionStats>,
    store: Arc<dyn Store>,
}

/// Starts spanhouse and returns once it listens.
pub async fn start(config: &Config) -> anyhow::Result<RunningServer> {
    let normalizer = normalizer(config);
    let store = open_store(config, StoreUser::Server).await?;
    let bootstrap_token = bootstrap(store.as_ref(), &config.data_dir).await?;
    let authenticator = Arc::new(
        Authenticator::load(store.as_ref())
            .await
            .context("loading tokens")?,
    );
    let rules = Arc::new(RulesCache::with_default_retention(config.retention_days));
    rules
        .refresh(store.as_ref())
        .await
        .context("loading project settings")?;
    let sessions = Arc::new(
        Sessions::load(store.as_ref())
            .await
            .context("loading the web UI session key")?,
    );
    let refresher = tokio::spawn(refresh(
        Arc::clone(&authenticator),
        Arc::clone(&rules),
        Arc::clone(&sessions),
        Arc::clone(&store),
    ));
    let stats = Arc::new(IngestionStats::default());
    let flusher = tokio::spawn(flush_stats(Arc::clone(&stats), Arc::clone(&store)));
    let sweeper = tokio::spawn(sweep_orphan_content(
        Arc::clone(&store),
        Duration::from_secs(config.limits.orphan_content_max_age_s),
    ));
    let purge_signal = Arc::new(tokio::sync::Notify::new());
    let lifecycle = tokio::spawn(lifecycle::run(
        Arc::clone(&store),
        Arc::clone(&rules),
        Arc::clone(&purge_signal),
    ));
    let metrics = Arc::new(Metrics::default());
    let alerts = Alerts::start(
        Arc::clone(&store),
        config.alerts.evaluation_interval,
        Arc::clone(&metrics),
    );
    let (pipeline, writer) = Pipeline::start(
        Arc::clone(&store),
        PipelineLimits {
            queue_capacity_spans: config.limits.queue_capacity_spans,
            max_batch_spans: config.limits.max_batch_spans,
        },
        Arc::clone(&metrics),
    );
    let ingest = Arc::new(Ingest {
        pipeline,
        store: Arc::clone(&store),
        normalizer,
        rules,
        stats: Arc::clone(&stats),
        limits: SpanLimits {
            max_attribute_value_bytes: config.limits.max_attribute_value_bytes,
            max_attribute_depth: config.limits.max_attribute_depth,
            max_spans_per_request: config.limits.max_spans_per_request,
        },
    });
    let receivers = Receivers {
        auth: Arc::clone(&authenticator),
        ingest: Arc::clone(&ingest),
        metrics: Arc::clone(&metrics),
        admission: Admission::new(
            config.limits.max_inflight_bytes,
            config.limits.project_inflight_share,
        ),
        limits: ReceiverLimits {
            max_body_bytes: config.limits.max_body_bytes,
            max_decompressed_bytes: config.limits.max_decompressed_bytes,
            body_read_timeout: Duration::from_millis(config.limits.body_read_timeout_ms),
        },
    };
    let state = AppState {
        store: Arc::clone(&store),
        auth: authenticator,
        ingest,
        metrics,
        sessions,
        purge_signal,
    };

    let http_listener = TcpListener::bind(config.http_listen)
        .await
        .with_context(|| format!("listening on {} (--http-listen)", config.http_listen))?;
    let grpc_listener = TcpListener::bind(config.grpc_listen)
        .await
        .with_context(|| format!("listening on {} (--grpc-listen)", config.grpc_listen))?;
    let http_addr = http_listener.local_addr()?;
    let grpc_addr = grpc_listener.local_addr()?;

    let (stop, stopped) = watch::channel(false);
    let stop_signal = |mut stopped: watch::Receiver<bool>| async move {
        let _ = stopped.wait_for(|stop| *stop).await;
    };
    let http = tokio::spawn(http::serve(
        http_listener,
        api::app(
            state.clone(),
            crate::receiver::http::routes(receivers.clone()),
        ),
        Duration::from_millis(config.limits.header_read_timeout_ms),
        stopped.clone(),
    ));
    let grpc = tokio::spawn(
        tonic::transport::Server::builder()
            .max_concurrent_streams(grpc::MAX_STREAMS)
            .http2_keepalive_interval(Some(Duration::from_secs(30)))
            .http2_keepalive_timeout(Some(Duration::from_secs(20)))
            .layer(tower_http::catch_panic::CatchPanicLayer::custom(
                grpc::panic_status,
            ))
            .layer(grpc::DeadlineLayer(Duration::from_millis(
                config.limits.grpc_call_timeout_ms,
            )))
            .add_routes(grpc::routes(receivers))
            .serve_with_incoming_shutdown(
                tonic::transport::server::TcpIncoming::from(grpc_listener),
                stop_signal(stopped),
            ),
    );
    tracing::info!(http = %http_addr, grpc = %grpc_addr, "spanhouse ready");
    Ok(RunningServer {
        http_addr,
        grpc_addr,
        bootstrap_token,
        stop,
        http,
        grpc,
        writer,
        refresher,
        flusher,
        sweeper,
        lifecycle,
        alerts,
        stats,
        store,
    })
}

impl RunningServer {
    /// Runs the store's purge now, as the lifecycle task does after a deletion (for tests and
    /// embedders that want deleted data off the disk at a known point).
    pub async fn purge(&self) -> crate::store::StoreResult<crate::store::PurgeReport> {
        self.store.purge().await
    }

    /// Stops accepting, lets requests in flight finish (each is answered only once its spans
    /// are durable), then stops the writer.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        let _ = self.stop.send(true);
        self.http.await.context("http server task")??;
        self.grpc.await.context("grpc server task")??;
        self.refresher.abort();
        self.sweeper.abort();
        self.lifecycle.abort();
        self.alerts.stop();
        // Every sender is gone with the servers: the writer drains and ends.
        if tokio::time::timeout(Duration::from_secs(30), self.writer)
            .await
            .is_err()
        {
            anyhow::bail!("the writer did not finish within 30 s");
        }
        self.flusher.abort();
        if let Err(error) = self.stats.flush(self.store.as_ref()).await {
            tracing::warn!(%error, "the last ingestion counts could not be saved");
        }
        self.store.flush(Duration::from_secs(10)).await;
        tracing::info!("spanhouse stopped");
        Ok(())
    }
}

/// Reloads tokens and project settings, so that changes made by admin commands, the API or
/// another node apply within the five seconds SPEC §1 and §4 allow; and the web UI session key,
/// so that servers that made it at the same instant agree.
async fn refresh(
    authenticator: Arc<Authenticator>,
    rules: Arc<RulesCache>,
    sessions: Arc<Sessions>,
    store: Arc<dyn Store>,
) {
    let mut interval = tokio::time::interval(TOKEN_REFRESH_INTERVAL);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    interval.tick().await;
    loop {
        interval.tick().await;
        if let Err(error) = authenticator.refresh(store.as_ref()).await {
            tracing::warn!(%error, "reloading tokens failed; keeping the previous set");
        }
        if let Err(error) = rules.refresh(store.as_ref()).await {
            tracing::warn!(%error, "reloading project settings failed; keeping the previous set");
        }
        if let Err(error) = sessions.refresh(store.as_ref()).await {
            tracing::warn!(%error, "reloading the session key failed; keeping the previous one");
        }
    }
}

/// Saves the ingestion counts every second.
async fn flush_stats(stats: Arc<IngestionStats>, store: Arc<dyn Store>) {
    let mut interval = tokio::time::interval(Duration::from_secs(1));
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        if let Err(error) = stats.flush(store.as_ref()).await {
            tracing::warn!(%error, "saving ingestion counts failed; will retry");
        }
    }
}

/// How often content events that wait for a span that never came are looked for.
const ORPHAN_SWEEP_INTERVAL: Duration = Duration::from_secs(600);

/// Deletes, every ten minutes, the GenAI content of spans that have not come within `max_age`
/// of the content's time (`limits.orphan_content_max_age_s`).
async fn sweep_orphan_content(store: Arc<dyn Store>, max_age: Duration) {
    let mut interval = tokio::time::interval(ORPHAN_SWEEP_INTERVAL);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    interval.tick().await;
    loop {
        interval.tick().await;
        let cutoff = crate::model::time::now_unix_nano()
            .saturating_sub(u64::try_from(max_age.as_nanos()).unwrap_or(u64::MAX));
        match store.sweep_orphan_content(cutoff).await {
            Ok(0) => {}
            Ok(deleted) => tracing::info!(deleted, "content events of spans that never came"),
            Err(error) => tracing::warn!(%error, "deleting orphan content events failed"),
        }
    }
}

/// On first start (no project at all) creates project `default` with an admin token, prints
/// the token once and writes it to `DATA_DIR/bootstrap-token` (mode 0600).
async fn bootstrap(store: &dyn Store, data_dir: &Path) -> anyhow::Result<Option<String>> {
    if !store.list_projects().await?.is_empty() {
        return Ok(None);
    }
    let project = store.create_project("default").await?;
    let secret = auth::generate_token_secret();
    store
        .create_token(NewToken {
            id: auth::generate_token_id(),
            project_id: project.id.clone(),
            role: Role::Admin,
            name: Some("bootstrap".into()),
            secret_hash: auth::hash_token(&secret),
        })
        .await?;
    let path = data_dir.join("bootstrap-token");
    write_secret_file(&path, &secret).with_context(|| format!("writing {}", path.display()))?;
    eprintln!(
        "spanhouse: created project \"default\" and its admin token (shown once, also in {}):\n{secret}",
        path.display()
    );
    Ok(Some(secret))
}

fn write_secret_file(path: &Path, secret: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    writeln!(file, "{secret}")?;
    file.sync_all()
}
