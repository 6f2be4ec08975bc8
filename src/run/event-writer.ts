/**
 * Batched, ordered persistence of run events. Channels enqueue numbered events;
 * the writer commits everything pending in ONE transaction on the next
 * macrotask turn (or at once past `maxBatch`), then hands each committed batch
 * back to its channel for delivery. So an event is always stored before any
 * subscriber sees it, and a burst of lines costs one commit, not one per event.
 */
import type { EventRepo, Store } from "../store/types.ts";
import type { RunEvent } from "../protocol/events.ts";

/** Receives the committed events of one run, in id order. */
export interface CommitListener {
  onCommitted(events: RunEvent[]): void;
}

export interface EventWriterOptions {
  store: Pick<Store, "transaction"> & { events: EventRepo };
  /**
   * Runs inside the commit transaction for every batch (row projections: status,
   * session id …); callbacks it returns run after the commit.
   */
  project?: (events: readonly RunEvent[]) => Array<() => void> | void;
  /** Called after each commit with the per-run counts. */
  onStored?: (runId: string, count: number) => void;
  /** Commit at once when this many events are pending. Default 10,000. */
  maxBatch?: number;
  /** Called when a commit throws (the batch is kept and retried on the next flush). */
  onError?: (err: unknown) => void;
  /**
   * Called when a run's events are refused by a constraint (its run row is gone):
   * they cannot be stored and are dropped, without blocking other runs.
   */
  onDropped?: (runId: string, count: number, err: unknown) => void;
}

/** One writer per server; see the module comment. */
export class EventWriter {
  #pending: RunEvent[] = [];
  /** Store writes to make in the next commit's transaction (see {@link alongside}), by key. */
  #writes = new Map<string, () => void>();
  #listeners = new Map<string, CommitListener>();
  #scheduled: NodeJS.Immediate | null = null;
  #retry: NodeJS.Timeout | null = null;
  readonly #opts: Required<Pick<EventWriterOptions, "maxBatch">> & EventWriterOptions;

  constructor(opts: EventWriterOptions) {
    this.#opts = { maxBatch: 10_000, ...opts };
  }

  /** Queues an event for commit; `listener` gets it back once stored. */
  enqueue(event: RunEvent, listener: CommitListener): void {
    this.#pending.push(event);
    this.#listeners.set(event.run_id, listener);
    if (this.#pending.length >= this.#opts.maxBatch) this.flush();
    else this.#scheduled ??= setImmediate(() => this.flush());
  }

  /**
   * Makes a store write in the next commit's transaction, after its events (a later write with
   * the same key replaces a pending one): state saved with a run's events (the native agent's
   * conversation, turn by turn) costs no commit of its own. A write that throws is rolled back
   * alone (a savepoint) and reported to `onError`; the events are stored all the same.
   */
  alongside(key: string, write: () => void): void {
    this.#writes.set(key, write);
    this.#scheduled ??= setImmediate(() => this.flush());
  }

  /** Number of events not yet committed. */
  get pendingCount(): number {
    return this.#pending.length;
  }

  /** Commits `events` in one transaction with their projections; throws what the store throws. */
  #commit(events: RunEvent[]): Array<() => void> {
    let after: Array<() => void> | void = undefined;
    const writes = this.#takeWrites();
    try {
      this.#opts.store.transaction(() => {
        this.#opts.store.events.insertBatch(events);
        after = this.#opts.project?.(events);
        this.#runWrites(writes);
      });
    } catch (err) {
      this.#restoreWrites(writes);
      throw err;
    }
    return (after as Array<() => void> | undefined) ?? [];
  }

  /** The pending {@link alongside} writes, each in a savepoint of its own (inside the commit's transaction). */
  #runWrites(writes: Map<string, () => void>): void {
    for (const w of writes.values()) {
      try {
        this.#opts.store.transaction(w);
      } catch (err) {
        this.#opts.onError?.(err);
      }
    }
  }

  #takeWrites(): Map<string, () => void> {
    const w = this.#writes;
    if (w.size > 0) this.#writes = new Map();
    return w;
  }

  /** A failed commit's writes go back (a newer write of the same key wins). */
  #restoreWrites(writes: Map<string, () => void>): void {
    for (const [k, w] of writes) if (!this.#writes.has(k)) this.#writes.set(k, w);
  }

  /** Delivers committed events, then runs the post-commit callbacks (a subscriber opened from a bus handler sees the terminal id). */
  #deliver(events: RunEvent[], after: Array<() => void>): void {
    const byRun = groupByRun(events);
    for (const [runId, list] of byRun) this.#listeners.get(runId)?.onCommitted(list);
    for (const fn of after) fn();
    const stillPending = this.#pendingRuns();
    for (const [runId, list] of byRun) {
      this.#opts.onStored?.(runId, list.length);
      if (!stillPending.has(runId)) this.#listeners.delete(runId);
    }
  }

  /** Runs with events still waiting for a commit (their listeners must stay). */
  #pendingRuns(): Set<string> {
    return new Set(this.#pending.map((e) => e.run_id));
  }

  /** Keeps events for a later attempt (a transient store error), retried after 100 ms. */
  #retryLater(events: RunEvent[]): void {
    this.#pending = events.concat(this.#pending);
    this.#retry ??= setTimeout(() => {
      this.#retry = null;
      this.flush();
    }, 100);
  }

  /** After a constraint error: commits run by run, so one bad run (e.g. deleted) cannot block the others. */
  #commitRunByRun(batch: RunEvent[]): void {
    for (const [runId, events] of groupByRun(batch)) {
      let after: Array<() => void>;
      try {
        after = this.#commit(events);
      } catch (err) {
        if (isConstraintError(err)) {
          this.#opts.onDropped?.(runId, events.length, err);
          if (!this.#pendingRuns().has(runId)) this.#listeners.delete(runId);
        } else this.#retryLater(events);
        continue;
      }
      this.#deliver(events, after);
    }
  }

  /**
   * Commits everything pending now and delivers it. Synchronous; safe to call
   * at any time (shutdown calls it last). On a store error the batch stays
   * pending and `onError` is told; nothing is delivered that was not stored.
   */
  flush(): void {
    if (this.#scheduled) {
      clearImmediate(this.#scheduled);
      this.#scheduled = null;
    }
    if (this.#pending.length === 0) {
      if (this.#writes.size > 0) this.#flushWritesOnly();
      return;
    }
    const batch = this.#pending;
    this.#pending = [];
    let after: Array<() => void>;
    try {
      after = this.#commit(batch);
    } catch (err) {
      // A constraint error is reported per run by onDropped; only a retried batch is an error here.
      if (isConstraintError(err)) this.#commitRunByRun(batch);
      else {
        this.#opts.onError?.(err);
        this.#retryLater(batch);
      }
      return;
    }
    this.#deliver(batch, after);
  }

  /** {@link alongside} writes without events: one transaction of their own; on a store error they go back and are retried like events. */
  #flushWritesOnly(): void {
    const writes = this.#takeWrites();
    try {
      this.#opts.store.transaction(() => this.#runWrites(writes));
    } catch (err) {
      this.#opts.onError?.(err);
      this.#restoreWrites(writes);
      this.#retryLater([]);
    }
  }
}

function isConstraintError(err: unknown): boolean {
  return String((err as { code?: unknown } | null)?.code ?? "").startsWith("SQLITE_CONSTRAINT");
}

function groupByRun(batch: RunEvent[]): Map<string, RunEvent[]> {
  const out = new Map<string, RunEvent[]>();
  for (const e of batch) {
    let list = out.get(e.run_id);
    if (!list) out.set(e.run_id, (list = []));
    list.push(e);
  }
  return out;
}
