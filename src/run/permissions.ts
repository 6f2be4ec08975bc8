/**
 * Approvals (docs/architecture.md#permissions, `permission.request` / `permission.decision`):
 * the {@link PermissionGate} of one run and the server's
 * {@link PermissionRegistry} of open requests.
 *
 * An agent actor calls `gate.ask(req, signal)`. The gate writes a
 * `permission.request` event with a fresh unguessable `request_id`, then decides:
 *
 * - policy `allow`: the agent's first `allow_once` option (else `allow_always`), `by: "policy"`;
 * - policy `deny`: the first `reject_once` option (else `reject_always`), `by: "policy"`;
 * - policy `ask`: the request waits in the registry for the owner's answer
 *   (`RunManager.answerPermission`, `by: "user:<name>"`) or for its deadline, where the
 *   configured `timeout_decision` (first reject or first allow option) applies, `by: "timeout"`.
 *
 * Every request gets exactly one `permission.decision` event. When no option of
 * the wanted kind exists, or the run ends first (`by: "run_ended"`, the actor's
 * signal or the run's own signal aborted), the decision is `cancelled` and the
 * agent gets ACP's `{outcome: "cancelled"}`, which never grants anything.
 * While an `ask` request is open the run's row shows `waiting` (see
 * `RunManager.project`).
 */
import { randomBytes } from "node:crypto";
import type { PermissionAnswer, PermissionAsk, PermissionGate, PermissionOption } from "../agent/permissions.ts";
import { ConflictError, NotFoundError, ValidationError } from "../errors.ts";
import type { Log } from "../log.ts";
import type { EventRepo } from "../store/types.ts";
import type { RunEventInput } from "../protocol/events.ts";

/** Who decides a run's permission requests. */
export type PermissionPolicy = "allow" | "deny" | "ask";

/** The data of a `permission.decision` event. `decision` is an option id, or `cancelled` (then `kind` is absent). */
export interface PermissionDecision {
  request_id: string;
  decision: string;
  /** `user:<name>`, `policy`, `timeout` or `run_ended`. */
  by: string;
  option_name?: string;
  kind?: string;
}

/** An open `ask` request, as `GET /api/runs/:id/permissions` lists it. Times ISO 8601 UTC. */
export interface PendingPermission {
  request_id: string;
  call_id?: string;
  name: string;
  input: unknown;
  options: PermissionOption[];
  requested_at: string;
  deadline: string;
}

/** Most open requests one run may hold; further ones are cancelled at once (an agent flooding requests). */
export const MAX_OPEN_REQUESTS_PER_RUN = 32;

/** An open request as the registry holds it. */
export interface PendingEntry {
  runId: string;
  view: PendingPermission;
  /** Records the decision (event) and answers the agent; called exactly once, by {@link PermissionRegistry.decide}. */
  resolve(d: PermissionDecision): void;
  /** True once the run's terminal event is appended (an answer then is too late). */
  runOver(): boolean;
}

/**
 * The server's open permission requests, by request id, and the decisions of
 * live runs (so a second answer is a 409 even before the decision is committed).
 * Create one per server (the RunManager owns it).
 */
export class PermissionRegistry {
  readonly #open = new Map<string, PendingEntry>();
  /** run id -> request id -> decision, for live runs; dropped when the run's terminal event is committed. */
  readonly #decided = new Map<string, Map<string, PermissionDecision>>();

  /** Open requests of a run, oldest first. */
  listOpen(runId: string): PendingPermission[] {
    return [...this.#open.values()].filter((e) => e.runId === runId).map((e) => e.view);
  }

  /** Number of open requests of a run. */
  countOpen(runId: string): number {
    let n = 0;
    for (const e of this.#open.values()) if (e.runId === runId) n++;
    return n;
  }

  /** Adds an open request (the gate does this for `ask`). */
  register(entry: PendingEntry): void {
    this.#open.set(entry.view.request_id, entry);
  }

  /**
   * Decides an open request: removes it, remembers the decision, writes the
   * event and answers the agent. Returns false when the request is not open
   * (already decided): exactly one decision per request, whoever comes first.
   */
  decide(requestId: string, d: PermissionDecision): boolean {
    const e = this.#open.get(requestId);
    if (!e) return false;
    this.#open.delete(requestId);
    let decided = this.#decided.get(e.runId);
    if (!decided) this.#decided.set(e.runId, (decided = new Map()));
    decided.set(requestId, d);
    e.resolve(d);
    return true;
  }

  /**
   * The owner's answer. `by` is `user:<name>`.
   * @throws NotFoundError (404) when the run has no such request (open or decided while live);
   *   ConflictError (409, `permission_already_decided`) when it was decided already, or the run has ended;
   *   ValidationError (400, `unknown_option`) when `optionId` is not one of the request's options.
   */
  answer(runId: string, requestId: string, optionId: string, by: string): PermissionDecision {
    const e = this.#open.get(requestId);
    if (!e || e.runId !== runId) {
      if (this.#decided.get(runId)?.has(requestId)) throw alreadyDecided();
      throw new NotFoundError("permission request");
    }
    if (e.runOver()) throw alreadyDecided();
    const opt = e.view.options.find((o) => o.option_id === optionId);
    if (!opt) {
      throw new ValidationError("option_id is not one of the request's options", { field: "option_id", value: optionId, allowed: e.view.options.map((o) => o.option_id) }, "unknown_option");
    }
    const d = selected(requestId, opt, by);
    this.decide(requestId, d);
    return d;
  }

  /** True when the request is open or was decided during this (live) run. */
  knows(runId: string, requestId: string): boolean {
    const e = this.#open.get(requestId);
    return (e !== undefined && e.runId === runId) || this.#decided.get(runId)?.has(requestId) === true;
  }

  /** The run is over: cancels its open requests (`by: "run_ended"`) and forgets its decisions. */
  endRun(runId: string): void {
    for (const [id, e] of [...this.#open]) if (e.runId === runId) this.decide(id, cancelled(id, "run_ended"));
    this.#decided.delete(runId);
  }
}

function alreadyDecided(): ConflictError {
  return new ConflictError("the permission request was already decided", "permission_already_decided");
}

function selected(requestId: string, opt: PermissionOption, by: string): PermissionDecision {
  return { request_id: requestId, decision: opt.option_id, by, option_name: opt.name, kind: opt.kind };
}

function cancelled(requestId: string, by: string): PermissionDecision {
  return { request_id: requestId, decision: "cancelled", by };
}

/**
 * The option a policy picks: the first `<want>_once`, else the first `<want>_always`, else undefined.
 * @example pickOption([{option_id: "a", name: "Allow", kind: "allow_always"}, {option_id: "r", name: "No", kind: "reject_once"}], "allow") // the "a" option
 */
export function pickOption(options: readonly PermissionOption[], want: "allow" | "reject"): PermissionOption | undefined {
  return options.find((o) => o.kind === `${want}_once`) ?? options.find((o) => o.kind === `${want}_always`);
}

/** Options of {@link createPermissionGate}. Times in ms. */
export interface PermissionGateOptions {
  runId: string;
  policy: PermissionPolicy;
  /** How long an `ask` request waits, ms. */
  timeoutMs: number;
  /** What applies at the deadline. */
  timeoutDecision: "reject" | "allow";
  /** Appends an event to the run's channel. */
  emit: (e: RunEventInput) => void;
  registry: PermissionRegistry;
  /** True once the run's terminal event is appended. */
  runOver?: () => boolean;
  /** Aborted when the run ends (a backstop for actors that do not abort their own signal). */
  runSignal?: AbortSignal;
  /** Current time, epoch ms (tests). */
  now?: () => number;
  log?: Pick<Log, "warn">;
}

/**
 * Creates the gate of one run; see the module comment.
 * @example
 * const gate = createPermissionGate({ runId, policy: "ask", timeoutMs: 300_000, timeoutDecision: "reject", emit, registry });
 * const answer = await gate.ask({ name: "Write hello.txt", input: {...}, options }, signal);
 */
export function createPermissionGate(opts: PermissionGateOptions): PermissionGate {
  const { runId, registry, emit } = opts;
  const now = opts.now ?? Date.now;
  const runOver = opts.runOver ?? (() => false);
  return {
    ask(req: PermissionAsk, signal: AbortSignal): Promise<PermissionAnswer> {
      const request_id = `perm_${randomBytes(16).toString("hex")}`;
      const options = req.options.map((o) => ({ option_id: String(o.option_id), name: String(o.name), kind: String(o.kind) }));
      const requestedAt = now();
      emit({
        type: "permission.request",
        data: { request_id, ...(req.call_id !== undefined ? { call_id: req.call_id } : {}), name: req.name, input: req.input ?? null, options },
      });
      return new Promise<PermissionAnswer>((resolve) => {
        let timer: NodeJS.Timeout | undefined;
        const onAbort = () => registry.decide(request_id, cancelled(request_id, "run_ended"));
        const cleanup = () => {
          clearTimeout(timer);
          signal.removeEventListener("abort", onAbort);
          opts.runSignal?.removeEventListener("abort", onAbort);
        };
        registry.register({
          runId,
          runOver,
          view: {
            request_id,
            ...(req.call_id !== undefined ? { call_id: req.call_id } : {}),
            name: req.name,
            input: req.input ?? null,
            options,
            requested_at: new Date(requestedAt).toISOString(),
            deadline: new Date(requestedAt + opts.timeoutMs).toISOString(),
          },
          resolve(d) {
            cleanup();
            emit({ type: "permission.decision", data: { ...d } });
            resolve(d.kind === undefined ? { outcome: "cancelled" } : { outcome: "selected", option_id: d.decision });
          },
        });
        if (signal.aborted || opts.runSignal?.aborted) return void onAbort();
        if (opts.policy !== "ask") return void decideBy(pickOption(options, opts.policy === "allow" ? "allow" : "reject"), "policy");
        if (registry.countOpen(runId) > MAX_OPEN_REQUESTS_PER_RUN) {
          opts.log?.warn("too many open permission requests; cancelled", { run_id: runId, max: MAX_OPEN_REQUESTS_PER_RUN });
          return void decideBy(undefined, "policy");
        }
        signal.addEventListener("abort", onAbort, { once: true });
        opts.runSignal?.addEventListener("abort", onAbort, { once: true });
        timer = setTimeout(() => decideBy(pickOption(options, opts.timeoutDecision), "timeout"), opts.timeoutMs);
      });

      function decideBy(opt: PermissionOption | undefined, by: string): void {
        registry.decide(request_id, opt ? selected(request_id, opt, by) : cancelled(request_id, by));
      }
    },
  };
}

/**
 * Whether a finished run's stored events hold a `permission.request` with this id
 * (a late answer to it is a 409, an unknown id a 404). Reads the run's events page by page.
 */
export async function storedRequestExists(events: Pick<EventRepo, "list">, runId: string, requestId: string): Promise<boolean> {
  const PAGE = 1000;
  for (let after = 0; ; ) {
    const page = await events.list(runId, after, PAGE);
    for (const e of page) if (e.type === "permission.request" && e.data.request_id === requestId) return true;
    if (page.length < PAGE) return false;
    after = page[page.length - 1]!.id;
  }
}
