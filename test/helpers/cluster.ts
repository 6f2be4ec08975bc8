/**
 * The distributed mode as real processes, for end-to-end tests: API servers (`src/main.ts serve`,
 * like `spawn-server.ts` makes them) and workers (`src/main.ts worker`) on one PostgreSQL database, each
 * with its own data folder; a registry that stops what it started (by PID) in an `after()` hook;
 * and an SSE reader that survives its server being killed (it returns what it got).
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { createParser, type EventSourceMessage } from "eventsource-parser";
import { ADMIN_PASSWORD, serverClient, type TestServer } from "./spawn-server.ts";
import { killQuietly, runProcesses } from "./processes.ts";
import type { SseMessage } from "./sse.ts";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");

/** The JWT secret every API server of a test cluster shares (32 or more characters). */
export const CLUSTER_JWT_SECRET = "test-cluster-jwt-secret-0123456789abcdef";

/** A worker process. */
export interface TestWorker {
  /** `wrk_<ulid>`, from its ready line. */
  id: string;
  pid: number;
  dataDir: string;
  proc: ChildProcess;
  /** The ready line's agents (`shell`, …). */
  agents: string[];
  /** stdout+stderr so far. */
  output(): string;
  /** SIGTERM (an ordered shutdown: its runs end), then SIGKILL after `graceMs`; resolves at exit. */
  stop(graceMs?: number): Promise<void>;
  /** SIGKILL and wait for the exit. */
  kill9(): Promise<void>;
  cleanup(): void;
}

/** Options of {@link spawnWorker} and {@link spawnApi}. */
export interface ClusterProcOptions {
  databaseUrl: string;
  /** More environment (limits, lease, config file …). */
  env?: Record<string, string>;
  /** Extra arguments after the command (`--capacity 6`). */
  args?: string[];
  timeoutMs?: number;
}

/** The environment every process of a test cluster gets. */
function clusterEnv(databaseUrl: string, env: Record<string, string> = {}): Record<string, string> {
  return { OPENRUNNER_DATABASE_URL: databaseUrl, OPENRUNNER_JWT_SECRET: CLUSTER_JWT_SECRET, ...env };
}

/** A child process of the cluster and its output, until its ready line matched `ready`. */
async function spawnNode(command: "serve" | "worker", env: Record<string, string>, args: string[], ready: RegExp, timeoutMs: number): Promise<{ proc: ChildProcess; match: RegExpExecArray; output: () => string; exited: Promise<void>; gone: () => boolean }> {
  const proc = spawn(process.execPath, ["--import", "tsx", path.join(ROOT, "src/main.ts"), command, ...args], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: process.env.HOME ?? "/root", OPENRUNNER_LOG_LEVEL: "warn", OPENRUNNER_KILL_GRACE_MS: "2000", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  proc.stdout!.setEncoding("utf8").on("data", (d: string) => (out += d));
  proc.stderr!.setEncoding("utf8").on("data", (d: string) => (out += d));
  const exited = new Promise<void>((r) => proc.once("exit", () => r()));
  const gone = () => proc.exitCode !== null || proc.signalCode !== null;
  try {
    const match = await new Promise<RegExpExecArray>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${command} (pid ${proc.pid}) did not start in time:\n${out}`)), timeoutMs);
      const check = () => {
        const m = ready.exec(out);
        if (m) {
          clearTimeout(timer);
          resolve(m);
        }
      };
      proc.stdout!.on("data", check);
      proc.once("exit", (code, signal) => {
        clearTimeout(timer);
        reject(new Error(`${command} (pid ${proc.pid}) exited with ${code ?? signal} before it was ready:\n${out}`));
      });
    });
    return { proc, match, output: () => out, exited, gone };
  } catch (err) {
    if (!gone()) proc.kill("SIGKILL");
    await exited;
    throw err;
  }
}

/** An API server (`serve`) of the cluster, on 127.0.0.1 port 0 with its own data folder (as `spawn-server.ts` makes them). */
export async function spawnApi(opts: ClusterProcOptions): Promise<TestServer> {
  const dataDir = mkdtempSync(path.join(os.tmpdir(), "openrunner-api-"));
  let p: Awaited<ReturnType<typeof spawnNode>>;
  try {
    p = await spawnNode("serve", { OPENRUNNER_ADDR: "127.0.0.1:0", OPENRUNNER_DATA_DIR: dataDir, OPENRUNNER_ADMIN_PASSWORD: ADMIN_PASSWORD, ...clusterEnv(opts.databaseUrl, opts.env) }, opts.args ?? [], /listening on (http:\/\/[^\s]+)/, opts.timeoutMs ?? 30_000);
  } catch (err) {
    rmSync(dataDir, { recursive: true, force: true });
    throw err;
  }
  const url = p.match[1]!;
  const ctl = controls(p, dataDir);
  return {
    url,
    dataDir,
    proc: p.proc,
    output: p.output,
    ...serverClient(url),
    async stop() {
      await ctl.stop(20_000);
      return p.proc.exitCode;
    },
    kill9: ctl.kill9,
    cleanup: ctl.cleanup,
  };
}

/** Stop (SIGTERM, then SIGKILL after `graceMs`), SIGKILL and cleanup of a spawned process and its data folder. */
function controls(p: { proc: ChildProcess; exited: Promise<void>; gone: () => boolean }, dataDir: string) {
  const { proc, exited, gone } = p;
  return {
    async stop(graceMs: number): Promise<void> {
      if (gone()) return;
      proc.kill("SIGTERM");
      const timer = setTimeout(() => !gone() && proc.kill("SIGKILL"), graceMs);
      await exited;
      clearTimeout(timer);
    },
    async kill9(): Promise<void> {
      if (gone()) return;
      proc.kill("SIGKILL");
      await exited;
    },
    cleanup(): void {
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** A worker (`worker`) with its own data folder; resolves once it printed its ready line (registered, claiming). */
export async function spawnWorker(opts: ClusterProcOptions): Promise<TestWorker> {
  const dataDir = mkdtempSync(path.join(os.tmpdir(), "openrunner-worker-"));
  let p: Awaited<ReturnType<typeof spawnNode>>;
  try {
    p = await spawnNode("worker", { OPENRUNNER_DATA_DIR: dataDir, ...clusterEnv(opts.databaseUrl, opts.env) }, opts.args ?? [], /OpenRunner worker (wrk_\S+) ready: ([^;]*);/, opts.timeoutMs ?? 30_000);
  } catch (err) {
    rmSync(dataDir, { recursive: true, force: true });
    throw err;
  }
  const ctl = controls(p, dataDir);
  return {
    id: p.match[1]!,
    pid: p.proc.pid!,
    dataDir,
    proc: p.proc,
    agents: p.match[2]!.split(",").map((a) => a.trim()),
    output: p.output,
    stop: (graceMs = 20_000) => ctl.stop(graceMs),
    kill9: ctl.kill9,
    cleanup: ctl.cleanup,
  };
}

/**
 * What a describe block started: API servers, workers and the processes of runs whose worker was killed, all stopped
 * by {@link Started.stopAll} (call it from `after()`; it never throws).
 */
export class Started {
  readonly apis: TestServer[] = [];
  readonly workers: TestWorker[] = [];
  /** Runs whose processes may outlive their worker: found by their `OPENRUNNER_RUN_ID` (not by a pid that may be reused) and killed. */
  readonly orphans = new Set<string>();

  async api(opts: ClusterProcOptions): Promise<TestServer> {
    const s = await spawnApi(opts);
    this.apis.push(s);
    return s;
  }

  async worker(opts: ClusterProcOptions): Promise<TestWorker> {
    const w = await spawnWorker(opts);
    this.workers.push(w);
    return w;
  }

  /** Workers first (their runs end while the API servers still serve), then the API servers, then what is left of {@link orphans}; folders removed. */
  async stopAll(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.stop().catch(() => undefined)));
    await Promise.all(
      this.apis.map(async (s) => {
        const timer = setTimeout(() => void s.kill9().catch(() => undefined), 20_000);
        await s.stop().catch(() => undefined);
        clearTimeout(timer);
      }),
    );
    for (const runId of this.orphans) for (const pid of runProcesses(runId)) killQuietly(pid);
    for (const w of this.workers) w.cleanup();
    for (const s of this.apis) s.cleanup();
  }
}

/**
 * Reads an SSE response like `readSse`, but a connection that breaks (its server killed) ends the
 * read instead of failing it: `ended` true only for a stream the server closed normally, `broken`
 * true when the connection failed. `onMessage` sees each message as it arrives (return true to stop).
 * A stream still open after `timeoutMs` fails the read, or with `endOnTimeout` returns with `timedOut`.
 */
export async function followSse(
  url: string,
  opts: { token?: string; lastEventId?: number; onMessage?: (m: SseMessage, all: SseMessage[]) => boolean | void; timeoutMs?: number; endOnTimeout?: boolean } = {},
): Promise<{ messages: SseMessage[]; ended: boolean; broken: boolean; timedOut: boolean; status: number }> {
  const ac = new AbortController();
  const timer = setTimeout(() => ac.abort(), opts.timeoutMs ?? 60_000);
  const headers: Record<string, string> = { Accept: "text/event-stream" };
  if (opts.token) headers.Authorization = `Bearer ${opts.token}`;
  if (opts.lastEventId !== undefined) headers["Last-Event-ID"] = String(opts.lastEventId);
  const messages: SseMessage[] = [];
  let stopped = false;
  let res: Response;
  try {
    res = await fetch(url, { headers, signal: ac.signal });
  } catch (err) {
    clearTimeout(timer);
    throw err;
  }
  if (res.status !== 200 || !res.body) {
    clearTimeout(timer);
    return { messages, ended: false, broken: false, timedOut: false, status: res.status };
  }
  const parser = createParser({
    onEvent(e: EventSourceMessage) {
      if (stopped) return;
      const m: SseMessage = { data: e.data, ...(e.id !== undefined ? { id: e.id } : {}), ...(e.event !== undefined ? { event: e.event } : {}) };
      messages.push(m);
      if (opts.onMessage?.(m, messages) === true) {
        stopped = true;
        ac.abort();
      }
    },
  });
  const decoder = new TextDecoder();
  let ended = false;
  let broken = false;
  let timedOut = false;
  try {
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) parser.feed(decoder.decode(chunk, { stream: true }));
    ended = true;
  } catch (err) {
    if (stopped) {
      // we stopped it
    } else if (ac.signal.aborted) {
      if (!opts.endOnTimeout) throw new Error(`SSE ${url}: no end within ${opts.timeoutMs ?? 60_000} ms`);
      timedOut = true;
    } else broken = true; // the server went away mid-stream
    void err;
  } finally {
    clearTimeout(timer);
  }
  return { messages, ended, broken, timedOut, status: res.status };
}
