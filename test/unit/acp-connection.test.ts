/** Unit: the strict JSON-RPC stdio stream and the ACP agent list (`src/agent/acp/connection.ts`, `agents.ts`). */
import { test } from "node:test";
import assert from "node:assert/strict";
import { PassThrough } from "node:stream";
import { checkJsonRpc, createAcpClient, createStdioStream, MAX_CONCURRENT_FS_REQUESTS, MAX_QUEUED_MESSAGES, type AcpClientHandlers } from "../../src/agent/acp/connection.ts";
import { resolveAcpAgents } from "../../src/agent/acp/agents.ts";
import { createAcpAdapter } from "../../src/agent/acp/adapter.ts";
import { loadConfig } from "../../src/config/load.ts";
import { ConfigError } from "../../src/errors.ts";

test("checkJsonRpc accepts requests, notifications and responses only", () => {
  assert.equal(checkJsonRpc({ jsonrpc: "2.0", id: 1, method: "x" }), undefined);
  assert.equal(checkJsonRpc({ jsonrpc: "2.0", method: "session/update", params: {} }), undefined);
  assert.equal(checkJsonRpc({ jsonrpc: "2.0", id: 1, result: null }), undefined);
  assert.equal(checkJsonRpc({ jsonrpc: "2.0", id: 1, error: { code: 1, message: "m" } }), undefined);
  assert.ok(checkJsonRpc([{ jsonrpc: "2.0", id: 1, method: "x" }]));
  assert.ok(checkJsonRpc({ id: 1, method: "x" }));
  assert.ok(checkJsonRpc({ jsonrpc: "2.0", id: 1 }));
  assert.ok(checkJsonRpc("text"));
});

test("the stdio stream yields messages in order, taps session/update, reports malformed lines", async () => {
  const stdin = new PassThrough();
  const stdout = new PassThrough();
  const bad: string[] = [];
  const updates: unknown[] = [];
  const stream = createStdioStream(stdin, stdout, { onMalformed: (l, why) => bad.push(`${why}|${l}`), onUpdate: (p) => updates.push(p) });
  stdout.write('{"jsonrpc":"2.0","method":"session/update","params":{"n":1}}\n{"jsonrpc":"2.0","id":3,"res');
  stdout.write('ult":{"ok":true}}\nnot json\n[1]\n\n');
  stdout.end();
  const got: unknown[] = [];
  const reader = stream.readable.getReader();
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    got.push(value);
  }
  assert.deepEqual(got, [{ jsonrpc: "2.0", method: "session/update", params: { n: 1 } }, { jsonrpc: "2.0", id: 3, result: { ok: true } }]);
  assert.deepEqual(updates, [{ n: 1 }]);
  assert.deepEqual(bad, ["not JSON|not json", "not a JSON object|[1]"]);
  const writer = stream.writable.getWriter();
  const written = new Promise<string>((r) => stdin.once("data", (d: Buffer) => r(d.toString())));
  await writer.write({ jsonrpc: "2.0", id: 1, method: "initialize", params: {} });
  assert.equal(await written, '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{}}\n');
});

test("backpressure: the agent's stdout is paused while the connection has not taken what was read, resumed when it reads", async () => {
  const stdout = new PassThrough();
  const stream = createStdioStream(new PassThrough(), stdout, { onMalformed: () => {} });
  const line = (i: number) => `{"jsonrpc":"2.0","method":"x","params":{"i":${i}}}\n`;
  stdout.write(Array.from({ length: MAX_QUEUED_MESSAGES + 5 }, (_, i) => line(i)).join(""));
  await new Promise((r) => setImmediate(r));
  assert.equal(stdout.isPaused(), true, "paused with nobody reading");
  const reader = stream.readable.getReader();
  for (let i = 0; i < MAX_QUEUED_MESSAGES + 5; i++) assert.deepEqual(((await reader.read()).value as { params: unknown }).params, { i });
  assert.equal(stdout.isPaused(), false, "resumed once read");
});

test("file requests beyond MAX_CONCURRENT_FS_REQUESTS at once are refused with a JSON-RPC error; the others are answered", async () => {
  const toClient = new PassThrough();
  const fromClient = new PassThrough();
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const fail = () => Promise.reject(new Error("unused"));
  const handlers: AcpClientHandlers = {
    requestPermission: fail, writeTextFile: fail, createTerminal: fail, terminalOutput: fail, waitForTerminalExit: fail, killTerminal: fail, releaseTerminal: fail,
    readTextFile: async () => {
      await gate;
      return { content: "ok" };
    },
  };
  const conn = createAcpClient(handlers).connect(createStdioStream(fromClient, toClient, { onMalformed: () => {} }));
  const answers: Array<{ id: number; result?: unknown; error?: { message: string } }> = [];
  let buf = "";
  fromClient.on("data", (d: Buffer) => {
    buf += d.toString();
    for (let i; (i = buf.indexOf("\n")) >= 0; buf = buf.slice(i + 1)) answers.push(JSON.parse(buf.slice(0, i)));
  });
  const extra = 4;
  for (let id = 1; id <= MAX_CONCURRENT_FS_REQUESTS + extra; id++) toClient.write(`${JSON.stringify({ jsonrpc: "2.0", id, method: "fs/read_text_file", params: { sessionId: "s", path: `/w/${id}` } })}\n`);
  const until = async (n: number) => {
    for (let t = 0; answers.length < n && t < 500; t++) await new Promise((r) => setTimeout(r, 10));
  };
  await until(extra);
  assert.equal(answers.length, extra, "only the excess is answered while the others are in flight");
  for (const a of answers) assert.match(a.error!.message, /too many concurrent file requests/);
  release();
  await until(MAX_CONCURRENT_FS_REQUESTS + extra);
  assert.equal(answers.filter((a) => (a.result as { content?: string } | undefined)?.content === "ok").length, MAX_CONCURRENT_FS_REQUESTS);
  toClient.end();
  await conn.closed.catch(() => {});
});

test("acp_agents: built-ins, overrides, new entries; config validation", () => {
  const { agents, invalid } = resolveAcpAgents({ gemini: { model: "m" }, mine: { command: "/bin/my-agent", args: ["--acp"] }, broken: {} });
  const byName = Object.fromEntries(agents.map((a) => [a.name, a]));
  assert.deepEqual(Object.keys(byName), ["claude-code-acp", "codex-acp", "gemini", "opencode", "mine"]);
  assert.deepEqual([byName.gemini!.command, byName.gemini!.args, byName.gemini!.vendor, byName.gemini!.options.model], ["gemini", ["--experimental-acp"], "gemini", "m"]);
  assert.deepEqual([byName.opencode!.args, byName.mine!.vendor], [["acp"], "none"]);
  assert.deepEqual(invalid, ["broken"]);
  const config = loadConfig({ env: {}, flags: {}, configPath: "/dev/null" });
  assert.deepEqual(config.acp_agents, {});
  assert.throws(() => createAcpAdapter({ broken: {} }), (e: unknown) => e instanceof ConfigError && /acp_agents\.broken\.command/.test(e.message));
  assert.deepEqual(createAcpAdapter({ mine: { command: "/bin/true" } }).agentNames(), ["claude-code-acp", "codex-acp", "gemini", "opencode", "mine"]);
});
