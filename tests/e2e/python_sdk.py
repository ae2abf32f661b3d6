"""Sends one traced LLM interaction to spanhouse with the real OpenTelemetry Python SDK.

Configured the way users configure it: the standard OTEL_EXPORTER_OTLP_* environment variables
(endpoint, headers with the bearer token, compression). Prints the trace id on stdout.

usage: python_sdk.py http|grpc MARKER
"""

import sys

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import Status, StatusCode


def main() -> None:
    protocol, marker = sys.argv[1], sys.argv[2]
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    else:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    provider = TracerProvider(resource=Resource.create({"service.name": f"python-{protocol}"}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    tracer = provider.get_tracer("spanhouse-e2e")

    with tracer.start_as_current_span("interaction") as root:
        root.set_attribute("input.value", f"Say hi ({marker})")
        root.set_attribute("session.id", f"session-{marker}")
        with tracer.start_as_current_span("chat gpt-4o-mini") as llm:
            llm.set_attribute("gen_ai.request.model", "gpt-4o-mini")
            llm.set_attribute("gen_ai.usage.input_tokens", 12)
            llm.set_attribute("gen_ai.usage.output_tokens", 7)
            llm.add_event("gen_ai.choice", {"index": 0, "finish_reason": "stop"})
        with tracer.start_as_current_span("failing tool") as tool:
            tool.set_status(Status(StatusCode.ERROR, "tool broke"))
        root.set_attribute("output.value", "Hi!")
        trace_id = root.get_span_context().trace_id

    if not provider.force_flush(30_000):
        sys.exit("flush timed out")
    provider.shutdown()
    print(format(trace_id, "032x"))


if __name__ == "__main__":
    main()
