// Makes one Vercel AI SDK call (generateText / streamText) against the fake OpenAI server of
// ../instrumentation/fake_openai.py and sends the SDK's OpenTelemetry spans to spanhouse with the
// real OpenTelemetry JS SDK and its OTLP/HTTP JSON exporter.
//
// usage: node ai_sdk.mjs VERSION MODE
//     VERSION  6        AI SDK 6 (package alias ai6), built-in telemetry:
//                       experimental_telemetry { isEnabled, tracer, functionId, metadata }
//              7        AI SDK 7 (package ai), LegacyOpenTelemetry of @ai-sdk/otel: the ai.* spans
//                       and attributes of AI SDK 6 (ai.generateText, ai.prompt.messages, ...)
//              7-genai  AI SDK 7, OpenTelemetry of @ai-sdk/otel (option runtimeContext: true): GenAI
//                       semantic-convention spans (invoke_agent, step, chat, execute_tool;
//                       gen_ai.input.messages, ...)
//     MODE     generate  generateText
//              stream    streamText, reading the whole text stream
//              tools     generateText with the tool get_weather (returns {"temperature": 21}) and
//                        up to 2 steps: a tool call, the tool's execution, then the answer
//
// Environment: SPANHOUSE_URL (e.g. http://127.0.0.1:4318) and SPANHOUSE_TOKEN.
//
// AI SDK 6 takes the metadata as experimental_telemetry.metadata (ai.telemetry.metadata.*).
// AI SDK 7 has no telemetry metadata: the same values go in runtimeContext, included in telemetry
// by telemetry.includeRuntimeContext (LegacyOpenTelemetry: ai.settings.context.*).
//
// The last (and only) line on stdout is {"trace_id": "<32 hex>"}; everything else goes to stderr.
// Exits non-zero when the call or any export fails, or when not exactly one trace was exported.

import { spawn } from "node:child_process";
import { createInterface } from "node:readline";
import { inspect } from "node:util";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

import { context } from "@opentelemetry/api";
import { AsyncLocalStorageContextManager } from "@opentelemetry/context-async-hooks";
import { OTLPTraceExporter } from "@opentelemetry/exporter-trace-otlp-http";
import { resourceFromAttributes } from "@opentelemetry/resources";
import { BatchSpanProcessor, TracerProvider } from "@opentelemetry/sdk-trace";
import { z } from "zod";

const HERE = dirname(fileURLToPath(import.meta.url));
const FAKE_OPENAI = join(HERE, "..", "instrumentation", "fake_openai.py");

const VERSIONS = ["6", "7", "7-genai"];
const MODES = ["generate", "stream", "tools"];

const SERVICE_NAME = "e2e-ai-sdk";
const SYSTEM_PROMPT = "You are a terse assistant.";
const USER_PROMPT = "Say hello and praise OTLP.";
const MODEL = "gpt-4o-mini";
const FUNCTION_ID = "e2e-ai-sdk";
const METADATA = { userId: "e2e-user-42", sessionId: "e2e-session-7", tenant: "acme" };
const ANSWER = "Hello from the fake model! OTLP is great.";
const TOOL_RESULT = { temperature: 21 };
const EXPORT_SUCCESS = 0; // ExportResultCode.SUCCESS of @opentelemetry/core

// Only the result goes to stdout: anything the libraries print goes to stderr.
const writeResult = process.stdout.write.bind(process.stdout);
process.stdout.write = process.stderr.write.bind(process.stderr);

function log(message) {
  process.stderr.write(`[ai_sdk.mjs] ${message}\n`);
}

/** Starts fake_openai.py on a free port; resolves to { port, stop }. */
function startFakeOpenAI() {
  return new Promise((resolve, reject) => {
    const child = spawn("python3", [FAKE_OPENAI, "0"], { stdio: ["ignore", "pipe", "inherit"] });
    const lines = createInterface({ input: child.stdout });
    child.once("error", reject);
    child.once("exit", (code) => reject(new Error(`fake_openai.py exited (${code}) before serving`)));
    lines.once("line", (line) => {
      const port = Number(line.trim());
      if (!Number.isInteger(port) || port <= 0) {
        reject(new Error(`fake_openai.py printed ${JSON.stringify(line)} instead of a port`));
        return;
      }
      child.removeAllListeners("exit");
      resolve({ port, stop: () => child.kill() });
    });
  });
}

/** The OTLP/HTTP JSON exporter, its export wrapped to record what was sent and what failed. */
function trackedExporter(url, token, exports) {
  const exporter = new OTLPTraceExporter({
    url: `${url}/v1/traces`,
    headers: { authorization: `Bearer ${token}` },
  });
  const original = exporter.export.bind(exporter);
  exporter.export = (spans, done) =>
    original(spans, (result) => {
      if (result.code === EXPORT_SUCCESS) {
        for (const span of spans) exports.spans.push([span.spanContext().traceId, span.name]);
      } else {
        exports.failures.push(`exporting ${spans.length} spans: ${result.error ?? `code ${result.code}`}`);
      }
      done(result);
    });
  return exporter;
}

/** The SDK's functions and settings for one VERSION, all taking the same call options. */
async function sdk(version, tracer, baseURL) {
  if (version === "6") {
    const ai = await import("ai6");
    const { createOpenAI } = await import("@ai-sdk/openai-v6");
    const openai = createOpenAI({ baseURL, apiKey: "sk-fake" });
    return {
      ai,
      stopAfter: ai.stepCountIs,
      options: {
        model: openai.chat(MODEL),
        system: SYSTEM_PROMPT,
        experimental_telemetry: { isEnabled: true, tracer, functionId: FUNCTION_ID, metadata: METADATA },
      },
    };
  }
  const ai = await import("ai");
  const { createOpenAI } = await import("@ai-sdk/openai-v7");
  const otel = await import("@ai-sdk/otel");
  // AI SDK 7 records spans only through a registered integration: LegacyOpenTelemetry writes
  // the ai.* spans of AI SDK 6, OpenTelemetry the GenAI semantic conventions (which carry the
  // runtime context, as ai.settings.context.*, only with the supplemental runtimeContext option).
  const integration =
    version === "7"
      ? new otel.LegacyOpenTelemetry({ tracer })
      : new otel.OpenTelemetry({ tracer, runtimeContext: true });
  ai.registerTelemetry(integration);
  const openai = createOpenAI({ baseURL, apiKey: "sk-fake" });
  return {
    ai,
    stopAfter: ai.isStepCount,
    options: {
      model: openai.chat(MODEL),
      instructions: SYSTEM_PROMPT,
      runtimeContext: METADATA,
      telemetry: {
        isEnabled: true,
        functionId: FUNCTION_ID,
        includeRuntimeContext: Object.fromEntries(Object.keys(METADATA).map((key) => [key, true])),
      },
    },
  };
}

/** Makes the call of MODE; returns { text, steps }. */
async function call(version, mode, tracer, baseURL) {
  const { ai, stopAfter, options } = await sdk(version, tracer, baseURL);
  const common = { ...options, prompt: USER_PROMPT, maxOutputTokens: 50, temperature: 0.2, maxRetries: 0 };
  if (mode === "generate") {
    const result = await ai.generateText(common);
    return { text: result.text, steps: result.steps.length };
  }
  if (mode === "tools") {
    const getWeather = ai.tool({
      description: "Get the current weather for a city.",
      inputSchema: z.object({ city: z.string() }),
      execute: async () => TOOL_RESULT,
    });
    const result = await ai.generateText({
      ...common,
      tools: { get_weather: getWeather },
      stopWhen: stopAfter(2),
    });
    const toolCalls = result.steps.flatMap((step) => step.toolCalls);
    if (toolCalls.length !== 1 || toolCalls[0].toolName !== "get_weather") {
      throw new Error(`expected one get_weather call, got ${JSON.stringify(toolCalls)}`);
    }
    return { text: result.text, steps: result.steps.length };
  }
  // streamText reports errors through onError and ends its streams; rethrow them here.
  let streamError;
  const result = ai.streamText({
    ...common,
    onError: ({ error }) => {
      streamError ??= error;
    },
  });
  let text = "";
  for await (const delta of result.textStream) text += delta;
  if (streamError) throw streamError;
  return { text, steps: (await result.steps).length };
}

async function main() {
  const [version, mode] = process.argv.slice(2);
  if (process.argv.length !== 4 || !VERSIONS.includes(version) || !MODES.includes(mode)) {
    throw new UsageError(`usage: node ai_sdk.mjs ${VERSIONS.join("|")} ${MODES.join("|")}`);
  }
  const url = (process.env.SPANHOUSE_URL ?? "").replace(/\/+$/, "");
  const token = process.env.SPANHOUSE_TOKEN ?? "";
  if (!url || !token) throw new UsageError("SPANHOUSE_URL and SPANHOUSE_TOKEN must be set");

  // Parent spans are found through the active context, across awaits.
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  const exports = { spans: [], failures: [] };
  const provider = new TracerProvider({
    resource: resourceFromAttributes({ "service.name": SERVICE_NAME }),
    spanProcessors: [new BatchSpanProcessor({ exporter: trackedExporter(url, token, exports) })],
  });
  const tracer = provider.getTracer("spanhouse-e2e-ai-sdk");

  const fake = await startFakeOpenAI();
  let answer;
  try {
    answer = await call(version, mode, tracer, `http://127.0.0.1:${fake.port}/v1`);
  } finally {
    fake.stop();
  }
  log(`answer after ${answer.steps} step(s): ${JSON.stringify(answer.text)}`);
  if (answer.text !== ANSWER) throw new Error(`expected the answer ${JSON.stringify(ANSWER)}`);
  const expectedSteps = mode === "tools" ? 2 : 1;
  if (answer.steps !== expectedSteps) throw new Error(`expected ${expectedSteps} step(s)`);

  // A failed export also rejects the flush; the wrapped exporter says what failed.
  const flushed = await provider.forceFlush().then(() => provider.shutdown()).catch((error) => error);
  if (exports.failures.length || flushed) {
    const failures = exports.failures.length ? exports.failures : [inspect(flushed)];
    throw new Error(`export failed: ${failures.join("; ")}`);
  }
  log(`exported spans: ${JSON.stringify(exports.spans)}`);
  const traceIds = [...new Set(exports.spans.map(([traceId]) => traceId))].sort();
  if (traceIds.length !== 1) throw new Error(`expected spans of exactly one trace, got ${JSON.stringify(traceIds)}`);
  writeResult(`${JSON.stringify({ trace_id: traceIds[0] })}\n`);
}

class UsageError extends Error {}

try {
  await main();
} catch (error) {
  process.stderr.write(`${error instanceof UsageError ? error.message : inspect(error)}\n`);
  process.exit(error instanceof UsageError ? 2 : 1);
}
