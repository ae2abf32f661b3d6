//! `interaction`: run a function inside a sampled span that records its arguments, its result
//! and its error, so the call shows in spanhouse as an interaction with input and output.
//!
//! Inside the function's scope the sampling baggage (`spanhouse.sample=true`,
//! `gentrace.sample=true`) is set, so [`SpanhouseSampler`](crate::SpanhouseSampler) keeps the
//! span and [`BaggageSpanProcessor`](crate::BaggageSpanProcessor) marks every span started
//! below it. The arguments and result are written twice, as OpenInference `input.value` /
//! `output.value` and as Gentrace's `gentrace.fn.args` / `gentrace.fn.output` events, so either
//! platform's reader understands the span.
//!
//! An interaction started under a span the sampler dropped starts a trace of its own (linked
//! to that span): a kept child of a dropped parent would arrive without its root.

use std::any::Any;
use std::borrow::Cow;
use std::fmt::Display;
use std::future::{Future, poll_fn};
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::task::Poll;

use opentelemetry::baggage::{Baggage, BaggageExt as _};
use opentelemetry::context::FutureExt as _;
use opentelemetry::global::{BoxedTracer, ObjectSafeTracer};
use opentelemetry::trace::{Link, SpanKind, Status, TraceContextExt as _, Tracer as _};
use opentelemetry::{Context, KeyValue};
use serde::Serialize;

use crate::keys;

/// The tracer name used when no tracer is given (the global provider's).
pub const TRACER_NAME: &str = "spanhouse-otel";

/// Runs `f(args)` in a sampled span named `name` on the global tracer provider, recording
/// `args` as input and `Ok` as output; an `Err` marks the span as failed. Returns what `f`
/// returned.
///
/// ```no_run
/// let answer = spanhouse_otel::interaction("answer", "What is OTLP?", |question| {
///     Ok::<_, std::io::Error>(format!("You asked: {question}"))
/// });
/// ```
pub fn interaction<A, T, E>(
    name: impl Into<Cow<'static, str>>,
    args: A,
    f: impl FnOnce(A) -> Result<T, E>,
) -> Result<T, E>
where
    A: Serialize,
    T: Serialize,
    E: Display,
{
    Interaction::new(name).run(args, f)
}

/// [`interaction`] for async functions: the span and the sampling baggage are current while
/// the future is polled, across `.await` points.
pub async fn interaction_async<A, T, E, Fut>(
    name: impl Into<Cow<'static, str>>,
    args: A,
    f: impl FnOnce(A) -> Fut,
) -> Result<T, E>
where
    A: Serialize,
    T: Serialize,
    E: Display,
    Fut: Future<Output = Result<T, E>>,
{
    Interaction::new(name).run_async(args, f).await
}

/// An interaction to run, with its options: the tracer, the sampling keys, extra attributes.
#[derive(Debug)]
pub struct Interaction {
    name: Cow<'static, str>,
    tracer: Option<BoxedTracer>,
    sample_keys: Vec<String>,
    attributes: Vec<KeyValue>,
}

impl Interaction {
    /// An interaction on the global tracer provider, with the default sampling keys.
    pub fn new(name: impl Into<Cow<'static, str>>) -> Self {
        Self {
            name: name.into(),
            tracer: None,
            sample_keys: keys::DEFAULT_SAMPLE_KEYS
                .iter()
                .map(|&key| key.to_owned())
                .collect(),
            attributes: Vec::new(),
        }
    }

    /// Uses this tracer rather than the global provider's (say, one provider per test).
    pub fn with_tracer<T>(mut self, tracer: T) -> Self
    where
        T: ObjectSafeTracer + Send + Sync + 'static,
    {
        self.tracer = Some(BoxedTracer::new(Box::new(tracer)));
        self
    }

    /// Sets these baggage entries to `true` instead of the default ones.
    pub fn with_sample_keys<K: Into<String>>(mut self, keys: impl IntoIterator<Item = K>) -> Self {
        self.sample_keys = keys.into_iter().map(Into::into).collect();
        self
    }

    /// Adds an attribute to the interaction's span (say `session.id`, `user.id` or
    /// `gentrace.pipeline_id`).
    pub fn with_attribute(mut self, attribute: KeyValue) -> Self {
        self.attributes.push(attribute);
        self
    }

    /// Runs `f(args)` in the interaction's span; see [`interaction`]. A panic in `f` marks the
    /// span as failed, ends it, and goes on unwinding.
    pub fn run<A, T, E>(self, args: A, f: impl FnOnce(A) -> Result<T, E>) -> Result<T, E>
    where
        A: Serialize,
        T: Serialize,
        E: Display,
    {
        let context = self.start(&args);
        let outcome = {
            let _current = context.clone().attach();
            catch_unwind(AssertUnwindSafe(|| f(args)))
        };
        conclude(&context, outcome)
    }

    /// Runs the future `f(args)` returns in the interaction's span; see
    /// [`interaction_async`]. A panic while it is polled marks the span as failed, ends it,
    /// and goes on unwinding. Dropped before it completes (a timeout, a cancelled task), the
    /// span ends with its status unset.
    pub async fn run_async<A, T, E, Fut>(self, args: A, f: impl FnOnce(A) -> Fut) -> Result<T, E>
    where
        A: Serialize,
        T: Serialize,
        E: Display,
        Fut: Future<Output = Result<T, E>>,
    {
        let context = self.start(&args);
        let future = {
            let _current = context.clone().attach();
            catch_unwind(AssertUnwindSafe(|| f(args)))
        };
        let outcome = match future {
            Ok(future) => {
                let mut future = Box::pin(future.with_context(context.clone()));
                poll_fn(|task| {
                    match catch_unwind(AssertUnwindSafe(|| future.as_mut().poll(task))) {
                        Ok(Poll::Pending) => Poll::Pending,
                        Ok(Poll::Ready(result)) => Poll::Ready(Ok(result)),
                        Err(panic) => Poll::Ready(Err(panic)),
                    }
                })
                .await
            }
            Err(panic) => Err(panic),
        };
        conclude(&context, outcome)
    }

    /// Starts the span under the current context with the sampling baggage set, records the
    /// arguments, and returns the context holding both.
    fn start(self, args: &impl Serialize) -> Context {
        let current = Context::current();
        let mut baggage: Baggage = current
            .baggage()
            .iter()
            .map(|(key, entry)| (key.clone(), entry.clone()))
            .collect();
        for key in &self.sample_keys {
            baggage.insert(key.clone(), "true");
        }

        let parent_span = current.span().span_context().clone();
        let parent_was_dropped = parent_span.is_valid() && !parent_span.is_sampled();
        let (parent, links) = if parent_was_dropped {
            (Context::new(), vec![Link::with_context(parent_span)])
        } else {
            (current.clone(), Vec::new())
        };
        let parent = parent.with_baggage(baggage);

        let input = Recorded::of(args);
        let mut attributes = self.attributes;
        attributes.extend(
            self.sample_keys
                .iter()
                .map(|key| KeyValue::new(key.clone(), "true")),
        );
        attributes.push(KeyValue::new(keys::OPENINFERENCE_SPAN_KIND, "CHAIN"));
        attributes.push(KeyValue::new(keys::INPUT_VALUE, input.value.clone()));
        attributes.push(KeyValue::new(keys::INPUT_MIME_TYPE, input.mime_type));

        let tracer = self
            .tracer
            .unwrap_or_else(|| opentelemetry::global::tracer(TRACER_NAME));
        let span = tracer
            .span_builder(self.name)
            .with_kind(SpanKind::Internal)
            .with_attributes(attributes)
            .with_links(links)
            .start_with_context(&tracer, &parent);
        let context = parent.with_span(span);
        context.span().add_event(
            keys::EVENT_FN_ARGS,
            vec![KeyValue::new(keys::EVENT_FN_ARGS_KEY, input.json)],
        );
        context
    }
}

/// Records how `f` ended on the span, ends the span, and hands the result back (or goes on
/// unwinding).
fn conclude<T: Serialize, E: Display>(
    context: &Context,
    outcome: Result<Result<T, E>, Box<dyn Any + Send>>,
) -> Result<T, E> {
    match outcome {
        Ok(result) => {
            finish(context, &result);
            result
        }
        Err(panic) => {
            fail(context, &panic_message(panic.as_ref()), "panic");
            context.span().end();
            resume_unwind(panic)
        }
    }
}

/// Records the result on the span and ends it.
fn finish<T: Serialize, E: Display>(context: &Context, result: &Result<T, E>) {
    let span = context.span();
    match result {
        Ok(value) => {
            let output = Recorded::of(value);
            span.set_attribute(KeyValue::new(keys::OUTPUT_VALUE, output.value));
            span.set_attribute(KeyValue::new(keys::OUTPUT_MIME_TYPE, output.mime_type));
            span.add_event(
                keys::EVENT_FN_OUTPUT,
                vec![KeyValue::new(keys::EVENT_FN_OUTPUT_KEY, output.json)],
            );
            span.set_status(Status::Ok);
        }
        Err(error) => fail(context, &error.to_string(), std::any::type_name::<E>()),
    }
    span.end();
}

/// Marks the span as failed, with an `exception` event.
fn fail(context: &Context, message: &str, error_type: &str) {
    let span = context.span();
    span.add_event(
        keys::EVENT_EXCEPTION,
        vec![
            KeyValue::new(keys::EXCEPTION_MESSAGE, message.to_owned()),
            KeyValue::new(keys::EXCEPTION_TYPE, error_type.to_owned()),
        ],
    );
    span.set_status(Status::error(message.to_owned()));
}

fn panic_message(panic: &(dyn Any + Send)) -> String {
    let text = panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("panic");
    format!("panicked: {text}")
}

/// A value as the span records it.
#[derive(Debug, PartialEq)]
struct Recorded {
    /// For `input.value`/`output.value`: a string as it is, anything else as JSON.
    value: String,
    mime_type: &'static str,
    /// For the Gentrace events: always JSON.
    json: String,
}

impl Recorded {
    fn of(value: &impl Serialize) -> Self {
        let json_value = match serde_json::to_value(value) {
            Ok(json_value) => json_value,
            Err(error) => serde_json::Value::String(format!("<not serializable: {error}>")),
        };
        let json = json_value.to_string();
        match json_value {
            serde_json::Value::String(text) => Self {
                value: text,
                mime_type: "text/plain",
                json,
            },
            _ => Self {
                value: json.clone(),
                mime_type: "application/json",
                json,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_recorded_as_text_and_the_rest_as_json() {
        let text = Recorded::of(&"Say hi");
        assert_eq!(text.value, "Say hi");
        assert_eq!(text.mime_type, "text/plain");
        assert_eq!(text.json, "\"Say hi\"");

        let arguments = Recorded::of(&("Say hi", 0.5));
        assert_eq!(arguments.value, r#"["Say hi",0.5]"#);
        assert_eq!(arguments.mime_type, "application/json");
        assert_eq!(arguments.json, arguments.value);
    }

    #[test]
    fn a_value_that_cannot_be_serialized_is_recorded_as_a_note() {
        let mut map = std::collections::HashMap::new();
        map.insert((1, 2), "tuple keys are not JSON");
        let recorded = Recorded::of(&map);
        assert!(
            recorded.value.starts_with("<not serializable"),
            "{recorded:?}"
        );
    }

    #[test]
    fn panic_messages() {
        assert_eq!(panic_message(&"boom"), "panicked: boom");
        assert_eq!(panic_message(&String::from("bang")), "panicked: bang");
        assert_eq!(panic_message(&7), "panicked: panic");
    }
}
