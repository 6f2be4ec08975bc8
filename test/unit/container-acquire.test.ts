/**
 * The one acquisition of a run's container (`acquireRunContainer`,
 * `src/container/acquire.ts`): a project run gets the project's container, a
 * per-run run a warm one from the pool when it fits (with `pool: true`
 * events), else a new one. Engine, pool and projects are fakes.
 */
import { test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { acquireRunContainer, type AcquireDeps, type RunContainerSpec } from "../../src/container/acquire.ts";
import type { WarmPool } from "../../src/container/pool.ts";
import type { ProjectContainers } from "../../src/container/projects.ts";
import type { ProjectSlot } from "../../src/container/project-slots.ts";
import type { ContainerRunEvent, RunContainer } from "../../src/container/run-container.ts";
import type { ContainerClient, ContainerHandle, ContainerSpec } from "../../src/container/types.ts";

function dirs(t: TestContext) {
  const base = mkdtempSync(path.join(tmpdir(), "or-acquire-"));
  t.after(() => rmSync(base, { recursive: true, force: true }));
  const homes = path.join(base, "homes");
  const workspace = path.join(base, "ws", "run_1");
  mkdirSync(path.join(homes, "run_1"), { recursive: true });
  mkdirSync(workspace, { recursive: true });
  return { home: { dir: path.join(homes, "run_1"), root: homes }, workspace };
}

function fakeHandle(id: string, removed: string[] = []): ContainerHandle {
  return { id, start: async () => {}, remove: async () => void removed.push(id) } as unknown as ContainerHandle;
}

function spec(t: TestContext, events: ContainerRunEvent[], over: Partial<RunContainerSpec> = {}): RunContainerSpec {
  const d = dirs(t);
  return { runId: "run_1", userId: "u1", image: "img:1", limits: { memoryBytes: 1 << 28, nanoCpus: 1e9, pidsLimit: 64 }, workspace: d.workspace, home: d.home, emit: (e) => events.push(e), ...over };
}

const noEngine = (): ContainerClient => {
  throw new Error("no engine call expected");
};

test("a project run gets the project's container, with its turn and cwd; the engine is not asked here", async (t) => {
  const calls: unknown[] = [];
  const slot = {} as ProjectSlot;
  const container = { perRun: false } as RunContainer;
  const projects = { acquireForRun: async (o: unknown) => (calls.push(o), container) } as unknown as ProjectContainers;
  const s = spec(t, [], { command: "claude", project: { projectId: "site", limitsAsked: true, slot } });
  const got = await acquireRunContainer(s, { client: noEngine, instance: "or-t", user: "1000:1000", projects });
  assert.equal(got, container);
  const { workspace, project, ...rest } = s;
  assert.deepEqual(calls, [{ ...rest, projectId: "site", limitsAsked: true, slot, cwd: workspace }]);
  await assert.rejects(acquireRunContainer(s, { client: noEngine, instance: "or-t", user: "1000:1000" }), /project containers/);
});

test("without a pool: a new per-run container with the server's user and network, events created/started", async (t) => {
  const events: ContainerRunEvent[] = [];
  const created: ContainerSpec[] = [];
  const client = { create: async (c: ContainerSpec) => (created.push(c), fakeHandle("new1")) } as unknown as ContainerClient;
  const s = spec(t, events);
  const got = await acquireRunContainer(s, { client: () => client, instance: "or-t", user: "1000:1000", network: "net1" });
  assert.equal(got.handle.id, "new1");
  assert.equal(got.perRun, true);
  assert.equal(created.length, 1);
  assert.equal(created[0]!.user, "1000:1000");
  assert.equal(created[0]!.network, "net1");
  assert.equal(created[0]!.workspace, s.workspace);
  assert.deepEqual(events.map((e) => [e.type, e.data]), [["container.created", { container_id: "new1" }], ["container.started", { container_id: "new1" }]]);
});

test("a warm container that fits is handed over with pool: true; none fits: a new one", async (t) => {
  const events: ContainerRunEvent[] = [];
  const warm = { handle: fakeHandle("warm1"), perRun: true } as RunContainer;
  const takes: unknown[] = [];
  let offer: RunContainer | undefined = warm;
  const pool = { take: async (r: unknown) => (takes.push(r), offer) } as unknown as WarmPool;
  const s = spec(t, events, { command: "x" });
  const deps: AcquireDeps = { client: noEngine, instance: "or-t", user: "1000:1000", pool };
  assert.equal(await acquireRunContainer(s, deps), warm);
  assert.deepEqual(takes, [{ image: "img:1", limits: s.limits, runId: "run_1", userId: "u1", workspace: s.workspace, home: s.home.dir, command: "x" }]);
  assert.deepEqual(events.map((e) => [e.type, e.data]), [["container.created", { container_id: "warm1", pool: true }], ["container.started", { container_id: "warm1", pool: true }]]);
  offer = undefined;
  const client = { create: async () => fakeHandle("cold1") } as unknown as ContainerClient;
  assert.equal((await acquireRunContainer(spec(t, []), { ...deps, client: () => client })).handle.id, "cold1");
});

test("a run that ended while the warm container was handed over removes it and throws the signal's reason", async (t) => {
  const removed: string[] = [];
  const ac = new AbortController();
  const pool = {
    take: async () => {
      ac.abort(new Error("run ended"));
      return { handle: fakeHandle("warm2", removed), perRun: true } as RunContainer;
    },
  } as unknown as WarmPool;
  await assert.rejects(acquireRunContainer(spec(t, [], { signal: ac.signal }), { client: noEngine, instance: "or-t", user: "1000:1000", pool }), /run ended/);
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(removed, ["warm2"]);
  const already = AbortSignal.abort(new Error("gone"));
  await assert.rejects(acquireRunContainer(spec(t, [], { signal: already }), { client: noEngine, instance: "or-t", user: "1000:1000", pool }), /gone/);
});
