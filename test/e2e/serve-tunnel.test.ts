/**
 * `openrunner serve --tunnel-server`: the server's own API reached through a
 * real relay (in this process) on loopback, with the real server as a child.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import http from "node:http";
import os from "node:os";
import path from "node:path";
import { startTunnelServer } from "../../src/tunnel/server.ts";
import { spawnServer } from "../helpers/spawn-server.ts";

const SECRET = "serve-tunnel-secret-0123456789abcdef";

test("serve --tunnel-server exposes the API through the relay; the relay's token never reaches the API", async () => {
  const relay = await startTunnelServer({ host: "127.0.0.1", controlPort: 0, proxyPort: 0, publicPort: 0, auth: { kind: "secret", secret: SECRET } });
  const dir = mkdtempSync(path.join(os.tmpdir(), "openrunner-serve-tunnel-"));
  const secretFile = path.join(dir, "secret");
  writeFileSync(secretFile, `${SECRET}\n`, { mode: 0o600 });
  const s = await spawnServer({ args: ["--tunnel-server", `127.0.0.1:${relay.ports.control}`, "--tunnel-client-id", "orch-1", "--tunnel-secret-file", secretFile] });
  try {
    const publicUrl = `http://127.0.0.1:${relay.ports.public}`;
    let health: Response | undefined;
    for (let i = 0; i < 100; i++) {
      health = await fetch(`${publicUrl}/health?token=orch-1`).catch(() => undefined);
      if (health?.status === 200) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.equal(health?.status, 200, s.output());
    assert.equal(((await health!.json()) as { status: string }).status, "ok");
    // A whole API flow through the tunnel: login, then a run.
    const login = await fetch(`${publicUrl}/api/auth/login?token=orch-1`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ username: "admin", password: "test-admin-password-1" }),
    });
    assert.equal(login.status, 200);
    // Routing is per connection (the first request's token): ask on a fresh connection.
    const wrong = await new Promise<number>((resolve, reject) =>
      http.get(`${publicUrl}/health?token=someone-else`, { agent: false }, (res) => (res.resume(), resolve(res.statusCode ?? 0))).on("error", reject),
    );
    assert.notEqual(wrong, 200, "another client id does not reach this server");
    assert.equal(await s.stop(), 0, "shutdown closes the tunnel client and the server");
  } finally {
    await s.stop();
    s.cleanup();
    await relay.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
