// The "filters-and-scores" scenario of browser.mjs: a reviewer filters the traces with the filter
// language (SPEC §7), sees the error of a broken filter at its column, scores a trace (SPEC §8),
// sees the score's mean on the filtered dashboard and the LLM calls on the spans page; a read
// session sees the scores and no form. Traces (from tests/ui_browser.rs): SPANHOUSE_TRACE_ID of
// tenant acme (on its root span), SPANHOUSE_OTHER_TRACE_ID of tenant other (on an LLM span).

const ACME = 'span.attributes["tenant"] == "acme"';
/** Parses up to `foo`, an unknown path: the server names its column. */
const BROKEN = 'status == "ok" and foo == 1';

/** Waits until the table `selector` has `count` rows. */
async function rows(page, selector, count) {
  await page.waitForFunction(([selector, count]) =>
    document.querySelectorAll(`${selector} tbody tr`).length === count, [selector, count]);
}

export async function filtersAndScores(page, { url, adminToken, readToken, traceId, otherTraceId, check, shot, signIn, signOut }) {
  const acmeRow = page.locator(`tr[data-trace-id="${traceId}"]`);
  const otherRow = page.locator(`tr[data-trace-id="${otherTraceId}"]`);
  const filter = page.getByLabel("Filter", { exact: true });

  await signIn(page, adminToken);
  await acmeRow.waitFor();
  await otherRow.waitFor();
  await filter.fill("span.attr");
  await page.locator(".suggestion", { hasText: 'span.attributes["' }).first().waitFor();
  // By keyboard: ↓ reaches the suggestions, Enter chooses one.
  await filter.press("ArrowDown");
  await page.locator(".suggestion:focus").waitFor();
  await page.keyboard.press("Enter");
  await page.locator("#filter-suggestions[hidden]").waitFor({ state: "attached" });
  check((await filter.inputValue()).startsWith("span.attr") && await filter.inputValue() !== "span.attr",
    `a suggestion completes the word: ${await filter.inputValue()}`);
  console.log("PASS the filter bar suggests the language's names");

  await filter.fill("");
  await filter.pressSequentially(ACME);
  await filter.press("Enter");
  await page.waitForURL((address) => address.hash.startsWith("#/traces?filter="));
  await rows(page, "table.traces", 1);
  await acmeRow.waitFor();
  await shot(page, "filtered");
  console.log("PASS a filter lists only the matching traces");

  // Download exports what the list shows, with the session's cookie.
  const href = await page.locator("#download-traces").getAttribute("href");
  check(new URLSearchParams(href.split("?")[1]).get("filter") === ACME, `the download has the filter: ${href}`);
  const exported = await page.evaluate(async (href) => (await fetch(href)).text(), href);
  const lines = exported.trim().split("\n").map((line) => JSON.parse(line));
  check(lines.length === 1 && lines[0].trace.trace_id === traceId, `the download holds the matching trace: ${exported.slice(0, 200)}`);
  console.log("PASS Download exports the filtered traces");

  await page.reload();
  await rows(page, "table.traces", 1);
  check(await page.getByLabel("Filter", { exact: true }).inputValue() === ACME, "the reloaded page has the filter");
  console.log("PASS the filter is kept in the URL");

  await filter.fill(BROKEN);
  await filter.press("Enter");
  const error = page.locator("#filter-error", { hasText: /column \d+/ });
  await error.waitFor();
  check(await filter.getAttribute("aria-invalid") === "true", "the input is marked invalid");
  const caret = await page.locator("#filter-error .caret").innerText();
  const column = Number(/column (\d+)/.exec(await error.innerText())[1]);
  check(caret.split("\n")[1] === `${" ".repeat(column - 1)}^`, `a caret under column ${column}: ${JSON.stringify(caret)}`);
  check(await page.locator("table.traces").count() === 0, "no traces are listed under a broken filter");
  await shot(page, "broken-filter");
  console.log("PASS a broken filter shows the server's error at its column");

  await page.goBack();
  await rows(page, "table.traces", 1);
  check(await filter.inputValue() === ACME, "Back restores the previous filter");
  check(await page.locator("#filter-error .error").count() === 0, "and no error");
  console.log("PASS Back returns to the previous filter");

  await acmeRow.getByRole("link").click();
  const scores = page.locator("#score-list");
  await scores.getByText("No scores yet.").waitFor();
  await page.getByLabel("Comment (optional)").fill("The answer <b>ignored</b> the question");
  await page.getByRole("button", { name: "Thumbs down" }).click();
  const thumbs = scores.locator('tr[data-score-name="thumbs"]');
  await thumbs.waitFor();
  const thumbsText = await thumbs.innerText();
  check(thumbsText.includes("false") && thumbsText.includes("ui"), `the thumbs down is listed: ${thumbsText}`);
  check(thumbsText.includes("<b>ignored</b>"), "the comment is shown as text");
  console.log("PASS a thumbs down is added and listed");

  await page.getByLabel("Score name").fill("accuracy");
  await page.getByLabel("Value", { exact: true }).fill("0.5");
  await page.getByRole("button", { name: "Add score" }).click();
  const accuracy = scores.locator('tr[data-score-name="accuracy"]');
  await accuracy.waitFor();
  check((await accuracy.innerText()).includes("0.5"), "the numeric score is listed");
  await page.locator("#score-status.ok").waitFor();
  await shot(page, "scored");
  console.log("PASS a numeric score with a comment is added");

  await page.getByRole("link", { name: "← All traces" }).click();
  await rows(page, "table.traces", 1);
  check(await filter.inputValue() === ACME, "the way back keeps the filter");
  await page.getByRole("link", { name: "Chart these traces" }).click();
  const mean = page.locator('table.score-totals tr[data-score-name="thumbs"] .score-mean');
  await mean.waitFor();
  check((await mean.innerText()).trim() === "0", `the thumbs mean is 0: ${await mean.innerText()}`);
  check(await filter.inputValue() === ACME, "the dashboard has the filter");
  check(new URL(page.url()).hash.startsWith("#/dashboard?filter="), "the dashboard's filter is in the URL");
  await page.locator("#chart-score-1 svg circle.point").waitFor();
  const traces = await page.locator(".stat", { hasText: "Traces" }).locator(".stat-value").innerText();
  check(traces.trim() === "1", `the dashboard counts the filtered traces only: ${traces}`);
  await shot(page, "dashboard");
  console.log("PASS the dashboard takes the filter and charts each score's mean");

  await page.getByRole("link", { name: "Spans" }).click();
  check(await filter.inputValue() === "llm != nil", "the spans page shows the LLM calls");
  await rows(page, "table.spans", 2);
  const llmRow = page.locator(`table.spans tr[data-trace-id="${otherTraceId}"]`);
  const llmText = await llmRow.innerText();
  check(llmText.includes("claude-sonnet-4") && llmText.includes("anthropic"), `model and provider: ${llmText}`);
  await shot(page, "spans");
  await llmRow.getByRole("link").click();
  await page.locator(".llm-panel").waitFor();
  check((await page.locator(".span-row[aria-pressed=true]").innerText()).includes("chat claude"), "the span is selected");
  console.log("PASS the spans page lists the LLM calls");

  // The project's attribute keys are suggested (GET /api/v1/filter/keys): choose one, complete it.
  await page.getByRole("link", { name: "Traces", exact: true }).click();
  // The page has loaded (both traces listed) before anything is typed into its filter bar.
  await rows(page, "table.traces", 2);
  await filter.fill('span.attributes["ten');
  await page.getByRole("button", { name: 'span.attributes["tenant"]' }).click();
  check(await filter.inputValue() === 'span.attributes["tenant"]', "the suggestion replaces the word typed");
  await filter.press("End");
  await filter.pressSequentially(' == "other"');
  await filter.press("Enter");
  await rows(page, "table.traces", 1);
  await otherRow.waitFor();
  console.log("PASS the project's attribute keys are suggested");

  await signOut(page);
  await signIn(page, readToken);
  await page.goto(`${url}/#/trace/${traceId}`);
  await page.locator('#score-list tr[data-score-name="thumbs"]').waitFor();
  check(await page.locator(".score-form").count() === 0, "no scoring form for a read session");
  check(await page.getByRole("button", { name: "Thumbs down" }).count() === 0, "no thumbs buttons");
  const status = await page.evaluate(async (trace) => {
    const session = await (await fetch("/ui/session")).json();
    const response = await fetch("/api/v1/scores", {
      method: "POST",
      headers: { "content-type": "application/json", "x-csrf-token": session.csrf_token },
      body: JSON.stringify({ trace_id: trace, name: "thumbs", value: true, source: "ui" }),
    });
    return response.status;
  }, traceId);
  check(status === 403, `a read session cannot add a score (got ${status})`);
  console.log("PASS a read session sees the scores and no scoring form");
}
