// Building the page. Every text, above all an LLM's input and output, becomes a text node: no
// markup from data is ever parsed (no HTML sink is used anywhere in this UI; a unit test in
// src/api/ui.rs checks).

/** Creates an element: `el("a", {href: "#/x", class: "link", onclick: fn}, "text", child)`. */
export function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") {
      node.addEventListener(name.slice(2), value);
    } else if (value === true) {
      node.setAttribute(name, "");
    } else {
      node.setAttribute(name, String(value));
    }
  }
  append(node, children);
  return node;
}

/** Appends children: nodes as they are, anything else as text. */
export function append(node, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

/** Replaces the content of `node`. */
export function replace(node, ...children) {
  node.replaceChildren();
  return append(node, children);
}

/** The first `length` characters of a text on one line, or an em dash. */
export function excerpt(text, length = 120) {
  if (text === null || text === undefined || text === "") return "—";
  const line = String(text).replace(/\s+/g, " ").trim();
  return line.length > length ? line.slice(0, length - 1) + "…" : line;
}

export function formatDuration(ms) {
  if (ms === null || ms === undefined) return "—";
  if (ms === 0) return "0 ms";
  if (ms < 1) return `${ms.toFixed(2)} ms`;
  if (ms < 1000) return `${Math.round(ms)} ms`;
  return `${(ms / 1000).toFixed(ms < 10000 ? 2 : 1)} s`;
}

export function formatCost(cost) {
  if (cost === null || cost === undefined) return "—";
  if (cost === 0) return "$0";
  return cost < 0.01 ? `$${cost.toPrecision(2)}` : `$${cost.toFixed(4)}`;
}

export function formatNumber(value) {
  if (value === null || value === undefined) return "—";
  return Number(value).toLocaleString("en-US");
}

export function formatTime(rfc3339) {
  if (!rfc3339) return "—";
  const date = new Date(rfc3339);
  return Number.isNaN(date.getTime()) ? rfc3339 : date.toLocaleString();
}

/** A status badge: ok, error or unset. */
export function statusBadge(status) {
  return el("span", { class: `badge status-${status}` }, status);
}

/** A message shown in place of content while loading or after a failure. */
export function notice(text, kind = "muted") {
  return el("p", { class: kind, role: kind === "error" ? "alert" : null }, text);
}
