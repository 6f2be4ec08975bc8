/**
 * FIFO admission with a global and a per-user concurrency limit, and a cap on
 * how many runs one user may have waiting. Pure bookkeeping (no I/O, no
 * timers): the RunManager asks it which queued runs may start and tells it when
 * one ends.
 */
export interface AdmissionLimits {
  /** Runs admitted (preparing or running) at once, all users. */
  maxRunning: number;
  /** Runs admitted at once per user. */
  maxRunningPerUser: number;
}

interface Entry {
  id: string;
  userId: string;
}

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
  #running = 0;

  constructor(private readonly limits: AdmissionLimits) {}

  /** Number of admitted runs. */
  get running(): number {
    return this.#running;
  }

  /** Runs of `userId` waiting in the queue. */
  queuedFor(userId: string): number {
    return this.#queuedByUser.get(userId) ?? 0;
  }

  /** Appends a run; returns its position (0 = first). */
  enqueue(id: string, userId: string): number {
    this.#queue.push({ id, userId });
    inc(this.#queuedByUser, userId, 1);
    return this.#queue.length - 1;
  }

  /** Removes a queued run (cancelled before admission); false when it is not queued. */
  remove(id: string): boolean {
    const i = this.#queue.findIndex((e) => e.id === id);
    if (i === -1) return false;
    inc(this.#queuedByUser, this.#queue[i]!.userId, -1);
    this.#queue.splice(i, 1);
    return true;
  }

  /** Removes and returns every queued run id (shutdown). */
  drain(): string[] {
    const ids = this.#queue.map((e) => e.id);
    this.#queue.length = 0;
    this.#queuedByUser.clear();
    return ids;
  }

  /**
   * Takes, in queue order, the runs that may start now and counts them as
   * running. A user at their limit is skipped, not blocking the users behind.
   */
  admit(): Entry[] {
    const out: Entry[] = [];
    for (let i = 0; i < this.#queue.length && this.#running < this.limits.maxRunning; ) {
      const e = this.#queue[i]!;
      if ((this.#runningByUser.get(e.userId) ?? 0) >= this.limits.maxRunningPerUser) {
        i++;
        continue;
      }
      this.#queue.splice(i, 1);
      inc(this.#queuedByUser, e.userId, -1);
      inc(this.#runningByUser, e.userId, 1);
      this.#running++;
      out.push(e);
    }
    return out;
  }

  /** An admitted run of `userId` ended: its slot is free. */
  release(userId: string): void {
    this.#running--;
    inc(this.#runningByUser, userId, -1);
  }
}
