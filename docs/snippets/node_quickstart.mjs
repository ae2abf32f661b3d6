// Send sampled LLM interactions from Node to spanhouse.
//
// Set OTEL_EXPORTER_OTLP_ENDPOINT (say http://127.0.0.1:4318) and SPANHOUSE_TOKEN (an ingest
// token), then run. Prints the trace ids as JSON.

import { context, propagation, trace } from "@opentelemetry/api";
import { OTLPTraceExporter } from "@opentelemetry/exporter-trace-otlp-http";
import {
  BatchSpanProcessor,
  ParentBasedSampler,
  SamplingDecision,
  StackContextManager,
  TracerProvider,
} from "@opentelemetry/sdk-trace";

const SAMPLE_KEYS = ["spanhouse.sample", "gentrace.sample"];
const sampled = (ctx) =>
  SAMPLE_KEYS.some((key) => propagation.getBaggage(ctx)?.getEntry(key)?.value === "true");

// Keeps a trace whose root starts with sample=true in its baggage; drops the rest.
const baggageSampler = {
  shouldSample: (ctx) => ({
    decision: sampled(ctx) ? SamplingDecision.RECORD_AND_SAMPLED : SamplingDecision.NOT_RECORD,
  }),
  toString: () => "BaggageSampler",
};

// Copies the sampling baggage onto every span, for spanhouse's sample_attribute and filters.
const baggageSpanProcessor = {
  onStart(span, parentContext) {
    for (const key of SAMPLE_KEYS) {
      const entry = propagation.getBaggage(parentContext)?.getEntry(key);
      if (entry) span.setAttribute(key, entry.value);
    }
  },
  onEnd() {},
  forceFlush: async () => {},
  shutdown: async () => {},
};

// The exporter reads the endpoint from OTEL_EXPORTER_OTLP_ENDPOINT; the token and project go
// in headers (or in OTEL_EXPORTER_OTLP_HEADERS).
const exporter = new OTLPTraceExporter({
  headers: {
    authorization: `Bearer ${process.env.SPANHOUSE_TOKEN}`,
    "x-project-id": "default",
  },
});
const provider = new TracerProvider({
  sampler: new ParentBasedSampler({ root: baggageSampler }), // children follow their root
  spanProcessors: [baggageSpanProcessor, new BatchSpanProcessor({ exporter })],
});
context.setGlobalContextManager(new StackContextManager().enable());
const tracer = provider.getTracer("my-llm-app");

// One LLM interaction: sampled, with its input and output.
function answer(question) {
  const baggage = propagation.createBaggage({ "spanhouse.sample": { value: "true" } });
  return context.with(propagation.setBaggage(context.active(), baggage), () =>
    tracer.startActiveSpan("answer question", (span) => {
      span.setAttribute("input.value", question);
      const reply = tracer.startActiveSpan("chat model", (child) => {
        child.end();
        return `You asked: ${question}`;
      });
      span.setAttribute("output.value", reply);
      span.end();
      return span.spanContext().traceId;
    }),
  );
}

const sampledTrace = answer("What is OTLP?");
const unsampledTrace = tracer.startActiveSpan("health check", (span) => {
  span.end(); // no baggage: never exported
  return span.spanContext().traceId;
});

await provider.shutdown(); // flushes what is queued
console.log(JSON.stringify({ sampled: sampledTrace, unsampled: unsampledTrace }));
