//! End-to-end: an application traced with spanhouse-otel exports to a real spanhouse (started
//! on port 0 with a temp data dir by the root package's harness), over http/protobuf and gRPC.
//! Sampled interactions arrive with input, output and their children; errors are marked;
//! spans outside any interaction never leave the process, which the server's ingestion
//! counters prove (`received` counts every span that reached it).

#[path = "../../tests/common/mod.rs"]
mod common;

use std::convert::Infallible;

use common::TestServer;
use opentelemetry::trace::{TraceContextExt as _, Tracer as _, TracerProvider as _};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider};
use serde_json::{Value, json};
use spanhouse_otel::{ExporterBuilder, Interaction, Transport};

/// The trace ids the traced application saw.
struct Sent {
    answered: String,
    failed: String,
    nested: String,
    unsampled: String,
}

fn current_trace_id() -> String {
    Context::current()
        .span()
        .span_context()
        .trace_id()
        .to_string()
}

/// A small traced application: spans outside any interaction, an interaction with a child
/// span, a failing async interaction, and an interaction started under an unsampled span.
async fn traced_application(tracer: SdkTracer) -> Sent {
    let unsampled = tracer.in_span("unsampled work", |_| {
        tracer.in_span("unsampled child", |_| current_trace_id())
    });

    let mut answered = String::new();
    let answer = Interaction::new("answer question")
        .with_tracer(tracer.clone())
        .with_attribute(KeyValue::new("session.id", "session-rust"))
        .run("What is OTLP?", |question| {
            answered = current_trace_id();
            let answer = tracer.in_span("chat model", |cx| {
                cx.span()
                    .set_attribute(KeyValue::new("gen_ai.operation.name", "chat"));
                format!("An answer to: {question}")
            });
            Ok::<_, Infallible>(answer)
        })
        .unwrap();
    assert_eq!(answer, "An answer to: What is OTLP?");

    let mut failed = String::new();
    let failure = Interaction::new("failing call")
        .with_tracer(tracer.clone())
        .run_async(("Say hi", 2), |(prompt, attempts)| {
            failed = current_trace_id();
            async move {
                tokio::task::yield_now().await;
                Err::<String, _>(format!(
                    "model unavailable after {attempts} tries: {prompt}"
                ))
            }
        })
        .await;
    assert!(failure.is_err());

    let nested = tracer.in_span("unsampled request", |_| {
        Interaction::new("nested interaction")
            .with_tracer(tracer.clone())
            .run("inside", |_| Ok::<_, Infallible>(current_trace_id()))
            .unwrap()
    });

    Sent {
        answered,
        failed,
        nested,
        unsampled,
    }
}

fn provider(exporter: opentelemetry_otlp::SpanExporter, service: &str) -> SdkTracerProvider {
    spanhouse_otel::tracer_provider_builder()
        .with_batch_exporter(exporter)
        .with_resource(
            Resource::builder()
                .with_service_name(service.to_owned())
                .build(),
        )
        .build()
}

/// Flushes and shuts the provider down off the runtime's threads: the batch processor's
/// thread exports while this waits, and the server answering it runs on the runtime.
async fn flush(provider: SdkTracerProvider) {
    tokio::task::spawn_blocking(move || {
        provider.force_flush().expect("flush");
        provider.shutdown().expect("shutdown");
    })
    .await
    .unwrap();
}

async fn trace(server: &TestServer, trace_id: &str) -> (u16, Value) {
    server
        .get_json(&format!("/api/v1/traces/{trace_id}"), &server.admin_token)
        .await
}

fn span<'a>(trace: &'a Value, name: &str) -> &'a Value {
    trace["spans"]
        .as_array()
        .unwrap()
        .iter()
        .find(|span| span["name"] == name)
        .unwrap_or_else(|| panic!("no span {name} in {trace}"))
}

/// What every transport must show for what [`traced_application`] sent.
async fn assert_arrived_as_sent(server: &TestServer, sent: &Sent, service: &str) {
    let (status, answered) = trace(server, &sent.answered).await;
    assert_eq!(status, 200, "{answered}");
    let record = &answered["trace"];
    assert_eq!(record["input"], "What is OTLP?");
    assert_eq!(record["output"], "An answer to: What is OTLP?");
    assert_eq!(record["status"], "ok");
    assert_eq!(record["span_count"], 2);
    assert_eq!(record["root_span_name"], "answer question");
    assert_eq!(record["service_name"], service);
    assert_eq!(record["session_id"], "session-rust");
    let root = span(&answered, "answer question");
    assert_eq!(root["attributes"]["input.value"], "What is OTLP?");
    assert_eq!(root["attributes"]["spanhouse.sample"], "true");
    assert_eq!(root["events"][0]["name"], "gentrace.fn.args");
    assert_eq!(root["events"][0]["attributes"]["args"], "\"What is OTLP?\"");
    assert_eq!(root["events"][1]["name"], "gentrace.fn.output");
    let child = span(&answered, "chat model");
    assert_eq!(child["parent_span_id"], root["span_id"]);
    assert_eq!(child["attributes"]["gentrace.sample"], "true");
    assert_eq!(child["attributes"]["spanhouse.sample"], "true");

    let (status, failed) = trace(server, &sent.failed).await;
    assert_eq!(status, 200, "{failed}");
    assert_eq!(failed["trace"]["status"], "error");
    assert_eq!(failed["trace"]["input"], r#"["Say hi",2]"#);
    assert_eq!(failed["trace"]["output"], Value::Null);
    let failing = span(&failed, "failing call");
    assert_eq!(
        failing["status"]["message"],
        "model unavailable after 2 tries: Say hi"
    );
    assert!(
        failing["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|event| event["name"] == "exception"),
        "{failing}"
    );

    let (status, nested) = trace(server, &sent.nested).await;
    assert_eq!(status, 200, "{nested}");
    assert_eq!(nested["trace"]["span_count"], 1);
    let nested_root = span(&nested, "nested interaction");
    assert_eq!(nested_root["parent_span_id"], Value::Null);
    assert_eq!(nested_root["links"].as_array().unwrap().len(), 1);

    let (status, _) = trace(server, &sent.unsampled).await;
    assert_eq!(status, 404, "the unsampled trace never left the process");
    let (status, ingestion) = server
        .get_json("/api/v1/ingestion", &server.admin_token)
        .await;
    assert_eq!(status, 200);
    // answer question + chat model, failing call, nested interaction: nothing else was sent.
    assert_eq!(ingestion["totals"]["received"], 4, "{ingestion}");
    assert_eq!(ingestion["totals"]["accepted"], 4, "{ingestion}");
}

async fn ingest_token(server: &TestServer) -> String {
    let token = server.create_token("default", "ingest").await;
    server.wait_for_token(&token).await;
    token
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sampled_interactions_arrive_over_http_protobuf_and_nothing_else_leaves() {
    let server = TestServer::start().await;
    // Every span the crate exports carries the Gentrace sampling attribute, so a project that
    // keeps only `gentrace.sample == "true"` filters none of them.
    let (status, _) = server
        .put_json(
            "/api/v1/project/settings",
            &server.admin_token,
            json!({"sample_attribute": "gentrace.sample"}),
        )
        .await;
    assert_eq!(status, 200);
    let token = ingest_token(&server).await;
    let exporter = ExporterBuilder::new()
        .endpoint(server.url(""))
        .token(token)
        .project("default")
        .transport(Transport::HttpProtobuf)
        .build()
        .expect("http exporter");
    let provider = provider(exporter, "rust-http");
    let sent = traced_application(provider.tracer("spanhouse-otel-e2e")).await;
    flush(provider).await;

    assert_arrived_as_sent(&server, &sent, "rust-http").await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sampled_interactions_arrive_over_grpc_and_nothing_else_leaves() {
    let server = TestServer::start().await;
    let token = ingest_token(&server).await;
    let exporter = ExporterBuilder::new()
        .endpoint(server.grpc_url())
        .token(token)
        .transport(Transport::Grpc)
        .build()
        .expect("grpc exporter");
    let provider = provider(exporter, "rust-grpc");
    let sent = traced_application(provider.tracer("spanhouse-otel-e2e")).await;
    flush(provider).await;

    assert_arrived_as_sent(&server, &sent, "rust-grpc").await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_token_is_refused_and_nothing_is_stored() {
    let server = TestServer::start().await;
    let exporter = ExporterBuilder::new()
        .endpoint(server.url(""))
        .token("sh_not_a_token")
        .build()
        .expect("http exporter");
    let provider = provider(exporter, "rust-refused");
    let tracer = provider.tracer("spanhouse-otel-e2e");
    Interaction::new("refused")
        .with_tracer(tracer)
        .run("hello", |_| Ok::<_, Infallible>("hi"))
        .unwrap();
    let flushed = tokio::task::spawn_blocking(move || provider.force_flush())
        .await
        .unwrap();
    assert!(flushed.is_err(), "a 401 fails the export: {flushed:?}");
    let (_, ingestion) = server
        .get_json("/api/v1/ingestion", &server.admin_token)
        .await;
    assert_eq!(ingestion["totals"]["accepted"], 0, "{ingestion}");
    server.stop().await;
}
