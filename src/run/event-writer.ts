/**
 * Batched, ordered persistence of run events. Channels enqueue numbered events;
 * the writer commits everything pending in ONE transaction on the next
 * macrotask turn (or at once past `maxBatch`), then hands each committed batch
 * back to its channel for delivery. So an event is always stored before any
 * subscriber sees it, and a burst of lines costs one commit, not one per event.
 * One commit is in flight at a time: events enqueued meanwhile go in the next
 * one, so batches are stored and delivered in the order they were enqueued.
 */
import { isConstraintViolation, type Repos, type RunRow, type Store } from "../store/types.ts";
import type { RunEvent } from "../protocol/events.ts";

/** Receives the committed events of one run, in id order. */
export interface CommitListener {
  onCommitted(events: RunEvent[]): void;
}

export interface EventWriterOptions {
  store: Pick<Store, "transaction">;
  /**
   * Runs inside the commit transaction for every batch, writing through `tx` (row projections:
   * status, session id …); callbacks it resolves run after the commit.
   */
  project?: (events: readonly RunEvent[], tx: Repos) => Promise<Array<() => void> | void>;
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
  #writes = new Map<string, Write>();
  /** Run row patches for the next commit (see {@link patchRun}), merged per run. */
  #patches = new Map<string, Partial<RunRow>>();
  /** The commits so far, chained: each flush runs after the one before. */
  #chain: Promise<void> = Promise.resolve();
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
    if (this.#pending.length >= this.#opts.maxBatch) void this.flush();
    else this.#schedule();
  }

  #schedule(): void {
    this.#scheduled ??= setImmediate(() => void this.flush());
  }

  /**
   * Patches a run's row in the next commit, before that commit's events are projected (so a
   * status set here, e.g. `preparing` at admission, is never written after the `running` of a
   * later `run.started`). Patches of one run are merged, the later field winning.
   */
  patchRun(runId: string, patch: Partial<RunRow>): void {
    this.#patches.set(runId, { ...this.#patches.get(runId), ...patch });
    this.#schedule();
  }

  /**
   * Makes a store write in the next commit's transaction, after its events (a later write with
   * the same key replaces a pending one): state saved with a run's events (the native agent's
   * conversation, turn by turn) costs no commit of its own. A write that throws is rolled back
   * alone (a savepoint) and reported to `onError`; the events are stored all the same.
   */
  alongside(key: string, write: Write): void {
    this.#writes.set(key, write);
    this.#schedule();
  }

  /** Number of events not yet committed. */
  get pendingCount(): number {
    return this.#pending.length;
  }

  /** Commits `events` in one transaction with the pending row patches, their projections and the pending writes; rejects with what the store throws. */
  async #commit(events: RunEvent[]): Promise<Array<() => void>> {
    const writes = this.#takeWrites();
    const patches = this.#takePatches();
    try {
      const after = await this.#opts.store.transaction(async (tx) => {
        for (const [runId, patch] of patches) await tx.runs.update(runId, patch);
        if (events.length > 0) await tx.events.insertBatch(events);
        const out = events.length > 0 ? await this.#opts.project?.(events, tx) : undefined;
        await this.#runWrites(writes, tx);
        return out;
      });
      return after ?? [];
    } catch (err) {
      this.#restoreWrites(writes);
      this.#restorePatches(patches);
      throw err;
    }
  }

  /** The pending {@link alongside} writes, each in a savepoint of its own (inside the commit's transaction). */
  async #runWrites(writes: Map<string, Write>, tx: Repos): Promise<void> {
    for (const w of writes.values()) {
      try {
        await tx.transaction(w);
      } catch (err) {
        this.#opts.onError?.(err);
      }
    }
  }

  #takeWrites(): Map<string, Write> {
    const w = this.#writes;
    if (w.size > 0) this.#writes = new Map();
    return w;
  }

  #takePatches(): Map<string, Partial<RunRow>> {
    const p = this.#patches;
    if (p.size > 0) this.#patches = new Map();
    return p;
  }

  /** A failed commit's writes go back (a newer write of the same key wins). */
  #restoreWrites(writes: Map<string, Write>): void {
    for (const [k, w] of writes) if (!this.#writes.has(k)) this.#writes.set(k, w);
  }

  /** A failed commit's row patches go back, under any newer ones. */
  #restorePatches(patches: Map<string, Partial<RunRow>>): void {
    for (const [runId, p] of patches) this.#patches.set(runId, { ...p, ...this.#patches.get(runId) });
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
      void this.flush();
    }, 100);
  }

  /** After a constraint error: commits run by run, so one bad run (e.g. deleted) cannot block the others. */
  async #commitRunByRun(batch: RunEvent[]): Promise<void> {
    for (const [runId, events] of groupByRun(batch)) {
      let after: Array<() => void>;
      try {
        after = await this.#commit(events);
      } catch (err) {
        if (isConstraintViolation(err)) {
          this.#opts.onDropped?.(runId, events.length, err);
          if (!this.#pendingRuns().has(runId)) this.#listeners.delete(runId);
        } else this.#retryLater(events);
        continue;
      }
      this.#deliver(events, after);
    }
  }

  /**
   * Commits everything pending now and delivers it; resolves once that is done (after any
   * commit already in flight). Never rejects; safe to call at any time (shutdown calls it
   * last). On a store error the batch stays pending and `onError` is told; nothing is
   * delivered that was not stored.
   */
  flush(): Promise<void> {
    if (this.#scheduled) {
      clearImmediate(this.#scheduled);
      this.#scheduled = null;
    }
    // A throw past the store (a sink, a post-commit callback) is told to onError: the chain must go on for the next flush.
    return (this.#chain = this.#chain.then(() => this.#flushOnce()).catch((err: unknown) => this.#opts.onError?.(err)));
  }

  async #flushOnce(): Promise<void> {
    if (this.#pending.length === 0) {
      if (this.#writes.size > 0 || this.#patches.size > 0) await this.#flushWritesOnly();
      return;
    }
    const batch = this.#pending;
    this.#pending = [];
    let after: Array<() => void>;
    try {
      after = await this.#commit(batch);
    } catch (err) {
      // A constraint error is reported per run by onDropped; only a retried batch is an error here.
      if (isConstraintViolation(err)) await this.#commitRunByRun(batch);
      else {
        this.#opts.onError?.(err);
        this.#retryLater(batch);
      }
      return;
    }
    this.#deliver(batch, after);
  }

  /** Row patches and {@link alongside} writes without events: one transaction of their own; on a store error they go back and are retried like events. */
  async #flushWritesOnly(): Promise<void> {
    try {
      await this.#commit([]);
    } catch (err) {
      this.#opts.onError?.(err);
      this.#retryLater([]);
    }
  }
}

/** A store write made inside the writer's transaction (see {@link EventWriter.alongside}). */
export type Write = (tx: Repos) => Promise<void>;

function groupByRun(batch: RunEvent[]): Map<string, RunEvent[]> {
  const out = new Map<string, RunEvent[]>();
  for (const e of batch) {
    let list = out.get(e.run_id);
    if (!list) out.set(e.run_id, (list = []));
    list.push(e);
  }
  return out;
}
