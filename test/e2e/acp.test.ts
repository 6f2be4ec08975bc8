/**
 * End to end: `agent_type: "acp"` runs of the real server (child process on port 0).
 *
 * Part 1 drives the scripted ACP fixture agent (`test/fixtures/acp-agent`, SDK agent side)
 * through every edge: streamed reply, fs inside/outside/through a symlink, terminals, cancel
 * honoured and ignored, crash, garbage on stdout, stop reasons, resume via session/load.
 * Part 2 runs the real `claude-code-acp` (scripts/install-agents.sh --acp) against the scripted
 * model server; part 3 the other built-ins that run here (codex-acp, opencode acp, gemini
 * --experimental-acp). A missing agent FAILS its test with the reason; nothing is skipped.
 * `OPENRUNNER_E2E_AGENT_COMMANDS='{"codex-acp":"/path/bin/codex-acp"}'` runs another install of an
 * adapter (`npm run compat`).
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fixtureAcpAgents } from "../fixtures/acp-agent/config.ts";
import { startModelServer, type ModelServer } from "../fixtures/model-server/index.ts";
import { spawnServer, type TestServer } from "../helpers/spawn-server.ts";
import { allEvents, describeEvents, runToEnd, TERMINAL, userWorkspaces, writeConfig, type Ev } from "../helpers/events.ts";
import { groupAlive, runProcesses, waitFor } from "../helpers/processes.ts";
import { readSse } from "../helpers/sse.ts";

/** Adapter path per ACP agent name (`OPENRUNNER_E2E_AGENT_COMMANDS`, JSON); default: the built-in lookup. */
const COMMANDS = JSON.parse(process.env.OPENRUNNER_E2E_AGENT_COMMANDS ?? "{}") as Record<string, string>;
const commandOf = (name: string) => (COMMANDS[name] ? { command: COMMANDS[name] } : {});
const T = { timeout: 120_000 };

const dump = (evs: Ev[]) => describeEvents(evs, 240);

describe("acp adapter with the fixture agent", () => {
  let s: TestServer;
  let token: string;
  let workspaces: string;
  let configFile: string;
  const outside = mkdtempSync(path.join(os.tmpdir(), "acp-outside-"));

  before(async () => {
    configFile = writeConfig({ acp_agents: fixtureAcpAgents() });
    s = await spawnServer({ env: { OPENRUNNER_CONFIG: configFile } });
    token = await s.login();
    workspaces = await userWorkspaces(s, token);
  });

  after(async () => {
    await s?.stop();
    s?.cleanup();
    rmSync(path.dirname(configFile), { recursive: true, force: true });
    rmSync(outside, { recursive: true, force: true });
  });

  async function create(text: string, metadata: Record<string, unknown> = {}): Promise<Response> {
    return s.api("/api/runs", { method: "POST", token, json: { input: { text }, metadata: { agent_type: "acp", acp_agent: "fixture", ...metadata } } });
  }
  async function start(steps: unknown[] | string, metadata: Record<string, unknown> = {}, stop?: string): Promise<string> {
    const text = typeof steps === "string" ? steps : JSON.stringify({ steps, ...(stop ? { stop } : {}) });
    const res = await create(text, metadata);
    assert.equal(res.status, 201, await res.clone().text());
    return ((await res.json()) as { run_id: string }).run_id;
  }
  const events = (runId: string) => allEvents(s, token, runId, 90_000);
  async function stored(runId: string): Promise<Ev[]> {
    const res = await s.api(`/api/runs/${runId}/events`, { token, headers: { Accept: "application/json" } });
    return ((await res.json()) as { events: Ev[] }).events;
  }
  const text = (evs: Ev[]) => evs.filter((e) => e.type === "message").map((e) => e.data.text).join("");

  test("GET /health/agents lists each ACP agent with version and initialize capabilities", T, async () => {
    const { agents } = (await (await s.api("/health/agents")).json()) as { agents: Array<Record<string, any>> };
    const fx = agents.find((a) => a.agent === "acp:fixture");
    assert.ok(fx, JSON.stringify(agents));
    assert.equal(fx.available, true, fx.reason);
    assert.equal(fx.version, "0.0.1-fixture");
    assert.equal(fx.capabilities.loadSession, true);
    assert.equal(fx.protocol_version, 1);
    assert.equal(agents.find((a) => a.agent === "acp:fixture-noload")?.capabilities?.loadSession, false);
    for (const builtin of ["claude-code-acp", "codex-acp", "gemini", "opencode"]) assert.ok(agents.some((a) => a.agent === `acp:${builtin}`), `built-in ${builtin} listed`);
    assert.equal(agents.find((a) => a.agent === "acp")?.available, true);
  });

  test("a scripted turn maps thought, chunks, plan, tool call and result to the event contract", T, async () => {
    const runId = await start([
      { think: "Let me think." },
      { chunks: ["Hello ", "there. "] },
      { plan: [{ content: "write it", status: "in_progress", priority: "high" }] },
      { tool: { id: "call-1", title: "List files", kind: "execute", input: { command: "ls" } } },
      { tool_done: { id: "call-1", output: "a.txt" } },
      { tool: { id: "call-2", title: "Fail", kind: "other" } },
      { tool_done: { id: "call-2", status: "failed", output: "boom" } },
      { chunks: ["All ", "done."] },
    ]);
    const evs = await events(runId);
    const d = dump(evs);
    const types = evs.map((e) => e.type);
    assert.deepEqual(evs.map((e) => e.id), evs.map((_, i) => i + 1));
    assert.deepEqual(types.slice(0, 3), ["run.queued", "run.started", "agent.session"], d);
    assert.equal(evs[1]!.data.agent, "acp");
    assert.equal(evs[1]!.data.agent_version, "0.0.1-fixture");
    assert.ok(Number.isInteger(evs[1]!.data.pid));
    assert.match(evs[2]!.data.session_id, /^fx-/);
    assert.equal(types.at(-1), "run.completed", d);
    assert.equal(types.filter((t) => TERMINAL.has(t)).length, 1);
    const expectOrder = ["reasoning", "message.delta", "message.delta", "plan", "message", "tool.call", "tool.result", "tool.call", "tool.result", "message.delta", "message.delta", "message", "run.completed"];
    assert.deepEqual(types.slice(3), expectOrder, d);
    assert.equal(evs.find((e) => e.type === "reasoning")!.data.text, "Let me think.");
    assert.deepEqual(evs.find((e) => e.type === "plan")!.data.entries, [{ content: "write it", status: "in_progress", priority: "high" }]);
    const [m1, m2] = evs.filter((e) => e.type === "message");
    assert.equal(m1!.data.text, "Hello there. ");
    assert.equal(m2!.data.text, "All done.");
    assert.notEqual(m1!.data.message_id, m2!.data.message_id);
    const deltas = evs.filter((e) => e.type === "message.delta");
    assert.equal(deltas[0]!.data.message_id, m1!.data.message_id);
    const call = evs.find((e) => e.type === "tool.call")!;
    assert.deepEqual([call.data.call_id, call.data.name, call.data.input], ["call-1", "List files", { command: "ls" }]);
    assert.equal(call.data.raw.kind, "execute");
    const results = evs.filter((e) => e.type === "tool.result");
    assert.deepEqual(results.map((r) => [r.data.call_id, r.data.output, r.data.is_error]), [["call-1", "a.txt", false], ["call-2", "boom", true]]);
    const done = evs.at(-1)!;
    assert.equal(done.data.result, "All done.");
    assert.equal(done.data.exit_code, 0);
    const run = (await (await s.api(`/api/runs/${runId}`, { token })).json()) as Record<string, any>;
    assert.equal(run.status, "completed");
    assert.equal(run.session_id, evs[2]!.data.session_id);
    await waitFor(() => !groupAlive(evs[1]!.data.pid) && runProcesses(runId).length === 0, 8000, "the agent process group is gone");
  });

  test("session/new gets the run's workspace as cwd and the configured MCP servers", T, async () => {
    const runId = await start([{ session: true }], { cwd: "mcp-check" });
    const evs = await events(runId);
    assert.equal(evs.at(-1)!.data.result, `session cwd=${path.join(workspaces, "mcp-check")} mcp=demo-mcp`, dump(evs));
  });

  test("fs/write_text_file and fs/read_text_file inside the workspace", T, async () => {
    const sub = `fs-${Date.now()}`;
    const cwd = path.join(workspaces, sub);
    const runId = await start([{ write: { path: path.join(cwd, "dir/new.txt"), content: "hello fs\n" } }, { read: { path: path.join(cwd, "dir/new.txt") } }, { write: { path: "relative.txt", content: "rel" } }], { cwd: sub });
    const evs = await events(runId);
    assert.equal(evs.at(-1)!.type, "run.completed", dump(evs));
    assert.equal(readFileSync(path.join(cwd, "dir/new.txt"), "utf8"), "hello fs\n");
    assert.equal(readFileSync(path.join(cwd, "relative.txt"), "utf8"), "rel");
    assert.match(text(evs), /write ok .*dir\/new\.txt/);
    assert.match(text(evs), /read .*new\.txt: hello fs/);
    if (process.getuid?.() === 0) assert.equal(statSync(path.join(cwd, "dir/new.txt")).uid, 65534, "written as the run's user");
  });

  test("fs outside the workspace, also through a symlink, is refused with a JSON-RPC error and a log event", T, async () => {
    const sub = `fs-out-${Date.now()}`;
    const cwd = path.join(workspaces, sub);
    mkdirSync(cwd, { recursive: true });
    symlinkSync(outside, path.join(cwd, "escape"));
    symlinkSync(path.join(outside, "dangling-target"), path.join(cwd, "dangling"));
    writeFileSync(path.join(outside, "secret.txt"), "secret");
    const runId = await start(
      [
        { write: { path: path.join(outside, "direct.txt"), content: "x" } },
        { write: { path: path.join(cwd, "../../escape-up.txt"), content: "x" } },
        { write: { path: path.join(cwd, "escape/through-link.txt"), content: "x" } },
        { write: { path: path.join(cwd, "dangling"), content: "x" } },
        { read: { path: path.join(cwd, "escape/secret.txt") } },
        { say: "still running" },
      ],
      { cwd: sub },
    );
    const evs = await events(runId);
    const d = dump(evs);
    assert.equal(evs.at(-1)!.type, "run.completed", d);
    const said = text(evs);
    assert.equal((said.match(/write error -32602/g) ?? []).length, 4, said);
    assert.match(said, /read error -32602/);
    assert.doesNotMatch(said, /secret:|: secret/);
    assert.match(said, /still running/);
    for (const f of ["direct.txt", "through-link.txt", "dangling-target"]) assert.ok(!existsSync(path.join(outside, f)), `${f} must not be written outside`);
    assert.ok(!existsSync(path.join(workspaces, "escape-up.txt")));
    assert.ok(lstatSync(path.join(cwd, "dangling")).isSymbolicLink());
    const refusals = evs.filter((e) => e.type === "log" && /refused/.test(e.data.text));
    assert.equal(refusals.length, 5, d);
    assert.equal(refusals[0]!.data.raw.method, "fs/write_text_file");
  });

  test("terminal/* runs a command in the workspace as the run's user, with an output limit", T, async () => {
    const sub = `term-${Date.now()}`;
    const runId = await start(
      [
        { terminal: { command: "sh", args: ["-c", "pwd; id -u; echo err >&2; exit 3"] } },
        { terminal: { command: "sh", args: ["-c", "printf 'x%.0s' $(seq 1 500); printf END"], limit: 100 } },
        { terminal: { command: "sleep", args: ["30"], kill_after_ms: 200 } },
      ],
      { cwd: sub },
    );
    const evs = await events(runId);
    assert.equal(evs.at(-1)!.type, "run.completed", dump(evs));
    const lines = text(evs).split("\n").filter(Boolean);
    const first = /^terminal exit=3 signal=null truncated=false output=(.*)$/.exec(lines[0]!);
    assert.ok(first, lines[0]);
    const out = JSON.parse(first[1]!) as string;
    assert.equal(out.split("\n")[0], path.join(workspaces, sub));
    if (process.getuid?.() === 0) assert.equal(out.split("\n")[1], "65534");
    assert.match(out, /err/);
    const second = /^terminal exit=0 signal=null truncated=true output=(.*)$/.exec(lines[1]!);
    assert.ok(second, lines[1]);
    const out2 = JSON.parse(second[1]!) as string;
    assert.equal(out2.length, 100);
    assert.ok(out2.endsWith("END"));
    assert.match(lines[2]!, /^terminal exit=null signal=SIGKILL /);
  });

  test("cancel: the agent honours session/cancel and the run ends cancelled with no process left", T, async () => {
    const runId = await start([{ say: "working" }, { sleep_ms: 60_000 }, { say: "never" }]);
    await waitFor(async () => (await stored(runId)).some((e) => e.type === "message.delta"), 30_000, "the turn started");
    assert.equal((await s.api(`/api/runs/${runId}/cancel`, { method: "POST", token })).status, 202);
    const evs = await events(runId);
    const d = dump(evs);
    assert.equal(evs.at(-1)!.type, "run.cancelled", d);
    assert.ok(evs.some((e) => e.type === "log" && /session\/cancel received/.test(e.data.text)), `the agent got session/cancel\n${d}`);
    assert.doesNotMatch(text(evs), /never/);
    const pid = evs.find((e) => e.type === "run.started")!.data.pid as number;
    await waitFor(() => !groupAlive(pid) && runProcesses(runId).length === 0, 8000, "no survivors");
  });

  test("cancel: an agent that ignores session/cancel is killed after the grace period", T, async () => {
    const runId = await start([{ say: "stubborn" }, { ignore_cancel_ms: 600_000 }, { say: "never" }]);
    await waitFor(async () => (await stored(runId)).some((e) => e.type === "message.delta"), 30_000, "the turn started");
    assert.equal((await s.api(`/api/runs/${runId}/cancel`, { method: "POST", token })).status, 202);
    const evs = await events(runId);
    const d = dump(evs);
    assert.equal(evs.at(-1)!.type, "run.cancelled", d);
    assert.ok(evs.some((e) => e.type === "log" && /session\/cancel received/.test(e.data.text)), d);
    const pid = evs.find((e) => e.type === "run.started")!.data.pid as number;
    await waitFor(() => !groupAlive(pid) && runProcesses(runId).length === 0, 8000, "the stubborn agent was killed");
  });

  test("metadata.timeout_secs ends a slow ACP turn as run.timed_out with no process left", T, async () => {
    const runId = await start([{ say: "slow" }, { sleep_ms: 120_000 }], { timeout_secs: 3 });
    const evs = await events(runId);
    assert.equal(evs.at(-1)!.type, "run.timed_out", dump(evs));
    assert.equal(evs.at(-1)!.data.timeout_ms, 3000);
    assert.ok(evs.some((e) => e.type === "log" && /session\/cancel received/.test(e.data.text)), "the agent was asked to cancel first");
    const pid = evs.find((e) => e.type === "run.started")!.data.pid as number;
    await waitFor(() => !groupAlive(pid) && runProcesses(runId).length === 0, 8000, "no survivors");
  });

  test("an agent crashing mid-turn fails the run with agent_crashed and its stderr", T, async () => {
    const runId = await start([{ chunks: ["partial ", "answer"] }, { crash: 3 }]);
    const evs = await events(runId);
    const last = evs.at(-1)!;
    assert.equal(last.type, "run.failed", dump(evs));
    assert.equal(last.data.error.code, "agent_crashed");
    assert.match(last.data.error.message, /code 3/);
    assert.match(last.data.error.message, /crashing on purpose/);
    assert.equal(last.data.exit_code, 3);
    assert.equal(text(evs), "partial answer", "the streamed text is kept as a message");
  });

  test("garbage on the agent's stdout fails the run with protocol_error; the server carries on", T, async () => {
    const runId = await start([{ say: "before" }, { garbage: "this is not JSON-RPC" }, { sleep_ms: 30_000 }]);
    const evs = await events(runId);
    const last = evs.at(-1)!;
    assert.equal(last.type, "run.failed", dump(evs));
    assert.equal(last.data.error.code, "protocol_error");
    assert.match(last.data.error.message, /not JSON-RPC/);
    assert.ok(evs.some((e) => e.type === "log" && e.data.text === "this is not JSON-RPC"), "the line is kept as a log event");
    const pid = evs.find((e) => e.type === "run.started")!.data.pid as number;
    await waitFor(() => !groupAlive(pid), 8000, "the agent was killed");
    assert.equal((await s.api("/health")).status, 200);
    const next = await events(await start("still alive?"));
    assert.equal(next.at(-1)!.type, "run.completed");
    assert.equal(next.at(-1)!.data.result, "echo: still alive?");
  });

  test("stop reasons max_tokens and refusal fail the run with that code", T, async () => {
    for (const stop of ["max_tokens", "refusal", "max_turn_requests"]) {
      const evs = await events(await start([{ say: "some" }], {}, stop));
      assert.equal(evs.at(-1)!.type, "run.failed", dump(evs));
      assert.equal(evs.at(-1)!.data.error.code, stop);
    }
  });

  test("metadata.resume continues the session with session/load; an agent without loadSession answers 400", T, async () => {
    const first = await start("first question");
    const firstEvents = await events(first);
    assert.equal(firstEvents.at(-1)!.type, "run.completed");
    const second = await start([{ history: true }], { resume: first });
    const evs = await events(second);
    const d = dump(evs);
    assert.equal(evs.at(-1)!.type, "run.completed", d);
    const runs = await Promise.all([first, second].map(async (id) => (await (await s.api(`/api/runs/${id}`, { token })).json()) as Record<string, any>));
    assert.equal(runs[1]!.session_id, runs[0]!.session_id, "same ACP session");
    assert.equal(runs[1]!.cwd, runs[0]!.cwd, "same workspace");
    assert.match(evs.at(-1)!.data.result, /user=first question \| agent=echo: first question/);
    // the replayed history is not re-emitted as this run's messages
    assert.equal(evs.filter((e) => e.type === "message").length, 1, d);
    const noload = await s.api("/api/runs", { method: "POST", token, json: { input: { text: "again" }, metadata: { agent_type: "acp", acp_agent: "fixture-noload", resume: first } } });
    assert.equal(noload.status, 400);
    const body = (await noload.json()) as { error: { code: string } };
    assert.ok(["resume_unsupported", "resume_agent_mismatch"].includes(body.error.code), JSON.stringify(body));
    const firstNoload = await start("hello", { acp_agent: "fixture-noload" });
    assert.equal((await events(firstNoload)).at(-1)!.type, "run.completed");
    const res = await create("again", { acp_agent: "fixture-noload", resume: firstNoload });
    assert.equal(res.status, 400);
    assert.equal(((await res.json()) as { error: { code: string } }).error.code, "resume_unsupported");
  });

  test("a missing or unknown acp_agent answers 400", T, async () => {
    const missing = await s.api("/api/runs", { method: "POST", token, json: { input: { text: "x" }, metadata: { agent_type: "acp" } } });
    assert.equal(missing.status, 400);
    assert.equal(((await missing.json()) as { error: { code: string } }).error.code, "acp_agent_required");
    const unknown = await create("x", { acp_agent: "nope" });
    assert.equal(unknown.status, 400);
    assert.equal(((await unknown.json()) as { error: { code: string } }).error.code, "unknown_acp_agent");
  });

  test("session/request_permission goes through the run's permission policy", T, async () => {
    for (const [policy, chosen] of [["allow", "allow"], ["deny", "reject"]] as const) {
      const runId = await start([{ permission: { id: "perm-call", title: "Run rm" } }], { permission_policy: policy });
      const evs = await events(runId);
      const d = dump(evs);
      assert.equal(evs.at(-1)!.type, "run.completed", d);
      assert.match(text(evs), new RegExp(`permission ${chosen}`), d);
      const req = evs.find((e) => e.type === "permission.request");
      assert.ok(req, d);
      assert.equal(req.data.call_id, "perm-call");
      assert.equal(req.data.name, "Run rm");
      assert.ok(evs.some((e) => e.type === "permission.decision" && e.data.request_id === req.data.request_id), d);
    }
  });
});

describe("acp adapter with the real claude-code-acp", () => {
  let s: TestServer;
  let token: string;
  let workspaces: string;
  let configFile: string;
  let model: ModelServer;
  let first: { id: string } | undefined;

  before(async () => {
    model = await startModelServer();
    configFile = writeConfig({ acp_agents: { "claude-code-acp": { ...commandOf("claude-code-acp"), base_url: model.url, api_key: "sk-test", model: "claude-sonnet-4-5" } } });
    s = await spawnServer({ env: { OPENRUNNER_CONFIG: configFile } });
    token = await s.login();
    workspaces = await userWorkspaces(s, token);
  });

  after(async () => {
    await s?.stop();
    s?.cleanup();
    rmSync(path.dirname(configFile), { recursive: true, force: true });
    await model?.close();
  });

  async function run(text: string, metadata: Record<string, unknown>): Promise<{ id: string; evs: Ev[] }> {
    return runToEnd(s, token, text, { agent_type: "acp", acp_agent: "claude-code-acp", permission_policy: "allow", ...metadata }, 180_000);
  }

  test("claude-code-acp: writes a file through fs/write_text_file and runs a command through terminal/*", { timeout: 240_000 }, async () => {
    const health = ((await (await s.api("/health/agents")).json()) as { agents: Array<Record<string, any>> }).agents.find((a) => a.agent === "acp:claude-code-acp");
    assert.ok(health?.available, `claude-code-acp cannot run here (scripts/install-agents.sh --acp): ${health?.reason}`);
    assert.match(health.version, /^\d+\.\d+\.\d+/);
    assert.equal(health.capabilities.loadSession, true);
    const sub = `cc-${Date.now()}`;
    const cwd = path.join(workspaces, sub);
    // With fs and terminal advertised, claude-code-acp swaps its Write/Bash for mcp__acp__Write/Bash, which call the client.
    model.setScenario({
      turns: [
        { text: "Writing the note.", tool: { name: "mcp__acp__Write", input: { file_path: path.join(cwd, "note.txt"), content: "hello from claude-code-acp\n" } } },
        { tool: { name: "mcp__acp__Bash", input: { command: "echo ran-$((6*7)) > ran.txt; cat ran.txt", description: "Write and show ran.txt", timeout: 60_000 } } },
        { text: "ACP-TURN-DONE" },
      ],
    });
    const { id, evs } = await run("Write note.txt, then run the command.", { cwd: sub });
    const d = dump(evs);
    const types = evs.map((e) => e.type);
    assert.equal(types.at(-1), "run.completed", d);
    assert.equal(evs.at(-1)!.data.result, "ACP-TURN-DONE");
    assert.equal(readFileSync(path.join(cwd, "note.txt"), "utf8"), "hello from claude-code-acp\n");
    assert.equal(readFileSync(path.join(cwd, "ran.txt"), "utf8"), "ran-42\n");
    assert.deepEqual(types.slice(0, 3), ["run.queued", "run.started", "agent.session"], d);
    assert.equal(evs[1]!.data.agent_version, health.version);
    const calls = evs.filter((e) => e.type === "tool.call");
    assert.deepEqual(calls.map((c) => c.data.raw?._meta?.claudeCode?.toolName), ["mcp__acp__Write", "mcp__acp__Bash"], d);
    assert.equal(calls[0]!.data.input.file_path, path.join(cwd, "note.txt"), "the call carries its input");
    assert.match(calls[1]!.data.input.command, /ran-/);
    const at = (pred: (e: Ev) => boolean) => evs.findIndex(pred);
    const write = at((e) => e.type === "log" && e.data.raw?.method === "fs/write_text_file" && e.data.raw.path === path.join(cwd, "note.txt"));
    const term = at((e) => e.type === "log" && /^acp: terminal term_/.test(e.data.text));
    assert.ok(write > 0, `the write went through the client's fs/write_text_file\n${d}`);
    assert.ok(term > 0, `the command went through terminal/create\n${d}`);
    for (const [i, call] of calls.entries()) {
      const req = at((e) => e.type === "permission.request" && e.data.call_id === call.data.call_id);
      const dec = at((e) => e.type === "permission.decision" && e.data.request_id === evs[req]?.data.request_id);
      const result = at((e) => e.type === "tool.result" && e.data.call_id === call.data.call_id);
      const used = i === 0 ? write : term;
      assert.ok(evs.indexOf(call) < req && req < dec && dec < used && used < result, `call ${i}: tool.call < permission.request < decision < client call < tool.result\n${d}`);
      assert.equal(evs[result]!.data.is_error, false);
    }
    assert.match(String(evs.find((e) => e.type === "tool.result" && e.data.call_id === calls[1]!.data.call_id)!.data.output), /ran-42/);
    const lastResult = types.lastIndexOf("tool.result");
    assert.ok(types.lastIndexOf("message") > lastResult, d);
    if (process.getuid?.() === 0) assert.equal(statSync(path.join(cwd, "note.txt")).uid, 65534);
    first = { id };
  });

  test("claude-code-acp: metadata.resume loads the session and the model sees the earlier turn", { timeout: 240_000 }, async () => {
    assert.ok(first, "needs the previous test's run");
    const since = model.requests.length;
    model.setScenario({ turns: [{ text: "SECOND-ACP-TURN" }] });
    const { id, evs } = await run("What did you do before?", { resume: first.id });
    assert.equal(evs.at(-1)!.type, "run.completed", dump(evs));
    assert.equal(evs.at(-1)!.data.result, "SECOND-ACP-TURN");
    const [a, b] = await Promise.all([first.id, id].map(async (r) => (await (await s.api(`/api/runs/${r}`, { token })).json()) as Record<string, any>));
    assert.equal(b!.session_id, a!.session_id);
    const main = model.requests.slice(since).find((r) => r.kind === "main");
    assert.ok(main);
    const body = JSON.stringify(main.body);
    assert.ok(body.includes("ACP-TURN-DONE") && body.includes("What did you do before?"), body.slice(0, 1500));
    assert.ok(!evs.some((e) => e.type === "message" && /ACP-TURN-DONE/.test(e.data.text)), "the replayed history is not re-emitted");
  });

  test("claude-code-acp: cancel mid-stream ends the run cancelled and leaves no process", { timeout: 240_000 }, async () => {
    model.setScenario({ turns: [{ slow: { text: Array.from({ length: 300 }, (_, i) => `w${i}`).join(" "), chunk_ms: 200 } }] });
    const res = await s.api("/api/runs", { method: "POST", token, json: { input: { text: "long story" }, metadata: { agent_type: "acp", acp_agent: "claude-code-acp" } } });
    const id = ((await res.json()) as { run_id: string }).run_id;
    await waitFor(async () => {
      const r = await s.api(`/api/runs/${id}/events`, { token, headers: { Accept: "application/json" } });
      return ((await r.json()) as { events: Ev[] }).events.some((e) => e.type === "message.delta");
    }, 120_000, "text streams");
    assert.equal((await s.api(`/api/runs/${id}/cancel`, { method: "POST", token })).status, 202);
    const out = await readSse(`${s.url}/api/runs/${id}/events`, { token, timeoutMs: 60_000 });
    const evs = out.messages.map((m) => JSON.parse(m.data) as Ev);
    assert.equal(evs.at(-1)!.type, "run.cancelled", dump(evs));
    const pid = evs.find((e) => e.type === "run.started")!.data.pid as number;
    await waitFor(() => !groupAlive(pid) && runProcesses(id).length === 0, 8000, "no survivors");
  });
});

/**
 * The other built-in ACP agents that install and run here, each against its own scripted model
 * server. None of them uses the client's terminal; codex-acp and opencode write with their own
 * tools; gemini (0.61) uses the client's fs but cannot create a new file through it (it does not
 * recognise the JSON-RPC "Resource not found" answer to its existence check as ENOENT), so its
 * scenario only runs a shell command.
 */
describe("acp adapter with codex-acp, opencode acp and gemini --experimental-acp", () => {
  const AGENTS = {
    "codex-acp": { suffix: "/v1", model: "gpt-5.5", write: true, asks: true },
    opencode: { suffix: "/v1", model: "fake-model", write: true, asks: false },
    gemini: { suffix: "", model: "gemini-2.5-flash", write: false, asks: true },
  } as const;
  type Name = keyof typeof AGENTS;
  const models = {} as Record<Name, ModelServer>;
  let s: TestServer;
  let token: string;
  let workspaces: string;
  let configFile: string;

  before(async () => {
    const acp_agents: Record<string, unknown> = {};
    for (const [name, a] of Object.entries(AGENTS) as Array<[Name, (typeof AGENTS)[Name]]>) {
      models[name] = await startModelServer();
      acp_agents[name] = { ...commandOf(name), base_url: models[name].url + a.suffix, api_key: "sk-test", model: a.model };
    }
    configFile = writeConfig({ acp_agents });
    s = await spawnServer({ env: { OPENRUNNER_CONFIG: configFile } });
    token = await s.login();
    workspaces = await userWorkspaces(s, token);
  });

  after(async () => {
    await s?.stop();
    s?.cleanup();
    rmSync(path.dirname(configFile), { recursive: true, force: true });
    for (const m of Object.values(models)) await m.close();
  });

  for (const name of Object.keys(AGENTS) as Name[]) {
    const a = AGENTS[name];
    test(`${name}: a scripted task ${a.write ? "writes a file and " : ""}runs a command; the event sequence holds`, { timeout: 240_000 }, async () => {
      const health = ((await (await s.api("/health/agents")).json()) as { agents: Array<Record<string, any>> }).agents.find((h) => h.agent === `acp:${name}`);
      assert.ok(health?.available, `${name} cannot run here: ${health?.reason}`);
      const sub = `${name}-${Date.now()}`;
      const cwd = path.join(workspaces, sub);
      models[name].setScenario({
        turns: [
          ...(a.write ? [{ text: "Writing.", tool: { write: { path: path.join(cwd, "note.txt"), content: `hello from ${name}\n` } } }] : []),
          { tool: { shell: "echo ran-42 > ran.txt" } },
          { text: `DONE-${name}` },
        ],
      });
      const { id, evs } = await runToEnd(s, token, "Do the task.", { agent_type: "acp", acp_agent: name, cwd: sub, permission_policy: "allow" }, 200_000);
      const d = dump(evs);
      const types = evs.map((e) => e.type);
      assert.equal(types.at(-1), "run.completed", d);
      assert.equal(evs.at(-1)!.data.result, `DONE-${name}`);
      assert.deepEqual(types.slice(0, 3), ["run.queued", "run.started", "agent.session"], d);
      assert.equal(evs[1]!.data.agent_version, health.version);
      if (a.write) assert.equal(readFileSync(path.join(cwd, "note.txt"), "utf8"), `hello from ${name}\n`);
      assert.equal(readFileSync(path.join(cwd, "ran.txt"), "utf8"), "ran-42\n");
      const calls = evs.filter((e) => e.type === "tool.call");
      assert.equal(calls.length, a.write ? 2 : 1, d);
      for (const call of calls) {
        const result = evs.find((e) => e.type === "tool.result" && e.data.call_id === call.data.call_id);
        assert.ok(result && result.id > call.id, `result after call ${call.data.call_id}\n${d}`);
        const req = evs.find((e) => e.type === "permission.request" && e.data.call_id === call.data.call_id);
        if (a.asks) assert.ok(req && req.id > call.id && req.id < result.id, `tool.call < permission.request < tool.result\n${d}`);
      }
      assert.ok(types.lastIndexOf("message") > types.lastIndexOf("tool.result"), d);
    });
  }
});
