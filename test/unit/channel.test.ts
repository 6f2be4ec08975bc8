/**
 * RunChannel + EventWriter (docs/architecture.md#channel): events are numbered 1..N,
 * stored before delivery, replayed then followed live with no gap or duplicate,
 * paused sinks resume, a lagging live subscriber is dropped with `lagged`.
 * The store is an in-memory EventRepo with a rolling-back transaction stub
 * (so a failing commit can be injected); one test runs on the real SQLite store.
 */
import { test, describe } from "node:test";
import assert from "node:assert/strict";
import { EventWriter } from "../../src/run/event-writer.ts";
import { MAX_CHUNK_CHARS, RunChannel, type EventChunk, type EventSink, type Subscription } from "../../src/run/channel.ts";
import { formatSseFrame } from "../../src/protocol/sse.ts";
import { isTerminalType, type RunEvent, type RunEventInput, type RunEventType } from "../../src/protocol/events.ts";
import type { EventRepo } from "../../src/store/types.ts";
import { openSqliteStore } from "../../src/store/sqlite.ts";

// ---------------------------------------------------------------- test doubles

/** In-memory EventRepo + transaction with rollback; counts transactions and can be told to fail. */
class MemStore {
  rows = new Map<string, RunEvent[]>();
  transactions = 0;
  failures = 0;
  /** Number of upcoming transactions that throw (after inserting, so rollback is exercised). */
  failNext = 0;
  listCalls = 0;

  events: EventRepo = {
    insertBatch: (events) => {
      for (const e of events) {
        const list = this.rows.get(e.run_id) ?? [];
        const last = list[list.length - 1]?.id ?? 0;
        if (e.id !== last + 1) throw new Error(`store: ${e.run_id} id ${e.id} after ${last} (gap or duplicate)`);
        list.push(structuredClone(e));
        this.rows.set(e.run_id, list);
      }
    },
    list: (runId, after, limit) => {
      this.listCalls++;
      return (this.rows.get(runId) ?? []).filter((e) => e.id > after).slice(0, limit).map((e) => structuredClone(e));
    },
    lastId: (runId) => {
      const list = this.rows.get(runId) ?? [];
      return list[list.length - 1]?.id ?? 0;
    },
    countByType: (runId, type: RunEventType) => (this.rows.get(runId) ?? []).filter((e) => e.type === type).length,
  };

  transaction = <T>(fn: () => T): T => {
    this.transactions++;
    const snapshot = new Map([...this.rows].map(([k, v]) => [k, [...v]]));
    try {
      const out = fn();
      if (this.failNext > 0) {
        this.failNext--;
        throw new Error("injected commit failure");
      }
      return out;
    } catch (err) {
      this.failures++;
      this.rows = snapshot;
      throw err;
    }
  };

  ids(runId: string): number[] {
    return (this.rows.get(runId) ?? []).map((e) => e.id);
  }

  has(e: RunEvent): boolean {
    // ids are stored contiguously from 1 (insertBatch enforces it)
    return e.id >= 1 && e.id <= this.events.lastId(e.run_id);
  }
}

/** A sink that records everything and checks every event it gets was stored first. */
class RecSink implements EventSink {
  ids: number[] = [];
  chunks: EventChunk[] = [];
  lags: number[] = [];
  ends = 0;
  writesAfterEnd = 0;
  /** Return value of the next writes (true = keep going). */
  accept: boolean | (() => boolean) = true;
  sub: Subscription | null = null;

  constructor(private readonly store?: MemStore) {}

  write(chunk: EventChunk): boolean {
    if (this.ends > 0 || this.lags.length > 0) this.writesAfterEnd++;
    assert.ok(chunk.events.length > 0, "empty chunk written");
    assert.equal(chunk.text, chunk.events.map(formatSseFrame).join(""), "chunk text matches its events");
    for (const e of chunk.events) {
      if (this.store) assert.ok(this.store.has(e), `event ${e.run_id}#${e.id} delivered before it was stored`);
      this.ids.push(e.id);
    }
    this.chunks.push(chunk);
    return typeof this.accept === "function" ? this.accept() : this.accept;
  }
  lagged(lastId: number): void {
    this.lags.push(lastId);
  }
  end(): void {
    this.ends++;
  }
}

const log = (text: string): RunEventInput => ({ type: "log", data: { stream: "stdout", text } });
const completed: RunEventInput = { type: "run.completed", data: { exit_code: 0, duration_ms: 1 } };
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
    assert.equal(store.events.lastId("run_b"), 42);
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
    assert.equal(store.events.countByType("run_a", "run.completed"), 1);
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
  });

  test("past maxBatch the batch commits (and is delivered) at once", async () => {
    const { channel, store, writer } = setup({ maxBatch: 4 });
    const sink = new RecSink(store);
    channel.subscribe(0, sink);
    appendLogs(channel, 3);
    assert.equal(store.transactions, 0);
    assert.equal(writer.pendingCount, 3);
    appendLogs(channel, 1);
    assert.equal(store.transactions, 1, "committed synchronously at maxBatch");
    assert.equal(writer.pendingCount, 0);
    assert.deepEqual(sink.ids, [1, 2, 3, 4]);
    appendLogs(channel, 2);
    assert.deepEqual(sink.ids, [1, 2, 3, 4]);
    await turn();
    assert.equal(store.transactions, 2);
    assert.deepEqual(sink.ids, range(1, 6));
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
    assert.equal(sa.ends, 1);
    assert.equal(sb.ends, 1);
  });

  test("project runs inside the transaction; its callbacks run after the commit and after delivery", async () => {
    const store = new MemStore();
    const order: string[] = [];
    let inTx = false;
    const realTx = store.transaction;
    store.transaction = <T>(fn: () => T): T => {
      inTx = true;
      try {
        return realTx(fn);
      } finally {
        inTx = false;
      }
    };
    const writer = new EventWriter({
      store,
      project: (events) => {
        assert.equal(inTx, true);
        order.push(`project ${events.length}`);
        return [() => (assert.equal(inTx, false), order.push("after-commit"))];
      },
    });
    const ch = new RunChannel({ runId: "run_p", lastStoredId: 0, writer, events: store.events, bufferLimit: 10 });
    ch.subscribe(0, { write: (c) => (order.push(`deliver ${c.events.length}`), true), lagged: () => {}, end: () => order.push("end") });
    ch.append(log("1"));
    ch.append(completed);
    await turn();
    assert.deepEqual(order, ["project 2", "deliver 2", "end", "after-commit"]);
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
    writer.flush();
    assert.equal(errors.length, 1);
    assert.equal(writer.pendingCount, 3, "batch kept");
    assert.deepEqual(store.ids("run_a"), [], "rolled back");
    assert.deepEqual(sink.ids, [], "nothing delivered that was not stored");
    appendLogs(channel, 1);
    channel.append(completed);
    assert.equal(writer.pendingCount, 5);
    writer.flush();
    assert.deepEqual(store.ids("run_a"), [1, 2, 3, 4, 5]);
    assert.deepEqual(sink.ids, [1, 2, 3, 4, 5], "delivered once, in order");
    assert.equal(sink.ends, 1);
    await turn();
    assert.equal(terminalSeen, true);
    await new Promise((r) => setTimeout(r, 150)); // the pending retry timer finds nothing to do
    assert.deepEqual(sink.ids, [1, 2, 3, 4, 5]);
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
    const deadline = Date.now() + 2000;
    while (sink.ends === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    assert.equal(errors.length, 2);
    assert.deepEqual(store.ids("run_a"), [1, 2, 3]);
    assert.deepEqual(sink.ids, [1, 2, 3]);
    assert.equal(sink.ends, 1);
    await turn();
    assert.equal(terminalSeen, true);
    assert.equal(channel.terminalId, 3);
  });

  test("a project() that throws rolls the batch back and it is retried", async () => {
    const store = new MemStore();
    let throwOnce = true;
    const errors: unknown[] = [];
    const writer = new EventWriter({
      store,
      onError: (e) => errors.push(e),
      project: () => {
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
    writer.flush();
    assert.equal(errors.length, 1);
    assert.deepEqual(store.ids("run_q"), []);
    assert.deepEqual(sink.ids, []);
    writer.flush();
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
    writer.flush();
    assert.equal(channel.terminalId, 2);
    await Promise.resolve();
    assert.equal(resolved, true);
    await channel.whenTerminal(); // already terminal: resolves at once
  });

  test("subscribing to a finished channel replays everything after `after` and ends once", async () => {
    const { writer, store, channel } = setup();
    appendLogs(channel, 4);
    channel.append(completed);
    writer.flush();
    const finished = new RunChannel({ runId: "run_a", lastStoredId: 5, terminalId: 5, writer, events: store.events, bufferLimit: 10 });
    assert.equal(finished.ended, true);
    assert.equal(finished.append(log("no")), null);
    for (const after of [0, 2, 4, 5, 9]) {
      const sink = new RecSink(store);
      const sub = finished.subscribe(after, sink);
      assert.deepEqual(sink.ids, range(after + 1, 5), `after=${after}`);
      assert.equal(sink.ends, 1, `after=${after}: end() once`);
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
    channel.append(completed); // id 3 < cursor 10
    await turn();
    assert.equal(channel.terminalId, 3);
    assert.deepEqual(sink.ids, []);
    // BUG: offer() filters the batch to nothing and #deliver() returns before #maybeEnd(): never ends.
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
      project: (events) => (events.some((e) => isTerminalType(e.type)) ? [() => void channel!.subscribe(0, late)] : []),
    });
    channel = new RunChannel({ runId: "run_w", lastStoredId: 0, writer, events: store.events, bufferLimit: 10 });
    channel.append(log("a"));
    channel.append(completed);
    writer.flush();
    assert.deepEqual(late.ids, [1, 2], "replayed from the store, no duplicate from the live batch");
    // BUG: replay reached the terminal before terminalId was set, and the live offer is filtered
    // to nothing, so #maybeEnd() never runs: the stream never ends.
    assert.equal(late.ends, 1);
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

describe("RunChannel: backpressure and lag", () => {
  test("a sink returning false pauses replay across pages (>2000 events); resume() continues, then live", async () => {
    const { channel, store, writer } = setup();
    appendLogs(channel, 4500);
    writer.flush();
    const sink = new RecSink(store);
    sink.accept = false;
    const sub = channel.subscribe(0, sink);
    assert.equal(sink.chunks.length, 1, "paused after the first page");
    const firstPage = sink.ids.length;
    assert.ok(firstPage > 0 && firstPage <= 2000, `first page ${firstPage}`);
    assert.deepEqual(sink.ids, range(1, firstPage));

    // appends while the subscriber is paused in replay: must come, once, later
    appendLogs(channel, 10, "during");
    await turn();
    assert.deepEqual(sink.ids, range(1, firstPage), "a paused replaying sink gets nothing");

    sub.resume();
    assert.equal(sink.chunks.length, 2, "one more page per resume while the sink keeps returning false");
    sink.accept = true;
    sub.resume();
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
    assert.deepEqual(sink.ids, range(1, 13));
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
      type Reader = { after: number; sink: RecSink; sub: Subscription; pausedAt: number | null };
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
        readers.push({ after, sink, sub, pausedAt: null });
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
        } else if (r < 0.6) {
          writer.flush();
        } else if (r < 0.75) {
          await turn();
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
      for (let round = 0; round < 10_000 && readers.some((r) => r.sink.ends === 0); round++) {
        for (const rd of readers) rd.sub.resume();
        if (round % 50 === 0) await turn();
      }
      assert.ok(readers.length >= 3, `seed ${seed} made ${readers.length} readers in ${steps} steps`);
      for (const [i, rd] of readers.entries()) {
        const want = range(rd.after + 1, terminalId);
        assert.equal(rd.sink.lags.length, 0);
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
      assert.equal(subscribers(), 0);
      assert.equal(channel.subscriberCount, 0);
    });
  }
});

describe("RunChannel on the real SQLite store", () => {
  test("ids, replay then live, terminal and reopen", async () => {
    const store = openSqliteStore({ file: ":memory:" });
    try {
      const user = store.users.create({ username: "u", password_hash: "h", role: "user" });
      store.runs.insert({ id: "run_sql", user_id: user.id, agent: "shell", status: "queued", input: { text: "x" }, metadata: {}, cwd: "/w", created_at: new Date().toISOString() });
      const writer = new EventWriter({ store });
      const ch = new RunChannel({ runId: "run_sql", lastStoredId: 0, writer, events: store.events, bufferLimit: 100 });
      const early: number[] = [];
      let earlyEnds = 0;
      ch.subscribe(0, { write: (c) => (early.push(...c.events.map((e) => e.id)), true), lagged: () => {}, end: () => earlyEnds++ });
      for (let i = 0; i < 2500; i++) ch.append(log(`l${i}`));
      await turn();
      const late: number[] = [];
      let lateEnds = 0;
      ch.subscribe(1000, { write: (c) => (late.push(...c.events.map((e) => e.id)), true), lagged: () => {}, end: () => lateEnds++ });
      ch.append(completed);
      await turn();
      assert.deepEqual(early, range(1, 2501));
      assert.deepEqual(late, range(1001, 2501));
      assert.deepEqual([earlyEnds, lateEnds], [1, 1]);
      assert.equal(store.events.lastId("run_sql"), 2501);
      const reopened = new RunChannel({ runId: "run_sql", lastStoredId: 2501, terminalId: 2501, writer, events: store.events, bufferLimit: 100 });
      const all: RunEvent[] = [];
      reopened.subscribe(2499, { write: (c) => (all.push(...c.events), true), lagged: () => {}, end: () => {} });
      assert.deepEqual(all.map((e) => e.id), [2500, 2501]);
      assert.ok(isTerminalType(all[1]!.type));
    } finally {
      store.close();
    }
  });
});

describe("EventWriter: a run whose events violate a constraint", () => {
  test("is dropped alone (onDropped); other runs in the same batch are stored and delivered", async () => {
    const store = new MemStore();
    const realInsert = store.events.insertBatch;
    store.events.insertBatch = (events) => {
      if (events.some((e) => e.run_id === "run_gone")) throw Object.assign(new Error("FOREIGN KEY constraint failed"), { code: "SQLITE_CONSTRAINT_FOREIGNKEY" });
      realInsert(events);
    };
    const dropped: Array<[string, number]> = [];
    const errors: unknown[] = [];
    const writer = new EventWriter({ store, onError: (e) => errors.push(e), onDropped: (runId, n) => dropped.push([runId, n]) });
    const ok = new RunChannel({ runId: "run_ok", lastStoredId: 0, writer, events: store.events, bufferLimit: 100 });
    const gone = new RunChannel({ runId: "run_gone", lastStoredId: 0, writer, events: store.events, bufferLimit: 100 });
    const got: number[] = [];
    ok.subscribe(0, { write: (c) => (got.push(...c.events.map((e) => e.id)), true), lagged: () => {}, end: () => {} });
    const goneGot: number[] = [];
    gone.subscribe(0, { write: (c) => (goneGot.push(...c.events.map((e) => e.id)), true), lagged: () => {}, end: () => {} });
    ok.append(log("a"));
    gone.append(log("x"));
    ok.append(log("b"));
    await turn();
    assert.deepEqual(got, [1, 2], "the healthy run is stored and delivered");
    assert.deepEqual(goneGot, [], "nothing unstored is delivered");
    assert.deepEqual(dropped, [["run_gone", 1]]);
    assert.equal(errors.length, 0, "reported once, through onDropped, not also as a commit error");
    assert.equal(writer.pendingCount, 0, "no endless retry of the bad run");
    ok.append(log("c"));
    await turn();
    assert.deepEqual(got, [1, 2, 3]);
  });
});

describe("replay of large events", () => {
  test("a page of huge events is delivered in chunks of bounded size, all events in order", async () => {
    const { channel } = setup();
    const big = "x".repeat(1024 * 1024);
    for (let i = 0; i < 10; i++) channel.append(log(big + i));
    channel.append(completed);
    await turn();
    const sizes: number[] = [];
    const ids: number[] = [];
    let ended = false;
    channel.subscribe(0, {
      write: (c) => (sizes.push(c.text.length), ids.push(...c.events.map((e) => e.id)), true),
      lagged: () => {},
      end: () => (ended = true),
    });
    assert.deepEqual(ids, range(1, 11));
    assert.ok(sizes.length >= 3, `split into ${sizes.length} chunks`);
    for (const n of sizes) assert.ok(n < MAX_CHUNK_CHARS + 1024 * 1024 + 1000, `chunk of ${n} chars`);
    assert.equal(ended, true);
  });
});
