// The trace explorer: TraceRecords with text search, filters, pages and auto-refresh.

import { RANGES, ago, api, query } from "./api.js";
import {
  el, excerpt, formatCost, formatDuration, formatNumber, formatTime, notice, replace,
  statusBadge,
} from "./dom.js";

const REFRESH_MS = 10000;

/** Filters survive moving to a trace and back. */
const state = { q: "", status: "", model: "", session_id: "", user_id: "", pipeline_id: "", range: "24h" };

/** Opens the explorer on one model's traces (from the dashboard). */
export function filterByModel(model) {
  state.model = model;
}

function field(label, name, input) {
  input.id = `filter-${name}`;
  input.name = name;
  return el("div", { class: "field" }, el("label", { for: input.id }, label), input);
}

function select(name, options) {
  const node = el("select", {});
  for (const [value, label] of options) {
    node.append(el("option", { value, selected: state[name] === value }, label));
  }
  return node;
}

/** How to send a first trace to this server: what a newcomer needs, nothing more. */
export function gettingStarted() {
  const origin = location.origin;
  return el(
    "section",
    { class: "empty", "aria-labelledby": "empty-title" },
    el("h2", { id: "empty-title" }, "No traces yet — here is how to send one"),
    el("p", {}, "Point any OpenTelemetry SDK or instrumentation at this server with an ingest (or admin) token:"),
    el(
      "pre",
      { class: "snippet" },
      `export OTEL_EXPORTER_OTLP_ENDPOINT=${origin}\n` +
        'export OTEL_EXPORTER_OTLP_HEADERS="authorization=Bearer%20<your token>"',
    ),
    el("p", {}, "Or, with the OpenTelemetry Collector:"),
    el(
      "pre",
      { class: "snippet" },
      `exporters:\n  otlphttp/spanhouse:\n    endpoint: ${origin}\n` +
        '    headers:\n      authorization: "Bearer <your token>"',
    ),
    el(
      "p",
      {},
      "OTLP/gRPC is served on port 4317 by default. Create an ingest token under ",
      el("a", { href: "#/settings" }, "Settings"),
      " (admin) or with ",
      el("code", {}, "spanhouse token create --project NAME --role ingest"),
      ". Spans that were sent but do not show up are counted under ",
      el("a", { href: "#/ingestion" }, "Ingestion"),
      ".",
    ),
  );
}

function traceRow(trace) {
  const link = el("a", { href: `#/trace/${trace.trace_id}`, class: "row-link" }, formatTime(trace.timestamp));
  return el(
    "tr",
    { "data-trace-id": trace.trace_id },
    el("td", {}, link),
    el("td", { class: "text-cell" }, excerpt(trace.input, 80)),
    el("td", { class: "text-cell" }, excerpt(trace.output, 80)),
    el("td", {}, statusBadge(trace.status)),
    el("td", { class: "number" }, formatDuration(trace.duration_ms)),
    el("td", { class: "number" }, formatNumber(trace.total_token_count)),
    el("td", { class: "number" }, formatCost(trace.total_cost)),
    el("td", {}, trace.models.join(", ") || "—"),
  );
}

export function renderTraces(container) {
  const filters = el("form", { class: "filters", role: "search", "aria-label": "Filter traces" });
  const inputs = {
    q: el("input", { type: "search", placeholder: "text in input or output", value: state.q }),
    status: select("status", [["", "any"], ["ok", "ok"], ["error", "error"], ["unset", "unset"]]),
    model: el("input", { type: "text", value: state.model }),
    session_id: el("input", { type: "text", value: state.session_id }),
    user_id: el("input", { type: "text", value: state.user_id }),
    pipeline_id: el("input", { type: "text", value: state.pipeline_id }),
    range: select("range", RANGES.map((range) => [range.id, range.label])),
  };
  const autoRefresh = el("input", { type: "checkbox", id: "auto-refresh", checked: true });
  filters.append(
    field("Search", "q", inputs.q),
    field("Status", "status", inputs.status),
    field("Model", "model", inputs.model),
    field("Session", "session_id", inputs.session_id),
    field("User", "user_id", inputs.user_id),
    field("Pipeline", "pipeline_id", inputs.pipeline_id),
    field("Time range", "range", inputs.range),
    el("div", { class: "field actions" }, el("button", { type: "submit" }, "Apply"),
      el("label", { class: "inline" }, autoRefresh, " auto-refresh")),
  );
  const results = el("div", { class: "results", "aria-live": "polite" });
  const pager = el("nav", { class: "pager", "aria-label": "Pages" });
  container.append(el("h1", {}, "Traces"), filters, results, pager);

  // Cursors of the pages before the current one, for "Newer".
  let cursors = [];
  let cursor = null;
  let timer = null;

  async function load() {
    const range = RANGES.find((range) => range.id === state.range) || RANGES[2];
    const parameters = {
      q: state.q, status: state.status, model: state.model, session_id: state.session_id,
      user_id: state.user_id, pipeline_id: state.pipeline_id, start: ago(range.seconds),
      limit: 50, cursor,
    };
    try {
      const page = await api(`/api/v1/traces${query(parameters)}`);
      show(page);
    } catch (failure) {
      replace(results, notice(`Traces could not be loaded: ${failure.message}`, "error"));
    }
  }

  function show(page) {
    const filtered = ["q", "status", "model", "session_id", "user_id", "pipeline_id"]
      .some((name) => state[name] !== "");
    if (page.traces.length === 0) {
      replace(results, filtered || cursor
        ? notice("No trace matches these filters in this time range.")
        : gettingStarted());
    } else {
      const table = el(
        "table",
        { class: "traces" },
        el("caption", { class: "visually-hidden" }, "Traces, newest first"),
        el("thead", {}, el("tr", {}, ...["Time", "Input", "Output", "Status", "Duration", "Tokens", "Cost", "Models"]
          .map((title) => el("th", { scope: "col" }, title)))),
        el("tbody", {}, page.traces.map(traceRow)),
      );
      replace(results, table);
    }
    if (cursors.length === 0 && !page.next_cursor) {
      replace(pager);
      return;
    }
    replace(
      pager,
      el("button", { type: "button", disabled: cursors.length === 0, onclick: () => {
        cursor = cursors.pop() ?? null;
        load();
      } }, "← Newer"),
      el("button", { type: "button", disabled: !page.next_cursor, onclick: () => {
        cursors.push(cursor);
        cursor = page.next_cursor;
        load();
      } }, "Older →"),
    );
  }

  filters.addEventListener("submit", (event) => {
    event.preventDefault();
    for (const [name, input] of Object.entries(inputs)) state[name] = input.value.trim();
    cursors = [];
    cursor = null;
    load();
  });
  timer = setInterval(() => {
    // Not while the reader is on the table: a new table would take the keyboard focus away.
    const reading = results.contains(document.activeElement);
    if (autoRefresh.checked && cursor === null && !document.hidden && !reading) load();
  }, REFRESH_MS);
  load();
  return () => clearInterval(timer);
}
