/**
 * End to end: per-run MCP servers (`metadata.mcp_servers`). The MCP server
 * fixture (test/fixtures/mcp-server/, stdio, on the SDK) is offered to each
 * real agent CLI (Claude Code, codex, opencode, Gemini CLI, and claude-code-acp
 * over ACP) in its own configuration; the scripted model server calls the
 * fixture's `echo` tool by the name the CLI offers it under (codex: after a `tool_search`), and the call
 * arrives in the run's events as `tool.call` (with `server: "fixture"`) and
 * `tool.result` (with the fixture's answer). Plus the admin's allow-lists:
 * a command or host not listed is refused at creation.
 *
 * CLIs come from `scripts/install-agents.sh --acp` (`.agents/bin`); one runs at a time.
 */
import assert from "node:assert/strict";
import { rmSync } from "node:fs";
import { after, before, describe, test } from "node:test";
import { startModelServer, type ModelServer } from "../fixtures/model-server/index.ts";
import { FIXTURE_MCP_COMMAND, fixtureMcpServer } from "../fixtures/mcp-server/config.ts";
import { describeEvents, runToEnd, writeConfig, type Ev } from "../helpers/events.ts";
import { spawnServer, type TestServer } from "../helpers/spawn-server.ts";

/** The fixture's tool under each CLI's naming: `mcp__fixture__echo` (Claude Code), `fixture_echo` (opencode), … */
const FIXTURE_ECHO = /^(mcp__fixture__echo|fixture__echo|fixture_echo|mcp_fixture_echo|echo)$/;

const TARGETS: Array<{ id: string; metadata: Record<string, unknown> }> = [
  { id: "claude_code", metadata: { agent_type: "claude_code" } },
  { id: "opencode", metadata: { agent_type: "opencode" } },
  { id: "gemini", metadata: { agent_type: "gemini" } },
  { id: "acp:claude-code-acp", metadata: { agent_type: "acp", acp_agent: "claude-code-acp", permission_policy: "allow" } },
];

describe("per-run MCP servers reach each agent CLI", () => {
  let model: ModelServer;
  let s: TestServer;
  let token: string;
  let configFile: string;
  before(async () => {
    model = await startModelServer();
    configFile = writeConfig({
      mcp: { allowed_commands: [FIXTURE_MCP_COMMAND], allowed_hosts: ["127.0.0.1"] },
      agents: {
        claude_code: { base_url: model.url, api_key: "sk-test", model: "claude-sonnet-4-5", max_retries: 0 },
        codex: { base_url: `${model.url}/v1`, api_key: "sk-test", model: "gpt-5.5", max_retries: 0 },
        opencode: { base_url: `${model.url}/v1`, api_key: "sk-test", model: "fake-model" },
        gemini: { base_url: model.url, api_key: "sk-test", model: "gemini-2.5-flash", max_retries: 0 },
      },
      acp_agents: { "claude-code-acp": { base_url: model.url, api_key: "sk-test", model: "claude-sonnet-4-5" } },
    });
    s = await spawnServer({ env: { OPENRUNNER_CONFIG: configFile } });
    token = await s.login();
  });
  after(async () => {
    await s.stop();
    s.cleanup();
    await model.close();
    rmSync(configFile, { force: true });
  });

  test("a command or host outside the admin's lists is refused at creation", async () => {
    const post = (mcp_servers: unknown) => s.api("/api/runs", { method: "POST", token, json: { input: { text: "hi" }, metadata: { agent_type: "claude_code", mcp_servers } } });
    const code = async (res: Response) => [res.status, ((await res.json()) as { error: { code: string } }).error.code];
    assert.deepEqual(await code(await post({ x: { command: "/bin/sh", args: ["-c", "id"] } })), [400, "mcp_command_not_allowed"]);
    assert.deepEqual(await code(await post({ x: { ...fixtureMcpServer(), env: { LD_PRELOAD: "/tmp/evil.so" } } })), [400, "mcp_command_not_allowed"]);
    assert.deepEqual(await code(await post({ x: { url: "http://10.0.0.1/mcp" } })), [400, "mcp_url_not_allowed"]);
    assert.deepEqual(await code(await post({ x: { url: "http://u:p@127.0.0.1/mcp" } })), [400, "mcp_url_not_allowed"]);
    assert.deepEqual(await code(await post({ "bad name": { url: "http://127.0.0.1/mcp" } })), [400, "validation_failed"]);
    assert.deepEqual(await code(await post({ x: { command: FIXTURE_MCP_COMMAND, url: "http://127.0.0.1/mcp" } })), [400, "validation_failed"]);
  });

  // codex 0.169 always defers MCP tools behind its client-side `tool_search` (features `tool_search` and
  // `tool_search_always_defer_mcp_tools` are "removed", i.e. always on): the model searches first, then calls.
  test("codex: the model searches its deferred tools, then calls the fixture's echo tool; tool.call (server fixture) and tool.result arrive", { timeout: 240_000 }, async () => {
    model.setScenario({ turns: [{ tool: { tool_search: "fixture echo" } }, { text: "Calling the fixture.", tool: { name: FIXTURE_ECHO, input: { text: "ping-codex" } } }, { text: "Echoed." }] });
    const before = model.requests.length;
    const { evs } = await runToEnd(s, token, "echo something through the fixture", { agent_type: "codex", mcp_servers: { fixture: fixtureMcpServer() } }, 200_000);
    const main = model.requests.slice(before).filter((r) => r.kind === "main");
    const explain = () => `${describeEvents(evs)}\ntools offered: ${main.map((r) => (r.tools ?? []).join(", ")).join(" | ")}`;
    assert.match(JSON.stringify(main[0]?.body), /Deferred tool namespaces:[^"]*mcp__fixture/, explain());
    assert.equal(evs.at(-1)!.type, "run.completed", explain());
    const call = evs.find((e: Ev) => e.type === "tool.call" && e.data.server === "fixture");
    assert.ok(call, `a tool.call with server "fixture":\n${explain()}`);
    assert.deepEqual(call.data.input, { text: "ping-codex" });
    const result = evs.find((e) => e.type === "tool.result" && e.data.call_id === call.data.call_id);
    assert.ok(result && result.data.is_error === false, explain());
    assert.match(JSON.stringify(result.data.output), /echo: ping-codex/);
  });

  for (const target of TARGETS) {
    test(`${target.id}: the model calls the fixture's echo tool; tool.call (server fixture) and tool.result arrive`, { timeout: 240_000 }, async () => {
      const health = ((await (await s.api("/health/agents")).json()) as { agents: Array<{ agent: string; available: boolean; reason?: string }> }).agents.find((a) => a.agent === target.id);
      assert.ok(health?.available, `${target.id} cannot run here (scripts/install-agents.sh --acp): ${health?.reason}`);
      const word = `ping-${target.id.replace(/[^a-z]/g, "")}`;
      model.setScenario({ turns: [{ text: "Calling the fixture.", tool: { name: FIXTURE_ECHO, input: { text: word } } }, { text: "Echoed." }] });
      const { evs } = await runToEnd(s, token, "echo something through the fixture", { ...target.metadata, mcp_servers: { fixture: fixtureMcpServer() } }, 200_000);
      const offered = model.requests.filter((r) => r.kind === "main").at(-1)?.tools ?? [];
      const explain = () => `${describeEvents(evs)}\ntools offered in the last main request: ${offered.join(", ")}`;
      assert.equal(evs.at(-1)!.type, "run.completed", explain());
      const call = evs.find((e: Ev) => e.type === "tool.call" && e.data.server === "fixture");
      assert.ok(call, `a tool.call with server "fixture":\n${explain()}`);
      assert.match(String(call.data.name), /echo/);
      assert.deepEqual(call.data.input, { text: word });
      const result = evs.find((e) => e.type === "tool.result" && e.data.call_id === call.data.call_id);
      assert.ok(result, `the call's tool.result:\n${explain()}`);
      assert.equal(result.data.is_error, false, explain());
      assert.match(JSON.stringify(result.data.output), new RegExp(`echo: ${word}`));
    });
  }
});
