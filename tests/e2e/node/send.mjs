// Sends one traced interaction to spanhouse with the real OpenTelemetry JS SDK and its OTLP/HTTP
// JSON exporter, configured by the standard OTEL_EXPORTER_OTLP_* environment variables.
// Prints the trace id on stdout.
//
// usage: node send.mjs MARKER

import { context, trace, SpanStatusCode } from "@opentelemetry/api";
import { OTLPTraceExporter } from "@opentelemetry/exporter-trace-otlp-http";
import { BatchSpanProcessor, TracerProvider } from "@opentelemetry/sdk-trace";

const marker = process.argv[2];
const provider = new TracerProvider({
  spanProcessors: [new BatchSpanProcessor({ exporter: new OTLPTraceExporter() })],
});
const tracer = provider.getTracer("spanhouse-e2e-node");

const root = tracer.startSpan("interaction");
root.setAttribute("input.value", `Say hi (${marker})`);
root.setAttribute("user.id", `user-${marker}`);
const rootContext = trace.setSpan(context.active(), root);
const llm = tracer.startSpan("chat gpt-4o-mini", { kind: 2 }, rootContext);
llm.setAttribute("gen_ai.usage.input_tokens", 12);
llm.setAttribute("gen_ai.usage.output_tokens", 7);
llm.setAttribute("temperature", 0.25);
llm.setAttribute("stop", ["\n", "END"]);
llm.end();
root.setAttribute("output.value", "Hi!");
root.setStatus({ code: SpanStatusCode.OK });
root.end();

await provider.forceFlush();
await provider.shutdown();
console.log(root.spanContext().traceId);
