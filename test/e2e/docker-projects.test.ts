/**
 * Project containers end to end (`metadata.project_id`, issue 5): the real
 * server (child process, port 0) and the real engine. Two runs of a project
 * share one long-lived container and take turns (or the second is refused
 * with 409 in `reject` mode); files persist between runs; cancel kills only
 * the run's processes; the project endpoints (ensure, status, keepalive,
 * restart, remove, list, counts) and their 404 for other users; the idle
 * sweep; adoption after a server crash.
 *
 * With no engine reachable these tests FAIL (start one with
 * scripts/ci-docker.sh); OPENRUNNER_SKIP_DOCKER=1 skips them visibly.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { buildAgentImage } from "../../src/container/image.ts";
import { LABEL } from "../../src/container/labels.ts";
import type { ContainerClient } from "../../src/container/types.ts";
import { connectDocker } from "../helpers/docker.ts";
import { spawnServer, type TestServer } from "../helpers/spawn-server.ts";
import { allEvents as readEvents, createRun as postRun, eventsUntil, type Ev } from "../helpers/events.ts";
import { waitFor } from "../helpers/processes.ts";

const SKIP = process.env.OPENRUNNER_SKIP_DOCKER === "1";
const IMAGE = process.env.OPENRUNNER_TEST_IMAGE ?? "openrunner-agent:latest";
if (SKIP) console.warn("# docker project e2e tests SKIPPED: OPENRUNNER_SKIP_DOCKER=1");
const DOCKER_ENV: Record<string, string> = process.env.DOCKER_HOST ? { DOCKER_HOST: process.env.DOCKER_HOST } : {};

/** Counts the processes inside `containerId` whose environment holds `OPENRUNNER_RUN_ID=<runId>`. */
const COUNT_SCRIPT = `n=0; for d in /proc/[0-9]*; do [ "\${d#/proc/}" = "$$" ] && continue; if tr '\\0' '\\n' < "$d/environ" 2>/dev/null | grep -qxF "$1"; then n=$((n+1)); fi; done; echo $n`;
async function processesOfRun(client: ContainerClient, containerId: string, runId: string): Promise<number> {
  const r = await client.get(containerId).execCollect({ argv: ["/bin/sh", "-c", COUNT_SCRIPT, "count", `OPENRUNNER_RUN_ID=${runId}`], cwd: "/" });
  return Number(r.stdout.trim());
}

async function startRun(s: TestServer, token: string, text: string, metadata: Record<string, unknown>): Promise<Response> {
  return s.api("/api/runs", { method: "POST", token, json: { input: { text }, metadata: { agent_type: "shell", ...metadata } } });
}
const createRun = (s: TestServer, token: string, text: string, metadata: Record<string, unknown>) => postRun(s, token, text, { agent_type: "shell", ...metadata });
const allEvents = (s: TestServer, token: string, runId: string) => readEvents(s, token, runId, 60_000);
const stdoutOf = (events: Ev[]) => events.filter((e) => e.type === "log" && e.data.stream === "stdout").map((e) => e.data.text as string);
const json = async (res: Response) => (await res.json()) as Record<string, any>;
const instanceOf = (s: TestServer) => readFileSync(path.join(s.dataDir, "instance-id"), "utf8").trim();

/** Polls `check` every 200 ms until it returns true (bounded; a correctness wait, not a timing assert). */
const eventually = (what: string, check: () => Promise<boolean>, maxMs = 30_000) => waitFor(check, maxMs, what, 200);

async function removeInstanceContainers(client: ContainerClient, s: TestServer | undefined): Promise<void> {
  if (!s) return;
  let inst: string | undefined;
  try {
    inst = instanceOf(s);
  } catch {
    return;
  }
  for (const c of await client.list({ [LABEL.instance]: inst }).catch(() => [])) await client.get(c.id).remove();
}

function configFile(s: { dir: string }, yaml: string): string {
  const file = path.join(s.dir, "openrunner-test.yaml");
  writeFileSync(file, yaml);
  return file;
}

describe("docker project containers end to end", { skip: SKIP ? "OPENRUNNER_SKIP_DOCKER=1" : false }, () => {
  let client: ContainerClient;
  let s: TestServer;
  let admin: string;
  let bob: string;
  let bobId: string;
  let adminId: string;

  before(async () => {
    client = await connectDocker();
    if (!(await client.imageInfo(IMAGE))) await buildAgentImage({ client, offline: true, tag: IMAGE });
    s = await spawnServer({ env: { OPENRUNNER_MAX_CONCURRENT_RUNS: "6", OPENRUNNER_MAX_CONCURRENT_RUNS_PER_USER: "6", ...DOCKER_ENV } });
    admin = await s.login();
    adminId = (await json(await s.api("/api/auth/me", { token: admin }))).id;
    const created = await s.api("/api/users", { method: "POST", token: admin, json: { username: "bob", password: "bob-password-1" } });
    assert.equal(created.status, 201, await created.clone().text());
    bobId = (await json(created)).id;
    bob = await s.login("bob", "bob-password-1");
  });

  after(async () => {
    if (s) {
      await s.stop();
      await removeInstanceContainers(client, s);
      s.cleanup();
    }
  });

  test("two runs of one project take turns in one container; files persist; nothing is stopped or removed; cancel kills only that run's processes", async () => {
    const a = await createRun(s, admin, "echo one > shared.txt; sleep 2; echo two >> shared.txt; echo a-done", { project_id: "site" });
    const b = await createRun(s, admin, "pwd; cat shared.txt", { project_id: "site" });
    const ea = await allEvents(s, admin, a);
    const eb = await allEvents(s, admin, b);
    assert.equal(ea.at(-1)!.type, "run.completed", JSON.stringify(ea.at(-1)));
    assert.equal(eb.at(-1)!.type, "run.completed", JSON.stringify(eb.at(-1)));
    // B ran only after A had ended: it saw both lines A wrote, and started after A's terminal event.
    assert.deepEqual(stdoutOf(eb), ["/workspace", "one", "two"]);
    assert.ok(eb.find((e) => e.type === "run.started")!.ts >= ea.at(-1)!.ts, "B started after A ended");
    const cid = ea.find((e) => e.type === "run.started")!.data.container_id as string;
    assert.equal(eb.find((e) => e.type === "run.started")!.data.container_id, cid, "the same container");
    assert.deepEqual(ea.filter((e) => e.type.startsWith("container.")).map((e) => [e.type, e.data.project_id]), [["container.created", "site"], ["container.started", "site"]]);
    assert.deepEqual(eb.filter((e) => e.type.startsWith("container.")), [], "B reuses it: no lifecycle events");
    const st = await client.get(cid).inspect();
    assert.equal(st.running, true, "the project container stays after its runs");
    assert.equal(st.labels[LABEL.kind], "project");
    assert.equal(st.labels[LABEL.projectId], "site");
    assert.equal(st.labels[LABEL.userId], adminId);
    const runA = await json(await s.api(`/api/runs/${a}`, { token: admin }));
    assert.equal(runA.cwd, path.join(s.dataDir, "workspaces", adminId, "projects", "site"));
    assert.equal(readFileSync(path.join(runA.cwd, "shared.txt"), "utf8"), "one\ntwo\n", "the project workspace is on the host");

    // A subdirectory cwd maps under /workspace.
    const sub = await createRun(s, admin, "pwd; cat ../shared.txt | head -1", { project_id: "site", cwd: "sub" });
    assert.deepEqual(stdoutOf(await allEvents(s, admin, sub)), ["/workspace/sub", "one"]);

    // Cancel: the run's own tree dies, the container and another run's processes stay.
    const other = await createRun(s, admin, "sleep 300", { project_id: "other" });
    await eventsUntil(s, admin, other, (e) => e.type === "run.started");
    const c1 = await createRun(s, admin, "sleep 300 & sleep 300", { project_id: "site" });
    await eventsUntil(s, admin, c1, (e) => e.type === "run.started");
    await eventually("the run's two sleeps run", async () => (await processesOfRun(client, cid, c1)) >= 2);
    assert.equal((await s.api(`/api/runs/${c1}/cancel`, { method: "POST", token: admin })).status, 202);
    const ec = await allEvents(s, admin, c1);
    assert.equal(ec.at(-1)!.type, "run.cancelled");
    assert.equal(await processesOfRun(client, cid, c1), 0, "no process of the cancelled run is left");
    assert.equal((await client.get(cid).inspect()).running, true, "the project container survives the cancel");
    const otherCid = (await json(await s.api("/api/projects/other/container", { token: admin }))).container_id as string;
    assert.notEqual(otherCid, cid);
    assert.equal(await processesOfRun(client, otherCid, other), 1, "the other project's run is untouched");
    await s.api(`/api/runs/${other}/cancel`, { method: "POST", token: admin });
    assert.equal((await allEvents(s, admin, other)).at(-1)!.type, "run.cancelled");

    // A non-project run may not use the projects folder as its cwd.
    const bad = await startRun(s, admin, "true", { isolation: "docker", cwd: "projects/site" });
    assert.equal(bad.status, 400);
    assert.equal((await json(bad)).error.code, "cwd_in_projects");
    const badId = await startRun(s, admin, "true", { project_id: "../etc" });
    assert.equal(badId.status, 400);
    const hostProject = await startRun(s, admin, "true", { project_id: "site", isolation: "none" });
    assert.equal(hostProject.status, 400);
  });

  test("project endpoints: ensure is idempotent, status, keepalive, restart recreates, remove; another user gets 404 and sees nothing", async () => {
    const put1 = await s.api("/api/projects/api-proj/container", { method: "PUT", token: admin, json: { memory_mb: 256 } });
    assert.equal(put1.status, 201, await put1.clone().text());
    const v1 = await json(put1);
    assert.equal(v1.state, "running");
    assert.equal(v1.limits.memory_mb, 256);
    assert.equal(v1.user_id, adminId);
    const put2 = await s.api("/api/projects/api-proj/container", { method: "PUT", token: admin, json: {} });
    assert.equal(put2.status, 200);
    assert.equal((await json(put2)).container_id, v1.container_id, "ensure twice: one container");
    const got = await json(await s.api("/api/projects/api-proj/container", { token: admin }));
    assert.equal(got.container_id, v1.container_id);
    assert.equal(got.active_runs, 0);
    assert.ok(got.idle_expires_at, "an unused container has an idle deadline");
    const ka = await s.api("/api/projects/api-proj/container/keepalive", { method: "POST", token: admin });
    assert.equal(ka.status, 200);
    assert.ok((await json(ka)).idle_expires_at >= got.idle_expires_at, "keepalive pushes the deadline");

    // A run in it sees the ensured container (no creation) and its limit.
    const r = await createRun(s, admin, "cat /sys/fs/cgroup/memory.max 2>/dev/null || cat /sys/fs/cgroup/memory/memory.limit_in_bytes", { project_id: "api-proj" });
    const er = await allEvents(s, admin, r);
    assert.equal(er.find((e) => e.type === "run.started")!.data.container_id, v1.container_id);
    assert.deepEqual(stdoutOf(er), [String(256 * 1024 * 1024)]);
    // Asking for other limits than the container has fails the run with a clear code.
    const mismatch = await createRun(s, admin, "true", { project_id: "api-proj", memory_mb: 512 });
    const em = await allEvents(s, admin, mismatch);
    assert.equal(em.at(-1)!.data.error?.code, "project_limits_mismatch", JSON.stringify(em.at(-1)));

    // Another user: 404 everywhere, nothing listed; the same project id is their own, separate container.
    for (const [method, p] of [
      ["GET", "/api/projects/api-proj/container"],
      ["POST", "/api/projects/api-proj/container/keepalive"],
      ["POST", "/api/projects/api-proj/container/restart"],
      ["DELETE", "/api/projects/api-proj/container"],
      ["GET", `/api/projects/api-proj/container?user_id=${adminId}`],
      ["DELETE", `/api/projects/api-proj/container?user_id=${adminId}`],
    ] as const) {
      const res = await s.api(p, { method, token: bob });
      assert.equal(res.status, 404, `${method} ${p}`);
    }
    const bobList = await json(await s.api("/api/containers", { token: bob }));
    assert.deepEqual(bobList.containers, [], "bob sees none of admin's containers");
    assert.deepEqual((await json(await s.api(`/api/containers?user_id=${adminId}`, { token: bob }))).containers, []);
    const bobRun = await createRun(s, bob, "ls", { project_id: "api-proj" });
    const eBob = await allEvents(s, bob, bobRun);
    assert.equal(eBob.at(-1)!.type, "run.completed");
    assert.deepEqual(stdoutOf(eBob), [], "bob's project workspace is his own (empty)");
    const bobCid = eBob.find((e) => e.type === "run.started")!.data.container_id as string;
    assert.notEqual(bobCid, v1.container_id);
    const bobList2 = await json(await s.api("/api/containers", { token: bob }));
    assert.deepEqual(bobList2.containers.map((c: any) => [c.id, c.kind, c.user_id, c.project_id]), [[bobCid, "project", bobId, "api-proj"]]);
    assert.deepEqual((await json(await s.api("/api/containers/counts", { token: bob }))).counts, { run: 0, project: 1, pool: 0 });

    // Admin sees everything, filters by user, pages with a cursor; admin may address bob's project.
    const all = await json(await s.api("/api/containers?kind=project", { token: admin }));
    const ids = all.containers.map((c: any) => c.id);
    assert.ok(ids.includes(v1.container_id) && ids.includes(bobCid), JSON.stringify(all));
    const p1 = await json(await s.api("/api/containers?kind=project&limit=1", { token: admin }));
    assert.equal(p1.containers.length, 1);
    assert.ok(p1.next_cursor);
    const p2 = await json(await s.api(`/api/containers?kind=project&limit=1&cursor=${p1.next_cursor}`, { token: admin }));
    assert.notEqual(p2.containers[0].id, p1.containers[0].id);
    assert.equal((await json(await s.api(`/api/projects/api-proj/container?user_id=${bobId}`, { token: admin }))).container_id, bobCid);
    assert.equal((await s.api("/api/containers?limit=0", { token: admin })).status, 400);
    assert.equal((await s.api("/api/projects/bad%20id/container", { token: admin })).status, 400);

    // Restart: destroy and recreate, same limits; the old container is gone.
    const rs = await s.api("/api/projects/api-proj/container/restart", { method: "POST", token: admin });
    assert.equal(rs.status, 200);
    const v2 = await json(rs);
    assert.notEqual(v2.container_id, v1.container_id);
    assert.equal(v2.limits.memory_mb, 256);
    assert.deepEqual((await client.list({ [LABEL.instance]: instanceOf(s), [LABEL.projectId]: "api-proj", [LABEL.userId]: adminId })).map((c) => c.id), [v2.container_id]);

    // Restart or remove while a run holds the project: 409.
    const busy = await createRun(s, admin, "sleep 300", { project_id: "api-proj" });
    await eventsUntil(s, admin, busy, (e) => e.type === "run.started");
    const rb = await s.api("/api/projects/api-proj/container/restart", { method: "POST", token: admin });
    assert.equal(rb.status, 409);
    assert.equal((await json(rb)).error.code, "project_busy");
    assert.equal((await s.api("/api/projects/api-proj/container", { method: "DELETE", token: admin })).status, 409);
    await s.api(`/api/runs/${busy}/cancel`, { method: "POST", token: admin });
    await allEvents(s, admin, busy);

    assert.equal((await s.api("/api/projects/api-proj/container", { method: "DELETE", token: admin })).status, 204);
    assert.equal((await s.api("/api/projects/api-proj/container", { token: admin })).status, 404);
    assert.deepEqual(await client.list({ [LABEL.instance]: instanceOf(s), [LABEL.projectId]: "api-proj", [LABEL.userId]: adminId }), []);

    // Deleting a user removes their project containers.
    assert.equal((await s.api(`/api/users/${bobId}`, { method: "DELETE", token: admin })).status, 204);
    assert.deepEqual(await client.list({ [LABEL.instance]: instanceOf(s), [LABEL.userId]: bobId }), []);
  });

  test("project_busy reject: a second run on a busy project answers 409 project_busy", async () => {
    const r = await spawnServer({ env: { OPENRUNNER_CONFIG: configFile({ dir: s.dataDir }, "docker:\n  project_busy: reject\n"), ...DOCKER_ENV } });
    try {
      const t = await r.login();
      const first = await createRun(r, t, "sleep 300", { project_id: "p" });
      const second = await startRun(r, t, "true", { project_id: "p" });
      assert.equal(second.status, 409, await second.clone().text());
      assert.equal((await json(second)).error.code, "project_busy");
      const elsewhere = await startRun(r, t, "true", { project_id: "q" });
      assert.equal(elsewhere.status, 201, "another project is free");
      await r.api(`/api/runs/${first}/cancel`, { method: "POST", token: t });
      assert.equal((await allEvents(r, t, first)).at(-1)!.type, "run.cancelled");
      const third = await startRun(r, t, "echo again", { project_id: "p" });
      assert.equal(third.status, 201, "free again after the run ended");
    } finally {
      await r.stop();
      await removeInstanceContainers(client, r);
      r.cleanup();
    }
  });

  test("docker.max_projects_per_user: past the limit a new project answers 409 project_limit; existing ones still answer; removing one frees a place", async () => {
    const r = await spawnServer({ env: { OPENRUNNER_CONFIG: configFile({ dir: s.dataDir }, "docker:\n  max_projects_per_user: 2\n"), ...DOCKER_ENV } });
    try {
      const t = await r.login();
      const put = (p: string) => r.api(`/api/projects/${p}/container`, { method: "PUT", token: t });
      assert.equal((await put("lim-1")).status, 201);
      assert.equal((await put("lim-2")).status, 201);
      const third = await put("lim-3");
      assert.equal(third.status, 409);
      assert.equal((await json(third)).error.code, "project_limit");
      const run = await r.api("/api/runs", { method: "POST", token: t, json: { input: { text: "true" }, metadata: { agent_type: "shell", project_id: "lim-3" } } });
      if (run.status === 201) {
        const ev = await allEvents(r, t, (await json(run)).run_id);
        assert.equal(ev.at(-1)!.data.error?.code, "project_limit", JSON.stringify(ev.at(-1)));
      } else assert.equal(run.status, 409);
      assert.equal((await put("lim-1")).status, 200, "an existing project is not refused");
      assert.equal((await r.api("/api/projects/lim-2/container", { method: "DELETE", token: t })).status, 204);
      assert.equal((await put("lim-3")).status, 201);
    } finally {
      await r.stop();
      await removeInstanceContainers(client, r);
      r.cleanup();
    }
  });

  test("an idle project container is removed after docker.project_idle_secs", async () => {
    const r = await spawnServer({ env: { OPENRUNNER_CONFIG: configFile({ dir: s.dataDir }, "docker:\n  project_idle_secs: 2\n  sweep_interval_secs: 1\n"), ...DOCKER_ENV } });
    try {
      const t = await r.login();
      const run = await createRun(r, t, "echo kept > k.txt", { project_id: "idle" });
      const ev = await allEvents(r, t, run);
      const cid = ev.find((e) => e.type === "run.started")!.data.container_id as string;
      await eventually("the idle container is swept", async () => (await client.list({ [LABEL.instance]: instanceOf(r), [LABEL.kind]: "project" })).every((c) => c.id !== cid));
      assert.equal((await r.api("/api/projects/idle/container", { token: t })).status, 404);
      // The workspace stays; the next run gets a new container that sees the file.
      const again = await createRun(r, t, "cat k.txt", { project_id: "idle" });
      const ea = await allEvents(r, t, again);
      assert.deepEqual(stdoutOf(ea), ["kept"]);
      assert.notEqual(ea.find((e) => e.type === "run.started")!.data.container_id, cid);
    } finally {
      await r.stop();
      await removeInstanceContainers(client, r);
      r.cleanup();
    }
  });

  test("after a crash the restarted server adopts the running project container, fails the in-flight run as interrupted and kills its processes", async () => {
    const a = await spawnServer({ env: DOCKER_ENV });
    let b: TestServer | undefined;
    try {
      const t = await a.login();
      const run = await createRun(a, t, "sleep 300 & sleep 300", { project_id: "kept" });
      const ev = await eventsUntil(a, t, run, (e) => e.type === "run.started");
      const cid = ev.find((e) => e.type === "run.started")!.data.container_id as string;
      await eventually("the run's processes run", async () => (await processesOfRun(client, cid, run)) >= 2);
      await a.kill9();
      b = await spawnServer({ env: DOCKER_ENV, dataDir: a.dataDir });
      assert.equal((await client.get(cid).inspect()).running, true, "adopted, not swept");
      assert.equal(await processesOfRun(client, cid, run), 0, "the interrupted run's processes are killed");
      const t2 = await b.login();
      const row = await json(await b.api(`/api/runs/${run}`, { token: t2 }));
      assert.equal(row.status, "failed");
      assert.equal(row.error.code, "interrupted");
      const next = await createRun(b, t2, "echo reused", { project_id: "kept" });
      const en = await allEvents(b, t2, next);
      assert.equal(en.find((e) => e.type === "run.started")!.data.container_id, cid, "the adopted container serves the next run");
      assert.deepEqual(stdoutOf(en), ["reused"]);
      assert.ok(!existsSync(path.join(a.dataDir, "workspaces", ".pool")), "no warm pool configured: no pool folder");
    } finally {
      await b?.stop();
      await a.kill9();
      await removeInstanceContainers(client, a);
      a.cleanup();
    }
  });
});
