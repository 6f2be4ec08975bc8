/**
 * The API server's side of runs that execute on workers (distributed mode, `cluster.ts`). The
 * RunManager hands these calls here when it has a cluster and the `api` role:
 *
 * - reading: a run's channel is a follower ({@link RunChannel.wake}) fed from the store on every
 *   `events` notification, so SSE, replay, Last-Event-ID and `whenTerminal` work unchanged; one
 *   follower per run per process, dropped once the run is over and nobody reads it;
 * - cancel: a queued run nobody holds is ended here, atomically in the store; a claimed one is
 *   cancelled by its worker (a `cancel` command);
 * - permissions: the open requests are read from the stored events; an answer is checked against
 *   them here (404, 409, 400 as on one process), carried out by the worker's permission gate, and
 *   answered once the decision is stored: 200 when it is this answer, 409 when another answer (or
 *   the policy's deadline) was applied first, so concurrent answers get one 200 as on one process.
 */
import { AgentUnavailableError, BatchItemError, ConflictError, NotFoundError, TooManyRequestsError, ValidationError, WorkerUnreachableError } from "../errors.ts";
import type { Bus } from "../bus/bus.ts";
import type { Log } from "../log.ts";
import { isTerminalType, TERMINAL_STATUSES, type RunEvent } from "../protocol/events.ts";
import type { PermissionOption } from "../agent/permissions.ts";
import type { BatchRow, RunRow, Store } from "../store/types.ts";
import { RunChannel } from "./channel.ts";
import type { Cluster, WorkerRow } from "../store/cluster.ts";
import type { QueuedRun } from "./cluster-plan.ts";
import type { EventWriter } from "./event-writer.ts";
import type { PendingPermission, PermissionDecision } from "./permissions.ts";

/** Dependencies of {@link RemoteRuns}. */
export interface RemoteRunsDeps {
  store: Store;
  cluster: Cluster;
  /** Followers never append; the writer is the channel's formal dependency. */
  writer: EventWriter;
  /** Per-subscriber live buffer, events. */
  bufferLimit: number;
  onSubscribers?: (delta: 1 | -1) => void;
  bus: Pick<Bus, "publish">;
  /** `max_queued_runs_per_user`, read at every check (a live setting). */
  maxQueuedPerUser: () => number;
  /** A run's lease, ms: a worker not heard from for this long cannot take new runs. */
  leaseMs: number;
  /** Batch events of `batchId` were stored (the database writes them in the distributed mode); with no id: maybe any batch's (notifications were missed). */
  onBatchEvents?: (batchId?: string) => void;
  /** A run's permission timeout, ms (its `permission_timeout_secs`, else the configured one): the deadline listed for an open request. */
  permissionTimeoutMs: (row: RunRow) => number;
  log: Log;
}

const PAGE = 1000;
/** How long an answer waits for the worker's stored decision, ms. */
const ANSWER_WAIT_MS = 15_000;

type RequestEvent = Extract<RunEvent, { type: "permission.request" }>;

/** See the module comment. */
export class RemoteRuns {
  readonly #d: RemoteRunsDeps;
  readonly #followers = new Map<string, { channel: RunChannel; readers: number }>();
  #stopListening: (() => Promise<void>) | null = null;
  #backstop: NodeJS.Timeout | null = null;
  /** The workers as last read (which agents can run), and when, epoch ms. */
  #workers: { at: number; list: WorkerRow[] } | null = null;

  constructor(d: RemoteRunsDeps) {
    this.#d = d;
  }

  /** Starts listening for stored-event notifications. */
  async start(): Promise<void> {
    this.#stopListening = await this.#d.cluster.listen({
      events: (runId) => void this.#followers.get(runId)?.channel.wake(),
      batches: (batchId) => this.#d.onBatchEvents?.(batchId),
      // Notifications were missed while the connection was down: every follower reads the store again.
      reconnected: () => {
        for (const f of this.#followers.values()) void f.channel.wake();
        this.#d.onBatchEvents?.();
      },
    });
    // A backstop for a notification lost without a reconnect (or a read that failed): every follower reads the store every 5 s.
    this.#backstop = setInterval(() => {
      for (const f of this.#followers.values()) void f.channel.wake();
      this.#d.onBatchEvents?.();
    }, 5000);
    this.#backstop.unref();
  }

  /** The caller's queue cap (`max_queued_runs_per_user`) counted against the runs queued in the store for `n` more. @throws BatchItemError (429) naming the first item past it */
  async checkQueueRoom(userId: string, n: number): Promise<void> {
    const room = this.#d.maxQueuedPerUser() - (await this.#d.cluster.queuedCount(userId));
    if (n > room) throw new BatchItemError(Math.max(0, room), new TooManyRequestsError(5));
  }

  /** Stores planned runs with their `run.queued` events in one transaction (with their batch), then wakes the workers. Resolves the rows. */
  async queue(runs: readonly QueuedRun[], batch?: BatchRow): Promise<RunRow[]> {
    const ahead = await this.#d.cluster.queuedCount();
    const rows = await this.#d.store.transaction(async (tx) => {
      if (batch) await tx.batches.insert(batch);
      const out: RunRow[] = [];
      for (const [i, q] of runs.entries()) {
        const row = await tx.runs.insert(q.row);
        const [queued] = await tx.events.append(row.id, [{ ts: new Date().toISOString(), type: "run.queued", data: { agent: q.agent, input: { text: q.row.input.text }, position: ahead + i } }]);
        out.push({ ...row, last_event_id: queued!.id });
      }
      return out;
    });
    for (const row of rows) this.#d.bus.publish("run.status", { run_id: row.id, user_id: row.user_id, agent: row.agent, status: "queued", prev: null });
    await this.#d.cluster.notifyQueued();
    return rows;
  }

  /**
   * Some worker heard from within a lease offers `agent` (with docker isolation when `docker`); the list is read at most once a second.
   * @throws AgentUnavailableError (503) otherwise
   */
  async requireWorker(agent: string, docker: boolean): Promise<void> {
    const now = Date.now();
    if (!this.#workers || now - this.#workers.at > 1000) this.#workers = { at: now, list: await this.#d.cluster.listWorkers() };
    // Silent longer than a lease (by the database's clock, not ours): as good as gone; the reaper removes it later.
    const able = this.#workers.list.filter((w) => w.heartbeat_age_ms <= this.#d.leaseMs && w.agents.some((a) => a.agent === agent));
    if (able.length === 0) throw new AgentUnavailableError(agent, "no live worker runs it");
    if (docker && !able.some((w) => w.isolations.includes("docker"))) throw new AgentUnavailableError(agent, "no live worker runs it with docker isolation");
  }

  /** Cancels every live run of a user (queued, or on a worker) and waits for their terminal events. */
  async cancelUserRuns(userId: string, by: string): Promise<void> {
    const live: RunRow[] = [];
    for (let cursor: string | undefined; ; ) {
      const page = await this.#d.store.runs.list({ user_id: userId, limit: 500, ...(cursor !== undefined ? { cursor } : {}) });
      live.push(...page.runs.filter((r) => !TERMINAL_STATUSES.includes(r.status)));
      if (page.next_cursor === null) break;
      cursor = page.next_cursor;
    }
    await Promise.all(live.map(async (r) => (await this.cancel(r, "user deleted", by), this.waitForTerminal(r))));
  }

  /** The follower channel of a run (created on first use, caught up with the store before it is returned). */
  async channelFor(row: RunRow): Promise<RunChannel> {
    let f = this.#followers.get(row.id);
    if (!f) {
      const lastId = await this.#d.store.events.lastId(row.id);
      // Whether it is over comes from the store, not from `row` (read earlier: the terminal event may have been stored since).
      const last = lastId > 0 ? (await this.#d.store.events.list(row.id, lastId - 1, 1))[0] : undefined;
      f = this.#followers.get(row.id); // another reader may have made it meanwhile
      if (!f && last && isTerminalType(last.type)) {
        // Over: nothing more will be stored, so nothing to follow or share; a channel of its own replays the store.
        return new RunChannel({ runId: row.id, lastStoredId: lastId, terminalId: lastId, writer: this.#d.writer, events: this.#d.store.events, bufferLimit: this.#d.bufferLimit, ...(this.#d.onSubscribers ? { onSubscribers: this.#d.onSubscribers } : {}) });
      }
      if (!f) {
        const entry = { channel: null as unknown as RunChannel, readers: 0 };
        entry.channel = new RunChannel({
          runId: row.id,
          lastStoredId: lastId,
          terminalId: null,
          writer: this.#d.writer,
          events: this.#d.store.events,
          bufferLimit: this.#d.bufferLimit,
          onSubscribers: (delta) => {
            entry.readers += delta;
            this.#d.onSubscribers?.(delta);
            if (entry.readers === 0 && entry.channel.terminalId !== null) this.#drop(row.id, entry);
          },
        });
        f = entry;
        this.#followers.set(row.id, f);
        void entry.channel.whenTerminal().then(() => entry.readers === 0 && this.#drop(row.id, entry));
      }
    }
    await f.channel.wake(); // events stored between lastId and the notification subscription
    return f.channel;
  }

  #drop(runId: string, entry: { channel: RunChannel }): void {
    if (this.#followers.get(runId)?.channel === entry.channel) this.#followers.delete(runId);
  }

  /** Resolves the final row once the run's terminal event is stored (whoever writes it). */
  async waitForTerminal(row: RunRow): Promise<RunRow | undefined> {
    if (!TERMINAL_STATUSES.includes(row.status)) await (await this.channelFor(row)).whenTerminal();
    return this.#d.store.runs.get(row.id);
  }

  /**
   * Cancels a run: a queued one nobody claimed is ended here; otherwise its worker is told. Idempotent;
   * nothing happens for a run that is over.
   */
  async cancel(row: RunRow, reason: string, by: string): Promise<void> {
    if (TERMINAL_STATUSES.includes(row.status)) return;
    const ended = await this.#d.cluster.cancelQueued(row.id, { reason, by });
    if (!ended) await this.#d.cluster.requestCancel(row.id, reason, by);
  }

  /** The open permission requests of a live run, oldest first, from its stored events. */
  async listOpen(row: RunRow): Promise<PendingPermission[]> {
    if (TERMINAL_STATUSES.includes(row.status)) return [];
    const open = new Map<string, PendingPermission>();
    await this.#scan(row.id, (e) => {
      if (e.type === "permission.request") {
        const d = e.data;
        open.set(d.request_id, { request_id: d.request_id, ...(d.call_id !== undefined ? { call_id: d.call_id } : {}), name: d.name, input: d.input, options: d.options as PermissionOption[], requested_at: e.ts, deadline: new Date(Date.parse(e.ts) + this.#d.permissionTimeoutMs(row)).toISOString() });
      } else if (e.type === "permission.decision") open.delete(e.data.request_id);
    });
    return [...open.values()];
  }

  /**
   * Checks an answer against the stored request and sends it to the run's worker.
   * @throws NotFoundError (no such request), ConflictError (`permission_already_decided`: decided, or the run is over), ValidationError (`unknown_option`)
   */
  async answer(row: RunRow, requestId: string, optionId: string, by: string): Promise<PermissionDecision> {
    let request: RequestEvent | undefined;
    let decided = false;
    let scanned = 0;
    await this.#scan(row.id, (e) => {
      scanned = e.id;
      if (e.type === "permission.request" && e.data.request_id === requestId) request = e as RequestEvent;
      else if (e.type === "permission.decision" && e.data.request_id === requestId) decided = true;
    });
    if (!request) throw new NotFoundError("permission request");
    if (decided || TERMINAL_STATUSES.includes(row.status)) throw new ConflictError("the permission request was already decided", "permission_already_decided");
    const options = request.data.options as PermissionOption[];
    const opt = options.find((o) => o.option_id === optionId);
    if (!opt) throw new ValidationError("option_id is not one of the request's options", { field: "option_id", value: optionId, allowed: options.map((o) => o.option_id) }, "unknown_option");
    const stored = this.#decisionAfter(await this.channelFor(row), scanned, requestId);
    await this.#d.cluster.publishControl({ type: "permission", run_id: row.id, request_id: requestId, option_id: optionId, by });
    const d = await stored;
    if (d === "timeout") throw new WorkerUnreachableError("apply the answer");
    if (d === null || d.decision !== opt.option_id || d.by !== by) throw new ConflictError("the permission request was already decided", "permission_already_decided");
    return { request_id: requestId, decision: opt.option_id, by, option_name: opt.name, kind: opt.kind };
  }

  /**
   * Resolves the stored `permission.decision` of `requestId` after event `after`; null when the run ended
   * without one (or its stream was cut), `timeout` after {@link ANSWER_WAIT_MS}.
   */
  #decisionAfter(channel: RunChannel, after: number, requestId: string): Promise<{ decision: string; by: string } | null | "timeout"> {
    return new Promise((resolve) => {
      let done = false;
      const finish = (v: { decision: string; by: string } | null | "timeout") => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        sub.close();
        resolve(v);
      };
      const timer = setTimeout(() => finish("timeout"), ANSWER_WAIT_MS);
      const sub = channel.subscribe(after, {
        write: (chunk) => {
          for (const e of chunk.events) if (e.type === "permission.decision" && e.data.request_id === requestId) finish({ decision: e.data.decision, by: e.data.by });
          return true;
        },
        lagged: () => finish(null),
        end: () => finish(null),
      });
    });
  }

  async #scan(runId: string, visit: (e: RunEvent) => void): Promise<void> {
    for (let after = 0; ; ) {
      const page = await this.#d.store.events.list(runId, after, PAGE);
      for (const e of page) visit(e);
      if (page.length < PAGE) return;
      after = page[page.length - 1]!.id;
    }
  }

  /** Stops listening and ends every follower's subscriptions; safe to call twice. */
  async close(): Promise<void> {
    const stop = this.#stopListening;
    this.#stopListening = null;
    if (this.#backstop) clearInterval(this.#backstop);
    this.#backstop = null;
    await stop?.();
    for (const f of this.#followers.values()) f.channel.closeAll();
    this.#followers.clear();
  }
}

