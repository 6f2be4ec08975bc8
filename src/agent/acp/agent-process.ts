/**
 * The ACP agent's process, wherever it runs: the actor (`actor.ts`) speaks JSON-RPC over its
 * `stdin`/`stdout`, reads `stderr` into `log` events and ends it with `terminate`/`kill`, the
 * same way for both kinds.
 *
 * - Host ({@link spawnHostAgent}): execa, its own process group, as the run's user, marked
 *   with OPENRUNNER_RUN_ID; signals go to the group and to every process carrying the marker
 *   (tool commands that started sessions of their own). When the leader exits, whatever it
 *   left in its group is killed.
 * - Container (`container-agent.ts`): the engine's exec with stdin attached.
 */
import type { Readable, Writable } from "node:stream";
import { execa } from "execa";
import { RunFailure } from "../../protocol/errors.ts";
import { signalRunProcesses } from "../orphans.ts";
import { killProcessGroup } from "../process-actor.ts";
import type { RunAs } from "../run-as.ts";
import type { AgentCommand } from "../types.ts";

/** How the agent's process ended (no stderr tail: the actor keeps that). */
export interface AgentProcessEnd {
  exit_code?: number;
  signal?: string;
  /** The engine lost the process (container gone, exec failed to start): the run fails with this. */
  error?: Error;
}

/** A started ACP agent process. */
export interface AcpAgentProcess {
  readonly stdin: Writable;
  readonly stdout: Readable;
  readonly stderr: Readable;
  /** Fields of `run.started`: the host pid, or the container id. */
  readonly started: { pid: number } | { container_id: string };
  /** Resolves once the process ended and its output closed; never rejects. */
  readonly done: Promise<AgentProcessEnd>;
  /** SIGTERM to the agent and everything it started. Never throws. */
  terminate(): void;
  /** SIGKILL to the agent and everything it started. Never throws. */
  kill(): void;
  /**
   * After `done`: removes what the run leaves behind, before the outcome is reported (a
   * per-run container is stopped and removed, with its events). Never rejects.
   */
  finish(): Promise<void>;
  /** The actor is gone: kill without waiting and emit nothing more. Idempotent. */
  dispose(): void;
}

/**
 * Starts `command` on the host; see the module comment.
 * @throws RunFailure `spawn_failed` when it cannot be started (empty command, no pid)
 */
export async function spawnHostAgent(command: AgentCommand, runId: string, runAs?: RunAs): Promise<AcpAgentProcess> {
  const [file, ...args] = command.argv;
  if (!file) throw new RunFailure("spawn_failed", "empty ACP agent command");
  const child = execa(file, args, {
    cwd: command.cwd,
    env: { ...command.env, OPENRUNNER_RUN_ID: runId },
    extendEnv: false,
    detached: true,
    ...(runAs ? { uid: runAs.uid, gid: runAs.gid } : {}),
    stdin: "pipe",
    buffer: false,
    reject: false,
    cleanup: true,
  });
  const pid = child.pid;
  if (pid === undefined) {
    const r = await child;
    throw new RunFailure("spawn_failed", `could not start ${file}: ${r.message ?? "spawn failed"}`);
  }
  let exited = false;
  const signal = (sig: NodeJS.Signals) => {
    if (!exited) killProcessGroup(pid, sig);
    signalRunProcesses(runId, sig);
  };
  const streamsDone = Promise.all([child.stdout, child.stderr].map((s) => (s ? new Promise((r) => s.once("close", r)) : null)));
  child.once("exit", () => {
    exited = true;
    killProcessGroup(pid, "SIGKILL");
    signalRunProcesses(runId, "SIGKILL");
  });
  const done = child.then(async (r): Promise<AgentProcessEnd> => {
    await streamsDone;
    return { ...(typeof r.exitCode === "number" ? { exit_code: r.exitCode } : {}), ...(r.signal ? { signal: r.signal } : {}) };
  });
  return {
    stdin: child.stdin!,
    stdout: child.stdout!,
    stderr: child.stderr!,
    started: { pid },
    done,
    terminate: () => signal("SIGTERM"),
    kill: () => signal("SIGKILL"),
    finish: () => Promise.resolve(),
    dispose: () => signal("SIGKILL"),
  };
}
