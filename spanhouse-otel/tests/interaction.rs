//! `interaction` through the real SDK pipeline (sampler, processor, provider), with a
//! processor that keeps finished spans in memory instead of exporting them.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use opentelemetry::baggage::BaggageExt as _;
use opentelemetry::trace::{Status, TraceContextExt as _, Tracer as _, TracerProvider as _};
use opentelemetry::{Context, Value};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider, Span, SpanData, SpanProcessor};
use spanhouse_otel::Interaction;

/// Keeps every span that ends.
#[derive(Debug, Clone, Default)]
struct Finished(Arc<Mutex<Vec<SpanData>>>);

impl SpanProcessor for Finished {
    fn on_start(&self, _span: &mut Span, _cx: &Context) {}
    fn on_end(&self, span: SpanData) {
        self.0.lock().unwrap().push(span);
    }
    fn force_flush(&self) -> OTelSdkResult {
        Ok(())
    }
    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        Ok(())
    }
}

impl Finished {
    fn spans(&self) -> Vec<SpanData> {
        self.0.lock().unwrap().clone()
    }

    fn named(&self, name: &str) -> SpanData {
        self.spans()
            .into_iter()
            .find(|span| span.name == name)
            .unwrap_or_else(|| panic!("no finished span {name}"))
    }
}

fn traced() -> (SdkTracerProvider, SdkTracer, Finished) {
    let finished = Finished::default();
    let provider = spanhouse_otel::tracer_provider_builder()
        .with_span_processor(finished.clone())
        .build();
    let tracer = provider.tracer("interaction-tests");
    (provider, tracer, finished)
}

fn attribute(span: &SpanData, key: &str) -> Option<Value> {
    span.attributes
        .iter()
        .find(|attribute| attribute.key.as_str() == key)
        .map(|attribute| attribute.value.clone())
}

fn text(value: &str) -> Option<Value> {
    Some(Value::from(value.to_owned()))
}

fn event_value(span: &SpanData, event: &str, key: &str) -> Option<Value> {
    let event = span
        .events
        .iter()
        .find(|candidate| candidate.name == event)?;
    event
        .attributes
        .iter()
        .find(|attribute| attribute.key.as_str() == key)
        .map(|attribute| attribute.value.clone())
}

#[test]
fn an_interaction_records_input_output_and_the_gentrace_events() {
    let (_provider, tracer, finished) = traced();
    let reply = Interaction::new("answer")
        .with_tracer(tracer.clone())
        .run(("Say hi", 3), |(prompt, times)| {
            Ok::<_, Infallible>(vec![prompt; times])
        })
        .unwrap();
    assert_eq!(reply, ["Say hi"; 3]);

    let span = finished.named("answer");
    assert_eq!(attribute(&span, "input.value"), text(r#"["Say hi",3]"#));
    assert_eq!(
        attribute(&span, "input.mime_type"),
        text("application/json")
    );
    assert_eq!(
        attribute(&span, "output.value"),
        text(r#"["Say hi","Say hi","Say hi"]"#)
    );
    assert_eq!(
        event_value(&span, "gentrace.fn.args", "args"),
        text(r#"["Say hi",3]"#)
    );
    assert_eq!(
        event_value(&span, "gentrace.fn.output", "output"),
        text(r#"["Say hi","Say hi","Say hi"]"#)
    );
    assert_eq!(attribute(&span, "spanhouse.sample"), text("true"));
    assert_eq!(attribute(&span, "gentrace.sample"), text("true"));
    assert_eq!(span.status, Status::Ok);
}

#[test]
fn only_spans_inside_an_interaction_are_recorded_and_children_carry_the_mark() {
    let (_provider, tracer, finished) = traced();
    tracer.in_span("outside", |_| tracer.in_span("outside child", |_| {}));
    Interaction::new("inside")
        .with_tracer(tracer.clone())
        .run("question", |_| {
            tracer.in_span("child", |_| {
                tracer.in_span("grandchild", |_| {});
            });
            Ok::<_, Infallible>("answer")
        })
        .unwrap();

    let mut names: Vec<_> = finished.spans().into_iter().map(|span| span.name).collect();
    names.sort();
    assert_eq!(names, ["child", "grandchild", "inside"]);
    let root = finished.named("inside");
    let grandchild = finished.named("grandchild");
    assert_eq!(
        grandchild.span_context.trace_id(),
        root.span_context.trace_id()
    );
    assert_eq!(attribute(&grandchild, "spanhouse.sample"), text("true"));
    assert_eq!(attribute(&grandchild, "gentrace.sample"), text("true"));
}

#[test]
fn the_sampling_baggage_holds_inside_the_interaction_only() {
    let (_provider, tracer, _finished) = traced();
    let inside = Interaction::new("scope")
        .with_tracer(tracer)
        .run((), |()| {
            let current = Context::current();
            let entry = current
                .baggage()
                .get("spanhouse.sample")
                .map(|value| value.to_string());
            Ok::<_, Infallible>(entry)
        })
        .unwrap();
    assert_eq!(inside.as_deref(), Some("true"));
    assert!(
        Context::current()
            .baggage()
            .get("spanhouse.sample")
            .is_none()
    );
}

#[test]
fn an_error_marks_the_span_and_records_no_output() {
    let (_provider, tracer, finished) = traced();
    let result = Interaction::new("failing")
        .with_tracer(tracer)
        .run("question", |_| {
            Err::<String, _>("rate limited by the model")
        });
    assert_eq!(result.unwrap_err(), "rate limited by the model");

    let span = finished.named("failing");
    assert_eq!(span.status, Status::error("rate limited by the model"));
    assert_eq!(attribute(&span, "output.value"), None);
    assert_eq!(
        event_value(&span, "exception", "exception.message"),
        text("rate limited by the model")
    );
}

#[test]
fn a_panic_marks_the_span_ends_it_and_unwinds() {
    let (_provider, tracer, finished) = traced();
    let unwound = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        Interaction::new("panicking")
            .with_tracer(tracer)
            .run((), |()| -> Result<(), Infallible> {
                panic!("index out of range")
            })
    }));
    assert!(unwound.is_err());
    let span = finished.named("panicking");
    assert_eq!(span.status, Status::error("panicked: index out of range"));
}

#[tokio::test]
async fn an_async_interaction_keeps_its_span_current_across_awaits() {
    let (_provider, tracer, finished) = traced();
    let seen = Interaction::new("async answer")
        .with_tracer(tracer.clone())
        .run_async("question", |_| async {
            tokio::task::yield_now().await;
            tracer.in_span("after await", |_| {});
            let current = Context::current().span().span_context().span_id();
            Ok::<_, Infallible>(current.to_string())
        })
        .await
        .unwrap();
    let root = finished.named("async answer");
    assert_eq!(seen, root.span_context.span_id().to_string());
    assert_eq!(
        finished.named("after await").parent_span_id,
        root.span_context.span_id()
    );
    assert_eq!(attribute(&root, "output.value"), text(&seen));
}

#[tokio::test]
async fn an_async_panic_marks_the_span_and_unwinds() {
    let (_provider, tracer, finished) = traced();
    let task = tokio::spawn(async move {
        Interaction::new("async panicking")
            .with_tracer(tracer)
            .run_async((), |()| async {
                tokio::task::yield_now().await;
                panic!("lost the connection")
            })
            .await
            .map_err(|error: Infallible| error)
    });
    let joined: Result<Result<(), Infallible>, _> = task.await;
    assert!(joined.unwrap_err().is_panic());
    let span = finished.named("async panicking");
    assert_eq!(span.status, Status::error("panicked: lost the connection"));
}

#[test]
fn an_interaction_under_a_dropped_span_starts_its_own_linked_trace() {
    let (_provider, tracer, finished) = traced();
    let dropped_parent = tracer.in_span("unsampled request", |cx| {
        Interaction::new("nested")
            .with_tracer(tracer.clone())
            .run((), |()| Ok::<_, Infallible>(()))
            .unwrap();
        cx.span().span_context().clone()
    });
    let nested = finished.named("nested");
    assert_ne!(nested.span_context.trace_id(), dropped_parent.trace_id());
    assert_eq!(nested.parent_span_id, opentelemetry::trace::SpanId::INVALID);
    assert_eq!(nested.links.links.len(), 1);
    assert_eq!(nested.links.links[0].span_context, dropped_parent);
}
