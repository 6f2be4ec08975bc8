/**
 * End to end: the `openrunner` CLI (bin/openrunner.js, real child processes)
 * against the real server (test/helpers/spawn-server.ts), with a temporary
 * credentials folder; plus the SSE client's reconnects against a scripted
 * HTTP server that drops the connection and sends `stream.lagged`.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import http from "node:http";
import type { AddressInfo } from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { after, before, describe, test } from "node:test";
import { createApiClient } from "../../src/cli/client.ts";
import { followRunEvents } from "../../src/cli/sse.ts";
import type { RunEvent } from "../../src/protocol/events.ts";
import { ADMIN_PASSWORD, spawnServer, type TestServer } from "../helpers/spawn-server.ts";

const BIN = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../bin/openrunner.js");

interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the CLI with a clean environment plus `env`; `input` goes to stdin. */
function runCli(args: string[], env: Record<string, string>, input = "", timeoutMs = 60_000): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], {
      env: { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: env.HOME ?? os.tmpdir(), ...env },
      stdio: ["pipe", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (d: string) => (stdout += d));
    child.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d));
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`openrunner ${args.join(" ")} timed out\n${stdout}\n${stderr}`));
    }, timeoutMs);
    child.once("error", reject);
    child.once("close", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
    child.stdin.end(input);
  });
}

describe("openrunner CLI against the real server", () => {
  let s: TestServer;
  let cfg: string;
  let env: Record<string, string>;
  before(async () => {
    s = await spawnServer();
    cfg = mkdtempSync(path.join(os.tmpdir(), "openrunner-cli-"));
    env = { XDG_CONFIG_HOME: cfg, HOME: cfg };
  });
  after(async () => {
    await s.stop();
    s.cleanup();
    rmSync(cfg, { recursive: true, force: true });
  });

  test("login stores the token privately; later commands use the stored server", async () => {
    const res = await runCli(["login", "--server", s.url, "--username", "admin", "--password-stdin"], env, `${ADMIN_PASSWORD}\n`);
    assert.equal(res.code, 0, res.stderr);
    const file = path.join(cfg, "openrunner", "credentials.json");
    const creds = JSON.parse(readFileSync(file, "utf8")) as { server: string; token: string; username: string };
    assert.equal(creds.server, s.url);
    assert.equal(creds.username, "admin");
    assert.ok(creds.token.length > 20);
    assert.equal(statSync(file).mode & 0o777, 0o600);
    assert.equal(statSync(path.dirname(file)).mode & 0o777, 0o700);

    const agents = await runCli(["agents"], env);
    assert.equal(agents.code, 0, agents.stderr);
    assert.match(agents.stdout, /^AGENT\s+AVAILABLE/m);
    assert.match(agents.stdout, /^shell\s+yes/m);
  });

  test("a wrong password is one error line, exit 1", async () => {
    const other = mkdtempSync(path.join(os.tmpdir(), "openrunner-cli-"));
    try {
      const res = await runCli(["login", "--server", s.url, "--username", "admin", "--password-stdin"], { XDG_CONFIG_HOME: other }, "wrong-password\n");
      assert.equal(res.code, 1);
      assert.equal(res.stderr, "error: unauthorized: authentication required\n");
    } finally {
      rmSync(other, { recursive: true, force: true });
    }
  });

  test("run streams a completed run, exit 0; --json prints every event in order", async () => {
    const res = await runCli(["run", "--agent", "shell", "sleep 0.2; echo hello-cli"], env);
    assert.equal(res.code, 0, res.stderr);
    assert.match(res.stdout, /^run_\S+ · shell · queued$/m);
    assert.match(res.stdout, /stdout│ hello-cli/);
    assert.match(res.stdout, /✓ completed in /);
    assert.ok(!res.stdout.includes("\u001b["), "no colour when stdout is not a terminal");

    const json = await runCli(["run", "--json", "--agent", "shell", "sleep 0.2; echo again"], env);
    assert.equal(json.code, 0, json.stderr);
    const events = json.stdout.trim().split("\n").map((l) => JSON.parse(l) as RunEvent);
    assert.deepEqual(events.map((e) => e.id), events.map((_, i) => i + 1));
    assert.equal(events[0]?.type, "run.queued");
    assert.equal(events.at(-1)?.type, "run.completed");
    assert.ok(events.some((e) => e.type === "log" && e.data.text === "again"));

    const logs = await runCli(["logs", "--json", events[0]!.run_id], env);
    assert.equal(logs.code, 0, logs.stderr);
    assert.equal(logs.stdout, json.stdout, "logs replays exactly what run streamed");
  });

  test("a run that fails exits 1 with the final status line", async () => {
    const res = await runCli(["run", "--agent", "shell", "--timeout", "30", "sleep 0.2; exit 3"], env);
    assert.equal(res.code, 1, res.stdout + res.stderr);
    assert.match(res.stdout, /✗ failed: exit_nonzero: .*\(exit 3\)/);
  });

  test("logs -f follows a live run until cancel ends it; runs lists it", async () => {
    const started = runCli(["run", "--agent", "shell", "for i in $(seq 1 120); do echo tick $i; sleep 0.5; done"], env);
    let runId = "";
    for (let i = 0; i < 100 && !runId; i++) {
      const list = await runCli(["runs", "--status", "running", "--limit", "5"], env);
      runId = /^(run_\S+)\s+shell\s+running/m.exec(list.stdout)?.[1] ?? "";
      if (!runId) await new Promise((r) => setTimeout(r, 100));
    }
    assert.ok(runId, "the run shows up as running");
    const follow = runCli(["logs", "-f", runId], env);
    await new Promise((r) => setTimeout(r, 1200));
    const cancel = await runCli(["cancel", runId], env);
    assert.equal(cancel.code, 0, cancel.stderr);
    assert.equal(cancel.stdout, `cancel requested for ${runId}\n`);

    const [followed, run] = await Promise.all([follow, started]);
    assert.equal(followed.code, 0, followed.stderr);
    assert.match(followed.stdout, /stdout│ tick 1/);
    assert.match(followed.stdout, /■ cancel/);
    assert.equal(run.code, 1, "a cancelled run exits 1");
    assert.match(run.stdout, /■ cancel/);

    const all = await runCli(["runs", "--all", "--limit", "1"], env);
    assert.equal(all.code, 0, all.stderr);
    assert.match(all.stdout, new RegExp(`^${runId}\\s+shell\\s+cancelled`, "m"));
  });

  test("users add, list, rm", async () => {
    const name = `u${Date.now().toString(36)}`;
    const add = await runCli(["users", "add", name, "--role", "user", "--password-stdin"], env, "a-long-password\n");
    assert.equal(add.code, 0, add.stderr);
    const id = /\((usr_[^)]+)\)/.exec(add.stdout)?.[1];
    assert.ok(id, add.stdout);
    const again = await runCli(["users", "add", name, "--password-stdin"], env, "a-long-password\n");
    assert.equal(again.code, 1);
    assert.match(again.stderr, /^error: username_taken: /);
    const list = await runCli(["users", "list"], env);
    assert.match(list.stdout, new RegExp(`^${id}\\s+${name}\\s+user`, "m"));
    const rm = await runCli(["users", "rm", id], env);
    assert.equal(rm.code, 0, rm.stderr);
    assert.ok(!(await runCli(["users", "list"], env)).stdout.includes(name));
  });

  test("errors: API error, not logged in, connection refused, bad usage", async () => {
    const missing = await runCli(["logs", "run_doesnotexist"], env);
    assert.equal(missing.code, 1);
    assert.equal(missing.stderr, "error: not_found: run not found\n");

    const anon = await runCli(["runs"], { XDG_CONFIG_HOME: path.join(cfg, "none"), OPENRUNNER_URL: s.url });
    assert.equal(anon.code, 1);
    assert.match(anon.stderr, /^error: unauthorized: .*openrunner login.*\n$/);

    const refused = await runCli(["runs", "--server", "http://127.0.0.1:1"], env);
    assert.equal(refused.code, 1);
    assert.equal(refused.stderr.split("\n").filter(Boolean).length, 1, refused.stderr);
    assert.match(refused.stderr, /^error: cannot reach the OpenRunner server at http:\/\/127\.0\.0\.1:1/);

    assert.equal((await runCli(["run", "no agent given"], env)).code, 2);
    // --acp-agent reaches metadata.acp_agent: without it the server would answer acp_agent_required.
    const acp = await runCli(["run", "--agent", "acp", "--acp-agent", "no-such-agent", "hello"], env);
    assert.equal(acp.code, 1);
    assert.match(acp.stderr, /^error: unknown_acp_agent: .*no-such-agent/, acp.stderr);
    assert.equal((await runCli(["run", "--agent", "shell", "--isolation", "sideways", "true"], env)).code, 2);
    assert.equal((await runCli(["run", "--agent", "acp", "--acp-agent", "x", "--permission-policy", "maybe", "hi"], env)).code, 2);
    assert.equal((await runCli(["runs", "--limit", "0"], env)).code, 2);
    assert.equal((await runCli(["runs", "--status", "bogus"], env)).code, 2);
  });
});

describe("SSE client reconnects", () => {
  test("after a dropped connection and after stream.lagged, with Last-Event-ID, no duplicates", async () => {
    const ev = (id: number, type = "log", data: unknown = { stream: "stdout", text: `line ${id}` }) =>
      `id: ${id}\nevent: ${type}\ndata: ${JSON.stringify({ id, run_id: "run_x", ts: "2026-11-22T10:00:00.000Z", type, data })}\n\n`;
    const seen: (string | undefined)[] = [];
    const server = http.createServer((req, res) => {
      const last = req.headers["last-event-id"] as string | undefined;
      seen.push(last);
      res.writeHead(200, { "content-type": "text/event-stream" });
      if (seen.length === 1) return res.end(ev(1) + ev(2)); // drops before the run ends
      if (seen.length === 2) return res.end(ev(2) + ev(3) + `event: stream.lagged\ndata: {"last_event_id":3}\n\n`);
      res.end(ev(3) + ev(4, "run.completed", { exit_code: 0, duration_ms: 5 }));
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    try {
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
      const client = createApiClient({ env: {}, stdin: process.stdin, stdout: process.stdout, stderr: process.stderr }, { server: url, token: "t" });
      const got: number[] = [];
      const reasons: string[] = [];
      const last = await followRunEvents(client, "run_x", {
        onEvent: (e) => got.push(e.id),
        onReconnect: (after, why) => reasons.push(`${why}@${after}`),
        retryDelayMs: () => 10,
      });
      assert.equal(last.type, "run.completed");
      assert.deepEqual(got, [1, 2, 3, 4]);
      assert.deepEqual(seen, [undefined, "2", "3"]);
      assert.deepEqual(reasons, ["disconnected@2", "lagged@3"]);
    } finally {
      server.close();
    }
  });
});
