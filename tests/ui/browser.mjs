// Browser end-to-end tests of the web UI: Debian's chromium driven by playwright-core.
// Run by tests/ui_browser.rs, which starts spanhouse, ingests traces and passes:
//   SPANHOUSE_URL, SPANHOUSE_ADMIN_TOKEN, SPANHOUSE_READ_TOKEN, SPANHOUSE_TRACE_ID,
//   SPANHOUSE_OTHER_TRACE_ID, SPANHOUSE_SCREENSHOTS (a directory), and the scenario as the first
//   argument.
// Prints "PASS <step>" per step and exits non-zero at the first failure. No timings: every wait
// is for something on the page.

import { mkdtempSync, mkdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";
import { alerts } from "./alerts.mjs";
import { filtersAndScores } from "./filters.mjs";
import { insights } from "./insights.mjs";

const url = process.env.SPANHOUSE_URL;
const adminToken = process.env.SPANHOUSE_ADMIN_TOKEN;
const readToken = process.env.SPANHOUSE_READ_TOKEN;
const traceId = process.env.SPANHOUSE_TRACE_ID;
const otherTraceId = process.env.SPANHOUSE_OTHER_TRACE_ID;
const screenshots = process.env.SPANHOUSE_SCREENSHOTS || join(tmpdir(), "spanhouse-ui");
const scenario = process.argv[2];

function check(condition, message) {
  if (!condition) throw new Error(`FAILED: ${message}`);
}

async function shot(page, name) {
  await page.screenshot({ path: join(screenshots, `${scenario}-${name}.png`), fullPage: true });
}

async function signIn(page, token) {
  await page.goto(url);
  await page.getByLabel("Token (read or admin)").fill(token);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.locator("#top:not([hidden])").waitFor();
}

async function signOut(page) {
  await page.getByRole("button", { name: "Sign out" }).click();
  await page.getByRole("heading", { name: "Sign in to spanhouse" }).waitFor();
}

async function adminFlow(page) {
  await page.goto(url);
  await page.getByRole("heading", { name: "Sign in to spanhouse" }).waitFor();
  check((await page.locator("body").innerText()).includes("bootstrap-token"), "sign-in names the bootstrap token");
  await shot(page, "sign-in");
  await page.getByLabel("Token (read or admin)").fill("sh_wrong");
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.locator("#sign-in-error", { hasText: "unknown or revoked token" }).waitFor();
  console.log("PASS a wrong token is refused");

  await signIn(page, adminToken);
  const row = page.locator(`tr[data-trace-id="${traceId}"]`);
  await row.waitFor();
  check((await row.innerText()).includes("weather in Paris"), "the trace row shows the input");
  check((await row.innerText()).includes("gpt-4o"), "the trace row shows the model");
  await shot(page, "traces");
  console.log("PASS signed in and sees the ingested trace");

  await page.getByLabel("Search").fill("no such text anywhere");
  await page.getByRole("button", { name: "Apply" }).click();
  await page.getByText("No trace matches these filters").waitFor();
  await page.getByLabel("Search").fill("paris");
  await page.getByLabel("Status").selectOption("ok");
  await page.getByRole("button", { name: "Apply" }).click();
  await row.waitFor();
  console.log("PASS search and filters");

  // Keyboard: the row's link is reachable and opens the trace.
  await row.getByRole("link").focus();
  await page.keyboard.press("Enter");
  const conversation = page.locator(".conversation");
  await conversation.waitFor();
  const text = await conversation.innerText();
  for (const expected of ["You are a weather assistant.", "What is the weather in Paris?", "get_weather", "18C and sunny", "It is sunny"]) {
    check(text.includes(expected), `the conversation shows ${JSON.stringify(expected)}`);
  }
  for (const role of ["system", "user", "assistant", "tool"]) {
    check(await page.locator(`.conversation .role-${role}`).count() > 0, `a ${role} message is shown`);
  }
  const facts = await page.locator(".llm-panel .facts").innerText();
  check(facts.includes("gpt-4o") && facts.includes("stop") && facts.includes("45"), `model, finish reason and tokens: ${facts}`);
  check(await page.locator(".span-tree .span-row").count() === 3, "three spans in the tree");
  await shot(page, "trace");
  console.log("PASS opened the trace and read the LLM conversation");

  await page.locator(".span-row").first().focus();
  await page.keyboard.press("Enter");
  await page.locator(".span-row").first().and(page.locator("[aria-pressed=true]")).waitFor();
  await page.keyboard.press("ArrowDown");
  await page.locator(".span-row").nth(1).and(page.locator("[aria-pressed=true]")).waitFor();
  await page.locator(".span-detail h3", { hasText: "Resource" }).waitFor();
  console.log("PASS spans selected with the keyboard show attributes, events and resource");

  await page.getByRole("link", { name: "Dashboard" }).click();
  await page.locator("#chart-traces svg rect.bar").first().waitFor();
  await page.locator("#chart-latency svg circle.point").first().waitFor();
  const models = await page.locator("table.models").innerText();
  check(models.includes("gpt-4o"), "the model breakdown lists gpt-4o");
  await shot(page, "dashboard");
  await page.getByRole("button", { name: "Last hour" }).click();
  await page.locator('[data-range="1h"][aria-pressed="true"]').waitFor();
  await page.locator("#chart-traces svg rect.bar").first().waitFor();
  check(await page.locator('.range-picker [aria-pressed="true"]').count() === 1, "one range is chosen");
  console.log("PASS dashboard charts and model breakdown");

  await page.getByRole("link", { name: "Ingestion" }).click();
  const received = page.locator('[data-counter="received"] .stat-value');
  await received.waitFor();
  check(Number((await received.innerText()).replace(/,/g, "")) >= 3, "received counts the spans");
  await page.locator("#chart-ingestion svg").waitFor();
  await shot(page, "ingestion");
  console.log("PASS ingestion counters");

  await page.getByRole("link", { name: "Settings" }).click();
  await page.getByLabel("Filter conditions").fill('name == "unterminated');
  await page.getByRole("button", { name: "Save settings" }).click();
  await page.locator("#settings-status.error", { hasText: "does not parse" }).waitFor();
  console.log("PASS an invalid filter is refused with the parse error");
  await page.getByLabel("Filter conditions").fill('name == "healthcheck"');
  await page.getByLabel("Rate limit (spans per second)").fill("500");
  await page.getByLabel("Retention (days)").fill("3650");
  await page.getByRole("button", { name: "Save settings" }).click();
  await page.locator("#settings-status.ok").waitFor();
  const saved = await page.evaluate(async () => (await fetch("/api/v1/project/settings")).json());
  check(saved.rate_limit === 500 && saved.filters[0] === 'name == "healthcheck"' && saved.retention_days === 3650,
    `settings saved: ${JSON.stringify(saved)}`);
  console.log("PASS settings changed");

  await page.getByLabel("Role").selectOption("ingest");
  await page.getByLabel("Name").fill("browser-test");
  await page.getByRole("button", { name: "Create token" }).click();
  const secret = (await page.locator("#new-token-secret").innerText()).trim();
  check(/^sh_[0-9a-f]{48}$/.test(secret), "the new token is shown once");
  const tokenRow = page.locator("tr", { hasText: "browser-test" });
  await tokenRow.waitFor();
  page.once("dialog", (dialog) => dialog.accept());
  await tokenRow.getByRole("button", { name: "Revoke" }).click();
  await page.locator("tr", { hasText: "browser-test" }).filter({ hasText: "revoked" }).waitFor();
  await shot(page, "settings");
  console.log("PASS token created and revoked");

  await signOut(page);
  const after = await page.evaluate(async () => (await fetch("/api/v1/traces")).status);
  check(after === 401, "signed out: the API answers 401");
  console.log("PASS signed out");
}

async function hostileOutput(page) {
  let dialogs = 0;
  page.on("dialog", (dialog) => {
    dialogs += 1;
    dialog.dismiss();
  });
  await signIn(page, adminToken);
  const row = page.locator(`tr[data-trace-id="${traceId}"]`);
  await row.waitFor();
  check((await row.innerText()).includes("<img src=x"), "the hostile output is shown as text in the list");
  await page.goto(`${url}/#/trace/${traceId}`);
  await page.locator(".conversation").waitFor();
  const text = await page.locator(".conversation").innerText();
  check(text.includes("<script>window.__xss=2</script>"), "the script tag is shown as text");
  check(text.includes('onerror="window.__xss=1"'), "the img tag is shown as text");
  check(await page.locator("main img, main script").count() === 0, "no element was made from LLM text");
  const flags = await page.evaluate(() => [window.__xss, window.__xss_alert]);
  check(flags[0] === undefined && flags[1] === undefined, "no hostile code ran");
  check(dialogs === 0, "no dialog was opened");
  const csp = (await page.goto(url)).headers()["content-security-policy"] || "";
  check(csp.includes("script-src 'self'") && !csp.includes("unsafe-inline"), `strict CSP: ${csp}`);
  await shot(page, "hostile");
  console.log("PASS hostile LLM output is rendered as text and never runs");
}

async function readOnly(page) {
  await signIn(page, readToken);
  await page.locator(`tr[data-trace-id="${traceId}"]`).waitFor();
  await page.getByRole("link", { name: "Settings" }).click();
  await page.locator("#read-only-note").waitFor();
  check(await page.getByRole("button", { name: "Save settings" }).count() === 0, "no save button for a read token");
  check(await page.getByLabel("Filter conditions").isDisabled(), "fields are read-only");
  check(await page.locator(".tokens").count() === 0, "no token management for a read token");
  await shot(page, "settings");
  // Even a hand-made request with the session's CSRF token is refused.
  const status = await page.evaluate(async () => {
    const session = await (await fetch("/ui/session")).json();
    const response = await fetch("/api/v1/project/settings", {
      method: "PUT",
      headers: { "content-type": "application/json", "x-csrf-token": session.csrf_token },
      body: JSON.stringify({ rate_limit: 1 }),
    });
    return response.status;
  });
  check(status === 403, `a read session cannot change settings (got ${status})`);
  console.log("PASS a read token cannot change settings");
  await signOut(page);
}

async function empty(page) {
  await signIn(page, adminToken);
  await page.getByRole("heading", { name: "No traces yet — here is how to send one" }).waitFor();
  const snippet = await page.locator(".empty .snippet").first().innerText();
  check(snippet.includes(`OTEL_EXPORTER_OTLP_ENDPOINT=${url}`), `the exporter settings name this server: ${snippet}`);
  await shot(page, "traces");
  await page.getByRole("link", { name: "Dashboard" }).click();
  await page.locator(".stat", { hasText: "Traces" }).filter({ hasText: "0" }).waitFor();
  await page.getByRole("heading", { name: "No traces yet — here is how to send one" }).waitFor();
  await shot(page, "dashboard");
  console.log("PASS the empty state shows how to send a first trace");
}

const scenarios = {
  "admin-flow": adminFlow, "hostile-output": hostileOutput, "read-only": readOnly, empty,
  "filters-and-scores": (page) => filtersAndScores(page,
    { url, adminToken, readToken, traceId, otherTraceId, check, shot, signIn, signOut }),
  alerts: (page) => alerts(page, { adminToken, readToken, check, shot, signIn, signOut }),
  insights: (page) => insights(page, { adminToken, check, shot, signIn }),
};

async function main() {
  check(scenarios[scenario], `unknown scenario ${scenario}`);
  mkdirSync(screenshots, { recursive: true });
  const profile = mkdtempSync(join(tmpdir(), "spanhouse-chromium-"));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.SPANHOUSE_CHROMIUM || "/usr/bin/chromium",
    headless: true,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync"],
    viewport: { width: 1360, height: 900 },
  });
  const page = context.pages()[0] || (await context.newPage());
  const problems = [];
  page.on("pageerror", (error) => problems.push(`page error: ${error.message}`));
  page.on("console", (message) => {
    if (message.type() === "error" && !/status of 40[013] /.test(message.text())) {
      problems.push(`console error: ${message.text()}`);
    }
  });
  try {
    await scenarios[scenario](page);
    check(problems.length === 0, problems.join("\n"));
  } catch (error) {
    await shot(page, "failure").catch(() => {});
    throw error;
  } finally {
    await context.close();
    rmSync(profile, { recursive: true, force: true });
  }
}

main().then(
  () => console.log(`OK ${scenario}`),
  (error) => {
    console.error(error.stack || String(error));
    process.exit(1);
  },
);
