// Insights: what changed in a time range against the range just before it (GET
// /api/v1/insights), each as a sentence with its numbers, a before/after chart and a link to its
// traces; of the traces a filter-language condition selects (kept in the URL).

import { RANGES, api, filterSuggestions, keepInUrl, query, viewHash } from "./api.js";
import {
  el, filterBar, formatCost, formatDuration, formatNumber, formatTime, isFilterError, notice, replace,
} from "./dom.js";
import { beforeAfter } from "./charts.js";
import { rangePicker } from "./dashboard.js";
import { TRACE_FILTER } from "./traces.js";

function percent(value) {
  return `${(value * 100).toFixed(value > 0 && value < 0.1 ? 1 : 0)}%`;
}

/** How a metric reads in a sentence, and how its values are written. */
function describeMetric(metric) {
  const known = {
    traces: { name: "Traffic", format: (value) => `${formatNumber(Math.round(value))} traces` },
    error_rate: { name: "Error rate", format: percent },
    p95_duration_ms: { name: "p95 latency", format: formatDuration },
    cost_per_trace: { name: "Cost per trace", format: formatCost },
    tokens_per_trace: { name: "Tokens per trace", format: (value) => formatNumber(Math.round(value)) },
  };
  if (known[metric]) return known[metric];
  const score = metric.startsWith("score:") ? metric.slice("score:".length) : metric;
  return { name: `Mean “${score}” score`, format: (value) => String(Number(value.toFixed(3))) };
}

/** The traces an insight is about, in words. */
function describeSegment(segment) {
  if (segment.field === "project") return "all traces";
  if (segment.field === "tags") return `traces tagged “${segment.value}”`;
  const metadata = /^metadata\["(.*)"\]$/.exec(segment.field);
  if (metadata) return `traces with metadata ${metadata[1]} = “${segment.value}”`;
  return `traces of ${segment.field.replace(/_/g, " ")} “${segment.value}”`;
}

/** "rose from 2.0% to 19.6% (×9.8)" */
function movement(insight, format) {
  const verb = insight.current >= insight.baseline ? "rose" : "fell";
  let ratio = "";
  if (insight.change !== null && insight.baseline > 0) {
    const factor = insight.current / insight.baseline;
    ratio = factor >= 2 || factor <= 0.5 ? ` (×${factor.toFixed(factor >= 10 ? 0 : 1)})`
      : ` (${insight.change > 0 ? "+" : ""}${Math.round(insight.change * 100)}%)`;
  }
  return `${verb} from ${format(insight.baseline)} to ${format(insight.current)}${ratio}`;
}

function pValue(value) {
  return value < 1e-4 ? value.toExponential(1) : value.toPrecision(2);
}

function insightCard(insight, index, answer) {
  const metric = describeMetric(insight.metric);
  const sentence = `${metric.name} of ${describeSegment(insight.segment)} ${movement(insight, metric.format)}.`;
  const link = viewHash("traces", { filter: insight.filter, start: answer.window.start, end: answer.window.end });
  return el("article", { class: "insight", "data-metric": insight.metric, "data-field": insight.segment.field,
    "data-value": insight.segment.value ?? "" },
  el("h2", { class: "insight-sentence" }, sentence),
  el("p", { class: "muted" },
    `${formatNumber(insight.traces)} traces in this range, ${formatNumber(insight.baseline_traces)} in the one before; `
    + `p = ${pValue(insight.p_value)} after correcting for ${formatNumber(answer.tests)} comparisons.`),
  beforeAfter({ id: `insight-chart-${index}`, title: metric.name, before: insight.baseline, after: insight.current,
    format: metric.format }),
  el("a", { href: link, class: "insight-traces" }, `See the ${formatNumber(insight.traces)} traces`));
}

function show(body, answer) {
  const range = `${formatTime(answer.window.start)} – ${formatTime(answer.window.end)}, against `
    + `${formatTime(answer.baseline.start)} – ${formatTime(answer.baseline.end)}`;
  replace(body,
    el("p", { class: "muted" }, range),
    answer.insights.length === 0
      ? notice(`Nothing changed significantly: ${formatNumber(answer.tests)} comparisons tested, none `
        + `significant at ${answer.alpha} after correction, with at least ${answer.min_traces} traces on each side.`)
      : el("div", { class: "insights" }, answer.insights.map((insight, index) => insightCard(insight, index, answer))),
    answer.truncated ? notice("Some fields have too many values to compare each; the most frequent were compared.") : null);
}

export function renderInsights(container, _argument, parameters = new URLSearchParams()) {
  let filter = parameters.get("filter") || "";
  let rangeId = RANGES.some((range) => range.id === parameters.get("range")) ? parameters.get("range") : "24h";
  const body = el("div", { "aria-live": "polite" }, notice("Looking for changes…"));
  const bar = filterBar({ ...TRACE_FILTER, value: filter, suggestions: filterSuggestions("trace") });
  const form = el("form", { class: "filters", role: "search", "aria-label": "Filter the compared traces" },
    bar.element, el("div", { class: "field actions" }, el("button", { type: "submit" }, "Apply")));
  const load = (byReader = false) => {
    const range = RANGES.find((candidate) => candidate.id === rangeId);
    const end = new Date();
    const start = new Date(end.getTime() - range.seconds * 1000);
    const sent = filter;
    replace(body, notice("Looking for changes…"));
    api(`/api/v1/insights${query({ start: start.toISOString(), end: end.toISOString(), filter: sent })}`)
      .then((answer) => {
        bar.clearError();
        show(body, answer);
      })
      .catch((failure) => {
        if (sent && isFilterError(failure)) {
          bar.showError(failure.message, sent, byReader);
          replace(body, notice("Insights are shown once the filter is corrected."));
        } else {
          replace(body, notice(`Insights could not be loaded: ${failure.message}`, "error"));
        }
      });
  };
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    filter = bar.value();
    keepInUrl("insights", { range: rangeId, filter: filter || null });
    load(true);
  });
  const heading = el("div", { class: "view-heading" }, el("h1", {}, "Insights"), rangePicker(rangeId, (id) => {
    rangeId = id;
    keepInUrl("insights", { range: rangeId, filter: filter || null });
    load();
  }));
  container.append(heading,
    el("p", { class: "hint" }, "Each segment (model, pipeline, service, root span, metadata value, tag) is compared "
      + "with the range before; only changes that are statistically significant and large enough are shown."),
    form, body);
  load();
}
