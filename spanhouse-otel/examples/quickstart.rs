//! Sends one traced, sampled interaction to a local spanhouse; a span outside it stays out.
//!
//!     cargo run -p spanhouse-otel --example quickstart
//!
//! Endpoint: OTEL_EXPORTER_OTLP_ENDPOINT (default http://localhost:4318), over http/protobuf
//! (gRPC needs a Tokio runtime: see docs/sdks.md). Token: SPANHOUSE_TOKEN, else the one
//! `spanhouse serve` wrote to spanhouse-data/bootstrap-token.

use opentelemetry::trace::{TraceContextExt as _, Tracer as _};
use opentelemetry::{Context, KeyValue, global};
use opentelemetry_sdk::Resource;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let token = match std::env::var("SPANHOUSE_TOKEN") {
        Ok(token) => token,
        Err(_) => std::fs::read_to_string("spanhouse-data/bootstrap-token")?,
    };
    let exporter = spanhouse_otel::ExporterBuilder::new()
        .token(token.trim())
        .build()?;
    let provider = spanhouse_otel::tracer_provider_builder()
        .with_batch_exporter(exporter)
        .with_resource(Resource::builder().with_service_name("quickstart").build())
        .build();
    global::set_tracer_provider(provider.clone());
    let tracer = global::tracer("quickstart");

    // Outside any interaction: the sampler drops it, so it is never sent.
    tracer.in_span("warm up cache", |_| {});

    let mut trace_id = String::new();
    let answer = spanhouse_otel::interaction("answer question", "What is OTLP?", |question| {
        trace_id = Context::current()
            .span()
            .span_context()
            .trace_id()
            .to_string();
        // Spans started inside belong to the interaction's trace.
        let reply = tracer.in_span("chat model", |cx| {
            cx.span()
                .set_attribute(KeyValue::new("gen_ai.request.model", "echo"));
            format!("You asked: {question}")
        });
        Ok::<_, std::io::Error>(reply)
    })?;
    println!("{answer}\ntrace {trace_id}");

    provider.shutdown()?; // flushes what is queued
    Ok(())
}
