/**
 * Tracks every child process a benchmark starts, so each one is stopped by its
 * PID at the end (and on Ctrl-C), never by name.
 */
import { spawnSync, type ChildProcess } from "node:child_process";
import { readFileSync } from "node:fs";

const children = new Set<ChildProcess>();

/** Registers a child; it is forgotten once it exits. */
export function track<T extends ChildProcess>(child: T): T {
  children.add(child);
  child.once("exit", () => children.delete(child));
  return child;
}

/** True while the child has not exited. */
export function isAlive(child: ChildProcess): boolean {
  return child.exitCode === null && child.signalCode === null;
}

/** Waits for the child to exit; SIGKILLs it by PID after `ms`. */
export function waitExit(child: ChildProcess, ms: number): Promise<void> {
  if (!isAlive(child)) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      if (isAlive(child) && child.pid !== undefined) process.kill(child.pid, "SIGKILL");
    }, ms);
    child.once("exit", () => {
      clearTimeout(timer);
      resolve();
    });
  });
}

/** SIGTERM by PID, then SIGKILL after `graceMs`; resolves when it exited. */
export async function stopChild(child: ChildProcess, graceMs = 15_000): Promise<void> {
  if (!isAlive(child) || child.pid === undefined) return;
  process.kill(child.pid, "SIGTERM");
  await waitExit(child, graceMs);
}

/** SIGKILLs every tracked child still alive (by PID). */
export function killAllTracked(): void {
  for (const child of children) {
    if (isAlive(child) && child.pid !== undefined) {
      try {
        process.kill(child.pid, "SIGKILL");
      } catch {
        // already gone
      }
    }
  }
}

/** Number of tracked children still alive. */
export function trackedCount(): number {
  return children.size;
}

let clockTicks: number | undefined;

/** CPU time (user + system, ms) a process used so far, from /proc/<pid>/stat; NaN where unavailable. */
export function processCpuMs(pid: number): number {
  try {
    clockTicks ??= Number(spawnSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).stdout.trim()) || 100;
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    // after "pid (comm) ": state is field 0, utime is field 11, stime field 12
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / clockTicks;
  } catch {
    return Number.NaN;
  }
}
