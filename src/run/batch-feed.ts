/**
 * A batch's event stream (`GET /api/batches/:id/events`, docs/architecture.md#sse):
 * every status change of a run of the batch is stored as a numbered
 * `run.status` batch event (1, 2, 3 … per batch, without gaps) before it is
 * delivered, and when the change leaves every run of the batch terminal a
 * last `batch.done` event with the counts follows; the stream ends after it.
 * A subscription replays the stored events after its cursor, then follows
 * live; both happen on the one JS thread, so there is no gap and no duplicate
 * (the same rules as a run's stream, `channel.ts`).
 *
 * The RunManager calls {@link BatchFeed.onRunStatus} from its status
 * publication, for runs created in a batch.
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
  readonly #subs = new Map<string, Set<BatchSink>>();
  /** Last event id of each batch that has events and is not done yet (a done batch is read from the store). */
  readonly #lastId = new Map<string, number>();
  /** The runs not yet terminal of each batch created by this process ({@link track}): done is known without a query. */
  readonly #open = new Map<string, Set<string>>();

  /** @param opts.now the clock of the events' `ts`; default the system's */
  constructor(opts: { store: Store; now?: () => Date }) {
    this.#store = opts.store;
    this.#now = opts.now ?? (() => new Date());
  }

  /**
   * A run of batch `batchId` changed status: stores and delivers a `run.status` event (unless the status is
   * the same as `prev`), then `batch.done` when every run of the batch is terminal.
   */
  onRunStatus(batchId: string, runId: string, status: RunStatus, prev: RunStatus | null): void {
    if (!this.#record(batchId, runId, status, prev) || !TERMINAL_STATUSES.includes(status)) return;
    const open = this.#open.get(batchId);
    if (!open) return this.#finishIfDone(batchId);
    open.delete(runId);
    if (open.size > 0) return;
    this.#open.delete(batchId);
    this.#finishIfDone(batchId);
  }

  /** A new batch's runs (before their first status): the batch is done when each of them has had a terminal status. */
  track(batchId: string, runIds: readonly string[]): void {
    this.#open.set(batchId, new Set(runIds));
  }

  /**
   * Runs ended by recovery at start (their status written straight to the store): records each batch run's
   * final status, with the last status its batch's stream holds for it as `prev`.
   */
  recordRecovered(runIds: readonly string[]): void {
    const byBatch = new Map<string, Array<{ id: string; status: RunStatus }>>();
    for (const id of runIds) {
      const row = this.#store.runs.get(id);
      if (row?.batch_id) byBatch.set(row.batch_id, [...(byBatch.get(row.batch_id) ?? []), { id, status: row.status }]);
    }
    for (const [batchId, runs] of byBatch) {
      const last = new Map<string, RunStatus>(); // each run's last streamed status, from one pass over the batch's stream
      for (let cursor = 0; ; ) {
        const page = this.readStored(batchId, cursor, REPLAY_PAGE);
        for (const e of page) if (e.type === BATCH_RUN_STATUS) last.set(e.data.run_id, e.data.status);
        if (page.length < REPLAY_PAGE) break;
        cursor = page[page.length - 1]!.id;
      }
      let recorded = false;
      for (const r of runs) recorded = this.#record(batchId, r.id, r.status, last.get(r.id) ?? null) || recorded;
      if (recorded) this.#finishIfDone(batchId); // after every recovered run of the batch is recorded
    }
  }

  /** Highest stored event id of a batch (0: none). */
  lastId(batchId: string): number {
    return this.#lastId.get(batchId) ?? this.#store.batches.lastEventId(batchId);
  }

  /** True once the batch's `batch.done` is stored. */
  isDone(batchId: string): boolean {
    if (this.#lastId.has(batchId)) return false; // in progress: its last event is not batch.done
    const last = this.#store.batches.lastEventId(batchId);
    return last > 0 && this.#store.batches.listEvents(batchId, last - 1, 1)[0]?.type === BATCH_DONE;
  }

  /** Stored events after `after`, ascending, at most `limit`. */
  readStored(batchId: string, after: number, limit: number): BatchEvent[] {
    return this.#store.batches.listEvents(batchId, after, limit);
  }

  /**
   * Replays the stored events after `after` into `sink`, then delivers live ones; `sink.end()` follows
   * `batch.done` (at once when it was replayed). Returns the function that detaches the sink.
   */
  subscribe(batchId: string, after: number, sink: BatchSink): () => void {
    for (let cursor = after; ; ) {
      const page = this.readStored(batchId, cursor, REPLAY_PAGE);
      for (const e of page) sink.event(e);
      if (page.length < REPLAY_PAGE) break;
      cursor = page[page.length - 1]!.id;
    }
    if (this.isDone(batchId)) {
      sink.end();
      return () => {};
    }
    let set = this.#subs.get(batchId);
    if (!set) this.#subs.set(batchId, (set = new Set()));
    set.add(sink);
    return () => {
      set.delete(sink);
      if (set.size === 0 && this.#subs.get(batchId) === set) this.#subs.delete(batchId);
    };
  }

  /** Ends every subscription (shutdown). */
  closeAll(): void {
    for (const set of this.#subs.values()) for (const s of [...set]) s.end();
    this.#subs.clear();
  }

  /** Appends a `run.status` event; false when it is no change or the batch is done. */
  #record(batchId: string, runId: string, status: RunStatus, prev: RunStatus | null): boolean {
    if (status === prev || this.isDone(batchId)) return false;
    this.#append({ id: 0, batch_id: batchId, ts: "", type: BATCH_RUN_STATUS, data: { run_id: runId, status, prev } });
    return true;
  }

  /** Appends `batch.done` when every run of the batch is terminal (the rows are committed before their status is published). */
  #finishIfDone(batchId: string): void {
    const runs = this.#store.batches.runs(batchId);
    if (allTerminal(runs)) this.#append({ id: 0, batch_id: batchId, ts: "", type: BATCH_DONE, data: { counts: countByStatus(runs) } });
  }

  #append(draft: BatchEvent): void {
    const e = { ...draft, id: this.lastId(draft.batch_id) + 1, ts: this.#now().toISOString() } as BatchEvent;
    this.#store.batches.appendEvent(e);
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
