/**
 * Admission (docs/architecture.md#prompt-path): a priority queue with a global
 * and a per-user concurrency limit, and a cap on how many runs one user may
 * have waiting. Pure bookkeeping (no I/O, no timers; the clock is injected):
 * the RunManager asks it which queued runs may start and tells it when one ends.
 *
 * Order: effective priority (highest first), then FIFO (enqueue order). A
 * run's effective priority is its `metadata.priority` raised one level per
 * `agingMs` it has waited, up to `critical`. Anti-starvation bound: a run
 * enqueued at `t` is `critical` from `t + levels × agingMs` on (levels: 3 for
 * `low`), and from then only runs enqueued before it can be ordered ahead of
 * it, so it waits for at most the runs that were already queued when it
 * arrived (plus the admissions before that moment), never forever.
 *
 * The limits are read at every {@link AdmissionQueue.admit} call (pass a
 * function to have them follow a live configuration).
 */
import { RUN_PRIORITIES, type RunPriority } from "../protocol/requests.ts";

export { RUN_PRIORITIES, type RunPriority };

/** The limits of {@link AdmissionQueue}. */
export interface AdmissionLimits {
  /** Runs admitted (preparing or running) at once, all users. */
  maxRunning: number;
  /** Runs admitted at once per user. */
  maxRunningPerUser: number;
  /** Waiting time that raises a queued run's priority by one level, ms; absent or 0: no aging. */
  agingMs?: number;
}

/** A queued run as {@link AdmissionQueue.admit} returns it. */
export interface AdmissionEntry {
  id: string;
  userId: string;
  priority: RunPriority;
  /** When it was enqueued (the injected clock), ms. */
  enqueuedAt: number;
}

interface Entry extends AdmissionEntry {
  /** Enqueue order, the FIFO tie-break. */
  seq: number;
  level: number;
}

const TOP = RUN_PRIORITIES.length - 1;
const levelOf = (p: RunPriority): number => RUN_PRIORITIES.indexOf(p);

const inc = (m: Map<string, number>, k: string, d: number) => {
  const n = (m.get(k) ?? 0) + d;
  if (n <= 0) m.delete(k);
  else m.set(k, n);
};

/** See the module comment. */
export class AdmissionQueue {
  readonly #queue: Entry[] = [];
  readonly #queuedByUser = new Map<string, number>();
  readonly #runningByUser = new Map<string, number>();
  readonly #limits: () => AdmissionLimits;
  readonly #now: () => number;
  #running = 0;
  #seq = 0;

  /**
   * @param limits the limits, or a function read at every admission (live configuration)
   * @param now the clock, epoch ms (tests inject one); default `Date.now`
   */
  constructor(limits: AdmissionLimits | (() => AdmissionLimits), now: () => number = Date.now) {
    this.#limits = typeof limits === "function" ? limits : () => limits;
    this.#now = now;
  }

  /** Number of admitted runs. */
  get running(): number {
    return this.#running;
  }

  /** Number of queued runs, all users. */
  get queued(): number {
    return this.#queue.length;
  }

  /** Runs of `userId` waiting in the queue. */
  queuedFor(userId: string): number {
    return this.#queuedByUser.get(userId) ?? 0;
  }

  /**
   * The priority level (0 `low` … 3 `critical`) of a queued run at time `now`: its own level plus one per
   * `agingMs` waited, at most 3.
   */
  effectiveLevel(e: Pick<AdmissionEntry, "priority" | "enqueuedAt">, now = this.#now()): number {
    const aging = this.#limits().agingMs ?? 0;
    const raised = aging > 0 ? Math.floor(Math.max(0, now - e.enqueuedAt) / aging) : 0;
    return Math.min(TOP, levelOf(e.priority) + raised);
  }

  /**
   * Appends a run; returns its position in the current admission order (0 = next).
   * @param enqueuedAt when it was queued, epoch ms (a queue rebuilt from the store gives the row's `created_at`); default now
   */
  enqueue(id: string, userId: string, priority: RunPriority = "normal", enqueuedAt = this.#now()): number {
    const e: Entry = { id, userId, priority, enqueuedAt, seq: this.#seq++, level: levelOf(priority) };
    this.#queue.push(e);
    inc(this.#queuedByUser, userId, 1);
    return this.#ordered().indexOf(e);
  }

  /** Removes a queued run (cancelled before admission); false when it is not queued. */
  remove(id: string): boolean {
    const i = this.#queue.findIndex((e) => e.id === id);
    if (i === -1) return false;
    inc(this.#queuedByUser, this.#queue[i]!.userId, -1);
    this.#queue.splice(i, 1);
    return true;
  }

  /** Removes and returns every queued run id, in enqueue order (shutdown). */
  drain(): string[] {
    const ids = this.#queue.map((e) => e.id);
    this.#queue.length = 0;
    this.#queuedByUser.clear();
    return ids;
  }

  /** The queued run ids in the order they would be admitted now (ignoring the per-user limits). */
  order(): string[] {
    return this.#ordered().map((e) => e.id);
  }

  /**
   * Takes, in admission order (effective priority, then FIFO), the runs that may start now and counts them as
   * running. A user at their limit is skipped, not blocking the users behind.
   */
  admit(): AdmissionEntry[] {
    const { maxRunning, maxRunningPerUser } = this.#limits();
    const out: AdmissionEntry[] = [];
    if (this.#running >= maxRunning || this.#queue.length === 0) return out;
    const taken = new Set<Entry>();
    for (const e of this.#ordered()) {
      if (this.#running >= maxRunning) break;
      if ((this.#runningByUser.get(e.userId) ?? 0) >= maxRunningPerUser) continue;
      taken.add(e);
      inc(this.#queuedByUser, e.userId, -1);
      inc(this.#runningByUser, e.userId, 1);
      this.#running++;
      out.push({ id: e.id, userId: e.userId, priority: e.priority, enqueuedAt: e.enqueuedAt });
    }
    if (taken.size > 0) {
      const rest = this.#queue.filter((e) => !taken.has(e));
      this.#queue.length = 0;
      this.#queue.push(...rest);
    }
    return out;
  }

  /** Counts a run of `userId` admitted elsewhere (a queue rebuilt from the store: the runs already running). */
  occupy(userId: string): void {
    this.#running++;
    inc(this.#runningByUser, userId, 1);
  }

  /** An admitted run of `userId` ended: its slot is free. */
  release(userId: string): void {
    this.#running--;
    inc(this.#runningByUser, userId, -1);
  }

  /** The queue sorted by effective level (highest first), then enqueue order. */
  #ordered(): Entry[] {
    const now = this.#now();
    for (const e of this.#queue) e.level = this.effectiveLevel(e, now);
    return [...this.#queue].sort((a, b) => b.level - a.level || a.seq - b.seq);
  }
}
