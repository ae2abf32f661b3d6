// The "insights" scenario of browser.mjs: the project holds two days of traffic whose last day
// has planted changes (tests/common/traffic.rs: model m-a fails ten times as often, pipeline p-2
// costs twice as much, team t3 is three times as slow). From the dashboard, "What changed?"
// opens the Insights page, which shows exactly those changes as sentences with their numbers and
// a before/after chart; an insight's link opens the traces page on its traces and window.

export async function insights(page, { adminToken, check, shot, signIn }) {
  await signIn(page, adminToken);
  await page.getByRole("link", { name: "Dashboard" }).click();
  await page.locator("#what-changed").click();
  await page.getByRole("heading", { name: "Insights", level: 1 }).waitFor();
  const card = page.locator('article.insight[data-metric="error_rate"][data-field="model"][data-value="m-a"]');
  await card.waitFor();
  const sentence = await card.locator(".insight-sentence").innerText();
  check(/^Error rate of traces of model “m-a” rose from [\d.]+% to [\d.]+%/.test(sentence), `the sentence: ${sentence}`);
  const planted = [
    'article.insight[data-metric="cost_per_trace"][data-field="pipeline_id"][data-value="p-2"]',
    'article.insight[data-metric="p95_duration_ms"][data-field="metadata[\\"team\\"]"][data-value="t3"]',
  ];
  for (const selector of planted) check(await page.locator(selector).count() === 1, `shown: ${selector}`);
  check(await page.locator("article.insight").count() === 3, "exactly the three planted changes");
  check(await card.locator("svg.before-after rect").count() === 2, "a before/after chart");
  check((await card.innerText()).includes("after correcting for"), "the numbers behind it");
  await shot(page, "insights");
  console.log("PASS the insights page shows the planted changes");

  const link = card.locator("a.insight-traces");
  const count = Number((await link.innerText()).replace(/\D/g, ""));
  check(count > 100, `the link counts the segment's traces (${count})`);
  await link.click();
  await page.locator("#fixed-window:not([hidden])").waitFor();
  const filter = await page.getByLabel("Filter", { exact: true }).inputValue();
  check(filter === 'model == "m-a"', `the traces page takes the insight's filter: ${filter}`);
  await page.waitForFunction(() => document.querySelectorAll("table.traces tbody tr").length === 50);
  const models = await page.locator("table.traces tbody tr td:last-child").allInnerTexts();
  check(models.every((text) => text.includes("m-a")), `only model m-a's traces: ${models.slice(0, 5)}`);
  await shot(page, "insight-traces");
  console.log("PASS the insight's link opens its traces");
}
