/**
 * Tunnel benchmark (issue 6), all on loopback, same load loop for every row:
 *
 * - HTTP: requests/s and p50/p99 for a 1 KB response at 1 and 50 keep-alive
 *   connections (node:http Agent loop; autocannon is not a dependency):
 *   direct, through the tunnel, and through `ssh -N -R` when sshd exists.
 * - New-connection latency (connect, 1 byte out, 1 byte back) through a
 *   dedicated raw-TCP tunnel port: pool warm (size 4) vs empty (size 0).
 * - Bulk: 1 GiB of raw TCP into a discard server: direct, tunnel, ssh.
 *
 * The origin, the relay and the tunnel client each run in their own child
 * process (as sshd and ssh do), the load loop in this one; every child is
 * stopped by PID. Writes bench/results/tunnel.json.
 *
 *   node --import tsx bench/tunnel.ts [--quick] [--repeats N]
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { existsSync, mkdtempSync, rmSync, writeFileSync, chmodSync } from "node:fs";
import http from "node:http";
import net, { type AddressInfo } from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { setTimeout as sleep } from "node:timers/promises";
import { killAllTracked, stopChild, track } from "./lib/procs.ts";
import { figure, writeResult, type BenchResult } from "./lib/result.ts";
import { round, summarize } from "./lib/stats.ts";

const HOST = "127.0.0.1";
const SECRET = "bench-secret-0123456789";
const SELF = fileURLToPath(import.meta.url);
const RESULTS = path.join(path.dirname(SELF), "results");

// ---------------------------------------------------------------- child roles

/** Child: origin servers (1 KB HTTP, 1-byte echo, discard sink); prints their ports. */
async function runOrigin(): Promise<void> {
  const body = Buffer.alloc(1024, 0x78);
  const httpSrv = http.createServer((_req, res) => {
    res.writeHead(200, { "content-type": "application/octet-stream", "content-length": body.length });
    res.end(body);
  });
  httpSrv.keepAliveTimeout = 60_000;
  const echo = net.createServer((s) => {
    s.setNoDelay(true);
    s.on("error", () => {});
    s.pipe(s);
  });
  const sink = net.createServer({ allowHalfOpen: true }, (s) => {
    let n = 0;
    s.on("data", (c: Buffer) => (n += c.length));
    s.on("end", () => s.end(String(n)));
    s.on("error", () => {});
  });
  const ports = await Promise.all([httpSrv, echo, sink].map(async (srv) => (srv.listen(0, HOST), await once(srv, "listening"), (srv.address() as AddressInfo).port)));
  process.stdout.write(`${JSON.stringify({ http: ports[0], echo: ports[1], sink: ports[2] })}\n`);
}

/** Child: a relay with dedicated TCP ports for the echo and sink clients. */
async function runRelay(poolSize: number, socketBufferBytes?: number): Promise<void> {
  const { startTunnelServer } = await import("../src/tunnel/server.ts");
  const relay = await startTunnelServer({ host: HOST, controlPort: 0, proxyPort: 0, publicPort: 0, auth: { kind: "secret", secret: SECRET }, poolSize, tcpPorts: { echo: 0, sink: 0 }, maxWaiting: 1024, ...(socketBufferBytes ? { socketBufferBytes } : {}) });
  process.stdout.write(`${JSON.stringify(relay.ports)}\n`);
}

/** Child: tunnel clients for http, echo and sink. */
async function runClients(controlPort: number, targets: Record<string, number>, socketBufferBytes?: number): Promise<void> {
  const { startTunnelClient } = await import("../src/tunnel/client.ts");
  const clients = Object.entries(targets).map(([id, port]) => startTunnelClient({ host: HOST, controlPort, clientId: id, secret: SECRET, localPort: port, ...(socketBufferBytes ? { socketBufferBytes } : {}) }));
  await Promise.all(clients.map((c) => c.waitRegistered(10_000)));
  process.stdout.write("ready\n");
}

// ---------------------------------------------------------------- parent helpers

/** Starts this file in a role; resolves with its first stdout line. */
async function startChild(args: string[]): Promise<{ child: ChildProcess; line: string }> {
  // BENCH_TUNNEL_PROF=<dir>: V8 CPU profiles of the relay and client children (bench/profile-top.ts reads them).
  const prof = process.env.BENCH_TUNNEL_PROF && (args[0] === "relay" || args[0] === "clients") ? ["--cpu-prof", `--cpu-prof-dir=${process.env.BENCH_TUNNEL_PROF}`] : [];
  const child = track(spawn(process.execPath, [...prof, "--import", "tsx", SELF, ...args], { stdio: ["ignore", "pipe", "inherit"] }));
  let buf = "";
  const line = await new Promise<string>((resolve, reject) => {
    child.stdout!.on("data", (c: Buffer) => {
      buf += c.toString();
      const i = buf.indexOf("\n");
      if (i >= 0) resolve(buf.slice(0, i));
    });
    child.once("exit", (code) => reject(new Error(`child ${args[0]} exited with ${code}`)));
  });
  child.stdout!.resume();
  return { child, line };
}

/** Keep-alive load loop: `conns` workers, each one request after another, for `ms`. */
async function loadHttp(port: number, urlPath: string, conns: number, ms: number, warmupMs: number): Promise<{ rps: number; p50: number; p99: number; errors: number }> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: conns, maxFreeSockets: conns });
  const lat: number[] = [];
  let errors = 0;
  let recording = false;
  let stop = false;
  const one = () =>
    new Promise<void>((resolve) => {
      const t0 = performance.now();
      const req = http.get({ host: HOST, port, path: urlPath, agent }, (res) => {
        res.on("data", () => {});
        res.on("end", () => {
          if (recording) lat.push(performance.now() - t0);
          resolve();
        });
      });
      req.on("error", () => {
        errors += 1;
        resolve();
      });
    });
  const worker = async () => {
    while (!stop) await one();
  };
  const workers = Array.from({ length: conns }, worker);
  await sleep(warmupMs);
  recording = true;
  const t0 = performance.now();
  await sleep(ms);
  recording = false;
  const elapsed = performance.now() - t0;
  stop = true;
  await Promise.all(workers);
  agent.destroy();
  const s = summarize(lat);
  return { rps: lat.length / (elapsed / 1000), p50: s.p50, p99: s.p99, errors };
}

/** New-connection latency: connect, send 1 byte, wait for the echo; sequential, `gapMs` apart. */
async function connectLatency(port: number, n: number, gapMs: number): Promise<{ p50: number; p99: number }> {
  const lat: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    await new Promise<void>((resolve, reject) => {
      const s = net.connect({ host: HOST, port, noDelay: true }, () => s.write("x"));
      s.once("data", () => {
        lat.push(performance.now() - t0);
        s.destroy();
        resolve();
      });
      s.once("error", reject);
    });
    await sleep(gapMs);
  }
  const s = summarize(lat);
  return { p50: s.p50, p99: s.p99 };
}

/** Sends `bytes` into the discard sink through `port`; MiB/s. */
async function bulk(port: number, bytes: number): Promise<number> {
  const chunk = Buffer.alloc(1024 * 1024, 0x7a);
  const t0 = performance.now();
  const counted = await new Promise<number>((resolve, reject) => {
    const s = net.connect({ host: HOST, port, allowHalfOpen: true }, () => {
      let left = bytes;
      const pump = () => {
        while (left > 0) {
          left -= chunk.length;
          if (!s.write(chunk)) return void s.once("drain", pump);
        }
        s.end();
      };
      pump();
    });
    let reply = "";
    s.on("data", (c: Buffer) => (reply += c.toString()));
    s.on("end", () => resolve(Number(reply)));
    s.on("error", reject);
  });
  const secs = (performance.now() - t0) / 1000;
  if (counted !== bytes) throw new Error(`bulk: sink counted ${counted} of ${bytes} bytes`);
  return bytes / 1024 / 1024 / secs;
}

/** Own sshd (temp dir: host key, authorized_keys, config, port) and `ssh -N -R`, or undefined when sshd is absent. */
async function startSshAnchor(targets: Record<string, number>): Promise<{ ports: Record<string, number>; stop: () => Promise<void>; note: string } | undefined> {
  const sshd = "/usr/sbin/sshd";
  if (!existsSync(sshd) || !existsSync("/usr/bin/ssh") || !existsSync("/usr/bin/ssh-keygen")) return undefined;
  const dir = mkdtempSync(path.join(os.tmpdir(), "bench-sshd-"));
  const keygen = (file: string) => spawnSync("/usr/bin/ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", file], { stdio: "ignore" });
  keygen(path.join(dir, "host_key"));
  keygen(path.join(dir, "user_key"));
  spawnSync("cp", [path.join(dir, "user_key.pub"), path.join(dir, "authorized_keys")]);
  chmodSync(dir, 0o700);
  const free = async () => {
    const s = net.createServer().listen(0, HOST);
    await once(s, "listening");
    const p = (s.address() as AddressInfo).port;
    await new Promise((r) => s.close(r));
    return p;
  };
  const sshPort = await free();
  writeFileSync(
    path.join(dir, "sshd_config"),
    [`Port ${sshPort}`, `ListenAddress ${HOST}`, `HostKey ${dir}/host_key`, `AuthorizedKeysFile ${dir}/authorized_keys`, `PidFile ${dir}/sshd.pid`, "UsePAM no", "StrictModes no", "PasswordAuthentication no", "AllowTcpForwarding yes", "GatewayPorts no", "PermitRootLogin prohibit-password"].join("\n") + "\n",
  );
  const daemon = track(spawn(sshd, ["-D", "-e", "-f", path.join(dir, "sshd_config")], { stdio: ["ignore", "ignore", "pipe"] }));
  let daemonErr = "";
  daemon.stderr!.on("data", (c: Buffer) => (daemonErr += c.toString()));
  await sleep(300);
  if (daemon.exitCode !== null) {
    rmSync(dir, { recursive: true, force: true });
    return { ports: {}, stop: async () => {}, note: `sshd did not start: ${daemonErr.trim().slice(0, 200)}` };
  }
  const ports: Record<string, number> = {};
  const forwards: string[] = [];
  for (const [name, target] of Object.entries(targets)) {
    ports[name] = await free();
    forwards.push("-R", `${HOST}:${ports[name]}:${HOST}:${target}`);
  }
  const client = track(
    spawn("/usr/bin/ssh", ["-N", "-T", "-p", String(sshPort), "-i", path.join(dir, "user_key"), "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "ExitOnForwardFailure=yes", "-o", "LogLevel=ERROR", ...forwards, `${os.userInfo().username}@${HOST}`], { stdio: "ignore" }),
  );
  const deadline = Date.now() + 5000;
  for (const p of Object.values(ports)) {
    for (;;) {
      const ok = await new Promise<boolean>((resolve) => {
        const s = net.connect(p, HOST, () => (s.destroy(), resolve(true)));
        s.on("error", () => resolve(false));
      });
      if (ok) break;
      if (Date.now() > deadline || client.exitCode !== null) {
        await stopChild(client, 2000);
        await stopChild(daemon, 2000);
        rmSync(dir, { recursive: true, force: true });
        return { ports: {}, stop: async () => {}, note: `ssh -R forward did not come up; sshd said: ${daemonErr.trim().slice(0, 200)}` };
      }
      await sleep(50);
    }
  }
  return {
    ports,
    note: `own sshd on ${HOST}:${sshPort} (temp host key, authorized_keys), ssh -N -R`,
    stop: async () => {
      await stopChild(client, 2000);
      await stopChild(daemon, 2000);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export { bulk, connectLatency, loadHttp, startChild };

// ---------------------------------------------------------------- the benchmark

/** Runs the tunnel benchmark; `quick` scales durations and sizes down. */
export async function benchTunnel(opts: { quick: boolean; repeats: number }): Promise<BenchResult> {
  const started = new Date().toISOString();
  const ms = opts.quick ? 1000 : 3000;
  const warm = opts.quick ? 300 : 700;
  const bulkBytes = opts.quick ? 256 * 1024 * 1024 : 1024 * 1024 * 1024;
  const connN = opts.quick ? 100 : 300;
  const origin = await startChild(["origin"]);
  const o = JSON.parse(origin.line) as { http: number; echo: number; sink: number };
  const stops: Array<() => Promise<void>> = [() => stopChild(origin.child, 5000)];
  const details: Record<string, unknown> = { origin: o };
  const rows: Record<string, number[]> = {};
  const add = (k: string, v: number) => (rows[k] ??= []).push(round(v, 3));
  try {
    const setups: Array<{ name: string; pool: number }> = [{ name: "warm", pool: 4 }, { name: "empty", pool: 0 }];
    const relays: Record<string, { tcp: Record<string, number>; public: number }> = {};
    for (const s of setups) {
      const relay = await startChild(["relay", String(s.pool)]);
      const ports = JSON.parse(relay.line) as { control: number; public: number; tcp: Record<string, number> };
      const clients = await startChild(["clients", String(ports.control), JSON.stringify({ http: o.http, echo: o.echo, sink: o.sink })]);
      stops.push(() => stopChild(clients.child, 5000), () => stopChild(relay.child, 5000));
      relays[s.name] = ports;
    }
    const ssh = await startSshAnchor({ http: o.http, echo: o.echo, sink: o.sink });
    if (ssh) stops.push(ssh.stop);
    details.ssh = ssh ? ssh.note : "sshd not installed: no ssh -R anchor";
    const hasSsh = ssh !== undefined && ssh.ports.http !== undefined;
    const warmRelay = relays.warm!;
    const paths: Record<string, { port: number; path: string }> = { direct: { port: o.http, path: "/" }, tunnel: { port: warmRelay.public, path: "/?token=http" } };
    if (hasSsh) paths.ssh = { port: ssh.ports.http!, path: "/" };
    for (let r = 0; r < opts.repeats; r++) {
      for (const conns of [1, 50]) {
        for (const [name, t] of Object.entries(paths)) {
          const res = await loadHttp(t.port, t.path, conns, ms, warm);
          add(`http c=${conns} ${name} req/s`, res.rps);
          add(`http c=${conns} ${name} p50`, res.p50);
          add(`http c=${conns} ${name} p99`, res.p99);
          if (res.errors) add(`http c=${conns} ${name} errors`, res.errors);
        }
      }
      const lat: Record<string, number> = { direct: o.echo, "tunnel pool warm": warmRelay.tcp.echo!, "tunnel pool empty": relays.empty!.tcp.echo! };
      if (hasSsh) lat.ssh = ssh.ports.echo!;
      for (const [name, port] of Object.entries(lat)) {
        const res = await connectLatency(port, connN, 2);
        add(`new conn ${name} p50`, res.p50);
        add(`new conn ${name} p99`, res.p99);
      }
      const sinks: Record<string, number> = { direct: o.sink, tunnel: warmRelay.tcp.sink! };
      if (hasSsh) sinks.ssh = ssh.ports.sink!;
      for (const [name, port] of Object.entries(sinks)) add(`bulk ${name} MiB/s`, await bulk(port, bulkBytes));
    }
  } finally {
    for (const stop of stops.reverse()) await stop().catch(() => {});
  }
  details.rows = rows;
  details.bulk_bytes = bulkBytes;
  details.durations_ms = { measure: ms, warmup: warm };
  const v = (k: string) => rows[k] ?? [];
  const best = (k: string, better: "higher" | "lower") => (v(k).length ? (better === "higher" ? Math.max(...v(k)) : Math.min(...v(k))) : Number.NaN);
  const figures = [];
  for (const c of [1, 50]) {
    const sshRps = best(`http c=${c} ssh req/s`, "higher");
    figures.push(figure(`http c=${c} direct req/s`, "req/s", "higher", v(`http c=${c} direct req/s`)));
    // The limit for the tunnel's latency too: at c=50, p50 >= 50 / req/s (Little's law), whatever the tunnel does.
    figures.push(figure(`http c=${c} direct p50`, "ms", "lower", v(`http c=${c} direct p50`)));
    figures.push(figure(`http c=${c} direct p99`, "ms", "lower", v(`http c=${c} direct p99`)));
    if (v(`http c=${c} ssh req/s`).length) figures.push(figure(`http c=${c} ssh -R req/s`, "req/s", "higher", v(`http c=${c} ssh req/s`)));
    figures.push(figure(`http c=${c} tunnel req/s`, "req/s", "higher", v(`http c=${c} tunnel req/s`), Number.isFinite(sshRps) ? { op: ">=", value: round(1.5 * sshRps, 0) } : undefined));
    if (v(`http c=${c} ssh p99`).length) figures.push(figure(`http c=${c} ssh -R p99`, "ms", "lower", v(`http c=${c} ssh p99`)));
    figures.push(figure(`http c=${c} tunnel p50`, "ms", "lower", v(`http c=${c} tunnel p50`)));
    figures.push(figure(`http c=${c} tunnel p99`, "ms", "lower", v(`http c=${c} tunnel p99`), { op: "<", value: 10 }));
  }
  figures.push(figure("new conn direct p50", "ms", "lower", v("new conn direct p50")));
  figures.push(figure("new conn tunnel pool warm p50", "ms", "lower", v("new conn tunnel pool warm p50"), { op: "<", value: 1 }));
  figures.push(figure("new conn tunnel pool empty p50", "ms", "lower", v("new conn tunnel pool empty p50")));
  if (v("new conn ssh p50").length) figures.push(figure("new conn ssh -R p50", "ms", "lower", v("new conn ssh p50")));
  const sshBulk = best("bulk ssh MiB/s", "higher");
  figures.push(figure("bulk direct", "MiB/s", "higher", v("bulk direct MiB/s")));
  if (v("bulk ssh MiB/s").length) figures.push(figure("bulk ssh -R", "MiB/s", "higher", v("bulk ssh MiB/s")));
  figures.push(figure("bulk tunnel", "MiB/s", "higher", v("bulk tunnel MiB/s"), Number.isFinite(sshBulk) ? { op: ">=", value: round(2 * sshBulk, 0) } : undefined));
  return { name: "tunnel", startedAt: started, quick: opts.quick, repeats: opts.repeats, figures, details };
}

// ---------------------------------------------------------------- entry

const [role, ...rest] = process.argv.slice(2);
// A clean exit on SIGTERM writes the --cpu-prof profile of a child role.
if (role === "origin" || role === "relay" || role === "clients") process.once("SIGTERM", () => process.exit(0));
if (role === "origin") await runOrigin();
else if (role === "relay") await runRelay(Number(rest[0]), rest[1] ? Number(rest[1]) : undefined);
else if (role === "clients") await runClients(Number(rest[0]), JSON.parse(rest[1]!) as Record<string, number>, rest[2] ? Number(rest[2]) : undefined);
else if (process.argv[1] === SELF) {
  const quick = process.argv.includes("--quick");
  const onSignal = () => {
    killAllTracked();
    process.exit(130);
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  try {
    const i = process.argv.indexOf("--repeats");
    const repeats = i > 0 ? Number(process.argv[i + 1]) : 1;
    const result = await benchTunnel({ quick, repeats: Number.isInteger(repeats) && repeats > 0 ? repeats : 1 });
    const file = writeResult(RESULTS, result);
    for (const f of result.figures) console.log(`${f.metric.padEnd(36)} ${String(f.best).padStart(10)} ${f.unit}${f.target ? `  target ${f.target} ${f.pass ? "ok" : "MISSED"}` : ""}`);
    console.log(`wrote ${file}`);
  } catch (err) {
    killAllTracked();
    console.error(err);
    process.exitCode = 1;
  }
}
