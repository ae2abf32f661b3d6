//! pydantic-ai's instrumentation (and Logfire's), in the forms the GenAI conventions do not name.
//! <https://ai.pydantic.dev/logfire/>

/// pydantic-ai 1.x with `event_mode="attributes"`: a model request span's GenAI events as one
/// JSON list, each object naming itself under `event.name`.
pub const EVENTS: &str = "events";
/// The same, on the agent run span: the whole conversation.
pub const ALL_MESSAGES_EVENTS: &str = "all_messages_events";
/// The key under which each object of those lists names its event.
pub const EVENT_NAME: &str = "event.name";
