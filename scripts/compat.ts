/**
 * The agent compatibility matrix: every agent CLI and ACP adapter of `scripts/agents.lock.json` at
 * {its pinned version, the registry's latest} × the e2e scenarios, written to
 * `docs/compatibility.md` with the date.
 *
 *   npm run compat                              # everything
 *   npm run compat -- --agent codex --agent gemini
 *   npm run compat -- --no-latest               # pins only (no registry look-up)
 *   npm run compat -- --out /tmp/compat.md
 *
 * Each version is installed with `scripts/install-agents.sh --<name> --version V --prefix
 * .agents/compat/<name>@<V>` (the pins reuse `.agents` when it holds them), then the scenarios run as
 * the real e2e tests (`test/e2e/agents.test.ts` for the CLIs, `test/e2e/acp.test.ts` for the ACP
 * adapters) with `OPENRUNNER_E2E_TARGETS` and `OPENRUNNER_E2E_AGENT_COMMANDS` pointing them at that
 * install. Exit status: 1 when a scenario fails on a PINNED version (main is broken), 0 otherwise: a
 * failure on "latest" is a line in the report naming the scenario and the reason, never fatal.
 */
import { execFile, spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs, promisify } from "node:util";
import { REPO_ROOT } from "../src/agent/cli-support.ts";
import { installedVersion, readAgentsLock, type AgentsLock } from "../src/agent/tested-versions.ts";

const run = promisify(execFile);

/** How one lock package is exercised: which e2e file, which targets, and its command key there. */
interface Suite {
  file: string;
  /** `OPENRUNNER_E2E_TARGETS` ids (agents.test.ts) or test-name prefixes (acp.test.ts). */
  targets: string[];
  /** Key of `OPENRUNNER_E2E_AGENT_COMMANDS`. */
  commandKey: string;
}

const SUITES: Record<string, Suite> = {
  "claude-code": { file: "test/e2e/agents.test.ts", targets: ["claude_code"], commandKey: "claude_code" },
  codex: { file: "test/e2e/agents.test.ts", targets: ["codex", "codex-code-mode"], commandKey: "codex" },
  opencode: { file: "test/e2e/agents.test.ts", targets: ["opencode"], commandKey: "opencode" },
  gemini: { file: "test/e2e/agents.test.ts", targets: ["gemini"], commandKey: "gemini" },
  "claude-code-acp": { file: "test/e2e/acp.test.ts", targets: ["claude-code-acp"], commandKey: "claude-code-acp" },
  "codex-acp": { file: "test/e2e/acp.test.ts", targets: ["codex-acp"], commandKey: "codex-acp" },
};

/** Short column names for the scenarios, matched on the test name after `<target>: `. */
const SCENARIOS: Array<[RegExp, string]> = [
  [/creates a named file|writes a file|scripted task/, "file created"],
  [/resume/, "resume"],
  [/cancel mid-stream/, "cancel mid-stream"],
  [/cancel while/, "cancel mid-tool"],
  [/timeout/, "timeout"],
  [/HTTP 500/, "model 500"],
];

interface Outcome {
  target: string;
  scenario: string;
  status: "pass" | "fail";
  error?: string;
}

interface Row {
  name: string;
  pkg: string;
  version: string;
  kind: "pinned" | "latest";
  /** The registry's latest is this same (pinned) version. */
  isLatest?: boolean;
  /** Set when the version could not be installed or run at all. */
  error?: string;
  outcomes: Outcome[];
}

function scenarioOf(testName: string, target: string): string {
  const rest = testName.startsWith(`${target}: `) ? testName.slice(target.length + 2) : testName;
  return SCENARIOS.find(([re]) => re.test(rest))?.[1] ?? rest;
}

/** The registry's latest version of `pkg`. @throws when npm cannot answer. */
async function latestOf(pkg: string): Promise<string> {
  const { stdout } = await run("npm", ["view", pkg, "version"], { timeout: 60_000 });
  return stdout.trim();
}

/** The prefix holding `name` at `version`: `.agents` when it has it, else a compat install. */
async function installed(lock: AgentsLock, name: string, version: string): Promise<string> {
  const main = join(REPO_ROOT, ".agents");
  if (installedVersion(main, lock.packages[name]!.package) === version) return main;
  const prefix = join(REPO_ROOT, ".agents", "compat", `${name}@${version}`);
  await mkdir(prefix, { recursive: true });
  await run("bash", [join(REPO_ROOT, "scripts", "install-agents.sh"), `--${name}`, "--version", version, "--prefix", prefix], { timeout: 600_000 });
  return prefix;
}

/** Runs one suite's targets against the binary at `bin`; resolves with one outcome per test. */
async function runSuite(suite: Suite, bin: string): Promise<Outcome[]> {
  const dir = mkdtempSync(join(tmpdir(), "openrunner-compat-"));
  const results = join(dir, "results.jsonl");
  const pattern = `^(${suite.targets.map((t) => t.replace(/[.*+?^${}()|[\]\\-]/g, "\\$&")).join("|")}): `;
  const args = [
    "--import", "tsx", "--test", "--test-concurrency=1",
    `--test-name-pattern=${pattern}`,
    `--test-reporter=${join(REPO_ROOT, "scripts", "compat-reporter.mjs")}`, `--test-reporter-destination=${results}`,
    "--test-reporter=dot", "--test-reporter-destination=stderr",
    suite.file,
  ];
  const env = { ...process.env, OPENRUNNER_E2E_TARGETS: suite.targets.join(","), OPENRUNNER_E2E_AGENT_COMMANDS: JSON.stringify({ [suite.commandKey]: bin }) };
  try {
    const exitCode = await new Promise<number | null>((resolve, reject) => {
      const child = spawn(process.execPath, args, { cwd: REPO_ROOT, env, stdio: ["ignore", "inherit", "inherit"] });
      child.on("error", reject);
      child.on("close", (code) => resolve(code));
    });
    const lines = existsSync(results) ? readFileSync(results, "utf8").split("\n").filter(Boolean) : [];
    // A test process that failed without reporting a failing test crashed: its passes are not a result.
    if (exitCode !== 0 && !lines.some((l) => (JSON.parse(l) as { status: string }).status === "fail")) {
      throw new Error(`the test process exited ${exitCode} after ${lines.length} reported tests`);
    }
    return lines.map((l) => {
      const r = JSON.parse(l) as { name: string; status: "pass" | "fail"; error?: string };
      const target = suite.targets.find((t) => r.name.startsWith(`${t}: `)) ?? suite.targets[0]!;
      return { target, scenario: scenarioOf(r.name, target), status: r.status, ...(r.error ? { error: r.error } : {}) };
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function cell(row: Row, target: string, scenario: string): string {
  const o = row.outcomes.find((x) => x.target === target && x.scenario === scenario);
  return o ? (o.status === "pass" ? "pass" : "**FAIL**") : "—";
}

/** The Markdown report. */
function render(rows: Row[], date: string): string {
  const scenarios = [...new Set([...SCENARIOS.map(([, s]) => s), ...rows.flatMap((r) => r.outcomes.map((o) => o.scenario))])].filter((s) =>
    rows.some((r) => r.outcomes.some((o) => o.scenario === s)),
  );
  const out = [
    "# Agent compatibility",
    "",
    `Checked on ${date} by \`npm run compat\` (\`scripts/compat.ts\`): each agent CLI and ACP adapter of`,
    "`scripts/agents.lock.json` at its pinned (tested) version and at the registry's latest, through the real e2e",
    "scenarios against the scripted model server. CI runs the pinned versions only; a failure on `latest` is listed",
    "here and is not fatal. `codex-code-mode` is codex with a code-mode model (`gpt-6.1-sol`), whose tools arrive as",
    "one `exec` tool in an `additional_tools` input item (the kind of model codex picks when none is configured).",
    "`—`: the scenario is not part of that suite (the ACP suites test fewer).",
    "",
    `| package | version | | target | ${scenarios.join(" | ")} |`,
    `|---|---|---|---|${scenarios.map(() => "---").join("|")}|`,
  ];
  for (const row of rows) {
    const targets = SUITES[row.name]!.targets;
    for (const target of targets) {
      const cells = row.error ? scenarios.map(() => "**not run**") : scenarios.map((s) => cell(row, target, s));
      out.push(`| ${row.pkg} | ${row.version} | ${row.isLatest ? "pinned = latest" : row.kind} | ${target} | ${cells.join(" | ")} |`);
    }
  }
  const failures = rows.flatMap((r) =>
    r.error ? [`- ${r.pkg}@${r.version} (${r.kind}): not run: ${r.error}`] : r.outcomes.filter((o) => o.status === "fail").map((o) => `- ${r.pkg}@${r.version} (${r.kind}), ${o.target}, ${o.scenario}: ${o.error ?? "failed"}`),
  );
  out.push("", "## Failures", "", ...(failures.length ? failures : ["None."]), "");
  return out.join("\n");
}

async function main(): Promise<number> {
  const { values } = parseArgs({ options: { agent: { type: "string", multiple: true }, "no-latest": { type: "boolean" }, out: { type: "string" } } });
  const lock = readAgentsLock();
  const names = values.agent?.length ? values.agent : Object.keys(lock.packages);
  for (const n of names) if (!lock.packages[n] || !SUITES[n]) throw new Error(`unknown agent ${n}; one of ${Object.keys(SUITES).join(", ")}`);
  const rows: Row[] = [];
  for (const name of names) {
    const pin = lock.packages[name]!;
    const versions: Array<{ kind: Row["kind"]; version: string; error?: string; isLatest?: boolean }> = [{ kind: "pinned", version: pin.version }];
    if (!values["no-latest"]) {
      try {
        const latest = await latestOf(pin.package);
        if (latest !== pin.version) versions.push({ kind: "latest", version: latest });
        else versions[0]!.isLatest = true;
      } catch (err) {
        versions.push({ kind: "latest", version: "?", error: `registry look-up failed: ${(err as Error).message.split("\n")[0]}` });
      }
    }
    for (const v of versions) {
      const row: Row = { name, pkg: pin.package, version: v.version, kind: v.kind, ...(v.isLatest ? { isLatest: true } : {}), outcomes: [] };
      rows.push(row);
      if (v.error) {
        row.error = v.error;
        continue;
      }
      console.error(`compat: ${pin.package}@${v.version} (${v.kind})`);
      try {
        const prefix = await installed(lock, name, v.version);
        row.outcomes = await runSuite(SUITES[name]!, join(prefix, "bin", pin.bin));
        if (row.outcomes.length === 0) row.error = "no scenario ran";
      } catch (err) {
        row.error = (err as Error).message.split("\n")[0] ?? "failed";
      }
      const failed = row.outcomes.filter((o) => o.status === "fail").length;
      console.error(`compat: ${pin.package}@${v.version}: ${row.outcomes.length - failed} passed, ${failed} failed${row.error ? `, ${row.error}` : ""}`);
    }
  }
  const file = values.out ?? join(REPO_ROOT, "docs", "compatibility.md");
  await mkdir(join(file, ".."), { recursive: true });
  writeFileSync(file, render(rows, new Date().toISOString().slice(0, 10)));
  console.error(`compat: wrote ${file}`);
  const pinnedBroken = rows.filter((r) => r.kind === "pinned" && (r.error || r.outcomes.some((o) => o.status === "fail")));
  return pinnedBroken.length > 0 ? 1 : 0;
}

process.exitCode = await main();
