/**
 * The process actor every CLI adapter runs in (docs/architecture.md#process-actor): an xstate
 * `fromCallback` actor that spawns the adapter's command with execa in its own
 * process group (stdin closed), splits stdout and stderr into lines for the
 * adapter's parser, streams the resulting events straight into the run's
 * channel, and reports the exit back to the run machine as `AGENT.EXITED`.
 *
 * `STOP` sends SIGTERM to the whole group and SIGKILL after the grace period.
 * When the main process exits, whatever it left in its group is killed (and
 * every process carrying the run's OPENRUNNER_RUN_ID, see `orphans.ts`), so
 * nothing a run started outlives it; the actor's cleanup (machine stopped)
 * SIGKILLs the group if it is still there.
 *
 * With `input.container` (a `metadata.isolation: "docker"` run) the same
 * command runs inside that container instead, through the engine's exec API;
 * see `container-exec.ts`.
 */
import { execa } from "execa";
import { fromCallback } from "xstate";
import { RunFailure } from "../protocol/errors.ts";
import { failureCode, type RunEventInput } from "../protocol/events.ts";
import { startContainerExec, teardownRunContainer, type ContainerExecution } from "./container-exec.ts";
import type { AgentOutcome, LineParser, ProcessActorEmitted, ProcessActorInput, ProcessActorReceived, ProcessExit } from "./types.ts";
import { guardParser } from "./guarded-parser.ts";
import { chownTree } from "./run-as.ts";
import { createLineSplitter } from "./line-splitter.ts";
import { signalRunProcesses } from "./orphans.ts";

const STDERR_TAIL_BYTES = 4096;

/**
 * Sends `signal` to the process group led by `pid`. Never throws: a group that
 * is gone (ESRCH) or not ours (EPERM) returns false.
 */
export function killProcessGroup(pid: number, signal: NodeJS.Signals): boolean {
  try {
    process.kill(-pid, signal);
    return true;
  } catch {
    return false;
  }
}

/** The xstate actor logic; see the module comment. */
export const processActor = fromCallback<ProcessActorReceived, ProcessActorInput, ProcessActorEmitted>(({ input, sendBack, receive }) => {
  const { adapter, ctx, emit, killGraceMs, container } = input;
  let pid: number | undefined;
  let inContainer: ContainerExecution | undefined;
  let exited = false;
  let stopRequested = false;
  let killTimer: NodeJS.Timeout | undefined;
  let disposed = false;

  const stop = () => {
    stopRequested = true;
    if (inContainer) return inContainer.stop();
    if (pid === undefined || exited) return;
    killProcessGroup(pid, "SIGTERM");
    signalRunProcesses(ctx.run_id, "SIGTERM");
    killTimer ??= setTimeout(() => {
      if (pid !== undefined && !exited) killProcessGroup(pid, "SIGKILL");
      signalRunProcesses(ctx.run_id, "SIGKILL");
    }, killGraceMs);
  };
  receive((event) => {
    if (event.type === "STOP") stop();
  });

  void runProcess().catch(async (err: unknown) => {
    if (disposed) return;
    const message = err instanceof Error ? err.message : String(err);
    // Failed before the container execution started: the per-run container still goes, before the outcome.
    if (container?.perRun && !inContainer) await teardownRunContainer(container, emit, input.log);
    if (disposed) return;
    sendBack({
      type: "AGENT.EXITED",
      outcome: { kind: "failed", code: failureCode(err, "spawn_failed"), message },
      exit: { stderr_tail: "" },
    });
  });

  async function runProcess(): Promise<void> {
    const command = await adapter.command(ctx);
    if (disposed) return;
    const parser: LineParser = guardParser(adapter.createParser(ctx), (err, where) =>
      input.log?.warn("agent output parser failed; line kept as a log event", { run_id: ctx.run_id, agent: adapter.name, where, err: String(err) }),
    );
    if (container) {
      inContainer = startContainerExec({ container, command, ctx, agent: adapter.name, parser, emit, killGraceMs, ...(input.log ? { log: input.log } : {}) });
      if (stopRequested) inContainer.stop();
      const { outcome, exit } = await inContainer.done;
      const final = await finalizeOutcome(outcome);
      if (!disposed) sendBack({ type: "AGENT.EXITED", outcome: final, exit });
      return;
    }
    const [file, ...args] = command.argv;
    if (!file) throw new RunFailure("spawn_failed", "adapter returned an empty command");
    if (input.runAs) {
      // The adapter wrote its config into the home as the server: hand both directories to the run's user.
      await chownTree(ctx.home, input.runAs);
      await chownTree(command.cwd, input.runAs);
    }
    // Everything async happens before the spawn: from here to the stream listeners is synchronous, so no output is missed.
    const version = (await adapter.detect().catch(() => undefined))?.version;
    if (disposed) return;
    const child = execa(file, args, {
      cwd: command.cwd,
      // OPENRUNNER_RUN_ID marks every process of the run (inherited), so orphans can be found after a crash.
      env: { ...command.env, OPENRUNNER_RUN_ID: ctx.run_id, ...(ctx.traceparent ? { TRACEPARENT: ctx.traceparent } : {}) },
      extendEnv: false,
      detached: true,
      ...(input.runAs ? { uid: input.runAs.uid, gid: input.runAs.gid } : {}),
      stdin: "ignore",
      buffer: false,
      reject: false,
      cleanup: true,
    });
    pid = child.pid;
    if (pid === undefined) {
      const result = await child;
      throw new RunFailure("spawn_failed", `could not start ${file}: ${result.message ?? "spawn failed"}`);
    }
    emit({ type: "run.started", data: { agent: adapter.name, pid, cwd: command.cwd, ...(version ? { agent_version: version } : {}) } });
    if (stopRequested) stop();

    let stderrTail = "";
    const emitAll = (events: RunEventInput[]) => {
      for (const e of events) emit(e);
    };
    const stdout = createLineSplitter((line) => emitAll(parser.parseLine(line)));
    const stderr = createLineSplitter((line) => {
      stderrTail = (stderrTail + line + "\n").slice(-STDERR_TAIL_BYTES);
      emitAll(parser.parseStderr(line));
    });
    child.stdout?.setEncoding("utf8").on("data", stdout.push);
    child.stderr?.setEncoding("utf8").on("data", stderr.push);
    const streamsDone = Promise.all([child.stdout, child.stderr].map((s) => (s ? new Promise((r) => s.once("close", r)) : null)));

    // The leader exited: kill what it left behind so its pipes close and nothing outlives the run.
    child.once("exit", () => {
      exited = true;
      if (pid !== undefined) killProcessGroup(pid, "SIGKILL");
      signalRunProcesses(ctx.run_id, "SIGKILL"); // tool commands in sessions of their own
    });
    const result = await child;
    await streamsDone;
    clearTimeout(killTimer);
    stdout.end();
    stderr.end();
    emitAll(parser.end());
    const exit: ProcessExit = {
      ...(typeof result.exitCode === "number" ? { exit_code: result.exitCode } : {}),
      ...(result.signal ? { signal: result.signal } : {}),
      stderr_tail: stderrTail,
    };
    const final = await finalizeOutcome(parser.outcome(exit));
    if (!disposed) sendBack({ type: "AGENT.EXITED", outcome: final, exit });
  }

  /** The adapter's optional last step (artifacts of `task` runs); skipped once the run is being stopped. */
  async function finalizeOutcome(outcome: AgentOutcome): Promise<AgentOutcome> {
    if (!adapter.finalize || stopRequested || disposed) return outcome;
    return adapter.finalize(ctx, outcome, emit).catch((err: unknown) => ({ kind: "failed" as const, code: "internal", message: `finishing the run failed: ${err instanceof Error ? err.message : String(err)}` }));
  }

  return () => {
    disposed = true;
    clearTimeout(killTimer);
    if (inContainer) inContainer.dispose();
    else if (container?.perRun) void container.handle.remove({ force: true }).catch(() => {});
    // Only a group whose leader we have not seen exit: after that the id may be reused.
    if (pid !== undefined && !exited) killProcessGroup(pid, "SIGKILL");
    if (pid !== undefined) signalRunProcesses(ctx.run_id, "SIGKILL");
  };
});
