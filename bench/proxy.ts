/**
 * Port proxy benchmark (issue 6): requests/s and p50/p99 latency for a 1 KB
 * response at 1 and 50 connections, with the same load loop (node:http,
 * keep-alive agent) for every row, the rows interleaved in 500 ms slices
 * (see {@link loadInterleaved}): direct to the target, through nginx
 * (`worker_processes 1`, upstream keep-alive; started here with its own
 * config in a temp dir, stopped by PID), and through OpenRunner's proxy
 * (a child process running the real app with the proxy's front door). Also
 * the WebSocket upgrade time through the proxy vs direct.
 *
 *   node --import tsx bench/proxy.ts [--quick] [--repeats N]
 *
 * The target and the OpenRunner proxy each run in their own child process
 * (this file re-executed with `--child target|proxy`), so the proxy gets a
 * core of its own like nginx's single worker. Results: bench/results/proxy.json.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync, existsSync, readFileSync } from "node:fs";
import http from "node:http";
import net, { type AddressInfo } from "node:net";
import os from "node:os";
import path from "node:path";
import { once } from "node:events";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { setTimeout as sleep } from "node:timers/promises";
import { figure, writeResult, type BenchResult } from "./lib/result.ts";
import { round, summarize } from "./lib/stats.ts";

const HOST = "127.0.0.1";
const SELF = fileURLToPath(import.meta.url);
const RESULTS = path.join(path.dirname(SELF), "results");
const BODY = Buffer.alloc(1024, 0x61);

// ------------------------------------------------------------------ children

async function runTarget(): Promise<void> {
  const { acceptEchoUpgrade } = await import("../test/helpers/ws-frames.ts");
  const server = http.createServer((req, res) => {
    req.resume();
    res.writeHead(200, { "content-type": "text/plain", "content-length": BODY.length });
    res.end(BODY);
  });
  server.keepAliveTimeout = 60_000;
  server.on("upgrade", (req, socket, head) => acceptEchoUpgrade(req, socket, head));
  server.listen(0, HOST, () => process.stdout.write(`${JSON.stringify({ port: (server.address() as AddressInfo).port })}\n`));
}

async function runProxy(targetPort: number): Promise<void> {
  const { Value } = await import("@sinclair/typebox/value");
  const { createApp, createAppDeps } = await import("../src/api/app.ts");
  const { createProxyRoutes } = await import("../src/api/routes/proxy.ts");
  const { Bus } = await import("../src/bus/bus.ts");
  const { ConfigSchema } = await import("../src/config/schema.ts");
  const { createSilentLogger } = await import("../src/log.ts");
  const { openSqliteStore } = await import("../src/store/sqlite.ts");
  const store = openSqliteStore({ file: ":memory:" });
  const user = await store.users.create({ username: "bench", password_hash: "x", role: "user" });
  const config = { ...Value.Create(ConfigSchema), jwt_secret: "bench-proxy-secret-0123456789abcdefghijkl" };
  const deps = createAppDeps({ config, store, bus: new Bus(), log: createSilentLogger(), dataDir: os.tmpdir(), version: "bench", listAgentHealth: async () => [] });
  const runs = { get: async () => { throw new Error("no runs in this benchmark"); } };
  const proxy = createProxyRoutes(deps, { runs, settings: { allowed_ports: String(targetPort), timeout_ms: 30_000 } });
  const koa = createApp(deps, [proxy]).callback();
  const server = http.createServer((req, res) => proxy.handleRequest(req, res) || void koa(req, res));
  server.keepAliveTimeout = 60_000;
  server.on("upgrade", (req, socket, head) => proxy.handleUpgrade(req, socket, head) || socket.destroy());
  process.once("SIGTERM", () => process.exit(0)); // a clean exit writes the --cpu-prof profile
  const token = deps.jwt.sign({ id: user.id, role: "user", username: "bench" });
  server.listen(0, HOST, () => process.stdout.write(`${JSON.stringify({ port: (server.address() as AddressInfo).port, token })}\n`));
}

/** Starts this file as a child; resolves with the JSON line it prints. */
async function startChild(args: string[]): Promise<{ child: ChildProcess; info: { port: number; token?: string } }> {
  // BENCH_PROXY_PROF=<dir>: V8 CPU profile of the proxy child (read it with bench/profile-top.ts).
  const prof = args[1] === "proxy" && process.env.BENCH_PROXY_PROF ? ["--cpu-prof", `--cpu-prof-dir=${process.env.BENCH_PROXY_PROF}`] : [];
  const child = spawn(process.execPath, [...prof, "--import", "tsx", SELF, ...args], { stdio: ["ignore", "pipe", "inherit"] });
  let buf = "";
  const info = await new Promise<{ port: number; token?: string }>((resolve, reject) => {
    child.stdout!.on("data", (d: Buffer) => {
      buf += d.toString();
      const nl = buf.indexOf("\n");
      if (nl !== -1) resolve(JSON.parse(buf.slice(0, nl)));
    });
    child.once("exit", (code) => reject(new Error(`child ${args.join(" ")} exited with ${code}`)));
  });
  return { child, info };
}

async function stopPid(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill("SIGTERM");
  await Promise.race([once(child, "exit"), sleep(3000)]);
  if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
}

// ------------------------------------------------------------------ nginx

export function findNginx(): string | null {
  for (const p of ["/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/bin/nginx"]) if (existsSync(p)) return p;
  return null;
}

async function freePort(): Promise<number> {
  const s = net.createServer();
  s.listen(0, HOST);
  await once(s, "listening");
  const port = (s.address() as AddressInfo).port;
  await new Promise((r) => s.close(r));
  return port;
}

/** Starts nginx (one worker, upstream keep-alive) in a temp dir; returns its port and a stop function (by PID). */
export async function startNginx(bin: string, targetPort: number): Promise<{ port: number; stop: () => Promise<void> }> {
  const dir = mkdtempSync(path.join(os.tmpdir(), "openrunner-nginx-"));
  const port = await freePort();
  const conf = `
worker_processes 1;
daemon off;
master_process on;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path ${dir}/body; proxy_temp_path ${dir}/proxy; fastcgi_temp_path ${dir}/fcgi; uwsgi_temp_path ${dir}/uwsgi; scgi_temp_path ${dir}/scgi;
  keepalive_requests 1000000;
  upstream target { server ${HOST}:${targetPort}; keepalive 64; keepalive_requests 1000000; }
  map $http_upgrade $connection_upgrade { default upgrade; '' ''; }
  server {
    listen ${HOST}:${port};
    location /proxy/${targetPort}/ {
      proxy_pass http://target/;
      proxy_http_version 1.1;
      proxy_set_header Connection $connection_upgrade;
      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Host $host;
      proxy_set_header X-Forwarded-For $remote_addr;
      proxy_buffering off;
    }
  }
}`;
  writeFileSync(path.join(dir, "nginx.conf"), conf);
  const child = spawn(bin, ["-p", dir, "-c", path.join(dir, "nginx.conf"), "-e", path.join(dir, "error.log")], { stdio: "ignore" });
  const end = Date.now() + 5000;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect(port, HOST, () => (s.destroy(), resolve(true)));
      s.on("error", () => resolve(false));
    });
    if (ok) break;
    if (Date.now() > end || child.exitCode !== null) {
      const log = existsSync(path.join(dir, "error.log")) ? readFileSync(path.join(dir, "error.log"), "utf8") : "";
      throw new Error(`nginx did not start: ${log}`);
    }
    await sleep(50);
  }
  return {
    port,
    async stop() {
      await stopPid(child); // SIGTERM to the master (by PID) stops its worker.
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

// ------------------------------------------------------------------ load

interface LoadResult {
  rps: number;
  p50_ms: number;
  p99_ms: number;
  errors: number;
  requests: number;
}

/** One target of the load: where, and with which headers. */
interface LoadRow {
  name: string;
  port: number;
  path: string;
  headers: Record<string, string>;
}

/**
 * `connections` loops of sequential GETs over one keep-alive agent per row.
 * The rows take turns in slices of `sliceMs` until each had `ms` in total, so
 * background load on this shared machine (other processes come and go) falls
 * on every row alike and the ratios between rows stay fair.
 */
async function loadInterleaved(rows: readonly LoadRow[], connections: number, ms: number, sliceMs: number): Promise<Record<string, LoadResult>> {
  const state = rows.map((row) => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: connections, maxFreeSockets: connections });
    const one = () =>
      new Promise<number>((resolve) => {
        const t0 = process.hrtime.bigint();
        const req = http.request({ host: HOST, port: row.port, path: row.path, headers: row.headers, agent }, (res) => {
          res.on("data", () => {});
          res.on("end", () => resolve(res.statusCode === 200 ? Number(process.hrtime.bigint() - t0) / 1e6 : -1));
        });
        req.on("error", () => resolve(-1));
        req.end();
      });
    return { row, agent, one, lat: [] as number[], errors: 0, elapsedMs: 0 };
  });
  // Warm-up: open every connection of every row.
  for (const st of state) await Promise.all(Array.from({ length: connections }, () => st.one()));
  for (let done = 0; done < ms; done += sliceMs) {
    for (const st of state) {
      const start = performance.now();
      const deadline = start + Math.min(sliceMs, ms - done);
      await Promise.all(
        Array.from({ length: connections }, async () => {
          while (performance.now() < deadline) {
            const l = await st.one();
            if (l < 0) st.errors++;
            else st.lat.push(l);
          }
        }),
      );
      st.elapsedMs += performance.now() - start;
    }
  }
  const out: Record<string, LoadResult> = {};
  for (const st of state) {
    st.agent.destroy();
    const s = summarize(st.lat);
    out[st.row.name] = { rps: round(st.lat.length / (st.elapsedMs / 1000), 0), p50_ms: round(s.p50, 3), p99_ms: round(s.p99, 3), errors: st.errors, requests: st.lat.length };
  }
  return out;
}

/** Upgrade handshake time (request written -> 101 read), ms, sequential. */
async function upgradeTimes(port: number, pathname: string, n: number, headers: Record<string, string>): Promise<number[]> {
  const { openWs } = await import("../test/helpers/ws-frames.ts");
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = process.hrtime.bigint();
    const ws = await openWs(port, pathname, headers);
    const t = Number(process.hrtime.bigint() - t0) / 1e6;
    if (ws.response.status !== 101) throw new Error(`upgrade answered ${ws.response.status}`);
    if (i === 0) await ws.roundTrip("warm");
    ws.close();
    out.push(t);
  }
  return out;
}

// ------------------------------------------------------------------ bench

/** Runs the proxy benchmark; writes bench/results/proxy.json. */
export async function benchProxy(opts: { quick: boolean; repeats: number }): Promise<BenchResult> {
  const ms = opts.quick ? 2000 : 5000;
  const started: Array<() => Promise<void>> = [];
  const details: Record<string, unknown>[] = [];
  try {
    const target = await startChild(["--child", "target"]);
    started.push(() => stopPid(target.child));
    const tport = target.info.port;
    const proxy = await startChild(["--child", "proxy", String(tport)]);
    started.push(() => stopPid(proxy.child));
    const auth = { authorization: `Bearer ${proxy.info.token}` };
    const bin = findNginx();
    const nginx = bin ? await startNginx(bin, tport) : null;
    if (nginx) started.push(nginx.stop);

    const rows: LoadRow[] = [
      { name: "direct", port: tport, path: "/x", headers: {} },
      ...(nginx ? [{ name: "nginx", port: nginx.port, path: `/proxy/${tport}/x`, headers: {} }] : []),
      { name: "openrunner", port: proxy.info.port, path: `/proxy/${tport}/x`, headers: auth },
    ];
    for (let rep = 0; rep < opts.repeats; rep++) {
      const d: Record<string, unknown> = {};
      for (const c of [1, 50]) {
        const r = await loadInterleaved(rows, c, ms, 500);
        for (const row of rows) d[`${row.name}_c${c}`] = r[row.name];
      }
      const n = opts.quick ? 50 : 200;
      d.ws_upgrade_direct_ms = summarize(await upgradeTimes(tport, "/ws", n, {}));
      d.ws_upgrade_openrunner_ms = summarize(await upgradeTimes(proxy.info.port, `/proxy/${tport}/ws`, n, auth));
      if (nginx) d.ws_upgrade_nginx_ms = summarize(await upgradeTimes(nginx.port, `/proxy/${tport}/ws`, n, {}));
      details.push(d);
    }
  } finally {
    for (const stop of started.reverse()) await stop();
  }
  const v = (key: string, field: keyof LoadResult) => details.map((d) => (d[key] as LoadResult | undefined)?.[field] ?? NaN);
  const figures = [];
  for (const c of [1, 50]) {
    for (const name of ["direct", "nginx", "openrunner"]) {
      if (Number.isNaN(v(`${name}_c${c}`, "rps")[0])) continue;
      figures.push(figure(`${name} c=${c} req/s`, "req/s", "higher", v(`${name}_c${c}`, "rps")));
      figures.push(figure(`${name} c=${c} p50`, "ms", "lower", v(`${name}_c${c}`, "p50_ms")));
      figures.push(figure(`${name} c=${c} p99`, "ms", "lower", v(`${name}_c${c}`, "p99_ms")));
    }
    const ratio = details.map((d) => (d[`openrunner_c${c}`] as LoadResult).rps / ((d[`nginx_c${c}`] as LoadResult | undefined)?.rps ?? NaN));
    if (!ratio.some(Number.isNaN)) {
      figures.push(figure(`openrunner/nginx c=${c} req/s`, "ratio", "higher", ratio, { op: ">=", value: 0.5 }));
      const p99ratio = details.map((d) => (d[`openrunner_c${c}`] as LoadResult).p99_ms / (d[`nginx_c${c}`] as LoadResult).p99_ms);
      figures.push(figure(`openrunner/nginx c=${c} p99`, "ratio", "lower", p99ratio, { op: "<", value: 2 }));
    }
  }
  figures.push(figure("ws upgrade via openrunner p50", "ms", "lower", details.map((d) => (d.ws_upgrade_openrunner_ms as { p50: number }).p50), { op: "<", value: 2 }));
  figures.push(figure("ws upgrade direct p50", "ms", "lower", details.map((d) => (d.ws_upgrade_direct_ms as { p50: number }).p50)));
  const result: BenchResult = { name: "proxy", startedAt: new Date().toISOString(), quick: opts.quick, repeats: opts.repeats, figures, details: { runs: details, cores: os.cpus().length, nginx: findNginx() ?? "not installed" } };
  writeResult(RESULTS, result);
  return result;
}

async function main(): Promise<void> {
  const { values, positionals } = parseArgs({ options: { quick: { type: "boolean", default: false }, repeats: { type: "string" }, child: { type: "string" } }, allowPositionals: true });
  if (values.child === "target") return runTarget();
  if (values.child === "proxy") return runProxy(Number(positionals[0]));
  const r = await benchProxy({ quick: values.quick ?? false, repeats: Number(values.repeats ?? (values.quick ? 1 : 3)) });
  for (const f of r.figures) console.log(`${f.metric.padEnd(34)} ${String(f.best).padStart(10)} ${f.unit}${f.target ? `  target ${f.target} ${f.pass ? "ok" : "MISS"}` : ""}`);
}

if (process.argv[1] && path.resolve(process.argv[1]) === SELF) {
  main().catch((err) => {
    console.error(err);
    process.exitCode = 1;
  });
}
