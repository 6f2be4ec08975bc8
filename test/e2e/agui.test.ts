/**
 * End to end: the AG-UI view of a run (`/api/runs/:id/agui`) consumed by the
 * protocol's own client, `@ag-ui/client`'s `HttpAgent` (which POSTs a
 * RunAgentInput and verifies the event stream against the protocol), on a real
 * shell run of the real server: once live (the run is blocked on a FIFO until
 * the client has seen RUN_STARTED) and once replayed; plus the replay rules
 * of `GET` with `Last-Event-ID`; and a real Claude Code run (against the scripted model server)
 * whose text and tool call arrive as TEXT_MESSAGE_* and TOOL_CALL_* events in the agent's messages.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { HttpAgent, EventType, type BaseEvent } from "@ag-ui/client";
import { EventSchemas } from "@ag-ui/core/schemas";
import { startModelServer, type ModelServer } from "../fixtures/model-server/index.ts";
import { allEvents, createRun, writeConfig } from "../helpers/events.ts";
import { spawnServer, type TestServer } from "../helpers/spawn-server.ts";

/** Reads an SSE response's frames: `{id?, data}` per frame, to the end of the stream. */
async function readFrames(res: Response): Promise<Array<{ id?: number; data: Record<string, unknown> }>> {
  const text = await res.text();
  return text
    .split("\n\n")
    .filter((f) => f.includes("data: "))
    .map((f) => {
      const id = /^id: (\d+)$/m.exec(f)?.[1];
      const data = JSON.parse(/^data: (.*)$/m.exec(f)![1]!) as Record<string, unknown>;
      return id !== undefined ? { id: Number(id), data } : { data };
    });
}

describe("AG-UI view of a run", () => {
  let s: TestServer;
  let token: string;
  let model: ModelServer;
  let configFile: string;
  before(async () => {
    model = await startModelServer();
    configFile = writeConfig({ agents: { claude_code: { base_url: model.url, api_key: "sk-test", model: "claude-sonnet-4-5", max_retries: 0 } } });
    s = await spawnServer({ env: { OPENRUNNER_CONFIG: configFile } });
    token = await s.login();
  });
  after(async () => {
    await s.stop();
    s.cleanup();
    await model.close();
    rmSync(configFile, { force: true });
  });

  test("HttpAgent follows a live shell run from RUN_STARTED to RUN_FINISHED", async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), "openrunner-agui-"));
    chmodSync(dir, 0o755);
    const fifo = path.join(dir, "gate");
    execFileSync("mkfifo", ["-m", "0666", fifo]);
    try {
      const runId = await createRun(s, token, `echo first; cat ${fifo}`, { agent_type: "shell" });
      const agent = new HttpAgent({ url: `${s.url}/api/runs/${runId}/agui`, headers: { Authorization: `Bearer ${token}` }, threadId: "thread-e2e" });
      const seen: BaseEvent[] = [];
      let released = false;
      const { result } = await agent.runAgent(
        { runId },
        {
          onEvent: ({ event }) => {
            seen.push(event);
            if (!released && event.type === EventType.RUN_STARTED) {
              released = true;
              writeFileSync(fifo, "second\n"); // the run ends only once the client is following it live
            }
          },
        },
      );
      assert.equal(result, "second");
      assert.equal(seen[0]!.type, EventType.RUN_STARTED);
      assert.equal((seen[0] as unknown as { threadId: string }).threadId, "thread-e2e");
      assert.equal((seen[0] as unknown as { runId: string }).runId, runId);
      const last = seen.at(-1) as unknown as { type: string; outcome: { type: string }; result: string };
      assert.equal(last.type, EventType.RUN_FINISHED);
      assert.deepEqual(last.outcome, { type: "success" });
      for (const e of seen) assert.ok(EventSchemas.safeParse(e).success, JSON.stringify(e));
      const raw = seen.filter((e) => e.type === EventType.RAW).map((e) => (e as unknown as { event: { type: string; data: { text?: string } } }).event);
      assert.ok(raw.some((e) => e.type === "run.started"));
      assert.deepEqual(raw.filter((e) => e.type === "log").map((e) => e.data.text), ["first", "second"]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("a finished run replays the same AG-UI events; Last-Event-ID resumes after our event id", async () => {
    const runId = await createRun(s, token, "printf 'a\\nb\\n'", { agent_type: "shell" });
    const evs = await allEvents(s, token, runId, 30_000);
    const agent = new HttpAgent({ url: `${s.url}/api/runs/${runId}/agui`, headers: { Authorization: `Bearer ${token}` } });
    const seen: BaseEvent[] = [];
    const { result } = await agent.runAgent({ runId }, { onEvent: ({ event }) => void seen.push(event) });
    assert.equal(result, "b");

    const full = await readFrames(await s.api(`/api/runs/${runId}/agui?access_token=${token}`));
    assert.deepEqual(full.map((f) => f.data.type), seen.map((e) => e.type));
    // Every RunEvent's group of AG-UI events ends with a frame carrying its id, in order.
    assert.deepEqual(full.filter((f) => f.id !== undefined).map((f) => f.id), evs.map((e) => e.id));

    const cut = evs[evs.length - 2]!.id;
    const rest = await readFrames(await s.api(`/api/runs/${runId}/agui`, { token, headers: { "Last-Event-ID": String(cut) } }));
    assert.deepEqual(rest.map((f) => f.data.type), [EventType.RUN_FINISHED]);
    assert.equal(rest[0]!.id, evs.at(-1)!.id);

    const bad = await s.api(`/api/runs/${runId}/agui`, { token, headers: { "Last-Event-ID": "x" } });
    assert.equal(bad.status, 400);
    const badInput = await s.api(`/api/runs/${runId}/agui`, { method: "POST", token, json: { threadId: 5 } });
    assert.equal(badInput.status, 400);
    const foreign = await s.api(`/api/runs/run_01NOPE/agui`, { token });
    assert.equal(foreign.status, 404);
  });

  test("a Claude Code run: its text and tool call become the agent's messages through HttpAgent", { timeout: 240_000 }, async () => {
    model.setScenario({ turns: [{ text: "Listing the folder.", tool: { shell: "printf 'agui-tool-output\\n'" } }, { text: "All done." }] });
    const runId = await createRun(s, token, "list the folder", { agent_type: "claude_code" });
    const agent = new HttpAgent({ url: `${s.url}/api/runs/${runId}/agui`, headers: { Authorization: `Bearer ${token}` } });
    const seen: BaseEvent[] = [];
    const { result, newMessages } = await agent.runAgent({ runId }, { onEvent: ({ event }) => void seen.push(event) });
    const types = seen.map((e) => e.type);
    assert.equal(types.at(-1), EventType.RUN_FINISHED, types.join(" "));
    for (const t of [EventType.TEXT_MESSAGE_START, EventType.TEXT_MESSAGE_CONTENT, EventType.TEXT_MESSAGE_END, EventType.TOOL_CALL_START, EventType.TOOL_CALL_ARGS, EventType.TOOL_CALL_END, EventType.TOOL_CALL_RESULT]) assert.ok(types.includes(t), `${t} in ${types.join(" ")}`);
    assert.equal(result, "All done.");
    const texts = newMessages.filter((m) => m.role === "assistant").map((m) => m.content).join("|");
    assert.match(texts, /Listing the folder\./);
    assert.match(texts, /All done\./);
    const call = newMessages.flatMap((m) => (m.role === "assistant" ? (m.toolCalls ?? []) : [])).find((c) => c.function.name === "Bash");
    assert.ok(call, JSON.stringify(newMessages));
    assert.match(JSON.parse(call.function.arguments).command, /agui-tool-output/);
    const toolMsg = newMessages.find((m) => m.role === "tool" && m.toolCallId === call.id);
    assert.ok(toolMsg && String(toolMsg.content).includes("agui-tool-output"), JSON.stringify(newMessages));
  });
});
