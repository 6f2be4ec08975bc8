/**
 * The tested agent versions (`scripts/agents.lock.json`): the file is valid, the install script
 * knows every package in it, the versions installed in `.agents` are the pins (in CI every package
 * must be installed, so the e2e suite runs on exactly the tested versions), and `/health/agents`
 * marks each pinned agent `tested` only when the detected version is its pin.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { REPO_ROOT } from "../../src/agent/cli-support.ts";
import { AgentRegistry } from "../../src/agent/registry.ts";
import { AGENTS_LOCK_PATH, installedVersion, readAgentsLock, testedVersionsOf } from "../../src/agent/tested-versions.ts";
import type { AgentAdapter } from "../../src/agent/types.ts";

const lock = readAgentsLock();
const prefix = process.env.OPENRUNNER_AGENTS_PREFIX ?? join(REPO_ROOT, ".agents");

test("agents.lock.json names every agent CLI and ACP adapter the adapters drive, with exact versions", () => {
  assert.deepEqual(Object.keys(lock.packages).sort(), ["claude-code", "claude-code-acp", "codex", "codex-acp", "gemini", "opencode"]);
  const tested = testedVersionsOf(lock);
  for (const agent of ["claude_code", "codex", "opencode", "gemini", "acp:claude-code-acp", "acp:codex-acp", "acp:gemini", "acp:opencode"]) {
    assert.match(tested.get(agent) ?? "", /^\d+\.\d+\.\d+/, `${agent} has a tested version`);
  }
  const script = readFileSync(join(REPO_ROOT, "scripts", "install-agents.sh"), "utf8");
  for (const name of Object.keys(lock.packages)) assert.ok(script.includes(`--${name})`), `install-agents.sh has --${name}`);
});

test("the versions installed in the agents prefix are the pins (all of them installed in CI)", () => {
  const problems: string[] = [];
  for (const [name, pin] of Object.entries(lock.packages)) {
    const version = installedVersion(prefix, pin.package);
    if (version === undefined) {
      if (process.env.CI) problems.push(`${name}: ${pin.package} is not installed in ${prefix}`);
      continue;
    }
    if (version !== pin.version) problems.push(`${name}: ${pin.package}@${version} installed, tested is ${pin.version}`);
  }
  assert.deepEqual(problems, [], `run scripts/install-agents.sh --acp (the suite must run on ${AGENTS_LOCK_PATH}'s versions)`);
});

test("a lock file that breaks its schema is refused with the file and the reason", () => {
  const dir = mkdtempSync(join(tmpdir(), "agents-lock-"));
  try {
    const file = join(dir, "agents.lock.json");
    writeFileSync(file, JSON.stringify({ tested_on: "2026-12-03", packages: { codex: { package: "@openai/codex", version: "^0.169", bin: "codex", agents: ["codex"] } } }));
    assert.throws(() => readAgentsLock(file), (err: Error) => err.message.includes(file) && /version/.test(err.message));
    writeFileSync(file, "{not json");
    assert.throws(() => readAgentsLock(file), (err: Error) => err.message.includes(file));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

function fakeAdapter(name: string, version: string | undefined): AgentAdapter {
  return {
    name,
    detect: async () => ({ agent: name, available: version !== undefined, ...(version ? { version } : { reason: "not found" }) }),
    command: async () => {
      throw new Error("not used");
    },
    createParser: () => {
      throw new Error("not used");
    },
  };
}

test("/health/agents: tested is true only for the pinned version; agents without a pin carry no flag", async () => {
  const tested = new Map([
    ["codex", "0.169.0"],
    ["gemini", "0.61.0"],
    ["opencode", "1.18.33"],
  ]);
  const registry = new AgentRegistry([fakeAdapter("codex", "0.169.0"), fakeAdapter("gemini", "0.62.0"), fakeAdapter("opencode", undefined), fakeAdapter("shell", "1.0.0")], { tested });
  const health = await registry.health();
  const by = Object.fromEntries(health.map((h) => [h.agent, h]));
  assert.equal(by.codex?.tested, true);
  assert.equal(by.codex?.tested_version, "0.169.0");
  assert.equal(by.gemini?.tested, false, "another version is not the tested one");
  assert.equal(by.gemini?.tested_version, "0.61.0");
  assert.equal(by.opencode?.tested, false, "an agent whose version cannot be read is not tested");
  assert.equal(by.shell?.tested, undefined);
  assert.equal(by.shell?.tested_version, undefined);
});
