// One trace: the span tree with a timing waterfall, and the selected span's LLM conversation,
// attributes, events and resource.

import { api } from "./api.js";
import {
  el, excerpt, formatCost, formatDuration, formatNumber, formatTime, notice, replace,
  statusBadge,
} from "./dom.js";

/** The spans in tree order (depth first, children by start), each with its depth. */
function treeOrder(spans) {
  const ids = new Set(spans.map((span) => span.span_id));
  const children = new Map();
  const roots = [];
  for (const span of spans) {
    if (span.parent_span_id && ids.has(span.parent_span_id)) {
      if (!children.has(span.parent_span_id)) children.set(span.parent_span_id, []);
      children.get(span.parent_span_id).push(span);
    } else {
      roots.push(span);
    }
  }
  const ordered = [];
  const visit = (span, depth) => {
    ordered.push({ span, depth });
    for (const child of children.get(span.span_id) || []) visit(child, depth + 1);
  };
  for (const root of roots) visit(root, 0);
  return ordered;
}

function valueText(value) {
  return typeof value === "string" ? value : JSON.stringify(value, null, 2);
}

function keyValueTable(caption, entries) {
  const keys = Object.keys(entries || {}).sort();
  if (keys.length === 0) return el("section", {}, el("h3", {}, caption), notice("None."));
  return el(
    "section",
    {},
    el("h3", {}, caption),
    el("table", { class: "attributes" }, el("tbody", {}, keys.map((key) =>
      el("tr", {}, el("th", { scope: "row" }, key), el("td", {}, el("pre", {}, valueText(entries[key])))),
    ))),
  );
}

function message(entry) {
  const role = entry.role || "unknown";
  const parts = [el("div", { class: "role" }, role)];
  if (entry.content !== undefined && entry.content !== null) {
    parts.push(el("div", { class: "content" }, entry.content));
  }
  for (const call of entry.tool_calls || []) {
    parts.push(el("div", { class: "tool-call" },
      el("span", { class: "tool-name" }, `tool call: ${call.name}`),
      call.id ? el("span", { class: "muted" }, ` (${call.id})`) : null,
      call.arguments ? el("pre", {}, call.arguments) : null));
  }
  if (entry.tool_call_id) parts.push(el("div", { class: "muted" }, `answers tool call ${entry.tool_call_id}`));
  if (entry.finish_reason) parts.push(el("div", { class: "muted" }, `finish reason: ${entry.finish_reason}`));
  return el("li", { class: `message role-${role.replace(/[^a-z_]/gi, "")}` }, parts);
}

function llmPanel(span) {
  const llm = span.llm;
  const model = llm.response_model || llm.request_model || "unknown model";
  const facts = [
    ["Model", model],
    ["Provider", llm.provider || "—"],
    ["Operation", llm.operation || "—"],
    ["Prompt tokens", formatNumber(llm.prompt_tokens)],
    ["Completion tokens", formatNumber(llm.completion_tokens)],
    ["Total tokens", formatNumber(llm.total_tokens)],
    ["Cost", formatCost(llm.cost)],
    ["Finish reason", (llm.finish_reasons || []).join(", ") || "—"],
  ];
  const input = llm.input_messages && llm.input_messages.length
    ? llm.input_messages
    : llm.input ? [{ role: "input", content: llm.input }] : [];
  const output = llm.output_messages && llm.output_messages.length
    ? llm.output_messages
    : llm.output ? [{ role: "output", content: llm.output }] : [];
  return el(
    "section",
    { class: "llm-panel", "aria-labelledby": "llm-title" },
    el("h3", { id: "llm-title" }, "LLM call"),
    el("dl", { class: "facts" }, facts.map(([term, value]) => [el("dt", {}, term), el("dd", {}, value)])),
    el("h4", {}, "Conversation"),
    el("ol", { class: "conversation" }, input.map(message), output.map(message)),
  );
}

function spanDetail(span) {
  const events = span.events || [];
  return el(
    "div",
    { class: "span-detail" },
    el("h2", {}, span.name),
    el("dl", { class: "facts" },
      el("dt", {}, "Status"), el("dd", {}, statusBadge(span.status.code), span.status.message ? ` ${span.status.message}` : ""),
      el("dt", {}, "Duration"), el("dd", {}, formatDuration(span.duration_ms)),
      el("dt", {}, "Start"), el("dd", {}, formatTime(span.start_time)),
      el("dt", {}, "Kind"), el("dd", {}, String(span.kind)),
      el("dt", {}, "Service"), el("dd", {}, span.service_name || "—"),
      el("dt", {}, "Span id"), el("dd", {}, el("code", {}, span.span_id))),
    span.llm ? llmPanel(span) : null,
    keyValueTable("Attributes", span.attributes),
    el("section", {}, el("h3", {}, "Events"), events.length === 0 ? notice("None.") :
      el("ol", { class: "events" }, events.map((event) => el("li", {},
        el("strong", {}, event.name), " ", el("span", { class: "muted" }, formatTime(event.time)),
        Object.keys(event.attributes || {}).length ? el("pre", {}, JSON.stringify(event.attributes, null, 2)) : null)))),
    keyValueTable("Resource", span.resource_attributes),
  );
}

function summary(trace) {
  return el(
    "section",
    { class: "trace-summary" },
    el("dl", { class: "facts" },
      el("dt", {}, "Status"), el("dd", {}, statusBadge(trace.status)),
      el("dt", {}, "Time"), el("dd", {}, formatTime(trace.timestamp)),
      el("dt", {}, "Duration"), el("dd", {}, formatDuration(trace.duration_ms)),
      el("dt", {}, "Tokens"), el("dd", {}, formatNumber(trace.total_token_count)),
      el("dt", {}, "Cost"), el("dd", {}, formatCost(trace.total_cost)),
      el("dt", {}, "Models"), el("dd", {}, trace.models.join(", ") || "—"),
      el("dt", {}, "Session"), el("dd", {}, trace.session_id || "—"),
      el("dt", {}, "User"), el("dd", {}, trace.user_id || "—")),
    el("div", { class: "io" },
      el("div", {}, el("h3", {}, "Input"), el("pre", { class: "trace-input" }, trace.input ?? "—")),
      el("div", {}, el("h3", {}, "Output"), el("pre", { class: "trace-output" }, trace.output ?? "—"))),
  );
}

export function renderTrace(container, traceId) {
  container.append(el("p", {}, el("a", { href: "#/traces" }, "← All traces")), notice("Loading trace…"));
  api(`/api/v1/traces/${encodeURIComponent(traceId)}`).then(({ trace, spans }) => {
    const ordered = treeOrder(spans);
    const start = Math.min(...spans.map((span) => Date.parse(span.start_time)));
    const end = Math.max(...spans.map((span) => Date.parse(span.end_time)));
    const total = Math.max(end - start, 1);
    const detail = el("div", { class: "detail-pane", "aria-live": "polite" });
    const buttons = [];
    const select = (index) => {
      buttons.forEach((button, other) => button.setAttribute("aria-pressed", String(other === index)));
      replace(detail, spanDetail(ordered[index].span));
    };
    const rows = ordered.map(({ span, depth }, index) => {
      const bar = el("span", { class: `bar status-${span.status.code}${span.llm ? " llm" : ""}` });
      bar.style.left = `${((Date.parse(span.start_time) - start) / total) * 100}%`;
      bar.style.width = `${Math.max((span.duration_ms / total) * 100, 0.5)}%`;
      const label = el("span", { class: "span-name" }, span.llm ? "✦ " : "", span.name);
      label.style.paddingLeft = `${depth * 1.1}rem`;
      const button = el("button", {
        type: "button", class: "span-row", "data-span-id": span.span_id, "aria-pressed": "false",
        onclick: () => select(index),
        onkeydown: (event) => {
          const next = event.key === "ArrowDown" ? index + 1 : event.key === "ArrowUp" ? index - 1 : null;
          if (next !== null && buttons[next]) {
            event.preventDefault();
            buttons[next].focus();
            select(next);
          }
        },
      }, label, el("span", { class: "track" }, bar), el("span", { class: "span-time" }, formatDuration(span.duration_ms)));
      buttons.push(button);
      return el("li", {}, button);
    });
    replace(
      container,
      el("p", {}, el("a", { href: "#/traces" }, "← All traces")),
      el("h1", {}, trace.root_span_name || excerpt(trace.input, 60)),
      el("p", { class: "muted" }, "Trace ", el("code", {}, trace.trace_id), ` · ${trace.span_count} spans · ${trace.service_name || ""}`),
      summary(trace),
      el("div", { class: "trace-layout" },
        el("section", { class: "tree-pane", "aria-label": "Spans (use ↑ and ↓)" },
          el("h2", {}, "Spans"), el("ol", { class: "span-tree" }, rows)),
        detail),
    );
    const firstLlm = ordered.findIndex(({ span }) => span.llm);
    select(firstLlm >= 0 ? firstLlm : 0);
  }).catch((failure) => {
    replace(container, el("p", {}, el("a", { href: "#/traces" }, "← All traces")),
      notice(failure.status === 404 ? "No such trace in this project." : `The trace could not be loaded: ${failure.message}`, "error"));
  });
}
