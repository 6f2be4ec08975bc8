/** Unit: the strict JSON-RPC stdio stream and the ACP agent list (`src/agent/acp/connection.ts`, `agents.ts`). */
import { test } from "node:test";
import assert from "node:assert/strict";
import { PassThrough } from "node:stream";
import { checkJsonRpc, createStdioStream } from "../../src/agent/acp/connection.ts";
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
