/**
 * Finds and kills processes left behind by a run of a previous server process
 * (e.g. after SIGKILL of the server): every agent process is started with
 * `OPENRUNNER_RUN_ID=<run id>` in its environment, which its children inherit,
 * so `/proc/<pid>/environ` identifies them without trusting recycled PIDs.
 * Linux only; elsewhere it does nothing.
 */
import { readdirSync, readFileSync } from "node:fs";
import type { Log } from "../log.ts";

/** PIDs whose environment carries `OPENRUNNER_RUN_ID=<runId>`. */
export function findRunProcesses(runId: string): number[] {
  let entries: string[];
  try {
    entries = readdirSync("/proc");
  } catch {
    return [];
  }
  const needle = `\0OPENRUNNER_RUN_ID=${runId}\0`;
  const out: number[] = [];
  for (const name of entries) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid) continue;
    try {
      const env = "\0" + readFileSync(`/proc/${name}/environ`, "latin1");
      if (env.includes(needle)) out.push(Number(name));
    } catch {
      // gone, or not ours to read
    }
  }
  return out;
}

/**
 * Sends `signal` to every process of `runId`. Agent CLIs start their tool
 * commands in sessions of their own (claude's Bash, gemini's shell tool,
 * opencode's bash), out of the run's process group; the environment marker
 * still finds them. Returns how many were signalled.
 */
export function signalRunProcesses(runId: string, signal: NodeJS.Signals): number {
  let n = 0;
  for (const pid of findRunProcesses(runId)) {
    try {
      process.kill(pid, signal);
      n++;
    } catch {
      // gone already
    }
  }
  return n;
}

/** The distinct run ids that live processes carry in `OPENRUNNER_RUN_ID` (any server's: check them against your store). */
export function findTaggedRunIds(): string[] {
  let entries: string[];
  try {
    entries = readdirSync("/proc");
  } catch {
    return [];
  }
  const ids = new Set<string>();
  for (const name of entries) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid) continue;
    try {
      const m = /(?:^|\0)OPENRUNNER_RUN_ID=([A-Za-z0-9_-]{1,100})(?:\0|$)/.exec(readFileSync(`/proc/${name}/environ`, "latin1"));
      if (m) ids.add(m[1]!);
    } catch {
      // gone, or not ours to read
    }
  }
  return [...ids];
}

/** SIGKILLs every process of `runId`; returns how many were signalled. */
export function killRunOrphans(runId: string, log: Log): number {
  const pids = findRunProcesses(runId);
  for (const pid of pids) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // already gone
    }
  }
  if (pids.length > 0) log.warn("killed processes left by an interrupted run", { run_id: runId, count: pids.length });
  return pids.length;
}
