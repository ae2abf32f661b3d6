//! Projects, their tokens' roles and their settings: the control plane's types, shared by the
//! store that keeps them, the authenticator that checks tokens and the API that shows them.

use serde::{Deserialize, Serialize};

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Send OTLP data.
    Ingest,
    /// Query traces and use the UI.
    Read,
    /// Everything in its project, including tokens and settings.
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Ingest => "ingest",
            Role::Read => "read",
            Role::Admin => "admin",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "ingest" => Some(Role::Ingest),
            "read" => Some(Role::Read),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }

    /// Whether this role grants `access`.
    pub fn allows(self, access: Access) -> bool {
        matches!(
            (self, access),
            (Role::Admin, _) | (Role::Ingest, Access::Ingest) | (Role::Read, Access::Read)
        )
    }
}

/// What a request needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Sending OTLP data.
    Ingest,
    /// Reading traces, figures and settings.
    Read,
    /// Changing tokens and settings.
    Admin,
}

/// The settings of a project as saved and as the API shows them.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProjectSettings {
    /// When set, only spans whose attribute of this name is `"true"` are kept (and the spans
    /// of their traces in the same request).
    #[serde(default)]
    pub sample_attribute: Option<String>,
    /// OTTL conditions; a span matching any of them is dropped.
    #[serde(default)]
    pub filters: Vec<String>,
    /// Spans per second accepted for the project; more is answered 429.
    #[serde(default)]
    pub rate_limit: Option<f64>,
    /// Spans the project may send at once above the rate; default one second's worth.
    #[serde(default)]
    pub rate_limit_burst: Option<f64>,
    /// Days a trace is kept, counted from its timestamp: older traces are deleted, and spans
    /// that arrive already older are filtered (rule `retention`). `None`: the server's default
    /// (`retention_days` of its configuration), itself none unless configured.
    #[serde(default)]
    pub retention_days: Option<u32>,
    /// Redaction at ingest (SPEC §9): built-in detectors and custom patterns, applied to every
    /// string value before anything is stored; empty: nothing is redacted.
    #[serde(default)]
    pub redact: Vec<RedactRule>,
}

/// One redaction rule: a built-in detector by name (`"email"`), or a custom pattern
/// (`{"pattern": "...", "replacement": "..."}`). Names and patterns are checked when settings are
/// saved (`redact::Redactor::new`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum RedactRule {
    /// A built-in detector: `email`, `phone`, `credit_card`, `ip_address` or `secret`.
    Detector(String),
    /// A regular expression of the project's own.
    Custom(CustomRedactRule),
}

/// A custom redaction rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomRedactRule {
    /// A regular expression (Rust `regex` syntax); every match is replaced.
    pub pattern: String,
    /// The text put in place of a match, taken literally; `[REDACTED]` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replacement: Option<String>,
}

/// A project: the unit every token, span and setting belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Project {
    /// Random, lowercase hex; what the stores key everything by.
    pub id: String,
    /// Unique; what people and `x-project-id` name it by.
    pub name: String,
    /// When it was created, in nanoseconds since the Unix epoch.
    pub created_at_unix_nano: u64,
}

/// A token as listed: never its secret, which only exists as a hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenInfo {
    /// The token's public id (not its secret).
    pub id: String,
    /// The project it belongs to.
    pub project_id: String,
    /// What it may do.
    pub role: Role,
    /// A label given at creation.
    pub name: Option<String>,
    /// When it was created, in nanoseconds since the Unix epoch.
    pub created_at_unix_nano: u64,
    /// When it was revoked, in nanoseconds since the Unix epoch; `None` while it is active.
    pub revoked_at_unix_nano: Option<u64>,
}

/// A token to create: its SHA-256 hash and what it grants.
#[derive(Debug, Clone)]
pub struct NewToken {
    /// The token's public id.
    pub id: String,
    /// The project it will belong to.
    pub project_id: String,
    /// What it will be allowed to do.
    pub role: Role,
    /// A label.
    pub name: Option<String>,
    /// SHA-256 of the secret; the secret itself is never kept.
    pub secret_hash: [u8; 32],
}

/// A token that is not revoked, with its project: what the authenticator caches.
#[derive(Debug, Clone)]
pub struct ActiveToken {
    /// SHA-256 of the secret, what a presented token is compared by.
    pub secret_hash: [u8; 32],
    /// The token's public id.
    pub token_id: String,
    /// What it may do.
    pub role: Role,
    /// Its project, whole, so that checking a request needs no further lookup.
    pub project: Project,
}
