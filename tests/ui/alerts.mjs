// The "alerts" scenario of browser.mjs: an admin creates an alert rule in Settings and sees its
// secret once; the rule (over the ingested trace, evaluated every second by the test's server)
// fires, and its state and history show the change and its webhook attempts (to a port nobody
// listens on); a read session sees the rule without its webhook's path and without the form;
// the admin deletes it.

/** Waits until the API says the rule `name` is in `state` (polling, at most a minute), then loads
 * Settings again (the list is read when the page opens) and returns the rule's row. */
async function waitForState(page, name, state, check) {
  const reached = await page.evaluate(async ([name, state]) => {
    for (let poll = 0; poll < 240; poll += 1) {
      const { alerts } = await (await fetch("/api/v1/alerts")).json();
      if (alerts.some((rule) => rule.name === name && rule.state === state)) return true;
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
    return false;
  }, [name, state]);
  check(reached, `the rule ${name} did not become ${state}`);
  await page.reload();
  await page.getByRole("link", { name: "Settings" }).click();
  const row = page.locator("table.alert-list tr", { hasText: name }).filter({ has: page.locator(`.badge.alert-${state}`) });
  await row.waitFor();
  return row;
}

export async function alerts(page, { adminToken, readToken, check, shot, signIn, signOut }) {
  await signIn(page, adminToken);
  await page.getByRole("link", { name: "Settings" }).click();
  await page.getByText("No alert rules yet.").waitFor();
  await page.getByLabel("Title").fill("Any traffic");
  await page.getByLabel("When").selectOption("traces");
  await page.locator("#alert-op").selectOption(">");
  await page.locator("#alert-threshold").fill("0");
  await page.locator("#alert-window").fill("1h");
  await page.getByLabel("Of the traces matching").fill('status == "ok"');
  await page.getByLabel("Webhook URL").fill("http://127.0.0.1:9/hooks/T000/credential");
  await page.getByRole("button", { name: "Create alert rule" }).click();
  const secret = (await page.locator("#new-alert-secret").innerText()).trim();
  check(/^shwh_[0-9a-f]{64}$/.test(secret), `the new rule's secret is shown once: ${secret}`);
  await page.locator("table.alert-list tr", { hasText: "Any traffic" }).waitFor();
  console.log("PASS an alert rule is created and its secret shown once");

  const row = await waitForState(page, "Any traffic", "firing", check);
  check((await row.innerText()).includes("traces > 0 over 1h"), "the row states the condition");
  check(!(await page.locator("body").innerText()).includes(secret), "the secret is not shown again");
  await row.getByRole("button", { name: "History" }).click();
  const history = page.locator("table.alert-history");
  await history.waitFor();
  check((await history.innerText()).includes("firing"), "the history lists the firing");
  check(/attempt/.test(await history.innerText()), "the history tells the webhook attempts");
  await shot(page, "alerts");
  console.log("PASS the rule fires and its history shows the change and the webhook attempts");

  await signOut(page);
  await signIn(page, readToken);
  const readRow = await waitForState(page, "Any traffic", "firing", check);
  check((await readRow.innerText()).includes("http://127.0.0.1/…"), "a read session sees the webhook's host only");
  check(!(await readRow.innerText()).includes("credential"), "a read session does not see the webhook's path");
  check(await page.getByRole("button", { name: "Create alert rule" }).count() === 0, "no form for a read session");
  check(await readRow.getByRole("button", { name: "Delete" }).count() === 0, "no delete for a read session");
  console.log("PASS a read session sees the rule and cannot change it");

  await signOut(page);
  await signIn(page, adminToken);
  const adminRow = await waitForState(page, "Any traffic", "firing", check);
  page.once("dialog", (dialog) => dialog.accept());
  await adminRow.getByRole("button", { name: "Delete" }).click();
  await page.getByText("No alert rules yet.").waitFor();
  console.log("PASS the rule is deleted");
}
