/**
 * The span tree of each run, built by listening: `run.events.stored` on the bus says a run's events were
 * committed, and this reads them from the store after its cursor (the run's RunEvent stream, the same
 * union every other view projects); `run.status` says when a run was admitted (`preparing` has no event).
 * The run engine is not touched: the bus handlers only schedule, and the store is read afterwards,
 * asynchronously, one read loop per run at a time (notifications during a read make it read again).
 * Times are the events' `ts` (ms).
 *
 * ```
 * run (openrunner.run.id, openrunner.agent, enduser.id, openrunner.user, openrunner.isolation; at the end
 * │    process.exit.code, error.type = the failure code, status ERROR unless completed)
 * ├── preparing                     admission → run.started (or the end)
 * │   └── container.start           container.created → container.started
 * └── agent <name>                  run.started → the terminal event
 *     ├── turn <n>                  the model's turn: run.started or the last tool.result → the next tool.call (or the end); usage on it
 *     │                             (not for `shell` and `task` runs, which have no model)
 *     ├── tool <name>               tool.call → tool.result (status ERROR when is_error)
 *     │   └── permission <name>     permission.request with this call_id → permission.decision
 *     └── permission <name>         requests of no open tool call
 * ```
 *
 * The run span gets the span id the engine gave the agent as `TRACEPARENT` (`runSpanContext`,
 * `src/protocol/trace-context.ts`), a child of `metadata.traceparent` when the run has one.
 */
import { ROOT_CONTEXT, SpanKind, SpanStatusCode, trace, type Attributes, type Context, type Span, type Tracer } from "@opentelemetry/api";
import type { Bus } from "../bus/bus.ts";
import { isTerminalType, type RunEvent } from "../protocol/events.ts";
import { parseTraceparent, runSpanContext } from "../protocol/trace-context.ts";
import type { Log } from "../log.ts";
import type { Store } from "../store/types.ts";

/** Chooses the ids of the next span the tracer starts, or (`undefined`) lets them be random again (see `sdk.ts`, `ArmedIdGenerator`). */
export type ArmIds = (ids: { traceId: string; spanId: string } | undefined) => void;

/** Input of {@link RunSpans}. */
export interface RunSpansOptions {
  tracer: Tracer;
  armIds: ArmIds;
  bus: Bus;
  store: Pick<Store, "runs" | "events" | "users">;
  /** Where a failed store read is reported (the run's trace then misses those events until the next notification). */
  log?: Log;
}

interface Open {
  span: Span;
  ctx: Context;
}

/** The live trace of one run. */
interface RunTrace {
  run: Open;
  /** Last event id read. */
  after: number;
  preparing?: Open;
  container?: Open;
  agent?: Open;
  turn?: Open;
  turns: number;
  tools: Map<string, Open>;
  permissions: Map<string, Open>;
  /** The run span's start, ms: no child starts before it. */
  startMs: number;
  /** The agent talks to a model (not `shell` or `task`, which run a command): its time is cut into turns. */
  hasTurns: boolean;
}

/** Agents that run a command instead of a model loop: no turn spans. */
const NO_MODEL_AGENTS: ReadonlySet<string> = new Set(["shell", "task"]);

const PAGE = 1000;

/** Runs remembered as done with (ended, or not seen from their start), so a late notification does not read them again. */
const DONE_KEPT = 4096;

/** See the module comment. {@link RunSpans.close} unsubscribes and ends what is still open. */
export class RunSpans {
  readonly #o: RunSpansOptions;
  readonly #runs = new Map<string, RunTrace>();
  /** When a run was admitted before its `run.queued` was read (admission happens in the same turn as the append). */
  readonly #admittedAt = new Map<string, number>();
  readonly #off: Array<() => void>;
  /** Runs with a read loop running: `again` when a notification came during the read. */
  readonly #reading = new Map<string, { again: boolean }>();
  /** The read loops running (close waits for them). */
  readonly #loops = new Set<Promise<void>>();
  /** Runs done with: their trace ended, or they were not seen from their first event (insertion order: oldest first). */
  readonly #done = new Set<string>();
  #closed = false;
  #closing: Promise<void> | undefined;

  constructor(o: RunSpansOptions) {
    this.#o = o;
    this.#off = [
      o.bus.on("run.events.stored", ({ run_id }) => this.#kick(run_id)),
      o.bus.on("run.status", ({ run_id, status }) => {
        if (status !== "preparing") return;
        const t = this.#runs.get(run_id);
        if (t) this.#startPreparing(t, Date.now());
        else this.#admittedAt.set(run_id, Date.now());
      }),
    ];
  }

  /**
   * Stops listening, lets the reads under way finish (the events already stored are applied),
   * then ends the spans of runs still live (at the current time, as unfinished). Idempotent.
   */
  close(): Promise<void> {
    return (this.#closing ??= this.#close());
  }

  async #close(): Promise<void> {
    for (const off of this.#off) off();
    while (this.#loops.size > 0) await Promise.all([...this.#loops]);
    this.#closed = true;
    for (const [id, t] of this.#runs) {
      t.run.span.setAttribute("openrunner.unfinished", true);
      this.#endAll(t, Date.now());
      t.run.span.end();
      this.#runs.delete(id);
    }
  }

  /** A run's events were stored: read them soon (off the bus handler), or again once the read under way ends. */
  #kick(runId: string): void {
    if (this.#closed || this.#done.has(runId)) return;
    const reading = this.#reading.get(runId);
    if (reading) {
      reading.again = true;
      return;
    }
    const state = { again: false };
    this.#reading.set(runId, state);
    const loop = (async () => {
      try {
        do {
          state.again = false;
          await this.#read(runId);
        } while (state.again && !this.#closed && !this.#done.has(runId));
      } finally {
        this.#reading.delete(runId);
      }
    })().catch((err: unknown) => {
      this.#o.log?.warn("telemetry: could not read a run's events", { run_id: runId, err: String(err) });
    });
    this.#loops.add(loop);
    void loop.finally(() => this.#loops.delete(loop));
  }

  #markDone(runId: string): void {
    this.#runs.delete(runId);
    this.#done.add(runId);
    if (this.#done.size > DONE_KEPT) this.#done.delete(this.#done.values().next().value!);
  }

  /** Resolves once the run's stored events after its cursor are applied. */
  async #read(runId: string): Promise<void> {
    let t = this.#runs.get(runId);
    for (;;) {
      const events = await this.#o.store.events.list(runId, t?.after ?? 0, PAGE);
      if (this.#closed || events.length === 0) return;
      for (const e of events) {
        if (!t) {
          // Only runs seen from their first event (not those recovery ends, or live before telemetry started).
          if (e.id !== 1 || e.type !== "run.queued") return this.#markDone(runId);
          t = await this.#startRun(e);
          if (this.#closed) return;
        }
        if (e.id <= t.after) continue;
        t.after = e.id;
        this.#apply(t, e);
        if (isTerminalType(e.type)) return this.#markDone(runId);
      }
      if (events.length < PAGE) return;
    }
  }

  /** Resolves the run's new trace (its row and owner read from the store). */
  async #startRun(e: RunEvent & { type: "run.queued" }): Promise<RunTrace> {
    const row = await this.#o.store.runs.get(e.run_id);
    const user = row ? await this.#o.store.users.getById(row.user_id) : undefined;
    const parent = parseTraceparent(typeof row?.metadata.traceparent === "string" ? row.metadata.traceparent : undefined);
    const parentCtx = parent ? trace.setSpanContext(ROOT_CONTEXT, { traceId: parent.traceId, spanId: parent.spanId, traceFlags: parent.flags, isRemote: true }) : ROOT_CONTEXT;
    const own = runSpanContext(e.run_id, parent);
    const startMs = Date.parse(e.ts);
    const attributes: Attributes = {
      "openrunner.run.id": e.run_id,
      "openrunner.agent": e.data.agent,
      "openrunner.isolation": String(row?.metadata.isolation ?? "none"),
      ...(row ? { "enduser.id": row.user_id } : {}),
      ...(user ? { "openrunner.user": user.username } : {}),
      ...(typeof row?.metadata.acp_agent === "string" ? { "openrunner.acp_agent": row.metadata.acp_agent } : {}),
    };
    if (own) this.#o.armIds(own);
    const span = this.#o.tracer.startSpan(`run ${e.data.agent}`, { kind: SpanKind.INTERNAL, startTime: startMs, attributes }, parentCtx);
    this.#o.armIds(undefined);
    const t: RunTrace = { run: { span, ctx: trace.setSpan(parentCtx, span) }, after: 0, turns: 0, tools: new Map(), permissions: new Map(), startMs, hasTurns: !NO_MODEL_AGENTS.has(e.data.agent) };
    this.#runs.set(e.run_id, t);
    const admitted = this.#admittedAt.get(e.run_id);
    if (admitted !== undefined) {
      this.#admittedAt.delete(e.run_id);
      this.#startPreparing(t, admitted);
    }
    return t;
  }

  #child(parent: Open, name: string, startMs: number, attributes: Attributes = {}): Open {
    const span = this.#o.tracer.startSpan(name, { startTime: startMs, attributes }, parent.ctx);
    return { span, ctx: trace.setSpan(parent.ctx, span) };
  }

  #startPreparing(t: RunTrace, atMs: number): void {
    if (t.preparing || t.agent) return;
    t.preparing = this.#child(t.run, "preparing", Math.max(atMs, t.startMs));
  }

  #openTurn(t: RunTrace, ms: number): void {
    if (!t.agent || t.turn || !t.hasTurns) return;
    t.turns++;
    t.turn = this.#child(t.agent, `turn ${t.turns}`, ms, { "openrunner.turn": t.turns });
  }

  #apply(t: RunTrace, e: RunEvent): void {
    const ms = Date.parse(e.ts);
    switch (e.type) {
      case "container.created":
        t.container ??= this.#child(t.preparing ?? t.run, "container.start", ms, {
          "container.id": e.data.container_id,
          ...(e.data.pool ? { "openrunner.container.pool": true } : {}),
          ...(e.data.project_id ? { "openrunner.project_id": e.data.project_id } : {}),
        });
        return;
      case "container.started":
        end(t.container, ms);
        t.container = undefined;
        return;
      case "run.started":
        end(t.container, ms);
        end(t.preparing, ms);
        t.container = t.preparing = undefined;
        t.agent = this.#child(t.run, `agent ${e.data.agent}`, ms, {
          ...(e.data.pid !== undefined ? { "process.pid": e.data.pid } : {}),
          ...(e.data.agent_version ? { "openrunner.agent.version": e.data.agent_version } : {}),
          ...(e.data.container_id ? { "container.id": e.data.container_id } : {}),
        });
        this.#openTurn(t, ms);
        return;
      case "message.delta":
      case "message":
      case "reasoning":
      case "plan":
        if (t.tools.size === 0) this.#openTurn(t, ms);
        return;
      case "tool.call": {
        end(t.turn, ms);
        t.turn = undefined;
        const parent = t.agent ?? t.run;
        t.tools.get(e.data.call_id)?.span.end(ms); // a repeated id: the first one ends here
        t.tools.set(e.data.call_id, this.#child(parent, `tool ${e.data.name}`, ms, { "openrunner.tool.call_id": e.data.call_id, "openrunner.tool.name": e.data.name }));
        return;
      }
      case "tool.result": {
        const tool = t.tools.get(e.data.call_id);
        if (!tool) return;
        if (e.data.is_error) tool.span.setStatus({ code: SpanStatusCode.ERROR, message: "tool error" });
        tool.span.end(ms);
        t.tools.delete(e.data.call_id);
        if (t.tools.size === 0) this.#openTurn(t, ms);
        return;
      }
      case "permission.request": {
        const parent = (e.data.call_id !== undefined ? t.tools.get(e.data.call_id) : undefined) ?? t.agent ?? t.run;
        t.permissions.set(e.data.request_id, this.#child(parent, `permission ${e.data.name}`, ms, { "openrunner.permission.request_id": e.data.request_id }));
        return;
      }
      case "permission.decision": {
        const p = t.permissions.get(e.data.request_id);
        if (!p) return;
        p.span.setAttributes({ "openrunner.permission.decision": e.data.decision, "openrunner.permission.by": e.data.by });
        p.span.end(ms);
        t.permissions.delete(e.data.request_id);
        return;
      }
      case "usage":
        (t.turn ?? t.agent ?? t.run).span.setAttributes({ "gen_ai.usage.input_tokens": e.data.input_tokens, "gen_ai.usage.output_tokens": e.data.output_tokens });
        return;
      case "run.stalled":
        t.run.span.addEvent("run.stalled", { "openrunner.stall.cause": e.data.cause, "openrunner.stall.idle_ms": e.data.idle_ms }, ms);
        return;
      case "run.completed":
      case "run.failed":
      case "run.cancelled":
      case "run.timed_out":
        this.#endRun(t, e, ms);
        return;
      default:
        return;
    }
  }

  #endRun(t: RunTrace, e: RunEvent, ms: number): void {
    this.#endAll(t, ms);
    const span = t.run.span;
    span.setAttribute("openrunner.status", e.type.slice(4));
    if (e.type === "run.completed") {
      span.setAttribute("process.exit.code", e.data.exit_code);
      if (e.data.usage) span.setAttributes({ "gen_ai.usage.input_tokens": e.data.usage.input_tokens, "gen_ai.usage.output_tokens": e.data.usage.output_tokens });
    } else if (e.type === "run.failed") {
      span.setAttribute("error.type", e.data.error.code);
      if (e.data.exit_code !== undefined) span.setAttribute("process.exit.code", e.data.exit_code);
      span.setStatus({ code: SpanStatusCode.ERROR, message: e.data.error.message });
    } else if (e.type === "run.timed_out") {
      span.setAttribute("error.type", "timed_out");
      span.setStatus({ code: SpanStatusCode.ERROR, message: `timed out after ${e.data.timeout_ms} ms` });
    } else if (e.type === "run.cancelled") span.setAttribute("openrunner.cancel.reason", e.data.reason);
    span.end(ms);
  }

  /** Ends every open child span at `ms` (innermost first). */
  #endAll(t: RunTrace, ms: number): void {
    for (const p of t.permissions.values()) p.span.end(ms);
    for (const tool of t.tools.values()) tool.span.end(ms);
    t.permissions.clear();
    t.tools.clear();
    for (const o of [t.turn, t.container, t.preparing, t.agent]) end(o, ms);
    t.turn = t.container = t.preparing = t.agent = undefined;
  }
}

function end(o: Open | undefined, ms: number): void {
  o?.span.end(ms);
}
