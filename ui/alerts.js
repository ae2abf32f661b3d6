// Alert rules of the project in Settings (GET/POST/DELETE /api/v1/alerts): each rule with its
// state and, on demand, its history of changes and their webhook deliveries. Admins create and
// delete rules; a new rule's webhook secret is shown once.

import { api } from "./api.js";
import { el, formatTime, notice, replace } from "./dom.js";

const METRICS = [["error_rate", "error rate (0 to 1)"], ["traces", "traces"], ["p95_duration_ms", "p95 duration (ms)"],
  ["cost_per_trace", "cost per trace (USD)"], ["tokens_per_trace", "tokens per trace"], ["score:", "mean of a score…"]];

function condition(rule) {
  const traces = rule.min_traces ? `, at least ${rule.min_traces} traces` : "";
  return `${rule.metric} ${rule.op} ${rule.threshold} over ${rule.window}${traces}`;
}

function stateBadge(state) {
  return el("span", { class: `badge alert-${state}` }, state);
}

function historyTable(events) {
  if (events.length === 0) return notice("No change of state yet.");
  return el("table", { class: "alert-history" },
    el("thead", {}, el("tr", {}, ["Changed", "State", "Value", "Webhook"].map((title) => el("th", { scope: "col" }, title)))),
    el("tbody", {}, events.map((event) => el("tr", {},
      el("td", {}, formatTime(event.at)),
      el("td", {}, stateBadge(event.state)),
      el("td", { class: "number" }, `${event.value} (threshold ${event.threshold})`),
      el("td", {}, event.delivered ? `delivered (${event.attempts} attempt${event.attempts === 1 ? "" : "s"})`
        : `${event.finished ? "not delivered" : "delivering"}: ${event.attempts} attempt${event.attempts === 1 ? "" : "s"}${event.last_error ? `, ${event.last_error}` : ""}`)))));
}

function ruleRow(rule, isAdmin, reload, report) {
  const history = el("tr", { class: "alert-history-row", hidden: true }, el("td", { colspan: 6 }));
  const toggle = el("button", { type: "button", class: "secondary", "aria-expanded": "false", onclick: async () => {
    const open = toggle.getAttribute("aria-expanded") === "true";
    toggle.setAttribute("aria-expanded", String(!open));
    history.hidden = open;
    if (open) return;
    replace(history.firstChild, notice("Loading history…"));
    try {
      const { events } = await api(`/api/v1/alerts/${encodeURIComponent(rule.id)}/events`);
      replace(history.firstChild, historyTable(events));
    } catch (failure) {
      replace(history.firstChild, notice(`History could not be loaded: ${failure.message}`, "error"));
    }
  } }, "History");
  const remove = isAdmin ? el("button", { type: "button", class: "danger", onclick: async () => {
    if (!window.confirm(`Delete the alert rule "${rule.name}" and its history?`)) return;
    try {
      await api(`/api/v1/alerts/${encodeURIComponent(rule.id)}`, { method: "DELETE" });
      reload();
    } catch (failure) {
      report(notice(`Not deleted: ${failure.message}`, "error"));
    }
  } }, "Delete") : null;
  return [
    el("tr", { "data-alert-id": rule.id },
      el("td", {}, rule.name),
      el("td", {}, el("code", {}, condition(rule)), rule.filter ? el("div", { class: "hint" }, "where ", el("code", {}, rule.filter)) : null),
      el("td", { class: "text-cell" }, rule.webhook_url),
      el("td", {}, stateBadge(rule.state)),
      el("td", {}, rule.state_changed_at ? formatTime(rule.state_changed_at) : "—"),
      el("td", { class: "actions" }, toggle, remove)),
    history,
  ];
}

function createForm(reload, report) {
  const input = (id, attributes) => el("input", { id, ...attributes });
  const name = input("alert-name", { type: "text", required: true, placeholder: "e.g. gpt-4o errors" });
  const metric = el("select", { id: "alert-metric" }, METRICS.map(([value, label]) => el("option", { value }, label)));
  const score = input("alert-score", { type: "text", placeholder: "score name", hidden: true });
  metric.addEventListener("change", () => { score.hidden = metric.value !== "score:"; });
  const op = el("select", { id: "alert-op" }, el("option", { value: ">" }, "above"), el("option", { value: "<" }, "below"));
  const threshold = input("alert-threshold", { type: "number", step: "any", required: true, value: "0.1" });
  const windowInput = input("alert-window", { type: "text", required: true, value: "15m", size: 6 });
  const minTraces = input("alert-min-traces", { type: "number", min: "0", step: "1", placeholder: "none" });
  const filter = input("alert-filter", { type: "text", class: "filter-input", placeholder: 'optional, e.g. llm.model == "gpt-4o"' });
  const webhook = input("alert-webhook", { type: "url", required: true, placeholder: "http://alerts.internal:9000/spanhouse" });
  const label = (target, text) => el("label", { for: target }, text);
  const form = el("form", { class: "settings alert-form", "aria-labelledby": "new-alert-title" },
    el("h3", { id: "new-alert-title" }, "New alert rule"),
    label("alert-name", "Title"), name,
    label("alert-metric", "When"),
    el("div", { class: "inline-form" }, metric, score, op, threshold, el("span", {}, "over the last"), windowInput),
    el("p", { class: "hint" }, "Window: 30s, 15m, 1h, 1d … Rules are evaluated at least every minute."),
    label("alert-min-traces", "Only with at least this many traces"), minTraces,
    label("alert-filter", "Of the traces matching"), filter,
    label("alert-webhook", "Webhook URL"),
    el("p", { class: "hint" }, "Each change of state is POSTed here, signed with the rule's secret. The server sends to any address you name."),
    webhook,
    el("button", { type: "submit" }, "Create alert rule"));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const minText = minTraces.value.trim();
    const body = {
      name: name.value,
      metric: metric.value === "score:" ? `score:${score.value.trim()}` : metric.value,
      op: op.value,
      threshold: Number(threshold.value),
      window: windowInput.value.trim(),
      min_traces: minText === "" ? null : Number(minText),
      filter: filter.value.trim() || null,
      webhook_url: webhook.value.trim(),
    };
    try {
      const created = await api("/api/v1/alerts", { method: "POST", body });
      form.reset();
      score.hidden = true;
      report(el("div", { class: "once" },
        el("p", {}, el("strong", {}, `Alert rule "${created.name}" created. `),
          "Its webhook secret, shown only this once (x-spanhouse-signature is the HMAC-SHA256 of each body under it):"),
        el("pre", { class: "secret", id: "new-alert-secret" }, created.secret)));
      reload();
    } catch (failure) {
      report(notice(`Not created: ${failure.message}`, "error"));
    }
  });
  return form;
}

/** The Alerts section of Settings. */
export function alertsSection(isAdmin) {
  const section = el("section", { class: "alerts", "aria-labelledby": "alerts-title" });
  const list = el("div", {}, notice("Loading alert rules…"));
  const message = el("div", { id: "alert-message", "aria-live": "polite" });
  const report = (node) => replace(message, node);
  const load = async () => {
    try {
      const { alerts } = await api("/api/v1/alerts");
      if (alerts.length === 0) {
        replace(list, notice("No alert rules yet."));
        return;
      }
      replace(list, el("table", { class: "alert-list" },
        el("thead", {}, el("tr", {}, ["Name", "Condition", "Webhook", "State", "Since", ""].map((title) => el("th", { scope: "col" }, title)))),
        el("tbody", {}, alerts.map((rule) => ruleRow(rule, isAdmin, load, report)))));
    } catch (failure) {
      replace(list, notice(`Alert rules could not be loaded: ${failure.message}`, "error"));
    }
  };
  section.append(el("h2", { id: "alerts-title" }, "Alerts"), message, list, isAdmin ? createForm(load, report) : null);
  load();
  return section;
}
