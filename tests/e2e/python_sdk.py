"""Sends one traced LLM interaction, and the GenAI client metrics of its call, to spanhouse
with the real OpenTelemetry Python SDK.

Configured the way users configure it: the standard OTEL_EXPORTER_OTLP_* environment variables
(endpoint, headers with the bearer token, compression). Prints `metric_points N` (the data
points the metric exporter sent, all successfully) and then the trace id, on stdout. Exits
non-zero if a metrics export failed.

usage: python_sdk.py http|grpc MARKER
"""

import sys

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import Status, StatusCode


def send_metrics(protocol: str) -> int:
    """Records the GenAI client metrics of one call and exports them; returns the data points
    exported. Every export must succeed."""
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import MetricExportResult, PeriodicExportingMetricReader

    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
    else:
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter

    exported = {"points": 0, "failures": []}

    class CountingExporter(OTLPMetricExporter):
        def export(self, metrics_data, *args, **kwargs):
            result = super().export(metrics_data, *args, **kwargs)
            if result != MetricExportResult.SUCCESS:
                exported["failures"].append(result)
                return result
            for resource in metrics_data.resource_metrics:
                for scope in resource.scope_metrics:
                    for metric in scope.metrics:
                        exported["points"] += len(metric.data.data_points)
            return result

    # Exports only when flushed and shut down, not on a timer.
    reader = PeriodicExportingMetricReader(CountingExporter(), export_interval_millis=3_600_000)
    provider = MeterProvider(
        metric_readers=[reader], resource=Resource.create({"service.name": f"python-{protocol}"})
    )
    meter = provider.get_meter("spanhouse-e2e")
    tokens = meter.create_histogram("gen_ai.client.token.usage", unit="{token}")
    duration = meter.create_histogram("gen_ai.client.operation.duration", unit="s")
    common = {"gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o-mini"}
    tokens.record(12, {**common, "gen_ai.token.type": "input"})
    tokens.record(7, {**common, "gen_ai.token.type": "output"})
    duration.record(0.42, common)
    if not provider.force_flush(30_000):
        sys.exit("metrics flush timed out")
    provider.shutdown()
    if exported["failures"]:
        sys.exit(f"metrics export failed: {exported['failures']}")
    if exported["points"] == 0:
        sys.exit("no metric data point was exported")
    return exported["points"]


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
    print(f"metric_points {send_metrics(protocol)}")
    print(format(trace_id, "032x"))


if __name__ == "__main__":
    main()
