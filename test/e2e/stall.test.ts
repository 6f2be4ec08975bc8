/**
 * The stall watchdog end to end (`src/run/stall.ts`): the real server (child process, port 0) with
 * `stall_secs: 1` runs real agents into silences of each kind and the run's stream carries `run.stalled`
 * with the right cause: the scripted model server's HANG turn and SLOW stream (`model_request_open`, with
 * the model server's address), Claude Code's Bash tool running `sleep` and a shell run's busy and sleeping
 * children (`tool_running`, `cpu_busy` true and false), an ACP agent's unanswered permission request
 * (`waiting_permission`), a process that only sleeps (`idle_process`, then failed `stalled` after
 * `stall_fail_secs`); `run.resumed_activity` once events come again. Every wait is for an event.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { startModelServer, type ModelServer } from "../fixtures/model-server/index.ts";
import { spawnServer, type TestServer } from "../helpers/spawn-server.ts";
import { allEvents, createRun, describeEvents, eventsUntil, TERMINAL, writeConfig, type Ev } from "../helpers/events.ts";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const FIXTURE = path.join(ROOT, "test/fixtures/acp-agent/agent.ts");
const TSX = import.meta.resolve("tsx");
const T = { timeout: 120_000 };
/** Seconds of silence before a run fails `stalled`: long enough for every test to see its `run.stalled` and act first. */
const FAIL_SECS = 10;

describe("stall watchdog end to end", () => {
  let s: TestServer;
  let token: string;
  let model: ModelServer;
  let configFile: string;

  before(async () => {
    model = await startModelServer();
    configFile = writeConfig({
      stall_secs: 1,
      stall_fail_secs: FAIL_SECS,
      agents: { claude_code: { base_url: model.url, api_key: "sk-test", model: "claude-sonnet-4-5", max_retries: 0 } },
      acp_agents: { fixture: { command: process.execPath, args: ["--import", TSX, FIXTURE], vendor: "none" } },
      permissions: { default_policy: "ask", timeout_secs: 300, timeout_decision: "reject" },
    });
    s = await spawnServer({ env: { OPENRUNNER_CONFIG: configFile } });
    token = await s.login();
  });

  after(async () => {
    await s?.stop();
    s?.cleanup();
    await model?.close();
  });

  /** Reads the run's live stream up to its first `run.stalled`; returns it and the events before. */
  async function untilStalled(runId: string): Promise<{ stalled: Ev; evs: Ev[] }> {
    const evs = await eventsUntil(s, token, runId, (e) => e.type === "run.stalled" || TERMINAL.has(e.type), 90_000);
    const stalled = evs.find((e) => e.type === "run.stalled");
    assert.ok(stalled, `no run.stalled before the end:\n${describeEvents(evs)}`);
    return { stalled, evs };
  }

  async function cancel(runId: string): Promise<Ev[]> {
    assert.equal((await s.api(`/api/runs/${runId}/cancel`, { method: "POST", token })).status, 202);
    return allEvents(s, token, runId, 60_000);
  }

  const pidOf = (evs: Ev[]) => evs.find((e) => e.type === "run.started")?.data.pid as number;

  test("a process that only sleeps: idle_process, then failed with code stalled after stall_fail_secs", T, async () => {
    const id = await createRun(s, token, "exec sleep 120", { agent_type: "shell" });
    const { stalled, evs } = await untilStalled(id);
    assert.equal(stalled.data.cause, "idle_process", describeEvents(evs));
    assert.equal(stalled.data.pid, pidOf(evs));
    assert.ok(stalled.data.idle_ms >= 1000, `idle_ms ${stalled.data.idle_ms}`);
    const all = await allEvents(s, token, id, 60_000);
    const last = all.at(-1)!;
    assert.equal(last.type, "run.failed", describeEvents(all));
    assert.equal(last.data.error.code, "stalled");
    assert.equal(all.filter((e) => e.type === "run.stalled").length, 1, "one run.stalled per silence");
  });

  test("a shell run's children: tool_running with cpu_busy false for sleep, true for a busy loop", T, async () => {
    const sleeping = await createRun(s, token, "sleep 120; echo end", { agent_type: "shell" });
    const a = await untilStalled(sleeping);
    assert.equal(a.stalled.data.cause, "tool_running", describeEvents(a.evs));
    assert.equal(a.stalled.data.cpu_busy, false);
    assert.ok(a.stalled.data.tool_pids.length >= 1);
    await cancel(sleeping);

    const busy = await createRun(s, token, "sh -c 'while :; do :; done'; echo end", { agent_type: "shell" });
    const b = await untilStalled(busy);
    assert.equal(b.stalled.data.cause, "tool_running", describeEvents(b.evs));
    assert.equal(b.stalled.data.cpu_busy, true);
    await cancel(busy);
  });

  test("Claude Code's Bash tool running sleep: tool_running", T, async () => {
    model.setScenario({ turns: [{ tool: { shell: "sleep 120" } }, { text: "Slept." }] });
    const id = await createRun(s, token, "sleep a while", { agent_type: "claude_code" });
    const { stalled, evs } = await untilStalled(id);
    assert.equal(stalled.data.cause, "tool_running", describeEvents(evs));
    assert.ok(evs.some((e) => e.type === "tool.call"), `the tool call came first:\n${describeEvents(evs)}`);
    assert.equal(stalled.data.cpu_busy, false);
    await cancel(id);
  });

  test("the model server's HANG turn: model_request_open with the model server's address", T, async () => {
    model.setScenario({ turns: [{ hang: true }] });
    const id = await createRun(s, token, "hello", { agent_type: "claude_code" });
    const { stalled, evs } = await untilStalled(id);
    assert.equal(stalled.data.cause, "model_request_open", describeEvents(evs));
    assert.equal(stalled.data.endpoint, `127.0.0.1:${new URL(model.url).port}`);
    assert.equal(stalled.data.pid, pidOf(evs));
    const all = await cancel(id);
    assert.equal(all.at(-1)!.type, "run.cancelled", describeEvents(all));
  });

  test("the model server's SLOW stream: model_request_open, then run.resumed_activity with the next words, then completed", T, async () => {
    model.setScenario({ turns: [{ slow: { text: "one two three", chunk_ms: 2500 } }] });
    const id = await createRun(s, token, "hello", { agent_type: "claude_code" });
    const all = await allEvents(s, token, id, 90_000);
    const dump = describeEvents(all);
    const stalled = all.find((e) => e.type === "run.stalled");
    assert.ok(stalled, dump);
    assert.equal(stalled.data.cause, "model_request_open", dump);
    const resumed = all.find((e) => e.type === "run.resumed_activity" && e.id > stalled.id);
    assert.ok(resumed, dump);
    assert.ok(resumed.data.stalled_ms >= 1000, dump);
    assert.ok(all.some((e) => e.type === "message.delta" && e.id > resumed.id), `more text after the resumption:\n${dump}`);
    assert.equal(all.at(-1)!.type, "run.completed", dump);
  });

  test("an open permission request: waiting_permission with its id; answering it resumes the run", T, async () => {
    const script = JSON.stringify({ steps: [{ permission: { id: "call-1", title: "Write hello.txt" } }, { say: "after" }] });
    const id = await createRun(s, token, script, { agent_type: "acp", acp_agent: "fixture" });
    const { stalled, evs } = await untilStalled(id);
    const request = evs.find((e) => e.type === "permission.request");
    assert.ok(request, describeEvents(evs));
    assert.equal(stalled.data.cause, "waiting_permission", describeEvents(evs));
    assert.deepEqual(stalled.data.request_ids, [request.data.request_id]);
    const option = (request.data.options as Array<{ option_id: string; kind: string }>).find((o) => o.kind === "allow_once")!;
    const answer = await s.api(`/api/runs/${id}/permissions/${request.data.request_id}`, { method: "POST", token, json: { option_id: option.option_id } });
    assert.equal(answer.status, 200, await answer.clone().text());
    const all = await allEvents(s, token, id, 60_000);
    const dump = describeEvents(all);
    const decision = all.find((e) => e.type === "permission.decision")!;
    const resumed = all.find((e) => e.type === "run.resumed_activity");
    assert.ok(resumed && resumed.id === decision.id - 1, `run.resumed_activity right before the decision that ended the silence:\n${dump}`);
    assert.equal(all.at(-1)!.type, "run.completed", dump);
  });
});
