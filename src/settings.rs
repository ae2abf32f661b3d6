//! Per-project ingestion settings (SPEC §4, §6, §9): the sampling attribute, filter conditions,
//! the rate limit and redaction. Saved through the store, validated when saved (a condition that does not parse
//! is refused with its column), and compiled into [`ProjectRules`] that running servers reload
//! every two seconds.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use crate::filter::{self, Condition};
use crate::ratelimit::TokenBucket;
use crate::redact::{RedactError, Redactor};
use crate::store::{Store, StoreError};

/// Longest list of filter conditions a project may have.
pub const MAX_FILTERS: usize = 100;

/// The longest retention a project or a server may set: 100 years.
pub const MAX_RETENTION_DAYS: u32 = 36_500;

/// Nanoseconds in a day of retention.
const DAY_NANOS: u64 = 86_400 * 1_000_000_000;

/// The start of what a retention of `days` keeps at `now`: traces and spans before it go.
pub fn retention_cutoff(now_unix_nano: u64, days: u32) -> u64 {
    now_unix_nano.saturating_sub(u64::from(days).saturating_mul(DAY_NANOS))
}

/// Checks a retention in days: 1 to [`MAX_RETENTION_DAYS`].
pub fn check_retention_days(days: u32) -> Result<(), SettingsError> {
    if (1..=MAX_RETENTION_DAYS).contains(&days) {
        Ok(())
    } else {
        Err(SettingsError::Invalid(format!(
            "retention_days must be from 1 to {MAX_RETENTION_DAYS} days, or null for the \
             server's default"
        )))
    }
}

pub use crate::model::project::ProjectSettings;

/// Why settings cannot be saved.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SettingsError {
    #[error("filters[{index}] {condition:?} does not parse at column {column}: {message}")]
    Filter {
        index: usize,
        condition: String,
        column: usize,
        message: String,
    },
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Redact(#[from] RedactError),
}

/// Settings compiled for ingest.
#[derive(Debug, Default)]
pub struct CompiledSettings {
    /// Each filter condition with its text, which filtered spans are counted under.
    pub filters: Vec<(String, Condition)>,
    /// The redaction rules; `None` when the project redacts nothing.
    pub redactor: Option<Redactor>,
}

impl ProjectSettings {
    /// Checks the settings and compiles their conditions and redaction rules.
    pub fn compile(&self) -> Result<CompiledSettings, SettingsError> {
        if self.filters.len() > MAX_FILTERS {
            return Err(SettingsError::Invalid(format!(
                "at most {MAX_FILTERS} filter conditions"
            )));
        }
        if let Some(attribute) = &self.sample_attribute
            && attribute.trim().is_empty()
        {
            return Err(SettingsError::Invalid(
                "sample_attribute must not be empty (use null to turn sampling off)".into(),
            ));
        }
        for (name, value) in [
            ("rate_limit", self.rate_limit),
            ("rate_limit_burst", self.rate_limit_burst),
        ] {
            if let Some(value) = value
                && !(value.is_finite() && value > 0.0)
            {
                return Err(SettingsError::Invalid(format!(
                    "{name} must be a positive number of spans per second, or null"
                )));
            }
        }
        if let Some(days) = self.retention_days {
            check_retention_days(days)?;
        }
        let redactor = Redactor::new(&self.redact)?;
        let filters = self
            .filters
            .iter()
            .enumerate()
            .map(|(index, condition)| {
                filter::parse(condition)
                    .map(|compiled| (condition.clone(), compiled))
                    .map_err(|error| SettingsError::Filter {
                        index,
                        condition: condition.clone(),
                        column: error.column,
                        message: error.message,
                    })
            })
            .collect::<Result<_, _>>()?;
        Ok(CompiledSettings { filters, redactor })
    }
}

/// A project's settings, compiled for ingest.
#[derive(Debug)]
pub struct ProjectRules {
    pub settings: ProjectSettings,
    pub filters: Vec<(String, Condition)>,
    pub rate_limiter: Option<TokenBucket>,
    /// Applied to every span and content event first, before anything else sees them.
    pub redactor: Option<Redactor>,
}

impl ProjectRules {
    fn new(settings: ProjectSettings, compiled: CompiledSettings) -> Self {
        let CompiledSettings { filters, redactor } = compiled;
        let rate_limiter = settings
            .rate_limit
            .map(|rate| TokenBucket::new(rate, settings.rate_limit_burst.unwrap_or(rate.max(1.0))));
        Self {
            settings,
            filters,
            rate_limiter,
            redactor,
        }
    }
}

/// The compiled rules of every project that has settings, reloaded from the store.
#[derive(Default)]
pub struct RulesCache {
    rules: RwLock<HashMap<String, Arc<ProjectRules>>>,
    /// The server's `retention_days`, for projects that set none.
    default_retention_days: Option<u32>,
}

impl RulesCache {
    /// An empty cache whose projects keep traces `default_retention_days` unless their
    /// settings say otherwise.
    pub fn with_default_retention(default_retention_days: Option<u32>) -> Self {
        Self {
            rules: RwLock::default(),
            default_retention_days,
        }
    }

    /// The retention of a project: its own, else the server's default; `None` keeps all.
    pub fn retention_days(&self, project_id: &str) -> Option<u32> {
        self.get(project_id)
            .and_then(|rules| rules.settings.retention_days)
            .or(self.default_retention_days)
    }

    /// The rules of a project; `None` when it keeps everything.
    pub fn get(&self, project_id: &str) -> Option<Arc<ProjectRules>> {
        self.rules
            .read()
            .unwrap_or_else(|poison| poison.into_inner())
            .get(project_id)
            .cloned()
    }

    /// Reloads settings from the store. Unchanged projects keep their rules (and the state of
    /// their rate limiter); stored settings that no longer compile are skipped with a warning.
    pub async fn refresh(&self, store: &dyn Store) -> Result<(), StoreError> {
        let stored = store.all_settings().await?;
        let current = self
            .rules
            .read()
            .unwrap_or_else(|poison| poison.into_inner())
            .clone();
        let mut next = HashMap::with_capacity(stored.len());
        for (project_id, settings) in stored {
            if settings == ProjectSettings::default() {
                continue;
            }
            if let Some(existing) = current.get(&project_id)
                && existing.settings == settings
            {
                next.insert(project_id, Arc::clone(existing));
                continue;
            }
            match settings.compile() {
                Ok(compiled) => {
                    next.insert(project_id, Arc::new(ProjectRules::new(settings, compiled)));
                }
                Err(error) => {
                    tracing::warn!(project = %project_id, %error, "ignoring stored settings");
                }
            }
        }
        *self
            .rules
            .write()
            .unwrap_or_else(|poison| poison.into_inner()) = next;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_condition_names_its_index_and_column() {
        let settings = ProjectSettings {
            filters: vec![r#"name == "ok""#.into(), r#"name === "x""#.into()],
            ..Default::default()
        };
        let error = settings.compile().unwrap_err();
        assert!(
            matches!(
                error,
                SettingsError::Filter {
                    index: 1,
                    column: 8,
                    ..
                }
            ),
            "{error:?}"
        );
        assert!(error.to_string().contains("filters[1]"));
    }

    #[test]
    fn retention_is_one_day_to_a_century_and_the_projects_own_wins() {
        for (days, valid) in [
            (0, false),
            (1, true),
            (30, true),
            (36_500, true),
            (36_501, false),
        ] {
            let settings = ProjectSettings {
                retention_days: Some(days),
                ..Default::default()
            };
            assert_eq!(settings.compile().is_ok(), valid, "{days}");
        }
        let cache = RulesCache::with_default_retention(Some(90));
        assert_eq!(cache.retention_days("p"), Some(90));
        cache.rules.write().unwrap().insert(
            "p".into(),
            Arc::new(ProjectRules::new(
                ProjectSettings {
                    retention_days: Some(7),
                    ..Default::default()
                },
                CompiledSettings::default(),
            )),
        );
        assert_eq!(cache.retention_days("p"), Some(7));
        assert_eq!(RulesCache::default().retention_days("p"), None);
        assert_eq!(retention_cutoff(10 * DAY_NANOS, 3), 7 * DAY_NANOS);
        assert_eq!(retention_cutoff(DAY_NANOS, 3), 0);
    }

    #[test]
    fn a_bad_redaction_rule_names_its_index() {
        let settings: ProjectSettings = serde_json::from_value(serde_json::json!({
            "redact": ["email", {"pattern": "cust-\\d+"}, {"pattern": "(", "replacement": "x"}]
        }))
        .unwrap();
        let error = settings.compile().unwrap_err();
        assert!(
            error.to_string().starts_with("redact[2]: pattern"),
            "{error}"
        );
        let settings: ProjectSettings =
            serde_json::from_value(serde_json::json!({"redact": ["email", "secret"]})).unwrap();
        assert!(settings.compile().unwrap().redactor.is_some());
        assert!(
            serde_json::from_value::<ProjectSettings>(
                serde_json::json!({"redact": [{"regex": "x"}]})
            )
            .is_err()
        );
    }

    #[test]
    fn limits_must_be_positive() {
        let settings = ProjectSettings {
            rate_limit: Some(0.0),
            ..Default::default()
        };
        assert!(settings.compile().is_err());
        let settings = ProjectSettings {
            sample_attribute: Some(" ".into()),
            ..Default::default()
        };
        assert!(settings.compile().is_err());
    }
}
