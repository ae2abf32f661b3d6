"""Sampling as LLM platforms ask users to set it up: the `gentrace.sample` baggage entry is copied
onto every span started in its context by the SDK's BaggageSpanProcessor, and the server keeps
only spans whose attribute says "true" (spanhouse's project setting `sample_attribute`).

Sends one sampled trace (root and child inside the baggage context) and one unsampled trace.
Prints {"sampled": TRACE_ID, "unsampled": TRACE_ID} on stdout. Configured by the standard
OTEL_EXPORTER_OTLP_* variables.
"""

import json
import sys

from opentelemetry import baggage, context
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.processor.baggage import BaggageSpanProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor


def main() -> None:
    provider = TracerProvider(resource=Resource.create({"service.name": "python-sampling"}))
    provider.add_span_processor(BaggageSpanProcessor(lambda key: key == "gentrace.sample"))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    tracer = provider.get_tracer("spanhouse-e2e-sampling")

    token = context.attach(baggage.set_baggage("gentrace.sample", "true"))
    try:
        with tracer.start_as_current_span("sampled interaction") as root:
            root.set_attribute("input.value", "keep me")
            with tracer.start_as_current_span("sampled child"):
                pass
            sampled = root.get_span_context().trace_id
    finally:
        context.detach(token)

    with tracer.start_as_current_span("unsampled work") as other:
        with tracer.start_as_current_span("unsampled child"):
            pass
        unsampled = other.get_span_context().trace_id

    if not provider.force_flush(30_000):
        sys.exit("flush timed out")
    provider.shutdown()
    print(json.dumps({"sampled": format(sampled, "032x"), "unsampled": format(unsampled, "032x")}))


if __name__ == "__main__":
    main()
