//! The arguments of the commands that talk to a running server (`import`, `export`).

use std::path::PathBuf;

use clap::{Args, ValueEnum};

/// `spanhouse import`'s arguments.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// OTLP files (the Collector file exporter's JSON lines or length-prefixed protobuf, OTLP/JSON
    /// or protobuf documents; gzip or zstd compressed or not) or directories of them.
    #[arg(required = true, value_name = "FILE|DIR")]
    pub paths: Vec<PathBuf>,
    /// The server's base URL [default: http:// and this configuration's --http-listen].
    #[arg(long, value_name = "URL")]
    pub url: Option<String>,
    /// An ingest or admin token of the project to import into.
    #[arg(
        long,
        env = "SPANHOUSE_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    pub token: Option<String>,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 4, value_name = "N")]
    pub concurrency: usize,
    /// Most spans per request.
    #[arg(long, default_value_t = 1000, value_name = "N")]
    pub batch_spans: usize,
    /// How long, in seconds, one request may be retried (429, 503, a lost connection) before the
    /// import counts it as not delivered.
    #[arg(long, default_value_t = 600, value_name = "SECONDS")]
    pub retry_for: u64,
}

/// `spanhouse export`: the arguments of `GET /api/v1/export` and where to send it.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// What to write: JSON lines of traces with spans and scores, CSV of TraceRecords, or
    /// OTLP/JSON requests that `spanhouse import` reads back.
    #[arg(long, value_enum, default_value = "jsonl")]
    pub format: ExportFormatArg,
    /// Only traces this condition of the filter language matches (SPEC §7).
    #[arg(long, value_name = "EXPR")]
    pub filter: Option<String>,
    /// Only traces from this time (RFC 3339) [default: the first].
    #[arg(long, value_name = "T")]
    pub start: Option<String>,
    /// Only traces before this time (RFC 3339) [default: now].
    #[arg(long, value_name = "T")]
    pub end: Option<String>,
    /// The server [default: http:// and this configuration's --http-listen].
    #[arg(long, value_name = "URL")]
    pub url: Option<String>,
    /// A read or admin token of the project to export.
    #[arg(
        long,
        env = "SPANHOUSE_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    pub token: Option<String>,
}

/// `--format` of `spanhouse export`; its names are those `format=` takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExportFormatArg {
    Jsonl,
    Csv,
    Otlp,
}
