/**
 * The distributed mode for the benchmarks: one API server (`src/main.ts serve` through
 * {@link startBenchServer}) and W workers (`src/main.ts worker`, each with its own data folder) on
 * one PostgreSQL database. Every process is a tracked child, stopped by PID (workers first, so
 * their runs end while the API server still serves). PostgreSQL itself is the tests' throw-away
 * cluster (test/helpers/postgres.ts: 127.0.0.1, fsync off), started once per benchmark; each
 * bench cluster gets a fresh database of it. Also: CPU time of the PostgreSQL server (the
 * postmaster and its backends) from /proc, to see where the time goes.
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import pg from "pg";
import { processCpuMs, stopChild, track } from "./procs.ts";
import { ROOT, startBenchServer, type BenchServer } from "./server.ts";

/** Shared by the API server and (harmlessly) the workers; 32 characters or more. */
export const BENCH_JWT_SECRET = "bench-cluster-jwt-secret-0123456789abcdef";

/** One worker process. */
export interface BenchWorker {
  id: string;
  pid: number;
  proc: ChildProcess;
  dataDir: string;
  output(): string;
}

/** The API server (its `url`, `token` … as a {@link BenchServer}) and its workers. */
export interface BenchCluster extends BenchServer {
  databaseUrl: string;
  workers: BenchWorker[];
}

export interface BenchClusterOptions {
  databaseUrl: string;
  workers: number;
  /** Runs at once per worker (`--capacity`). */
  capacity: number;
  /** Environment of every process (limits, heartbeat …). */
  env?: Record<string, string>;
  /** V8 CPU profiles of the API server into `<dir>/api`, of the workers into `<dir>/workers`. */
  cpuProfDir?: string;
}

async function spawnWorker(databaseUrl: string, capacity: number, env: Record<string, string>, cpuProfDir?: string): Promise<BenchWorker> {
  const dataDir = mkdtempSync(path.join(os.tmpdir(), "openrunner-bench-worker-"));
  const prof: string[] = [];
  if (cpuProfDir) {
    mkdirSync(cpuProfDir, { recursive: true });
    prof.push("--cpu-prof", `--cpu-prof-dir=${cpuProfDir}`);
  }
  const proc = track(
    spawn(process.execPath, ["--import", "tsx", ...prof, path.join(ROOT, "src/main.ts"), "worker", "--capacity", String(capacity)], {
      cwd: ROOT,
      env: {
        PATH: process.env.PATH ?? "/usr/bin:/bin",
        HOME: process.env.HOME ?? "/root",
        OPENRUNNER_DATA_DIR: dataDir,
        OPENRUNNER_LOG_LEVEL: "warn",
        OPENRUNNER_KILL_GRACE_MS: "2000",
        OPENRUNNER_DATABASE_URL: databaseUrl,
        OPENRUNNER_JWT_SECRET: BENCH_JWT_SECRET,
        ...env,
      },
      stdio: ["ignore", "pipe", "pipe"],
    }),
  );
  let out = "";
  proc.stdout!.setEncoding("utf8").on("data", (d: string) => (out += d));
  proc.stderr!.setEncoding("utf8").on("data", (d: string) => (out += d));
  try {
    const id = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`worker did not start in 60 s:\n${out}`)), 60_000);
      const check = () => {
        const m = /OpenRunner worker (wrk_\S+) ready: /.exec(out);
        if (m) {
          clearTimeout(timer);
          resolve(m[1]!);
        }
      };
      proc.stdout!.on("data", check);
      proc.once("exit", (code) => {
        clearTimeout(timer);
        reject(new Error(`worker exited with ${code}:\n${out}`));
      });
    });
    return { id, pid: proc.pid!, proc, dataDir, output: () => out };
  } catch (err) {
    await stopChild(proc, 5000);
    rmSync(dataDir, { recursive: true, force: true });
    throw err;
  }
}

/** Starts the API server, then the workers (each registered and claiming once it returns). */
export async function startBenchCluster(opts: BenchClusterOptions): Promise<BenchCluster> {
  const env = { ...opts.env };
  const api = await startBenchServer({ env: { ...env, OPENRUNNER_DATABASE_URL: opts.databaseUrl, OPENRUNNER_JWT_SECRET: BENCH_JWT_SECRET }, ...(opts.cpuProfDir ? { cpuProfDir: path.join(opts.cpuProfDir, "api") } : {}) });
  const workers: BenchWorker[] = [];
  const stop = async () => {
    // workers first: their SIGTERM ends their runs while the API server still serves
    await Promise.all(workers.map((w) => stopChild(w.proc, 20_000)));
    for (const w of workers) rmSync(w.dataDir, { recursive: true, force: true });
    await api.stop();
  };
  try {
    // one at a time: on 2 cores, parallel tsx start-ups only slow each other down
    for (let i = 0; i < opts.workers; i++) workers.push(await spawnWorker(opts.databaseUrl, opts.capacity, env, opts.cpuProfDir ? path.join(opts.cpuProfDir, "workers") : undefined));
  } catch (err) {
    await stop();
    throw err;
  }
  return { ...api, databaseUrl: opts.databaseUrl, workers, stop };
}

/** One query on a short-lived connection (bench-side reads of the store: claims per worker …). */
export async function queryOnce<T extends pg.QueryResultRow>(url: string, sql: string, params: unknown[] = []): Promise<T[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query<T>(sql, params)).rows;
  } finally {
    await client.end();
  }
}

/** The PID of the PostgreSQL server behind `url` (the parent of a backend). */
export async function postmasterPid(url: string): Promise<number> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    // read while the backend is alive (it exits with the connection)
    const { rows } = await client.query<{ pid: number }>("SELECT pg_backend_pid() AS pid");
    return Number(statFields(rows[0]!.pid)[1]);
  } finally {
    await client.end();
  }
}

let msPerTick: number | undefined;

function statFields(pid: number): string[] {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  // after "pid (comm) ": state 0, ppid 1, utime 11, stime 12, cutime 13, cstime 14 (clock ticks)
  return stat.slice(stat.lastIndexOf(")") + 2).split(" ");
}

/**
 * CPU time (ms) of the PostgreSQL server so far: the postmaster's own and its waited-for children's
 * (cutime/cstime: backends that exited), plus every live child's (backends, walwriter …). NaN where
 * /proc is unavailable. Differences over an interval are what counts.
 */
export function postgresCpuMs(postmaster: number): number {
  try {
    msPerTick ??= 1000 / (Number(spawnSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).stdout.trim()) || 100);
    const f = statFields(postmaster);
    let ms = (Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14])) * msPerTick;
    for (const name of readdirSync("/proc")) {
      if (!/^\d+$/.test(name) || Number(name) === postmaster) continue;
      try {
        if (Number(statFields(Number(name))[1]) === postmaster) ms += processCpuMs(Number(name));
      } catch {
        // gone meanwhile
      }
    }
    return ms;
  } catch {
    return Number.NaN;
  }
}
