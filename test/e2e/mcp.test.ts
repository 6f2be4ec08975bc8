/**
 * End to end: OpenRunner as an MCP server, driven by the SDK's own client
 * (`@modelcontextprotocol/sdk`): over Streamable HTTP at `/mcp` of the real
 * server (with a JWT), and over stdio through `openrunner mcp` (a child
 * process using the CLI's stored login). A shell run is started with
 * `start_run` and waited for with `wait_run`, whose progress notifications
 * arrive while the run is blocked on a FIFO the test writes to only once the
 * first progress notification (`waiting: …`, sent when the wait begins) came.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { execFileSync } from "node:child_process";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { after, before, describe, test } from "node:test";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import type { CallToolResult, Progress } from "@modelcontextprotocol/sdk/types.js";
import { ADMIN_PASSWORD, spawnServer, type TestServer } from "../helpers/spawn-server.ts";

const BIN = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../bin/openrunner.js");
const TOOL_NAMES = ["answer_permission", "cancel_run", "get_run", "list_agents", "list_runs", "start_run", "wait_run"];

/** A FIFO the run's shell blocks on (`cat FIFO`), readable by the unprivileged run user. */
function makeFifo(): { dir: string; fifo: string } {
  const dir = mkdtempSync(path.join(os.tmpdir(), "openrunner-mcp-fifo-"));
  chmodSync(dir, 0o755);
  const fifo = path.join(dir, "gate");
  execFileSync("mkfifo", ["-m", "0666", fifo]);
  return { dir, fifo };
}

/**
 * Starts a shell run that prints what the test writes into a FIFO, waits for it with
 * `wait_run`, and writes `text` into the FIFO on the first progress notification.
 */
async function startAndWait(client: Client, text: string): Promise<{ runId: string; waited: CallToolResult; progress: Progress[] }> {
  const gate = makeFifo();
  try {
    const started = (await client.callTool({ name: "start_run", arguments: { input: { text: `cat ${gate.fifo}` }, metadata: { agent_type: "shell" } } })) as CallToolResult;
    assert.ok(!started.isError, JSON.stringify(started.content));
    const runId = (started.structuredContent as { run_id: string }).run_id;
    assert.match(runId, /^run_/);
    const progress: Progress[] = [];
    let opened = false;
    const waited = (await client.callTool({ name: "wait_run", arguments: { run_id: runId, timeout_secs: 120 } }, undefined, {
      timeout: 120_000,
      resetTimeoutOnProgress: true,
      onprogress: (p) => {
        progress.push(p);
        if (!opened) {
          opened = true;
          writeFileSync(gate.fifo, `${text}\n`); // unblocks the run's `cat`
        }
      },
    })) as CallToolResult;
    return { runId, waited, progress };
  } finally {
    rmSync(gate.dir, { recursive: true, force: true });
  }
}

/** The API error code of a failed tool call (`_meta["openrunner/error"]`), checked against its text. */
function errorCode(r: CallToolResult): string {
  assert.equal(r.isError, true);
  const code = (r._meta?.["openrunner/error"] as { code: string }).code;
  assert.ok((r.content[0] as { text: string }).text.startsWith(`${code}: `));
  return code;
}

function assertCompleted(r: { waited: CallToolResult; progress: Progress[] }, text: string): void {
  assert.ok(!r.waited.isError, JSON.stringify(r.waited.content));
  const out = r.waited.structuredContent as { done: boolean; run: { status: string; result: string | null } };
  assert.equal(out.done, true);
  assert.equal(out.run.status, "completed");
  assert.equal(out.run.result, text);
  assert.ok(r.progress.length > 0, "progress notifications while the run was waited for");
  const ids = r.progress.map((p) => p.progress);
  assert.deepEqual(ids, [...ids].sort((a, b) => a - b), "progress increases");
  assert.match(r.progress[0]!.message ?? "", /^waiting: (queued|preparing|running)$/);
  assert.equal(r.progress.at(-1)!.message, "run.completed");
}

describe("MCP server", () => {
  let s: TestServer;
  let token: string;
  before(async () => {
    s = await spawnServer();
    token = await s.login();
  });
  after(async () => {
    await s.stop();
    s.cleanup();
  });

  describe("over Streamable HTTP at /mcp", () => {
    let client: Client;
    before(async () => {
      client = new Client({ name: "openrunner-e2e", version: "1.0.0" });
      await client.connect(new StreamableHTTPClientTransport(new URL(`${s.url}/mcp`), { requestInit: { headers: { Authorization: `Bearer ${token}` } } }));
    });
    after(async () => {
      await client.close();
    });

    test("lists the tools with the API's JSON schemas", async () => {
      const { tools } = await client.listTools();
      assert.deepEqual(tools.map((t) => t.name).sort(), TOOL_NAMES);
      const start = tools.find((t) => t.name === "start_run")!;
      assert.deepEqual(start.inputSchema.required, ["input", "metadata"]);
      assert.equal((start.inputSchema as { additionalProperties?: unknown }).additionalProperties, false);
      assert.ok(tools.every((t) => t.outputSchema?.type === "object"));
    });

    test("start_run, then wait_run with progress, ends with the run's result", async () => {
      const r = await startAndWait(client, "hello-over-http");
      assertCompleted(r, "hello-over-http");
      const got = (await client.callTool({ name: "get_run", arguments: { run_id: r.runId } })) as CallToolResult;
      assert.equal((got.structuredContent as { status: string }).status, "completed");
      const list = (await client.callTool({ name: "list_runs", arguments: { status: "completed", limit: 5 } })) as CallToolResult;
      assert.ok((list.structuredContent as { runs: Array<{ id: string }> }).runs.some((x) => x.id === r.runId));

      const read = await client.readResource({ uri: `openrunner://runs/${r.runId}/events` });
      const page = JSON.parse((read.contents[0] as { text: string }).text) as { events: Array<{ id: number; type: string }>; done: boolean };
      assert.equal(page.done, true);
      assert.deepEqual(page.events.map((e) => e.id), page.events.map((_, i) => i + 1));
      assert.equal(page.events[0]!.type, "run.queued");
      assert.equal(page.events.at(-1)!.type, "run.completed");
      const later = await client.readResource({ uri: `openrunner://runs/${r.runId}/events?after=${page.events.length - 1}` });
      assert.deepEqual((JSON.parse((later.contents[0] as { text: string }).text) as { events: Array<{ type: string }> }).events.map((e) => e.type), ["run.completed"]);
      const artifacts = await client.readResource({ uri: `openrunner://runs/${r.runId}/artifacts` });
      assert.deepEqual(JSON.parse((artifacts.contents[0] as { text: string }).text), { run_id: r.runId, status: "completed", artifacts: [] });
      const { resources } = await client.listResources();
      assert.ok(resources.some((x) => x.uri === `openrunner://runs/${r.runId}/events`));
    });

    test("bad arguments and other users' runs are tool errors with the API's codes", async () => {
      const bad = (await client.callTool({ name: "start_run", arguments: { input: { text: "x" }, metadata: { agent_type: "shell", bogus: 1 } } })) as CallToolResult;
      assert.equal(bad.isError, true);
      assert.equal(errorCode(bad), "validation_failed");
      assert.match((bad.content[0] as { text: string }).text, /^validation_failed: .*\/metadata\/bogus/);

      const mine = (await client.callTool({ name: "start_run", arguments: { input: { text: "true" }, metadata: { agent_type: "shell" } } })) as CallToolResult;
      const runId = (mine.structuredContent as { run_id: string }).run_id;
      const created = await s.api("/api/users", { method: "POST", token, json: { username: "mcp-other", password: "other-password-1" } });
      assert.equal(created.status, 201, await created.text());
      const other = new Client({ name: "other", version: "1.0.0" });
      await other.connect(new StreamableHTTPClientTransport(new URL(`${s.url}/mcp`), { requestInit: { headers: { Authorization: `Bearer ${await s.login("mcp-other", "other-password-1")}` } } }));
      try {
        const foreign = (await other.callTool({ name: "get_run", arguments: { run_id: runId } })) as CallToolResult;
        assert.equal(foreign.isError, true);
        assert.equal(errorCode(foreign), "not_found");
        await assert.rejects(other.readResource({ uri: `openrunner://runs/${runId}/events` }), (err: { code?: number }) => err.code === -32002);
        const shell = (await other.callTool({ name: "start_run", arguments: { input: { text: "true" }, metadata: { agent_type: "shell" } } })) as CallToolResult;
        assert.equal(errorCode(shell), "forbidden", "host shell runs are for admins, as over REST");
      } finally {
        await other.close();
      }
    });

    test("needs the API's authentication; GET is 405 (stateless)", async () => {
      const anon = await fetch(`${s.url}/mcp`, { method: "POST", headers: { "Content-Type": "application/json", Accept: "application/json, text/event-stream" }, body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "tools/list" }) });
      assert.equal(anon.status, 401);
      const get = await s.api("/mcp", { token, headers: { Accept: "text/event-stream" } });
      assert.equal(get.status, 405);
      assert.equal(((await get.json()) as { error: { code: string } }).error.code, "method_not_allowed");
    });
  });

  describe("over stdio: `openrunner mcp` with the stored login", () => {
    let cfg: string;
    let client: Client;
    before(async () => {
      cfg = mkdtempSync(path.join(os.tmpdir(), "openrunner-mcp-cli-"));
      const env = { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: cfg, XDG_CONFIG_HOME: cfg };
      const login = spawn(process.execPath, [BIN, "login", "--server", s.url, "--username", "admin", "--password-stdin"], { env, stdio: ["pipe", "ignore", "inherit"] });
      login.stdin.end(`${ADMIN_PASSWORD}\n`);
      assert.equal(await new Promise((r) => login.once("close", r)), 0);
      client = new Client({ name: "openrunner-e2e-stdio", version: "1.0.0" });
      await client.connect(new StdioClientTransport({ command: process.execPath, args: [BIN, "mcp"], env, stderr: "inherit" }));
    });
    after(async () => {
      await client.close();
      rmSync(cfg, { recursive: true, force: true });
    });

    test("start_run, then wait_run with progress, ends with the run's result", async () => {
      const { tools } = await client.listTools();
      assert.deepEqual(tools.map((t) => t.name).sort(), TOOL_NAMES);
      const agents = (await client.callTool({ name: "list_agents", arguments: {} })) as CallToolResult;
      assert.ok((agents.structuredContent as { agents: Array<{ agent: string; available: boolean }> }).agents.some((a) => a.agent === "shell" && a.available));
      const r = await startAndWait(client, "hello-over-stdio");
      assertCompleted(r, "hello-over-stdio");
      const read = await client.readResource({ uri: `openrunner://runs/${r.runId}/events` });
      assert.match((read.contents[0] as { text: string }).text, /"type":"run.completed"/);
    });
  });
});
