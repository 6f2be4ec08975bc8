/**
 * The warm pool end to end (`docker.warm_pool`, issue 5): the real server
 * keeps 2 started containers per image; a per-run run with the default limits
 * takes one (no container is created for it: its container existed, labelled
 * `pool`, before the run was posted), its workspace is the run's own
 * directory on the host, the container is removed after the run and the pool
 * is refilled; runs with other limits get a cold container; a non-admin sees
 * no warm containers; shutdown removes the pool.
 *
 * With no engine reachable these tests FAIL (start one with
 * scripts/ci-docker.sh); OPENRUNNER_SKIP_DOCKER=1 skips them visibly.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { buildAgentImage } from "../../src/container/image.ts";
import { LABEL } from "../../src/container/labels.ts";
import type { ContainerClient, ContainerSummary } from "../../src/container/types.ts";
import { connectDocker } from "../helpers/docker.ts";
import { spawnServer, type TestServer } from "../helpers/spawn-server.ts";
import { allEvents as readEvents, createRun as postRun, type Ev } from "../helpers/events.ts";
import { waitFor } from "../helpers/processes.ts";

const SKIP = process.env.OPENRUNNER_SKIP_DOCKER === "1";
const IMAGE = process.env.OPENRUNNER_TEST_IMAGE ?? "openrunner-agent:latest";
if (SKIP) console.warn("# docker warm pool e2e tests SKIPPED: OPENRUNNER_SKIP_DOCKER=1");
const DOCKER_ENV: Record<string, string> = process.env.DOCKER_HOST ? { DOCKER_HOST: process.env.DOCKER_HOST } : {};

const createRun = (s: TestServer, token: string, text: string, metadata: Record<string, unknown> = {}) => postRun(s, token, text, { agent_type: "shell", isolation: "docker", ...metadata });
const allEvents = (s: TestServer, token: string, runId: string) => readEvents(s, token, runId, 60_000);
const json = async (res: Response) => (await res.json()) as Record<string, any>;

/** Polls `check` every 200 ms until it returns true (bounded; a correctness wait, not a timing assert). */
const eventually = (what: string, check: () => Promise<boolean>, maxMs = 30_000) => waitFor(check, maxMs, what, 200);

describe("docker warm pool end to end", { skip: SKIP ? "OPENRUNNER_SKIP_DOCKER=1" : false }, () => {
  let client: ContainerClient;
  let s: TestServer;
  let token: string;
  let instance: string;
  let cfgDir: string | undefined;
  const poolContainers = async (): Promise<ContainerSummary[]> => (await client.list({ [LABEL.instance]: instance, [LABEL.kind]: "pool" })).filter((c) => c.state === "running");

  before(async () => {
    client = await connectDocker();
    if (!(await client.imageInfo(IMAGE))) await buildAgentImage({ client, offline: true, tag: IMAGE });
    cfgDir = mkdtempSync(path.join(tmpdir(), "openrunner-pool-cfg-"));
    const cfg = path.join(cfgDir, "openrunner.yaml");
    writeFileSync(cfg, `docker:\n  warm_pool: 2\n  image: ${IMAGE}\n`);
    s = await spawnServer({ env: { OPENRUNNER_CONFIG: cfg, ...DOCKER_ENV } });
    token = await s.login();
    instance = readFileSync(path.join(s.dataDir, "instance-id"), "utf8").trim();
  });

  after(async () => {
    if (s) {
      await s.stop();
      for (const c of await client.list({ [LABEL.instance]: instance }).catch(() => [])) await client.get(c.id).remove();
      s.cleanup();
    }
    if (cfgDir) rmSync(cfgDir, { recursive: true, force: true });
  });

  test("a default run takes a warm container (created before the run), writes into its own workspace, and the pool is refilled", async () => {
    await eventually("2 warm containers", async () => (await poolContainers()).length === 2);
    // Running is not ready: the pool hands a container out once its launcher answers (the gauge counts those).
    await eventually("2 warm containers ready", async () => new RegExp(`^openrunner_warm_pool_ready\\{image="${IMAGE.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}"\\} 2$`, "m").test(await (await s.api("/metrics")).text()));
    const warmBefore = new Set((await poolContainers()).map((c) => c.id));
    const runId = await createRun(s, token, "pwd; id -u; echo pooled > out.txt; ls -A | wc -l");
    const events = await allEvents(s, token, runId);
    assert.equal(events.at(-1)!.type, "run.completed", JSON.stringify(events.at(-1)));
    const created = events.find((e) => e.type === "container.created")!;
    assert.equal(created.data.pool, true, "the run's container came from the pool");
    assert.ok(warmBefore.has(created.data.container_id), "it existed before the run was posted: no container was created for the run");
    assert.equal(events.find((e) => e.type === "container.started")!.data.pool, true);
    assert.deepEqual(events.filter((e) => e.type.startsWith("container.")).map((e) => e.type), ["container.created", "container.started", "container.stopped", "container.removed"]);
    const out = events.filter((e) => e.type === "log" && e.data.stream === "stdout").map((e) => String(e.data.text).trim());
    assert.deepEqual(out, ["/workspace", "1000", "1"], "a fresh, empty workspace (only out.txt)");
    const run = await json(await s.api(`/api/runs/${runId}`, { token }));
    assert.equal(readFileSync(path.join(run.cwd, "out.txt"), "utf8"), "pooled\n", "the pool directory became the run's workspace");
    await assert.rejects(client.get(created.data.container_id).inspect(), /not found/, "used once, then removed");
    await eventually("pool refilled to 2 without the used one", async () => {
      const now = await poolContainers();
      return now.length === 2 && now.every((c) => c.id !== created.data.container_id);
    });
  });

  test("runs with other limits get a cold container; two pooled runs never share one; a user sees no warm container", async () => {
    await eventually("2 warm containers", async () => (await poolContainers()).length === 2);
    // Running is not ready: the pool hands a container out once its launcher answers (the gauge counts those).
    await eventually("2 warm containers ready", async () => new RegExp(`^openrunner_warm_pool_ready\\{image="${IMAGE.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}"\\} 2$`, "m").test(await (await s.api("/metrics")).text()));
    const cold = await createRun(s, token, "echo cold", { memory_mb: 300 });
    const ec = await allEvents(s, token, cold);
    const cc = ec.find((e) => e.type === "container.created")!;
    assert.equal(cc.data.pool, undefined, "a cold container");
    assert.equal(ec.at(-1)!.type, "run.completed");

    const [a, b] = [await createRun(s, token, "sleep 1; echo a"), await createRun(s, token, "sleep 1; echo b")];
    const [ea, eb] = [await allEvents(s, token, a), await allEvents(s, token, b)];
    const ca = ea.find((e) => e.type === "container.created")!.data;
    const cb = eb.find((e) => e.type === "container.created")!.data;
    assert.notEqual(ca.container_id, cb.container_id);

    const created = await s.api("/api/users", { method: "POST", token, json: { username: "carol", password: "carol-password-1" } });
    assert.equal(created.status, 201);
    const carol = await s.login("carol", "carol-password-1");
    assert.deepEqual((await json(await s.api("/api/containers/counts", { token: carol }))).counts, { run: 0, project: 0, pool: 0 });
    await eventually("2 warm containers", async () => (await poolContainers()).length === 2);
    // Running is not ready: the pool hands a container out once its launcher answers (the gauge counts those).
    await eventually("2 warm containers ready", async () => new RegExp(`^openrunner_warm_pool_ready\\{image="${IMAGE.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}"\\} 2$`, "m").test(await (await s.api("/metrics")).text()));
    const adminCounts = await json(await s.api("/api/containers/counts", { token }));
    assert.equal(adminCounts.counts.pool, 2, JSON.stringify(adminCounts));
    const listed = await json(await s.api("/api/containers?kind=pool", { token }));
    assert.ok(listed.containers.every((c: any) => c.user_id === null && c.run_id === null));

    // While a pooled run runs, the list shows it as the run's container, owned by the run's user.
    const live = await createRun(s, token, "sleep 300");
    await eventually("the live run is listed", async () => {
      const l = await json(await s.api("/api/containers?kind=run", { token }));
      return l.containers.some((c: any) => c.run_id === live && c.from_pool === true);
    });
    await s.api(`/api/runs/${live}/cancel`, { method: "POST", token });
    assert.equal((await allEvents(s, token, live)).at(-1)!.type, "run.cancelled");
  });

  test("shutdown removes the warm containers and their folders", async () => {
    await eventually("2 warm containers", async () => (await poolContainers()).length === 2);
    // Running is not ready: the pool hands a container out once its launcher answers (the gauge counts those).
    await eventually("2 warm containers ready", async () => new RegExp(`^openrunner_warm_pool_ready\\{image="${IMAGE.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}"\\} 2$`, "m").test(await (await s.api("/metrics")).text()));
    await s.stop();
    assert.deepEqual(await client.list({ [LABEL.instance]: instance, [LABEL.kind]: "pool" }), []);
    const poolDir = path.join(s.dataDir, "workspaces", ".pool");
    assert.ok(!existsSync(poolDir) || readdirSync(poolDir).length === 0, "no pool folder left");
  });
});
