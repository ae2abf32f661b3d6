//! Scores: user feedback, an evaluator's grade or a reviewer's label on one interaction,
//! sent to spanhouse's `POST /api/v1/scores` (an ingest token is enough).
//!
//! ```no_run
//! # async fn feedback(trace_id: opentelemetry::trace::TraceId) -> Result<(), spanhouse_otel::ScoreError> {
//! use spanhouse_otel::{Score, ScoreClient};
//! let client = ScoreClient::from_env()?; // OTEL_EXPORTER_OTLP_ENDPOINT, SPANHOUSE_TOKEN
//! client
//!     .send(&[Score::new(trace_id, "user_feedback", false).comment("wrong city")])
//!     .await?;
//! # Ok(()) }
//! ```

use std::time::Duration;

use opentelemetry::trace::{SpanId, TraceId};
use serde_json::{Map, Value, json};

use crate::exporter::ENV_TOKEN;

/// Where spanhouse listens when `OTEL_EXPORTER_OTLP_ENDPOINT` is not set.
const DEFAULT_BASE_URL: &str = "http://127.0.0.1:4318";

/// A score's value: a number, a boolean or a label.
#[derive(Debug, Clone, PartialEq)]
pub enum ScoreValue {
    /// A finite number (a grade, a similarity).
    Number(f64),
    /// Thumbs up (`true`) or down.
    Bool(bool),
    /// A category.
    Label(String),
}

impl From<f64> for ScoreValue {
    fn from(number: f64) -> Self {
        Self::Number(number)
    }
}

impl From<bool> for ScoreValue {
    fn from(flag: bool) -> Self {
        Self::Bool(flag)
    }
}

impl From<&str> for ScoreValue {
    fn from(label: &str) -> Self {
        Self::Label(label.to_owned())
    }
}

impl From<String> for ScoreValue {
    fn from(label: String) -> Self {
        Self::Label(label)
    }
}

/// One score of a trace (or of one of its spans).
#[derive(Debug, Clone, PartialEq)]
pub struct Score {
    trace_id: TraceId,
    name: String,
    value: ScoreValue,
    id: Option<String>,
    span_id: Option<SpanId>,
    comment: Option<String>,
    source: Option<String>,
}

impl Score {
    /// A score named `name` of the trace `trace_id`.
    pub fn new(trace_id: TraceId, name: impl Into<String>, value: impl Into<ScoreValue>) -> Self {
        Self {
            trace_id,
            name: name.into(),
            value: value.into(),
            id: None,
            span_id: None,
            comment: None,
            source: None,
        }
    }

    /// Your own id: sending a score of the same id again replaces it (retries never double).
    pub fn id(mut self, id: impl Into<String>) -> Self {
        self.id = Some(id.into());
        self
    }

    /// Judges one span of the trace rather than the whole trace.
    pub fn span(mut self, span_id: SpanId) -> Self {
        self.span_id = Some(span_id);
        self
    }

    /// Why, in the reviewer's words.
    pub fn comment(mut self, comment: impl Into<String>) -> Self {
        self.comment = Some(comment.into());
        self
    }

    /// Who gave it (spanhouse records `api` when not said).
    pub fn source(mut self, source: impl Into<String>) -> Self {
        self.source = Some(source.into());
        self
    }

    fn to_json(&self) -> Value {
        let mut fields = Map::new();
        fields.insert("trace_id".into(), json!(self.trace_id.to_string()));
        fields.insert("name".into(), json!(self.name));
        let value = match &self.value {
            ScoreValue::Number(number) => json!(number),
            ScoreValue::Bool(flag) => json!(flag),
            ScoreValue::Label(label) => json!(label),
        };
        fields.insert("value".into(), value);
        let optional = [
            ("id", self.id.clone()),
            ("span_id", self.span_id.map(|span| span.to_string())),
            ("comment", self.comment.clone()),
            ("source", self.source.clone()),
        ];
        for (key, value) in optional {
            if let Some(value) = value {
                fields.insert(key.into(), json!(value));
            }
        }
        Value::Object(fields)
    }
}

/// Why scores were not stored.
#[derive(Debug, thiserror::Error)]
pub enum ScoreError {
    /// No token: pass one, or set `SPANHOUSE_TOKEN`.
    #[error("no spanhouse token: pass one or set {ENV_TOKEN}")]
    MissingToken,
    /// The request did not get an answer.
    #[error("sending scores failed: {0}")]
    Transport(#[from] reqwest::Error),
    /// spanhouse refused them (a 400 names the score and the field).
    #[error("spanhouse answered {status}: {body}")]
    Refused {
        /// The HTTP status.
        status: u16,
        /// spanhouse's error message.
        body: String,
    },
}

/// Sends scores to one spanhouse.
#[derive(Debug, Clone)]
pub struct ScoreClient {
    url: String,
    token: String,
    http: reqwest::Client,
}

impl ScoreClient {
    /// A client of the spanhouse at `base_url` (`http://127.0.0.1:4318`) with `token`.
    pub fn new(base_url: &str, token: impl Into<String>) -> Result<Self, ScoreError> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()?;
        Ok(Self {
            url: format!("{}/api/v1/scores", base_url.trim_end_matches('/')),
            token: token.into(),
            http,
        })
    }

    /// A client from the environment the exporter reads: `OTEL_EXPORTER_OTLP_ENDPOINT` (the
    /// base URL, default `http://127.0.0.1:4318`) and `SPANHOUSE_TOKEN`.
    pub fn from_env() -> Result<Self, ScoreError> {
        let set = |name: &str| {
            std::env::var(name)
                .ok()
                .filter(|value| !value.trim().is_empty())
        };
        let token = set(ENV_TOKEN).ok_or(ScoreError::MissingToken)?;
        let base = set("OTEL_EXPORTER_OTLP_ENDPOINT").unwrap_or_else(|| DEFAULT_BASE_URL.into());
        Self::new(&base, token.trim())
    }

    /// Stores the scores, all of them or none; returns their ids in order (yours, or those
    /// spanhouse made).
    pub async fn send(&self, scores: &[Score]) -> Result<Vec<String>, ScoreError> {
        let body = json!({ "scores": scores.iter().map(Score::to_json).collect::<Vec<_>>() });
        let response = self
            .http
            .post(&self.url)
            .bearer_auth(&self.token)
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await?;
        let status = response.status().as_u16();
        let bytes = response.bytes().await?;
        if status != 200 {
            return Err(ScoreError::Refused {
                status,
                body: String::from_utf8_lossy(&bytes).into_owned(),
            });
        }
        let answer: Value = serde_json::from_slice(&bytes).unwrap_or_default();
        Ok(answer["ids"]
            .as_array()
            .map(|ids| {
                ids.iter()
                    .filter_map(|id| id.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_score_is_the_json_spanhouse_takes() {
        let trace = TraceId::from_hex("0af7651916cd43dd8448eb211c80319c").unwrap();
        let score = Score::new(trace, "user_feedback", false)
            .id("fb-1")
            .span(SpanId::from_hex("b7ad6b7169203331").unwrap())
            .comment("wrong city");
        assert_eq!(
            score.to_json(),
            json!({"trace_id": "0af7651916cd43dd8448eb211c80319c", "name": "user_feedback",
                   "value": false, "id": "fb-1", "span_id": "b7ad6b7169203331",
                   "comment": "wrong city"})
        );
        assert_eq!(
            Score::new(trace, "quality", 0.5).to_json()["value"],
            json!(0.5)
        );
    }
}
