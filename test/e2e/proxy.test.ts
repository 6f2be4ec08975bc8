/**
 * Port proxy end to end on loopback (ports 0): the real app
 * (`createApp(createAppDeps(...), [proxy])`) behind a node:http server that
 * dispatches proxy paths first and attaches the proxy's upgrade handler, as
 * server.ts does; a local target app. Covers streamed bodies both ways with
 * bounded memory, SSE unbuffered, a WebSocket echo, Location and cookie
 * rewriting, hop-by-hop and credential stripping, X-Forwarded-*, upstream
 * keep-alive despite `Connection: close`, every SSRF attempt refused, 502/504,
 * 401/404/409, and the preview-link flow (expiry and scope).
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { once } from "node:events";
import http from "node:http";
import net, { type AddressInfo } from "node:net";
import os from "node:os";
import { Readable } from "node:stream";
import { setTimeout as sleep } from "node:timers/promises";
import { Value } from "@sinclair/typebox/value";
import { createApp, createAppDeps } from "../../src/api/app.ts";
import type { AppDeps } from "../../src/api/context.ts";
import { createProxyRoutes, type ProxyRouteModule } from "../../src/api/routes/proxy.ts";
import { Bus } from "../../src/bus/bus.ts";
import { ConfigSchema, type Config } from "../../src/config/schema.ts";
import { parsePortList } from "../../src/config/proxy-schema.ts";
import { ConfigError, NotFoundError } from "../../src/errors.ts";
import { createSilentLogger } from "../../src/log.ts";
import type { ProxyBusEvents } from "../../src/proxy/events.ts";
import { openSqliteStore } from "../../src/store/sqlite.ts";
import { generateApiKey } from "../../src/auth/api-keys.ts";
import type { RunRow, Store } from "../../src/store/types.ts";
import { acceptEchoUpgrade, openWs } from "../helpers/ws-frames.ts";

const HOST = "127.0.0.1";
const TIMEOUT_MS = 400;

async function listen(server: net.Server): Promise<number> {
  server.listen(0, HOST);
  await once(server, "listening");
  return (server.address() as AddressInfo).port;
}

/** A port nothing listens on (bound, then released). */
async function freePort(): Promise<number> {
  const s = net.createServer();
  const port = await listen(s);
  await new Promise((r) => s.close(r));
  return port;
}

interface Seen {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  remotePort: number;
}

/** The target app. Records every request it sees. */
function createTarget(seen: Seen[]): http.Server {
  const server = http.createServer((req, res) => {
    seen.push({ method: req.method!, url: req.url!, headers: req.headers, remotePort: req.socket.remotePort! });
    const url = new URL(req.url!, "http://x");
    switch (url.pathname) {
      case "/echo":
        res.writeHead(200, { "content-type": "application/json", "keep-alive": "timeout=5", "x-hop": "1", connection: "x-hop" });
        req.resume();
        req.on("end", () => res.end(JSON.stringify({ method: req.method, url: req.url, headers: req.headers })));
        return;
      case "/upload": {
        let n = 0;
        req.on("data", (d: Buffer) => (n += d.length));
        req.on("end", () => res.end(JSON.stringify({ bytes: n })));
        return;
      }
      case "/big": {
        let left = Number(url.searchParams.get("bytes"));
        const chunk = Buffer.alloc(64 * 1024, 0x61);
        res.writeHead(200, { "content-length": String(left), "content-type": "application/octet-stream" });
        const pump = () => {
          while (left > 0) {
            const n = Math.min(left, chunk.length);
            left -= n;
            if (!res.write(n === chunk.length ? chunk : chunk.subarray(0, n))) return void res.once("drain", pump);
          }
          res.end();
        };
        pump();
        return;
      }
      case "/sse":
        res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache" });
        res.write("data: first\n\n");
        setTimeout(() => res.end("data: second\n\n"), 700);
        return;
      case "/redirect":
        res.writeHead(302, { location: url.searchParams.get("to") ?? "/login" });
        res.end();
        return;
      case "/cookie":
        res.writeHead(200, {
          "set-cookie": ["sid=1; Path=/; Domain=localhost; HttpOnly", "pref=2; Path=/app", "nopath=3", "openrunner_preview=forged; Path=/"],
        });
        res.end("ok");
        return;
      case "/slow":
        setTimeout(() => res.end("late"), TIMEOUT_MS * 4).unref();
        return;
      default:
        res.writeHead(404);
        res.end("target: not found");
    }
  });
  server.on("upgrade", (req, socket, head) => {
    seen.push({ method: "UPGRADE", url: req.url!, headers: req.headers, remotePort: 0 });
    acceptEchoUpgrade(req, socket, head, ["Set-Cookie: ws=1; Path=/"]);
  });
  server.keepAliveTimeout = 30_000;
  return server;
}

/** One HTTP request to the proxy server; resolves with status, headers and body text. */
function request(
  port: number,
  path: string,
  opts: { method?: string; headers?: Record<string, string>; body?: string | Readable; agent?: http.Agent } = {},
): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: HOST, port, path, method: opts.method ?? "GET", headers: opts.headers, agent: opts.agent ?? false }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks).toString() }));
      res.on("error", reject);
    });
    req.on("error", reject);
    if (opts.body instanceof Readable) opts.body.pipe(req);
    else req.end(opts.body);
  });
}

/** Sends raw bytes; resolves with everything the server sent until it closed (or 2 s). */
function raw(port: number, text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, HOST);
    const chunks: Buffer[] = [];
    s.on("data", (d: Buffer) => chunks.push(d));
    s.on("error", reject);
    s.on("close", () => resolve(Buffer.concat(chunks).toString()));
    s.setTimeout(2000, () => s.destroy());
    s.write(text);
  });
}

const statusOf = (rawResponse: string) => Number(/^HTTP\/1\.1 (\d{3})/.exec(rawResponse)?.[1] ?? 0);

/** A readable of `total` bytes in 64 KiB chunks, generated on demand. */
function generated(total: number): Readable {
  const chunk = Buffer.alloc(64 * 1024, 0x62);
  let left = total;
  return new Readable({
    read() {
      if (left <= 0) return void this.push(null);
      const n = Math.min(left, chunk.length);
      left -= n;
      this.push(n === chunk.length ? chunk : chunk.subarray(0, n));
    },
  });
}

describe("port proxy", () => {
  let store: Store;
  let deps: AppDeps;
  let proxy: ProxyRouteModule;
  let server: http.Server;
  let target: http.Server;
  let port = 0; // OpenRunner
  let tport = 0; // target
  let downPort = 0;
  let notAllowedTarget: http.Server;
  let notAllowedPort = 0;
  const seen: Seen[] = [];
  const events: Array<{ topic: string; payload: unknown }> = [];
  let aliceToken = "";
  let bobToken = "";
  let aliceId = "";
  let hostRun = "";
  let dockerRun = "";
  let bobRun = "";

  const lastSeen = () => seen[seen.length - 1]!;
  const bearer = (t: string) => ({ authorization: `Bearer ${t}` });

  before(async () => {
    target = createTarget(seen);
    tport = await listen(target);
    downPort = await freePort();
    notAllowedTarget = createTarget([]);
    notAllowedPort = await listen(notAllowedTarget);

    store = openSqliteStore({ file: ":memory:" });
    const alice = await store.users.create({ username: "alice", password_hash: "x", role: "user" });
    const bob = await store.users.create({ username: "bob", password_hash: "x", role: "user" });
    aliceId = alice.id;
    const mkRun = (id: string, user: string, isolation: string) =>
      store.runs.insert({ id, user_id: user, agent: "shell", status: "running", input: { text: "x" }, metadata: { isolation }, cwd: "/w", created_at: new Date().toISOString() });
    hostRun = (await mkRun("run_host", alice.id, "none")).id;
    dockerRun = (await mkRun("run_docker", alice.id, "docker")).id;
    bobRun = (await mkRun("run_bob", bob.id, "none")).id;

    const bus = new Bus();
    const config: Config = { ...Value.Create(ConfigSchema), jwt_secret: "proxy-test-secret-0123456789abcdefghijkl" };
    deps = createAppDeps({ config, store, bus, log: createSilentLogger(), dataDir: os.tmpdir(), version: "test", listAgentHealth: async () => [] });
    aliceToken = deps.jwt.sign({ id: alice.id, role: "user", username: "alice" });
    bobToken = deps.jwt.sign({ id: bob.id, role: "user", username: "bob" });
    const runs = {
      async get(caller: { id: string; role: string }, id: string): Promise<RunRow> {
        const row = await store.runs.get(id);
        if (!row || (caller.role !== "admin" && row.user_id !== caller.id)) throw new NotFoundError("run");
        return row;
      },
    };
    proxy = createProxyRoutes(deps, {
      runs,
      settings: { allowed_ports: `${tport},${downPort}`, timeout_ms: TIMEOUT_MS },
      publish: <T extends keyof ProxyBusEvents>(topic: T, payload: ProxyBusEvents[T]) => void events.push({ topic, payload }),
    });
    const koa = createApp(deps, [proxy]).callback();
    server = http.createServer((req, res) => proxy.handleRequest(req, res) || void koa(req, res));
    server.on("upgrade", (req, socket, head) => proxy.handleUpgrade(req, socket, head) || socket.destroy());
    port = await listen(server);
  });

  after(async () => {
    proxy.close();
    server.closeAllConnections();
    target.closeAllConnections();
    notAllowedTarget.closeAllConnections();
    await Promise.all([server, target, notAllowedTarget].map((s) => new Promise((r) => s.close(r))));
    await store.close();
  });

  test("parsePortList parses lists and ranges and names the setting on errors", () => {
    assert.deepEqual(parsePortList("5173, 8000-8002,5173"), [5173, 8000, 8001, 8002]);
    assert.deepEqual(parsePortList(" "), []);
    for (const bad of ["0", "65536", "80-70", "5173,", "abc", "1-70000", "0x50"]) {
      assert.throws(() => parsePortList(bad), (e: unknown) => e instanceof ConfigError && /proxy\.allowed_ports/.test(e.message), bad);
    }
  });

  test("GET is forwarded with the prefix stripped, hop-by-hop removed, X-Forwarded-* set, credentials removed", async () => {
    const r = await request(port, `/proxy/${tport}/echo?a=1&access_token=${aliceToken}&b=%20x`, {
      headers: {
        cookie: "app=1; openrunner_preview=zzz; other=2",
        connection: "keep-alive, x-private",
        "x-private": "secret",
        "proxy-authorization": "Basic Zm9vOmJhcg==",
        te: "trailers",
        "x-forwarded-for": "6.6.6.6",
        host: "openrunner.example:8443",
      },
    });
    assert.equal(r.status, 200);
    const got = lastSeen();
    assert.equal(got.url, "/echo?a=1&b=%20x");
    assert.equal(got.headers.authorization, undefined);
    assert.equal(got.headers.cookie, "app=1; other=2");
    assert.equal(got.headers["x-private"], undefined);
    assert.equal(got.headers["proxy-authorization"], undefined);
    assert.equal(got.headers.te, undefined);
    assert.equal(got.headers["x-forwarded-for"], "127.0.0.1");
    assert.equal(got.headers["x-forwarded-proto"], "http");
    assert.equal(got.headers["x-forwarded-host"], "openrunner.example:8443");
    assert.equal(got.headers["x-forwarded-prefix"], `/proxy/${tport}`);
    assert.equal(got.headers.host, `127.0.0.1:${tport}`);
    assert.ok(!JSON.stringify(got).includes(aliceToken), "the token reached the target");
    // Response hop-by-hop headers are gone.
    assert.equal(r.headers["x-hop"], undefined);
    assert.equal(r.headers["keep-alive"], undefined);
  });

  test("the Bearer token never reaches the target; other methods work", async () => {
    for (const method of ["DELETE", "PUT", "PATCH", "OPTIONS", "HEAD"]) {
      const r = await request(port, `/proxy/${tport}/echo`, { method, headers: bearer(aliceToken) });
      assert.equal(r.status, 200, method);
      assert.equal(lastSeen().method, method);
      assert.equal(lastSeen().headers.authorization, undefined);
    }
    const r = await request(port, `/proxy/${tport}/upload`, { method: "POST", headers: { ...bearer(aliceToken), "content-type": "text/plain" }, body: "hello" });
    assert.deepEqual(JSON.parse(r.body), { bytes: 5 });
  });

  test("a client's Connection: close does not close the pooled upstream connection", async () => {
    const before = seen.length;
    for (let i = 0; i < 5; i++) {
      const r = await request(port, `/proxy/${tport}/echo`, { headers: { ...bearer(aliceToken), connection: "close" } });
      assert.equal(r.status, 200);
      assert.equal(r.headers.connection, "close");
    }
    const ports = new Set(seen.slice(before).map((s) => s.remotePort));
    assert.equal(ports.size, 1, `upstream connections used: ${ports.size}`);
    assert.equal(seen[seen.length - 1]!.headers.connection, "keep-alive");
  });

  test("a 300 MB upload and a 300 MB download stream with bounded memory", async () => {
    const SIZE = 300 * 1024 * 1024;
    global.gc?.();
    const base = process.memoryUsage().rss;
    let peak = base;
    const timer = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 20);
    try {
      const up = await request(port, `/proxy/${tport}/upload`, { method: "POST", headers: { ...bearer(aliceToken), "content-type": "application/octet-stream" }, body: generated(SIZE) });
      assert.deepEqual(JSON.parse(up.body), { bytes: SIZE });
      const down = await new Promise<number>((resolve, reject) => {
        http.get({ host: HOST, port, path: `/proxy/${tport}/big?bytes=${SIZE}`, headers: bearer(aliceToken), agent: false }, (res) => {
          let n = 0;
          res.on("data", (d: Buffer) => (n += d.length));
          res.on("end", () => resolve(n));
          res.on("error", reject);
        }).on("error", reject);
      });
      assert.equal(down, SIZE);
    } finally {
      clearInterval(timer);
    }
    const growthMb = (peak - base) / 1024 / 1024;
    assert.ok(growthMb < 150, `RSS grew by ${growthMb.toFixed(0)} MB`);
  });

  test("SSE passes through unbuffered: the first event arrives before the target ends", async () => {
    const started = Date.now();
    const first = await new Promise<{ at: number; text: string; headers: http.IncomingHttpHeaders; rest: Promise<string> }>((resolve, reject) => {
      http.get({ host: HOST, port, path: `/proxy/${tport}/sse`, headers: bearer(aliceToken), agent: false }, (res) => {
        let text = "";
        const rest = new Promise<string>((r) => res.on("end", () => r(text)));
        res.setEncoding("utf8");
        res.once("data", (d: string) => {
          text += d;
          res.on("data", (more: string) => (text += more));
          resolve({ at: Date.now() - started, text: d, headers: res.headers, rest });
        });
      }).on("error", reject);
    });
    assert.match(first.text, /data: first/);
    assert.doesNotMatch(first.text, /second/, "the first event arrived on its own: nothing buffered it");
    assert.equal(first.headers["content-type"], "text/event-stream");
    assert.match(await first.rest, /data: second/);
  });

  test("a WebSocket echo works through the proxy (token removed; 401 and 502 on the upgrade path)", async () => {
    const ws = await openWs(port, `/proxy/${tport}/ws?access_token=${aliceToken}`);
    try {
      assert.equal(ws.response.status, 101, ws.response.headers);
      // The 101 response's cookies are moved under the prefix too.
      assert.match(ws.response.headers, new RegExp(`set-cookie: ws=1; Path=/proxy/${tport}/`, "i"));
      assert.equal(await ws.roundTrip("hello"), "hello");
      assert.equal(await ws.roundTrip("x".repeat(2000)), "x".repeat(2000));
      const up = seen.filter((s) => s.method === "UPGRADE").pop()!;
      assert.equal(up.url, "/ws");
      assert.equal(up.headers["x-forwarded-prefix"], `/proxy/${tport}`);
    } finally {
      ws.close();
    }
    const anon = await openWs(port, `/proxy/${tport}/ws`);
    assert.equal(anon.response.status, 401);
    anon.close();
    const down = await openWs(port, `/proxy/${downPort}/ws`, bearer(aliceToken));
    assert.equal(down.response.status, 502);
    down.close();
  });

  test("redirects and Set-Cookie paths are rewritten under the prefix", async () => {
    const p = `/proxy/${tport}`;
    const cases: Array<[string, string]> = [
      ["/login", `${p}/login`],
      [`http://127.0.0.1:${tport}/a?b=1`, `${p}/a?b=1`],
      [`http://localhost:${tport}/`, `${p}/`],
      ["relative/x", "relative/x"],
      ["https://example.com/", "https://example.com/"],
      ["//evil.example/x", "//evil.example/x"],
    ];
    for (const [to, want] of cases) {
      const r = await request(port, `${p}/redirect?to=${encodeURIComponent(to)}`, { headers: bearer(aliceToken) });
      assert.equal(r.status, 302);
      assert.equal(r.headers.location, want, to);
    }
    const c = await request(port, `${p}/cookie`, { headers: bearer(aliceToken) });
    assert.deepEqual(c.headers["set-cookie"], [`sid=1; Path=${p}/; HttpOnly`, `pref=2; Path=${p}/app`, "nopath=3"]);
  });

  test("a bare prefix redirects to the prefix with a slash", async () => {
    const r = await request(port, `/proxy/${tport}?x=1`, { headers: bearer(aliceToken) });
    assert.equal(r.status, 308);
    assert.equal(r.headers.location, `/proxy/${tport}/?x=1`);
  });

  test("target down: 502 upstream_unavailable; slow target: 504 upstream_timeout", async () => {
    const down = await request(port, `/proxy/${downPort}/`, { headers: bearer(aliceToken) });
    assert.equal(down.status, 502);
    assert.equal(JSON.parse(down.body).error.code, "upstream_unavailable");
    const slow = await request(port, `/proxy/${tport}/slow`, { headers: bearer(aliceToken) });
    assert.equal(slow.status, 504);
    assert.equal(JSON.parse(slow.body).error.code, "upstream_timeout");
    assert.ok(events.some((e) => e.topic === "proxy.error" && (e.payload as { code: string }).code === "upstream_timeout"));
    assert.ok(events.some((e) => e.topic === "proxy.request"));
  });

  test("unauthenticated: 401 (also for bad tokens, and before any path validation)", async () => {
    for (const path of [`/proxy/${tport}/echo`, `/proxy/${notAllowedPort}/echo`, "/proxy/%35173/", `/api/runs/${hostRun}/proxy/${tport}/`]) {
      const r = await request(port, path);
      assert.equal(r.status, 401, path);
      assert.equal(JSON.parse(r.body).error.code, "unauthorized");
    }
    const bad = await request(port, `/proxy/${tport}/echo`, { headers: bearer("nope") });
    assert.equal(bad.status, 401);
  });

  test("SSRF attempts are refused and never reach another address", async () => {
    const before = seen.length;
    const auth = `Authorization: Bearer ${aliceToken}\r\n`;
    const attempts: Array<[string, number]> = [
      [`/proxy/${notAllowedPort}/echo`, 403],
      [`/proxy/%3${String(tport)[0]}${String(tport).slice(1)}/echo`, 400], // %3X is the digit X
      [`/proxy/0${tport}/echo`, 400],
      [`/proxy/+${tport}/echo`, 400],
      [`/proxy/${tport}.0/echo`, 400],
      [`/proxy/0x${tport.toString(16)}/echo`, 400],
      [`/proxy/[::1]:${tport}/echo`, 400],
      [`/proxy/::ffff:127.0.0.1/echo`, 400],
      [`/proxy/localhost:${tport}/echo`, 400],
      [`/proxy/${tport}@evil/echo`, 400],
      [`/proxy/${tport}/../${notAllowedPort}/echo`, 400],
      [`/proxy/${tport}/%2e%2e/${notAllowedPort}/echo`, 400],
      [`/proxy/${tport}/..%2f${notAllowedPort}/echo`, 400],
      [`/proxy/${tport}/a\\..\\b`, 400],
      [`/proxy/99999/`, 400],
    ];
    for (const [path, want] of attempts) {
      const res = await raw(port, `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n${auth}Connection: close\r\n\r\n`);
      assert.equal(statusOf(res), want, `${path}: ${res.slice(0, 200)}`);
    }
    // Host header tricks: the target is never taken from Host.
    const viaHost = await raw(port, `GET /proxy/${tport}/echo HTTP/1.1\r\nHost: 127.0.0.1:${notAllowedPort}\r\n${auth}Connection: close\r\n\r\n`);
    assert.equal(statusOf(viaHost), 200);
    assert.equal(lastSeen().headers.host, `127.0.0.1:${tport}`);
    // Absolute-form request line.
    const absolute = await raw(port, `GET http://127.0.0.1:${notAllowedPort}/proxy/${tport}/echo HTTP/1.1\r\nHost: evil\r\n${auth}Connection: close\r\n\r\n`);
    assert.equal(statusOf(absolute), 400);
    const absoluteOther = await raw(port, `GET http://evil.example/proxy/${notAllowedPort}/ HTTP/1.1\r\nHost: evil\r\n${auth}Connection: close\r\n\r\n`);
    assert.equal(statusOf(absoluteOther), 400);
    // Only the one valid Host-trick request reached the target.
    assert.equal(seen.length, before + 1);
  });

  test("run routes: host run forwarded, another user's run 404, docker run 409, port allowlist applies", async () => {
    const ok = await request(port, `/api/runs/${hostRun}/proxy/${tport}/echo?q=1`, { headers: bearer(aliceToken) });
    assert.equal(ok.status, 200);
    assert.equal(lastSeen().url, "/echo?q=1");
    assert.equal(lastSeen().headers["x-forwarded-prefix"], `/api/runs/${hostRun}/proxy/${tport}`);
    const red = await request(port, `/api/runs/${hostRun}/proxy/${tport}/redirect?to=/x`, { headers: bearer(aliceToken) });
    assert.equal(red.headers.location, `/api/runs/${hostRun}/proxy/${tport}/x`);
    const other = await request(port, `/api/runs/${bobRun}/proxy/${tport}/echo`, { headers: bearer(aliceToken) });
    assert.equal(other.status, 404);
    const missing = await request(port, `/api/runs/run_nope/proxy/${tport}/echo`, { headers: bearer(aliceToken) });
    assert.equal(missing.status, 404);
    const docker = await request(port, `/api/runs/${dockerRun}/proxy/${tport}/echo`, { headers: bearer(aliceToken) });
    assert.equal(docker.status, 409);
    assert.equal(JSON.parse(docker.body).error.code, "proxy_unavailable");
    const notAllowed = await request(port, `/api/runs/${hostRun}/proxy/${notAllowedPort}/echo`, { headers: bearer(aliceToken) });
    assert.equal(notAllowed.status, 403);
    const bobOwn = await request(port, `/api/runs/${bobRun}/proxy/${tport}/echo`, { headers: bearer(bobToken) });
    assert.equal(bobOwn.status, 200);
  });

  test("preview links: redeem sets a scoped cookie and redirects; the cookie authenticates; scope and expiry hold", async () => {
    const create = await request(port, `/api/runs/${hostRun}/preview-links`, {
      method: "POST",
      headers: { ...bearer(aliceToken), "content-type": "application/json" },
      body: JSON.stringify({ port: tport, ttl_secs: 60 }),
    });
    assert.equal(create.status, 201, create.body);
    const link = JSON.parse(create.body) as { url: string; path: string; expires_at: string };
    assert.ok(Date.parse(link.expires_at) > Date.now());
    assert.ok(link.url.endsWith(link.path));
    const redeem = await request(port, link.path);
    assert.equal(redeem.status, 302);
    assert.equal(redeem.headers.location, `/api/runs/${hostRun}/proxy/${tport}/`);
    const setCookie = redeem.headers["set-cookie"]![0]!;
    assert.match(setCookie, new RegExp(`^openrunner_preview=[^;]+; Path=/api/runs/${hostRun}/proxy/${tport}; Max-Age=\\d+; HttpOnly; SameSite=Lax`));
    const cookie = setCookie.split(";")[0]!;
    // The cookie authenticates; it and the app's own Authorization header are handled correctly.
    const viaCookie = await request(port, `/api/runs/${hostRun}/proxy/${tport}/echo`, { headers: { cookie: `${cookie}; app=1`, authorization: "Basic YXBwOmFwcA==" } });
    assert.equal(viaCookie.status, 200);
    assert.equal(lastSeen().headers.cookie, "app=1");
    assert.equal(lastSeen().headers.authorization, "Basic YXBwOmFwcA==");
    // A cross-origin request with the cookie is refused.
    const cross = await request(port, `/api/runs/${hostRun}/proxy/${tport}/echo`, { headers: { cookie, origin: "http://evil.example" } });
    assert.equal(cross.status, 401);
    // WebSocket with the cookie.
    const ws = await openWs(port, `/api/runs/${hostRun}/proxy/${tport}/ws`, { cookie });
    assert.equal(ws.response.status, 101);
    assert.equal(await ws.roundTrip("via cookie"), "via cookie");
    ws.close();
    // Scope: not another port, not the global route, not another run, not the API.
    const token = decodeURIComponent(cookie.slice("openrunner_preview=".length));
    const otherPort = await request(port, `/api/runs/${hostRun}/proxy/${downPort}/`, { headers: { cookie } });
    assert.equal(otherPort.status, 401);
    const global = await request(port, `/proxy/${tport}/echo`, { headers: { cookie } });
    assert.equal(global.status, 401);
    const asApi = await request(port, `/api/auth/me`, { headers: bearer(token) });
    assert.equal(asApi.status, 401);
    const asAccessToken = await request(port, `/proxy/${tport}/echo?access_token=${token}`);
    assert.equal(asAccessToken.status, 401);
    const otherRun = await request(port, `/api/runs/${bobRun}/proxy/${tport}/?openrunner_preview=${token}`);
    assert.equal(otherRun.status, 401);
    // Tampered token.
    const tampered = await request(port, `/api/runs/${hostRun}/proxy/${tport}/echo`, { headers: { cookie: `${cookie.slice(0, -2)}xx` } });
    assert.equal(tampered.status, 401);
    // Another user's run: no link.
    const bobs = await request(port, `/api/runs/${bobRun}/preview-links`, { method: "POST", headers: { ...bearer(aliceToken), "content-type": "application/json" }, body: JSON.stringify({ port: tport }) });
    assert.equal(bobs.status, 404);
    const dockerLink = await request(port, `/api/runs/${dockerRun}/preview-links`, { method: "POST", headers: { ...bearer(aliceToken), "content-type": "application/json" }, body: JSON.stringify({ port: tport }) });
    assert.equal(dockerLink.status, 409);
    const badPort = await request(port, `/api/runs/${hostRun}/preview-links`, { method: "POST", headers: { ...bearer(aliceToken), "content-type": "application/json" }, body: JSON.stringify({ port: notAllowedPort }) });
    assert.equal(badPort.status, 403);
    assert.ok(aliceId);
  });

  test("preview links expire", async () => {
    const create = await request(port, `/api/runs/${hostRun}/preview-links`, {
      method: "POST",
      headers: { ...bearer(aliceToken), "content-type": "application/json" },
      body: JSON.stringify({ port: tport, ttl_secs: 10 }),
    });
    const link = JSON.parse(create.body) as { path: string };
    const redeem = await request(port, link.path);
    const cookie = redeem.headers["set-cookie"]![0]!.split(";")[0]!;
    // Move the clock past the expiry.
    const realNow = Date.now;
    Date.now = () => realNow() + 11_000;
    try {
      const late = await request(port, `/api/runs/${hostRun}/proxy/${tport}/echo`, { headers: { cookie } });
      assert.equal(late.status, 401);
      const lateRedeem = await request(port, link.path);
      assert.equal(lateRedeem.status, 401);
    } finally {
      Date.now = realNow;
    }
    const fresh = await request(port, `/api/runs/${hostRun}/proxy/${tport}/echo`, { headers: { cookie } });
    assert.equal(fresh.status, 200);
  });

  test("verified credentials are cached briefly: a revoked API key stops working within the cache TTL", async () => {
    const TTL_MS = 300;
    const runs = { get: async () => { throw new NotFoundError("run"); } };
    const cached = createProxyRoutes(deps, { runs, settings: { allowed_ports: String(tport), timeout_ms: TIMEOUT_MS }, authCacheMs: TTL_MS });
    const s = http.createServer((req, res) => void cached.handleRequest(req, res));
    const p = await listen(s);
    try {
      const gen = generateApiKey();
      const row = await store.apiKeys.create({ user_id: aliceId, name: "proxy-cache", prefix: gen.prefix, key_hash: gen.hash });
      const first = await request(p, `/proxy/${tport}/echo`, { headers: bearer(gen.key) });
      assert.equal(first.status, 200);
      assert.equal(lastSeen().headers.authorization, undefined, "the key never reaches the target");
      assert.ok(await store.apiKeys.revoke(row.id, aliceId));
      // Within the TTL the cached verification may still answer (by design, documented);
      // once it has passed, the revocation holds.
      await sleep(TTL_MS + 100);
      const after = await request(p, `/proxy/${tport}/echo`, { headers: bearer(gen.key) });
      assert.equal(after.status, 401);
      // A wrong token is never served from the cache, whatever was verified before.
      const wrong = await request(p, `/proxy/${tport}/echo`, { headers: bearer(`${aliceToken}x`) });
      assert.equal(wrong.status, 401);
      // With the cache off, revocation is immediate.
      const gen2 = generateApiKey();
      const row2 = await store.apiKeys.create({ user_id: aliceId, name: "proxy-nocache", prefix: gen2.prefix, key_hash: gen2.hash });
      const off = createProxyRoutes(deps, { runs, settings: { allowed_ports: String(tport), timeout_ms: TIMEOUT_MS }, authCacheMs: 0 });
      const s2 = http.createServer((req, res) => void off.handleRequest(req, res));
      const p2 = await listen(s2);
      try {
        assert.equal((await request(p2, `/proxy/${tport}/echo`, { headers: bearer(gen2.key) })).status, 200);
        assert.ok(await store.apiKeys.revoke(row2.id, aliceId));
        assert.equal((await request(p2, `/proxy/${tport}/echo`, { headers: bearer(gen2.key) })).status, 401);
      } finally {
        off.close();
        s2.closeAllConnections();
        await new Promise((r) => s2.close(r));
      }
    } finally {
      cached.close();
      s.closeAllConnections();
      await new Promise((r) => s.close(r));
    }
  });

  test("the Koa fallback routes serve proxy paths too (methods without a body)", async () => {
    const koa = createApp(deps, [proxy]).callback();
    const s = http.createServer((req, res) => void koa(req, res));
    const p = await listen(s);
    try {
      const r = await request(p, `/proxy/${tport}/echo`, { headers: bearer(aliceToken) });
      assert.equal(r.status, 200);
      assert.equal(lastSeen().headers.authorization, undefined);
      const anon = await request(p, `/proxy/${tport}/echo`);
      assert.equal(anon.status, 401);
    } finally {
      s.closeAllConnections();
      await new Promise((r) => s.close(r));
    }
    await sleep(1);
  });
});
