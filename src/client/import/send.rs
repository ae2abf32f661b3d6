//! Sending batches to a server's OTLP/HTTP receiver as an OpenTelemetry exporter does:
//! protobuf bodies, retries of what OTLP calls retryable (429, 502, 503, 504 and lost
//! connections) after the server's `Retry-After` or a growing back-off, and the rest counted
//! under what the server answered.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceResponse;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use prost::Message as _;
use reqwest::StatusCode;

use super::batch::Batch;
use crate::otlp::RpcStatus;

/// Longest wait between two attempts, whatever the server asks.
const MAX_WAIT: Duration = Duration::from_secs(60);

/// Longest one request may take (a lost connection is then retried).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);

/// Messages of refused requests kept for the summary.
const MAX_MESSAGES: usize = 5;

/// What the import did so far; shared by the senders, the progress display and the summary.
#[derive(Debug, Default)]
pub struct Tally {
    /// Spans in requests sent.
    pub spans_sent: AtomicU64,
    /// Spans the server accepted.
    pub spans_accepted: AtomicU64,
    /// Spans the server refused for good (a 400, or `partial_success.rejected_spans`).
    pub spans_rejected: AtomicU64,
    /// Spans whose request could not be delivered (retries exhausted, or an answer that is
    /// neither success nor a refusal of the data).
    pub spans_failed: AtomicU64,
    /// Log records sent, accepted and refused, as for spans.
    pub records_sent: AtomicU64,
    pub records_accepted: AtomicU64,
    pub records_rejected: AtomicU64,
    pub records_failed: AtomicU64,
    /// Answers waited out: 429/502/503/504 or a lost connection, then a retry.
    pub retries: AtomicU64,
    /// The first few messages of refused or failed requests.
    pub messages: Mutex<Vec<String>>,
}

impl Tally {
    fn note(&self, message: String) {
        let mut messages = self
            .messages
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        if messages.len() < MAX_MESSAGES && !messages.contains(&message) {
            messages.push(message);
        }
    }
}

/// An answer that stops the whole import: every other request would get it too.
#[derive(Debug, thiserror::Error)]
#[error("the server refused the import: {status} {message}")]
pub struct Fatal {
    pub status: u16,
    pub message: String,
}

/// Where and how to send.
pub struct Sender {
    pub client: reqwest::Client,
    /// The server's base URL, without a trailing slash.
    pub base_url: String,
    pub token: String,
    /// How long one request may keep being retried.
    pub retry_for: Duration,
}

enum Outcome {
    /// Delivered: how many items the server refused of it, and why.
    Delivered { rejected: u64, message: String },
    /// Refused as a whole for its content (a 4xx other than 401/403/404/429).
    Refused(String),
    /// Not delivered: retries exhausted or an unexpected answer.
    Failed(String),
}

impl Sender {
    /// Sends one batch until it is delivered, refused, or its retries run out, and counts it.
    pub async fn send(&self, batch: &Batch, tally: &Tally) -> Result<(), Fatal> {
        let (path, body, items, sent, accepted, rejected, failed) = match batch {
            Batch::Traces { body, spans } => (
                "/v1/traces",
                body,
                *spans,
                &tally.spans_sent,
                &tally.spans_accepted,
                &tally.spans_rejected,
                &tally.spans_failed,
            ),
            Batch::Logs { body, records } => (
                "/v1/logs",
                body,
                *records,
                &tally.records_sent,
                &tally.records_accepted,
                &tally.records_rejected,
                &tally.records_failed,
            ),
        };
        sent.fetch_add(items, Ordering::Relaxed);
        match self.deliver(path, body, tally).await? {
            Outcome::Delivered {
                rejected: refused,
                message,
            } => {
                let refused = refused.min(items);
                accepted.fetch_add(items - refused, Ordering::Relaxed);
                rejected.fetch_add(refused, Ordering::Relaxed);
                if refused > 0 {
                    tally.note(format!("{refused} refused: {message}"));
                }
            }
            Outcome::Refused(message) => {
                rejected.fetch_add(items, Ordering::Relaxed);
                tally.note(message);
            }
            Outcome::Failed(message) => {
                failed.fetch_add(items, Ordering::Relaxed);
                tally.note(message);
            }
        }
        Ok(())
    }

    async fn deliver(&self, path: &str, body: &[u8], tally: &Tally) -> Result<Outcome, Fatal> {
        let started = Instant::now();
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let response = self
                .client
                .post(format!("{}{path}", self.base_url))
                .bearer_auth(&self.token)
                .header(reqwest::header::CONTENT_TYPE, "application/x-protobuf")
                .timeout(REQUEST_TIMEOUT)
                .body(body.to_vec())
                .send()
                .await;
            let (wait, why) = match response {
                Err(error) => (None, format!("cannot reach the server: {error}")),
                Ok(response) => {
                    let status = response.status();
                    let retry_after = response
                        .headers()
                        .get(reqwest::header::RETRY_AFTER)
                        .and_then(|value| value.to_str().ok())
                        .and_then(parse_retry_after);
                    let bytes = response.bytes().await.unwrap_or_default();
                    if status.is_success() {
                        return Ok(delivered(path, &bytes));
                    }
                    let message = format!("{status}: {}", status_message(&bytes));
                    match status {
                        StatusCode::UNAUTHORIZED
                        | StatusCode::FORBIDDEN
                        | StatusCode::NOT_FOUND => {
                            return Err(Fatal {
                                status: status.as_u16(),
                                message: status_message(&bytes),
                            });
                        }
                        StatusCode::TOO_MANY_REQUESTS
                        | StatusCode::BAD_GATEWAY
                        | StatusCode::SERVICE_UNAVAILABLE
                        | StatusCode::GATEWAY_TIMEOUT => (retry_after, message),
                        status if status.is_client_error() => return Ok(Outcome::Refused(message)),
                        _ => return Ok(Outcome::Failed(message)),
                    }
                }
            };
            let wait = wait.unwrap_or_else(|| backoff(attempt)).min(MAX_WAIT);
            if started.elapsed() + wait > self.retry_for {
                return Ok(Outcome::Failed(format!(
                    "gave up after {attempt} attempts in {} s: {why}",
                    started.elapsed().as_secs()
                )));
            }
            tally.retries.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(wait).await;
        }
    }
}

/// What a 2xx answer says was refused of the request.
fn delivered(path: &str, body: &[u8]) -> Outcome {
    let (rejected, message) = if path == "/v1/logs" {
        ExportLogsServiceResponse::decode(body)
            .ok()
            .and_then(|response| response.partial_success)
            .map(|partial| (partial.rejected_log_records, partial.error_message))
            .unwrap_or_default()
    } else {
        ExportTraceServiceResponse::decode(body)
            .ok()
            .and_then(|response| response.partial_success)
            .map(|partial| (partial.rejected_spans, partial.error_message))
            .unwrap_or_default()
    };
    Outcome::Delivered {
        rejected: rejected.max(0) as u64,
        message,
    }
}

/// The message of an OTLP error body (`google.rpc.Status`), else the body as text.
fn status_message(body: &[u8]) -> String {
    match RpcStatus::decode(body) {
        Ok(status) if !status.message.is_empty() => status.message,
        _ => String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned(),
    }
}

/// Exponential back-off with jitter: about 0.5, 1, 2, 4 … s, at most [`MAX_WAIT`].
fn backoff(attempt: u32) -> Duration {
    let base = Duration::from_millis(500).saturating_mul(1 << attempt.min(7).saturating_sub(1));
    let jitter = rand::random_range(0.8..1.2);
    base.mul_f64(jitter).min(MAX_WAIT)
}

/// `Retry-After`: seconds, or an HTTP date.
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let date =
        time::OffsetDateTime::parse(value, &time::format_description::well_known::Rfc2822).ok()?;
    let wait = date - time::OffsetDateTime::now_utc();
    Some(Duration::try_from(wait).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_takes_seconds_and_http_dates() {
        assert_eq!(parse_retry_after("3"), Some(Duration::from_secs(3)));
        assert_eq!(parse_retry_after(" 0 "), Some(Duration::ZERO));
        // A date in the past: retry at once.
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(Duration::ZERO)
        );
        let soon = time::OffsetDateTime::now_utc() + time::Duration::seconds(30);
        let text = soon
            .format(&time::format_description::well_known::Rfc2822)
            .unwrap();
        let wait = parse_retry_after(&text).unwrap();
        assert!(
            wait > Duration::from_secs(25) && wait <= Duration::from_secs(30),
            "{wait:?}"
        );
        assert_eq!(parse_retry_after("soon"), None);
    }

    #[test]
    fn back_off_grows_and_is_capped() {
        assert!(backoff(1) < Duration::from_secs(1));
        assert!(backoff(3) > backoff(1));
        assert!(backoff(40) <= MAX_WAIT);
    }
}
