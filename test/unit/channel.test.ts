/**
 * RunChannel + EventWriter (docs/architecture.md#channel) on the asynchronous store: events are
 * numbered 1..N, stored (committed) before delivery, one commit in flight at a time, replayed then
 * followed live with no gap or duplicate even when a replay read is outstanding while batches
 * commit, paused sinks resume, a lagging live subscriber (or a replay that hits a store error) is
 * dropped with `lagged`. Row patches (`patchRun`) and `alongside` writes share the commit.
 * The store is an in-memory one whose transaction works on a copy that becomes the committed
 * state only when the transaction resolves (so a failing commit, injected or thrown, rolls back,
 * and a sink can check that what it gets is committed); some tests run on the real SQLite store.
 * Nothing here measures time: tests wait for events, promises or macrotask turns.
 */
import { test, describe } from "node:test";
import assert from "node:assert/strict";
import { EventWriter } from "../../src/run/event-writer.ts";
import { MAX_CHUNK_CHARS, RunChannel, type EventChunk, type EventSink, type Subscription } from "../../src/run/channel.ts";
import { formatSseFrame } from "../../src/protocol/sse.ts";
import { isTerminalType, type RunEvent, type RunEventInput, type RunEventType } from "../../src/protocol/events.ts";
import type { EventRepo, Repos, RunRepo, RunRow } from "../../src/store/types.ts";
import { openSqliteStore } from "../../src/store/sqlite.ts";

// ---------------------------------------------------------------- test doubles

type RunPatch = Partial<RunRow>;
/** What a transaction reads and writes: events by run, and the patched fields of run rows. */
interface MemState {
  rows: Map<string, RunEvent[]>;
  runs: Map<string, RunPatch>;
}

const cloneState = (s: MemState): MemState => ({
  rows: new Map([...s.rows].map(([k, v]) => [k, [...v]])),
  runs: new Map([...s.runs].map(([k, v]) => [k, { ...v }])),
});

/**
 * In-memory EventRepo + `runs.update/get` + `transaction(fn(tx))`. A transaction works on a copy
 * of the committed state, committed when `fn` resolves (and no failure is injected); nested
 * `tx.transaction` is a savepoint (its rejection restores the copy as it was when it began).
 * Outside a transaction, reads see the committed state only.
 */
class MemStore {
  /** Committed events by run. */
  rows = new Map<string, RunEvent[]>();
  /** Committed run rows (only the fields written through `runs.update`). */
  runRows = new Map<string, RunPatch>();
  /** Outer transactions begun. */
  transactions = 0;
  /** Nested transactions (savepoints) begun. */
  savepoints = 0;
  /** Transactions rolled back. */
  failures = 0;
  /** Number of upcoming transactions that throw after `fn` resolved (everything written is rolled back). */
  failNext = 0;
  /** Transactions open now, and the most ever open at once. */
  open = 0;
  maxOpen = 0;
  listCalls = 0;
  /** Writes made in transactions, in order (`insert run 1-3`, `update run {...}`, and what tests push). */
  ops: string[] = [];
  /** Called with the events of every insertBatch: throw to refuse them (e.g. a constraint error). */
  refuse: ((events: readonly RunEvent[]) => void) | null = null;
  /** When it returns an error for a `list` call (numbered from 1), that call rejects with it. */
  listError: ((call: number) => Error | undefined) | null = null;
  /** While true, `list` computes its answer when called but resolves it only at {@link releaseLists}. */
  holdLists = false;
  /** When set (and lists are not held), `list` resolves its answer once this resolves (a slow read). */
  listDelay: (() => Promise<void>) | null = null;
  /** When set, a transaction waits for it after `fn` resolved, before committing (a slow commit). */
  beforeCommit: (() => Promise<void>) | null = null;
  #held: Array<() => void> = [];

  readonly events: EventRepo;
  readonly runs: Pick<RunRepo, "update" | "get">;

  constructor() {
    const outer = this.#repos(() => ({ rows: this.rows, runs: this.runRows }));
    this.events = outer.events;
    this.runs = outer.runs;
  }

  #repos(state: () => MemState): { events: EventRepo; runs: Pick<RunRepo, "update" | "get"> } {
    const events: EventRepo = {
      insertBatch: async (events) => {
        this.refuse?.(events);
        const { rows } = state();
        for (const e of events) {
          const list = rows.get(e.run_id) ?? [];
          const last = list[list.length - 1]?.id ?? 0;
          if (e.id !== last + 1) throw new Error(`store: ${e.run_id} id ${e.id} after ${last} (gap or duplicate)`);
          list.push(structuredClone(e));
          rows.set(e.run_id, list);
        }
        for (const [runId, list] of groupIds(events)) this.ops.push(`insert ${runId} ${list[0]}-${list[list.length - 1]}`);
      },
      append: async (runId, drafts) => {
        const { rows } = state();
        const list = rows.get(runId) ?? [];
        const first = (list[list.length - 1]?.id ?? 0) + 1;
        const out = drafts.map((d, i) => ({ id: first + i, run_id: runId, ts: d.ts, type: d.type, data: d.data }) as RunEvent);
        rows.set(runId, [...list, ...out.map((e) => structuredClone(e))]);
        return out;
      },
      list: async (runId, after, limit) => {
        const call = ++this.listCalls;
        const err = this.listError?.(call);
        if (err) throw err;
        const out = (state().rows.get(runId) ?? []).filter((e) => e.id > after).slice(0, limit).map((e) => structuredClone(e));
        if (this.holdLists) await new Promise<void>((resolve) => this.#held.push(resolve));
        else if (this.listDelay) await this.listDelay();
        return out;
      },
      lastId: async (runId) => lastIdOf(state().rows, runId),
      countByType: async (runId, type: RunEventType) => (state().rows.get(runId) ?? []).filter((e) => e.type === type).length,
    };
    const runs: Pick<RunRepo, "update" | "get"> = {
      update: async (id, patch) => {
        const r = state().runs;
        r.set(id, { ...r.get(id), ...patch });
        this.ops.push(`update ${id} ${JSON.stringify(patch)}`);
      },
      get: async (id) => state().runs.get(id) as RunRow | undefined,
    };
    return { events, runs };
  }

  transaction = async <T>(fn: (tx: Repos) => Promise<T>): Promise<T> => {
    this.transactions++;
    this.open++;
    this.maxOpen = Math.max(this.maxOpen, this.open);
    const work = cloneState({ rows: this.rows, runs: this.runRows });
    const repos = this.#repos(() => work);
    const tx = {
      ...repos,
      transaction: async <U>(w: (tx: Repos) => Promise<U>): Promise<U> => {
        this.savepoints++;
        const saved = cloneState(work);
        try {
          return await w(tx);
        } catch (err) {
          work.rows = saved.rows;
          work.runs = saved.runs;
          throw err;
        }
      },
    } as unknown as Repos; // the writer uses events, runs and transaction only
    try {
      const out = await fn(tx);
      if (this.beforeCommit) await this.beforeCommit();
      if (this.failNext > 0) {
        this.failNext--;
        throw new Error("injected commit failure");
      }
      this.rows = work.rows;
      this.runRows = work.runs;
      return out;
    } catch (err) {
      this.failures++;
      throw err;
    } finally {
      this.open--;
    }
  };

  /** Resolves every held `list` call (with what it read when called). */
  releaseLists(): void {
    for (const r of this.#held.splice(0)) r();
  }

  get heldLists(): number {
    return this.#held.length;
  }

  /** Committed ids of a run. */
  ids(runId: string): number[] {
    return (this.rows.get(runId) ?? []).map((e) => e.id);
  }

  /** The event is committed (ids are stored contiguously from 1: insertBatch enforces it). */
  has(e: RunEvent): boolean {
    return e.id >= 1 && e.id <= lastIdOf(this.rows, e.run_id);
  }
}

function lastIdOf(rows: Map<string, RunEvent[]>, runId: string): number {
  const list = rows.get(runId) ?? [];
  return list[list.length - 1]?.id ?? 0;
}

function groupIds(events: readonly RunEvent[]): Map<string, number[]> {
  const out = new Map<string, number[]>();
  for (const e of events) out.set(e.run_id, [...(out.get(e.run_id) ?? []), e.id]);
  return out;
}

/** A sink that records everything, checks every event it gets was committed first, and can be waited on. */
class RecSink implements EventSink {
  ids: number[] = [];
  chunks: EventChunk[] = [];
  lags: number[] = [];
  ends = 0;
  writesAfterEnd = 0;
  /** Return value of the next writes (true = keep going). */
  accept: boolean | (() => boolean) = true;
  #waiters: Array<{ cond: () => boolean; resolve: () => void }> = [];

  constructor(private readonly store?: MemStore) {}

  write(chunk: EventChunk): boolean {
    if (this.ends > 0 || this.lags.length > 0) this.writesAfterEnd++;
    assert.ok(chunk.events.length > 0, "empty chunk written");
    assert.equal(chunk.text, chunk.events.map(formatSseFrame).join(""), "chunk text matches its events");
    for (const e of chunk.events) {
      if (this.store) assert.ok(this.store.has(e), `event ${e.run_id}#${e.id} delivered before it was committed`);
      this.ids.push(e.id);
    }
    this.chunks.push(chunk);
    const more = typeof this.accept === "function" ? this.accept() : this.accept;
    this.#check();
    return more;
  }
  lagged(lastId: number): void {
    this.lags.push(lastId);
    this.#check();
  }
  end(): void {
    this.ends++;
    this.#check();
  }

  /** Resolves once `cond` holds (checked now and after every call of the sink). */
  until(cond: () => boolean): Promise<void> {
    if (cond()) return Promise.resolve();
    return new Promise((resolve) => this.#waiters.push({ cond, resolve }));
  }

  /** Resolves once the stream ended (end() or lagged()). */
  untilEnd(): Promise<void> {
    return this.until(() => this.ends > 0 || this.lags.length > 0);
  }

  #check(): void {
    for (const w of [...this.#waiters]) {
      if (!w.cond()) continue;
      this.#waiters.splice(this.#waiters.indexOf(w), 1);
      w.resolve();
    }
  }
}

const log = (text: string): RunEventInput => ({ type: "log", data: { stream: "stdout", text } });
const completed: RunEventInput = { type: "run.completed", data: { exit_code: 0, duration_ms: 1 } };
/** One macrotask turn: every microtask (a commit or read of the in-memory store that is not held) has run. */
const turn = () => new Promise<void>((r) => setImmediate(r));
const range = (from: number, to: number) => Array.from({ length: Math.max(0, to - from + 1) }, (_, i) => from + i);

function setup(opts: { maxBatch?: number; bufferLimit?: number; runId?: string } = {}) {
  const store = new MemStore();
  const errors: unknown[] = [];
  const stored: Array<[string, number]> = [];
  const writer = new EventWriter({
    store,
    ...(opts.maxBatch !== undefined ? { maxBatch: opts.maxBatch } : {}),
    onError: (err) => errors.push(err),
    onStored: (runId, count) => stored.push([runId, count]),
  });
  let subscribers = 0;
  const channel = new RunChannel({
    runId: opts.runId ?? "run_a",
    lastStoredId: 0,
    writer,
    events: store.events,
    bufferLimit: opts.bufferLimit ?? 1_000_000,
    onSubscribers: (d) => (subscribers += d),
  });
  return { store, writer, channel, errors, stored, subscribers: () => subscribers };
}

/** Appends n log events through the channel and returns their ids. */
function appendLogs(channel: RunChannel, n: number, tag = "x"): number[] {
  const ids: number[] = [];
  for (let i = 0; i < n; i++) ids.push(channel.append(log(`${tag}${i}`))!.id);
  return ids;
}

/** Deterministic PRNG (mulberry32). */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// ----------------------------------------------------------------------- tests

describe("RunChannel.append: numbering", () => {
  test("ids are 1..N without gaps, stamped with run_id and an ISO ts, stored in that order", async () => {
    const { channel, store } = setup();
    const ids: number[] = [];
    for (let i = 0; i < 250; i++) {
      ids.push(channel.append(log(`l${i}`))!.id);
      if (i % 37 === 0) await turn();
    }
    const last = channel.append(completed)!;
    ids.push(last.id);
    assert.deepEqual(ids, range(1, 251));
    assert.equal(last.run_id, "run_a");
    assert.ok(!Number.isNaN(Date.parse(last.ts)) && last.ts.endsWith("Z"));
    await turn();
    assert.deepEqual(store.ids("run_a"), range(1, 251));
  });

  test("a channel reopened with lastStoredId continues the sequence", async () => {
    const { writer, store } = setup();
    const ch = new RunChannel({ runId: "run_b", lastStoredId: 41, writer, events: store.events, bufferLimit: 10 });
    store.rows.set("run_b", range(1, 41).map((id) => ({ id, run_id: "run_b", ts: new Date().toISOString(), type: "log", data: { stream: "stdout", text: "old" } })));
    assert.equal(ch.append(log("new"))!.id, 42);
    await turn();
    assert.equal(await store.events.lastId("run_b"), 42);
  });

  test("append after the terminal event returns null and consumes no id; ended is true at once", async () => {
    const { channel, store } = setup();
    appendLogs(channel, 2);
    assert.equal(channel.ended, false);
    assert.equal(channel.append(completed)!.id, 3);
    assert.equal(channel.ended, true);
    assert.equal(channel.append(log("late")), null);
    assert.equal(channel.append({ type: "run.failed", data: { error: { code: "internal", message: "x" }, duration_ms: 0 } }), null);
    await turn();
    assert.equal(channel.append(log("later")), null);
    assert.deepEqual(store.ids("run_a"), [1, 2, 3]);
    assert.equal(await store.events.countByType("run_a", "run.completed"), 1);
  });
});

describe("EventWriter: batching, stored before delivered", () => {
  test("nothing is delivered before the commit; one transaction per macrotask turn", async () => {
    const { channel, store, stored } = setup();
    const sink = new RecSink(store);
    channel.subscribe(0, sink);
    appendLogs(channel, 5);
    assert.deepEqual(sink.ids, [], "delivered synchronously, before commit");
    assert.equal(store.transactions, 0);
    await Promise.resolve(); // microtasks are not a turn
    assert.deepEqual(sink.ids, []);
    assert.equal(store.transactions, 0);
    await turn();
    assert.equal(store.transactions, 1);
    assert.deepEqual(sink.ids, [1, 2, 3, 4, 5]);
    assert.equal(sink.chunks.length, 1, "one batch, one chunk");
    assert.deepEqual(stored, [["run_a", 5]]);

    appendLogs(channel, 3);
    await turn();
    appendLogs(channel, 2);
    await turn();
    assert.equal(store.transactions, 3);
    assert.deepEqual(sink.ids, range(1, 10));
    assert.equal(store.maxOpen, 1);
  });

  test("past maxBatch the batch commits (and is delivered) at once, before the next macrotask turn", async () => {
    const { channel, store, writer } = setup({ maxBatch: 4 });
    const sink = new RecSink(store);
    channel.subscribe(0, sink);
    // Scheduled before any append, so it runs before the writer's own turn would.
    let turned = false;
    setImmediate(() => (turned = true));
    appendLogs(channel, 3);
    await Promise.resolve();
    assert.equal(store.transactions, 0);
    assert.equal(writer.pendingCount, 3);
    appendLogs(channel, 1); // the 4th: the commit starts now and completes a few microtasks later
    await sink.until(() => sink.ids.length >= 4);
    assert.equal(turned, false, "committed and delivered before the next macrotask turn");
    assert.equal(store.transactions, 1);
    assert.equal(writer.pendingCount, 0);
    assert.deepEqual(sink.ids, [1, 2, 3, 4]);
    appendLogs(channel, 2);
    await Promise.resolve();
    assert.deepEqual(sink.ids, [1, 2, 3, 4], "below maxBatch: waits for the turn");
    await turn();
    assert.equal(store.transactions, 2);
    assert.deepEqual(sink.ids, range(1, 6));
  });

  test("one commit in flight at a time: a flush during a commit waits for it; batches are stored and delivered in order", async () => {
    const { channel, store, writer } = setup();
    const sink = new RecSink(store);
    channel.subscribe(0, sink);
    await turn();
    let release!: () => void;
    store.beforeCommit = () => new Promise<void>((r) => (release = r));
    appendLogs(channel, 3);
    const first = writer.flush();
    await turn();
    assert.equal(store.open, 1, "the first commit is held open");
    appendLogs(channel, 2);
    let secondDone = false;
    const second = writer.flush().then(() => (secondDone = true));
    await turn();
    assert.equal(store.transactions, 1, "the second flush waits for the commit in flight");
    assert.deepEqual(sink.ids, [], "nothing delivered before its commit");
    store.beforeCommit = null;
    release();
    await first;
    assert.deepEqual(sink.ids, [1, 2, 3], "flush() resolves once its batch is stored and delivered");
    assert.equal(secondDone, false);
    await second;
    assert.deepEqual(sink.ids, range(1, 5));
    assert.deepEqual(sink.chunks.map((c) => c.events.map((e) => e.id)), [[1, 2, 3], [4, 5]]);
    assert.equal(store.transactions, 2);
    assert.equal(store.maxOpen, 1);
    await writer.flush(); // nothing pending: no transaction
    assert.equal(store.transactions, 2);
  });

  test("several runs share one transaction per turn; each channel gets only its own events", async () => {
    const { writer, store } = setup();
    const mk = (runId: string) => new RunChannel({ runId, lastStoredId: 0, writer, events: store.events, bufferLimit: 100 });
    const a = mk("run_x");
    const b = mk("run_y");
    const sa = new RecSink(store);
    const sb = new RecSink(store);
    a.subscribe(0, sa);
    b.subscribe(0, sb);
    a.append(log("a1"));
    b.append(log("b1"));
    a.append(log("a2"));
    b.append(completed);
    a.append(completed);
    await turn();
    assert.equal(store.transactions, 1);
    assert.deepEqual(sa.ids, [1, 2, 3]);
    assert.deepEqual(sb.ids, [1, 2]);
    assert.ok(sa.chunks.every((c) => c.events.every((e) => e.run_id === "run_x")));
    assert.ok(sb.chunks.every((c) => c.events.every((e) => e.run_id === "run_y")));
    assert.equal(sa.ends, 1);
    assert.equal(sb.ends, 1);
  });

  test("project runs inside the transaction, writing through tx; its callbacks run after the commit and after delivery", async () => {
    const store = new MemStore();
    const order: string[] = [];
    const writer = new EventWriter({
      store,
      project: async (events, tx) => {
        assert.equal(store.open, 1, "inside the transaction");
        assert.equal(await tx.events.lastId("run_p"), 2, "the transaction sees the batch");
        assert.equal(await store.events.lastId("run_p"), 0, "not committed yet");
        await tx.runs.update("run_p", { status: "completed" });
        order.push(`project ${events.length}`);
        return [
          () => {
            assert.equal(store.open, 0, "after the commit");
            assert.equal(store.runRows.get("run_p")?.status, "completed", "the projection is committed with the events");
            order.push("after-commit");
          },
        ];
      },
    });
    const ch = new RunChannel({ runId: "run_p", lastStoredId: 0, writer, events: store.events, bufferLimit: 10 });
    ch.subscribe(0, { write: (c) => (order.push(`deliver ${c.events.length}`), true), lagged: () => {}, end: () => order.push("end") });
    ch.append(log("1"));
    ch.append(completed);
    await turn();
    assert.deepEqual(order, ["project 2", "deliver 2", "end", "after-commit"]);
    assert.equal(store.transactions, 1);
  });

  test("a failing commit keeps the batch, delivers nothing, and is retried (manual flush)", async () => {
    const { channel, store, writer, errors } = setup();
    const sink = new RecSink(store);
    channel.subscribe(0, sink);
    const done = channel.whenTerminal();
    let terminalSeen = false;
    void done.then(() => (terminalSeen = true));
    store.failNext = 1;
    appendLogs(channel, 3);
    await writer.flush(); // never rejects
    assert.equal(errors.length, 1);
    assert.equal(writer.pendingCount, 3, "batch kept");
    assert.deepEqual(store.ids("run_a"), [], "rolled back");
    assert.deepEqual(sink.ids, [], "nothing delivered that was not stored");
    appendLogs(channel, 1);
    channel.append(completed);
    assert.equal(writer.pendingCount, 5);
    await writer.flush();
    assert.deepEqual(store.ids("run_a"), [1, 2, 3, 4, 5]);
    assert.deepEqual(sink.ids, [1, 2, 3, 4, 5], "delivered once, in order");
    assert.equal(sink.ends, 1);
    await turn();
    assert.equal(terminalSeen, true);
    // The retry timer (100 ms, armed by the failure) fires before a timer of the same delay armed now.
    await new Promise((r) => setTimeout(r, 100));
    await turn();
    assert.deepEqual(sink.ids, [1, 2, 3, 4, 5], "the retry finds nothing to do");
    assert.equal(store.transactions, 2);
  });

  test("a failing commit is retried on its own (timer) and whenTerminal waits for the real commit", async () => {
    const { channel, store, errors } = setup();
    const sink = new RecSink(store);
    channel.subscribe(0, sink);
    let terminalSeen = false;
    void channel.whenTerminal().then(() => (terminalSeen = true));
    store.failNext = 2;
    appendLogs(channel, 2);
    channel.append(completed);
    await turn();
    assert.equal(errors.length, 1);
    assert.deepEqual(sink.ids, []);
    assert.equal(terminalSeen, false);
    assert.equal(channel.terminalId, null);
    await sink.untilEnd(); // the retries fail once more, then commit
    assert.equal(errors.length, 2);
    assert.deepEqual(store.ids("run_a"), [1, 2, 3]);
    assert.deepEqual(sink.ids, [1, 2, 3]);
    assert.equal(sink.ends, 1);
    assert.deepEqual(sink.lags, []);
    await turn();
    assert.equal(terminalSeen, true);
    assert.equal(channel.terminalId, 3);
    assert.equal(store.transactions, 3);
  });

  test("a project() that rejects rolls the batch back and it is retried", async () => {
    const store = new MemStore();
    let throwOnce = true;
    const errors: unknown[] = [];
    const writer = new EventWriter({
      store,
      onError: (e) => errors.push(e),
      project: async (_events, tx) => {
        await tx.runs.update("run_q", { status: "running" });
        if (throwOnce) {
          throwOnce = false;
          throw new Error("projection failed");
        }
      },
    });
    const ch = new RunChannel({ runId: "run_q", lastStoredId: 0, writer, events: store.events, bufferLimit: 10 });
    const sink = new RecSink(store);
    ch.subscribe(0, sink);
    ch.append(log("a"));
    await writer.flush();
    assert.equal(errors.length, 1);
    assert.equal((errors[0] as Error).message, "projection failed");
    assert.deepEqual(store.ids("run_q"), []);
    assert.equal(store.runRows.get("run_q"), undefined, "the projection's write is rolled back too");
    assert.deepEqual(sink.ids, []);
    await writer.flush();
    assert.deepEqual(sink.ids, [1]);
    assert.equal(store.runRows.get("run_q")?.status, "running");
  });
});

describe("EventWriter: row patches and alongside writes", () => {
  test("patchRun: patches of one run merge, and are written in the next commit before its events and their projection", async () => {
    const store = new MemStore();
    const seenByProject: Array<string | undefined> = [];
    const writer = new EventWriter({
      store,
      project: async (events, tx) => {
        store.ops.push(`project ${events.map((e) => e.id).join(",")}`);
        seenByProject.push((await tx.runs.get("run_r"))?.status);
      },
    });
    const ch = new RunChannel({ runId: "run_r", lastStoredId: 0, writer, events: store.events, bufferLimit: 10 });
    const sink = new RecSink(store);
    ch.subscribe(0, sink);
    writer.patchRun("run_r", { status: "preparing", session_id: "s1" });
    writer.patchRun("run_r", { status: "running" }); // the later field wins
    ch.append(log("a"));
    ch.append(log("b"));
    writer.patchRun("run_o", { exit_code: 3 });
    await turn();
    assert.equal(store.transactions, 1, "patches, events and projection in one transaction");
    assert.deepEqual(store.ops, [
      `update run_r ${JSON.stringify({ status: "running", session_id: "s1" })}`,
      `update run_o ${JSON.stringify({ exit_code: 3 })}`,
      "insert run_r 1-2",
      "project 1,2",
    ]);
    assert.deepEqual(seenByProject, ["running"], "the projection sees the patched row");
    assert.deepEqual(store.runRows.get("run_r"), { status: "running", session_id: "s1" });
    assert.deepEqual(store.runRows.get("run_o"), { exit_code: 3 });
    assert.deepEqual(sink.ids, [1, 2]);

    // a patch alone costs one transaction of its own, without events
    store.ops = [];
    writer.patchRun("run_r", { status: "waiting" });
    await turn();
    assert.equal(store.transactions, 2);
    assert.deepEqual(store.ops, [`update run_r ${JSON.stringify({ status: "waiting" })}`]);
    assert.equal(store.runRows.get("run_r")?.status, "waiting");
  });

  test("patches of a failed commit go back under newer ones and are written by the next commit", async () => {
    const store = new MemStore();
    const errors: unknown[] = [];
    const writer = new EventWriter({ store, onError: (e) => errors.push(e) });
    const ch = new RunChannel({ runId: "run_f", lastStoredId: 0, writer, events: store.events, bufferLimit: 10 });
    store.failNext = 1;
    writer.patchRun("run_f", { status: "running", session_id: "s1" });
    ch.append(log("a"));
    await writer.flush();
    assert.equal(errors.length, 1);
    assert.equal(store.runRows.get("run_f"), undefined, "rolled back");
    assert.deepEqual(store.ids("run_f"), []);
    writer.patchRun("run_f", { status: "completed" }); // newer than the failed patch: wins
    store.ops = [];
    await writer.flush();
    assert.deepEqual(store.runRows.get("run_f"), { status: "completed", session_id: "s1" });
    assert.deepEqual(store.ids("run_f"), [1]);
    assert.deepEqual(store.ops, [`update run_f ${JSON.stringify({ status: "completed", session_id: "s1" })}`, "insert run_f 1-1"], "one merged update, before the events");
  });

  test("alongside writes run after the events, each in a savepoint: one that rejects is rolled back alone; a later write of a key replaces the pending one", async () => {
    const store = new MemStore();
    const errors: unknown[] = [];
    const writer = new EventWriter({ store, onError: (e) => errors.push(e) });
    const ch = new RunChannel({ runId: "run_s", lastStoredId: 0, writer, events: store.events, bufferLimit: 10 });
    const sink = new RecSink(store);
    ch.subscribe(0, sink);
    writer.alongside("bad", async (tx) => {
      await tx.runs.update("run_s", { session_id: "bad" });
      throw new Error("write failed");
    });
    writer.alongside("conv", async (tx) => tx.runs.update("run_s", { result: "old" }));
    writer.alongside("conv", async (tx) => tx.runs.update("run_s", { result: "new" }));
    ch.append(log("a"));
    await turn();
    assert.equal(store.transactions, 1);
    assert.equal(store.savepoints, 2, "one savepoint per pending key");
    assert.deepEqual(store.ops, ["insert run_s 1-1", `update run_s ${JSON.stringify({ session_id: "bad" })}`, `update run_s ${JSON.stringify({ result: "new" })}`]);
    assert.deepEqual(store.runRows.get("run_s"), { result: "new" }, "the failed write is rolled back, the other kept");
    assert.equal(errors.length, 1);
    assert.equal((errors[0] as Error).message, "write failed");
    assert.deepEqual(store.ids("run_s"), [1], "the events are stored all the same");
    assert.deepEqual(sink.ids, [1]);
  });
});

describe("RunChannel: terminal", () => {
  test("whenTerminal resolves only after the terminal event is committed", async () => {
    const { channel, writer } = setup();
    let resolved = false;
    void channel.whenTerminal().then(() => (resolved = true));
    channel.append(log("a"));
    channel.append(completed);
    assert.equal(channel.ended, true);
    await Promise.resolve();
    assert.equal(resolved, false);
    assert.equal(channel.terminalId, null);
    await writer.flush();
    assert.equal(channel.terminalId, 2);
    await Promise.resolve();
    assert.equal(resolved, true);
    await channel.whenTerminal(); // already terminal: resolves at once
  });

  test("subscribing to a finished channel replays everything after `after` and ends once; the sink is never called before subscribe returns", async () => {
    const { writer, store, channel } = setup();
    appendLogs(channel, 4);
    channel.append(completed);
    await writer.flush();
    const finished = new RunChannel({ runId: "run_a", lastStoredId: 5, terminalId: 5, writer, events: store.events, bufferLimit: 10 });
    assert.equal(finished.ended, true);
    assert.equal(finished.append(log("no")), null);
    for (const after of [0, 2, 4, 5, 9]) {
      const sink = new RecSink(store);
      const sub = finished.subscribe(after, sink);
      assert.deepEqual([sink.ids, sink.ends], [[], 0], `after=${after}: nothing synchronously`);
      await sink.untilEnd();
      assert.deepEqual(sink.ids, range(after + 1, 5), `after=${after}`);
      assert.equal(sink.ends, 1, `after=${after}: end() once`);
      assert.deepEqual(sink.lags, []);
      assert.equal(sub.closed, true);
    }
    assert.equal(finished.subscriberCount, 0);
    await finished.whenTerminal();
  });

  test("a live subscriber whose cursor is already past the last id still gets end() at the terminal", async () => {
    // e.g. a client reconnecting with a Last-Event-ID larger than what this run has.
    const { channel, store } = setup();
    appendLogs(channel, 2);
    await turn();
    const sink = new RecSink(store);
    const sub = channel.subscribe(10, sink);
    await turn();
    channel.append(completed); // id 3 < cursor 10
    await turn();
    assert.equal(channel.terminalId, 3);
    assert.deepEqual(sink.ids, []);
    // Regression: offer() filtered the batch to nothing and #deliver() returned before #maybeEnd().
    assert.equal(sink.ends, 1, "the stream must end after the terminal event");
    assert.equal(sub.closed, true);
  });

  test("a subscription opened after the terminal commit but before its delivery still ends", async () => {
    // The window between commit and delivery: project's after-commit callbacks (RunManager
    // publishes "run.status" on the bus there, handlers run synchronously) and onStored.
    const store = new MemStore();
    let channel: RunChannel | null = null;
    const late = new RecSink(store);
    const writer = new EventWriter({
      store,
      project: async (events) => (events.some((e) => isTerminalType(e.type)) ? [() => void channel!.subscribe(0, late)] : []),
    });
    channel = new RunChannel({ runId: "run_w", lastStoredId: 0, writer, events: store.events, bufferLimit: 10 });
    channel.append(log("a"));
    channel.append(completed);
    await writer.flush();
    await late.untilEnd();
    assert.deepEqual(late.ids, [1, 2], "replayed from the store, no duplicate from the live batch");
    assert.equal(late.ends, 1);
    assert.deepEqual(late.lags, []);
  });

  test("closeAll ends every subscription once; later commits deliver nothing to them", async () => {
    const { channel, store, subscribers } = setup();
    const a = new RecSink(store);
    const b = new RecSink(store);
    channel.subscribe(0, a);
    channel.subscribe(0, b);
    assert.equal(subscribers(), 2);
    channel.append(log("1"));
    await turn();
    channel.closeAll();
    channel.closeAll();
    channel.append(log("2"));
    await turn();
    assert.deepEqual([a.ids, b.ids, a.ends, b.ends], [[1], [1], 1, 1]);
    assert.equal(subscribers(), 0);
  });
});

describe("RunChannel: asynchronous replay", () => {
  test("events committed while a replay read is outstanding are delivered exactly once", async () => {
    const { channel, store, writer } = setup();
    appendLogs(channel, 3);
    await writer.flush();
    store.holdLists = true;
    const caughtUp = new RecSink(store); // its read finds nothing after 3
    const behind = new RecSink(store); // its read finds 1..3
    channel.subscribe(3, caughtUp);
    channel.subscribe(0, behind);
    await turn();
    assert.equal(store.heldLists, 2, "both replay reads are out");
    appendLogs(channel, 3);
    await writer.flush(); // 4..6 committed and offered while the reads are out
    assert.equal(channel.committedId, 6);
    assert.deepEqual([caughtUp.ids, behind.ids], [[], []]);
    store.holdLists = false;
    store.releaseLists(); // the reads resolve with what they read before the commit
    await turn();
    assert.deepEqual(caughtUp.ids, [4, 5, 6], "an empty read does not switch to live past a commit it did not see");
    assert.deepEqual(behind.ids, range(1, 6), "a stale page is followed by another read");
    appendLogs(channel, 2);
    channel.append(completed);
    await writer.flush();
    await Promise.all([caughtUp.untilEnd(), behind.untilEnd()]);
    assert.deepEqual(caughtUp.ids, range(4, 9));
    assert.deepEqual(behind.ids, range(1, 9));
    assert.deepEqual([caughtUp.ends, behind.ends, caughtUp.lags.length, behind.lags.length], [1, 1, 0, 0]);
  });

  test("a read that resolves after the commit it missed, while the next batch is committing, still gives each event once", async () => {
    const { channel, store, writer } = setup();
    store.holdLists = true;
    const sink = new RecSink(store);
    channel.subscribe(0, sink);
    await turn();
    appendLogs(channel, 2);
    await writer.flush(); // 1..2 committed; the read (empty) is still out
    let release!: () => void;
    store.beforeCommit = () => new Promise<void>((r) => (release = r));
    appendLogs(channel, 2);
    const committing = writer.flush(); // 3..4 in a transaction that stays open
    await turn();
    store.holdLists = false;
    store.releaseLists();
    await turn();
    assert.deepEqual(sink.ids, [1, 2], "replayed the first batch; the second is not committed");
    store.beforeCommit = null;
    release();
    await committing;
    assert.deepEqual(sink.ids, [1, 2, 3, 4]);
    channel.append(completed);
    await sink.untilEnd();
    assert.deepEqual(sink.ids, range(1, 5));
    assert.equal(sink.ends, 1);
  });

  test("a store error while replaying ends the subscription with lagged(cursor); a reconnect from there loses nothing", async () => {
    const { channel, store, writer, subscribers } = setup();
    appendLogs(channel, 5);
    await writer.flush();
    store.listCalls = 0;
    store.listError = (call) => (call >= 2 ? Object.assign(new Error("disk I/O error"), { code: "SQLITE_IOERR" }) : undefined);
    const mid = new RecSink(store);
    const sub = channel.subscribe(0, mid);
    await mid.untilEnd();
    assert.deepEqual(mid.ids, range(1, 5), "the first page was delivered");
    assert.deepEqual(mid.lags, [5], "lagged with the last id it got");
    assert.equal(mid.ends, 0);
    assert.equal(sub.closed, true);

    const first = new RecSink(store); // fails at its first read
    channel.subscribe(2, first);
    await first.untilEnd();
    assert.deepEqual([first.ids, first.lags], [[], [2]]);
    assert.equal(subscribers(), 0);
    assert.equal(channel.subscriberCount, 0);

    store.listError = null;
    const again = new RecSink(store);
    channel.subscribe(5, again);
    await turn();
    appendLogs(channel, 1);
    channel.append(completed);
    await again.untilEnd();
    assert.deepEqual(again.ids, [6, 7]);
    assert.equal(again.ends, 1);
    assert.equal(mid.writesAfterEnd + first.writesAfterEnd, 0);
  });
});

describe("RunChannel: backpressure and lag", () => {
  test("a sink returning false pauses replay across pages (>2000 events); resume() continues, then live", async () => {
    const { channel, store, writer } = setup();
    appendLogs(channel, 4500);
    await writer.flush();
    const sink = new RecSink(store);
    sink.accept = false;
    const sub = channel.subscribe(0, sink);
    await turn();
    assert.equal(sink.chunks.length, 1, "paused after the first page");
    const firstPage = sink.ids.length;
    assert.ok(firstPage > 0 && firstPage <= 2000, `first page ${firstPage}`);
    assert.deepEqual(sink.ids, range(1, firstPage));

    // appends while the subscriber is paused in replay: must come, once, later
    appendLogs(channel, 10, "during");
    await turn();
    assert.deepEqual(sink.ids, range(1, firstPage), "a paused replaying sink gets nothing");

    sub.resume();
    await turn();
    assert.equal(sink.chunks.length, 2, "one more page per resume while the sink keeps returning false");
    sub.resume();
    sub.resume(); // not paused (its read is out): does nothing
    await turn();
    assert.equal(sink.chunks.length, 3);
    assert.deepEqual(sink.ids, range(1, sink.ids.length), "no duplicate, no gap");
    sink.accept = true;
    sub.resume();
    await turn();
    assert.deepEqual(sink.ids, range(1, 4510));
    appendLogs(channel, 3, "live");
    channel.append(completed);
    await turn();
    assert.deepEqual(sink.ids, range(1, 4514));
    assert.equal(sink.ends, 1);
    assert.ok(sink.chunks.slice(0, -1).every((c) => c.events.length <= 2000), "replay pages are at most 2000 events");
  });

  test("a paused live subscriber buffers, and resume() delivers the buffer in order, then follows live", async () => {
    const { channel, store } = setup({ bufferLimit: 50 });
    const sink = new RecSink(store);
    const sub = channel.subscribe(0, sink);
    sink.accept = false;
    appendLogs(channel, 3);
    await turn();
    assert.deepEqual(sink.ids, [1, 2, 3]);
    appendLogs(channel, 5);
    await turn();
    appendLogs(channel, 5);
    await turn();
    assert.deepEqual(sink.ids, [1, 2, 3], "paused: nothing written");
    sink.accept = true;
    sub.resume();
    assert.deepEqual(sink.ids, range(1, 13), "the buffer is delivered at once");
    channel.append(completed);
    await turn();
    assert.deepEqual(sink.ids, range(1, 14));
    assert.equal(sink.ends, 1);
  });

  test("a paused live subscriber past bufferLimit gets lagged(lastId) once and is detached; others continue", async () => {
    const { channel, store, subscribers } = setup({ bufferLimit: 5 });
    const slow = new RecSink(store);
    const fast = new RecSink(store);
    const slowSub = channel.subscribe(0, slow);
    channel.subscribe(0, fast);
    appendLogs(channel, 2);
    await turn();
    slow.accept = false;
    appendLogs(channel, 1);
    await turn(); // slow got [1,2,3] and paused
    assert.deepEqual(slow.ids, [1, 2, 3]);
    appendLogs(channel, 5);
    await turn(); // 5 buffered: at the limit, not past it
    assert.deepEqual(slow.lags, []);
    appendLogs(channel, 1);
    await turn(); // 6 buffered: past the limit
    assert.deepEqual(slow.lags, [3], "lagged with the last id it got");
    assert.equal(slowSub.closed, true);
    assert.equal(channel.subscriberCount, 1);
    assert.equal(subscribers(), 1);
    appendLogs(channel, 20);
    await turn();
    slowSub.resume();
    channel.append(completed);
    await turn();
    assert.deepEqual(slow.lags, [3], "lagged only once");
    assert.deepEqual(slow.ids, [1, 2, 3]);
    assert.equal(slow.ends, 0);
    assert.equal(slow.writesAfterEnd, 0);
    assert.deepEqual(fast.ids, range(1, 30));
    assert.equal(fast.ends, 1);
    assert.equal(subscribers(), 0);
    // reconnect with Last-Event-ID = 3: nothing lost
    const again = new RecSink(store);
    channel.subscribe(3, again);
    await again.untilEnd();
    assert.deepEqual(again.ids, range(4, 30));
    assert.equal(again.ends, 1);
  });

  test("one big commit past bufferLimit while paused lags immediately", async () => {
    const { channel, store } = setup({ bufferLimit: 10 });
    const sink = new RecSink(store);
    channel.subscribe(0, sink);
    sink.accept = false;
    appendLogs(channel, 1);
    await turn();
    appendLogs(channel, 11);
    await turn();
    assert.deepEqual(sink.lags, [1]);
  });
});

describe("RunChannel: replay then live under concurrent appends (randomized)", () => {
  for (const seed of [1, 2, 3, 4, 5, 6, 7, 8]) {
    test(`seed ${seed}: every subscriber sees exactly after+1..terminal in order, then end() once`, async () => {
      const rand = rng(seed);
      const pick = (n: number) => Math.floor(rand() * n);
      const { channel, store, writer, subscribers } = setup({ maxBatch: 1 + pick(300) });
      // Even seeds: replay reads resolve 0-2 macrotask turns after they read (commits happen meanwhile).
      if (seed % 2 === 0) {
        store.listDelay = async () => {
          for (let k = pick(3); k > 0; k--) await turn();
        };
      }
      type Reader = { after: number; sink: RecSink; sub: Subscription };
      const readers: Reader[] = [];
      let appended = 0;
      let steps = 0;
      const target = 3000 + pick(3000);

      const subscribeOne = () => {
        const sink = new RecSink(store);
        // some sinks pause now and then
        const pauser = rand() < 0.4;
        sink.accept = pauser ? () => rand() > 0.3 : true;
        // `after` anywhere from 0 to the last appended id (committed or not)
        const after = pick(appended + 1);
        const sub = channel.subscribe(after, sink);
        readers.push({ after, sink, sub });
      };

      while (appended < target) {
        steps++;
        const r = rand();
        if (r < 0.45) {
          const n = 1 + pick(r < 0.05 ? 2500 : 40);
          for (let i = 0; i < n && appended < target; i++) {
            channel.append(log(`e${appended}`));
            appended++;
          }
        } else if (r < 0.52) {
          void writer.flush();
        } else if (r < 0.6) {
          await writer.flush();
        } else if (r < 0.68) {
          await turn();
        } else if (r < 0.75) {
          await Promise.resolve(); // a few microtasks: commits and reads part-way
        } else if (r < 0.88) {
          subscribeOne();
        } else {
          // resume a random paused reader (like a socket 'drain')
          const rd = readers[pick(readers.length)];
          rd?.sub.resume();
        }
      }
      channel.append(completed);
      const terminalId = appended + 1;
      subscribeOne(); // one more before the terminal commit
      await turn();
      subscribeOne(); // and one after
      // drain: keep resuming until every reader has ended
      for (let round = 0; round < 20_000 && readers.some((r) => r.sink.ends === 0 && r.sink.lags.length === 0); round++) {
        for (const rd of readers) rd.sub.resume();
        await turn();
      }
      assert.ok(readers.length >= 3, `seed ${seed} made ${readers.length} readers in ${steps} steps`);
      for (const [i, rd] of readers.entries()) {
        const want = range(rd.after + 1, terminalId);
        assert.deepEqual(rd.sink.lags, [], `reader ${i}: not lagged`);
        if (JSON.stringify(rd.sink.ids) !== JSON.stringify(want)) {
          const k = want.findIndex((id, j) => rd.sink.ids[j] !== id);
          const at = k === -1 ? want.length : k;
          assert.fail(`reader ${i} (after=${rd.after}): got ${rd.sink.ids.length} ids, want ${want.length}; first difference at #${at}: got ${rd.sink.ids[at]}, want ${want[at]}`);
        }
        assert.equal(rd.sink.ends, 1, `reader ${i}: end() once`);
        assert.equal(rd.sink.writesAfterEnd, 0);
        assert.equal(rd.sub.closed, true);
      }
      assert.deepEqual(store.ids("run_a"), range(1, terminalId));
      assert.equal(store.maxOpen, 1, "one commit in flight at a time");
      assert.equal(subscribers(), 0);
      assert.equal(channel.subscriberCount, 0);
    });
  }
});

describe("RunChannel on the real SQLite store", () => {
  const runRow = (id: string, userId: string) => ({ id, user_id: userId, agent: "shell", status: "queued" as const, input: { text: "x" }, metadata: {}, cwd: "/w", created_at: new Date().toISOString() });

  test("ids, replay then live, terminal and reopen; row patches and projections commit with the events", async () => {
    const store = openSqliteStore({ file: ":memory:" });
    try {
      const user = await store.users.create({ username: "u", password_hash: "h", role: "user" });
      await store.runs.insert(runRow("run_sql", user.id));
      const seen: string[] = [];
      const writer = new EventWriter({
        store,
        project: async (events, tx) => {
          if (events.some((e) => isTerminalType(e.type))) await tx.runs.update("run_sql", { status: "completed", exit_code: 0 });
          seen.push((await tx.runs.get("run_sql"))!.status);
        },
      });
      const ch = new RunChannel({ runId: "run_sql", lastStoredId: 0, writer, events: store.events, bufferLimit: 100 });
      const early = new RecSink();
      ch.subscribe(0, early);
      writer.patchRun("run_sql", { status: "running", started_at: new Date().toISOString() });
      for (let i = 0; i < 2500; i++) ch.append(log(`l${i}`));
      await writer.flush();
      assert.deepEqual(early.ids, range(1, 2500));
      assert.deepEqual(seen, ["running"], "the patch is written before the batch is projected");
      const late = new RecSink();
      ch.subscribe(1000, late);
      ch.append(completed);
      await Promise.all([early.untilEnd(), late.untilEnd()]);
      assert.deepEqual(early.ids, range(1, 2501));
      assert.deepEqual(late.ids, range(1001, 2501));
      assert.deepEqual([early.ends, late.ends, early.lags.length, late.lags.length], [1, 1, 0, 0]);
      assert.equal(await store.events.lastId("run_sql"), 2501);
      const row = (await store.runs.get("run_sql"))!;
      assert.deepEqual([row.status, row.exit_code, row.last_event_id], ["completed", 0, 2501]);
      assert.ok(row.started_at);
      const reopened = new RunChannel({ runId: "run_sql", lastStoredId: 2501, terminalId: 2501, writer, events: store.events, bufferLimit: 100 });
      const all: RunEvent[] = [];
      let ended = false;
      await new Promise<void>((resolve) => reopened.subscribe(2499, { write: (c) => (all.push(...c.events), true), lagged: () => resolve(), end: () => ((ended = true), resolve()) }));
      assert.equal(ended, true);
      assert.deepEqual(all.map((e) => e.id), [2500, 2501]);
      assert.ok(isTerminalType(all[1]!.type));
    } finally {
      await store.close();
    }
  });

  test("a run whose row is gone is dropped alone (a constraint error); the other run of the batch is stored and delivered", async () => {
    const store = openSqliteStore({ file: ":memory:" });
    try {
      const user = await store.users.create({ username: "u", password_hash: "h", role: "user" });
      await store.runs.insert(runRow("run_ok", user.id));
      const dropped: Array<[string, number]> = [];
      const errors: unknown[] = [];
      const writer = new EventWriter({ store, onError: (e) => errors.push(e), onDropped: (runId, n) => dropped.push([runId, n]) });
      const ok = new RunChannel({ runId: "run_ok", lastStoredId: 0, writer, events: store.events, bufferLimit: 100 });
      const gone = new RunChannel({ runId: "run_gone", lastStoredId: 0, writer, events: store.events, bufferLimit: 100 });
      const okSink = new RecSink();
      const goneSink = new RecSink();
      ok.subscribe(0, okSink);
      gone.subscribe(0, goneSink);
      ok.append(log("a"));
      gone.append(log("x"));
      gone.append(log("y"));
      ok.append(log("b"));
      await writer.flush();
      assert.deepEqual(okSink.ids, [1, 2]);
      assert.deepEqual(goneSink.ids, []);
      assert.deepEqual(dropped, [["run_gone", 2]]);
      assert.equal(errors.length, 0);
      assert.equal(writer.pendingCount, 0);
      assert.deepEqual((await store.events.list("run_ok", 0, 10)).map((e) => e.id), [1, 2]);
      assert.equal(await store.events.lastId("run_gone"), 0);
    } finally {
      await store.close();
    }
  });
});

describe("EventWriter: a run whose events violate a constraint", () => {
  test("is dropped alone (onDropped); other runs in the same batch are stored and delivered", async () => {
    const store = new MemStore();
    store.refuse = (events) => {
      if (events.some((e) => e.run_id === "run_gone")) throw Object.assign(new Error("FOREIGN KEY constraint failed"), { code: "SQLITE_CONSTRAINT_FOREIGNKEY" });
    };
    const dropped: Array<[string, number]> = [];
    const errors: unknown[] = [];
    const writer = new EventWriter({ store, onError: (e) => errors.push(e), onDropped: (runId, n) => dropped.push([runId, n]) });
    const ok = new RunChannel({ runId: "run_ok", lastStoredId: 0, writer, events: store.events, bufferLimit: 100 });
    const gone = new RunChannel({ runId: "run_gone", lastStoredId: 0, writer, events: store.events, bufferLimit: 100 });
    const got = new RecSink(store);
    ok.subscribe(0, got);
    const goneGot = new RecSink(store);
    gone.subscribe(0, goneGot);
    ok.append(log("a"));
    gone.append(log("x"));
    ok.append(log("b"));
    await turn();
    assert.deepEqual(got.ids, [1, 2], "the healthy run is stored and delivered");
    assert.deepEqual(goneGot.ids, [], "nothing unstored is delivered");
    assert.deepEqual(dropped, [["run_gone", 1]]);
    assert.equal(errors.length, 0, "reported once, through onDropped, not also as a commit error");
    assert.equal(writer.pendingCount, 0, "no endless retry of the bad run");
    ok.append(log("c"));
    await turn();
    assert.deepEqual(got.ids, [1, 2, 3]);
    // PostgreSQL's SQLSTATE class 23 is a constraint violation too
    store.refuse = (events) => {
      if (events.some((e) => e.run_id === "run_gone")) throw Object.assign(new Error("insert or update violates foreign key constraint"), { code: "23503" });
    };
    gone.append(log("z"));
    ok.append(log("d"));
    await writer.flush();
    assert.deepEqual(dropped, [["run_gone", 1], ["run_gone", 1]]);
    assert.deepEqual(got.ids, [1, 2, 3, 4]);
    assert.equal(errors.length, 0);
  });
});

describe("replay of large events", () => {
  test("a page of huge events is delivered in chunks of bounded size, all events in order", async () => {
    const { channel, store } = setup();
    const big = "x".repeat(1024 * 1024);
    for (let i = 0; i < 10; i++) channel.append(log(big + i));
    channel.append(completed);
    await turn();
    const sink = new RecSink(store);
    channel.subscribe(0, sink);
    await sink.untilEnd();
    const sizes = sink.chunks.map((c) => c.text.length);
    assert.deepEqual(sink.ids, range(1, 11));
    assert.ok(sizes.length >= 3, `split into ${sizes.length} chunks`);
    for (const n of sizes) assert.ok(n < MAX_CHUNK_CHARS + 1024 * 1024 + 1000, `chunk of ${n} chars`);
    assert.equal(sink.ends, 1);
  });
});
