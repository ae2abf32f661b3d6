// Settings of the project: sampling attribute, filter conditions, rate limit, retention, redaction (saved through
// PUT /api/v1/project/settings, which validates them), tokens and alert rules (alerts.js). Changes need an admin
// token.

import { alertsSection } from "./alerts.js";
import { api, session } from "./api.js";
import { el, formatTime, notice, replace } from "./dom.js";

const DETECTORS = [["email", "Email addresses"], ["phone", "Phone numbers"], ["credit_card", "Card numbers (Luhn)"],
  ["ip_address", "IP addresses"], ["secret", "Secrets (API keys, bearer tokens, JWTs, cloud keys)"]];

function settingsForm(settings, isAdmin) {
  const sample = el("input", { id: "sample-attribute", type: "text", value: settings.sample_attribute || "", placeholder: "e.g. gentrace.sample", disabled: !isAdmin });
  const filters = el("textarea", { id: "filters", rows: 5, spellcheck: "false", disabled: !isAdmin,
    placeholder: 'one OTTL condition per line, e.g. name == "healthcheck"' });
  filters.value = settings.filters.join("\n");
  const rate = el("input", { id: "rate-limit", type: "number", min: "0", step: "any", value: settings.rate_limit ?? "", placeholder: "no limit", disabled: !isAdmin });
  const retention = el("input", { id: "retention-days", type: "number", min: "1", max: "36500", step: "1", value: settings.retention_days ?? "", placeholder: "server default", disabled: !isAdmin });
  const rules = settings.redact || [];
  const detectorBoxes = DETECTORS.map(([name, label]) => el("label", { class: "inline" },
    el("input", { type: "checkbox", name: "redact-detector", value: name, checked: rules.includes(name), disabled: !isAdmin }),
    ` ${label}`));
  const customRules = rules.filter((rule) => typeof rule === "object");
  const patterns = el("textarea", { id: "redact-patterns", rows: 3, spellcheck: "false", disabled: !isAdmin,
    placeholder: "one regular expression per line, e.g. cust-\\d{6}" });
  patterns.value = customRules.map((rule) => rule.pattern).join("\n");
  const status = el("p", { id: "settings-status", role: "status" });
  const form = el(
    "form",
    { class: "settings", "aria-labelledby": "settings-title" },
    el("h2", { id: "settings-title" }, "Ingestion"),
    el("label", { for: "sample-attribute" }, "Sampling attribute"),
    el("p", { class: "hint" }, 'Keep only spans whose attribute of this name is "true". Empty: keep all.'),
    sample,
    el("label", { for: "filters" }, "Filter conditions"),
    el("p", { class: "hint" }, "A span matching any condition is dropped (OpenTelemetry Collector filter language)."),
    filters,
    el("label", { for: "rate-limit" }, "Rate limit (spans per second)"),
    rate,
    el("label", { for: "retention-days" }, "Retention (days)"),
    el("p", { class: "hint" }, "Older traces are deleted, older spans filtered as they arrive. Empty: the server's default."),
    retention,
    el("fieldset", { id: "redact-detectors" },
      el("legend", {}, "Redact at ingest"),
      el("p", { class: "hint" }, "Matches are replaced by [REDACTED:detector] in every string value before anything is stored."),
      detectorBoxes),
    el("label", { for: "redact-patterns" }, "Custom redaction patterns"),
    el("p", { class: "hint" }, "Matches are replaced by [REDACTED]."),
    patterns,
    isAdmin ? el("button", { type: "submit", id: "save-settings" }, "Save settings")
      : el("p", { class: "muted", id: "read-only-note" }, "Signed in with a read token: settings can be viewed, not changed."),
    status,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    status.className = "";
    status.textContent = "Saving…";
    const rateText = rate.value.trim();
    const retentionText = retention.value.trim();
    const replacements = new Map(customRules.map((rule) => [rule.pattern, rule.replacement]));
    const redact = [
      ...detectorBoxes.map((label) => label.firstChild).filter((box) => box.checked).map((box) => box.value),
      ...patterns.value.split("\n").map((line) => line.trim()).filter(Boolean)
        .map((pattern) => (replacements.get(pattern) ? { pattern, replacement: replacements.get(pattern) } : { pattern })),
    ];
    // Settings this form does not show are sent back as they were.
    const body = {
      ...settings,
      redact,
      sample_attribute: sample.value.trim() || null,
      filters: filters.value.split("\n").map((line) => line.trim()).filter(Boolean),
      rate_limit: rateText === "" ? null : Number(rateText),
      rate_limit_burst: settings.rate_limit_burst ?? null,
      retention_days: retentionText === "" ? null : Number(retentionText),
    };
    try {
      await api("/api/v1/project/settings", { method: "PUT", body });
      status.className = "ok";
      status.textContent = "Saved. Servers apply the settings within 5 seconds.";
    } catch (failure) {
      status.className = "error";
      status.textContent = `Not saved: ${failure.message}`;
    }
  });
  return form;
}

function tokensSection() {
  const section = el("section", { class: "tokens", "aria-labelledby": "tokens-title" });
  const list = el("div", {}, notice("Loading tokens…"));
  const created = el("div", { id: "created-token", "aria-live": "polite" });
  const role = el("select", { id: "new-token-role" },
    el("option", { value: "ingest" }, "ingest — send traces"),
    el("option", { value: "read" }, "read — view traces and this UI"),
    el("option", { value: "admin" }, "admin — everything"));
  const name = el("input", { id: "new-token-name", type: "text", placeholder: "e.g. production exporter" });
  const form = el("form", { class: "inline-form" },
    el("label", { for: "new-token-role" }, "Role"), role,
    el("label", { for: "new-token-name" }, "Name"), name,
    el("button", { type: "submit" }, "Create token"));
  const load = async () => {
    try {
      const { tokens } = await api("/api/v1/tokens");
      replace(list, el("table", { class: "token-list" },
        el("thead", {}, el("tr", {}, ["Id", "Name", "Role", "Created", "State", ""].map((title) => el("th", { scope: "col" }, title)))),
        el("tbody", {}, tokens.map((token) => el("tr", { "data-token-id": token.id },
          el("td", {}, el("code", {}, token.id)), el("td", {}, token.name || "—"), el("td", {}, token.role),
          el("td", {}, formatTime(token.created_at)),
          el("td", {}, token.revoked_at ? `revoked ${formatTime(token.revoked_at)}` : "active"),
          el("td", {}, token.revoked_at ? null : el("button", { type: "button", class: "danger", onclick: async () => {
            if (!window.confirm(`Revoke ${token.id}? Exporters and sessions using it stop working.`)) return;
            try {
              await api(`/api/v1/tokens/${encodeURIComponent(token.id)}`, { method: "DELETE" });
              load();
            } catch (failure) {
              replace(created, notice(`Not revoked: ${failure.message}`, "error"));
            }
          } }, "Revoke")))))));
    } catch (failure) {
      replace(list, notice(`Tokens could not be loaded: ${failure.message}`, "error"));
    }
  };
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      const token = await api("/api/v1/tokens", { method: "POST", body: { role: role.value, name: name.value } });
      name.value = "";
      replace(created, el("div", { class: "once" },
        el("p", {}, el("strong", {}, `New ${token.role} token ${token.id}. `), "Copy it now: it is shown only this once."),
        el("pre", { class: "secret", id: "new-token-secret" }, token.token)));
      load();
    } catch (failure) {
      replace(created, notice(`Not created: ${failure.message}`, "error"));
    }
  });
  section.append(el("h2", { id: "tokens-title" }, "Tokens"), form, created, list);
  load();
  return section;
}

export function renderSettings(container) {
  const isAdmin = session.role === "admin";
  const body = el("div", {}, notice("Loading settings…"));
  container.append(el("h1", {}, "Settings"), body);
  api("/api/v1/project/settings")
    .then((settings) => replace(body, settingsForm(settings, isAdmin), isAdmin ? tokensSection() : null, alertsSection(isAdmin)))
    .catch((failure) => replace(body, notice(`Settings could not be loaded: ${failure.message}`, "error")));
}
