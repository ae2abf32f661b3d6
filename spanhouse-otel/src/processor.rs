//! The span processor that copies sampling baggage onto spans, as the baggage span processors
//! of the Python and JS SDKs do: the server's `sample_attribute` setting and filters read span
//! attributes, not baggage, which never leaves the process.

use std::time::Duration;

use opentelemetry::baggage::BaggageExt as _;
use opentelemetry::trace::Span as _;
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{Span, SpanData, SpanProcessor};

use crate::keys::DEFAULT_SAMPLE_KEYS;

/// Copies the configured baggage entries (default `spanhouse.sample` and `gentrace.sample`)
/// onto each span when it starts. Exports nothing itself: add it next to the exporting
/// processor.
#[derive(Debug, Clone)]
pub struct BaggageSpanProcessor {
    keys: Vec<String>,
}

impl Default for BaggageSpanProcessor {
    fn default() -> Self {
        Self::with_keys(DEFAULT_SAMPLE_KEYS.iter().copied())
    }
}

impl BaggageSpanProcessor {
    /// A processor copying exactly these baggage entries.
    pub fn with_keys<K: Into<String>>(keys: impl IntoIterator<Item = K>) -> Self {
        Self {
            keys: keys.into_iter().map(Into::into).collect(),
        }
    }

    /// The baggage entries copied.
    pub fn keys(&self) -> &[String] {
        &self.keys
    }
}

impl SpanProcessor for BaggageSpanProcessor {
    fn on_start(&self, span: &mut Span, cx: &Context) {
        let baggage = cx.baggage();
        for key in &self.keys {
            if let Some(value) = baggage.get(key) {
                span.set_attribute(KeyValue::new(key.clone(), value.as_str().to_owned()));
            }
        }
    }

    fn on_end(&self, _span: SpanData) {}

    fn force_flush(&self) -> OTelSdkResult {
        Ok(())
    }

    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        Ok(())
    }
}
