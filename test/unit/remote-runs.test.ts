/**
 * RemoteRuns (src/run/remote.ts), the API server's follower channels of runs on workers: a
 * follower made from a row read before the worker stored the terminal event still ends (whether
 * the run is over comes from the store), and a wake-up delivers what was stored after the cursor.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { RemoteRuns } from "../../src/run/remote.ts";
import type { RunEvent } from "../../src/protocol/events.ts";
import type { ClusterListeners } from "../../src/store/cluster.ts";

const ts = new Date().toISOString();
const ev = (id: number, type: string, runId = "run_x"): RunEvent => ({ id, run_id: runId, ts, type, data: {} }) as unknown as RunEvent;

function setup(stored: RunEvent[]) {
  let listeners: ClusterListeners = {};
  const events = {
    lastId: async () => stored.at(-1)?.id ?? 0,
    list: async (_id: string, after: number, limit: number) => stored.filter((e) => e.id > after).slice(0, limit),
  };
  const remote = new RemoteRuns({
    store: { events } as never,
    cluster: { listen: async (h: ClusterListeners) => ((listeners = h), async () => {}) } as never,
    writer: {} as never,
    bufferLimit: 8192,
    permissionTimeoutMs: () => 0,
    bus: { publish: () => {} },
    maxQueuedPerUser: () => 100,
    leaseMs: 15_000,
    log: console as never,
  });
  return { remote, notify: (runId: string, id: number) => listeners.events?.(runId, id) };
}

function sink() {
  const ids: number[] = [];
  let ended!: () => void;
  const done = new Promise<void>((r) => (ended = r));
  return { ids, done, s: { write: (c: { events: RunEvent[] }) => (ids.push(...c.events.map((e) => e.id)), true), lagged: () => {}, end: () => ended() } };
}

test("a follower made from a stale row (the run still `running`) ends: the terminal event is found in the store", { timeout: 10_000 }, async () => {
  const { remote } = setup([ev(1, "run.queued"), ev(2, "run.started"), ev(3, "run.completed")]);
  await remote.start();
  const channel = await remote.channelFor({ id: "run_x", status: "running" } as never);
  assert.equal(channel.terminalId, 3);
  const k = sink();
  channel.subscribe(0, k.s);
  await k.done;
  assert.deepEqual(k.ids, [1, 2, 3]);
  await remote.close();
});

test("a wake-up delivers the events stored after what the follower delivered, once, and the terminal one ends the stream", { timeout: 10_000 }, async () => {
  const stored = [ev(1, "run.queued"), ev(2, "run.started")];
  const { remote, notify } = setup(stored);
  await remote.start();
  const channel = await remote.channelFor({ id: "run_x", status: "running" } as never);
  assert.equal(channel.terminalId, null);
  const k = sink();
  channel.subscribe(0, k.s);
  stored.push(ev(3, "log"), ev(4, "log"));
  notify("run_x", 4);
  notify("run_x", 4); // a duplicate notification delivers nothing twice
  stored.push(ev(5, "run.completed"));
  notify("run_x", 5);
  await k.done;
  assert.deepEqual(k.ids, [1, 2, 3, 4, 5]);
  await remote.close();
});
