// One trace: its scores (and, for an admin, a form to add one), the span tree with a timing
// waterfall, and the selected span's LLM conversation, attributes, events and resource.

import { api, session } from "./api.js";
import {
  el, excerpt, formatCost, formatDuration, formatNumber, formatTime, notice, replace,
  statusBadge,
} from "./dom.js";
import { tracesHash } from "./traces.js";

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

/** A score's value as a reader says it: thumbs for a boolean, the number or label otherwise. */
function scoreValue(score) {
  if (score.data_type === "boolean" || typeof score.value === "boolean") {
    return score.value ? "👍 up (true)" : "👎 down (false)";
  }
  return String(score.value);
}

function scoreTable(scores) {
  if (scores.length === 0) return notice("No scores yet.");
  return el("table", { class: "scores" },
    el("caption", { class: "visually-hidden" }, "Scores, oldest first"),
    el("thead", {}, el("tr", {}, ["Name", "Value", "Comment", "Source", "Time"].map((title) => el("th", { scope: "col" }, title)))),
    el("tbody", {}, scores.map((score) => el("tr", { "data-score-id": score.id, "data-score-name": score.name },
      el("th", { scope: "row" }, score.name),
      el("td", { class: "score-value" }, scoreValue(score)),
      el("td", { class: "text-cell" }, score.comment ?? "—"),
      el("td", {}, score.source),
      el("td", {}, formatTime(score.created_at))))));
}

/**
 * A reviewer's form: thumbs up or down (score "thumbs", true or false), or a named number, each
 * with the optional comment; posted with source "ui", then `refresh` shows the trace's scores.
 */
function scoreForm(traceId, refresh) {
  const comment = el("input", { id: "score-comment", type: "text", maxlength: "2000" });
  const name = el("input", { id: "score-name", type: "text", required: true, placeholder: "e.g. accuracy" });
  const value = el("input", { id: "score-value", type: "number", step: "any", required: true });
  const status = el("p", { id: "score-status", role: "status" });
  const post = async (scoreName, scoreValue) => {
    status.className = "";
    status.textContent = "Saving…";
    const body = { trace_id: traceId, name: scoreName, value: scoreValue, source: "ui" };
    if (comment.value.trim()) body.comment = comment.value.trim();
    try {
      await api("/api/v1/scores", { method: "POST", body });
    } catch (failure) {
      status.className = "error";
      status.textContent = `Not saved: ${failure.message}`;
      return;
    }
    comment.value = "";
    try {
      await refresh();
      status.className = "ok";
      status.textContent = `Saved ${scoreName}.`;
    } catch (failure) {
      status.className = "error";
      status.textContent = `Saved ${scoreName}, but the scores could not be reloaded: ${failure.message}`;
    }
  };
  const form = el("form", { class: "score-form", "aria-labelledby": "score-form-title" },
    el("h3", { id: "score-form-title" }, "Add a score"),
    el("div", { class: "field" }, el("label", { for: "score-comment" }, "Comment (optional)"), comment),
    el("div", { class: "inline-form" },
      el("button", { type: "button", class: "thumb", onclick: () => post("thumbs", true) }, "👍 Thumbs up"),
      el("button", { type: "button", class: "thumb", onclick: () => post("thumbs", false) }, "👎 Thumbs down")),
    el("div", { class: "inline-form" },
      el("div", { class: "field" }, el("label", { for: "score-name" }, "Score name"), name),
      el("div", { class: "field" }, el("label", { for: "score-value" }, "Value"), value),
      el("button", { type: "submit" }, "Add score")),
    status);
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const number = Number(value.value);
    if (!name.value.trim() || value.value.trim() === "" || !Number.isFinite(number)) {
      status.className = "error";
      status.textContent = "A score needs a name and a number.";
      return;
    }
    post(name.value.trim(), number);
  });
  return form;
}

/** The trace's scores, and the form for an admin session (the server refuses a read one anyway). */
function scoresSection(traceId, scores) {
  const list = el("div", { id: "score-list", "aria-live": "polite" }, scoreTable(scores));
  const refresh = async () => {
    const answer = await api(`/api/v1/traces/${encodeURIComponent(traceId)}`);
    replace(list, scoreTable(answer.scores || []));
  };
  return el("section", { class: "scores-section", "aria-labelledby": "scores-title" },
    el("h2", { id: "scores-title" }, "Scores"), list,
    session.role === "admin" ? scoreForm(traceId, refresh) : null);
}

export function renderTrace(container, traceId, parameters = new URLSearchParams()) {
  const back = () => el("p", {}, el("a", { href: tracesHash() }, "← All traces"));
  container.append(back(), notice("Loading trace…"));
  api(`/api/v1/traces/${encodeURIComponent(traceId)}`).then(({ trace, spans, scores }) => {
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
      back(),
      el("h1", {}, trace.root_span_name || excerpt(trace.input, 60)),
      el("p", { class: "muted" }, "Trace ", el("code", {}, trace.trace_id), ` · ${trace.span_count} spans · ${trace.service_name || ""}`),
      summary(trace),
      scoresSection(trace.trace_id, scores || []),
      el("div", { class: "trace-layout" },
        el("section", { class: "tree-pane", "aria-label": "Spans (use ↑ and ↓)" },
          el("h2", {}, "Spans"), el("ol", { class: "span-tree" }, rows)),
        detail),
    );
    const asked = ordered.findIndex(({ span }) => span.span_id === parameters.get("span"));
    const firstLlm = ordered.findIndex(({ span }) => span.llm);
    select(asked >= 0 ? asked : firstLlm >= 0 ? firstLlm : 0);
  }).catch((failure) => {
    replace(container, back(),
      notice(failure.status === 404 ? "No such trace in this project." : `The trace could not be loaded: ${failure.message}`, "error"));
  });
}
