/**
 * The run state machine (docs/architecture.md#run-lifecycle), xstate v5:
 *
 * ```
 * queued -> preparing -> running(working -> stopping) -> completed | failed | cancelled | timed_out
 * ```
 *
 * The agent adapter is invoked as the child actor `agent` while `running`;
 * `prepare` (workspace, home, the run's container) runs in `preparing`; its
 * output ({@link PrepareOutput}: the container, if any) is kept in the context
 * and handed to the agent with its input. Both are
 * referred to by name so tests can `runMachine.provide({ actors: { agent } })`.
 * The terminal event is emitted by the entry action of the final state, so it
 * is written exactly once whatever the order of CANCEL, timeout and exit.
 * Cancel or timeout while running sends STOP to the agent and waits in
 * `stopping` for its exit (the process group is gone by then), at most
 * `stopWaitMs`, after which the machine ends anyway and the actor's cleanup
 * SIGKILLs the group.
 */
import { assign, fromCallback, fromPromise, sendTo, setup } from "xstate";
import type { AgentOutcome, ProcessActorEmitted, ProcessActorInput, ProcessActorReceived } from "../agent/types.ts";
import type { RunContainer } from "../container/run-container.ts";
import { failureCode, type RunEventInput, type RunFailureCode } from "../protocol/events.ts";

/** What `prepare` produced for the run. */
export interface PrepareOutput {
  /** The container the agent runs in (`metadata.isolation: "docker"`); absent: on the host. */
  container?: RunContainer;
}

/** Input of one run machine. Times in ms. */
export interface RunMachineInput {
  runId: string;
  timeoutMs: number;
  /** How long `stopping` waits for the process to exit before ending anyway. */
  stopWaitMs: number;
  /** Appends to the run's channel. */
  emit: (e: RunEventInput) => void;
  /** Current time, ms (injectable for tests). */
  now: () => number;
  /** Input handed to the `agent` child actor. */
  agentInput: ProcessActorInput;
}

type StopReason = { kind: "cancelled"; reason: string; by?: string } | { kind: "timed_out" } | { kind: "failed"; code: RunFailureCode; message: string };

export interface RunMachineContext extends RunMachineInput {
  createdAt: number;
  startedAt: number | null;
  stop: StopReason | null;
  outcome: AgentOutcome | null;
  prepared: PrepareOutput | null;
}

/** Events the machine accepts. */
export type RunMachineEvent =
  | { type: "START" }
  | { type: "CANCEL"; reason?: string; by?: string }
  /** Ends a running run as `run.failed` with this code, stopping its agent first (the stall watchdog's `stalled`). */
  | { type: "FAIL"; code: RunFailureCode; message: string }
  | ProcessActorEmitted;

const durationOf = (c: RunMachineContext) => Math.max(0, Math.round(c.now() - (c.startedAt ?? c.createdAt)));

/** The machine definition; provide real `prepare` and `agent` actors with `.provide()`. */
export const runMachine = setup({
  types: {
    context: {} as RunMachineContext,
    events: {} as RunMachineEvent,
    input: {} as RunMachineInput,
  },
  actors: {
    prepare: fromPromise<PrepareOutput, { runId: string }>(async () => ({})),
    agent: fromCallback<ProcessActorReceived, ProcessActorInput, ProcessActorEmitted>(() => () => {}),
  },
  delays: {
    // The timeout counts from the start of `preparing`, so a slow prepare is bounded too.
    runTimeout: ({ context }) => Math.max(0, context.timeoutMs - (context.startedAt === null ? 0 : context.now() - context.startedAt)),
    stopWait: ({ context }) => context.stopWaitMs,
  },
  guards: {
    wasCancelled: ({ context }) => context.stop?.kind === "cancelled",
    wasTimedOut: ({ context }) => context.stop?.kind === "timed_out",
    wasFailed: ({ context }) => context.stop?.kind === "failed",
    completedOk: ({ event }) => event.type === "AGENT.EXITED" && event.outcome.kind === "completed",
  },
  actions: {
    markStarted: assign({ startedAt: ({ context }) => context.now() }),
    recordCancel: assign({
      stop: ({ context, event }) =>
        context.stop ?? (event.type === "CANCEL" ? { kind: "cancelled", reason: event.reason ?? "cancelled", ...(event.by ? { by: event.by } : {}) } : null),
    }),
    recordFail: assign({ stop: ({ context, event }) => context.stop ?? (event.type === "FAIL" ? { kind: "failed", code: event.code, message: event.message } : null) }),
    recordTimeout: assign({ stop: ({ context }) => context.stop ?? { kind: "timed_out" } }),
    recordOutcome: assign({ outcome: ({ event }) => (event.type === "AGENT.EXITED" ? event.outcome : null) }),
    stopAgent: sendTo("agent", { type: "STOP" }),
    emitCompleted: ({ context }) => {
      const o = context.outcome;
      if (o?.kind !== "completed") return;
      context.emit({
        type: "run.completed",
        data: {
          exit_code: o.exit_code,
          duration_ms: durationOf(context),
          ...(o.result !== undefined ? { result: o.result } : {}),
          ...(o.usage ? { usage: o.usage } : {}),
          ...(o.artifacts ? { artifacts: o.artifacts } : {}),
        },
      });
    },
    emitFailed: ({ context, event }) => {
      const o = context.outcome;
      const s = context.stop;
      const err: { code: RunFailureCode; message: string } =
        s?.kind === "failed"
          ? { code: s.code, message: s.message }
          : o?.kind === "failed"
          ? { code: o.code, message: o.message }
          : String(event.type).startsWith("xstate.error")
            ? failureOf((event as { error?: unknown }).error)
            : { code: "internal", message: "run failed" };
      context.emit({
        type: "run.failed",
        data: { error: err, duration_ms: durationOf(context), ...(o?.kind === "failed" && o.exit_code !== undefined ? { exit_code: o.exit_code } : {}) },
      });
    },
    emitCancelled: ({ context }) => {
      const s = context.stop;
      context.emit({
        type: "run.cancelled",
        data: {
          reason: s?.kind === "cancelled" ? s.reason : "cancelled",
          duration_ms: durationOf(context),
          ...(s?.kind === "cancelled" && s.by ? { by: s.by } : {}),
        },
      });
    },
    emitTimedOut: ({ context }) => {
      context.emit({ type: "run.timed_out", data: { timeout_ms: context.timeoutMs, duration_ms: durationOf(context) } });
    },
  },
}).createMachine({
  id: "run",
  context: ({ input }) => ({ ...input, createdAt: input.now(), startedAt: null, stop: null, outcome: null, prepared: null }),
  initial: "queued",
  states: {
    queued: {
      on: {
        START: "preparing",
        CANCEL: { target: "cancelled", actions: "recordCancel" },
      },
    },
    preparing: {
      entry: "markStarted",
      invoke: {
        src: "prepare",
        input: ({ context }) => ({ runId: context.runId }),
        onDone: { target: "running", actions: assign({ prepared: ({ event }) => event.output ?? {} }) },
        onError: "failed",
      },
      after: { runTimeout: { target: "timed_out", actions: "recordTimeout" } },
      on: { CANCEL: { target: "cancelled", actions: "recordCancel" } },
    },
    running: {
      invoke: {
        id: "agent",
        src: "agent",
        input: ({ context }) => (context.prepared?.container ? { ...context.agentInput, container: context.prepared.container } : context.agentInput),
        onError: "#run.failed",
      },
      initial: "working",
      states: {
        working: {
          after: { runTimeout: { target: "stopping", actions: ["recordTimeout", "stopAgent"] } },
          on: {
            CANCEL: { target: "stopping", actions: ["recordCancel", "stopAgent"] },
            FAIL: { target: "stopping", actions: ["recordFail", "stopAgent"] },
          },
        },
        stopping: {
          after: {
            stopWait: [
              { guard: "wasCancelled", target: "#run.cancelled" },
              { guard: "wasFailed", target: "#run.failed" },
              { target: "#run.timed_out" },
            ],
          },
        },
      },
      on: {
        "AGENT.EXITED": [
          { guard: "wasCancelled", target: "cancelled", actions: "recordOutcome" },
          { guard: "wasTimedOut", target: "timed_out", actions: "recordOutcome" },
          { guard: "wasFailed", target: "failed", actions: "recordOutcome" },
          { guard: "completedOk", target: "completed", actions: "recordOutcome" },
          { target: "failed", actions: "recordOutcome" },
        ],
      },
    },
    completed: { type: "final", entry: "emitCompleted" },
    failed: { type: "final", entry: "emitFailed" },
    cancelled: { type: "final", entry: "emitCancelled" },
    timed_out: { type: "final", entry: "emitTimedOut" },
  },
});

/**
 * The `run.failed` error of what `prepare` or the agent actor threw: the code of
 * a `RunFailure` (or a plain `.code` that is a run failure code, e.g. a
 * `ContainerError` or `ConflictError("project_busy")` from `prepare`), else
 * `internal`; the error's message.
 */
function failureOf(err: unknown): { code: RunFailureCode; message: string } {
  return { code: failureCode(err, "internal"), message: err instanceof Error ? err.message : "run failed" };
}
