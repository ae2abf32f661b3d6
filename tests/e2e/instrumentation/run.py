"""Makes one OpenAI chat completion through a real instrumentation library and sends its
telemetry to spanhouse.

usage: run.py LIBRARY MODE
    LIBRARY  openinference | openllmetry | openai-v2 | langfuse | gentrace
             | pydantic-ai-v1 | pydantic-ai | logfire
    MODE     plain | stream   (stream: stream=True, stream_options={"include_usage": True})

Environment: SPANHOUSE_URL (e.g. http://127.0.0.1:4318) and SPANHOUSE_TOKEN.

pydantic-ai-v1 needs its own venv (requirements-pydantic-ai-v1.txt); the others share requirements.txt.
The OpenAI client talks to the in-process fake server of fake_openai.py. The last (and only)
line on stdout is a JSON object {"trace_id": "<32 hex>", ...}; everything else goes to stderr.
Exits non-zero when the call or any export fails, or when nothing was exported.
"""

import asyncio
import json
import os
import sys
import threading
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import fake_openai  # noqa: E402

LIBRARIES = (
    "openinference", "openllmetry", "openai-v2", "langfuse", "gentrace",
    "pydantic-ai-v1", "pydantic-ai", "logfire",
)
MODES = ("plain", "stream")

SYSTEM_PROMPT = "You are a terse assistant."
USER_PROMPT = "Say hello and praise OTLP."
MODEL = "gpt-4o-mini"
USER_ID = "e2e-user-42"
SESSION_ID = "e2e-session-7"
PIPELINE_ID = "default"
FLUSH_MILLIS = 30_000


class Exports:
    """What the OTLP exporters sent, recorded by wrapping their export methods."""

    def __init__(self):
        self.lock = threading.Lock()
        self.spans = []  # (trace_id hex, span name)
        self.logs = []  # (trace_id hex or "", event name)
        self.failures = []

    def track(self, cls, kind):
        original = cls.export
        exports = self

        def export(self, batch, *args, **kwargs):
            result = original(self, batch, *args, **kwargs)
            ok = getattr(result, "name", "") == "SUCCESS"
            with exports.lock:
                if not ok:
                    exports.failures.append(f"{cls.__name__} exported {len(batch)} {kind}: {result}")
                    return result
                for item in batch:
                    if kind == "spans":
                        context = item.get_span_context()
                        exports.spans.append((format(context.trace_id, "032x"), item.name))
                    else:
                        record = getattr(item, "log_record", item)
                        trace_id = getattr(record, "trace_id", None) or 0
                        exports.logs.append(
                            (format(trace_id, "032x") if trace_id else "", getattr(record, "event_name", None))
                        )
            return result

        cls.export = export

    def track_metrics(self, cls):
        """Records failures only: a metrics export carries no spans of the trace."""
        original = cls.export
        exports = self

        def export(self, metrics_data, *args, **kwargs):
            result = original(self, metrics_data, *args, **kwargs)
            if getattr(result, "name", "") != "SUCCESS":
                with exports.lock:
                    exports.failures.append(f"{cls.__name__} failed to export metrics: {result}")
            return result

        cls.export = export


EXPORTS = Exports()


def log(message):
    print(f"[run.py] {message}", file=sys.stderr, flush=True)


def messages(user_prompt=USER_PROMPT):
    return [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": user_prompt},
    ]


def chat(client, stream, user_prompt=USER_PROMPT, **extra):
    """The one chat completion; returns the answer's text."""
    kwargs = dict(model=MODEL, messages=messages(user_prompt), max_tokens=50, temperature=0.2, **extra)
    if not stream:
        response = client.chat.completions.create(**kwargs)
        return response.choices[0].message.content
    response = client.chat.completions.create(
        stream=True, stream_options={"include_usage": True}, **kwargs
    )
    parts = []
    for chunk in response:
        for choice in chunk.choices or []:
            if choice.delta and choice.delta.content:
                parts.append(choice.delta.content)
    return "".join(parts)


def openai_client(base_url):
    from openai import OpenAI

    return OpenAI(api_key="sk-fake", base_url=base_url, max_retries=0)


def bearer(token):
    return {"authorization": f"Bearer {token}"}


def tracer_provider(library, url, token):
    """A TracerProvider exporting OTLP/HTTP protobuf to spanhouse with the bearer token."""
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": f"e2e-{library}"}))
    exporter = OTLPSpanExporter(endpoint=f"{url}/v1/traces", headers=bearer(token))
    provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider


def flush(provider, what="tracer provider"):
    if not provider.force_flush(FLUSH_MILLIS):
        raise RuntimeError(f"{what} flush timed out")
    provider.shutdown()


def exported_trace_ids():
    """Trace ids of the spans exported so far; raises if any export failed."""
    if EXPORTS.failures:
        raise RuntimeError("export failed: " + "; ".join(EXPORTS.failures))
    return {trace_id for trace_id, _ in EXPORTS.spans}


def the_trace_id():
    """The one trace the exporters sent (for libraries whose root span is the LLM span)."""
    trace_ids = sorted(exported_trace_ids())
    if len(trace_ids) != 1:
        raise RuntimeError(f"expected spans of exactly one trace, got {trace_ids}")
    return trace_ids[0]


# --- libraries -------------------------------------------------------------------------------


def run_openinference(url, token, base_url, stream):
    from openinference.instrumentation.openai import OpenAIInstrumentor

    provider = tracer_provider("openinference", url, token)
    OpenAIInstrumentor().instrument(tracer_provider=provider)
    text = chat(openai_client(base_url), stream)
    log(f"answer: {text!r}")
    flush(provider)
    return {"trace_id": the_trace_id()}


def run_openllmetry(url, token, base_url, stream):
    # Prompts and completions are recorded unless TRACELOOP_TRACE_CONTENT=false.
    os.environ["TRACELOOP_TRACE_CONTENT"] = "true"
    from opentelemetry.instrumentation.openai import OpenAIInstrumentor

    provider = tracer_provider("openllmetry", url, token)
    OpenAIInstrumentor().instrument(tracer_provider=provider)
    text = chat(openai_client(base_url), stream)
    log(f"answer: {text!r}")
    flush(provider)
    return {"trace_id": the_trace_id()}


def run_openai_v2(url, token, base_url, stream):
    # Latest experimental GenAI conventions; message content only in events (log records):
    # one gen_ai.client.inference.operation.details event per call, with gen_ai.input.messages,
    # gen_ai.output.messages and gen_ai.system_instructions as structured attributes.
    os.environ["OTEL_SEMCONV_STABILITY_OPT_IN"] = "gen_ai_latest_experimental"
    os.environ["OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"] = "EVENT_ONLY"
    os.environ["OTEL_INSTRUMENTATION_GENAI_EMIT_EVENT"] = "true"
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter

    try:
        from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor
    except ModuleNotFoundError as error:
        raise RuntimeError(
            "opentelemetry-instrumentation-openai-v2 2.4b0 needs opentelemetry-util-genai==1.1b0 "
            "(see requirements.txt)"
        ) from error
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
    from opentelemetry.sdk.resources import Resource

    provider = tracer_provider("openai-v2", url, token)
    logger_provider = LoggerProvider(resource=Resource.create({"service.name": "e2e-openai-v2"}))
    logger_provider.add_log_record_processor(
        BatchLogRecordProcessor(OTLPLogExporter(endpoint=f"{url}/v1/logs", headers=bearer(token)))
    )
    OpenAIInstrumentor().instrument(tracer_provider=provider, logger_provider=logger_provider)
    text = chat(openai_client(base_url), stream)
    log(f"answer: {text!r}")
    flush(provider)
    flush(logger_provider, "logger provider")
    trace_id = the_trace_id()
    if not EXPORTS.logs:
        raise RuntimeError("openai-v2 exported no log records")
    strays = [entry for entry in EXPORTS.logs if entry[0] != trace_id]
    if strays:
        raise RuntimeError(f"log records outside trace {trace_id}: {strays}")
    return {"trace_id": trace_id}


def run_langfuse(url, token, base_url, stream):
    # Langfuse exports to {base_url}/api/public/otel/v1/traces with
    # Authorization: Basic base64(public_key:secret_key); spanhouse takes the password as token.
    # Langfuse builds its own TracerProvider; its resource takes the service name from here.
    os.environ.setdefault("OTEL_SERVICE_NAME", "e2e-langfuse")
    from langfuse import Langfuse, propagate_attributes

    langfuse = Langfuse(
        public_key="pk-lf-spanhouse-e2e",
        secret_key=token,
        base_url=url,
        environment="e2e",
    )
    from langfuse.openai import OpenAI  # patches the openai client classes on import

    client = OpenAI(api_key="sk-fake", base_url=base_url, max_retries=0)
    with langfuse.start_as_current_observation(
        as_type="span", name="langfuse-e2e", input=messages()
    ) as root:
        with propagate_attributes(user_id=USER_ID, session_id=SESSION_ID):
            text = chat(client, stream)
        root.update(output=text)
        trace_id = root.trace_id
    log(f"answer: {text!r}")
    langfuse.flush()
    langfuse.shutdown()
    if trace_id not in exported_trace_ids():
        raise RuntimeError(f"langfuse exported no span of trace {trace_id}: {EXPORTS.spans}")
    return {"trace_id": trace_id, "user_id": USER_ID, "session_id": SESSION_ID}


def run_gentrace(url, token, base_url, stream):
    # gentrace.init sets the global TracerProvider exporting to {base_url}/otel/v1/traces with
    # Authorization: Bearer <api_key>; OpenInference instruments the OpenAI client.
    import gentrace
    from openinference.instrumentation.openai import OpenAIInstrumentor
    from opentelemetry import trace

    gentrace.init(
        api_key=token,
        base_url=f"{url}/api",
        otel_setup={"service_name": "e2e-gentrace", "instrumentations": [OpenAIInstrumentor()]},
    )
    client = openai_client(base_url)
    seen = {}

    @gentrace.interaction(pipeline_id=PIPELINE_ID, name="answer_question")
    def answer_question(inputs):
        seen["trace_id"] = format(trace.get_current_span().get_span_context().trace_id, "032x")
        return chat(client, stream, user_prompt=inputs["q"])

    text = answer_question({"q": USER_PROMPT})
    log(f"answer: {text!r}")
    # gentrace shuts its provider down at exit; a flush is enough (it exports synchronously).
    if not trace.get_tracer_provider().force_flush(FLUSH_MILLIS):
        raise RuntimeError("tracer provider flush timed out")
    trace_id = seen["trace_id"]
    if trace_id not in exported_trace_ids():
        raise RuntimeError(f"gentrace exported no span of trace {trace_id}: {EXPORTS.spans}")
    return {"trace_id": trace_id, "pipeline_id": PIPELINE_ID}


def pydantic_agent(base_url, provider, **settings):
    """A pydantic-ai Agent on the OpenAI chat-completions model, talking to the fake server,
    instrumented through the Instrumentation capability (`Agent(instrument=...)` is deprecated)."""
    from openai import AsyncOpenAI
    from pydantic_ai import Agent
    from pydantic_ai.capabilities import Instrumentation
    from pydantic_ai.models.instrumented import InstrumentationSettings
    from pydantic_ai.models.openai import OpenAIChatModel
    from pydantic_ai.providers.openai import OpenAIProvider

    client = AsyncOpenAI(api_key="sk-fake", base_url=base_url, max_retries=0)
    model = OpenAIChatModel(MODEL, provider=OpenAIProvider(openai_client=client))
    instrumentation = Instrumentation(settings=InstrumentationSettings(tracer_provider=provider, **settings))
    return Agent(
        model,
        system_prompt=SYSTEM_PROMPT,
        capabilities=[instrumentation],
        model_settings={"max_tokens": 50, "temperature": 0.2},
    )


def run_agent(agent, stream):
    """One agent run; conversation_id becomes gen_ai.conversation.id on the agent run span."""
    if not stream:
        return agent.run_sync(USER_PROMPT, conversation_id=SESSION_ID).output

    # run_stream_sync is not a context manager in 1.x; the async API is the same in both.
    async def streamed():
        async with agent.run_stream(USER_PROMPT, conversation_id=SESSION_ID) as result:
            return "".join([delta async for delta in result.stream_text(delta=True)])

    return asyncio.run(streamed())


def run_pydantic_ai_v1(url, token, base_url, stream):
    # pydantic-ai 1.x (requirements-pydantic-ai-v1.txt) with the legacy data format 1: root
    # `agent run`, child `chat gpt-4o-mini`. The messages go as one JSON span attribute
    # `events` on the model request span (each item carries its own `event.name`), and as
    # `all_messages_events` on the agent run span.
    provider = tracer_provider("pydantic-ai-v1", url, token)
    text = run_agent(pydantic_agent(base_url, provider, version=1, event_mode="attributes"), stream)
    log(f"answer: {text!r}")
    flush(provider)
    return {"trace_id": the_trace_id(), "session_id": SESSION_ID}


def run_pydantic_ai(url, token, base_url, stream):
    # pydantic-ai 2.x, default instrumentation settings (only the tracer provider is ours):
    # the agent run span is the root, the model request span `chat gpt-4o-mini` its child.
    provider = tracer_provider("pydantic-ai", url, token)
    text = run_agent(pydantic_agent(base_url, provider), stream)
    log(f"answer: {text!r}")
    flush(provider)
    return {"trace_id": the_trace_id(), "session_id": SESSION_ID}


def run_logfire(url, token, base_url, stream):
    # Logfire's route to other backends: the standard OTEL_EXPORTER_OTLP_* variables. With
    # send_to_logfire=False it then exports traces to {url}/v1/traces, metrics to {url}/v1/metrics
    # and logs to {url}/v1/logs, all with the bearer header (instrument_openai records no
    # metrics or logs, so only traces are sent here).
    from urllib.parse import quote

    os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"] = url
    os.environ["OTEL_EXPORTER_OTLP_HEADERS"] = "authorization=" + quote(f"Bearer {token}")
    os.environ["OTEL_EXPORTER_OTLP_PROTOCOL"] = "http/protobuf"
    import logfire
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter

    EXPORTS.track_metrics(OTLPMetricExporter)
    logfire.configure(send_to_logfire=False, service_name="e2e-logfire", console=False)
    client = openai_client(base_url)
    logfire.instrument_openai(client)
    # The root span keeps the trace whole: a stream's "streaming response from ... took ...s"
    # log span is created in the context of the call, not of the request span, so without a
    # parent it starts a trace of its own. Baggage becomes span attributes of the spans started
    # inside it (add_baggage_to_attributes defaults to True); it is set inside the root because
    # Logfire's default scrubbing would turn the root's `session.id` into
    # "[Scrubbed due to 'session']" (spans of the logfire.openai scope are never scrubbed).
    with logfire.span("logfire-e2e"):
        with logfire.set_baggage(**{"user.id": USER_ID, "session.id": SESSION_ID}):
            text = chat(client, stream)
    log(f"answer: {text!r}")
    if not logfire.force_flush(FLUSH_MILLIS):
        raise RuntimeError("logfire flush timed out")
    logfire.shutdown()
    return {"trace_id": the_trace_id(), "user_id": USER_ID, "session_id": SESSION_ID}


RUNNERS = {
    "openinference": run_openinference,
    "openllmetry": run_openllmetry,
    "openai-v2": run_openai_v2,
    "langfuse": run_langfuse,
    "gentrace": run_gentrace,
    "pydantic-ai-v1": run_pydantic_ai_v1,
    "pydantic-ai": run_pydantic_ai,
    "logfire": run_logfire,
}


def track_exporters(library):
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    EXPORTS.track(OTLPSpanExporter, "spans")
    EXPORTS.track(OTLPLogExporter, "log records")
    if library == "gentrace":
        from gentrace.lib.vendored_otlp_exporter import GentraceVendoredOTLPSpanExporter

        EXPORTS.track(GentraceVendoredOTLPSpanExporter, "spans")


def main():
    if len(sys.argv) != 3 or sys.argv[1] not in LIBRARIES or sys.argv[2] not in MODES:
        sys.exit(f"usage: run.py {'|'.join(LIBRARIES)} {'|'.join(MODES)}")
    library, mode = sys.argv[1], sys.argv[2]
    url = os.environ.get("SPANHOUSE_URL", "").rstrip("/")
    token = os.environ.get("SPANHOUSE_TOKEN", "")
    if not url or not token:
        sys.exit("SPANHOUSE_URL and SPANHOUSE_TOKEN must be set")

    # Only the result goes to stdout: anything the libraries print goes to stderr.
    result_fd = os.dup(1)
    sys.stdout.flush()
    os.dup2(2, 1)
    sys.stdout = sys.stderr

    try:
        port = fake_openai.start()
        track_exporters(library)
        result = RUNNERS[library](url, token, f"http://127.0.0.1:{port}/v1", mode == "stream")
        if EXPORTS.failures:
            raise RuntimeError("export failed: " + "; ".join(EXPORTS.failures))
        if not EXPORTS.spans:
            raise RuntimeError("no spans were exported")
        if len(fake_openai.requests) != 1:
            raise RuntimeError(f"expected one chat completion, the fake server got {len(fake_openai.requests)}")
        log(f"exported spans: {EXPORTS.spans}")
        if EXPORTS.logs:
            log(f"exported log records: {EXPORTS.logs}")
    except Exception:
        traceback.print_exc()
        sys.stderr.flush()
        os._exit(1)

    os.write(result_fd, (json.dumps(result) + "\n").encode())
    os.close(result_fd)


if __name__ == "__main__":
    main()
