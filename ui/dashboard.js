// The dashboard: traces, error rate, latency percentiles, tokens, cost and each score's mean over
// a time range, with a breakdown by model (GET /api/v1/stats), of the traces a filter-language
// condition selects (kept in the URL, as on the traces page).

import { RANGES, ago, api, filterSuggestions, keepInUrl, query, viewHash } from "./api.js";
import {
  el, filterBar, formatCost, formatDuration, formatNumber, isFilterError, notice, replace,
} from "./dom.js";
import { formatCount, timeChart } from "./charts.js";
import { TRACE_FILTER, filterByModel, gettingStarted } from "./traces.js";

let rangeId = "24h";

export function rangePicker(current, onChange) {
  const picker = el("div", { class: "range-picker", role: "group", "aria-label": "Time range" });
  for (const range of RANGES) {
    picker.append(el("button", {
      type: "button", "aria-pressed": String(range.id === current), "data-range": range.id,
      onclick: (event) => {
        for (const button of picker.children) button.setAttribute("aria-pressed", String(button === event.currentTarget));
        onChange(range.id);
      },
    }, range.label));
  }
  return picker;
}

function card(label, value) {
  return el("div", { class: "stat" }, el("div", { class: "stat-label" }, label), el("div", { class: "stat-value" }, value));
}

function percent(value) {
  return `${(value * 100).toFixed(value > 0 && value < 0.1 ? 1 : 0)}%`;
}

/** A mean as a reader wants it: at most three decimals. */
function formatMean(value) {
  if (value === null || value === undefined) return "—";
  return String(Number(value.toFixed(3)));
}

/** Each score's mean per bucket (a chart per name) and over the window (a table). */
function scoresSection(stats) {
  const names = [...new Set([
    ...Object.keys(stats.totals.scores || {}),
    ...stats.buckets.flatMap((bucket) => Object.keys(bucket.scores || {})),
  ])].sort();
  const times = stats.buckets.map((bucket) => bucket.start);
  return el("section", { "aria-labelledby": "scores-title" },
    el("h2", { id: "scores-title" }, "Scores"),
    names.length === 0 ? notice("No numeric or boolean score on these traces in this range.") : [
      el("table", { class: "score-totals" },
        el("thead", {}, el("tr", {}, ["Score", "Mean", "Scores"].map((title) => el("th", { scope: "col" }, title)))),
        el("tbody", {}, names.map((name) => {
          const total = (stats.totals.scores || {})[name] || { count: 0, mean: null };
          return el("tr", { "data-score-name": name },
            el("th", { scope: "row" }, name),
            el("td", { class: "number score-mean" }, formatMean(total.mean)),
            el("td", { class: "number" }, formatNumber(total.count)));
        }))),
      el("div", { class: "charts" }, names.map((name, index) => timeChart({
        id: `chart-score-${index}`, title: `${name} (mean)`, times, format: formatMean,
        series: [{ name: `mean of ${name}`, values: stats.buckets.map((bucket) => {
          const entry = (bucket.scores || {})[name];
          return entry && entry.count > 0 ? entry.mean : null;
        }) }],
      }))),
    ]);
}

function show(body, stats, filter) {
  const times = stats.buckets.map((bucket) => bucket.start);
  const column = (name) => stats.buckets.map((bucket) => bucket[name]);
  const totals = stats.totals;
  const errorRates = stats.buckets.map((bucket) => (bucket.traces ? bucket.error_rate : null));
  replace(
    body,
    el("div", { class: "stats" },
      card("Traces", formatNumber(totals.traces)),
      card("Error rate", percent(totals.error_rate)),
      card("p50 latency", formatDuration(totals.p50_duration_ms)),
      card("p95 latency", formatDuration(totals.p95_duration_ms)),
      card("Tokens", formatNumber(totals.total_tokens)),
      card("Cost", formatCost(totals.total_cost))),
    totals.traces === 0 ? (filter ? notice("No trace matches this filter in this range.") : gettingStarted()) : null,
    el("div", { class: "charts" },
      timeChart({ id: "chart-traces", title: "Traces", times, series: [{ name: "traces", kind: "bar", values: column("traces") }], format: formatCount }),
      timeChart({ id: "chart-errors", title: "Error rate", times, series: [{ name: "error rate", values: errorRates }], format: percent }),
      timeChart({ id: "chart-latency", title: "Latency", times, series: [
        { name: "p50", values: column("p50_duration_ms") }, { name: "p95", values: column("p95_duration_ms") }], format: formatDuration }),
      timeChart({ id: "chart-tokens", title: "Tokens", times, series: [{ name: "tokens", kind: "bar", values: column("total_tokens") }], format: formatCount }),
      timeChart({ id: "chart-cost", title: "Cost (USD)", times, series: [{ name: "cost", kind: "bar", values: column("total_cost") }], format: formatCost })),
    scoresSection(stats),
    el("section", { "aria-labelledby": "models-title" },
      el("h2", { id: "models-title" }, "By model"),
      stats.models.length === 0 ? notice("No LLM calls with a known model in this range.") :
        el("table", { class: "models" },
          el("thead", {}, el("tr", {}, ["Model", "Traces", "Errors", "p50", "p95", "Tokens", "Cost"].map((title) => el("th", { scope: "col" }, title)))),
          el("tbody", {}, stats.models.map((model) => el("tr", {},
            el("th", { scope: "row" }, el("a", { href: viewHash("traces", { filter: filter || null }), onclick: () => filterByModel(model.model) }, model.model)),
            el("td", { class: "number" }, formatNumber(model.traces)),
            el("td", { class: "number" }, formatNumber(model.errors)),
            el("td", { class: "number" }, formatDuration(model.p50_duration_ms)),
            el("td", { class: "number" }, formatDuration(model.p95_duration_ms)),
            el("td", { class: "number" }, formatNumber(model.total_tokens)),
            el("td", { class: "number" }, formatCost(model.total_cost))))))),
  );
}

export function renderDashboard(container, _argument, parameters = new URLSearchParams()) {
  let filter = parameters.get("filter") || "";
  const body = el("div", { "aria-live": "polite" }, notice("Loading…"));
  const bar = filterBar({ ...TRACE_FILTER, value: filter, suggestions: filterSuggestions("trace") });
  const tracesLink = el("a", { href: viewHash("traces", { filter: filter || null }), id: "list-these" }, "List these traces");
  // What changed in this range against the one before, of the same traces.
  const insightsHash = () => viewHash("insights", { range: rangeId, filter: filter || null });
  const insightsLink = el("a", { href: insightsHash(), id: "what-changed" }, "What changed?");
  const form = el("form", { class: "filters", role: "search", "aria-label": "Filter the dashboard's traces" },
    bar.element, el("div", { class: "field actions" }, el("button", { type: "submit" }, "Apply"), tracesLink,
      insightsLink));
  const load = (byReader = false) => {
    const range = RANGES.find((range) => range.id === rangeId);
    const sent = filter;
    api(`/api/v1/stats${query({ start: ago(range.seconds), bucket: range.bucket, filter: sent })}`)
      .then((stats) => {
        bar.clearError();
        show(body, stats, sent);
      })
      .catch((failure) => {
        if (sent && isFilterError(failure)) {
          bar.showError(failure.message, sent, byReader);
          replace(body, notice("The dashboard is shown once the filter is corrected."));
        } else {
          replace(body, notice(`The dashboard could not be loaded: ${failure.message}`, "error"));
        }
      });
  };
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    filter = bar.value();
    keepInUrl("dashboard", { filter: filter || null });
    tracesLink.setAttribute("href", viewHash("traces", { filter: filter || null }));
    insightsLink.setAttribute("href", insightsHash());
    load(true);
  });
  const heading = el("div", { class: "view-heading" }, el("h1", {}, "Dashboard"), rangePicker(rangeId, (id) => {
    rangeId = id;
    insightsLink.setAttribute("href", insightsHash());
    load();
  }));
  container.append(heading, form, body);
  load();
}
