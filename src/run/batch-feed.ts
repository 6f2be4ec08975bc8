/**
 * A batch's event stream (`GET /api/batches/:id/events`, docs/architecture.md#sse):
 * every status change of a run of the batch is stored as a numbered
 * `run.status` batch event (1, 2, 3 … per batch, without gaps) before it is
 * delivered, and when the change leaves every run of the batch terminal a
 * last `batch.done` event with the counts follows; the stream ends after it.
 * A subscription replays the stored events after its cursor, then follows
 * live. Store access is asynchronous, so every append and every subscription's
 * replay-then-attach runs as one task of a serial queue: a subscriber attaches
 * right after reading what was stored before it, so there is no gap and no
 * duplicate (the same rules as a run's stream, `channel.ts`).
 *
 * The RunManager calls {@link BatchFeed.onRunStatus} from its status
 * publication, for runs created in a batch.
 *
 * Distributed mode (`storeWritten`): the database writes the stream in the
 * transaction that changes a batch run's status (PostgreSQL migration 6,
 * `batch_stream`), whichever process that is; the feed then only reads it:
 * {@link BatchFeed.wake} (on each `openrunner_batches` notification) delivers
 * what was stored after each subscriber's cursor.
 */
import { BATCH_DONE, BATCH_RUN_STATUS, type BatchCounts, type BatchEvent } from "../protocol/batches.ts";
import { RUN_STATUSES, TERMINAL_STATUSES, type RunStatus } from "../protocol/events.ts";
import type { Store } from "../store/types.ts";

/** Where a subscription's events go. */
export interface BatchSink {
  /** One stored event (replayed or live). */
  event(e: BatchEvent): void;
  /** The stream is over: `batch.done` was delivered, or the feed is closing. */
  end(): void;
}

/** Stored events read per page while replaying. */
const REPLAY_PAGE = 1000;

/** The counts of a batch's runs by status (every status present). */
export function countByStatus(runs: ReadonlyArray<{ status: RunStatus }>): BatchCounts {
  const counts = Object.fromEntries(RUN_STATUSES.map((s) => [s, 0])) as BatchCounts;
  for (const r of runs) counts[r.status]++;
  return counts;
}

/** True when every run is terminal (an empty batch counts as done). */
export function allTerminal(runs: ReadonlyArray<{ status: RunStatus }>): boolean {
  return runs.every((r) => TERMINAL_STATUSES.includes(r.status));
}

/** See the module comment. One per RunManager. */
export class BatchFeed {
  readonly #store: Store;
  readonly #now: () => Date;
  readonly #onError: (err: unknown) => void;
  readonly #subs = new Map<string, Set<BatchSink>>();
  /** Last event id of each batch that has events and is not done yet (a done batch is read from the store). */
  readonly #lastId = new Map<string, number>();
  /** The runs not yet terminal of each batch created by this process ({@link track}): done is known without a query. */
  readonly #open = new Map<string, Set<string>>();
  /** The feed's tasks, one after another (see the module comment). */
  #queue: Promise<void> = Promise.resolve();
  /** Set by {@link closeAll}: a subscription whose replay runs later is ended, not attached. */
  #closed = false;
  /** The database writes the stream (distributed mode); this feed only reads and delivers it. */
  readonly #storeWritten: boolean;
  /** Last id delivered to each live sink (read by {@link wake}). */
  readonly #cursors = new WeakMap<BatchSink, number>();

  /**
   * @param opts.now the clock of the events' `ts`; default the system's
   * @param opts.onError told of a store error in a background task (the event is not stored, the feed goes on)
   */
  constructor(opts: { store: Store; now?: () => Date; onError?: (err: unknown) => void; storeWritten?: boolean }) {
    this.#store = opts.store;
    this.#storeWritten = opts.storeWritten ?? false;
    this.#now = opts.now ?? (() => new Date());
    this.#onError = opts.onError ?? (() => {});
  }

  /** Runs `task` after every task queued before it; resolves what it resolves. */
  #serial<T>(task: () => Promise<T>): Promise<T> {
    const out = this.#queue.then(task);
    this.#queue = out.then(
      () => {},
      (err: unknown) => this.#onError(err),
    );
    return out;
  }

  /** Resolves once every task queued so far has run (shutdown, tests). */
  idle(): Promise<void> {
    return this.#queue;
  }

  /**
   * A run of batch `batchId` changed status: stores and delivers a `run.status` event (unless the status is
   * the same as `prev`), then `batch.done` when every run of the batch is terminal. Queued; returns at once.
   */
  onRunStatus(batchId: string, runId: string, status: RunStatus, prev: RunStatus | null): void {
    if (this.#storeWritten) return; // the database records it (see the module comment)
    void this.#serial(async () => {
      if (!(await this.#record(batchId, runId, status, prev)) || !TERMINAL_STATUSES.includes(status)) return;
      const open = this.#open.get(batchId);
      if (!open) return this.#finishIfDone(batchId);
      open.delete(runId);
      if (open.size > 0) return;
      this.#open.delete(batchId);
      await this.#finishIfDone(batchId);
    }).catch(() => {}); // told to onError by #serial
  }

  /** A new batch's runs (before their first status): the batch is done when each of them has had a terminal status. */
  track(batchId: string, runIds: readonly string[]): void {
    this.#open.set(batchId, new Set(runIds));
  }

  /**
   * Runs ended by recovery at start (their status written straight to the store): records each batch run's
   * final status, with the last status its batch's stream holds for it as `prev`. Resolves once stored.
   */
  recordRecovered(runIds: readonly string[]): Promise<void> {
    if (this.#storeWritten) return Promise.resolve();
    return this.#serial(async () => {
      const byBatch = new Map<string, Array<{ id: string; status: RunStatus }>>();
      for (const id of runIds) {
        const row = await this.#store.runs.get(id);
        if (row?.batch_id) byBatch.set(row.batch_id, [...(byBatch.get(row.batch_id) ?? []), { id, status: row.status }]);
      }
      for (const [batchId, runs] of byBatch) {
        const last = new Map<string, RunStatus>(); // each run's last streamed status, from one pass over the batch's stream
        for (let cursor = 0; ; ) {
          const page = await this.readStored(batchId, cursor, REPLAY_PAGE);
          for (const e of page) if (e.type === BATCH_RUN_STATUS) last.set(e.data.run_id, e.data.status);
          if (page.length < REPLAY_PAGE) break;
          cursor = page[page.length - 1]!.id;
        }
        let recorded = false;
        for (const r of runs) recorded = (await this.#record(batchId, r.id, r.status, last.get(r.id) ?? null)) || recorded;
        if (recorded) await this.#finishIfDone(batchId); // after every recovered run of the batch is recorded
      }
    });
  }

  /** Resolves the highest stored event id of a batch (0: none). */
  async lastId(batchId: string): Promise<number> {
    return this.#lastId.get(batchId) ?? (await this.#store.batches.lastEventId(batchId));
  }

  /** Resolves true once the batch's `batch.done` is stored. */
  async isDone(batchId: string): Promise<boolean> {
    if (this.#lastId.has(batchId)) return false; // in progress: its last event is not batch.done
    const last = await this.#store.batches.lastEventId(batchId);
    return last > 0 && (await this.#store.batches.listEvents(batchId, last - 1, 1))[0]?.type === BATCH_DONE;
  }

  /** Resolves the stored events after `after`, ascending, at most `limit`. */
  readStored(batchId: string, after: number, limit: number): Promise<BatchEvent[]> {
    return this.#store.batches.listEvents(batchId, after, limit);
  }

  /**
   * Replays the stored events after `after` into `sink`, then delivers live ones; `sink.end()` follows
   * `batch.done` (at once when it was replayed). Returns the function that detaches the sink; the sink is
   * called later, never before this returns. A store error while replaying ends the sink.
   */
  subscribe(batchId: string, after: number, sink: BatchSink): () => void {
    let detached = false;
    let set: Set<BatchSink> | undefined;
    this.#serial(async () => {
      let cursor = after;
      for (; !detached; ) {
        const page = await this.readStored(batchId, cursor, REPLAY_PAGE);
        for (const e of page) if (!detached) sink.event(e);
        if (page.length > 0) cursor = page[page.length - 1]!.id;
        if (page.length < REPLAY_PAGE) break;
      }
      if (detached) return;
      this.#cursors.set(sink, cursor);
      if (this.#closed) return sink.end();
      if (await this.isDone(batchId)) {
        // Done since the replay read (batch.done and the events before it stored meanwhile): deliver them first.
        for (let page = await this.readStored(batchId, cursor, REPLAY_PAGE); page.length > 0 && !detached; page = await this.readStored(batchId, cursor, REPLAY_PAGE)) {
          for (const e of page) sink.event(e);
          cursor = page[page.length - 1]!.id;
        }
        return sink.end();
      }
      set = this.#subs.get(batchId);
      if (!set) this.#subs.set(batchId, (set = new Set()));
      set.add(sink);
    }).catch(() => {
      if (!detached) sink.end();
    });
    return () => {
      detached = true;
      if (!set) return;
      set.delete(sink);
      if (set.size === 0 && this.#subs.get(batchId) === set) this.#subs.delete(batchId);
    };
  }

  /**
   * Distributed mode: batch events up to `lastId` of `batchId` were stored by another process (a
   * notification): delivers to each subscriber what was stored after its cursor, and ends it after
   * `batch.done`. Queued after the subscriptions' replays, so nothing is missed or repeated.
   */
  wake(batchId: string): void {
    // Queued even with no subscriber yet: one may be replaying in an earlier task and attach before this runs.
    void this.#serial(async () => {
      const set = this.#subs.get(batchId);
      if (!set || set.size === 0) return;
      let from = Infinity;
      for (const s of set) from = Math.min(from, this.#cursors.get(s) ?? 0);
      for (let cursor = from; ; ) {
        const page = await this.readStored(batchId, cursor, REPLAY_PAGE);
        for (const e of page) {
          for (const s of [...set]) {
            if ((this.#cursors.get(s) ?? 0) >= e.id) continue;
            this.#cursors.set(s, e.id);
            s.event(e);
            if (e.type === BATCH_DONE) {
              set.delete(s);
              s.end();
            }
          }
        }
        if (page.length < REPLAY_PAGE) break;
        cursor = page[page.length - 1]!.id;
      }
      if (set.size === 0 && this.#subs.get(batchId) === set) this.#subs.delete(batchId);
    }).catch(() => {}); // told to onError by #serial
  }

  /** {@link wake} for every batch with subscribers (notifications may have been missed: a listener reconnected). */
  wakeAll(): void {
    for (const id of [...this.#subs.keys()]) this.wake(id);
  }

  /** Ends every subscription, and those still replaying once they have (shutdown). */
  closeAll(): void {
    this.#closed = true;
    for (const set of this.#subs.values()) for (const s of [...set]) s.end();
    this.#subs.clear();
  }

  /** Appends a `run.status` event; false when it is no change or the batch is done. */
  async #record(batchId: string, runId: string, status: RunStatus, prev: RunStatus | null): Promise<boolean> {
    if (status === prev || (await this.isDone(batchId))) return false;
    await this.#append({ id: 0, batch_id: batchId, ts: "", type: BATCH_RUN_STATUS, data: { run_id: runId, status, prev } });
    return true;
  }

  /** Appends `batch.done` when every run of the batch is terminal (the rows are committed before their status is published). */
  async #finishIfDone(batchId: string): Promise<void> {
    const runs = await this.#store.batches.runs(batchId);
    if (allTerminal(runs)) await this.#append({ id: 0, batch_id: batchId, ts: "", type: BATCH_DONE, data: { counts: countByStatus(runs) } });
  }

  async #append(draft: BatchEvent): Promise<void> {
    const e = { ...draft, id: (await this.lastId(draft.batch_id)) + 1, ts: this.#now().toISOString() } as BatchEvent;
    await this.#store.batches.appendEvent(e);
    if (e.type === BATCH_DONE) this.#lastId.delete(e.batch_id);
    else this.#lastId.set(e.batch_id, e.id);
    const set = this.#subs.get(e.batch_id);
    if (!set) return;
    for (const s of [...set]) {
      s.event(e);
      if (e.type === BATCH_DONE) s.end();
    }
    if (e.type === BATCH_DONE) this.#subs.delete(e.batch_id);
  }
}
