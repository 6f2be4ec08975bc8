/**
 * The dashboard in a real browser with real agents: a Claude Code run (the
 * CLI from `.agents/bin`, `scripts/install-agents.sh`) against the scripted
 * model server, whose tool call and result the page renders with the
 * assistant's text and the token usage; and an ACP run of the fixture agent
 * (`test/fixtures/acp-agent`) whose permission request is answered from the
 * page (the options as buttons, the deadline counting down), after which the
 * run continues to its end. A missing CLI fails, never skips.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { rmSync } from "node:fs";
import path from "node:path";
import type { Browser } from "playwright-core";
import { startModelServer, type ModelServer } from "../fixtures/model-server/index.ts";
import { allEvents, describeEvents, writeConfig } from "../helpers/events.ts";
import { spawnServer, type TestServer } from "../helpers/spawn-server.ts";
import { outputText } from "../../web/src/run/tool-detail.ts";
import { artifactPath, launchBrowser, openPage, ROOT, signIn, startRunFromForm, waitForStatus, type PageWatch } from "./lib.ts";

const T = { timeout: 120_000 };
const FIXTURE = path.join(ROOT, "test/fixtures/acp-agent/agent.ts");

describe("dashboard with real agents in a real browser", () => {
  let model: ModelServer;
  let s: TestServer;
  let browser: Browser;
  let token: string;
  let config: string;
  let admin: PageWatch;

  before(async () => {
    model = await startModelServer();
    config = writeConfig({
      agents: { claude_code: { base_url: model.url, api_key: "sk-test", model: "claude-sonnet-4-5", max_retries: 0 } },
      acp_agents: { fixture: { command: process.execPath, args: ["--import", import.meta.resolve("tsx"), FIXTURE], vendor: "none" } },
      permissions: { default_policy: "ask", timeout_secs: 300, timeout_decision: "reject" },
    });
    s = await spawnServer({ env: { OPENRUNNER_CONFIG: config } });
    browser = await launchBrowser();
    token = await s.login();
    admin = await openPage(browser, s.url);
    await signIn(admin.page, "admin", "test-admin-password-1");
  });
  after(async () => {
    await browser?.close();
    await s?.stop();
    s?.cleanup();
    await model?.close();
    if (config) rmSync(path.dirname(config), { recursive: true, force: true });
  });

  test("Claude Code: the tool call with its command and result, the answer, tokens", T, async () => {
    const { page } = admin;
    await page.getByRole("link", { name: "Agents" }).click();
    const row = page.locator('tr[data-agent="claude_code"]');
    await row.waitFor();
    assert.equal(await row.locator(".badge.good").count(), 1, `claude_code is not available here: ${await row.textContent()}`);
    model.setScenario({ turns: [{ tool: { shell: "printf 'hello\\n' > hello.txt" } }, { text: "Created hello.txt." }] });
    const runId = await startRunFromForm(page, { agent: "claude_code", prompt: "create hello.txt" });
    await waitForStatus(page, "completed", 90_000);
    const evs = await allEvents(s, token, runId, 30_000);
    const call = evs.find((e) => e.type === "tool.call");
    assert.ok(call, describeEvents(evs));
    const tool = page.getByRole("article", { name: `tool call ${call.data.name as string}` });
    await tool.waitFor();
    assert.match((await tool.locator(".command").textContent()) ?? "", /printf 'hello\\n' > hello\.txt/);
    const result = evs.find((e) => e.type === "tool.result" && e.data.call_id === call.data.call_id)!;
    assert.equal(await tool.locator(".badge.good").textContent(), "done");
    const shown = (await tool.locator(".tool-result pre").textContent()) ?? "";
    assert.equal(shown, outputText(result.data.output) || "(no output)", "the result's output is shown");
    await page.getByRole("article", { name: "assistant message" }).filter({ hasText: "Created hello.txt." }).first().waitFor();
    assert.match((await page.getByTestId("usage").textContent()) ?? "", /\d+ in \/ \d+ out/);
    await page.screenshot({ path: artifactPath("run-page-claude.png"), fullPage: true });
    admin.assertClean(token);
  });

  test("ACP: a permission request answered from the page; the run continues to its end", T, async () => {
    const { page } = admin;
    const script = JSON.stringify({ steps: [{ say: "asking" }, { permission: { id: "call-1", title: "Write hello.txt" } }, { say: "after" }] });
    const runId = await startRunFromForm(page, { agent: "acp:fixture", prompt: script, policy: "ask" });
    const request = page.locator("section.permissions article.permission");
    await request.waitFor({ timeout: 60_000 });
    assert.match((await request.locator("header").textContent()) ?? "", /Write hello\.txt/);
    const timer = request.getByRole("timer");
    assert.match((await timer.textContent()) ?? "", /^[45]:\d\d left$/);
    await waitForStatus(page, "waiting");
    const first = await timer.textContent();
    await page.waitForFunction((before) => document.querySelector('section.permissions [role="timer"]')?.textContent !== before, first, { timeout: 5000 });
    const buttons = await request.getByRole("button").allTextContents();
    assert.deepEqual(buttons, ["Allow", "Reject"]);
    await request.getByRole("button", { name: "Allow" }).click();
    await waitForStatus(page, "completed", 60_000);
    await page.locator("section.permissions").waitFor({ state: "detached" });
    const decided = page.getByRole("article", { name: "permission request Write hello.txt" });
    assert.match((await decided.textContent()) ?? "", /Allow by user:admin/);
    await page.getByRole("article", { name: "assistant message" }).filter({ hasText: "permission allow" }).first().waitFor();
    const evs = await allEvents(s, token, runId, 30_000);
    const decision = evs.find((e) => e.type === "permission.decision");
    assert.deepEqual(decision?.data, { request_id: decision?.data.request_id, decision: "allow", by: "user:admin", option_name: "Allow", kind: "allow_once" }, describeEvents(evs));
    assert.equal(evs.at(-1)?.type, "run.completed");
    admin.assertClean(token);
  });
});
