/**
 * Starts the real server (`src/main.ts serve`) as a child process on
 * 127.0.0.1:0 with a temporary data folder, so client and server run on
 * separate event loops. Optional `--cpu-prof` and a bench-only probe module
 * (loaded with `--import`, never editing src/). Stopped by PID.
 */
import type { ChildProcess } from "node:child_process";
import { mkdirSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { spawnServer } from "../../test/helpers/spawn-server.ts";
import { stopChild, track } from "./procs.ts";

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");

export interface BenchServer {
  url: string;
  host: string;
  port: number;
  pid: number;
  token: string;
  dataDir: string;
  proc: ChildProcess;
  /** SIGTERM by PID, wait for exit (SIGKILL after a grace), remove the data folder. */
  stop(): Promise<void>;
}

export interface BenchServerOptions {
  env?: Record<string, string>;
  /** Write a V8 CPU profile of the server into this folder. */
  cpuProfDir?: string;
  /** Load bench/lib/probe.ts in the server; it writes its counters to this file on exit. */
  probeOut?: string;
}

/** Spawns the server (through the tests' {@link spawnServer}) and logs in as the admin. */
export async function startBenchServer(opts: BenchServerOptions = {}): Promise<BenchServer> {
  const nodeArgs: string[] = [];
  if (opts.probeOut) nodeArgs.push("--import", path.join(ROOT, "bench/lib/probe.ts"));
  if (opts.cpuProfDir) {
    mkdirSync(opts.cpuProfDir, { recursive: true });
    nodeArgs.push("--cpu-prof", `--cpu-prof-dir=${opts.cpuProfDir}`);
  }
  const s = await spawnServer({
    nodeArgs,
    timeoutMs: 60_000,
    env: { ...(opts.probeOut ? { BENCH_PROBE_OUT: opts.probeOut } : {}), ...opts.env },
  });
  const proc = track(s.proc);
  const stop = async () => {
    await stopChild(proc);
    s.cleanup();
  };
  try {
    const token = await s.login();
    const u = new URL(s.url);
    return { url: s.url, host: u.hostname, port: Number(u.port), pid: proc.pid!, token, dataDir: s.dataDir, proc, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}
