/**
 * End to end: the four real agent CLIs (Claude Code, codex, opencode, Gemini CLI) as runs of the
 * real server (child process on port 0), each against its own scripted model server on loopback.
 * Per agent: a file-creating run, a resumed follow-up, cancel mid-stream, timeout, a model 500,
 * and `agent_unavailable`; then five runs of different agents at once.
 *
 * The CLIs come from `scripts/install-agents.sh` (`.agents/bin`). A CLI that is missing or cannot
 * be driven FAILS its tests with the reason (`/health/agents`); nothing is skipped.
 * CLIs run one at a time (2-core machine), except in the concurrency test.
 *
 * codex runs the scenarios twice: with `gpt-5.5`, whose tools arrive in the Responses request's
 * `tools` field, and with a code-mode model (`codex-code-mode`: `gpt-6.1-sol`, `tool_mode:
 * code_mode_only` in the catalogs of codex 0.169 and 0.171, and the kind of model codex picks when
 * none is configured), whose tools arrive as one freeform `exec` tool (JavaScript calling
 * `tools.exec_command(…)`) in an `additional_tools` input item.
 *
 * Environment (used by `npm run compat`): `OPENRUNNER_E2E_TARGETS=codex,codex-code-mode` limits the
 * per-agent scenarios to those targets; `OPENRUNNER_E2E_AGENT_COMMANDS='{"codex":"/path/bin/codex"}'`
 * runs another install of a CLI. `E2E_DUMP=<file>` appends every run's events to that file.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import { startModelServer, type ModelServer, type RecordedRequest } from "../fixtures/model-server/index.ts";
import { spawnServer, type TestServer } from "../helpers/spawn-server.ts";
import { allEvents as readEvents, createRun as postRun, describeEvents, TERMINAL, userWorkspaces, writeConfig as writeConfigFile, type Ev } from "../helpers/events.ts";
import { findByCmdline, groupAlive, killQuietly, runProcesses, waitFor } from "../helpers/processes.ts";
import { readAgentsLock, testedVersionsOf } from "../../src/agent/tested-versions.ts";

type Agent = "claude_code" | "codex" | "opencode" | "gemini";

const AGENTS: Agent[] = ["claude_code", "codex", "opencode", "gemini"];
/** One agent under test: the agent, and the model a run asks for when it is not the configured one. */
interface Target {
  id: string;
  agent: Agent;
  model?: string;
}
const ALL_TARGETS: Target[] = [
  { id: "claude_code", agent: "claude_code" },
  { id: "codex", agent: "codex" },
  { id: "codex-code-mode", agent: "codex", model: "gpt-6.1-sol" },
  { id: "opencode", agent: "opencode" },
  { id: "gemini", agent: "gemini" },
];
const TARGETS = process.env.OPENRUNNER_E2E_TARGETS
  ? ALL_TARGETS.filter((t) => process.env.OPENRUNNER_E2E_TARGETS!.split(",").includes(t.id))
  : ALL_TARGETS;
/** CLI path per agent (`OPENRUNNER_E2E_AGENT_COMMANDS`, JSON); default: PATH, then `.agents/bin`. */
const COMMANDS = JSON.parse(process.env.OPENRUNNER_E2E_AGENT_COMMANDS ?? "{}") as Partial<Record<Agent, string>>;
/** Model, base URL path and retry cap per agent (opencode has no retry knob). */
const AGENT_SETUP: Record<Agent, { model: string; urlSuffix: string; max_retries?: number }> = {
  claude_code: { model: "claude-sonnet-4-5", urlSuffix: "", max_retries: 0 },
  codex: { model: "gpt-5.5", urlSuffix: "/v1", max_retries: 0 },
  opencode: { model: "fake-model", urlSuffix: "/v1" },
  gemini: { model: "gemini-2.5-flash", urlSuffix: "", max_retries: 0 },
};
/**
 * `metadata.timeout_secs` of the timeout test: 8 s (a CLI's start-up takes 1–3 s here, longer
 * when the machine is busy; the run must reach the model before it times out), opencode 20 s,
 * whose start-up alone (Bun, instance bootstrap) takes 3–8 s. The slow scenario streams for
 * far longer than either.
 */
const TIMEOUT_SECS: Record<Agent, number> = { claude_code: 8, codex: 8, opencode: 20, gemini: 8 };
/** Per-test limit: generous, the machine is shared. */
const T = { timeout: 240_000 };
const LONG_TEXT = Array.from({ length: 400 }, (_, i) => `word${i}`).join(" ");

/** The run's `agents:` section of openrunner.yaml, as JSON (valid YAML). */
function agentsConfig(models: Record<Agent, ModelServer>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const a of AGENTS) {
    const s = AGENT_SETUP[a];
    out[a] = {
      ...(COMMANDS[a] ? { command: COMMANDS[a] } : {}),
      base_url: models[a].url + s.urlSuffix,
      api_key: "sk-test",
      model: s.model,
      ...(s.max_retries === undefined ? {} : { max_retries: s.max_retries }),
    };
  }
  return out;
}

const createRun = (s: TestServer, token: string, agent: string, text: string, metadata: Record<string, unknown> = {}) => postRun(s, token, text, { agent_type: agent, ...metadata });

async function allEvents(s: TestServer, token: string, runId: string, timeoutMs = 200_000): Promise<Ev[]> {
  const evs = await readEvents(s, token, runId, timeoutMs);
  if (process.env.E2E_DUMP) writeFileSync(process.env.E2E_DUMP, `${describeEvents(evs)}\n=====\n`, { flag: "a" });
  return evs;
}

/** Asserts that nothing of the run survives: its process group and any process tagged with its id. */
async function assertNoSurvivors(runId: string, pid: number): Promise<void> {
  await waitFor(() => !groupAlive(pid), 8000, `process group ${pid} of ${runId} still alive`);
  await waitFor(() => runProcesses(runId).length === 0, 8000, `processes of ${runId} still alive: ${runProcesses(runId).join(", ")}`);
  assert.throws(() => process.kill(-pid, 0), (err: NodeJS.ErrnoException) => err.code === "ESRCH");
}

/** The contract of a successful tool-using run: all kinds present, order where promised. */
function assertSuccessSequence(events: Ev[], agent: string): void {
  const dump = describeEvents(events);
  const types = events.map((e) => e.type);
  assert.deepEqual(events.map((e) => e.id), events.map((_, i) => i + 1), "ids 1..n without gaps");
  assert.equal(types[0], "run.queued", dump);
  assert.equal(types[1], "run.started", dump);
  assert.equal(events[1]!.data.agent, agent);
  assert.equal(types.at(-1), "run.completed", dump);
  assert.equal(types.filter((t) => TERMINAL.has(t)).length, 1, "exactly one terminal event");
  for (const t of ["agent.session", "tool.call", "tool.result", "message", "usage"]) assert.ok(types.includes(t), `${agent}: no ${t}\n${dump}`);
  const session = types.indexOf("agent.session");
  assert.ok(session < types.indexOf("tool.call"), `agent.session before the first tool.call\n${dump}`);
  for (const call of events.filter((e) => e.type === "tool.call")) {
    const result = events.find((e) => e.type === "tool.result" && e.data.call_id === call.data.call_id);
    assert.ok(result, `tool.result for ${call.data.call_id}\n${dump}`);
    assert.ok(result.id > call.id, `tool.result after its tool.call (${call.data.call_id})`);
  }
  assert.ok(types.lastIndexOf("message") > types.indexOf("tool.result"), `a message after the tool result\n${dump}`);
}

describe("real agent CLIs end to end", () => {
  const models = {} as Record<Agent, ModelServer>;
  let s: TestServer;
  let token: string;
  let dataDir: string;
  let workspaces: string;
  let configFile: string;
  /** The first (file-creating) run of each agent, resumed by the follow-up test. */
  const firstRun: Partial<Record<string, { id: string; finalText: string }>> = {};

  before(async () => {
    for (const a of AGENTS) models[a] = await startModelServer();
    s = await spawnServer({
      env: {
        OPENRUNNER_MAX_CONCURRENT_RUNS: "8",
        OPENRUNNER_MAX_CONCURRENT_RUNS_PER_USER: "8",
        OPENRUNNER_CONFIG: (configFile = writeConfig(agentsConfig(models))),
      },
    });
    token = await s.login();
    dataDir = s.dataDir;
    // Workspaces are per user: <data>/workspaces/<user id>/…
    workspaces = await userWorkspaces(s, token);
  });

  after(async () => {
    await s?.stop();
    s?.cleanup();
    rmSync(configFile, { force: true });
    for (const m of Object.values(models)) await m.close();
  });

  test("GET /health/agents reports every installed CLI available with path and version", T, async () => {
    const res = await s.api("/health/agents", { token });
    assert.equal(res.status, 200);
    const { agents } = (await res.json()) as { agents: Array<{ agent: string; available: boolean; path?: string; version?: string; reason?: string; tested?: boolean; tested_version?: string }> };
    const tested = testedVersionsOf(readAgentsLock());
    for (const a of AGENTS) {
      const h = agents.find((x) => x.agent === a);
      assert.ok(h, `${a} is registered`);
      assert.ok(h.available, `${a} CLI cannot be used here (run scripts/install-agents.sh): ${h.reason}`);
      assert.ok(h.path && existsSync(h.path), `${a}: path ${h.path}`);
      assert.match(h.version ?? "", /^\d+\.\d+\.\d+/, `${a}: version`);
      assert.equal(h.tested_version, tested.get(a), `${a}: the tested version is the lock file's`);
      assert.equal(h.tested, h.version === h.tested_version, `${a}: tested says whether ${h.version} is the pin`);
    }
    assert.equal(agents.find((x) => x.agent === "shell")?.tested, undefined, "agents without a pin carry no tested flag");
  });

  for (const { id, agent, model: runModel } of TARGETS) {
    /** `metadata` of every run of this target: its model, when it is not the configured one. */
    const withModel = (metadata: Record<string, unknown> = {}) => (runModel ? { ...metadata, model: runModel } : metadata);
    describe(id, () => {
      test(`${id}: a run creates a named file and streams the event contract`, T, async () => {
        const sub = `e2e-${agent}-${Date.now()}`;
        const cwd = path.join(workspaces, sub);
        const file = `note-${agent}.txt`;
        const content = `hello from ${agent}\nline two\n`;
        const finalText = `FIRST-TURN-DONE ${agent}: wrote ${file}.`;
        models[agent].setScenario({
          turns: [{ text: `Writing ${file}.`, tool: { write: { path: path.join(cwd, file), content } } }, { text: finalText }],
        });
        const since = models[agent].requests.length;
        const runId = await createRun(s, token, agent, `Create ${file} with the given content.`, withModel({ cwd: sub }));
        const events = await allEvents(s, token, runId);
        assertSuccessSequence(events, agent);
        if (id === "codex-code-mode") {
          const offered = models[agent].requests.slice(since).find((r) => r.kind === "main")?.tools ?? [];
          assert.ok(offered.includes("exec") && !offered.includes("exec_command"), `code mode: tools only through exec (offered ${offered.join(", ")})`);
        }
        const run = (await (await s.api(`/api/runs/${runId}`, { token })).json()) as Record<string, any>;
        assert.equal(run.status, "completed");
        assert.equal(run.cwd, cwd);
        assert.equal(readFileSync(path.join(run.cwd, file), "utf8"), content);
        assert.equal(events.at(-1)!.data.exit_code, 0);
        assert.equal(events.find((e) => e.type === "run.started")!.data.cwd, cwd);
        assert.ok(events.some((e) => e.type === "message" && e.data.text.includes("FIRST-TURN-DONE")), "the final text arrives as a message");
        firstRun[id] = { id: runId, finalText };
      });

      test(`${id}: a follow-up run with metadata.resume continues the session`, T, async () => {
        const first = firstRun[id];
        assert.ok(first, "needs the first run of this agent (previous test)");
        const since = models[agent].requests.length;
        models[agent].setScenario({ turns: [{ text: `SECOND-TURN-DONE ${agent}.` }] });
        const runId = await createRun(s, token, agent, "What did you write before?", withModel({ resume: first.id }));
        const events = await allEvents(s, token, runId);
        const dump = describeEvents(events);
        assert.equal(events.at(-1)!.type, "run.completed", dump);
        const before = (await (await s.api(`/api/runs/${first.id}`, { token })).json()) as Record<string, any>;
        const now = (await (await s.api(`/api/runs/${runId}`, { token })).json()) as Record<string, any>;
        assert.equal(now.cwd, before.cwd, "same workspace");
        assert.equal(now.session_id, before.session_id, "same agent session");
        const main = models[agent].requests.slice(since).find((r: RecordedRequest) => r.kind === "main");
        assert.ok(main, "the resumed run made a main model request");
        const body = JSON.stringify(main.body);
        assert.ok(body.includes("FIRST-TURN-DONE"), `the resumed request carries the earlier turn's text: ${body.slice(0, 2000)}`);
        assert.ok(body.includes("What did you write before?"));
        assert.ok(events.some((e) => e.type === "message" && e.data.text.includes("SECOND-TURN-DONE")), dump);
      });

      test(`${id}: cancel mid-stream ends the run as run.cancelled and leaves no process`, T, async () => {
        const model = models[agent];
        model.setScenario({ turns: [{ slow: { text: LONG_TEXT, chunk_ms: 200 } }] });
        const since = Date.now();
        const runId = await createRun(s, token, agent, "Tell me a long story.", withModel());
        await model.waitForRequest((r) => r.kind === "main" && r.at >= since, 120_000);
        await new Promise((r) => setTimeout(r, 1000)); // a few words streamed
        const res = await s.api(`/api/runs/${runId}/cancel`, { method: "POST", token });
        assert.equal(res.status, 202);
        const events = await allEvents(s, token, runId);
        const dump = describeEvents(events);
        assert.equal(events.at(-1)!.type, "run.cancelled", dump);
        assert.equal(events.filter((e) => TERMINAL.has(e.type)).length, 1, dump);
        const pid = events.find((e) => e.type === "run.started")!.data.pid as number;
        await assertNoSurvivors(runId, pid);
      });

      test(`${id}: cancel while its shell tool runs \`sleep\` kills the tool's processes too`, T, async () => {
        const marker = `or-e2e-sleep-${agent}-${Date.now()}`;
        // `exec -a` names the sleep after the marker, so it can be found even outside the group
        models[agent].setScenario({ turns: [{ tool: { shell: `bash -c 'exec -a ${marker} sleep 120'` } }, { text: "Slept." }] });
        const runId = await createRun(s, token, agent, "Sleep for a while.", withModel());
        try {
          await waitFor(() => findByCmdline(marker).length > 0, 60_000, `the tool's sleep (${marker}) started`);
          const res = await s.api(`/api/runs/${runId}/cancel`, { method: "POST", token });
          assert.equal(res.status, 202);
          const events = await allEvents(s, token, runId);
          assert.equal(events.at(-1)!.type, "run.cancelled", describeEvents(events));
          const pid = events.find((e) => e.type === "run.started")!.data.pid as number;
          await assertNoSurvivors(runId, pid);
          await waitFor(() => findByCmdline(marker).length === 0, 8000, `the tool's sleep survived: ${findByCmdline(marker).join(", ")}`);
        } finally {
          // on failure, do not leave the test's own sleep behind
          for (const p of [...runProcesses(runId), ...findByCmdline(marker)]) killQuietly(p);
        }
      });

      test(`${id}: metadata.timeout_secs ends a slow run as run.timed_out`, T, async () => {
        const model = models[agent];
        model.setScenario({ turns: [{ slow: { text: LONG_TEXT, chunk_ms: 200 } }] });
        const since = Date.now();
        const timeoutSecs = TIMEOUT_SECS[agent];
        const runId = await createRun(s, token, agent, "Tell me a long story.", withModel({ timeout_secs: timeoutSecs }));
        const events = await allEvents(s, token, runId);
        const last = events.at(-1)!;
        assert.equal(last.type, "run.timed_out", describeEvents(events));
        assert.equal(last.data.timeout_ms, timeoutSecs * 1000);
        assert.ok(model.requests.some((r) => r.kind === "main" && r.at >= since), "timed out mid-stream: the model was reached first");
        const pid = events.find((e) => e.type === "run.started")!.data.pid as number;
        await assertNoSurvivors(runId, pid);
      });

      test(`${id}: a model HTTP 500 fails the run with model_error`, T, async () => {
        // claude, codex and gemini: retries capped by `agents.<name>.max_retries: 0`, one request.
        // opencode has no retry knob (~6 attempts over ~80 s by default); it honours the server's
        // `retry-after-ms`, so the 500 advises 0 and its retries run at once, still all of them.
        models[agent].setScenario({ turns: [{ error: { status: 500, headers: { "retry-after-ms": "0" } }, times: Infinity }] });
        const since = models[agent].requests.length;
        const runId = await createRun(s, token, agent, "Say hello.", withModel());
        const events = await allEvents(s, token, runId);
        const last = events.at(-1)!;
        assert.equal(last.type, "run.failed", describeEvents(events));
        assert.equal(last.data.error.code, "model_error", JSON.stringify(last.data));
        assert.ok(last.data.error.message.length > 0);
        // codex reports any 500 as "high demand" without the status; the others name it
        if (agent !== "codex") assert.match(last.data.error.message, /500/, JSON.stringify(last.data));
        const main = models[agent].requests.slice(since).filter((r) => r.kind === "main").length;
        if (agent === "opencode") assert.ok(main > 1, `opencode retried the 500 (${main} requests)`);
        else assert.equal(main, 1, `max_retries: 0 means one model request (${main})`);
      });
    });
  }

  test("five runs of different agents at once (shell + the four) all complete correctly", T, async () => {
    const runs: Array<{ agent: string; id: string; cwd: string; file: string; content: string }> = [];
    const stamp = Date.now();
    for (const agent of AGENTS) {
      const sub = `e2e-concurrent-${agent}-${stamp}`;
      const file = `concurrent-${agent}.txt`;
      const content = `${agent} ran concurrently\n`;
      models[agent].setScenario({ turns: [{ tool: { write: { path: path.join(workspaces, sub, file), content } } }, { text: `Done ${agent}.` }] });
      runs.push({ agent, id: "", cwd: path.join(workspaces, sub), file, content });
    }
    runs.push({ agent: "shell", id: "", cwd: path.join(workspaces, `e2e-concurrent-shell-${stamp}`), file: "concurrent-shell.txt", content: "shell ran concurrently\n" });
    await Promise.all(
      runs.map(async (r) => {
        const text = r.agent === "shell" ? `sleep 1; printf 'shell ran concurrently\\n' > ${r.file}; echo done` : `Create ${r.file}.`;
        r.id = await createRun(s, token, r.agent, text, { cwd: path.basename(r.cwd) });
      }),
    );
    const results = await Promise.all(runs.map((r) => allEvents(s, token, r.id)));
    const spans: Array<[number, number]> = [];
    for (const [i, r] of runs.entries()) {
      const events = results[i]!;
      if (r.agent === "shell") assert.equal(events.at(-1)!.type, "run.completed", describeEvents(events));
      else assertSuccessSequence(events, r.agent);
      assert.equal(readFileSync(path.join(r.cwd, r.file), "utf8"), r.content, `${r.agent} wrote its file`);
      spans.push([Date.parse(events.find((e) => e.type === "run.started")!.ts), Date.parse(events.at(-1)!.ts)]);
    }
    const lastStart = Math.max(...spans.map((x) => x[0]));
    const firstEnd = Math.min(...spans.map((x) => x[1]));
    assert.ok(spans.filter(([a, b]) => a <= lastStart && b >= lastStart).length >= 2, `runs overlapped (last start ${lastStart}, first end ${firstEnd})`);
  });
});

describe("agents not installed", () => {
  test("POST /api/runs answers 503 agent_unavailable and /health/agents says why", T, async () => {
    const agents: Record<string, unknown> = {};
    for (const a of AGENTS) agents[a] = { command: "/nonexistent/bin" };
    const configFile = writeConfig(agents);
    const s = await spawnServer({ env: { OPENRUNNER_CONFIG: configFile } });
    try {
      const token = await s.login();
      const before = ((await (await s.api("/api/runs?limit=200", { token })).json()) as { runs: unknown[] }).runs.length;
      for (const a of AGENTS) {
        const res = await s.api("/api/runs", { method: "POST", token, json: { input: { text: "hi" }, metadata: { agent_type: a } } });
        const body = (await res.json()) as { error: { code: string; message: string } };
        assert.equal(res.status, 503, `${a}: ${JSON.stringify(body)}`);
        assert.equal(body.error.code, "agent_unavailable");
        assert.match(body.error.message, /nonexistent/);
      }
      const health = (await (await s.api("/health/agents", { token })).json()) as { agents: Array<{ agent: string; available: boolean; reason?: string }> };
      for (const a of AGENTS) {
        const h = health.agents.find((x) => x.agent === a)!;
        assert.equal(h.available, false, a);
        assert.match(h.reason ?? "", /\/nonexistent\/bin/, a);
      }
      assert.equal(health.agents.find((x) => x.agent === "shell")?.available, true);
      const afterCount = ((await (await s.api("/api/runs?limit=200", { token })).json()) as { runs: unknown[] }).runs.length;
      assert.equal(afterCount, before, "no run was created");
    } finally {
      await s.stop();
      s.cleanup();
      rmSync(configFile, { force: true });
    }
  });
});

/** Writes a temporary openrunner.yaml (JSON is valid YAML) with the given `agents:` section. */
function writeConfig(agents: Record<string, unknown>): string {
  return writeConfigFile({ agents }, path.join(process.env.TMPDIR ?? "/tmp", `openrunner-agents-e2e-${process.pid}-${Math.random().toString(36).slice(2)}.yaml`));
}
