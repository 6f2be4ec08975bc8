/**
 * The container branch of the process actor (docs/architecture.md#process-actor, docs/architecture.md#containers): the
 * adapter's host command runs inside the run's container through the engine's
 * exec API, and everything else stays as on the host: the exec's stdout and
 * stderr go through the same line splitters into the adapter's parser, the
 * same `run.started` is emitted (with `container_id`), and the exit becomes
 * the same `AGENT.EXITED` outcome.
 *
 * - Command translation ({@link toContainerExec}): argv[0] becomes its basename
 *   (looked up in the image's PATH) or the configured container command; the
 *   run's host cwd and home become `/workspace` and the container HOME, in the
 *   arguments, the environment and the working directory; PATH, HOME and
 *   TMPDIR of the host are dropped; OPENRUNNER_RUN_ID is kept.
 * - The run's home: bind-mounted (given to the container user first) or
 *   copied into the container before the exec (`container-home.ts`).
 * - Pooled and project containers start the process through their launcher (`src/container/launcher-handle.ts`:
 *   no engine exec on the hot path, same behaviour); the engine's exec is the fallback. This module does not
 *   see the difference: both are an `ExecHandle`.
 * - STOP: the exec's process tree gets SIGTERM, then SIGKILL after the grace.
 * - The process exited but something it left behind still holds its pipes:
 *   the leftovers are killed, as on the host.
 * - A process killed with 137 while the container's memory cgroup counted a
 *   new OOM kill ends the run `failed` with `oom_killed`.
 * - A failed run whose workspace filesystem is full ends with `disk_full` (see `disk-full.ts`).
 * - A per-run container is stopped and removed, with `container.stopped` and
 *   `container.removed`, before the outcome is reported, so the terminal event
 *   stays last. A project container (`perRun: false`) stays: only the run's
 *   own exec'd processes (its marker) are killed, also those left behind.
 */
import { rm } from "node:fs/promises";
import path from "node:path";
import type { Readable } from "node:stream";
import type { ContainerRunEvent, RunContainer } from "../container/run-container.ts";
import type { ExecHandle, ExecSpec } from "../container/types.ts";
import { explainDiskFull } from "../container/disk-full.ts";
import type { Log } from "../log.ts";
import { RunFailure } from "../protocol/errors.ts";
import { failureCode, type RunEventInput, type RunFailureCode } from "../protocol/events.ts";
import { provideRunHome } from "./container-home.ts";
import { createLineSplitter } from "./line-splitter.ts";
import type { AgentCommand, AgentOutcome, AgentRunContext, LineParser, ProcessExit } from "./types.ts";

const STDERR_TAIL_BYTES = 4096;
/** How often the engine is asked whether the exec'd process still runs while its output is open. */
const LIVENESS_POLL_MS = 1000;
/** Host variables that make no sense inside the container. */
const DROPPED_ENV = new Set(["PATH", "HOME", "TMPDIR"]);

/** What one container execution reports. */
export interface ContainerExecResult {
  outcome: AgentOutcome;
  exit: ProcessExit;
}

/** A running container execution; see {@link startContainerExec}. */
export interface ContainerExecution {
  /** Resolves once the process ended and a per-run container is stopped and removed; never rejects. */
  readonly done: Promise<ContainerExecResult>;
  /** SIGTERM to the exec's process tree, SIGKILL after the grace period. Idempotent. */
  stop(): void;
  /** The actor is gone: kill without waiting, remove a per-run container, emit nothing more. Idempotent. */
  dispose(): void;
}

/** Options of {@link startContainerExec}. */
export interface ContainerExecOptions {
  container: RunContainer;
  command: AgentCommand;
  ctx: AgentRunContext;
  agent: string;
  parser: LineParser;
  emit: (e: RunEventInput) => void;
  killGraceMs: number;
  log?: Pick<Log, "warn">;
}

/**
 * The exec spec for an adapter's host command (pure).
 * @example
 * toContainerExec({ argv: ["/bin/sh", "-c", "ls"], env: { PATH: "/usr/bin", HOME: "/data/homes/r1" }, cwd: "/data/ws/r1" }, ctx, container)
 * // { argv: ["sh", "-c", "ls"], env: { HOME: "/home/agent", OPENRUNNER_RUN_ID: "r1" }, cwd: "/workspace" }
 */
export function toContainerExec(command: AgentCommand, ctx: Pick<AgentRunContext, "run_id" | "cwd" | "home" | "traceparent">, c: Pick<RunContainer, "workdir" | "home" | "command">): ExecSpec {
  // Longer host prefix first, so a home inside the workspace (or the reverse) maps right.
  const maps = [
    [ctx.cwd, c.workdir],
    [ctx.home, c.home],
  ].sort((a, b) => b[0]!.length - a[0]!.length) as Array<[string, string]>;
  const mapPath = (v: string): string => {
    for (const [from, to] of maps) {
      if (v === from) return to;
      if (v.startsWith(`${from}/`)) return to + v.slice(from.length);
    }
    return v;
  };
  const [file, ...args] = command.argv;
  if (!file) throw new RunFailure("spawn_failed", "adapter returned an empty command");
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(command.env)) if (!DROPPED_ENV.has(k)) env[k] = mapPath(v);
  env.HOME = c.home;
  env.OPENRUNNER_RUN_ID = ctx.run_id;
  if (ctx.traceparent) env.TRACEPARENT = ctx.traceparent;
  const cwd = mapPath(command.cwd);
  const argv0 = command.container_native ? file : (c.command ?? path.posix.basename(file));
  return { argv: [argv0, ...args.map(mapPath)], env, cwd: cwd.startsWith("/") && cwd !== command.cwd ? cwd : c.workdir };
}

/** Stops and removes a per-run container, emitting `container.stopped` and `container.removed`; never throws. */
export async function teardownRunContainer(c: RunContainer, emit: (e: ContainerRunEvent) => void, log?: Pick<Log, "warn">): Promise<void> {
  const data = { container_id: c.handle.id };
  try {
    await c.handle.stop({ timeoutS: 2 });
    emit({ type: "container.stopped", data });
  } catch (err) {
    log?.warn("could not stop the run's container", { container_id: c.handle.id, err: String(err) });
  }
  try {
    await c.handle.remove({ force: true });
    emit({ type: "container.removed", data });
  } catch (err) {
    log?.warn("could not remove the run's container", { container_id: c.handle.id, err: String(err) });
  }
  // Its launcher's socket directory (pooled and desktop containers) goes with it.
  if (c.launcherDir) await rm(c.launcherDir, { recursive: true, force: true }).catch(() => {});
}

const ended = (s: Readable) =>
  new Promise<void>((resolve) => {
    if (s.readableEnded || s.destroyed) return resolve();
    s.once("end", resolve);
    s.once("close", resolve);
  });

const failedFrom = (err: unknown, fallback: RunFailureCode): AgentOutcome => ({
  kind: "failed",
  code: failureCode(err, fallback),
  message: err instanceof Error ? err.message : String(err),
});

/**
 * Runs the adapter's command in the run's container; see the module comment.
 * @example
 * const x = startContainerExec({ container, command, ctx, agent: "shell", parser, emit, killGraceMs: 5000 });
 * receive(() => x.stop());
 * const { outcome, exit } = await x.done;
 */
export function startContainerExec(o: ContainerExecOptions): ContainerExecution {
  const { container: c, parser, emit } = o;
  let exec: ExecHandle | undefined;
  let finished = false;
  let stopRequested = false;
  let disposed = false;
  let removing = false;
  let killTimer: NodeJS.Timeout | undefined;
  let pollTimer: NodeJS.Timeout | undefined;
  const warn = (msg: string, err: unknown) => o.log?.warn(msg, { run_id: o.ctx.run_id, container_id: c.handle.id, err: String(err) });

  const stop = () => {
    stopRequested = true;
    if (!exec || finished) return;
    const x = exec;
    void x.kill("TERM").catch((err: unknown) => warn("could not signal the run's processes", err));
    killTimer ??= setTimeout(() => {
      if (!finished) void x.kill("KILL").catch((err: unknown) => warn("could not kill the run's processes", err));
    }, o.killGraceMs);
  };

  const dispose = () => {
    if (disposed) return;
    disposed = true;
    clearTimeout(killTimer);
    clearTimeout(pollTimer);
    if (c.perRun) {
      if (removing) return;
      removing = true;
      void c.handle
        .remove({ force: true })
        .then(() => (c.launcherDir ? rm(c.launcherDir, { recursive: true, force: true }) : undefined))
        .catch((err: unknown) => warn("could not remove the run's container", err));
    } else if (exec && !finished) {
      void Promise.resolve(exec[Symbol.asyncDispose]()).catch(() => {});
    }
  };

  const finish = async (r: ContainerExecResult): Promise<ContainerExecResult> => {
    finished = true;
    clearTimeout(killTimer);
    clearTimeout(pollTimer);
    if (c.perRun && !disposed && !removing) {
      removing = true;
      await teardownRunContainer(c, emit, o.log);
    } else if (!c.perRun && exec) {
      // A shared (project) container stays; whatever this run left behind in it (daemons that let go of its pipes) goes.
      await exec.kill("KILL").catch((err: unknown) => warn("could not kill the run's leftover processes", err));
    }
    return r;
  };

  const run = async (): Promise<ContainerExecResult> => {
    let spec: ExecSpec;
    try {
      spec = toContainerExec(o.command, o.ctx, c);
    } catch (err) {
      return finish({ outcome: failedFrom(err, "spawn_failed"), exit: { stderr_tail: "" } });
    }
    // A fresh per-run container has counted no OOM kill yet; a shared one's counter is read alongside the exec's
    // start (one engine round trip less before every project run; an OOM kill in the very first milliseconds could be missed).
    try {
      spec = (await provideRunHome(c, o.ctx.home))(spec);
    } catch (err) {
      return finish({ outcome: failedFrom(err, "exec_failed"), exit: { stderr_tail: "" } });
    }
    if (disposed) return { outcome: { kind: "failed", code: "internal", message: "run ended" }, exit: { stderr_tail: "" } };
    const oomBeforeP = c.perRun ? Promise.resolve(0) : c.handle.oomKills().catch(() => null);
    try {
      exec = await c.handle.exec(spec);
    } catch (err) {
      return finish({ outcome: failedFrom(err, "exec_failed"), exit: { stderr_tail: "" } });
    }
    const x = exec;
    if (disposed) {
      void Promise.resolve(x[Symbol.asyncDispose]()).catch(() => {});
      return { outcome: { kind: "failed", code: "internal", message: "run ended" }, exit: { stderr_tail: "" } };
    }
    emit({ type: "run.started", data: { agent: o.agent, container_id: c.handle.id, cwd: o.ctx.cwd } });
    if (stopRequested) stop();

    let stderrTail = "";
    const emitAll = (events: RunEventInput[]) => {
      for (const e of events) emit(e);
    };
    const out = createLineSplitter((line) => emitAll(parser.parseLine(line)));
    const err = createLineSplitter((line) => {
      stderrTail = (stderrTail + line + "\n").slice(-STDERR_TAIL_BYTES);
      emitAll(parser.parseStderr(line));
    });
    x.stdout.setEncoding("utf8").on("data", out.push);
    x.stderr.setEncoding("utf8").on("data", err.push);

    // The process ended but its output is still open: kill what it left behind holding the pipes.
    const poll = () => {
      pollTimer = setTimeout(() => {
        void x.running().then((running) => {
          if (finished || disposed) return;
          if (!running) void x.kill("KILL").catch(() => 0);
          else poll();
        });
      }, LIVENESS_POLL_MS);
    };
    poll();

    const [result] = await Promise.all([x.exit, ended(x.stdout), ended(x.stderr)]);
    clearTimeout(pollTimer);
    out.end();
    err.end();
    emitAll(parser.end());
    if (result.error && !stopRequested) {
      return finish({ outcome: failedFrom(result.error, "container_failed"), exit: { stderr_tail: stderrTail } });
    }
    const code = result.exitCode;
    let exit: ProcessExit;
    if (stopRequested && (code === 143 || code === 137)) exit = { signal: code === 143 ? "SIGTERM" : "SIGKILL", stderr_tail: stderrTail };
    else exit = { ...(code !== null ? { exit_code: code } : {}), stderr_tail: stderrTail };
    if (code === 137 && !stopRequested) {
      const oomAfter = await c.handle.oomKills().catch(() => null);
      const oomBefore = await oomBeforeP;
      if (oomAfter !== null && oomAfter > (oomBefore ?? 0)) {
        const limit = Math.round(c.memoryBytes / (1024 * 1024));
        return finish({ outcome: { kind: "failed", exit_code: 137, code: "oom_killed", message: `the agent's process was killed for exceeding the container's memory limit (${limit} MiB)` }, exit });
      }
    }
    return finish({ outcome: await explainDiskFull(parser.outcome(exit), o.ctx.cwd), exit });
  };

  const done = run().catch(async (err: unknown) => finish({ outcome: failedFrom(err, "internal"), exit: { stderr_tail: "" } }));
  return { done, stop, dispose };
}
