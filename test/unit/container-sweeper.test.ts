/**
 * The sweeper's policy (src/container/sweeper.ts) with an in-memory fake
 * ContainerClient and an injected clock; the real-engine round trip is in
 * test/e2e/container.test.ts.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { LABEL } from "../../src/container/labels.ts";
import { ContainerSweeper } from "../../src/container/sweeper.ts";
import type { ContainerClient, ContainerHandle, ContainerSummary } from "../../src/container/types.ts";

function fakeClient(containers: ContainerSummary[], failRemove = new Set<string>()): ContainerClient & { removed: string[] } {
  const removed: string[] = [];
  const matches = (c: ContainerSummary, labels: Record<string, string | true>) =>
    Object.entries(labels).every(([k, v]) => (v === true ? k in c.labels : c.labels[k] === v));
  const handle = (id: string) =>
    ({
      id,
      async remove() {
        if (failRemove.has(id)) throw new Error("device busy");
        removed.push(id);
        const i = containers.findIndex((c) => c.id === id);
        if (i >= 0) containers.splice(i, 1);
      },
    }) as unknown as ContainerHandle;
  return {
    engine: "fake://",
    removed,
    ping: async () => {},
    create: async () => assert.fail("not used"),
    get: handle,
    list: async (labels) => containers.filter((c) => matches(c, labels)),
    imageInfo: async () => undefined,
    buildImage: async () => assert.fail("not used"),
  };
}

const c = (id: string, instance: string, kind: string, state = "running"): ContainerSummary => ({
  id,
  name: id,
  image: "img",
  state,
  labels: { [LABEL.instance]: instance, [LABEL.kind]: kind },
  createdAt: 0,
});

test("sweepOrphans removes this instance's containers except adopted ones; failures are reported, not thrown", async () => {
  const client = fakeClient([c("r1", "me", "run"), c("p1", "me", "project"), c("p2", "me", "project", "exited"), c("pool1", "me", "pool"), c("x1", "other", "run"), c("bad", "me", "run")], new Set(["bad"]));
  const s = new ContainerSweeper({ client, instance: "me" });
  const r = await s.sweepOrphans({ adopt: (x) => x.labels[LABEL.kind] === "project" && x.state === "running" });
  assert.deepEqual(client.removed.sort(), ["p2", "pool1", "r1"]);
  assert.deepEqual(r.adopted.map((x) => x.id), ["p1"]);
  assert.deepEqual(r.failed.map((f) => [f.container.id, f.error]), [["bad", "device busy"]]);
});

test("sweepIdle: first sighting starts the idle clock, holds protect, release touches, touch resets", async () => {
  let now = 0;
  const client = fakeClient([c("p1", "me", "project"), c("p2", "me", "project"), c("r1", "me", "run")]);
  const s = new ContainerSweeper({ client, instance: "me", idleMs: 1000, now: () => now });
  assert.deepEqual(await s.sweepIdle(), []); // first sighting of p1 and p2 at t=0
  const release = s.hold("p1");
  now = 1000;
  assert.deepEqual((await s.sweepIdle()).map((x) => x.id), ["p2"], "p2 idle for 1000 ms; p1 held; run containers are not idle-swept");
  now = 5000;
  assert.deepEqual(await s.sweepIdle(), []);
  release();
  release(); // idempotent
  now = 5999;
  assert.deepEqual(await s.sweepIdle(), []);
  s.touch("p1");
  now = 6998;
  assert.deepEqual(await s.sweepIdle(), []);
  now = 6999;
  assert.deepEqual((await s.sweepIdle()).map((x) => x.id), ["p1"]);
  assert.deepEqual(client.removed, ["p2", "p1"]);
});

test("concurrent sweeps run one at a time; close waits and is idempotent", async () => {
  const client = fakeClient([c("r1", "me", "run"), c("r2", "me", "run")]);
  const s = new ContainerSweeper({ client, instance: "me", intervalMs: 10 });
  s.start();
  const [a, b] = await Promise.all([s.sweepOrphans(), s.sweepOrphans()]);
  assert.equal(a.removed.length + b.removed.length, 2);
  assert.deepEqual(client.removed.sort(), ["r1", "r2"]);
  await s.close();
  await s.close();
});
