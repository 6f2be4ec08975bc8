/**
 * The dashboard in a real browser (Debian's chromium through playwright-core)
 * against the real server on port 0, with `shell` runs: sign in; a run started
 * from the form whose lines appear while it runs; the API's validation error
 * beside its field; the runs list changing status without a reload; a reload
 * in the middle of a run (events continue, none doubled); cancel from the page
 * (the process group is gone); another user's run not reachable by URL; an API
 * key shown once. Every page is checked for requests to other hosts, CSP
 * violations, page errors and a token in a URL. Writes the run page's
 * screenshots to test-artifacts/run-page.png (and run-page-dark.png, the dark theme).
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import type { Browser } from "playwright-core";
import { ADMIN_PASSWORD, spawnServer, type TestServer } from "../helpers/spawn-server.ts";
import { createRun, eventsUntil } from "../helpers/events.ts";
import { groupAlive, runProcesses, waitFor } from "../helpers/processes.ts";
import { artifactPath, launchBrowser, logLines, openPage, signIn, startRunFromForm, waitForStatus, type PageWatch } from "./lib.ts";

const T = { timeout: 60_000 };

describe("dashboard in a real browser", () => {
  let s: TestServer;
  let browser: Browser;
  let token: string;
  let admin: PageWatch;

  before(async () => {
    s = await spawnServer();
    browser = await launchBrowser();
    token = await s.login();
    admin = await openPage(browser, s.url);
  });
  after(async () => {
    await browser?.close();
    await s?.stop();
    s?.cleanup();
  });

  test("sign in: a wrong password is refused with the API's message, the right one opens the runs list", T, async () => {
    const { page } = admin;
    await page.goto("/");
    await page.getByLabel("Username").fill("admin");
    await page.getByLabel("Password").fill("not-the-password");
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByRole("alert").getByText(/unauthorized/).waitFor();
    await signIn(page, "admin", ADMIN_PASSWORD);
    assert.equal(new URL(page.url()).pathname, "/runs");
    const stored = await page.evaluate(() => ({ session: Object.keys(sessionStorage), local: Object.keys(localStorage), cookie: document.cookie }));
    assert.deepEqual(stored, { session: ["openrunner.token"], local: [], cookie: "" }, "the token lives in this tab's sessionStorage only");
    admin.assertClean(token);
  });

  test("a shell run from the form: its lines appear while it runs, each once, in order; screenshot", T, async () => {
    const { page } = admin;
    const runId = await startRunFromForm(page, { agent: "shell", prompt: 'for i in 1 2 3 4 5 6; do echo "tick $i"; sleep 0.4; done' });
    await page.locator('[data-kind="log"]', { hasText: "tick 1" }).waitFor();
    // Live: the first line is on the page before the run has printed its last one.
    const early = await logLines(page);
    assert.ok(!early.includes("tick 6"), `tick 6 already there: ${early.join(",")}`);
    await waitForStatus(page, "completed");
    assert.deepEqual(await logLines(page), ["tick 1", "tick 2", "tick 3", "tick 4", "tick 5", "tick 6"]);
    await page.getByRole("article", { name: "run completed" }).waitFor();
    const row = (await (await s.api(`/api/runs/${runId}`, { token })).json()) as { last_event_id: number };
    const count = page.getByTestId("event-count");
    assert.equal(await count.getAttribute("data-count"), String(row.last_event_id));
    await page.screenshot({ path: artifactPath("run-page.png"), fullPage: true });
    // The dark theme follows the system's preference.
    const background = () => page.evaluate(() => getComputedStyle(document.documentElement).backgroundColor);
    const light = await background();
    await page.emulateMedia({ colorScheme: "dark" });
    const dark = await background();
    assert.notEqual(dark, light);
    assert.equal(dark, "rgb(15, 17, 21)");
    await page.screenshot({ path: artifactPath("run-page-dark.png"), fullPage: true });
    await page.emulateMedia({ colorScheme: "light" });
    assert.equal(await background(), "rgb(255, 255, 255)");
    admin.assertClean(token);
  });

  test("the API's validation error is shown beside its field, with its code and path", T, async () => {
    const { page } = admin;
    await page.getByRole("link", { name: "New run" }).first().click();
    await page.locator('#agent option[value="shell"]').waitFor({ state: "attached" });
    await page.getByLabel("Prompt").fill("echo never");
    await page.getByLabel("Timeout (seconds)").fill("0");
    await page.getByRole("button", { name: "Start run" }).click();
    const problem = page.locator('[data-path="/metadata/timeout_secs"]');
    await problem.waitFor();
    assert.equal(await problem.getAttribute("data-code"), "validation_failed");
    assert.match((await problem.textContent()) ?? "", />= 1/);
    assert.equal(await page.getByLabel("Timeout (seconds)").getAttribute("aria-invalid"), "true");
    assert.equal(new URL(page.url()).pathname, "/runs/new", "no run was started");
    admin.assertClean(token);
  });

  test("the runs list follows a run's status without a reload; filters by status", T, async () => {
    const { page } = admin;
    const runId = await createRun(s, token, "sleep 1.5; echo listed", { agent_type: "shell" });
    await page.getByRole("link", { name: "Runs", exact: true }).click();
    const row = page.locator(`tr[data-run-id="${runId}"]`);
    await row.locator(".status-running").waitFor();
    let navigations = 0;
    page.on("framenavigated", () => navigations++);
    await row.locator(".status-completed").waitFor({ timeout: 20_000 });
    assert.equal(navigations, 0, "the status changed in place");
    await page.getByLabel("Status").selectOption("failed");
    await page.waitForURL(/status=failed/);
    await page.locator(`tr[data-run-id="${runId}"]`).waitFor({ state: "detached" });
    await page.getByLabel("Status").selectOption("");
    await page.locator(`tr[data-run-id="${runId}"]`).waitFor();
    admin.assertClean(token);
  });

  test("a reload in the middle of a run: the events continue, none doubled", T, async () => {
    const { page } = admin;
    const runId = await createRun(s, token, 'for i in $(seq 1 12); do echo "line $i"; sleep 0.3; done', { agent_type: "shell" });
    await page.goto(`/runs/${runId}`);
    await page.locator('[data-kind="log"]', { hasText: "line 3" }).waitFor();
    await page.reload();
    await page.locator('[data-kind="log"]', { hasText: "line 1" }).first().waitFor();
    await waitForStatus(page, "completed");
    assert.deepEqual(await logLines(page), Array.from({ length: 12 }, (_, i) => `line ${i + 1}`));
    const row = (await (await s.api(`/api/runs/${runId}`, { token })).json()) as { last_event_id: number };
    const count = page.getByTestId("event-count");
    assert.equal(await count.getAttribute("data-count"), String(row.last_event_id), "one row of state per event");
    assert.equal(await count.getAttribute("data-last-id"), String(row.last_event_id));
    const ids = await page.locator("[data-ev-id]").evaluateAll((els) => els.map((e) => Number(e.getAttribute("data-ev-id"))));
    assert.deepEqual(ids, [...new Set(ids)].sort((a, b) => a - b), "row ids unique and in order");
    admin.assertClean(token);
  });

  test("cancel from the page: the run ends cancelled and its process group is gone", T, async () => {
    const { page } = admin;
    const runId = await createRun(s, token, "echo started; sleep 600", { agent_type: "shell" });
    const started = await eventsUntil(s, token, runId, (e) => e.type === "log");
    const pid = started.find((e) => e.type === "run.started")!.data.pid as number;
    assert.ok(groupAlive(pid));
    await page.goto(`/runs/${runId}`);
    await page.locator('[data-kind="log"]', { hasText: "started" }).waitFor();
    await page.getByRole("button", { name: "Cancel run" }).click();
    await waitForStatus(page, "cancelled");
    await page.getByRole("article", { name: "run cancelled" }).waitFor();
    assert.equal(await page.getByRole("button", { name: "Cancel run" }).count(), 0);
    await waitFor(() => !groupAlive(pid), 10_000, `process group ${pid} still alive`);
    await waitFor(() => runProcesses(runId).length === 0, 10_000, `processes of ${runId} still alive`);
    admin.assertClean(token);
  });

  test("another user's run is not reachable by URL, and not listed", T, async () => {
    const res = await s.api("/api/users", { method: "POST", token, json: { username: "bob", password: "bob-password-1" } });
    assert.equal(res.status, 201);
    const adminRun = await createRun(s, token, "echo mine", { agent_type: "shell" });
    const bob = await openPage(browser, s.url);
    try {
      await signIn(bob.page, "bob", "bob-password-1");
      await bob.page.getByText("No runs yet.").waitFor();
      await bob.page.goto(`/runs/${adminRun}`);
      await bob.page.getByRole("heading", { name: "Run not found" }).waitFor();
      assert.equal(await bob.page.locator("[data-ev-id]").count(), 0);
      assert.equal(await bob.page.getByRole("link", { name: "Users" }).count(), 0, "no admin pages for a user");
      bob.assertClean();
    } finally {
      await bob.context.close();
    }
  });

  test("API keys: a new key is shown once, then listed by its prefix only", T, async () => {
    const { page } = admin;
    await page.getByRole("link", { name: "API keys" }).click();
    await page.getByLabel("Name").fill("browser-ci");
    await page.getByRole("button", { name: "Create key" }).click();
    const key = (await page.getByTestId("new-key").textContent())!;
    assert.match(key, /^or_/);
    const check = await s.api("/api/auth/me", { token: key });
    assert.equal(check.status, 200, "the shown key works");
    await page.getByRole("button", { name: "Done" }).click();
    await page.getByRole("cell", { name: "browser-ci" }).waitFor();
    assert.equal(await page.getByText(key).count(), 0, "the key is not shown again");
    admin.assertClean(token);
  });
});
