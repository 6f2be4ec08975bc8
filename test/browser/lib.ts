/**
 * Helpers of the real-browser tests (test/browser/*.test.ts) and the `web`
 * benchmark: Debian's chromium driven by playwright-core (no downloaded
 * browser), one browser per file; a page that records what would break the
 * dashboard's promises (a request to another origin, a CSP violation, an
 * uncaught error); sign-in through the form.
 */
import assert from "node:assert/strict";
import { existsSync, mkdirSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { chromium, type Browser, type BrowserContext, type Page } from "playwright-core";

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
/** Where the tests write screenshots (git-ignored). */
export const ARTIFACTS_DIR = path.join(ROOT, "test-artifacts");
/** The browser: Debian's `chromium` package (`.ci/run` installs it); `CHROMIUM_PATH` overrides. */
export const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";

/**
 * Launches headless chromium with background networking off. Fails (never
 * skips) when the browser or the dashboard build is missing.
 */
export async function launchBrowser(): Promise<Browser> {
  assert.ok(existsSync(CHROMIUM), `no browser at ${CHROMIUM}: install Debian's chromium (apt-get install chromium)`);
  assert.ok(existsSync(path.join(ROOT, "web/dist/index.html")), "web/dist is missing: run `npm run build:web`");
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ["--no-sandbox", "--disable-background-networking", "--disable-component-update", "--disable-default-apps", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage", "--disable-gpu", "--disable-breakpad", "--disable-crash-reporter"],
  });
}

/** What a watched page saw that it should not have. */
export interface PageWatch {
  page: Page;
  context: BrowserContext;
  /** Requests to an origin other than the server's. */
  foreign: string[];
  /** CSP violations and uncaught page errors. */
  problems: string[];
  /** Every request URL the page made (to check that no token is in a URL). */
  urls: string[];
  /** Asserts nothing foreign, no CSP violation, no uncaught error, and no URL holding `token` (when given). */
  assertClean(token?: string): void;
}

/** A new context and page for `origin`, watched (see {@link PageWatch}). */
export async function openPage(browser: Browser, origin: string, viewport = { width: 1280, height: 1400 }): Promise<PageWatch> {
  const context = await browser.newContext({ viewport, baseURL: origin, acceptDownloads: true });
  const page = await context.newPage();
  const foreign: string[] = [];
  const problems: string[] = [];
  const urls: string[] = [];
  page.on("request", (req) => {
    const url = req.url();
    urls.push(url);
    if (!url.startsWith(`${origin}/`) && !url.startsWith("blob:") && !url.startsWith("data:")) foreign.push(url);
  });
  page.on("pageerror", (err) => problems.push(`pageerror: ${err.message}`));
  page.on("console", (msg) => {
    if (msg.type() === "error" && /Content Security Policy|Refused to/i.test(msg.text())) problems.push(`csp: ${msg.text()}`);
  });
  return {
    page,
    context,
    foreign,
    problems,
    urls,
    assertClean(token?: string) {
      assert.deepEqual(foreign, [], "requests to another host");
      assert.deepEqual(problems, [], "CSP violations or page errors");
      if (token) assert.deepEqual(urls.filter((u) => u.includes(token)), [], "a URL with the token");
    },
  };
}

/** Signs in through the form and waits for the runs page. */
export async function signIn(page: Page, username: string, password: string): Promise<void> {
  await page.goto("/");
  await page.getByLabel("Username").fill(username);
  await page.getByLabel("Password").fill(password);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("heading", { name: /^Runs/ }).waitFor();
}

/** Fills and submits the new-run form; returns the id of the run page it opened. */
export async function startRunFromForm(page: Page, opts: { agent: string; prompt: string; policy?: string; timeout?: string; cwd?: string }): Promise<string> {
  await page.getByRole("link", { name: "New run" }).first().click();
  await page.getByRole("heading", { name: "New run" }).waitFor();
  await page.locator(`#agent option[value="${opts.agent}"]`).waitFor({ state: "attached" });
  await page.getByLabel("Agent").selectOption(opts.agent);
  await page.getByLabel("Prompt").fill(opts.prompt);
  if (opts.policy) await page.getByLabel("Permission policy").selectOption(opts.policy);
  if (opts.timeout) await page.getByLabel("Timeout (seconds)").fill(opts.timeout);
  if (opts.cwd) await page.getByLabel("Working directory").fill(opts.cwd);
  await page.getByRole("button", { name: "Start run" }).click();
  await page.waitForURL(/\/runs\/run_[^/]+$/);
  return decodeURIComponent(new URL(page.url()).pathname.split("/").at(-1)!);
}

/** The run page's status badge once it reads `status`. */
export async function waitForStatus(page: Page, status: string, timeout = 60_000): Promise<void> {
  await page.getByTestId("run-status").getByText(status, { exact: true }).waitFor({ timeout });
}

/** The texts of the rendered log rows, in order. */
export async function logLines(page: Page): Promise<string[]> {
  return page.locator('[data-kind="log"] pre').allTextContents();
}

/** Makes the screenshot folder and returns the path of `name` in it. */
export function artifactPath(name: string): string {
  mkdirSync(ARTIFACTS_DIR, { recursive: true });
  return path.join(ARTIFACTS_DIR, name);
}
