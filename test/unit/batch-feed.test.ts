/**
 * The batch stream (src/run/batch-feed.ts) over the real SQLite store (asynchronous): numbered and stored
 * before delivery, repeated statuses skipped, `batch.done` once when every run is terminal, replay then live
 * with no gap and no duplicate (also when subscriptions and status changes are queued together), the sink
 * never called before `subscribe` returns, store errors reported without stopping the feed, recovery's
 * statuses recorded, and the store's batch repository (migration 3). Tests wait on `feed.idle()`.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { BatchFeed, allTerminal, countByStatus } from "../../src/run/batch-feed.ts";
import type { BatchEvent } from "../../src/protocol/batches.ts";
import type { RunStatus } from "../../src/protocol/events.ts";
import { openSqliteStore } from "../../src/store/sqlite.ts";
import type { Store } from "../../src/store/types.ts";

interface Setup {
  store: Store;
  feed: BatchFeed;
  ids: string[];
  userId: string;
  errors: unknown[];
}

async function setup(runs = 2, wrap: (s: Store) => Store = (s) => s): Promise<Setup> {
  const store = openSqliteStore({ file: ":memory:" });
  const user = await store.users.create({ username: "u", password_hash: "x", role: "user" });
  let t = 0;
  const errors: unknown[] = [];
  const feed = new BatchFeed({ store: wrap(store), now: () => new Date(Date.UTC(2026, 0, 1, 0, 0, 0, t++)), onError: (e) => errors.push(e) });
  await store.batches.insert({ id: "bat_1", user_id: user.id, created_at: new Date().toISOString() });
  const ids = Array.from({ length: runs }, (_, i) => `run_${i}`);
  for (const id of ids) await store.runs.insert({ id, user_id: user.id, agent: "shell", status: "queued", input: { text: "x" }, metadata: {}, cwd: "/tmp", created_at: new Date().toISOString(), batch_id: "bat_1" });
  return { store, feed, ids, userId: user.id, errors };
}

/** Sets the row's status (as the projection does, committed first), tells the feed, and waits until it is handled. */
async function change(s: Setup, id: string, status: RunStatus, prev: RunStatus | null): Promise<void> {
  await s.store.runs.update(id, { status });
  s.feed.onRunStatus("bat_1", id, status, prev);
  await s.feed.idle();
}

const collect = () => {
  const got: BatchEvent[] = [];
  let ended = 0;
  return { got, ids: () => got.map((e) => e.id), ended: () => ended, sink: { event: (e: BatchEvent) => void got.push(e), end: () => void ended++ } };
};

const label = (e: BatchEvent) => (e.type === "run.status" ? `${e.data.run_id}:${e.data.status}` : e.type);

test("the store's batch repository: runs in insertion order, the batch filter of runs.list, events by id", async () => {
  const s = await setup(3);
  assert.deepEqual((await s.store.batches.runs("bat_1")).map((r) => r.id), s.ids);
  assert.equal((await s.store.batches.get("bat_1"))!.user_id, s.userId);
  assert.equal(await s.store.batches.get("nope"), undefined);
  assert.equal((await s.store.runs.list({ batch_id: "bat_1", limit: 10 })).runs.length, 3);
  assert.equal((await s.store.runs.list({ batch_id: "bat_2", limit: 10 })).runs.length, 0);
  assert.equal((await s.store.runs.get(s.ids[0]!))!.batch_id, "bat_1");
  assert.equal(await s.store.batches.lastEventId("bat_1"), 0);
  await s.store.close();
});

test("status changes are numbered 1, 2, 3 …, stored, and batch.done follows the last terminal one, once", async () => {
  const s = await setup(2);
  const [a, b] = s.ids as [string, string];
  await change(s, a, "queued", null);
  await change(s, b, "queued", null);
  await change(s, a, "preparing", "queued");
  s.feed.onRunStatus("bat_1", a, "preparing", "preparing"); // no change: not recorded
  await change(s, a, "completed", "preparing");
  assert.equal(await s.feed.isDone("bat_1"), false, "b is still queued");
  assert.equal(await s.feed.lastId("bat_1"), 4);
  await change(s, b, "cancelled", "queued");
  const evs = await s.feed.readStored("bat_1", 0, 100);
  assert.deepEqual(evs.map((e) => e.id), [1, 2, 3, 4, 5, 6]);
  assert.deepEqual(evs.map(label), [`${a}:queued`, `${b}:queued`, `${a}:preparing`, `${a}:completed`, `${b}:cancelled`, "batch.done"]);
  assert.deepEqual(evs.map((e) => e.ts), [0, 1, 2, 3, 4, 5].map((ms) => new Date(Date.UTC(2026, 0, 1, 0, 0, 0, ms)).toISOString()), "stamped by the feed's clock, in order");
  const done = evs[5]!;
  assert.equal(done.type, "batch.done");
  if (done.type === "batch.done") assert.deepEqual({ completed: done.data.counts.completed, cancelled: done.data.counts.cancelled, queued: done.data.counts.queued }, { completed: 1, cancelled: 1, queued: 0 });
  assert.equal(await s.feed.isDone("bat_1"), true);
  s.feed.onRunStatus("bat_1", b, "failed", "cancelled"); // after done: nothing more
  await s.feed.idle();
  assert.equal(await s.feed.lastId("bat_1"), 6);
  assert.equal((await s.feed.readStored("bat_1", 0, 100)).length, 6);
  assert.deepEqual(s.errors, []);
  await s.store.close();
});

test("onRunStatus returns at once; its events are stored in call order once the queue has run", async () => {
  const s = await setup(2);
  const [a, b] = s.ids as [string, string];
  s.feed.onRunStatus("bat_1", a, "queued", null);
  s.feed.onRunStatus("bat_1", b, "queued", null);
  s.feed.onRunStatus("bat_1", b, "running", "queued");
  s.feed.onRunStatus("bat_1", a, "running", "queued");
  assert.equal(await s.store.batches.lastEventId("bat_1"), 0, "nothing stored synchronously");
  await s.feed.idle();
  assert.deepEqual((await s.feed.readStored("bat_1", 0, 10)).map((e) => `${e.id} ${label(e)}`), [`1 ${a}:queued`, `2 ${b}:queued`, `3 ${b}:running`, `4 ${a}:running`]);
  await s.store.close();
});

test("a subscription replays after its cursor, then follows live without gap or duplicate, and ends after batch.done", async () => {
  const s = await setup(2);
  const [a, b] = s.ids as [string, string];
  await change(s, a, "queued", null);
  await change(s, b, "queued", null);
  await change(s, a, "running", "queued");
  const c = collect();
  const detach = s.feed.subscribe("bat_1", 1, c.sink);
  assert.equal(typeof detach, "function", "returned synchronously");
  assert.deepEqual([c.ids(), c.ended()], [[], 0], "the sink is not called before subscribe returns");
  await s.feed.idle();
  assert.deepEqual(c.ids(), [2, 3], "replayed after 1");
  await change(s, a, "completed", "running");
  await change(s, b, "failed", "queued");
  assert.deepEqual(c.ids(), [2, 3, 4, 5, 6]);
  assert.equal(c.got.at(-1)!.type, "batch.done");
  assert.equal(c.ended(), 1);
  detach();
  const late = collect();
  s.feed.subscribe("bat_1", 4, late.sink);
  assert.deepEqual(late.ids(), []);
  await s.feed.idle();
  assert.deepEqual(late.ids(), [5, 6], "a done batch replays and ends at once");
  assert.equal(late.ended(), 1);
  await s.store.close();
});

test("subscriptions queued among status changes each get exactly after+1..done, in order, once", async () => {
  const s = await setup(3);
  const [a, b, c] = s.ids as [string, string, string];
  s.feed.track("bat_1", s.ids);
  const readers: Array<{ after: number; r: ReturnType<typeof collect> }> = [];
  const sub = (after: number) => {
    const r = collect();
    s.feed.subscribe("bat_1", after, r.sink);
    readers.push({ after, r });
  };
  // rows written first (committed before their status is published), then statuses and subscriptions, unawaited
  sub(0);
  for (const id of s.ids) s.feed.onRunStatus("bat_1", id, "queued", null);
  sub(0);
  sub(2);
  await s.store.runs.update(a, { status: "running" });
  s.feed.onRunStatus("bat_1", a, "running", "queued");
  sub(1);
  sub(4);
  await s.store.runs.update(a, { status: "completed" });
  await s.store.runs.update(b, { status: "failed" });
  s.feed.onRunStatus("bat_1", a, "completed", "running");
  sub(3);
  s.feed.onRunStatus("bat_1", b, "failed", "queued");
  await s.store.runs.update(c, { status: "cancelled" });
  s.feed.onRunStatus("bat_1", c, "cancelled", "queued");
  sub(5);
  await s.feed.idle();
  const all = await s.feed.readStored("bat_1", 0, 100);
  assert.deepEqual(all.map(label), [`${a}:queued`, `${b}:queued`, `${c}:queued`, `${a}:running`, `${a}:completed`, `${b}:failed`, `${c}:cancelled`, "batch.done"]);
  const last = all.length;
  for (const { after, r } of readers) {
    const want = Array.from({ length: Math.max(0, last - after) }, (_, i) => after + 1 + i);
    assert.deepEqual(r.ids(), want, `after=${after}`);
    assert.equal(r.ended(), 1, `after=${after}: ended once`);
  }
  assert.deepEqual(s.errors, []);
  await s.store.close();
});

test("a detached subscriber gets nothing more (also when detached before its replay ran); closeAll ends the rest", async () => {
  const s = await setup(1);
  const [a] = s.ids as [string];
  const one = collect();
  const two = collect();
  const never = collect();
  const detach = s.feed.subscribe("bat_1", 0, one.sink);
  s.feed.subscribe("bat_1", 0, two.sink);
  s.feed.subscribe("bat_1", 0, never.sink)(); // detached at once
  await change(s, a, "queued", null);
  detach();
  await change(s, a, "running", "queued");
  assert.deepEqual(one.ids(), [1]);
  assert.deepEqual(two.ids(), [1, 2]);
  assert.deepEqual([never.ids(), never.ended()], [[], 0]);
  s.feed.closeAll();
  assert.equal(two.ended(), 1);
  assert.equal(one.ended(), 0);
  await change(s, a, "completed", "running");
  assert.deepEqual(two.ids(), [1, 2], "nothing after closeAll");
  assert.equal(two.ended(), 1);
  await s.store.close();
});

test(
  "a subscription whose replay is still queued when closeAll runs is ended too",
  async () => {
    const s = await setup(1);
    const [a] = s.ids as [string];
    const r = collect();
    s.feed.subscribe("bat_1", 0, r.sink);
    s.feed.closeAll(); // shutdown, before the subscription's replay task ran
    await s.feed.idle();
    await change(s, a, "queued", null);
    try {
      assert.equal(r.ended(), 1, "ended by closeAll");
      assert.deepEqual(r.ids(), [], "nothing delivered after closeAll");
    } finally {
      await s.store.close();
    }
  },
);

test("a store error while replaying ends the sink; an error storing an event is told to onError and the feed goes on", async () => {
  let failList = false;
  let failAppend = false;
  const s = await setup(1, (store) => ({
    ...store,
    batches: {
      ...store.batches,
      listEvents: (...args) => (failList ? Promise.reject(new Error("read failed")) : store.batches.listEvents(...args)),
      appendEvent: (e) => (failAppend ? ((failAppend = false), Promise.reject(new Error("write failed"))) : store.batches.appendEvent(e)),
    },
  }));
  const [a] = s.ids as [string];
  await change(s, a, "queued", null);
  failList = true;
  const broken = collect();
  s.feed.subscribe("bat_1", 0, broken.sink);
  await s.feed.idle();
  assert.deepEqual([broken.ids(), broken.ended()], [[], 1], "ended, nothing delivered");
  assert.deepEqual(s.errors.map((e) => (e as Error).message), ["read failed"]);
  failList = false;

  const live = collect();
  s.feed.subscribe("bat_1", 0, live.sink);
  failAppend = true;
  await change(s, a, "running", "queued"); // not stored
  assert.deepEqual(s.errors.map((e) => (e as Error).message), ["read failed", "write failed"]);
  await change(s, a, "completed", "running");
  const evs = await s.feed.readStored("bat_1", 0, 10);
  assert.deepEqual(evs.map((e) => `${e.id} ${label(e)}`), [`1 ${a}:queued`, `2 ${a}:completed`, "3 batch.done"], "numbered on without a gap");
  assert.deepEqual(live.ids(), [1, 2, 3], "only stored events are delivered");
  assert.equal(live.ended(), 1);
  assert.equal(broken.ended(), 1, "not ended twice");
  await s.store.close();
});

test("runs ended by recovery are recorded with their last streamed status as prev, and finish the batch", async () => {
  const s = await setup(2);
  const [a, b] = s.ids as [string, string];
  await change(s, a, "queued", null);
  await change(s, b, "queued", null);
  await change(s, a, "running", "queued");
  await s.store.runs.update(a, { status: "failed" }); // recovery writes the rows directly
  await s.store.runs.update(b, { status: "failed" });
  const fresh = new BatchFeed({ store: s.store }); // a new process
  const recorded = fresh.recordRecovered([a, b, "run_not_in_a_batch"]);
  assert.equal(await s.store.batches.lastEventId("bat_1"), 3, "nothing stored synchronously");
  await recorded; // resolves once stored
  const evs = await fresh.readStored("bat_1", 3, 10);
  assert.deepEqual(evs.map((e) => (e.type === "run.status" ? [e.data.run_id, e.data.prev, e.data.status] : e.type)), [[a, "running", "failed"], [b, "queued", "failed"], "batch.done"]);
  assert.deepEqual(evs.map((e) => e.id), [4, 5, 6]);
  assert.equal(await fresh.isDone("bat_1"), true);
  await fresh.recordRecovered([a, b]); // again (a second start): nothing more, the batch is done
  assert.equal(await fresh.lastId("bat_1"), 6);
  await s.store.close();
});

test("counts name every status; an empty list is all terminal", () => {
  const counts = countByStatus([{ status: "queued" }, { status: "queued" }, { status: "timed_out" }]);
  assert.equal(counts.queued, 2);
  assert.equal(counts.timed_out, 1);
  assert.equal(counts.running, 0);
  assert.equal(allTerminal([]), true);
  assert.equal(allTerminal([{ status: "completed" }, { status: "waiting" }]), false);
});

test("a tracked batch (created by this process) is done when each of its runs has had a terminal status", async () => {
  const s = await setup(3);
  const [a, b, c] = s.ids as [string, string, string];
  s.feed.track("bat_1", s.ids);
  for (const id of s.ids) await change(s, id, "queued", null);
  await change(s, a, "completed", "queued");
  await change(s, b, "failed", "queued");
  assert.equal(await s.feed.isDone("bat_1"), false);
  await change(s, c, "timed_out", "queued");
  assert.equal(await s.feed.isDone("bat_1"), true);
  const done = (await s.feed.readStored("bat_1", 0, 100)).at(-1)!;
  assert.equal(done.type, "batch.done");
  if (done.type === "batch.done") assert.deepEqual([done.data.counts.completed, done.data.counts.failed, done.data.counts.timed_out], [1, 1, 1]);
  await s.store.close();
});
