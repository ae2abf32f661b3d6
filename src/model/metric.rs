//! The metrics of a set of traces that insights compare and alert rules watch, by the names
//! both APIs use.

use std::fmt;

/// A metric of a set of traces.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Metric {
    /// How many traces.
    Traces,
    /// The share of them whose status is `error`.
    ErrorRate,
    /// The 95th percentile of their `duration_ms`.
    P95DurationMs,
    /// Their mean `total_cost`.
    CostPerTrace,
    /// Their mean `total_token_count`.
    TokensPerTrace,
    /// The mean of their scores of a name.
    Score(String),
}

impl Metric {
    /// The metrics that are not scores.
    pub const FIXED: [Metric; 5] = [
        Metric::Traces,
        Metric::ErrorRate,
        Metric::P95DurationMs,
        Metric::CostPerTrace,
        Metric::TokensPerTrace,
    ];

    /// Reads a metric as [`fmt::Display`] writes it (`score:helpful` for a score's mean).
    pub fn parse(text: &str) -> Option<Metric> {
        if let Some(name) = text.strip_prefix("score:") {
            return (!name.is_empty()).then(|| Metric::Score(name.to_owned()));
        }
        Metric::FIXED
            .into_iter()
            .find(|metric| metric.to_string() == text)
    }
}

impl fmt::Display for Metric {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Metric::Traces => formatter.write_str("traces"),
            Metric::ErrorRate => formatter.write_str("error_rate"),
            Metric::P95DurationMs => formatter.write_str("p95_duration_ms"),
            Metric::CostPerTrace => formatter.write_str("cost_per_trace"),
            Metric::TokensPerTrace => formatter.write_str("tokens_per_trace"),
            Metric::Score(name) => write!(formatter, "score:{name}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_read_back_what_they_write() {
        for metric in Metric::FIXED
            .into_iter()
            .chain([Metric::Score("helpful".into())])
        {
            assert_eq!(Metric::parse(&metric.to_string()), Some(metric));
        }
        assert_eq!(Metric::parse("score:"), None);
        assert_eq!(Metric::parse("latency"), None);
    }
}
