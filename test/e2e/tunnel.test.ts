/**
 * Reverse tunnel end to end, on loopback with real sockets (ports 0): an HTTP
 * server, a WebSocket echo (raw upgrade over node:http with hand-made frames,
 * since `ws` is not a dependency) and a raw TCP echo behind the tunnel, reached
 * through the relay; a 200 MB streamed body with bounded memory; the refusals
 * (unauthenticated client, hijack of a live id, forged / reused / expired
 * connection id, oversized frame); dead-peer detection both ways; relay
 * restart; TLS; no leak across 1,000 forced reconnects; and a real redis-server
 * through a dedicated tunnel port with redis-cli (skipped when not installed).
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { execFile, spawn, type ChildProcess } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import http from "node:http";
import net, { type AddressInfo } from "node:net";
import os from "node:os";
import path from "node:path";
import { once } from "node:events";
import { setTimeout as sleep } from "node:timers/promises";
import { TunnelClient, TunnelAuthError, type TunnelClientOptions } from "../../src/tunnel/client.ts";
import { startTunnelServer, type TunnelServer, type TunnelServerOptions } from "../../src/tunnel/server.ts";
import { encodeFrame, FrameDecoder, PROTOCOL_VERSION, type TunnelMessage } from "../../src/tunnel/frame.ts";
import type { TunnelBusEvents } from "../../src/tunnel/events.ts";
import { waitFor } from "../helpers/processes.ts";

const SECRET = "s3cret-s3cret-s3cret";
const HOST = "127.0.0.1";

// ---------------------------------------------------------------- helpers

async function listen(server: net.Server): Promise<number> {
  server.listen(0, HOST);
  await once(server, "listening");
  return (server.address() as AddressInfo).port;
}

/** Waits until `fn` is true (polling every 5 ms) or fails after `ms`. */
const until = (fn: () => boolean, ms = 3000, what = "condition") => waitFor(fn, ms, what, 5);

/** The local HTTP app: echoes method and url, /big streams N bytes, /upload counts the body. */
function createApp(): http.Server {
  return http.createServer((req, res) => {
    const url = new URL(req.url ?? "/", "http://x");
    if (url.pathname === "/big") {
      let left = Number(url.searchParams.get("bytes"));
      const chunk = Buffer.alloc(64 * 1024, 0x61);
      res.writeHead(200, { "content-length": String(left) });
      const pump = () => {
        while (left > 0) {
          const n = Math.min(left, chunk.length);
          left -= n;
          if (!res.write(n === chunk.length ? chunk : chunk.subarray(0, n))) return void res.once("drain", pump);
        }
        res.end();
      };
      return pump();
    }
    if (url.pathname === "/upload") {
      let n = 0;
      req.on("data", (c: Buffer) => (n += c.length));
      req.on("end", () => res.end(JSON.stringify({ bytes: n })));
      return;
    }
    res.setHeader("content-type", "application/json");
    res.end(JSON.stringify({ method: req.method, url: req.url, host: req.headers.host }));
  });
}

/** A minimal WebSocket echo (RFC 6455: handshake, unfragmented text frames, close). */
function attachWsEcho(server: http.Server): void {
  server.on("upgrade", (req, socket) => {
    const key = req.headers["sec-websocket-key"] as string;
    const accept = createHash("sha1").update(`${key}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`).digest("base64");
    socket.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`);
    let buf = Buffer.alloc(0);
    socket.on("data", (c: Buffer) => {
      buf = Buffer.concat([buf, c]);
      for (;;) {
        const f = readWsFrame(buf);
        if (!f) return;
        buf = buf.subarray(f.size);
        if (f.opcode === 8) return void socket.end(wsFrame(8, Buffer.alloc(0), false));
        socket.write(wsFrame(f.opcode, f.payload, false));
      }
    });
    socket.on("error", () => socket.destroy());
  });
}

function wsFrame(opcode: number, payload: Buffer, mask: boolean): Buffer {
  const len = payload.length;
  const head = len < 126 ? Buffer.from([0x80 | opcode, (mask ? 0x80 : 0) | len]) : Buffer.from([0x80 | opcode, (mask ? 0x80 : 0) | 126, len >> 8, len & 255]);
  if (!mask) return Buffer.concat([head, payload]);
  const key = randomBytes(4);
  const body = Buffer.from(payload.map((b, i) => b ^ key[i % 4]!));
  return Buffer.concat([head, key, body]);
}

function readWsFrame(buf: Buffer): { opcode: number; payload: Buffer; size: number } | undefined {
  if (buf.length < 2) return undefined;
  const masked = (buf[1]! & 0x80) !== 0;
  let len = buf[1]! & 0x7f;
  let off = 2;
  if (len === 126) {
    if (buf.length < 4) return undefined;
    len = buf.readUInt16BE(2);
    off = 4;
  }
  const keyOff = off;
  if (masked) off += 4;
  if (buf.length < off + len) return undefined;
  let payload = buf.subarray(off, off + len);
  if (masked) payload = Buffer.from(payload.map((b, i) => b ^ buf[keyOff + (i % 4)]!));
  return { opcode: buf[0]! & 0x0f, payload, size: off + len };
}

/** GET through the relay's public port; returns status and body text. */
async function get(port: number, urlPath: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: HOST, port, path: urlPath, headers, agent: false }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (c: string) => (body += c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on("error", reject);
  });
}

/** A relay + a client exposing `localPort`, with test-friendly timings. */
async function startPair(localPort: number, relayOpts: Partial<TunnelServerOptions> = {}, clientOpts: Partial<TunnelClientOptions> = {}) {
  const events: Array<{ topic: keyof TunnelBusEvents; payload: unknown }> = [];
  const relay = await startTunnelServer({
    host: HOST,
    controlPort: 0,
    proxyPort: 0,
    publicPort: 0,
    auth: { kind: "secret", secret: SECRET },
    poolSize: 2,
    heartbeatMs: 200,
    deadAfterMs: 1000,
    pairingTimeoutMs: 1000,
    domain: "tunnel.test",
    publish: (topic, payload) => events.push({ topic, payload }),
    ...relayOpts,
  });
  const client = new TunnelClient({
    host: HOST,
    controlPort: relay.ports.control,
    clientId: "app",
    secret: SECRET,
    localPort,
    heartbeatMs: 200,
    deadAfterMs: 1000,
    backoffBaseMs: 20,
    backoffMaxMs: 200,
    ...clientOpts,
  }).start();
  await client.waitRegistered(3000);
  return { relay, client, events };
}

/** A raw control connection: sends Register, returns the socket and a frame reader. */
async function rawRegister(port: number, clientId: string, secret: string, clientKey = "raw-key") {
  const s = net.connect(port, HOST);
  await once(s, "connect");
  const dec = new FrameDecoder();
  const frames: TunnelMessage[] = [];
  s.on("data", (c: Buffer) => frames.push(...dec.push(c)));
  s.on("error", () => {});
  s.write(encodeFrame({ type: "Register", client_id: clientId, secret, client_key: clientKey, version: PROTOCOL_VERSION }));
  await until(() => frames.length > 0 || s.destroyed, 2000, "RegisterResult");
  return { s, frames };
}

/** Resolves when the socket closes; fails after `ms`. */
async function closedWithin(s: net.Socket, ms: number): Promise<void> {
  if (s.closed) return;
  await Promise.race([once(s, "close"), sleep(ms).then(() => Promise.reject(new Error("socket still open")))]);
}

// ---------------------------------------------------------------- tests

describe("tunnel end to end", () => {
  let app: http.Server;
  let appPort: number;
  let echo: net.Server;
  let echoPort: number;

  before(async () => {
    app = createApp();
    attachWsEcho(app);
    appPort = await listen(app);
    echo = net.createServer({ allowHalfOpen: true }, (s) => {
      s.on("error", () => {});
      s.pipe(s); // echo; the FIN comes back after the echoed bytes (half-close)
    });
    echoPort = await listen(echo);
  });
  after(() => {
    app.closeAllConnections();
    app.close();
    echo.close();
  });

  test("HTTP through the relay: routed by ?token= (removed), header and Host; pool filled and refilled; bus events", async () => {
    const { relay, client, events } = await startPair(appPort);
    try {
      await until(() => relay.clients()[0]?.idle === 2, 2000, "pool of 2");
      const pub = relay.ports.public;
      const a = await get(pub, "/hello?x=1&token=app&y=2");
      assert.equal(a.status, 200);
      assert.equal(JSON.parse(a.body).url, "/hello?x=1&y=2");
      const b = await get(pub, "/by-header", { "x-openrunner-client": "app" });
      assert.equal(JSON.parse(b.body).url, "/by-header");
      const c = await get(pub, "/by-host", { host: "app.tunnel.test" });
      assert.equal(JSON.parse(c.body).host, "app.tunnel.test");
      assert.equal((await get(pub, "/none")).status, 404);
      assert.equal((await get(pub, "/?token=nobody")).status, 502);
      // 50 concurrent requests: fast path and slow path together, all served.
      const many = await Promise.all(Array.from({ length: 50 }, (_, i) => get(pub, `/n/${i}?token=app`)));
      assert.deepEqual(many.map((r) => JSON.parse(r.body).url), Array.from({ length: 50 }, (_, i) => `/n/${i}`));
      await until(() => relay.clients()[0]?.idle === 2 && relay.clients()[0]?.active === 0, 2000, "pool refilled");
      assert.ok(events.some((e) => e.topic === "tunnel.connected"));
      assert.ok(events.some((e) => e.topic === "tunnel.pool"));
    } finally {
      await client.close();
      await relay.close();
    }
    assert.ok(client.state === "closed");
  });

  test("empty pool (size 0): every connection takes the slow path with a deadline", async () => {
    const { relay, client } = await startPair(appPort, { poolSize: 0 });
    try {
      const r = await get(relay.ports.public, "/slow?token=app");
      assert.equal(JSON.parse(r.body).url, "/slow");
      assert.equal(relay.clients()[0]?.idle, 0);
    } finally {
      await client.close();
      await relay.close();
    }
  });

  test("WebSocket echo through the relay", async () => {
    const { relay, client } = await startPair(appPort);
    try {
      const s = net.connect(relay.ports.public, HOST);
      await once(s, "connect");
      s.write(`GET /ws?token=app HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${randomBytes(16).toString("base64")}\r\nSec-WebSocket-Version: 13\r\n\r\n`);
      let buf = Buffer.alloc(0);
      const got: string[] = [];
      s.on("data", (c: Buffer) => {
        buf = Buffer.concat([buf, c]);
        const headEnd = buf.indexOf("\r\n\r\n");
        if (!got.length && headEnd >= 0) {
          got.push(buf.toString("latin1", 0, headEnd).split("\r\n")[0]!);
          buf = buf.subarray(headEnd + 4);
        }
        for (let f = readWsFrame(buf); f; f = readWsFrame(buf)) {
          buf = buf.subarray(f.size);
          got.push(f.payload.toString());
        }
      });
      await until(() => got.length === 1, 2000, "101");
      assert.match(got[0]!, /^HTTP\/1\.1 101/);
      for (const m of ["hello", "x".repeat(300)]) s.write(wsFrame(1, Buffer.from(m), true));
      await until(() => got.length === 3, 2000, "echoes");
      assert.deepEqual(got.slice(1), ["hello", "x".repeat(300)]);
      s.destroy();
    } finally {
      await client.close();
      await relay.close();
    }
  });

  test("raw TCP echo on a dedicated port, with half-close", async () => {
    const { relay, client } = await startPair(echoPort, { tcpPorts: { app: 0 } });
    try {
      const s = net.connect({ host: HOST, port: relay.ports.tcp.app!, allowHalfOpen: true });
      const chunks: Buffer[] = [];
      s.on("data", (c: Buffer) => chunks.push(c));
      await once(s, "connect");
      const payload = randomBytes(300_000);
      s.end(payload); // half-close: the echo still answers, then closes its side
      await once(s, "end");
      assert.ok(Buffer.concat(chunks).equals(payload));
      s.destroy();
    } finally {
      await client.close();
      await relay.close();
    }
  });

  test("raw TCP bytes arrive intact both ways under backpressure (64 MB each way, SHA-256 compared)", async () => {
    // The relay's public TCP sockets and the client's sockets are read into reused
    // buffers (pipe.ts UserBufferReader): a slow reader on either end forces the
    // buffer swaps that keep pending writes from being overwritten.
    const SIZE = 64 * 1024 * 1024;
    const up = randomBytes(SIZE);
    const down = randomBytes(SIZE);
    const sha = (b: Buffer) => createHash("sha256").update(b).digest("hex");
    const origin = net.createServer({ allowHalfOpen: true }, (c) => {
      const h = createHash("sha256");
      let n = 0;
      // A slow consumer: pauses every 4 MB for a moment, so the tunnel backs up.
      c.on("data", (d: Buffer) => {
        h.update(d);
        const before = n;
        n += d.length;
        if (Math.floor(n / 4_194_304) !== Math.floor(before / 4_194_304)) {
          c.pause();
          setTimeout(() => c.resume(), 5);
        }
      });
      c.on("end", () => {
        c.write(`${h.digest("hex")}\n`);
        c.end(down);
      });
      c.on("error", () => c.destroy());
    });
    origin.listen(0, HOST);
    await once(origin, "listening");
    const { relay, client } = await startPair((origin.address() as AddressInfo).port, { tcpPorts: { app: 0 } });
    try {
      const s = net.connect({ host: HOST, port: relay.ports.tcp.app!, allowHalfOpen: true });
      const chunks: Buffer[] = [];
      let got = 0;
      s.on("data", (c: Buffer) => {
        chunks.push(c);
        const before = got;
        got += c.length;
        if (Math.floor(got / 8_388_608) !== Math.floor(before / 8_388_608)) {
          s.pause();
          setTimeout(() => s.resume(), 5);
        }
      });
      await once(s, "connect");
      s.end(up);
      await once(s, "end");
      const all = Buffer.concat(chunks);
      const nl = all.indexOf(0x0a);
      assert.equal(all.subarray(0, nl).toString(), sha(up), "upload digest");
      const back = all.subarray(nl + 1);
      assert.equal(back.length, SIZE);
      assert.equal(sha(back), sha(down), "download digest");
      s.destroy();
    } finally {
      await client.close();
      await relay.close();
      origin.close();
    }
  });

  test("200 MB streamed down and 64 MB up with bounded memory", async () => {
    const { relay, client } = await startPair(appPort);
    try {
      const rss0 = process.memoryUsage().rss;
      let peak = rss0;
      const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 20);
      const total = 200 * 1024 * 1024;
      const received = await new Promise<number>((resolve, reject) => {
        http
          .get({ host: HOST, port: relay.ports.public, path: `/big?bytes=${total}&token=app`, agent: false }, (res) => {
            let n = 0;
            res.on("data", (c: Buffer) => (n += c.length));
            res.on("end", () => resolve(n));
          })
          .on("error", reject);
      });
      assert.equal(received, total);
      const up = 64 * 1024 * 1024;
      const upRes = await new Promise<string>((resolve, reject) => {
        const req = http.request({ host: HOST, port: relay.ports.public, method: "POST", path: "/upload?token=app", agent: false, headers: { "content-length": String(up) } }, (res) => {
          let body = "";
          res.on("data", (c: Buffer) => (body += c));
          res.on("end", () => resolve(body));
        });
        req.on("error", reject);
        const chunk = Buffer.alloc(64 * 1024, 0x62);
        let left = up;
        const pump = () => {
          while (left > 0) {
            left -= chunk.length;
            if (!req.write(chunk)) return void req.once("drain", pump);
          }
          req.end();
        };
        pump();
      });
      clearInterval(sampler);
      assert.equal(JSON.parse(upRes).bytes, up);
      const growthMb = (peak - rss0) / 1024 / 1024;
      assert.ok(growthMb < 100, `rss grew by ${growthMb.toFixed(0)} MB while streaming 264 MB`);
    } finally {
      await client.close();
      await relay.close();
    }
  });

  test("a client with a wrong secret, or another client's token, is refused (fatal, no retry)", async () => {
    const relay = await startTunnelServer({ host: HOST, controlPort: 0, proxyPort: 0, publicPort: 0, auth: { kind: "tokens", tokens: new Map([["a", "token-of-a-0123456789"], ["b", "token-of-b-0123456789"]]) } });
    try {
      for (const [clientId, secret] of [["a", "wrong"], ["a", "token-of-b-0123456789"], ["c", "token-of-a-0123456789"]] as const) {
        const c = new TunnelClient({ host: HOST, controlPort: relay.ports.control, clientId, secret, localPort: appPort, backoffBaseMs: 10 }).start();
        await assert.rejects(c.waitRegistered(2000), TunnelAuthError);
        assert.equal(c.state, "closed");
        await c.close();
      }
      assert.equal(relay.clients().length, 0);
      const ok = new TunnelClient({ host: HOST, controlPort: relay.ports.control, clientId: "a", secret: "token-of-a-0123456789", localPort: appPort }).start();
      await ok.waitRegistered(2000);
      await ok.close();
    } finally {
      await relay.close();
    }
  });

  test("hijack of a live client id is refused; the owner keeps serving; the same key replaces a half-dead session", async () => {
    const { relay, client } = await startPair(appPort, {}, { clientKey: "owner-key" });
    try {
      const thief = await rawRegister(relay.ports.control, "app", SECRET, "thief-key");
      assert.deepEqual(thief.frames[0], { type: "RegisterResult", ok: false, error: "client_id_in_use" });
      await closedWithin(thief.s, 2000);
      const r = await get(relay.ports.public, "/still-mine?token=app");
      assert.equal(JSON.parse(r.body).url, "/still-mine");
      // The owner's key (e.g. after a network change) takes over the live id.
      const again = await rawRegister(relay.ports.control, "app", SECRET, "owner-key");
      assert.equal((again.frames[0] as { ok: boolean }).ok, true);
      again.s.destroy();
    } finally {
      await client.close();
      await relay.close();
    }
  });

  test("forged, reused and expired connection ids are refused", async () => {
    const relay = await startTunnelServer({ host: HOST, controlPort: 0, proxyPort: 0, publicPort: 0, auth: { kind: "secret", secret: SECRET }, poolSize: 2, pairingTimeoutMs: 300, heartbeatMs: 1000, deadAfterMs: 5000 });
    try {
      const fake = await rawRegister(relay.ports.control, "fake", SECRET);
      await until(() => fake.frames.filter((f) => f.type === "RequestNewProxyConn").length === 2, 2000, "2 requests");
      const [first, second] = fake.frames.filter((f) => f.type === "RequestNewProxyConn") as Array<{ conn_id: string }>;
      const open = async (connId: string, clientId = "fake") => {
        const s = net.connect(relay.ports.proxy, HOST);
        s.on("error", () => {});
        await once(s, "connect");
        s.write(encodeFrame({ type: "NewProxyConn", conn_id: connId, client_id: clientId }));
        return s;
      };
      const forged = await open(randomBytes(18).toString("base64url"));
      await closedWithin(forged, 2000);
      const wrongClient = await open(first!.conn_id, "someone-else");
      await closedWithin(wrongClient, 2000);
      const good = await open(first!.conn_id);
      await sleep(100);
      assert.equal(good.closed, false, "a valid id is accepted");
      const reused = await open(first!.conn_id);
      await closedWithin(reused, 2000);
      await sleep(400); // second's pending id expires (300 ms)
      const expired = await open(second!.conn_id);
      await closedWithin(expired, 2000);
      good.destroy();
      fake.s.destroy();
    } finally {
      await relay.close();
    }
  });

  test("a frame over the limit closes that connection only", async () => {
    const { relay, client } = await startPair(appPort, { maxFrameBytes: 1024 });
    try {
      for (const port of [relay.ports.control, relay.ports.proxy]) {
        const s = net.connect(port, HOST);
        s.on("error", () => {});
        await once(s, "connect");
        const head = Buffer.alloc(4);
        head.writeUInt32BE(1025);
        s.write(head); // the header alone is enough to refuse it
        await closedWithin(s, 2000);
      }
      // A registered session that sends an oversized frame loses its own session only.
      const other = await rawRegister(relay.ports.control, "other", SECRET);
      assert.equal((other.frames[0] as { ok: boolean }).ok, true);
      const big = Buffer.alloc(4);
      big.writeUInt32BE(10 * 1024 * 1024);
      other.s.write(big);
      await closedWithin(other.s, 2000);
      const r = await get(relay.ports.public, "/ok?token=app");
      assert.equal(r.status, 200);
      assert.equal(client.state, "registered");
    } finally {
      await client.close();
      await relay.close();
    }
  });

  test("dead peers are detected both ways within deadAfterMs", async () => {
    const { relay, client, events } = await startPair(appPort);
    try {
      // Relay side: a client that registers and then goes silent.
      const silent = await rawRegister(relay.ports.control, "silent", SECRET);
      silent.s.pause(); // stops reading: never answers Ping, never sends one
      // Detected within a bounded time (dead-after 1 s here; `until` fails past 3 s).
      await until(() => events.some((e) => e.topic === "tunnel.disconnected" && (e.payload as { client_id: string }).client_id === "silent"), 3000, "relay drops silent client");
      silent.s.destroy();
    } finally {
      await client.close();
      await relay.close();
    }
    // Client side: a relay that answers Register and then goes silent.
    let conns = 0;
    const mute = net.createServer((s) => {
      conns += 1;
      s.on("error", () => {});
      s.once("data", () => s.write(encodeFrame({ type: "RegisterResult", ok: true, proxy_port: 1, heartbeat_ms: 200 })));
    });
    const port = await listen(mute);
    const c = new TunnelClient({ host: HOST, controlPort: port, clientId: "x", secret: SECRET, localPort: appPort, heartbeatMs: 100, deadAfterMs: 400, backoffBaseMs: 10, backoffMaxMs: 20 }).start();
    await c.waitRegistered(2000);
    let disconnected = false;
    c.once("disconnected", () => (disconnected = true));
    await until(() => disconnected, 3000, "client detects the silent relay");
    await until(() => conns >= 2, 2000, "reconnect");
    await c.close();
    mute.close();
  });

  test("relay restart: the client reconnects, re-registers and serves again", async () => {
    const { relay, client } = await startPair(appPort);
    const ports = relay.ports;
    await relay.close();
    await once(client, "disconnected");
    const relay2 = await startTunnelServer({ host: HOST, controlPort: ports.control, proxyPort: ports.proxy, publicPort: ports.public, auth: { kind: "secret", secret: SECRET }, heartbeatMs: 200, deadAfterMs: 1000 });
    try {
      await client.waitRegistered(3000);
      const r = await get(relay2.ports.public, "/back?token=app");
      assert.equal(JSON.parse(r.body).url, "/back");
      assert.ok(client.registrations >= 2);
    } finally {
      await client.close();
      await relay2.close();
    }
  });

  test("TLS on the control and proxy ports", async (t) => {
    const dir = mkdtempSync(path.join(os.tmpdir(), "tunnel-tls-"));
    try {
      const key = path.join(dir, "key.pem");
      const cert = path.join(dir, "cert.pem");
      const ok = await new Promise<boolean>((resolve) =>
        execFile("openssl", ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out", cert, "-days", "1", "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"], (err) => resolve(!err)),
      );
      if (!ok) assert.fail("openssl not available (apt-get install -y openssl)");
      const { relay, client } = await startPair(appPort, { tls: { cert: readFileSync(cert), key: readFileSync(key) } }, { tls: { ca: readFileSync(cert) } });
      try {
        const r = await get(relay.ports.public, "/secure?token=app");
        assert.equal(JSON.parse(r.body).url, "/secure");
        // A plain-TCP client cannot register on a TLS control port.
        const plain = new TunnelClient({ host: HOST, controlPort: relay.ports.control, clientId: "plain", secret: SECRET, localPort: appPort, connectTimeoutMs: 500, backoffBaseMs: 50 }).start();
        await assert.rejects(plain.waitRegistered(700));
        await plain.close();
      } finally {
        await client.close();
        await relay.close();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("no socket or timer leaks across 1,000 forced reconnects", async () => {
    const count = () => {
      const c: Record<string, number> = {};
      for (const r of process.getActiveResourcesInfo()) c[r] = (c[r] ?? 0) + 1;
      return { sockets: c.TCPSocketWrap ?? 0, timers: c.Timeout ?? 0 };
    };
    const { relay, client } = await startPair(appPort, { poolSize: 1 }, { backoffBaseMs: 1, backoffMaxMs: 2 });
    try {
      await until(() => relay.clients()[0]?.idle === 1, 2000, "pool");
      await get(relay.ports.public, "/warm?token=app");
      await until(() => relay.clients()[0]?.idle === 1 && relay.clients()[0]?.active === 0, 2000, "settled");
      await sleep(50);
      const before = count();
      for (let i = 0; i < 1000; i++) {
        const n = client.registrations;
        relay.kick("app");
        await until(() => client.registrations > n && relay.clients()[0]?.idle === 1, 2000, `reconnect ${i}`);
      }
      await get(relay.ports.public, "/after?token=app");
      await until(() => relay.clients()[0]?.idle === 1 && relay.clients()[0]?.active === 0, 2000, "settled");
      await sleep(50);
      const afterCount = count();
      assert.ok(afterCount.sockets <= before.sockets, `sockets ${before.sockets} -> ${afterCount.sockets}`);
      assert.ok(afterCount.timers <= before.timers, `timers ${before.timers} -> ${afterCount.timers}`);
      assert.equal(relay.pendingCount, 0);
    } finally {
      await client.close();
      await relay.close();
    }
  });

  test("redis-server through a dedicated tunnel port, with redis-cli", async (t) => {
    if (!existsSync("/usr/bin/redis-server") || !existsSync("/usr/bin/redis-cli")) assert.fail("redis-server/redis-cli not installed (apt-get install -y redis-server redis-tools; .ci/run does)");
    // redis-server has no --port 0: pick a free port, close it, accept the tiny race.
    const probe = net.createServer();
    const redisPort = await listen(probe);
    await new Promise((r) => probe.close(r));
    const dir = mkdtempSync(path.join(os.tmpdir(), "tunnel-redis-"));
    const redis: ChildProcess = spawn("/usr/bin/redis-server", ["--port", String(redisPort), "--bind", HOST, "--save", "", "--appendonly", "no", "--dir", dir], { stdio: "ignore" });
    const cli = (port: number, ...args: string[]) =>
      new Promise<string>((resolve, reject) => execFile("/usr/bin/redis-cli", ["-h", HOST, "-p", String(port), ...args], { timeout: 5000 }, (err, out) => (err ? reject(err) : resolve(out.trim()))));
    try {
      const end = Date.now() + 5000;
      for (;;) {
        try {
          if ((await cli(redisPort, "PING")) === "PONG") break;
        } catch {
          // not up yet
        }
        if (Date.now() > end) throw new Error("redis-server did not start");
        await sleep(50);
      }
      const { relay, client } = await startPair(redisPort, { tcpPorts: { app: 0 } });
      try {
        const port = relay.ports.tcp.app!;
        assert.equal(await cli(port, "PING"), "PONG");
        assert.equal(await cli(port, "SET", "tunnel:key", "through the tunnel"), "OK");
        assert.equal(await cli(port, "GET", "tunnel:key"), "through the tunnel");
        assert.equal(await cli(redisPort, "GET", "tunnel:key"), "through the tunnel");
      } finally {
        await client.close();
        await relay.close();
      }
    } finally {
      if (redis.pid !== undefined) process.kill(redis.pid, "SIGTERM");
      await once(redis, "exit");
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
