"""Send sampled LLM interactions from Python to spanhouse.

Set OTEL_EXPORTER_OTLP_ENDPOINT (say http://127.0.0.1:4318) and SPANHOUSE_TOKEN (an ingest
token), then run. Prints the trace ids as JSON.
"""

import json
import os

from opentelemetry import baggage, context, trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.processor.baggage import BaggageSpanProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import Decision, ParentBased, Sampler, SamplingResult

SAMPLE_KEYS = ("spanhouse.sample", "gentrace.sample")


class BaggageSampler(Sampler):
    """Keeps a trace whose root starts with sample=true in its baggage; drops the rest."""

    def should_sample(self, parent_context, trace_id, name, kind=None, attributes=None,
                      links=None, trace_state=None):
        keep = any(baggage.get_baggage(key, parent_context) == "true" for key in SAMPLE_KEYS)
        return SamplingResult(Decision.RECORD_AND_SAMPLE if keep else Decision.DROP)

    def get_description(self):
        return "BaggageSampler"


# The exporter reads the endpoint from OTEL_EXPORTER_OTLP_ENDPOINT; the token and project go
# in headers (or in OTEL_EXPORTER_OTLP_HEADERS).
exporter = OTLPSpanExporter(headers={
    "authorization": f"Bearer {os.environ['SPANHOUSE_TOKEN']}",
    "x-project-id": "default",
})
provider = TracerProvider(
    resource=Resource.create({"service.name": "my-llm-app"}),
    sampler=ParentBased(BaggageSampler()),  # children follow their root
)
# Copies the sampling baggage onto every span, for spanhouse's sample_attribute and filters.
provider.add_span_processor(BaggageSpanProcessor(lambda key: key in SAMPLE_KEYS))
provider.add_span_processor(BatchSpanProcessor(exporter))
trace.set_tracer_provider(provider)
tracer = trace.get_tracer("my-llm-app")


def answer(question):
    """One LLM interaction: sampled, with its input and output."""
    token = context.attach(baggage.set_baggage("spanhouse.sample", "true"))
    try:
        with tracer.start_as_current_span("answer question") as span:
            span.set_attribute("input.value", question)
            with tracer.start_as_current_span("chat model"):
                reply = f"You asked: {question}"
            span.set_attribute("output.value", reply)
            return span.get_span_context().trace_id
    finally:
        context.detach(token)


sampled = answer("What is OTLP?")
with tracer.start_as_current_span("health check") as span:  # no baggage: never exported
    unsampled = span.get_span_context().trace_id

provider.shutdown()  # flushes what is queued
print(json.dumps({"sampled": format(sampled, "032x"), "unsampled": format(unsampled, "032x")}))
