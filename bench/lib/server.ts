/**
 * Starts the real server (`src/main.ts serve`) as a child process on
 * 127.0.0.1:0 with a temporary data folder, so client and server run on
 * separate event loops. Optional `--cpu-prof` and a bench-only probe module
 * (loaded with `--import`, never editing src/). Stopped by PID.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { requestJson } from "./http.ts";
import { stopChild, track } from "./procs.ts";

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const ADMIN_PASSWORD = "bench-admin-password-1";

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

/** Spawns the server and logs in as the admin. */
export async function startBenchServer(opts: BenchServerOptions = {}): Promise<BenchServer> {
  const dataDir = mkdtempSync(path.join(os.tmpdir(), "openrunner-bench-"));
  const nodeArgs = ["--import", "tsx"];
  if (opts.probeOut) nodeArgs.push("--import", path.join(ROOT, "bench/lib/probe.ts"));
  if (opts.cpuProfDir) {
    mkdirSync(opts.cpuProfDir, { recursive: true });
    nodeArgs.push("--cpu-prof", `--cpu-prof-dir=${opts.cpuProfDir}`);
  }
  const proc = track(
    spawn(process.execPath, [...nodeArgs, path.join(ROOT, "src/main.ts"), "serve"], {
      cwd: ROOT,
      env: {
        PATH: process.env.PATH ?? "/usr/bin:/bin",
        HOME: process.env.HOME ?? "/root",
        OPENRUNNER_ADDR: "127.0.0.1:0",
        OPENRUNNER_DATA_DIR: dataDir,
        OPENRUNNER_ADMIN_PASSWORD: ADMIN_PASSWORD,
        OPENRUNNER_LOG_LEVEL: "warn",
        OPENRUNNER_KILL_GRACE_MS: "2000",
        ...(opts.probeOut ? { BENCH_PROBE_OUT: opts.probeOut } : {}),
        ...opts.env,
      },
      stdio: ["ignore", "pipe", "pipe"],
    }),
  );
  let out = "";
  proc.stdout!.setEncoding("utf8").on("data", (d: string) => (out = (out + d).slice(-20_000)));
  proc.stderr!.setEncoding("utf8").on("data", (d: string) => (out = (out + d).slice(-20_000)));
  const stop = async () => {
    await stopChild(proc);
    rmSync(dataDir, { recursive: true, force: true });
  };
  try {
    const url = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`server did not start in 60 s:\n${out}`)), 60_000);
      const check = () => {
        const m = /listening on (http:\/\/[^\s]+)/.exec(out);
        if (m) {
          clearTimeout(timer);
          proc.stdout!.off("data", check);
          proc.off("exit", onExit);
          resolve(m[1]!);
        }
      };
      const onExit = (code: number | null) => {
        clearTimeout(timer);
        reject(new Error(`server exited with ${code}:\n${out}`));
      };
      proc.stdout!.on("data", check);
      proc.once("exit", onExit);
    });
    const u = new URL(url);
    const login = await requestJson<{ token: string }>(url, "POST", "/api/auth/login", { username: "admin", password: ADMIN_PASSWORD });
    if (login.status !== 200) throw new Error(`login failed: ${login.status} ${JSON.stringify(login.body)}`);
    return { url, host: u.hostname, port: Number(u.port), pid: proc.pid!, token: login.body.token, dataDir, proc, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}
