/**
 * OpenTelemetry end to end (`src/telemetry/`): the real server (child process, port 0) with
 * `telemetry.otlp_endpoint` pointing at an OTLP/HTTP receiver on loopback (`test/fixtures/otlp-receiver`)
 * exports the span tree of real runs: a shell run created with a caller's `traceparent` (the request's
 * server span is the caller's child, the run's span the request's child, and the agent's `TRACEPARENT`
 * names the run's span), a failing shell run (failure code and exit code on the run span), and an ACP run
 * of the fixture agent with a tool call whose permission request the owner answers (turns, the tool, the
 * permission wait inside it). Parentage is checked exactly; timings only for order (every child within
 * its parent), never against a clock.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { startOtlpReceiver, type OtlpReceiver, type ReceivedSpan } from "../fixtures/otlp-receiver/index.ts";
import { spawnServer, type TestServer } from "../helpers/spawn-server.ts";
import { allEvents, createRun, describeEvents, eventsUntil, writeConfig, type Ev } from "../helpers/events.ts";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const FIXTURE = path.join(ROOT, "test/fixtures/acp-agent/agent.ts");
const TSX = import.meta.resolve("tsx");
const T = { timeout: 120_000 };

/** The spans of one trace below (and including) `root`, by parent. */
function subtree(spans: readonly ReceivedSpan[], root: ReceivedSpan): ReceivedSpan[] {
  const out = [root];
  for (let i = 0; i < out.length; i++) out.push(...spans.filter((s) => s.traceId === root.traceId && s.parentSpanId === out[i]!.spanId));
  return out;
}

/** Every span of the tree starts no earlier and ends no later than its parent, and ends after it starts. */
function assertNested(tree: readonly ReceivedSpan[]): void {
  const byId = new Map(tree.map((s) => [s.spanId, s]));
  for (const s of tree) {
    assert.ok(s.endMs >= s.startMs, `${s.name} ends before it starts`);
    const p = byId.get(s.parentSpanId);
    if (!p) continue;
    assert.ok(s.startMs >= p.startMs && s.endMs <= p.endMs, `${s.name} [${s.startMs}, ${s.endMs}] not within ${p.name} [${p.startMs}, ${p.endMs}]`);
  }
}

const names = (tree: readonly ReceivedSpan[]) => tree.map((s) => s.name).sort();
const childOf = (tree: readonly ReceivedSpan[], parent: ReceivedSpan, name: string) => tree.find((s) => s.parentSpanId === parent.spanId && s.name === name);

describe("OpenTelemetry traces end to end", () => {
  let otlp: OtlpReceiver;
  let s: TestServer;
  let token: string;

  before(async () => {
    otlp = await startOtlpReceiver();
    const config = writeConfig({
      telemetry: { otlp_endpoint: otlp.url, service_name: "openrunner-e2e" },
      acp_agents: { fixture: { command: process.execPath, args: ["--import", TSX, FIXTURE], vendor: "none" } },
      permissions: { default_policy: "ask", timeout_secs: 300, timeout_decision: "reject" },
    });
    s = await spawnServer({ env: { OPENRUNNER_CONFIG: config } });
    token = await s.login();
  });

  after(async () => {
    await s?.stop();
    s?.cleanup();
    await otlp?.close();
  });

  /** Waits for the run's span and everything it contains to arrive (the terminal event ends them all). */
  async function runTree(runId: string, expected: string[]): Promise<{ run: ReceivedSpan; tree: ReceivedSpan[] }> {
    const run = await otlp.waitForSpan((x) => x.attributes["openrunner.run.id"] === runId && x.name.startsWith("run "));
    await otlp.waitFor(() => expected.every((n) => subtree(otlp.spans, run).some((x) => x.name === n)), `the spans of ${runId}`);
    return { run, tree: subtree(otlp.spans, run) };
  }

  test("a shell run under the caller's traceparent: request span → run span → preparing, agent; TRACEPARENT names the run span", T, async () => {
    const callerTrace = "0af7651916cd43dd8448eb211c80319c";
    const callerSpan = "b7ad6b7169203331";
    const res = await s.api("/api/runs", {
      method: "POST",
      token,
      headers: { traceparent: `00-${callerTrace}-${callerSpan}-01` },
      json: { input: { text: 'echo "tp=$TRACEPARENT"' }, metadata: { agent_type: "shell" } },
    });
    assert.equal(res.status, 201);
    const { run_id: id } = (await res.json()) as { run_id: string };
    const evs = await allEvents(s, token, id, 60_000);
    assert.equal(evs.at(-1)!.type, "run.completed", describeEvents(evs));
    const tp = evs.find((e) => e.type === "log" && String(e.data.text).startsWith("tp="))?.data.text as string;
    assert.match(tp, /^tp=00-[0-9a-f]{32}-[0-9a-f]{16}-01$/, describeEvents(evs));
    const [, agentTrace, agentParent] = tp.slice(3).split("-");

    const { run, tree } = await runTree(id, ["preparing", "agent shell"]);
    const request = await otlp.waitForSpan((x) => x.name === "POST /api/runs" && x.attributes["openrunner.run.id"] === id);
    assert.equal(request.kind, 2, "a server span");
    assert.equal(request.traceId, callerTrace);
    assert.equal(request.parentSpanId, callerSpan, "the request's span is the caller's child");
    assert.equal(request.attributes["http.response.status_code"], 201);
    assert.equal(run.traceId, callerTrace);
    assert.equal(run.parentSpanId, request.spanId, "the run's span is the request's child");
    assert.equal(agentTrace, run.traceId, "TRACEPARENT carries the run's trace");
    assert.equal(agentParent, run.spanId, "TRACEPARENT names the run's span");
    assert.deepEqual(names(tree), ["agent shell", "preparing", "run shell"]);
    assert.equal(childOf(tree, run, "preparing")?.parentSpanId, run.spanId);
    const agent = childOf(tree, run, "agent shell")!;
    assert.equal(agent.attributes["process.pid"], evs.find((e) => e.type === "run.started")!.data.pid);
    assert.equal(run.attributes["openrunner.agent"], "shell");
    assert.equal(run.attributes["openrunner.user"], "admin");
    assert.equal(run.attributes["openrunner.isolation"], "none");
    assert.equal(run.attributes["process.exit.code"], 0);
    assert.equal(run.attributes["openrunner.status"], "completed");
    assert.equal(run.status.code, 0);
    assert.equal(run.resource["service.name"], "openrunner-e2e");
    assertNested(tree);
    const preparing = childOf(tree, run, "preparing")!;
    assert.ok(preparing.endMs <= agent.startMs, "preparing ends before the agent starts");
  });

  test("a failing shell run: failure code and exit code on the run span, status error; a new trace rooted at the request", T, async () => {
    const id = await createRun(s, token, "echo bye; exit 3", { agent_type: "shell" });
    const evs = await allEvents(s, token, id, 60_000);
    assert.equal(evs.at(-1)!.type, "run.failed", describeEvents(evs));
    const { run, tree } = await runTree(id, ["preparing", "agent shell"]);
    const request = await otlp.waitForSpan((x) => x.name === "POST /api/runs" && x.attributes["openrunner.run.id"] === id);
    assert.equal(request.parentSpanId, "", "no caller context: the request's span is a root");
    assert.equal(run.parentSpanId, request.spanId);
    assert.equal(run.attributes["error.type"], "exit_nonzero");
    assert.equal(run.attributes["process.exit.code"], 3);
    assert.equal(run.status.code, 2);
    assertNested(tree);
  });

  test("an ACP run with a tool call and an answered permission request: turns, tool, permission wait inside the tool", T, async () => {
    const script = JSON.stringify({
      steps: [
        { say: "Writing the file." },
        { tool: { id: "call-1", title: "Write hello.txt", kind: "edit", input: { path: "hello.txt" } } },
        { permission: { id: "call-1", title: "Write hello.txt" } },
        { tool_done: { id: "call-1", output: "written" } },
        { say: "Done." },
      ],
    });
    const id = await createRun(s, token, script, { agent_type: "acp", acp_agent: "fixture" });
    const upTo = await eventsUntil(s, token, id, (e) => e.type === "permission.request");
    const request = upTo.find((e) => e.type === "permission.request") as Ev;
    const option = (request.data.options as Array<{ option_id: string; kind: string }>).find((o) => o.kind === "allow_once")!;
    const answer = await s.api(`/api/runs/${id}/permissions/${request.data.request_id}`, { method: "POST", token, json: { option_id: option.option_id } });
    assert.equal(answer.status, 200, await answer.clone().text());
    const evs = await allEvents(s, token, id, 60_000);
    const dump = describeEvents(evs);
    assert.equal(evs.at(-1)!.type, "run.completed", dump);
    const toolName = evs.find((e) => e.type === "tool.call")!.data.name as string;

    const { run, tree } = await runTree(id, ["preparing", "agent acp", `tool ${toolName}`, "turn 1", "turn 2"]);
    const agent = childOf(tree, run, "agent acp")!;
    assert.ok(agent, `agent span under the run: ${names(tree).join(", ")}`);
    const tool = childOf(tree, agent, `tool ${toolName}`)!;
    assert.ok(tool, `tool span under the agent: ${names(tree).join(", ")}`);
    assert.equal(tool.attributes["openrunner.tool.call_id"], "call-1");
    const permission = tree.find((x) => x.name.startsWith("permission "))!;
    assert.ok(permission, names(tree).join(", "));
    assert.equal(permission.parentSpanId, tool.spanId, "the permission wait is inside its tool call");
    assert.equal(permission.attributes["openrunner.permission.decision"], option.option_id);
    assert.equal(permission.attributes["openrunner.permission.by"], "user:admin");
    const turn1 = childOf(tree, agent, "turn 1")!;
    const turn2 = childOf(tree, agent, "turn 2")!;
    assert.ok(turn1.endMs <= tool.startMs && tool.endMs <= turn2.startMs, "turn 1, the tool, then turn 2");
    assert.equal(run.attributes["openrunner.acp_agent"], "fixture");
    assertNested(tree);
  });
});
