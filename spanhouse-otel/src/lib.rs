//! Client-side helpers for Rust applications that send traces to spanhouse.
//!
//! - [`keys`] — the baggage, attribute and event names written, by convention.
//! - [`BaggageSpanProcessor`] (`processor`) — copies sampling baggage onto spans as they start.
//! - [`SpanhouseSampler`] (`sampler`) — keeps spans marked `sample=true`, parent-based.
//! - [`interaction`] / [`interaction_async`] (`interaction`) — run a function inside a sampled
//!   span that records its arguments, its result and its error.
//! - [`ExporterBuilder`] (`exporter`) — an OTLP span exporter pointed at spanhouse, over
//!   http/protobuf or gRPC, with the token and project headers.
//! - [`tracer_provider_builder`] — an SDK provider builder with the sampler and processor set.
//! - [`ScoreClient`] (`score`) — sends scores (user feedback, grades, labels) of traces.
//!
//! The path of a span: [`interaction`] puts `spanhouse.sample=true` (and `gentrace.sample`) in
//! the baggage of its scope and starts a span → the sampler keeps it (and every child, since
//! they follow their parent) while spans outside any interaction are dropped before they are
//! recorded → the processor copies the baggage entries onto each kept span → the batch
//! processor hands finished spans to the exporter → spanhouse.

pub mod exporter;
pub mod interaction;
pub mod keys;
pub mod processor;
pub mod sampler;
pub mod score;

pub use exporter::{ExporterBuilder, ExporterError, Transport};
pub use interaction::{Interaction, interaction, interaction_async};
pub use processor::BaggageSpanProcessor;
pub use sampler::SpanhouseSampler;
pub use score::{Score, ScoreClient, ScoreError, ScoreValue};

/// An SDK tracer provider builder with [`SpanhouseSampler::default`] and
/// [`BaggageSpanProcessor::default`] in place; add an exporter and build:
///
/// ```no_run
/// let exporter = spanhouse_otel::ExporterBuilder::new().build()?;
/// let provider = spanhouse_otel::tracer_provider_builder()
///     .with_batch_exporter(exporter)
///     .build();
/// opentelemetry::global::set_tracer_provider(provider.clone());
/// # Ok::<(), spanhouse_otel::ExporterError>(())
/// ```
pub fn tracer_provider_builder() -> opentelemetry_sdk::trace::TracerProviderBuilder {
    opentelemetry_sdk::trace::SdkTracerProvider::builder()
        .with_sampler(SpanhouseSampler::default())
        .with_span_processor(BaggageSpanProcessor::default())
}
