// The dashboard: traces, error rate, latency percentiles, tokens and cost over a time range,
// with a breakdown by model (GET /api/v1/stats).

import { RANGES, ago, api, query } from "./api.js";
import { el, formatCost, formatDuration, formatNumber, notice, replace } from "./dom.js";
import { formatCount, timeChart } from "./charts.js";
import { filterByModel, gettingStarted } from "./traces.js";

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

function show(body, stats) {
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
    totals.traces === 0 ? gettingStarted() : null,
    el("div", { class: "charts" },
      timeChart({ id: "chart-traces", title: "Traces", times, series: [{ name: "traces", kind: "bar", values: column("traces") }], format: formatCount }),
      timeChart({ id: "chart-errors", title: "Error rate", times, series: [{ name: "error rate", values: errorRates }], format: percent }),
      timeChart({ id: "chart-latency", title: "Latency", times, series: [
        { name: "p50", values: column("p50_duration_ms") }, { name: "p95", values: column("p95_duration_ms") }], format: formatDuration }),
      timeChart({ id: "chart-tokens", title: "Tokens", times, series: [{ name: "tokens", kind: "bar", values: column("total_tokens") }], format: formatCount }),
      timeChart({ id: "chart-cost", title: "Cost (USD)", times, series: [{ name: "cost", kind: "bar", values: column("total_cost") }], format: formatCost })),
    el("section", { "aria-labelledby": "models-title" },
      el("h2", { id: "models-title" }, "By model"),
      stats.models.length === 0 ? notice("No LLM calls with a known model in this range.") :
        el("table", { class: "models" },
          el("thead", {}, el("tr", {}, ["Model", "Traces", "Errors", "p50", "p95", "Tokens", "Cost"].map((title) => el("th", { scope: "col" }, title)))),
          el("tbody", {}, stats.models.map((model) => el("tr", {},
            el("th", { scope: "row" }, el("a", { href: "#/traces", onclick: () => filterByModel(model.model) }, model.model)),
            el("td", { class: "number" }, formatNumber(model.traces)),
            el("td", { class: "number" }, formatNumber(model.errors)),
            el("td", { class: "number" }, formatDuration(model.p50_duration_ms)),
            el("td", { class: "number" }, formatDuration(model.p95_duration_ms)),
            el("td", { class: "number" }, formatNumber(model.total_tokens)),
            el("td", { class: "number" }, formatCost(model.total_cost))))))),
  );
}

export function renderDashboard(container) {
  const body = el("div", { "aria-live": "polite" }, notice("Loading…"));
  const load = () => {
    const range = RANGES.find((range) => range.id === rangeId);
    api(`/api/v1/stats${query({ start: ago(range.seconds), bucket: range.bucket })}`)
      .then((stats) => show(body, stats))
      .catch((failure) => replace(body, notice(`The dashboard could not be loaded: ${failure.message}`, "error")));
  };
  const heading = el("div", { class: "view-heading" }, el("h1", {}, "Dashboard"), rangePicker(rangeId, (id) => {
    rangeId = id;
    load();
  }));
  container.append(heading, body);
  load();
}
