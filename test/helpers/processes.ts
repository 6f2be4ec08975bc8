/**
 * Process helpers for end-to-end tests: what of a run is still alive (its process group, the
 * processes tagged with its OPENRUNNER_RUN_ID), processes by command line, and polling waits.
 * Linux only (reads `/proc`).
 */
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";

/** Whether the process group `pid` still has a member; an error other than ESRCH fails the test. */
export function groupAlive(pid: number): boolean {
  try {
    process.kill(-pid, 0);
    return true;
  } catch (err) {
    assert.equal((err as NodeJS.ErrnoException).code, "ESRCH");
    return false;
  }
}

/** Pids (other than this process) whose `/proc/<pid>/<file>` holds `needle`; unreadable or gone ones are passed over. */
function pidsWhere(file: "environ" | "cmdline", test: (content: string) => boolean): number[] {
  const pids: number[] = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid) continue;
    try {
      if (test(readFileSync(`/proc/${name}/${file}`, "latin1"))) pids.push(Number(name));
    } catch {
      // gone, or not ours to read
    }
  }
  return pids;
}

/**
 * Host pids whose environment carries `OPENRUNNER_RUN_ID=<runId>` (container processes
 * included: same kernel; zombies have an empty environ, so they are not counted).
 */
export function runProcesses(runId: string): number[] {
  const needle = `\0OPENRUNNER_RUN_ID=${runId}\0`;
  return pidsWhere("environ", (env) => `\0${env}`.includes(needle));
}

/** Pids (other than this process) whose command line contains `needle` (arguments are NUL-separated). */
export function findByCmdline(needle: string): number[] {
  return pidsWhere("cmdline", (cmdline) => cmdline.includes(needle));
}

/** SIGKILL to `pid`, ignoring a process that is gone. */
export function killQuietly(pid: number): void {
  try {
    process.kill(pid, "SIGKILL");
  } catch {
    // gone
  }
}

/**
 * Calls `fn` every `everyMs` until it returns something other than `undefined`, and returns that.
 * @throws Error `<what>: not within <ms> ms` once `ms` passed without a value
 */
export async function until<T>(fn: () => T | undefined | Promise<T | undefined>, ms: number, what: string, everyMs = 50): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() >= end) throw new Error(`${what}: not within ${ms} ms`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/**
 * Polls `cond` every `everyMs` until it holds.
 * @throws Error `<what>: not within <ms> ms` once `ms` passed without it
 */
export async function waitFor(cond: () => boolean | Promise<boolean>, ms: number, what: string, everyMs = 100): Promise<void> {
  await until(async () => ((await cond()) ? true : undefined), ms, what, everyMs);
}
