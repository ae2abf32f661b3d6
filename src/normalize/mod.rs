//! Normalization: what a span means for an LLM application, read from whichever convention its
//! instrumentation used. Pure functions, no I/O. The precedence of every field is written down
//! in `docs/semantic-convention.md`; the order of the key lists below is that precedence.

mod ai_sdk;
pub mod conventions;
pub mod events;
pub mod messages;
pub mod metadata;
pub mod pricing;
pub mod text;
pub mod values;

use serde_json::Value;

use crate::model::attributes::{AttrValue, KeyValue, find, find_str};
use crate::model::llm::{Cost, LlmCall, Message, TokenUsage, ToolExecution};
use crate::model::{Event, Span, SpanSemantics, StatusCode};
use conventions::{
    ai_sdk as ai, genai, gentrace, langfuse, logfire, openinference as oi, shared, traceloop,
};
use events::{EventMessages, event_value, events_from_attributes, messages_from_events};
use messages::{input_text, messages_from_flattened, messages_from_json, output_text};
use pricing::Pricing;
use text::{Direction, display_text};
use values::{first_float, first_int, first_text, json_float, json_int, to_json};

/// Reads spans; holds the price table for calls that report no cost.
#[derive(Debug, Clone, Default)]
pub struct Normalizer {
    pricing: Pricing,
}

const SESSION_KEYS: &[&str] = &[
    shared::SESSION_ID,
    genai::CONVERSATION_ID,
    langfuse::SESSION_ID,
    langfuse::TRACE_SESSION_ID,
];
const USER_KEYS: &[&str] = &[
    shared::USER_ID,
    langfuse::USER_ID,
    langfuse::TRACE_USER_ID,
    shared::ENDUSER_ID,
];
const INPUT_VALUE_KEYS: &[&str] = &[
    oi::INPUT_VALUE,
    langfuse::OBSERVATION_INPUT,
    traceloop::ENTITY_INPUT,
    langfuse::TRACE_INPUT,
];
const OUTPUT_VALUE_KEYS: &[&str] = &[
    oi::OUTPUT_VALUE,
    langfuse::OBSERVATION_OUTPUT,
    traceloop::ENTITY_OUTPUT,
    langfuse::TRACE_OUTPUT,
];

impl Normalizer {
    pub fn new(pricing: Pricing) -> Self {
        Self { pricing }
    }

    /// Reads one span, with the content events the logs signal attached to it (if any).
    pub fn normalize(&self, span: &Span, content_events: &[Event]) -> SpanSemantics {
        let attributes = &span.attributes;
        let attribute_events = events_from_attributes(attributes, span.start_time_unix_nano);
        let mut events: Vec<&Event> = span
            .events
            .iter()
            .chain(content_events)
            .chain(&attribute_events)
            .collect();
        events.sort_by_key(|event| event.time_unix_nano);
        let from_events = messages_from_events(&events);

        let input_messages = input_messages(attributes, &from_events);
        let output_messages = output_messages(attributes, &from_events);

        let input = value_text(
            attributes,
            INPUT_VALUE_KEYS,
            Direction::Input,
            &input_messages,
        )
        .or_else(|| {
            event_value(
                &events,
                gentrace::EVENT_FN_ARGS,
                gentrace::EVENT_FN_ARGS_KEY,
            )
            .and_then(|raw| display_text(&raw, Direction::Input, &input_messages))
        })
        .or_else(|| input_text(&input_messages));
        let output = value_text(
            attributes,
            OUTPUT_VALUE_KEYS,
            Direction::Output,
            &output_messages,
        )
        .or_else(|| {
            event_value(
                &events,
                gentrace::EVENT_FN_OUTPUT,
                gentrace::EVENT_FN_OUTPUT_KEY,
            )
            .and_then(|raw| display_text(&raw, Direction::Output, &output_messages))
        })
        .or_else(|| output_text(&output_messages));

        let llm = (is_llm_call(attributes) && !awaits_stream(span, &output_messages))
            .then(|| self.llm_call(attributes, &input, &output, input_messages, output_messages));
        SpanSemantics {
            input,
            output,
            session_id: first_text(attributes, SESSION_KEYS)
                .or_else(|| first_text(attributes, ai::SESSION_IDS)),
            user_id: first_text(attributes, USER_KEYS)
                .or_else(|| first_text(attributes, ai::USER_IDS)),
            pipeline_id: first_text(attributes, &[gentrace::PIPELINE_ID]),
            llm,
            tool: tool_execution(span),
        }
    }

    fn llm_call(
        &self,
        attributes: &[KeyValue],
        input: &Option<String>,
        output: &Option<String>,
        input_messages: Vec<Message>,
        output_messages: Vec<Message>,
    ) -> LlmCall {
        let invocation =
            find_str(attributes, oi::INVOCATION_PARAMETERS).and_then(values::parse_json_text);
        let request_model = first_text(
            attributes,
            &[
                genai::REQUEST_MODEL,
                langfuse::OBSERVATION_MODEL_NAME,
                traceloop::LLM_REQUEST_MODEL,
                ai::MODEL_ID,
            ],
        )
        .or_else(|| {
            invocation
                .as_ref()
                .and_then(|parameters| parameters.get("model"))
                .and_then(Value::as_str)
                .map(str::to_owned)
        });
        let response_model = first_text(
            attributes,
            &[
                genai::RESPONSE_MODEL,
                oi::MODEL_NAME,
                traceloop::LLM_RESPONSE_MODEL,
                ai::RESPONSE_MODEL,
            ],
        );
        let usage = token_usage(attributes);
        let mut cost = reported_cost(attributes);
        if cost.total.is_none() && cost.prompt.is_none() && cost.completion.is_none() {
            let model = response_model.as_deref().or(request_model.as_deref());
            if let Some((prompt, completion, total)) =
                self.pricing.cost(model, usage.prompt, usage.completion)
            {
                cost = Cost {
                    prompt: Some(prompt),
                    completion: Some(completion),
                    total: Some(total),
                };
            }
        }
        let finish_reasons = finish_reasons(attributes, &output_messages);
        LlmCall {
            operation: first_text(
                attributes,
                &[genai::OPERATION_NAME, traceloop::LLM_REQUEST_TYPE],
            ),
            provider: first_text(attributes, &[genai::PROVIDER_NAME])
                .or_else(|| ai_sdk::provider(attributes))
                .or_else(|| first_text(attributes, &[genai::SYSTEM, oi::PROVIDER, oi::SYSTEM])),
            request_model,
            response_model,
            input: input.clone(),
            output: output.clone(),
            input_messages,
            output_messages,
            usage,
            cost,
            finish_reasons,
        }
    }
}

/// Whether the span is a call of a model.
fn is_llm_call(attributes: &[KeyValue]) -> bool {
    if let Some(operation) = find_str(attributes, genai::OPERATION_NAME) {
        return genai::MODEL_OPERATIONS.contains(&operation);
    }
    if let Some(kind) = find_str(attributes, oi::SPAN_KIND) {
        return kind.eq_ignore_ascii_case(oi::SPAN_KIND_LLM);
    }
    if let Some(kind) = find_str(attributes, langfuse::OBSERVATION_TYPE) {
        return kind == langfuse::OBSERVATION_TYPE_GENERATION;
    }
    if find_str(attributes, traceloop::LLM_REQUEST_TYPE).is_some() {
        return true;
    }
    if find(attributes, ai::OPERATION_ID).is_some() {
        return ai_sdk::is_model_call(attributes);
    }
    // Older GenAI spans name a system and a model without an operation.
    (find(attributes, genai::SYSTEM).is_some() || find(attributes, genai::PROVIDER_NAME).is_some())
        && (find(attributes, genai::REQUEST_MODEL).is_some()
            || find(attributes, genai::RESPONSE_MODEL).is_some())
}

/// Whether the span is Logfire's request half of a streamed call. Logfire records such a call
/// twice: a request span that ends when the stream opens (the input, no answer, no usage), and,
/// once the stream is consumed, a zero-length `log` span with a copy of the request, the answer
/// and the usage. The second is the call; the first keeps its input text and is no call, so that
/// one call counts once, with one model. A stream never consumed is no call.
fn awaits_stream(span: &Span, output_messages: &[Message]) -> bool {
    let attributes = &span.attributes;
    find_str(attributes, logfire::SPAN_TYPE) == Some(logfire::SPAN_TYPE_SPAN)
        && find(attributes, logfire::MSG_TEMPLATE).is_some()
        && output_messages.is_empty()
        && span.status.code != StatusCode::Error
        && first_int(
            attributes,
            &[genai::USAGE_INPUT_TOKENS, genai::USAGE_OUTPUT_TOKENS],
        )
        .is_none()
}

/// Whether the span runs a tool, and which.
fn tool_execution(span: &Span) -> Option<ToolExecution> {
    let attributes = &span.attributes;
    let name = if find_str(attributes, genai::OPERATION_NAME) == Some(genai::OPERATION_EXECUTE_TOOL)
    {
        first_text(attributes, &[genai::TOOL_NAME, oi::TOOL_NAME])
            .or_else(|| Some(span.name.clone()))
    } else if find_str(attributes, oi::SPAN_KIND)
        .is_some_and(|kind| kind.eq_ignore_ascii_case(oi::SPAN_KIND_TOOL))
    {
        first_text(attributes, &[oi::TOOL_NAME, genai::TOOL_NAME])
            .or_else(|| Some(span.name.clone()))
    } else if find_str(attributes, traceloop::SPAN_KIND) == Some(traceloop::SPAN_KIND_TOOL) {
        first_text(attributes, &[traceloop::ENTITY_NAME]).or_else(|| Some(span.name.clone()))
    } else if find_str(attributes, langfuse::OBSERVATION_TYPE)
        == Some(langfuse::OBSERVATION_TYPE_TOOL)
    {
        Some(span.name.clone())
    } else if ai_sdk::is_tool_call(attributes) {
        first_text(attributes, &[ai::TOOL_CALL_NAME]).or_else(|| Some(span.name.clone()))
    } else {
        None
    }?;
    Some(ToolExecution {
        name,
        failed: span.status.code == StatusCode::Error,
    })
}

/// Reads a message-list attribute given as JSON text or as OTLP arrays and maps.
fn json_messages(attributes: &[KeyValue], key: &str) -> Option<Vec<Message>> {
    // A string that is not JSON holds no messages: skip `to_json`'s copy of it into a JSON string.
    let json = match find(attributes, key)? {
        AttrValue::String(text) => match messages::text_messages_from_json(text) {
            Some(messages) => return (!messages.is_empty()).then_some(messages),
            None => values::parse_json_text(text)?,
        },
        other => to_json(other),
    };
    messages_from_json(&json).filter(|messages| !messages.is_empty())
}

/// Input messages, first source that has any: GenAI JSON attributes, GenAI content events,
/// OpenInference flattened, older GenAI flattened, Langfuse observation input, a JSON request in
/// `input.value`. GenAI system instructions go first.
fn input_messages(attributes: &[KeyValue], from_events: &EventMessages) -> Vec<Message> {
    let mut messages = json_messages(attributes, genai::INPUT_MESSAGES)
        .or_else(|| (!from_events.input.is_empty()).then(|| from_events.input.clone()))
        .or_else(|| {
            non_empty(messages_from_flattened(
                attributes,
                oi::INPUT_MESSAGES_PREFIX,
            ))
        })
        .or_else(|| non_empty(messages_from_flattened(attributes, genai::PROMPT_PREFIX)))
        .or_else(|| json_messages(attributes, langfuse::OBSERVATION_INPUT))
        .or_else(|| json_value_messages(attributes, oi::INPUT_VALUE, oi::INPUT_MIME_TYPE))
        .or_else(|| ai_sdk::input_messages(attributes))
        .unwrap_or_default();
    let system = json_messages(attributes, genai::SYSTEM_INSTRUCTIONS)
        .unwrap_or_else(|| from_events.system_instructions.clone());
    if !system.is_empty() && !messages.iter().any(|message| message.role == "system") {
        messages.splice(0..0, system);
    }
    messages
}

/// Output messages, in the same order of sources as the input ones.
fn output_messages(attributes: &[KeyValue], from_events: &EventMessages) -> Vec<Message> {
    json_messages(attributes, genai::OUTPUT_MESSAGES)
        .or_else(|| (!from_events.output.is_empty()).then(|| from_events.output.clone()))
        .or_else(|| {
            non_empty(messages_from_flattened(
                attributes,
                oi::OUTPUT_MESSAGES_PREFIX,
            ))
        })
        .or_else(|| {
            non_empty(messages_from_flattened(
                attributes,
                genai::COMPLETION_PREFIX,
            ))
        })
        .or_else(|| json_messages(attributes, langfuse::OBSERVATION_OUTPUT))
        .or_else(|| json_value_messages(attributes, oi::OUTPUT_VALUE, oi::OUTPUT_MIME_TYPE))
        .or_else(|| ai_sdk::output_messages(attributes))
        .unwrap_or_default()
}

fn non_empty(messages: Vec<Message>) -> Option<Vec<Message>> {
    (!messages.is_empty()).then_some(messages)
}

/// Messages from an OpenInference value whose mime type says JSON.
fn json_value_messages(attributes: &[KeyValue], key: &str, mime_key: &str) -> Option<Vec<Message>> {
    if !find_str(attributes, mime_key).is_some_and(|mime| mime.contains("json")) {
        return None;
    }
    json_messages(attributes, key)
}

/// The text of the first value attribute present, by the text rules.
fn value_text(
    attributes: &[KeyValue],
    keys: &[&str],
    direction: Direction,
    messages: &[Message],
) -> Option<String> {
    keys.iter().find_map(|key| match find(attributes, key)? {
        AttrValue::String(raw) if !raw.is_empty() => display_text(raw, direction, messages),
        AttrValue::String(_) | AttrValue::Empty => None,
        other => values::json_as_text(&to_json(other)),
    })
}

fn token_usage(attributes: &[KeyValue]) -> TokenUsage {
    let details = find(attributes, langfuse::OBSERVATION_USAGE_DETAILS).map(to_json);
    let detail = |keys: &[&str]| -> Option<i64> {
        let details = details.as_ref()?;
        keys.iter()
            .find_map(|key| details.get(*key).and_then(json_int))
    };
    let prompt = first_int(
        attributes,
        &[
            genai::USAGE_INPUT_TOKENS,
            genai::USAGE_PROMPT_TOKENS,
            oi::TOKEN_COUNT_PROMPT,
            traceloop::LLM_USAGE_PROMPT_TOKENS,
            ai::USAGE_INPUT_TOKENS,
            ai::USAGE_PROMPT_TOKENS,
        ],
    )
    .or_else(|| detail(langfuse::USAGE_INPUT_KEYS));
    let completion = first_int(
        attributes,
        &[
            genai::USAGE_OUTPUT_TOKENS,
            genai::USAGE_COMPLETION_TOKENS,
            oi::TOKEN_COUNT_COMPLETION,
            traceloop::LLM_USAGE_COMPLETION_TOKENS,
            ai::USAGE_OUTPUT_TOKENS,
            ai::USAGE_COMPLETION_TOKENS,
        ],
    )
    .or_else(|| detail(langfuse::USAGE_OUTPUT_KEYS));
    let total = first_int(
        attributes,
        &[
            genai::USAGE_TOTAL_TOKENS,
            oi::TOKEN_COUNT_TOTAL,
            traceloop::LLM_USAGE_TOTAL_TOKENS,
            ai::USAGE_TOTAL_TOKENS,
        ],
    )
    .or_else(|| detail(langfuse::USAGE_TOTAL_KEYS))
    .or_else(|| match (prompt, completion) {
        (None, None) => None,
        (prompt, completion) => Some(prompt.unwrap_or(0) + completion.unwrap_or(0)),
    });
    TokenUsage {
        prompt,
        completion,
        total,
    }
}

fn reported_cost(attributes: &[KeyValue]) -> Cost {
    let details = find(attributes, langfuse::OBSERVATION_COST_DETAILS).map(to_json);
    let detail = |key: &str| details.as_ref()?.get(key).and_then(json_float);
    let prompt = first_float(attributes, &[oi::COST_PROMPT]).or_else(|| detail("input"));
    let completion = first_float(attributes, &[oi::COST_COMPLETION]).or_else(|| detail("output"));
    let total = first_float(attributes, &[oi::COST_TOTAL, genai::USAGE_COST])
        .or_else(|| detail("total"))
        .or_else(|| match (prompt, completion) {
            (None, None) => None,
            (prompt, completion) => Some(prompt.unwrap_or(0.0) + completion.unwrap_or(0.0)),
        });
    Cost {
        prompt,
        completion,
        total,
    }
}

fn finish_reasons(attributes: &[KeyValue], output_messages: &[Message]) -> Vec<String> {
    match find(attributes, genai::FINISH_REASONS) {
        Some(AttrValue::Array(values)) => {
            return values
                .iter()
                .filter_map(|value| value.as_str().map(str::to_owned))
                .collect();
        }
        Some(AttrValue::String(text)) => match values::parse_json_text(text) {
            Some(Value::Array(items)) => {
                return items
                    .iter()
                    .filter_map(|item| item.as_str().map(str::to_owned))
                    .collect();
            }
            _ => return vec![text.clone()],
        },
        _ => {}
    }
    if let Some(reason) = find_str(attributes, oi::FINISH_REASON) {
        return vec![reason.to_owned()];
    }
    output_messages
        .iter()
        .filter_map(|message| message.finish_reason.clone())
        .collect()
}

#[cfg(test)]
mod tests;
