/**
 * Starts the real server (`src/main.ts serve`) as a child process on port 0 with
 * a temporary data folder, and reads the URL it prints. For end-to-end tests.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
export const ADMIN_PASSWORD = "test-admin-password-1";

export interface TestServer {
  url: string;
  dataDir: string;
  proc: ChildProcess;
  /** stdout+stderr so far. */
  output(): string;
  /** Logs in and returns a bearer token. */
  login(username?: string, password?: string): Promise<string>;
  /** fetch against the server with an optional token. */
  api(pathname: string, init?: RequestInit & { token?: string; json?: unknown }): Promise<Response>;
  /** SIGTERM and wait for exit; returns the exit code. */
  stop(): Promise<number | null>;
  /** SIGKILL and wait. */
  kill9(): Promise<void>;
  /** Removes the data folder (after stop). */
  cleanup(): void;
}

export interface SpawnOptions {
  env?: Record<string, string>;
  /** Reuse a data folder (restart tests). */
  dataDir?: string;
  timeoutMs?: number;
  /** Extra arguments after `serve`. */
  args?: string[];
  /** Extra Node options before the script (e.g. `--cpu-prof`, `--import probe.ts`). */
  nodeArgs?: string[];
}

/** The `api` and `login` of a server listening at `url` (shared by every spawner of servers). */
export function serverClient(url: string): Pick<TestServer, "api" | "login"> {
  const api: TestServer["api"] = (pathname, init = {}) => {
    const headers = new Headers(init.headers);
    if (init.token) headers.set("Authorization", `Bearer ${init.token}`);
    let body = init.body;
    if (init.json !== undefined) {
      headers.set("Content-Type", "application/json");
      body = JSON.stringify(init.json);
    }
    return fetch(url + pathname, { ...init, headers, body });
  };
  return {
    api,
    async login(username = "admin", password = ADMIN_PASSWORD) {
      const res = await api("/api/auth/login", { method: "POST", json: { username, password } });
      if (res.status !== 200) throw new Error(`login failed: ${res.status} ${await res.text()}`);
      return ((await res.json()) as { token: string }).token;
    },
  };
}

/** Spawns the server and resolves when it listens. */
export async function spawnServer(opts: SpawnOptions = {}): Promise<TestServer> {
  const dataDir = opts.dataDir ?? mkdtempSync(path.join(os.tmpdir(), "openrunner-test-"));
  const proc = spawn(process.execPath, ["--import", "tsx", ...(opts.nodeArgs ?? []), path.join(ROOT, "src/main.ts"), "serve", ...(opts.args ?? [])], {
    cwd: ROOT,
    env: {
      PATH: process.env.PATH ?? "/usr/bin:/bin",
      HOME: process.env.HOME ?? "/root",
      OPENRUNNER_ADDR: "127.0.0.1:0",
      OPENRUNNER_DATA_DIR: dataDir,
      OPENRUNNER_ADMIN_PASSWORD: ADMIN_PASSWORD,
      OPENRUNNER_LOG_LEVEL: "warn",
      OPENRUNNER_KILL_GRACE_MS: "2000",
      ...opts.env,
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  proc.stdout!.setEncoding("utf8").on("data", (d: string) => (out += d));
  proc.stderr!.setEncoding("utf8").on("data", (d: string) => (out += d));
  const exited = new Promise<number | null>((r) => proc.once("exit", (code) => r(code)));
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server did not start in time:\n${out}`)), opts.timeoutMs ?? 30_000);
    const check = () => {
      const m = /listening on (http:\/\/[^\s]+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]!);
      }
    };
    proc.stdout!.on("data", check);
    proc.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`server exited with ${code}:\n${out}`));
    });
  });
  return {
    url,
    dataDir,
    proc,
    output: () => out,
    ...serverClient(url),
    async stop() {
      if (proc.exitCode !== null || proc.signalCode !== null) return proc.exitCode;
      proc.kill("SIGTERM");
      return exited;
    },
    async kill9() {
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      proc.kill("SIGKILL");
      await exited;
    },
    cleanup() {
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
