//! Configuration: one tree, resolved once at start-up from flags, environment variables, an
//! optional TOML file and defaults, in that order of precedence. Only this module reads the
//! environment (through clap's `env` attributes).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use clap::{Args, Parser, Subcommand, ValueEnum};
use serde::Deserialize;

use std::collections::BTreeMap;

use crate::normalize::pricing::ModelPrice;
use crate::store::sqlite::{Compression, SqliteOptions, Synchronous};

mod alerts;
mod commands;
pub use alerts::AlertsConfig;
pub use commands::{ConfigureArgs, ExportArgs, ExportFormatArg, ImportArgs};

#[derive(Debug, Parser)]
#[command(
    name = "spanhouse",
    version,
    about = "An OpenTelemetry trace server for LLM applications"
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Options shared by every command, accepted before or after it.
#[derive(Debug, Args, Default)]
pub struct GlobalArgs {
    /// TOML configuration file.
    #[arg(long, global = true, env = "SPANHOUSE_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Where spanhouse keeps its data [default: ./spanhouse-data].
    #[arg(long, global = true, env = "SPANHOUSE_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// OTLP/HTTP, query API and UI address [default: 127.0.0.1:4318].
    #[arg(
        long,
        global = true,
        env = "SPANHOUSE_HTTP_LISTEN",
        value_name = "ADDR"
    )]
    pub http_listen: Option<SocketAddr>,
    /// OTLP/gRPC address [default: 127.0.0.1:4317].
    #[arg(
        long,
        global = true,
        env = "SPANHOUSE_GRPC_LISTEN",
        value_name = "ADDR"
    )]
    pub grpc_listen: Option<SocketAddr>,
    /// Storage backend [default: sqlite].
    #[arg(long, global = true, env = "SPANHOUSE_STORAGE", value_enum)]
    pub storage: Option<StorageKind>,
    /// ClickHouse HTTP URL [default: http://127.0.0.1:8123].
    #[arg(
        long,
        global = true,
        env = "SPANHOUSE_CLICKHOUSE_URL",
        value_name = "URL"
    )]
    pub clickhouse_url: Option<String>,
    /// ClickHouse database [default: spanhouse].
    #[arg(
        long,
        global = true,
        env = "SPANHOUSE_CLICKHOUSE_DATABASE",
        value_name = "DB"
    )]
    pub clickhouse_database: Option<String>,
    /// ClickHouse user [default: default].
    #[arg(
        long,
        global = true,
        env = "SPANHOUSE_CLICKHOUSE_USER",
        value_name = "U"
    )]
    pub clickhouse_user: Option<String>,
    /// ClickHouse password [default: empty].
    #[arg(
        long,
        global = true,
        env = "SPANHOUSE_CLICKHOUSE_PASSWORD",
        value_name = "P"
    )]
    pub clickhouse_password: Option<String>,
    /// Days traces are kept in projects whose settings set no `retention_days` [default: kept
    /// forever].
    #[arg(
        long,
        global = true,
        env = "SPANHOUSE_RETENTION_DAYS",
        value_name = "DAYS"
    )]
    pub retention_days: Option<u32>,
    /// Seconds between two evaluations of the alert rules, 10 to 60 [default: 60].
    #[arg(
        long,
        global = true,
        env = "SPANHOUSE_ALERTS_EVALUATION_INTERVAL_S",
        value_name = "SECONDS"
    )]
    pub alerts_evaluation_interval_s: Option<u64>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server (OTLP/HTTP and query API, OTLP/gRPC).
    Serve,
    /// Manage projects.
    #[command(subcommand)]
    Project(ProjectCommand),
    /// Manage tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Provision ClickHouse by hand.
    #[command(subcommand)]
    Clickhouse(ClickhouseCommand),
    /// Send OTLP files of past traces to a server (backfill), with a progress bar.
    Import(ImportArgs),
    /// Write every matching trace of a server, oldest first, to stdout.
    Export(ExportArgs),
}

#[derive(Debug, Subcommand)]
pub enum ClickhouseCommand {
    /// Create the database and tables, or apply the migrations they lack (what `serve` does on
    /// start).
    Migrate,
    /// Print the DDL of the schema, for operators who provision by hand.
    Schema {
        /// The server generation to write it for; default: ask the configured server, else modern.
        #[arg(long, value_enum)]
        dialect: Option<DialectArg>,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum DialectArg {
    /// ClickHouse before 20.3 (Debian's 18.16): no codecs, TTL, skip indexes or LowCardinality.
    Legacy,
    /// ClickHouse 20.3 and later.
    Modern,
}

#[derive(Debug, Subcommand)]
pub enum ProjectCommand {
    /// Create a project; prints its id.
    Create { name: String },
    /// List projects.
    List,
    /// Change a project's ingestion settings; running servers apply them within 5 seconds.
    Configure(ConfigureArgs),
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a token; prints it on stdout, alone on one line, once.
    Create {
        /// Project id or name.
        #[arg(long)]
        project: String,
        #[arg(long, value_enum, default_value = "ingest")]
        role: RoleArg,
        /// A label to recognise the token by.
        #[arg(long)]
        name: Option<String>,
    },
    /// List a project's tokens (never their secrets).
    List {
        #[arg(long)]
        project: String,
    },
    /// Revoke a token by its id; running servers stop accepting it within 5 seconds.
    Revoke { token_id: String },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum RoleArg {
    Ingest,
    Read,
    Admin,
}

impl From<RoleArg> for crate::auth::Role {
    fn from(role: RoleArg) -> Self {
        match role {
            RoleArg::Ingest => Self::Ingest,
            RoleArg::Read => Self::Read,
            RoleArg::Admin => Self::Admin,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum StorageKind {
    #[default]
    Sqlite,
    Clickhouse,
}

/// The TOML file. Every key is optional; unknown keys are an error.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub data_dir: Option<PathBuf>,
    pub http_listen: Option<SocketAddr>,
    pub grpc_listen: Option<SocketAddr>,
    pub storage: Option<StorageKind>,
    /// Days traces are kept in projects that set no `retention_days` of their own.
    pub retention_days: Option<u32>,
    #[serde(default)]
    pub clickhouse: FileClickHouse,
    #[serde(default)]
    pub limits: FileLimits,
    #[serde(default)]
    pub sqlite: FileSqlite,
    #[serde(default)]
    pub alerts: alerts::FileAlerts,
    /// Model prices (USD per million tokens) added to or replacing the built-in table.
    #[serde(default)]
    pub pricing: BTreeMap<String, ModelPrice>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileClickHouse {
    pub url: Option<String>,
    pub database: Option<String>,
    pub user: Option<String>,
    pub password: Option<String>,
    pub cluster: Option<String>,
    pub retention_days: Option<u32>,
    pub spool_max_bytes: Option<u64>,
    pub batch_max_spans: Option<u64>,
    pub flush_interval_ms: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileLimits {
    pub max_body_bytes: Option<usize>,
    pub max_decompressed_bytes: Option<usize>,
    pub queue_capacity_spans: Option<usize>,
    pub max_batch_spans: Option<usize>,
    pub max_attribute_value_bytes: Option<usize>,
    pub max_attribute_depth: Option<usize>,
    pub max_spans_per_request: Option<usize>,
    pub max_inflight_bytes: Option<usize>,
    pub project_inflight_share: Option<f64>,
    pub body_read_timeout_ms: Option<u64>,
    pub header_read_timeout_ms: Option<u64>,
    pub grpc_call_timeout_ms: Option<u64>,
    pub orphan_content_max_age_s: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSqlite {
    pub synchronous: Option<Synchronous>,
    pub compression: Option<Compression>,
}

/// The resolved configuration every part of spanhouse is built from.
#[derive(Debug, Clone)]
pub struct Config {
    pub data_dir: PathBuf,
    pub http_listen: SocketAddr,
    pub grpc_listen: SocketAddr,
    pub storage: StorageKind,
    /// Days traces are kept in projects whose settings set none (`null`); `None`: forever.
    pub retention_days: Option<u32>,
    pub clickhouse: ClickHouseConfig,
    pub limits: Limits,
    /// The embedded store's durability (`full`, the default, also survives power loss) and
    /// compression (`zstd`, the default, or `lz4`).
    pub sqlite: SqliteOptions,
    /// Model price overrides; see `normalize::pricing`.
    pub pricing: BTreeMap<String, ModelPrice>,
    /// Alert evaluation (`[alerts]`).
    pub alerts: AlertsConfig,
}

pub use crate::store::clickhouse::ClickHouseConfig;

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest OTLP/HTTP body as sent (compressed): 32 MiB.
    pub max_body_bytes: usize,
    /// Largest body after decompression, and largest gRPC message: 128 MiB.
    pub max_decompressed_bytes: usize,
    /// Spans waiting for the store before new requests get 503.
    pub queue_capacity_spans: usize,
    /// Most spans stored in one transaction.
    pub max_batch_spans: usize,
    /// Longest attribute value kept, in bytes; longer values are cut and marked.
    pub max_attribute_value_bytes: usize,
    /// Deepest nesting of attribute arrays and maps kept.
    pub max_attribute_depth: usize,
    /// Most spans in one request; more is answered 413.
    pub max_spans_per_request: usize,
    /// Request bodies (as sent and decompressed) being read and decoded at once, in bytes;
    /// past it new requests are answered 503. 64 MiB: at 4x overload of 1000-span requests
    /// (~3 MB each) the server stayed at 457 MiB resident with it, 500 MiB with 96 MiB, and
    /// full load answered no 503 (docs/benchmarks-log.md).
    pub max_inflight_bytes: usize,
    /// The part of `max_inflight_bytes` one project may hold, from 0 to 1: 0.5, so that one
    /// project (a client trickling bodies, say) never leaves the others without room.
    pub project_inflight_share: f64,
    /// Longest a client may take to send a request body, in milliseconds (HTTP 408): 30 s.
    pub body_read_timeout_ms: u64,
    /// Longest a client may take to send a request's headers, in milliseconds (the connection
    /// is closed past it): 10 s.
    pub header_read_timeout_ms: u64,
    /// Longest an OTLP/gRPC call may take, message and store included, in milliseconds
    /// (`DEADLINE_EXCEEDED`): 60 s.
    pub grpc_call_timeout_ms: u64,
    /// How long GenAI content that arrived on the logs signal waits for its span, in seconds,
    /// by the record's time: 1 day. Past it, content of a span that never came is deleted.
    pub orphan_content_max_age_s: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_body_bytes: 32 * 1024 * 1024,
            max_decompressed_bytes: 128 * 1024 * 1024,
            queue_capacity_spans: 10_000,
            max_batch_spans: 2_000,
            max_attribute_value_bytes: 1024 * 1024,
            max_attribute_depth: 16,
            max_spans_per_request: 50_000,
            max_inflight_bytes: 64 * 1024 * 1024,
            project_inflight_share: 0.5,
            body_read_timeout_ms: 30_000,
            header_read_timeout_ms: 10_000,
            grpc_call_timeout_ms: 60_000,
            orphan_content_max_age_s: 86_400,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid config file {path}: {source}")]
    Parse {
        path: PathBuf,
        source: Box<toml::de::Error>,
    },
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

impl Config {
    /// Resolves flags and environment (already merged by clap) over the file over defaults.
    pub fn resolve(args: &GlobalArgs) -> Result<Self, ConfigError> {
        let file = match &args.config {
            Some(path) => load_file(path)?,
            None => FileConfig::default(),
        };
        let defaults = Limits::default();
        let limits = Limits {
            max_body_bytes: file
                .limits
                .max_body_bytes
                .unwrap_or(defaults.max_body_bytes),
            max_decompressed_bytes: file
                .limits
                .max_decompressed_bytes
                .unwrap_or(defaults.max_decompressed_bytes),
            queue_capacity_spans: file
                .limits
                .queue_capacity_spans
                .unwrap_or(defaults.queue_capacity_spans),
            max_batch_spans: file
                .limits
                .max_batch_spans
                .unwrap_or(defaults.max_batch_spans),
            max_attribute_value_bytes: file
                .limits
                .max_attribute_value_bytes
                .unwrap_or(defaults.max_attribute_value_bytes),
            max_attribute_depth: file
                .limits
                .max_attribute_depth
                .unwrap_or(defaults.max_attribute_depth),
            max_spans_per_request: file
                .limits
                .max_spans_per_request
                .unwrap_or(defaults.max_spans_per_request),
            max_inflight_bytes: file
                .limits
                .max_inflight_bytes
                .unwrap_or(defaults.max_inflight_bytes),
            project_inflight_share: file
                .limits
                .project_inflight_share
                .unwrap_or(defaults.project_inflight_share),
            body_read_timeout_ms: file
                .limits
                .body_read_timeout_ms
                .unwrap_or(defaults.body_read_timeout_ms),
            header_read_timeout_ms: file
                .limits
                .header_read_timeout_ms
                .unwrap_or(defaults.header_read_timeout_ms),
            grpc_call_timeout_ms: file
                .limits
                .grpc_call_timeout_ms
                .unwrap_or(defaults.grpc_call_timeout_ms),
            orphan_content_max_age_s: file
                .limits
                .orphan_content_max_age_s
                .unwrap_or(defaults.orphan_content_max_age_s),
        };
        if !(limits.project_inflight_share > 0.0 && limits.project_inflight_share <= 1.0) {
            return Err(ConfigError::Invalid(
                "limits.project_inflight_share must be more than 0 and at most 1".into(),
            ));
        }
        if limits.body_read_timeout_ms == 0
            || limits.grpc_call_timeout_ms == 0
            || limits.header_read_timeout_ms == 0
        {
            return Err(ConfigError::Invalid(
                "limits.body_read_timeout_ms, header_read_timeout_ms and grpc_call_timeout_ms \
                 must be positive"
                    .into(),
            ));
        }
        if limits.queue_capacity_spans == 0 || limits.max_batch_spans == 0 {
            return Err(ConfigError::Invalid(
                "limits.queue_capacity_spans and limits.max_batch_spans must be positive".into(),
            ));
        }
        let retention_days = args.retention_days.or(file.retention_days);
        if let Some(days) = retention_days {
            crate::settings::check_retention_days(days)
                .map_err(|error| ConfigError::Invalid(error.to_string()))?;
        }
        let alerts = AlertsConfig::resolve(args.alerts_evaluation_interval_s, &file.alerts)?;
        Ok(Self {
            alerts,
            retention_days,
            data_dir: args
                .data_dir
                .clone()
                .or(file.data_dir)
                .unwrap_or_else(|| PathBuf::from("./spanhouse-data")),
            http_listen: args
                .http_listen
                .or(file.http_listen)
                .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 4318))),
            grpc_listen: args
                .grpc_listen
                .or(file.grpc_listen)
                .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 4317))),
            storage: args.storage.or(file.storage).unwrap_or_default(),
            clickhouse: ClickHouseConfig {
                url: args
                    .clickhouse_url
                    .clone()
                    .or(file.clickhouse.url)
                    .unwrap_or_else(|| "http://127.0.0.1:8123".into()),
                database: args
                    .clickhouse_database
                    .clone()
                    .or(file.clickhouse.database)
                    .unwrap_or_else(|| "spanhouse".into()),
                user: args
                    .clickhouse_user
                    .clone()
                    .or(file.clickhouse.user)
                    .unwrap_or_else(|| "default".into()),
                password: args
                    .clickhouse_password
                    .clone()
                    .or(file.clickhouse.password)
                    .unwrap_or_default(),
                cluster: file.clickhouse.cluster,
                retention_days: file.clickhouse.retention_days,
                spool_max_bytes: file
                    .clickhouse
                    .spool_max_bytes
                    .unwrap_or(1024 * 1024 * 1024),
                batch_max_spans: file.clickhouse.batch_max_spans.unwrap_or(20_000),
                flush_interval_ms: file.clickhouse.flush_interval_ms.unwrap_or(200),
            },
            limits,
            sqlite: SqliteOptions {
                synchronous: file.sqlite.synchronous.unwrap_or_default(),
                compression: file.sqlite.compression.unwrap_or_default(),
            },
            pricing: file.pricing,
        })
    }

    /// A configuration for tests and embedding: everything default, ephemeral ports.
    pub fn for_data_dir(data_dir: &Path) -> Self {
        let args = GlobalArgs {
            data_dir: Some(data_dir.to_owned()),
            http_listen: Some(SocketAddr::from(([127, 0, 0, 1], 0))),
            grpc_listen: Some(SocketAddr::from(([127, 0, 0, 1], 0))),
            ..GlobalArgs::default()
        };
        Self::resolve(&args).expect("defaults are valid")
    }
}

fn load_file(path: &Path) -> Result<FileConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    toml::from_str(&text).map_err(|source| ConfigError::Parse {
        path: path.to_owned(),
        source: Box::new(source),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flag_beats_file_beats_default() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("spanhouse.toml");
        std::fs::write(
            &path,
            "data_dir = \"/from/file\"\nhttp_listen = \"127.0.0.1:9000\"\n[limits]\nmax_body_bytes = 10\n",
        )
        .unwrap();
        let args = GlobalArgs {
            config: Some(path),
            data_dir: Some("/from/flag".into()),
            ..GlobalArgs::default()
        };
        let config = Config::resolve(&args).unwrap();
        assert_eq!(config.data_dir, PathBuf::from("/from/flag"));
        assert_eq!(config.http_listen.port(), 9000);
        assert_eq!(config.grpc_listen.port(), 4317);
        assert_eq!(config.limits.max_body_bytes, 10);
        assert_eq!(config.limits.max_decompressed_bytes, 128 * 1024 * 1024);
    }

    #[test]
    fn unknown_keys_are_an_error() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("spanhouse.toml");
        std::fs::write(&path, "data_dri = \"typo\"\n").unwrap();
        let args = GlobalArgs {
            config: Some(path),
            ..GlobalArgs::default()
        };
        let error = Config::resolve(&args).unwrap_err().to_string();
        assert!(error.contains("data_dri"), "{error}");
    }
}
