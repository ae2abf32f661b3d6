//! The arguments of the commands beside `serve`: `project configure`, and those that talk to a
//! running server (`import`, `export`).

use std::path::PathBuf;

use clap::{Args, ValueEnum};

/// `spanhouse project configure`'s arguments.
#[derive(Debug, Args)]
pub struct ConfigureArgs {
    /// Project id or name.
    pub name: String,
    /// Keep only spans whose attribute KEY is "true" (and their traces' spans in the request).
    #[arg(long, value_name = "KEY", conflicts_with = "no_sample_attribute")]
    pub sample_attribute: Option<String>,
    /// Keep spans whatever their sampling attribute.
    #[arg(long)]
    pub no_sample_attribute: bool,
    /// Add an OTTL condition; spans matching any condition are dropped. Repeatable.
    #[arg(long = "filter", value_name = "CONDITION")]
    pub filters: Vec<String>,
    /// Remove all conditions (before adding those given with --filter).
    #[arg(long)]
    pub clear_filters: bool,
    /// Accept at most this many spans per second for the project; more is answered 429.
    #[arg(
        long,
        value_name = "SPANS_PER_SECOND",
        conflicts_with = "no_rate_limit"
    )]
    pub rate_limit: Option<f64>,
    /// Remove the rate limit.
    #[arg(long)]
    pub no_rate_limit: bool,
    /// Keep traces this many days (1 to 36500): older ones are deleted, older spans filtered.
    #[arg(long, value_name = "DAYS", conflicts_with = "no_retention")]
    pub retention_days: Option<u32>,
    /// Use the server's default retention (`--retention-days` of `serve`; none: keep all).
    #[arg(long)]
    pub no_retention: bool,
    /// Redact these built-in detectors' matches at ingest: email, phone, credit_card,
    /// ip_address, secret, or all. Comma-separated or repeatable; with --redact-pattern, replaces
    /// the project's redaction rules.
    #[arg(
        long,
        value_name = "DETECTORS",
        value_delimiter = ',',
        conflicts_with = "no_redact"
    )]
    pub redact: Vec<String>,
    /// Redact the matches of this regular expression (replaced by "[REDACTED]"). Repeatable;
    /// with --redact, replaces the project's redaction rules.
    #[arg(
        long = "redact-pattern",
        value_name = "REGEX",
        conflicts_with = "no_redact"
    )]
    pub redact_patterns: Vec<String>,
    /// Redact nothing.
    #[arg(long)]
    pub no_redact: bool,
}

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
