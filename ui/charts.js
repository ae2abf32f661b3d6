// Small hand-drawn SVG charts: a time series of one or more lines, or of bars. No library.

import { el } from "./dom.js";

const SVG = "http://www.w3.org/2000/svg";
const WIDTH = 560;
const HEIGHT = 180;
const PAD = { left: 56, right: 12, top: 12, bottom: 28 };

function svg(tag, attributes = {}, ...children) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, String(value));
  for (const child of children) {
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

/** A bucket start as an axis label: the time in a short window, the date in a long one. */
function shortTime(iso, spanSeconds) {
  const date = new Date(iso);
  const time = { hour: "2-digit", minute: "2-digit" };
  const day = { month: "short", day: "numeric" };
  if (spanSeconds > 2 * 86400) return date.toLocaleDateString(undefined, day);
  if (spanSeconds >= 12 * 3600) return date.toLocaleString(undefined, { ...day, ...time });
  return date.toLocaleTimeString(undefined, time);
}

/** Axis values of counts: whole numbers, or one decimal between them. */
export function formatCount(value) {
  return Number.isInteger(value) ? value.toLocaleString("en-US") : value.toFixed(1);
}

/**
 * A chart of `series` ([{name, values: [number|null], kind: "line"|"bar"}]) over bucket starts
 * `times`, titled `title`; `format` formats axis values. Every point has a tooltip, and a
 * text summary is there for screen readers.
 */
export function timeChart({ title, times, series, format = String, id }) {
  const all = series.flatMap((entry) => entry.values).filter((value) => value !== null && value !== undefined);
  const max = Math.max(...all, 0) || 1;
  const plotWidth = WIDTH - PAD.left - PAD.right;
  const plotHeight = HEIGHT - PAD.top - PAD.bottom;
  const step = plotWidth / Math.max(times.length, 1);
  const x = (index) => PAD.left + step * index + step / 2;
  const y = (value) => PAD.top + plotHeight - (value / max) * plotHeight;
  const spanSeconds = times.length > 1 ? (Date.parse(times[times.length - 1]) - Date.parse(times[0])) / 1000 : 0;

  const chart = svg("svg", { viewBox: `0 0 ${WIDTH} ${HEIGHT}`, class: "chart", role: "img", "aria-labelledby": `${id}-title` });
  chart.append(svg("title", { id: `${id}-title` }, title));
  for (const fraction of [0, 0.5, 1]) {
    const level = PAD.top + plotHeight - fraction * plotHeight;
    chart.append(svg("line", { x1: PAD.left, x2: WIDTH - PAD.right, y1: level, y2: level, class: "grid" }));
    chart.append(svg("text", { x: PAD.left - 6, y: level + 4, class: "axis", "text-anchor": "end" }, format(max * fraction)));
  }
  if (times.length > 0) {
    chart.append(svg("text", { x: PAD.left, y: HEIGHT - 8, class: "axis" }, shortTime(times[0], spanSeconds)));
    chart.append(svg("text", { x: WIDTH - PAD.right, y: HEIGHT - 8, class: "axis", "text-anchor": "end" },
      shortTime(times[times.length - 1], spanSeconds)));
  }
  series.forEach((entry, seriesIndex) => {
    const className = `series-${seriesIndex}`;
    if (entry.kind === "bar") {
      entry.values.forEach((value, index) => {
        if (!value) return;
        chart.append(svg("rect", {
          x: x(index) - step * 0.4, width: Math.max(step * 0.8, 1), y: y(value), height: PAD.top + plotHeight - y(value),
          class: `bar ${className}`,
        }, svg("title", {}, `${entry.name}: ${format(value)} at ${new Date(times[index]).toLocaleString()}`)));
      });
      return;
    }
    let path = "";
    entry.values.forEach((value, index) => {
      if (value === null || value === undefined) return;
      path += `${path ? "L" : "M"}${x(index).toFixed(1)},${y(value).toFixed(1)}`;
      chart.append(svg("circle", { cx: x(index), cy: y(value), r: 2.5, class: `point ${className}` },
        svg("title", {}, `${entry.name}: ${format(value)} at ${new Date(times[index]).toLocaleString()}`)));
    });
    if (path) chart.append(svg("path", { d: path, class: `line ${className}` }));
  });
  const legend = el("ul", { class: "legend" }, series.map((entry, index) =>
    el("li", {}, el("span", { class: `swatch series-${index}` }), entry.name)));
  const total = series.map((entry) => `${entry.name}: peak ${format(Math.max(...entry.values.filter((v) => v !== null), 0))}`).join("; ");
  return el("figure", { class: "chart-card", id },
    el("figcaption", {}, title), chart, legend, el("p", { class: "visually-hidden" }, total));
}

/** Two bars, the range before and this one, of one metric (an insight's chart). */
export function beforeAfter({ id, title, before, after, format = String }) {
  const width = 320;
  const row = 26;
  const label = 70;
  const max = Math.max(before, after, 0) || 1;
  const chart = svg("svg", { viewBox: `0 0 ${width} ${2 * row + 8}`, class: "chart before-after", role: "img",
    "aria-labelledby": `${id}-title` });
  chart.append(svg("title", { id: `${id}-title` }, `${title}: ${format(before)} before, ${format(after)} now`));
  [["before", before, "series-1"], ["now", after, "series-0"]].forEach(([name, value, className], index) => {
    const y = 4 + index * row;
    const length = Math.max(((width - label - 90) * value) / max, value > 0 ? 1 : 0);
    chart.append(svg("text", { x: label - 8, y: y + 15, class: "axis", "text-anchor": "end" }, name));
    chart.append(svg("rect", { x: label, y, width: length, height: row - 8, class: `bar ${className}` }));
    chart.append(svg("text", { x: label + length + 6, y: y + 15, class: "axis" }, format(value)));
  });
  return el("figure", { class: "insight-chart", id }, chart);
}
