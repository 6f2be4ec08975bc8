import { test } from "node:test";
import assert from "node:assert/strict";
import { AdmissionQueue } from "../../src/run/admission.ts";

test("FIFO within the global and per-user limits; a user at their limit does not block others", () => {
  const q = new AdmissionQueue({ maxRunning: 3, maxRunningPerUser: 2 });
  for (const [id, u] of [["a1", "a"], ["a2", "a"], ["a3", "a"], ["b1", "b"], ["b2", "b"]] as const) q.enqueue(id, u);
  assert.equal(q.queuedFor("a"), 3);
  assert.deepEqual(q.admit().map((e) => e.id), ["a1", "a2", "b1"]);
  assert.equal(q.running, 3);
  assert.deepEqual(q.admit(), [], "global limit reached");
  q.release("a");
  assert.deepEqual(q.admit().map((e) => e.id), ["a3"]);
  q.release("b");
  assert.deepEqual(q.admit().map((e) => e.id), ["b2"]);
  assert.equal(q.queuedFor("a"), 0);
  assert.equal(q.queuedFor("b"), 0);
});

test("remove and drain take runs out of the queue and its per-user counts", () => {
  const q = new AdmissionQueue({ maxRunning: 1, maxRunningPerUser: 1 });
  q.enqueue("x", "u");
  q.enqueue("y", "u");
  q.enqueue("z", "v");
  assert.equal(q.remove("y"), true);
  assert.equal(q.remove("y"), false);
  assert.equal(q.queuedFor("u"), 1);
  assert.deepEqual(q.drain(), ["x", "z"]);
  assert.equal(q.queuedFor("u"), 0);
  assert.deepEqual(q.admit(), []);
});
