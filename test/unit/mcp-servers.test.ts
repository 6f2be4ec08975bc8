/**
 * Per-run MCP servers without a CLI: the admin's allow-lists (src/run/mcp-servers.ts), the
 * request schema (`metadata.mcp_servers`), each agent's configuration format
 * (src/agent/mcp-config.ts, the adapters' rendered files) and the server name on MCP tool
 * calls in each parser.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { acpMcpServers, claudeMcpConfig, codexMcpToml, geminiMcpServers, mcpServerOfTool, opencodeMcp } from "../../src/agent/mcp-config.ts";
import { renderCodexConfig } from "../../src/agent/codex/adapter.ts";
import { createClaudeCodeParser } from "../../src/agent/claude-code/parse.ts";
import { createCodexParser } from "../../src/agent/codex/parse.ts";
import { createOpencodeParser } from "../../src/agent/opencode/parse.ts";
import { createUpdateMapper } from "../../src/agent/acp/map-update.ts";
import { compileSchema } from "../../src/api/validate.ts";
import { ValidationError } from "../../src/errors.ts";
import { CreateRunBody, type McpServers } from "../../src/protocol/requests.ts";
import { checkMcpServers } from "../../src/run/mcp-servers.ts";

const SERVERS: McpServers = {
  files: { command: "mcp-files", args: ["--root", "."], env: { TOKEN: "t\"1" } },
  web: { type: "http", url: "https://mcp.example.com/mcp", headers: { Authorization: "Bearer x" } },
};
const ALLOW = { allowed_commands: ["mcp-files"], allowed_hosts: ["*.example.com", "127.0.0.1"], allowed_env: ["TOKEN", "LD_PRELOAD", "BASH_FUNC_x%%"] };

function refused(servers: McpServers, code: string): void {
  assert.throws(() => checkMcpServers(servers, ALLOW), (e: unknown) => e instanceof ValidationError && e.code === code);
}

test("the allow-lists: listed commands and hosts pass; anything else is refused with its code", () => {
  checkMcpServers(SERVERS, ALLOW);
  checkMcpServers({ local: { url: "http://127.0.0.1:8123/mcp" } }, ALLOW);
  refused({ x: { command: "/bin/sh" } }, "mcp_command_not_allowed");
  refused({ x: { command: "mcp-files", env: { LD_PRELOAD: "/x.so" } } }, "mcp_command_not_allowed");
  refused({ x: { command: "mcp-files", env: { NODE_OPTIONS: "--require /x.js" } } }, "mcp_command_not_allowed");
  refused({ x: { command: "mcp-files", env: { GIT_CONFIG_COUNT: "1" } } }, "mcp_command_not_allowed"); // not in allowed_env
  refused({ x: { command: "mcp-files", env: { LD_PRELOAD: "/x.so" } } }, "mcp_command_not_allowed"); // listed, still a loader variable
  refused({ x: { url: "https://example.com/mcp" } }, "mcp_url_not_allowed"); // *.example.com is subdomains only
  refused({ x: { url: "https://evil.com/mcp" } }, "mcp_url_not_allowed");
  refused({ x: { url: "https://a:b@mcp.example.com/mcp" } }, "mcp_url_not_allowed");
  assert.throws(() => checkMcpServers({ x: { command: "mcp-files" } }, undefined), (e: unknown) => e instanceof ValidationError && e.code === "mcp_command_not_allowed");
});

test("metadata.mcp_servers is validated by the request schema", () => {
  const ok = compileSchema(CreateRunBody);
  const body = (mcp_servers: unknown) => ({ input: { text: "x" }, metadata: { agent_type: "claude_code", mcp_servers } });
  assert.ok(ok(body(SERVERS)), JSON.stringify(ok.errors));
  for (const bad of [{ "a b": { command: "c" } }, { a: { command: "c", url: "http://x" } }, { a: { url: "ftp://x" } }, { a: { command: "c", extra: 1 } }, { a: { command: "c", env: { "A-B": "x" } } }]) {
    assert.equal(ok(body(bad)), false, JSON.stringify(bad));
  }
});

test("each agent's configuration format", () => {
  assert.deepEqual(claudeMcpConfig(SERVERS), {
    mcpServers: {
      files: { type: "stdio", command: "mcp-files", args: ["--root", "."], env: { TOKEN: 't"1' } },
      web: { type: "http", url: "https://mcp.example.com/mcp", headers: { Authorization: "Bearer x" } },
    },
  });
  assert.deepEqual(codexMcpToml(SERVERS), [
    "",
    '[mcp_servers."files"]',
    'command = "mcp-files"',
    'args = ["--root", "."]',
    'env = { "TOKEN" = "t\\"1" }',
    "",
    '[mcp_servers."web"]',
    'url = "https://mcp.example.com/mcp"',
    'http_headers = { "Authorization" = "Bearer x" }',
  ]);
  const toml = renderCodexConfig({ base_url: "http://m/v1", mcp_servers: SERVERS });
  assert.ok(toml.indexOf("[features]") < toml.indexOf('[mcp_servers."files"]'), "the MCP tables come after every other table");
  assert.deepEqual(opencodeMcp(SERVERS), {
    files: { type: "local", command: ["mcp-files", "--root", "."], environment: { TOKEN: 't"1' }, enabled: true },
    web: { type: "remote", url: "https://mcp.example.com/mcp", headers: { Authorization: "Bearer x" }, enabled: true },
  });
  assert.deepEqual(geminiMcpServers(SERVERS), {
    files: { command: "mcp-files", args: ["--root", "."], env: { TOKEN: 't"1' }, trust: true },
    web: { httpUrl: "https://mcp.example.com/mcp", headers: { Authorization: "Bearer x" }, trust: true },
  });
  assert.deepEqual(acpMcpServers(SERVERS), [
    { name: "files", command: "mcp-files", args: ["--root", "."], env: [{ name: "TOKEN", value: 't"1' }] },
    { type: "http", name: "web", url: "https://mcp.example.com/mcp", headers: [{ name: "Authorization", value: "Bearer x" }] },
  ]);
});

test("the server of an MCP tool, from its name", () => {
  assert.equal(mcpServerOfTool("mcp__fixture__echo"), "fixture");
  assert.equal(mcpServerOfTool("mcp__my_srv__do__it"), "my_srv");
  assert.equal(mcpServerOfTool("fixture_echo", ["fixture"]), "fixture");
  assert.equal(mcpServerOfTool("my_srv_echo", ["my", "my_srv"]), "my_srv");
  assert.equal(mcpServerOfTool("Bash"), undefined);
  assert.equal(mcpServerOfTool("fixture_echo"), undefined);
});

test("parsers put the server on MCP tool calls", () => {
  const claude = createClaudeCodeParser().parseLine(JSON.stringify({ type: "assistant", session_id: "s", message: { id: "m", role: "assistant", content: [{ type: "tool_use", id: "t1", name: "mcp__fixture__echo", input: { text: "x" } }] } }));
  assert.deepEqual(claude.find((e) => e.type === "tool.call")?.data, { call_id: "t1", name: "mcp__fixture__echo", input: { text: "x" }, server: "fixture" });
  // codex `exec --json` item (docs/exec.md): {id, type: "mcp_tool_call", server, tool, arguments, result, status}
  const codex = createCodexParser().parseLine(JSON.stringify({ type: "item.started", item: { id: "item_1", type: "mcp_tool_call", server: "fixture", tool: "echo", arguments: { text: "x" }, status: "in_progress" } }));
  assert.deepEqual(codex.find((e) => e.type === "tool.call")?.data, { call_id: "item_1", name: "fixture.echo", input: { text: "x" }, server: "fixture" });
  const opencode = createOpencodeParser({ mcpServers: ["fixture"] }).parseLine(JSON.stringify({ type: "tool_use", timestamp: 1, sessionID: "ses", part: { type: "tool", tool: "fixture_echo", callID: "c1", state: { status: "completed", input: { text: "x" }, output: "echo: x" } } }));
  assert.equal(opencode.find((e) => e.type === "tool.call")?.data.server, "fixture");
  const acp = createUpdateMapper("sess").map({ sessionUpdate: "tool_call", toolCallId: "tc1", title: "echo", kind: "other", status: "completed", rawInput: { text: "x" }, _meta: { claudeCode: { toolName: "mcp__fixture__echo" } } });
  assert.equal(acp.find((e) => e.type === "tool.call")?.data.server, "fixture");
});
