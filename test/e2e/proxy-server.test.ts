/**
 * The port proxy wired into the real server (child process): proxy paths are
 * dispatched before Koa, so bodies stream through untouched.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { spawnServer } from "../helpers/spawn-server.ts";

test("real server: /proxy/:port/* reaches an allowed local port with auth; others refused", async () => {
  const seen: Array<{ url: string; auth?: string }> = [];
  const target = http.createServer((req, res) => {
    seen.push({ url: req.url ?? "", ...(req.headers.authorization ? { auth: req.headers.authorization } : {}) });
    let body = "";
    req.setEncoding("utf8").on("data", (d: string) => (body += d));
    req.on("end", () => {
      res.setHeader("Content-Type", "text/plain");
      res.end(`${req.method} ${req.url} ${body.length}`);
    });
  });
  await new Promise<void>((r) => target.listen(0, "127.0.0.1", r));
  const port = (target.address() as AddressInfo).port;
  const s = await spawnServer({ env: { OPENRUNNER_PROXY_ALLOWED_PORTS: String(port) } });
  try {
    const token = await s.login();
    const get = await s.api(`/proxy/${port}/hello?x=1`, { token });
    assert.equal(get.status, 200);
    assert.equal(await get.text(), "GET /hello?x=1 0");
    const post = await s.api(`/proxy/${port}/upload`, { method: "POST", token, body: "y".repeat(2_000_000), headers: { "Content-Type": "application/octet-stream" } });
    assert.equal(post.status, 200, "a proxied body is not parsed by the API's JSON body parser");
    assert.equal(await post.text(), "POST /upload 2000000");
    const viaQuery = await s.api(`/proxy/${port}/q?access_token=${encodeURIComponent(token)}`);
    assert.equal(viaQuery.status, 200);
    assert.equal(await viaQuery.text(), "GET /q 0", "the access token never reaches the target");
    assert.ok(seen.every((r) => r.auth === undefined), "the bearer token never reaches the target");
    assert.equal((await s.api(`/proxy/${port}/hello`)).status, 401);
    assert.equal((await s.api(`/proxy/${port === 65535 ? 65534 : port + 1}/hello`, { token })).status, 403);
    const metrics = await (await s.api("/metrics")).text();
    assert.match(metrics, /openrunner_proxy_requests_total\{route="port",status="200"/);
    const api = await s.api("/health");
    assert.equal(api.status, 200, "the API still answers next to the proxy");
  } finally {
    await s.stop();
    s.cleanup();
    await new Promise((r) => target.close(r));
  }
});
