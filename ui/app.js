// The spanhouse web UI: sign-in, then views chosen by the URL fragment (#/traces, #/trace/ID,
// #/spans, #/dashboard, #/insights, #/ingestion, #/settings), each with its parameters after a `?`
// (#/traces?filter=…).

import { restoreSession, session, signIn, signOut, whenSignedOut } from "./api.js";
import { el, notice, replace } from "./dom.js";
import { renderSpans, renderTraces } from "./traces.js";
import { renderTrace } from "./trace.js";
import { renderDashboard } from "./dashboard.js";
import { renderInsights } from "./insights.js";
import { renderIngestion } from "./ingestion.js";
import { renderSettings } from "./settings.js";

const main = document.getElementById("main");
const header = document.getElementById("top");

/** Stops the timers of the view being left (auto-refresh). */
let leaveView = () => {};

function showSignIn(message) {
  leaveView();
  header.hidden = true;
  const input = el("input", {
    id: "token",
    name: "token",
    type: "password",
    autocomplete: "current-password",
    required: true,
    spellcheck: "false",
  });
  const error = el("p", { class: "error", role: "alert", id: "sign-in-error" });
  if (message) error.textContent = message;
  const form = el(
    "form",
    { class: "sign-in", "aria-labelledby": "sign-in-title" },
    el("h1", { id: "sign-in-title" }, "Sign in to spanhouse"),
    el("label", { for: "token" }, "Token (read or admin)"),
    input,
    el("button", { type: "submit" }, "Sign in"),
    error,
    el(
      "p",
      { class: "muted" },
      "On a new server, the admin token is in the file ",
      el("code", {}, "spanhouse-data/bootstrap-token"),
      " (and was printed when the server first started).",
    ),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.textContent = "";
    try {
      await signIn(input.value);
      input.value = "";
      if (!location.hash || location.hash === "#/sign-in") location.hash = "#/traces";
      route();
    } catch (failure) {
      error.textContent = failure.message;
    }
  });
  replace(main, form);
  input.focus();
}

function markCurrent(view) {
  for (const link of header.querySelectorAll("nav a")) {
    if (link.dataset.view === view) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
}

function route() {
  leaveView();
  leaveView = () => {};
  header.hidden = false;
  document.getElementById("who").textContent =
    `${session.projectName} · ${session.role}`;
  // The parameters first: a filter may hold a "/".
  const fragment = location.hash.replace(/^#\/?/, "");
  const queryStart = fragment.indexOf("?");
  const path = queryStart < 0 ? fragment : fragment.slice(0, queryStart);
  const parameters = new URLSearchParams(queryStart < 0 ? "" : fragment.slice(queryStart + 1));
  const [view, argument] = path.split("/");
  const views = {
    traces: renderTraces,
    spans: renderSpans,
    trace: renderTrace,
    dashboard: renderDashboard,
    insights: renderInsights,
    ingestion: renderIngestion,
    settings: renderSettings,
  };
  const render = views[view] || renderTraces;
  markCurrent(view === "trace" ? "traces" : views[view] ? view : "traces");
  const container = el("div", { class: "view" });
  replace(main, container);
  const leave = render(container, argument ? decodeURIComponent(argument) : undefined, parameters);
  if (typeof leave === "function") leaveView = leave;
}

async function start() {
  whenSignedOut(() => showSignIn("Your session ended; sign in again."));
  document.getElementById("sign-out").addEventListener("click", async () => {
    await signOut().catch(() => {});
    showSignIn();
  });
  window.addEventListener("hashchange", () => {
    if (!session.csrf) return;
    route();
    // Like a page load: the reader starts at the top of the new view.
    main.focus({ preventScroll: false });
  });
  try {
    if (await restoreSession()) route();
    else showSignIn();
  } catch (failure) {
    replace(main, notice(`The server could not be reached: ${failure.message}`, "error"));
  }
}

start();
