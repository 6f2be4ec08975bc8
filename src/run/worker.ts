/**
 * The worker loop of the distributed mode (`openrunner worker`, docs/architecture.md#scale-out):
 * registers the worker with the agents and isolations it can run, then
 *
 * - claims queued runs whenever it has free capacity: on a `queue` notification, when one of its
 *   runs ends, and on every heartbeat (the backstop for a notification missed while reconnecting);
 *   each claimed run is launched by {@link RunManager.executeClaimed};
 * - heartbeats every `heartbeatMs`, which renews the leases of its runs (an expired lease ends a
 *   run `worker_lost`, reaped by any process: {@link Cluster.reapExpired});
 * - acts on `cancel` and `permission` commands for its runs, and at every heartbeat on the cancels
 *   recorded for its runs (a notification lost while reconnecting, or sent before the run was launched).
 *
 * Stop: no more claims, the RunManager's ordered shutdown ends its runs, then the worker is removed.
 */
import type { Log } from "../log.ts";
import { AdmissionQueue, RUN_PRIORITIES, type AdmissionLimits, type RunPriority } from "./admission.ts";
import type { ClaimCandidate, Cluster, WorkerAgent } from "../store/cluster.ts";
import type { RunManager } from "./manager.ts";

/** Options of {@link WorkerLoop}. */
export interface WorkerLoopOptions {
  cluster: Cluster;
  manager: Pick<RunManager, "executeClaimed" | "cancelLocal" | "answerLocal" | "liveCount">;
  /** `wrk_<ulid>`. */
  id: string;
  host: string;
  agents: WorkerAgent[];
  isolations: string[];
  /** Most runs at once on this worker. */
  capacity: number;
  /** Cluster-wide admission limits (read at every claim: a live configuration). */
  limits: () => AdmissionLimits;
  /** Heartbeat interval, ms (well under the lease, `cluster_lease_ms`). */
  heartbeatMs: number;
  /** Kills processes of runs that are over or lost their worker (a worker killed on this machine left them); run at start and every 10 heartbeats. */
  sweepOrphans?: () => Promise<void>;
  log: Log;
}

/** See the module comment. */
export class WorkerLoop {
  readonly #o: WorkerLoopOptions;
  #timer: NodeJS.Timeout | null = null;
  #stopListening: (() => Promise<void>) | null = null;
  #claiming: Promise<void> | null = null;
  #again = false;
  #stopped = false;
  /** Runs claimed and not yet handed to the manager (counted against the capacity). */
  #launching = 0;
  #beats = 0;

  constructor(opts: WorkerLoopOptions) {
    this.#o = opts;
  }

  /** This worker's id (`wrk_<ulid>`). */
  get id(): string {
    return this.#o.id;
  }

  /** The agents it offers. */
  get agents(): readonly WorkerAgent[] {
    return this.#o.agents;
  }

  /** The isolations it offers. */
  get isolations(): readonly string[] {
    return this.#o.isolations;
  }

  /** Registers, listens, heartbeats and makes the first claim. */
  async start(): Promise<void> {
    const o = this.#o;
    await o.cluster.registerWorker({ id: o.id, host: o.host, pid: process.pid, agents: o.agents, isolations: o.isolations, capacity: o.capacity });
    this.#stopListening = await o.cluster.listen({
      queue: () => this.kick(),
      reconnected: () => this.kick(),
      control: (m) => {
        if (m.type === "cancel") o.manager.cancelLocal(m.run_id, m.reason, m.by);
        else o.manager.answerLocal(m.run_id, m.request_id, m.option_id, m.by);
      },
    });
    this.#timer = setInterval(() => void this.#beat(), o.heartbeatMs);
    this.#timer.unref();
    await this.#sweep();
    this.kick();
  }

  async #sweep(): Promise<void> {
    try {
      await this.#o.sweepOrphans?.();
    } catch (err) {
      this.#o.log.warn("orphan sweep failed", { err: String(err) });
    }
  }

  /** Claims runs now if there is room (calls while a claim is out coalesce into one more). */
  kick(): void {
    if (this.#stopped) return;
    if (this.#claiming) {
      this.#again = true;
      return;
    }
    this.#claiming = this.#claimLoop()
      .catch((err: unknown) => void this.#o.log.warn("claim failed; retried at the next heartbeat", { err: String(err) }))
      .finally(() => {
        this.#claiming = null;
        if (this.#again) {
          this.#again = false;
          this.kick();
        }
      });
  }

  async #claimLoop(): Promise<void> {
    const o = this.#o;
    for (;;) {
      this.#again = false;
      const free = o.capacity - o.manager.liveCount - this.#launching;
      if (free <= 0 || this.#stopped) return;
      const limits = o.limits();
      const rows = await o.cluster.claim({ workerId: o.id, agents: o.agents.map((a) => a.agent), isolations: o.isolations, choose: (queued, running) => chooseRuns(queued, running, limits, free) });
      if (rows.length === 0 && !this.#again) return;
      this.#launching += rows.length;
      await Promise.all(
        rows.map((row) =>
          o.manager
            .executeClaimed(row)
            .catch((err: unknown) => void o.log.error("claimed run not launched", { run_id: row.id, err: String(err) }))
            .finally(() => this.#launching--),
        ),
      );
    }
  }

  async #beat(): Promise<void> {
    try {
      const known = await this.#o.cluster.heartbeat(this.#o.id);
      if (!known && !this.#stopped) {
        // Reaped (a pause longer than the stale limit): register again; runs it lost were already ended by the reaper.
        this.#o.log.warn("worker was removed by a reaper; registering again", { worker_id: this.#o.id });
        await this.#o.cluster.registerWorker({ id: this.#o.id, host: this.#o.host, pid: process.pid, agents: this.#o.agents, isolations: this.#o.isolations, capacity: this.#o.capacity });
      }
    } catch (err) {
      this.#o.log.warn("heartbeat failed", { err: String(err) });
    }
    try {
      // Cancels whose notification was lost (a reconnect, or between claim and launch) are recorded on the run.
      for (const c of await this.#o.cluster.cancelRequests(this.#o.id)) this.#o.manager.cancelLocal(c.run_id, c.reason, c.by);
    } catch (err) {
      this.#o.log.warn("reading cancel requests failed", { err: String(err) });
    }
    if (++this.#beats % 10 === 0) await this.#sweep();
    this.kick();
  }

  /** No more claims and no more commands; resolves once a claim in flight has handed over its runs. Safe to call twice. */
  async stopClaiming(): Promise<void> {
    this.#stopped = true;
    await this.#claiming;
  }

  /** After the runs ended (the RunManager's shutdown): stops heartbeats and listening, removes the worker. Safe to call twice. */
  async close(): Promise<void> {
    await this.stopClaiming();
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = null;
    const stop = this.#stopListening;
    this.#stopListening = null;
    await stop?.();
    await this.#o.cluster.removeWorker(this.#o.id).catch((err: unknown) => this.#o.log.warn("could not remove the worker", { err: String(err) }));
  }
}

/**
 * The admission decision of one claim: the single process's rules ({@link AdmissionQueue}: global and
 * per-user limits over every claimed run of the cluster, effective priority with aging from the row's
 * `created_at`, then FIFO), at most `max` runs. Pure.
 */
export function chooseRuns(queued: readonly ClaimCandidate[], running: ReadonlyArray<{ user_id: string }>, limits: AdmissionLimits, max: number, now = Date.now()): string[] {
  const q = new AdmissionQueue(limits, () => now);
  for (const r of running) q.occupy(r.user_id);
  for (const c of queued) q.enqueue(c.id, c.user_id, (RUN_PRIORITIES as readonly string[]).includes(c.priority) ? (c.priority as RunPriority) : "normal", Date.parse(c.created_at));
  return q
    .admit()
    .slice(0, Math.max(0, max))
    .map((e) => e.id);
}
