/**
 * Admission by priority (src/run/admission.ts): order by effective priority then FIFO, the per-user and
 * global limits, live limits, and the anti-starvation bound of priority aging, on an injected clock.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { AdmissionQueue, RUN_PRIORITIES, type AdmissionLimits, type RunPriority } from "../../src/run/admission.ts";

function clock(start = 0) {
  let t = start;
  return { now: () => t, advance: (ms: number) => void (t += ms), set: (ms: number) => void (t = ms) };
}

/** Admits one run at a time (global limit 1), releasing it before the next. */
function drainOneByOne(q: AdmissionQueue): string[] {
  const out: string[] = [];
  for (let e = q.admit(); e.length > 0; e = q.admit()) {
    out.push(...e.map((x) => x.id));
    for (const x of e) q.release(x.userId);
  }
  return out;
}

test("higher priority first, FIFO within a priority; the default is normal", () => {
  const c = clock();
  const q = new AdmissionQueue({ maxRunning: 1, maxRunningPerUser: 10 }, c.now);
  q.enqueue("low1", "u", "low");
  q.enqueue("n1", "u");
  q.enqueue("high1", "u", "high");
  q.enqueue("crit1", "u", "critical");
  q.enqueue("n2", "u", "normal");
  q.enqueue("high2", "u", "high");
  q.enqueue("low2", "u", "low");
  assert.deepEqual(q.order(), ["crit1", "high1", "high2", "n1", "n2", "low1", "low2"]);
  assert.deepEqual(drainOneByOne(q), ["crit1", "high1", "high2", "n1", "n2", "low1", "low2"]);
});

test("enqueue answers the position in the admission order", () => {
  const q = new AdmissionQueue({ maxRunning: 1, maxRunningPerUser: 1 }, () => 0);
  assert.equal(q.enqueue("a", "u", "normal"), 0);
  assert.equal(q.enqueue("b", "u", "low"), 1);
  assert.equal(q.enqueue("c", "u", "critical"), 0);
  assert.equal(q.enqueue("d", "u", "normal"), 2);
});

test("the per-user limit still holds: a high run of a user at their limit does not block another user's low run", () => {
  const q = new AdmissionQueue({ maxRunning: 3, maxRunningPerUser: 1 }, () => 0);
  q.enqueue("a-high1", "a", "high");
  q.enqueue("a-high2", "a", "critical");
  q.enqueue("b-low", "b", "low");
  const first = q.admit().map((e) => e.id);
  assert.deepEqual(first, ["a-high2", "b-low"], "one of a's runs (the critical one) and b's low run; a's second waits");
  assert.equal(q.running, 2);
  assert.deepEqual(q.admit(), [], "a is at their limit");
  q.release("a");
  assert.deepEqual(q.admit().map((e) => e.id), ["a-high1"]);
});

test("the global limit holds across priorities, and the limits are read at every admission (live change)", () => {
  const limits: AdmissionLimits = { maxRunning: 1, maxRunningPerUser: 10 };
  const q = new AdmissionQueue(() => limits, () => 0);
  for (const id of ["r1", "r2", "r3", "r4"]) q.enqueue(id, "u", "critical");
  assert.deepEqual(q.admit().map((e) => e.id), ["r1"]);
  assert.deepEqual(q.admit(), []);
  limits.maxRunning = 3;
  assert.deepEqual(q.admit().map((e) => e.id), ["r2", "r3"]);
  assert.equal(q.running, 3);
});

test("remove (cancel of a queued run) and drain work with priorities", () => {
  const q = new AdmissionQueue({ maxRunning: 1, maxRunningPerUser: 1 }, () => 0);
  q.enqueue("x", "u", "low");
  q.enqueue("y", "u", "critical");
  q.enqueue("z", "v", "high");
  assert.equal(q.remove("y"), true);
  assert.equal(q.remove("y"), false);
  assert.equal(q.queuedFor("u"), 1);
  assert.deepEqual(q.order(), ["z", "x"]);
  assert.deepEqual(q.drain(), ["x", "z"]);
  assert.equal(q.queued, 0);
});

test("aging: a waiting run gains one level per agingMs, up to critical", () => {
  const c = clock();
  const q = new AdmissionQueue({ maxRunning: 1, maxRunningPerUser: 10, agingMs: 1000 }, c.now);
  const low = { priority: "low" as RunPriority, enqueuedAt: 0 };
  assert.deepEqual([0, 999, 1000, 2500, 3000, 99_000].map((t) => q.effectiveLevel(low, t)), [0, 0, 1, 2, 3, 3]);
  q.enqueue("old-low", "u", "low");
  c.set(1500);
  q.enqueue("new-normal", "u", "normal");
  assert.deepEqual(q.order(), ["old-low", "new-normal"], "at 1.5 s the low run is normal too, and older");
  c.set(1999);
  q.enqueue("new-high", "u", "high");
  assert.deepEqual(q.order(), ["new-high", "old-low", "new-normal"]);
  c.set(2000);
  assert.deepEqual(q.order(), ["old-low", "new-high", "new-normal"], "at 2 s the low run is high, and older than new-high");
});

test("without aging a low run starves behind a steady stream of critical runs; with aging it starts after levels × agingMs", () => {
  const STEP = 100;
  for (const agingMs of [0, 1000]) {
    const c = clock();
    const q = new AdmissionQueue({ maxRunning: 1, maxRunningPerUser: 100, agingMs }, c.now);
    q.enqueue("low", "u", "low");
    let startedAt: number | undefined;
    for (let k = 0; k < 1000 && startedAt === undefined; k++) {
      q.enqueue(`crit${k}`, "u", "critical"); // a new critical run every step
      for (const e of q.admit()) {
        if (e.id === "low") startedAt = c.now();
        q.release(e.userId);
      }
      c.advance(STEP);
    }
    if (agingMs === 0) assert.equal(startedAt, undefined, "no aging: starved for 1000 admissions");
    else assert.equal(startedAt, 3 * agingMs, "low -> critical after 3 levels × 1 s, then it is the oldest critical");
  }
});

test("anti-starvation bound: every run starts within (3 - level) × agingMs + one step + one step per run queued before it", () => {
  // A seeded pseudo-random load: 0-3 arrivals per step of every priority and user, one admission per step.
  let seed = 42;
  const rand = () => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648);
  const STEP = 50;
  const AGING = 400;
  const c = clock();
  const q = new AdmissionQueue({ maxRunning: 1, maxRunningPerUser: 1000, agingMs: AGING }, c.now);
  const arrived = new Map<string, { at: number; level: number; ahead: number }>();
  let n = 0;
  let worstSlack = Infinity;
  for (let step = 0; step < 4000; step++) {
    const arrivals = step < 3000 ? Math.floor(rand() * 3.2) : 0; // a bit more than one per step on average, then the queue drains
    for (let i = 0; i < arrivals; i++) {
      const priority = RUN_PRIORITIES[Math.floor(rand() * 4)]!;
      const id = `r${n++}`;
      arrived.set(id, { at: c.now(), level: RUN_PRIORITIES.indexOf(priority), ahead: q.queued });
      q.enqueue(id, `u${Math.floor(rand() * 5)}`, priority);
    }
    for (const e of q.admit()) {
      const a = arrived.get(e.id)!;
      const bound = (3 - a.level) * AGING + STEP + a.ahead * STEP;
      const waited = c.now() - a.at;
      assert.ok(waited <= bound, `${e.id} (${RUN_PRIORITIES[a.level]}) waited ${waited} ms, bound ${bound} ms`);
      worstSlack = Math.min(worstSlack, bound - waited);
      arrived.delete(e.id);
      q.release(e.userId);
    }
    c.advance(STEP);
  }
  assert.equal(q.queued, 0, "every run was admitted");
  assert.equal(arrived.size, 0);
  assert.ok(n > 3000, `load of ${n} runs`);
  assert.ok(worstSlack < 10 * STEP, `the bound is tight enough to matter (worst slack ${worstSlack} ms)`);
});
