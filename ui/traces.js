// The explorer: TraceRecords with a filter-language condition (kept in the URL), text search,
// quick filters, pages and auto-refresh; and the spans page, the LLM calls by default.

import { RANGES, ago, api, filterSuggestions, keepInUrl, query, viewHash } from "./api.js";
import {
  el, excerpt, filterBar, formatCost, formatDuration, formatNumber, formatTime, isFilterError,
  notice, replace, statusBadge,
} from "./dom.js";

const REFRESH_MS = 10000;

/** Filters survive moving to a trace and back. */
const state = { q: "", status: "", model: "", session_id: "", user_id: "", pipeline_id: "", range: "24h" };

/** The filter of the list last shown, for the way back from a trace. */
let lastFilter = "";

/** The traces page as it was last shown (its filter). */
export function tracesHash() {
  return viewHash("traces", { filter: lastFilter || null });
}

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

/** What the traces page's filter bar says: an example and where to look. */
export const TRACE_FILTER = {
  placeholder: 'e.g. span.attributes["tenant"] == "acme" and duration_ms > 5000',
  hint: 'A condition on each trace: its fields (status, duration_ms, model…), metadata["k"], '
    + 'scores["name"], HasTag("x"), or span.attributes["k"] of any span. Enter applies it.',
};

export function renderTraces(container, _argument, parameters = new URLSearchParams()) {
  let filter = parameters.get("filter") || "";
  lastFilter = filter;
  // A window given in the URL (an insight's link) instead of the time range, until the reader
  // applies the filters.
  let fixed = parameters.get("start") ? { start: parameters.get("start"), end: parameters.get("end") } : null;
  const windowNote = el("p", { class: "muted", id: "fixed-window", hidden: !fixed },
    fixed ? `From ${formatTime(fixed.start)} to ${fixed.end ? formatTime(fixed.end) : "now"}; Apply shows the time range instead.` : "");
  const bar = filterBar({ ...TRACE_FILTER, value: filter, suggestions: filterSuggestions("trace") });
  const chartLink = el("a", { href: viewHash("dashboard", { filter: filter || null }), id: "chart-these" },
    "Chart these traces");
  // Downloads every trace the list selects (not only its page), through the export endpoint.
  const downloadFormat = el("select", { id: "download-format", "aria-label": "Download format" },
    el("option", { value: "jsonl" }, "JSON lines"), el("option", { value: "csv" }, "CSV"));
  const download = el("a", { id: "download-traces", class: "button", href: "/api/v1/export", download: true,
    onclick: () => download.setAttribute("href", exportHref()) }, "Download");
  downloadFormat.addEventListener("change", () => download.setAttribute("href", exportHref()));
  const filters = el("form", { class: "filters", role: "search", "aria-label": "Filter traces" }, bar.element);
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
  container.append(el("div", { class: "view-heading" }, el("h1", {}, "Traces"), chartLink,
    el("span", { class: "download" }, downloadFormat, download)), filters, windowNote, results, pager);

  /** The window of the list: the URL's, else the chosen time range up to now. */
  function period() {
    const range = RANGES.find((range) => range.id === state.range) || RANGES[2];
    return fixed ? { start: fixed.start, end: fixed.end } : { start: ago(range.seconds), end: null };
  }

  /** The export of what the list shows: its filter, quick filters and time range, oldest first. */
  function exportHref() {
    return `/api/v1/export${query({
      format: downloadFormat.value, filter, q: state.q, status: state.status, model: state.model,
      session_id: state.session_id, user_id: state.user_id, pipeline_id: state.pipeline_id,
      ...period(),
    })}`;
  }

  // Cursors of the pages before the current one, for "Newer".
  let cursors = [];
  let cursor = null;
  let timer = null;

  /** Loads the page of `cursor`; `byReader` when the reader asked (not the auto-refresh). */
  async function load(byReader = false) {
    const sent = filter;
    const parameters = {
      filter: sent, q: state.q, status: state.status, model: state.model, session_id: state.session_id,
      user_id: state.user_id, pipeline_id: state.pipeline_id, ...period(), limit: 50, cursor,
    };
    download.setAttribute("href", exportHref());
    try {
      const page = await api(`/api/v1/traces${query(parameters)}`);
      bar.clearError();
      show(page);
    } catch (failure) {
      if (sent && isFilterError(failure)) {
        bar.showError(failure.message, sent, byReader);
        replace(results, notice("No traces are shown until the filter is corrected."));
        replace(pager);
      } else {
        replace(results, notice(`Traces could not be loaded: ${failure.message}`, "error"));
      }
    }
  }

  function show(page) {
    const filtered = filter !== "" || ["q", "status", "model", "session_id", "user_id", "pipeline_id"]
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
    filter = bar.value();
    lastFilter = filter;
    fixed = null;
    windowNote.hidden = true;
    keepInUrl("traces", { filter: filter || null });
    chartLink.setAttribute("href", viewHash("dashboard", { filter: filter || null }));
    cursors = [];
    cursor = null;
    load(true);
  });
  timer = setInterval(() => {
    // Not while the reader is on the table: a new table would take the keyboard focus away.
    const reading = results.contains(document.activeElement);
    if (autoRefresh.checked && cursor === null && !document.hidden && !reading) load();
  }, REFRESH_MS);
  load();
  return () => clearInterval(timer);
}

/** The spans page shows the LLM calls until the reader chooses another condition. */
const LLM_CALLS = "llm != nil";

function spanRow(span) {
  const llm = span.llm || {};
  const tokens = llm.total_tokens ?? (llm.prompt_tokens != null || llm.completion_tokens != null
    ? (llm.prompt_tokens || 0) + (llm.completion_tokens || 0) : null);
  const link = el("a", { href: `#/trace/${span.trace_id}?span=${span.span_id}`, class: "row-link" }, formatTime(span.start_time));
  return el(
    "tr",
    { "data-span-id": span.span_id, "data-trace-id": span.trace_id },
    el("td", {}, link),
    el("td", { class: "text-cell" }, excerpt(span.name, 60)),
    el("td", {}, llm.response_model || llm.request_model || "—"),
    el("td", {}, llm.provider || "—"),
    el("td", { class: "number" }, formatNumber(tokens)),
    el("td", { class: "number" }, formatCost(llm.cost)),
    el("td", { class: "number" }, formatDuration(span.duration_ms)),
    el("td", {}, statusBadge(span.status ? span.status.code : "unset")),
  );
}

/** The spans page: spans matching a span-context condition (the LLM calls by default), newest first. */
export function renderSpans(container, _argument, parameters = new URLSearchParams()) {
  let filter = parameters.has("filter") ? parameters.get("filter") : LLM_CALLS;
  let rangeId = parameters.get("range") || "24h";
  const bar = filterBar({
    value: filter,
    placeholder: 'e.g. llm.model == "gpt-4o" and duration_ms > 2000',
    hint: 'A condition on each span: name, status, duration_ms, attributes["k"], llm.model, '
      + "llm.provider, llm.cost… (llm != nil: the LLM calls). Enter applies it.",
    suggestions: filterSuggestions("span"),
  });
  const range = el("select", { id: "filter-range", name: "range" },
    RANGES.map((entry) => el("option", { value: entry.id, selected: entry.id === rangeId }, entry.label)));
  const form = el("form", { class: "filters", role: "search", "aria-label": "Filter spans" }, bar.element,
    el("div", { class: "field" }, el("label", { for: "filter-range" }, "Time range"), range),
    el("div", { class: "field actions" }, el("button", { type: "submit" }, "Apply")));
  const results = el("div", { class: "results", "aria-live": "polite" }, notice("Loading spans…"));
  const pager = el("nav", { class: "pager", "aria-label": "Pages" });
  container.append(el("h1", {}, "Spans"), form, results, pager);
  let cursors = [];
  let cursor = null;

  async function load(byReader = false) {
    const sent = filter;
    const seconds = (RANGES.find((entry) => entry.id === rangeId) || RANGES[2]).seconds;
    try {
      const page = await api(`/api/v1/spans${query({ filter: sent, start: ago(seconds), limit: 50, cursor })}`);
      bar.clearError();
      show(page);
    } catch (failure) {
      replace(pager);
      if (sent && isFilterError(failure)) {
        bar.showError(failure.message, sent, byReader);
        replace(results, notice("No spans are shown until the filter is corrected."));
      } else {
        replace(results, notice(`Spans could not be loaded: ${failure.message}`, "error"));
      }
    }
  }

  function show(page) {
    replace(results, page.spans.length === 0 ? notice("No span matches this filter in this time range.") : el(
      "table",
      { class: "spans" },
      el("caption", { class: "visually-hidden" }, "Spans, newest first"),
      el("thead", {}, el("tr", {}, ["Time", "Name", "Model", "Provider", "Tokens", "Cost", "Duration", "Status"]
        .map((title) => el("th", { scope: "col" }, title)))),
      el("tbody", {}, page.spans.map(spanRow)),
    ));
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

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    filter = bar.value();
    rangeId = range.value;
    keepInUrl("spans", { filter, range: rangeId === "24h" ? null : rangeId });
    cursors = [];
    cursor = null;
    load(true);
  });
  load();
}
