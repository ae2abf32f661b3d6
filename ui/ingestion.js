// Ingestion: what the server received, accepted, filtered, rejected (by reason) and still
// buffers, over time (GET /api/v1/ingestion). Where to look when spans are missing.

import { RANGES, ago, api, query } from "./api.js";
import { el, formatNumber, notice, replace } from "./dom.js";
import { formatCount, timeChart } from "./charts.js";
import { rangePicker } from "./dashboard.js";

let rangeId = "1h";
const REFRESH_MS = 10000;
/** `buffered` is a present value, so its history is what this page sampled while open. */
const bufferedSamples = [];
const MAX_SAMPLES = 360;
const COUNTERS = ["received", "accepted", "filtered", "rejected", "rate_limited", "truncated", "redacted", "metric_points"];

function reasonTable(title, reasons, emptyText) {
  const entries = Object.entries(reasons).sort((a, b) => b[1] - a[1]);
  return el("section", {}, el("h2", {}, title), entries.length === 0 ? notice(emptyText) :
    el("table", { class: "reasons" },
      el("thead", {}, el("tr", {}, el("th", { scope: "col" }, "Reason"), el("th", { scope: "col" }, "Spans"))),
      el("tbody", {}, entries.map(([reason, count]) =>
        el("tr", {}, el("td", {}, reason || "(unnamed)"), el("td", { class: "number" }, formatNumber(count)))))));
}

function show(body, data) {
  const times = data.buckets.map((bucket) => bucket.start);
  const column = (name) => data.buckets.map((bucket) => bucket[name]);
  const totals = data.totals;
  replace(
    body,
    // The store could not be read (ClickHouse down): the counts are this server's unsaved ones
    // only, while `buffered` is complete. Text, never markup.
    data.counts_complete === false ? notice(data.warning || "The stored counts could not be read.", "error") : null,
    el("div", { class: "stats", id: "ingestion-totals" },
      COUNTERS.map((name) => el("div", { class: "stat", "data-counter": name },
        el("div", { class: "stat-label" }, name.replaceAll("_", " ")),
        el("div", { class: "stat-value" }, formatNumber(totals[name])))),
      el("div", { class: "stat", "data-counter": "buffered" },
        el("div", { class: "stat-label" }, "buffered now"),
        el("div", { class: "stat-value" }, formatNumber(data.buffered)))),
    totals.received === 0 && data.counts_complete !== false ? notice("Nothing received in this range. Check the exporter's endpoint and token; a 401 or 403 answer is not counted here.") : null,
    el("div", { class: "charts" },
      timeChart({ id: "chart-ingestion", title: "Spans received and accepted", times, series: [
        { name: "received", values: column("received") }, { name: "accepted", values: column("accepted") }],
      format: formatCount }),
      timeChart({ id: "chart-dropped", title: "Spans filtered, rejected and rate limited", times, series: [
        { name: "filtered", values: column("filtered") }, { name: "rejected", values: column("rejected") },
        { name: "rate limited", values: column("rate_limited") }],
      format: formatCount })),
    bufferedSamples.length > 1 ? el("div", { class: "charts" },
      timeChart({ id: "chart-buffered", title: "Buffered (acknowledged, not yet stored; sampled while this page is open)",
        times: bufferedSamples.map((sample) => sample.time),
        series: [{ name: "buffered", values: bufferedSamples.map((sample) => sample.buffered) }], format: formatCount })) : null,
    reasonTable("Rejected by reason", totals.rejected_reasons, "No span was rejected."),
    reasonTable("Filtered by rule", totals.filtered_rules || {}, "No span was filtered."),
  );
}

export function renderIngestion(container) {
  const body = el("div", { "aria-live": "polite" }, notice("Loading…"));
  const load = () => {
    const range = RANGES.find((range) => range.id === rangeId);
    api(`/api/v1/ingestion${query({ start: ago(range.seconds), bucket: range.bucket })}`)
      .then((data) => {
        bufferedSamples.push({ time: new Date().toISOString(), buffered: data.buffered });
        if (bufferedSamples.length > MAX_SAMPLES) bufferedSamples.shift();
        show(body, data);
      })
      .catch((failure) => replace(body, notice(`Ingestion counters could not be loaded: ${failure.message}`, "error")));
  };
  const heading = el("div", { class: "view-heading" }, el("h1", {}, "Ingestion"), rangePicker(rangeId, (id) => {
    rangeId = id;
    load();
  }));
  container.append(heading, body);
  load();
  const timer = setInterval(() => {
    if (!document.hidden) load();
  }, REFRESH_MS);
  return () => clearInterval(timer);
}
