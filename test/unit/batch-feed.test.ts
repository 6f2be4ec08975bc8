/**
 * The batch stream (src/run/batch-feed.ts) over an in-memory store: numbered and stored before delivery,
 * repeated statuses skipped, `batch.done` once when every run is terminal, replay then live with no gap and
 * no duplicate, recovery's statuses recorded, and the store's batch repository (migration 3).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { BatchFeed, allTerminal, countByStatus } from "../../src/run/batch-feed.ts";
import type { BatchEvent } from "../../src/protocol/batches.ts";
import type { RunStatus } from "../../src/protocol/events.ts";
import { openSqliteStore } from "../../src/store/sqlite.ts";
import type { Store } from "../../src/store/types.ts";

function setup(runs = 2): { store: Store; feed: BatchFeed; ids: string[]; userId: string } {
  const store = openSqliteStore({ file: ":memory:" });
  const user = store.users.create({ username: "u", password_hash: "x", role: "user" });
  let t = 0;
  const feed = new BatchFeed({ store, now: () => new Date(Date.UTC(2026, 0, 1, 0, 0, 0, t++)) });
  store.batches.insert({ id: "bat_1", user_id: user.id, created_at: new Date().toISOString() });
  const ids = Array.from({ length: runs }, (_, i) => `run_${i}`);
  for (const id of ids) store.runs.insert({ id, user_id: user.id, agent: "shell", status: "queued", input: { text: "x" }, metadata: {}, cwd: "/tmp", created_at: new Date().toISOString(), batch_id: "bat_1" });
  return { store, feed, ids, userId: user.id };
}

/** Sets the row's status (as the projection does) and tells the feed. */
function change(s: ReturnType<typeof setup>, id: string, status: RunStatus, prev: RunStatus | null): void {
  s.store.runs.update(id, { status });
  s.feed.onRunStatus("bat_1", id, status, prev);
}

const collect = () => {
  const got: BatchEvent[] = [];
  let ended = 0;
  return { got, ended: () => ended, sink: { event: (e: BatchEvent) => void got.push(e), end: () => void ended++ } };
};

test("the store's batch repository: runs in insertion order, the batch filter of runs.list, events by id", () => {
  const s = setup(3);
  assert.deepEqual(s.store.batches.runs("bat_1").map((r) => r.id), s.ids);
  assert.equal(s.store.batches.get("bat_1")!.user_id, s.userId);
  assert.equal(s.store.batches.get("nope"), undefined);
  assert.equal(s.store.runs.list({ batch_id: "bat_1", limit: 10 }).runs.length, 3);
  assert.equal(s.store.runs.list({ batch_id: "bat_2", limit: 10 }).runs.length, 0);
  assert.equal(s.store.runs.get(s.ids[0]!)!.batch_id, "bat_1");
  assert.equal(s.store.batches.lastEventId("bat_1"), 0);
  s.store.close();
});

test("status changes are numbered 1, 2, 3 …, stored, and batch.done follows the last terminal one, once", () => {
  const s = setup(2);
  const [a, b] = s.ids as [string, string];
  change(s, a, "queued", null);
  change(s, b, "queued", null);
  change(s, a, "preparing", "queued");
  s.feed.onRunStatus("bat_1", a, "preparing", "preparing"); // no change: not recorded
  change(s, a, "completed", "preparing");
  assert.equal(s.feed.isDone("bat_1"), false, "b is still queued");
  change(s, b, "cancelled", "queued");
  const evs = s.feed.readStored("bat_1", 0, 100);
  assert.deepEqual(evs.map((e) => e.id), [1, 2, 3, 4, 5, 6]);
  assert.deepEqual(evs.map((e) => (e.type === "run.status" ? `${e.data.run_id}:${e.data.status}` : e.type)), [`${a}:queued`, `${b}:queued`, `${a}:preparing`, `${a}:completed`, `${b}:cancelled`, "batch.done"]);
  const done = evs[5]!;
  assert.equal(done.type, "batch.done");
  if (done.type === "batch.done") assert.deepEqual({ completed: done.data.counts.completed, cancelled: done.data.counts.cancelled, queued: done.data.counts.queued }, { completed: 1, cancelled: 1, queued: 0 });
  assert.equal(s.feed.isDone("bat_1"), true);
  s.feed.onRunStatus("bat_1", b, "failed", "cancelled"); // after done: nothing more
  assert.equal(s.feed.lastId("bat_1"), 6);
  s.store.close();
});

test("a subscription replays after its cursor, then follows live without gap or duplicate, and ends after batch.done", () => {
  const s = setup(2);
  const [a, b] = s.ids as [string, string];
  change(s, a, "queued", null);
  change(s, b, "queued", null);
  change(s, a, "running", "queued");
  const c = collect();
  const detach = s.feed.subscribe("bat_1", 1, c.sink);
  assert.deepEqual(c.got.map((e) => e.id), [2, 3], "replayed after 1");
  change(s, a, "completed", "running");
  change(s, b, "failed", "queued");
  assert.deepEqual(c.got.map((e) => e.id), [2, 3, 4, 5, 6]);
  assert.equal(c.got.at(-1)!.type, "batch.done");
  assert.equal(c.ended(), 1);
  detach();
  const late = collect();
  s.feed.subscribe("bat_1", 4, late.sink);
  assert.deepEqual(late.got.map((e) => e.id), [5, 6], "a done batch replays and ends at once");
  assert.equal(late.ended(), 1);
  s.store.close();
});

test("a detached subscriber gets nothing more; closeAll ends the rest", () => {
  const s = setup(1);
  const [a] = s.ids as [string];
  const one = collect();
  const two = collect();
  const detach = s.feed.subscribe("bat_1", 0, one.sink);
  s.feed.subscribe("bat_1", 0, two.sink);
  change(s, a, "queued", null);
  detach();
  change(s, a, "running", "queued");
  assert.deepEqual(one.got.map((e) => e.id), [1]);
  assert.deepEqual(two.got.map((e) => e.id), [1, 2]);
  s.feed.closeAll();
  assert.equal(two.ended(), 1);
  assert.equal(one.ended(), 0);
  s.store.close();
});

test("runs ended by recovery are recorded with their last streamed status as prev, and finish the batch", () => {
  const s = setup(2);
  const [a, b] = s.ids as [string, string];
  change(s, a, "queued", null);
  change(s, b, "queued", null);
  change(s, a, "running", "queued");
  s.store.runs.update(a, { status: "failed" }); // recovery writes the rows directly
  s.store.runs.update(b, { status: "failed" });
  const fresh = new BatchFeed({ store: s.store }); // a new process
  fresh.recordRecovered([a, b, "run_not_in_a_batch"]);
  const evs = fresh.readStored("bat_1", 3, 10);
  assert.deepEqual(evs.map((e) => (e.type === "run.status" ? [e.data.run_id, e.data.prev, e.data.status] : e.type)), [[a, "running", "failed"], [b, "queued", "failed"], "batch.done"]);
  s.store.close();
});

test("counts name every status; an empty list is all terminal", () => {
  const counts = countByStatus([{ status: "queued" }, { status: "queued" }, { status: "timed_out" }]);
  assert.equal(counts.queued, 2);
  assert.equal(counts.timed_out, 1);
  assert.equal(counts.running, 0);
  assert.equal(allTerminal([]), true);
  assert.equal(allTerminal([{ status: "completed" }, { status: "waiting" }]), false);
});

test("a tracked batch (created by this process) is done when each of its runs has had a terminal status", () => {
  const s = setup(3);
  const [a, b, c] = s.ids as [string, string, string];
  s.feed.track("bat_1", s.ids);
  for (const id of s.ids) change(s, id, "queued", null);
  change(s, a, "completed", "queued");
  change(s, b, "failed", "queued");
  assert.equal(s.feed.isDone("bat_1"), false);
  change(s, c, "timed_out", "queued");
  assert.equal(s.feed.isDone("bat_1"), true);
  const done = s.feed.readStored("bat_1", 0, 100).at(-1)!;
  assert.equal(done.type, "batch.done");
  if (done.type === "batch.done") assert.deepEqual([done.data.counts.completed, done.data.counts.failed, done.data.counts.timed_out], [1, 1, 1]);
  s.store.close();
});
