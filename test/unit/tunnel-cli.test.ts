/**
 * `openrunner tunnel server|client` (src/cli/tunnel.ts) on a commander program
 * like main.ts builds: flags parsed, relay and client started on loopback
 * (ports 0), handles handed to `keepAlive`; a bad secret is a usage error (2).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { once } from "node:events";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import { Command } from "commander";
import { registerTunnelCommands, type Closable, type TunnelCliContext } from "../../src/cli/tunnel.ts";

function makeCtx() {
  const out: string[] = [];
  const err: string[] = [];
  const handles: Closable[] = [];
  const outcomes: number[] = [];
  const ctx: TunnelCliContext = {
    env: {},
    stdin: process.stdin,
    stdout: { write: (s: string) => (out.push(s), true) },
    stderr: { write: (s: string) => (err.push(s), true) },
    setOutcome: (c) => outcomes.push(c),
    keepAlive: (h) => handles.push(h),
    exit: (c) => outcomes.push(c),
  };
  return { ctx, out, err, handles, outcomes };
}

const run = async (ctx: TunnelCliContext, args: string[]) => {
  const program = new Command("openrunner").exitOverride();
  registerTunnelCommands(program, ctx);
  await program.parseAsync(["node", "openrunner", ...args]);
};

test("tunnel server + tunnel client from the command line serve HTTP", async () => {
  const app = http.createServer((req, res) => res.end(`hi ${req.url}`)).listen(0, "127.0.0.1");
  await once(app, "listening");
  const s = makeCtx();
  const secret = "cli-secret-0123456789";
  await run(s.ctx, ["tunnel", "server", "--host", "127.0.0.1", "--control-port", "0", "--proxy-port", "0", "--public-port", "0", "--pool-size", "2", "--secret", secret, "--log-level", "fatal"]);
  assert.deepEqual(s.outcomes, [], s.err.join(""));
  const m = /control (\d+), proxy (\d+), public (\d+)/.exec(s.out.join(""));
  assert.ok(m, s.out.join(""));
  const c = makeCtx();
  await run(c.ctx, ["tunnel", "client", "--server", `127.0.0.1:${m[1]}`, "--client-id", "cli", "--local-port", String((app.address() as AddressInfo).port), "--secret", secret, "--log-level", "fatal"]);
  try {
    const end = Date.now() + 3000;
    while (!c.out.join("").includes("registered")) {
      assert.ok(Date.now() < end, "client registered");
      await sleep(10);
    }
    const body = await new Promise<string>((resolve, reject) =>
      http.get({ host: "127.0.0.1", port: Number(m[3]), path: "/x?token=cli", agent: false }, (res) => {
        let b = "";
        res.on("data", (d: Buffer) => (b += d));
        res.on("end", () => resolve(b));
      }).on("error", reject),
    );
    assert.equal(body, "hi /x");
  } finally {
    for (const h of [...c.handles, ...s.handles]) await h.close();
    app.close();
  }
});

test("a missing or short secret is a configuration error (exit 2)", async () => {
  const s = makeCtx();
  await run(s.ctx, ["tunnel", "server", "--host", "127.0.0.1", "--control-port", "0", "--proxy-port", "0", "--public-port", "0", "--secret", "short", "--log-level", "fatal"]);
  assert.deepEqual(s.outcomes, [2]);
  assert.match(s.err.join(""), /at least 16 characters/);
  const c = makeCtx();
  await run(c.ctx, ["tunnel", "client", "--server", "127.0.0.1", "--log-level", "fatal"]);
  assert.deepEqual(c.outcomes, [2]);
});
