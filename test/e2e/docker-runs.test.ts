/**
 * Docker isolation end to end: the real server (child process, port 0) runs
 * `shell` runs with `metadata.isolation: "docker"` in per-run containers of
 * the offline agent image on the real engine (DOCKER_HOST or
 * /var/run/docker.sock). Covers where the command runs (uid, hostname, the
 * bind-mounted workspace), the container events and their place before the
 * terminal event, limits from metadata and their maxima, cancel, timeout, OOM,
 * Last-Event-ID replay, an unreachable engine (503) and the orphan sweep after
 * a crash.
 *
 * With no engine reachable these tests FAIL (start one with
 * scripts/ci-docker.sh); OPENRUNNER_SKIP_DOCKER=1 skips them visibly.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { buildAgentImage } from "../../src/container/image.ts";
import { LABEL } from "../../src/container/labels.ts";
import type { ContainerClient } from "../../src/container/types.ts";
import { connectDocker } from "../helpers/docker.ts";
import { spawnServer, type TestServer } from "../helpers/spawn-server.ts";
import { allEvents as readEvents, createRun as postRun, eventsUntil, type Ev } from "../helpers/events.ts";

const SKIP = process.env.OPENRUNNER_SKIP_DOCKER === "1";
const IMAGE = process.env.OPENRUNNER_TEST_IMAGE ?? "openrunner-agent:latest";
const MIB = 1024 * 1024;
if (SKIP) console.warn("# docker run e2e tests SKIPPED: OPENRUNNER_SKIP_DOCKER=1");

const createRun = (s: TestServer, token: string, text: string, metadata: Record<string, unknown> = {}) => postRun(s, token, text, { agent_type: "shell", isolation: "docker", ...metadata });

const allEvents = (s: TestServer, token: string, runId: string, after?: number) => readEvents(s, token, runId, 60_000, after !== undefined ? { lastEventId: after } : {});

/** Ids 1..n without gaps; the container lifecycle in order; exactly one terminal event, last, of `terminal`. */
function assertRunShape(events: Ev[], terminal: string): void {
  assert.deepEqual(events.map((e) => e.id), events.map((_, i) => i + 1), "ids 1, 2, 3 … without gaps");
  const types = events.map((e) => e.type);
  const terminals = types.filter((t) => ["run.completed", "run.failed", "run.cancelled", "run.timed_out"].includes(t));
  assert.deepEqual(terminals, [terminal], types.join(" "));
  assert.equal(types.at(-1), terminal, `the terminal event is the last: ${types.join(" ")}`);
  const order = ["run.queued", "container.created", "container.started", "run.started", "container.stopped", "container.removed"].map((t) => types.indexOf(t));
  assert.ok(order.every((i) => i >= 0), `all lifecycle events present: ${types.join(" ")}`);
  assert.deepEqual(order, [...order].sort((a, b) => a - b), `lifecycle in order: ${types.join(" ")}`);
  const cid = events.find((e) => e.type === "container.created")!.data.container_id as string;
  for (const e of events.filter((x) => x.type.startsWith("container.") || x.type === "run.started")) assert.equal(e.data.container_id, cid, JSON.stringify(e));
}

async function containersOfRun(client: ContainerClient, runId: string) {
  return client.list({ [LABEL.runId]: runId });
}


describe("docker runs end to end", { skip: SKIP ? "OPENRUNNER_SKIP_DOCKER=1" : false }, () => {
  let client: ContainerClient;
  let s: TestServer;
  let token: string;
  let instance: string;

  before(async () => {
    client = await connectDocker();
    if (!(await client.imageInfo(IMAGE))) await buildAgentImage({ client, offline: true, tag: IMAGE });
    s = await spawnServer({ env: { OPENRUNNER_MAX_CONCURRENT_RUNS: "4", OPENRUNNER_MAX_CONCURRENT_RUNS_PER_USER: "4", ...(process.env.DOCKER_HOST ? { DOCKER_HOST: process.env.DOCKER_HOST } : {}) } });
    token = await s.login();
    instance = readFileSync(path.join(s.dataDir, "instance-id"), "utf8").trim();
  });

  after(async () => {
    if (s) {
      await s.stop();
      s.cleanup();
    }
    if (client && instance) for (const c of await client.list({ [LABEL.instance]: instance }).catch(() => [])) await client.get(c.id).remove();
  });

  test("a shell run executes inside its container: uid 1000, another hostname, /workspace is the run's cwd; lifecycle events before run.completed; Last-Event-ID replay", async () => {
    const runId = await createRun(s, token, "id -u; hostname; echo made > /workspace/from-container.txt; pwd; echo done");
    // Read live up to run.started, then reconnect with Last-Event-ID for the rest.
    const first = await eventsUntil(s, token, runId, (e) => e.type === "run.started");
    const rest = await allEvents(s, token, runId, first.at(-1)!.id);
    assert.equal(rest[0]!.id, first.at(-1)!.id + 1, "the replay continues right after Last-Event-ID");
    const events = [...first, ...rest];
    assertRunShape(events, "run.completed");
    assert.deepEqual(await allEvents(s, token, runId), events, "a full replay from the store is the same stream");
    const out = events.filter((e) => e.type === "log" && e.data.stream === "stdout").map((e) => e.data.text as string);
    assert.equal(out.length, 4, JSON.stringify(events));
    assert.equal(out[0], "1000", "runs as the unprivileged container user");
    assert.notEqual(out[1], os.hostname(), "runs in another UTS namespace");
    assert.equal(out[2], "/workspace");
    assert.equal(out[3], "done");
    const run = (await (await s.api(`/api/runs/${runId}`, { token })).json()) as Record<string, any>;
    assert.equal(run.status, "completed");
    assert.equal(run.metadata.isolation, "docker");
    assert.equal(readFileSync(path.join(run.cwd, "from-container.txt"), "utf8"), "made\n", "the workspace is bind-mounted");
    const started = events.find((e) => e.type === "run.started")!;
    assert.equal(started.data.cwd, run.cwd);
    assert.deepEqual(await containersOfRun(client, runId), [], "the per-run container is removed");
  });

  test("limits from metadata are applied; the container is locked down and labelled; over-maximum limits answer 400", async () => {
    const runId = await createRun(s, token, "cat /sys/fs/cgroup/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids/pids.max; sleep 30", {
      memory_mb: 96,
      cpus: 0.5,
      pids_limit: 48,
    });
    const seen = await eventsUntil(s, token, runId, (e) => e.type === "log");
    assert.equal(seen.at(-1)!.data.text, "48", "the PID limit is visible inside");
    const cid = seen.find((e) => e.type === "container.created")!.data.container_id as string;
    const st = await client.get(cid).inspect();
    assert.equal(st.running, true);
    assert.equal(st.hostConfig.memoryBytes, 96 * MIB);
    assert.equal(st.hostConfig.memorySwapBytes, 96 * MIB);
    assert.equal(st.hostConfig.nanoCpus, 500_000_000);
    assert.equal(st.hostConfig.pidsLimit, 48);
    assert.equal(st.hostConfig.networkMode, "none");
    assert.equal(st.hostConfig.privileged, false);
    assert.equal(st.user, "1000:1000");
    assert.equal(st.image, IMAGE);
    assert.equal(st.labels[LABEL.runId], runId);
    assert.equal(st.labels[LABEL.instance], instance);
    assert.equal(st.labels[LABEL.kind], "run");
    const run = (await (await s.api(`/api/runs/${runId}`, { token })).json()) as Record<string, any>;
    // Only the run's workspace and its own home (where the adapter writes the CLI's config) are mounted.
    assert.deepEqual(
      [...st.hostConfig.mounts].sort((a, b) => a.target.localeCompare(b.target)),
      [
        { type: "bind", source: path.join(s.dataDir, "homes", runId), target: "/home/agent", readOnly: false },
        { type: "bind", source: run.cwd, target: "/workspace", readOnly: false },
      ],
    );
    assert.equal((await s.api(`/api/runs/${runId}/cancel`, { method: "POST", token })).status, 202);
    assertRunShape(await allEvents(s, token, runId), "run.cancelled");

    // Defaults when nothing is asked: the configured limits (2048 MiB, 2 CPUs, 512 processes).
    const plain = await createRun(s, token, "sleep 30");
    const cid2 = (await eventsUntil(s, token, plain, (e) => e.type === "run.started")).find((e) => e.type === "container.created")!.data.container_id as string;
    const st2 = await client.get(cid2).inspect();
    assert.deepEqual([st2.hostConfig.memoryBytes, st2.hostConfig.nanoCpus, st2.hostConfig.pidsLimit], [2048 * MIB, 2_000_000_000, 512]);
    await s.api(`/api/runs/${plain}/cancel`, { method: "POST", token });
    await allEvents(s, token, plain);

    const bad = async (metadata: Record<string, unknown>, code: string) => {
      const res = await s.api("/api/runs", { method: "POST", token, json: { input: { text: "true" }, metadata: { agent_type: "shell", ...metadata } } });
      const body = (await res.json()) as { error: { code: string; message: string } };
      assert.equal(res.status, 400, JSON.stringify(body));
      assert.equal(body.error.code, code, JSON.stringify(body));
      return body.error.message;
    };
    assert.match(await bad({ isolation: "docker", memory_mb: 8193 }, "limit_exceeded"), /memory_mb must be at most 8192/);
    assert.match(await bad({ isolation: "docker", cpus: 4.5 }, "limit_exceeded"), /cpus must be at most 4/);
    assert.match(await bad({ isolation: "docker", pids_limit: 4097 }, "limit_exceeded"), /pids_limit must be at most 4096/);
    await bad({ isolation: "docker", memory_mb: 1 }, "validation_failed");
    await bad({ memory_mb: 128 }, "validation_failed"); // limits need docker isolation
    await bad({ isolation: "vm" }, "validation_failed");
  });

  test("cancel of `sleep 300` inside the container ends with run.cancelled and removes the container", async () => {
    const runId = await createRun(s, token, "sleep 300 & sleep 300");
    await eventsUntil(s, token, runId, (e) => e.type === "run.started");
    const t0 = Date.now();
    assert.equal((await s.api(`/api/runs/${runId}/cancel`, { method: "POST", token })).status, 202);
    const events = await allEvents(s, token, runId);
    assertRunShape(events, "run.cancelled");
    assert.equal(events.at(-1)!.data.by, "user:admin");
    assert.ok(Date.now() - t0 < 10_000, `cancel took ${Date.now() - t0} ms`);
    assert.deepEqual(await containersOfRun(client, runId), []);
  });

  test("timeout of `sleep 300` inside the container ends with run.timed_out and removes the container", async () => {
    const runId = await createRun(s, token, "sleep 300", { timeout_secs: 3 });
    const events = await allEvents(s, token, runId);
    assertRunShape(events, "run.timed_out");
    assert.equal(events.at(-1)!.data.timeout_ms, 3000);
    assert.deepEqual(await containersOfRun(client, runId), []);
  });

  test("a process over the memory limit fails the run with oom_killed; a leftover background process does not hold the run open", async () => {
    const runId = await createRun(s, token, `node -e "const a=[];for(;;)a.push(Buffer.alloc(4e6,1))"`, { memory_mb: 64 });
    const events = await allEvents(s, token, runId);
    assertRunShape(events, "run.failed");
    assert.equal(events.at(-1)!.data.error.code, "oom_killed", JSON.stringify(events.at(-1)));
    assert.match(events.at(-1)!.data.error.message, /64 MiB/);

    const t0 = Date.now();
    const bg = await createRun(s, token, "sleep 300 & echo started");
    const bgEvents = await allEvents(s, token, bg);
    assertRunShape(bgEvents, "run.completed");
    assert.ok(Date.now() - t0 < 15_000, `the run took ${Date.now() - t0} ms`);
    assert.deepEqual(await containersOfRun(client, bg), []);
  });

  test("the port proxy reaches a dev server inside the run's container (docker.network bridge); a run without network answers 409 proxy_unavailable", async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), "openrunner-docker-proxy-"));
    const conf = path.join(dir, "openrunner.yaml");
    writeFileSync(conf, JSON.stringify({ docker: { network: "bridge" } }));
    const r = await spawnServer({ env: { OPENRUNNER_CONFIG: conf, ...(process.env.DOCKER_HOST ? { DOCKER_HOST: process.env.DOCKER_HOST } : {}) } });
    try {
      const t = await r.login();
      const server = `node -e "require('http').createServer((q, s) => s.end('hello from ' + require('os').hostname() + ' ' + q.url)).listen(8080, () => console.log('listening'))"`;
      const id = await createRun(r, t, server, { timeout_secs: 120 });
      const started = await eventsUntil(r, t, id, (e) => e.type === "log" && e.data.text === "listening");
      const cid = started.find((e) => e.type === "run.started")!.data.container_id as string;
      const res = await r.api(`/api/runs/${id}/proxy/8080/hi?x=1`, { token: t });
      assert.equal(res.status, 200);
      assert.equal(await res.text(), `hello from ${cid.slice(0, 12)} /hi?x=1`);
      const link = await r.api(`/api/runs/${id}/preview-links`, { method: "POST", token: t, json: { port: 8080 } });
      assert.equal(link.status, 201, await link.clone().text());
      const closed = await r.api(`/api/runs/${id}/proxy/8081/`, { token: t });
      assert.equal(closed.status, 502, "a closed port of the container is a 502, not another address");
      assert.equal((await r.api(`/api/runs/${id}/cancel`, { method: "POST", token: t })).status, 202);
      assert.equal((await allEvents(r, t, id)).at(-1)!.type, "run.cancelled");
      const gone = await r.api(`/api/runs/${id}/proxy/8080/hi`, { token: t });
      assert.equal(gone.status, 409);
      assert.equal(((await gone.json()) as { error: { code: string } }).error.code, "proxy_unavailable");
    } finally {
      await r.stop();
      r.cleanup();
      rmSync(dir, { recursive: true, force: true });
    }
    // The shared server's containers have network none.
    const none = await createRun(s, token, "sleep 300");
    await eventsUntil(s, token, none, (e) => e.type === "run.started");
    const refused = await s.api(`/api/runs/${none}/proxy/8080/`, { token });
    assert.equal(refused.status, 409);
    assert.equal(((await refused.json()) as { error: { code: string } }).error.code, "proxy_unavailable");
    await s.api(`/api/runs/${none}/cancel`, { method: "POST", token });
    assert.equal((await allEvents(s, token, none)).at(-1)!.type, "run.cancelled");
  });

  test("with the engine unreachable a docker run answers 503 engine_unavailable; host runs still work", async () => {
    const down = await spawnServer({ env: { DOCKER_HOST: `unix:///nonexistent-${process.pid}.sock` } });
    try {
      const t = await down.login();
      const res = await down.api("/api/runs", { method: "POST", token: t, json: { input: { text: "true" }, metadata: { agent_type: "shell", isolation: "docker" } } });
      const body = (await res.json()) as { error: { code: string; message: string } };
      assert.equal(res.status, 503, JSON.stringify(body));
      assert.equal(body.error.code, "engine_unavailable");
      assert.match(body.error.message, /nonexistent/);
      const host = await down.api("/api/runs", { method: "POST", token: t, json: { input: { text: "echo ok" }, metadata: { agent_type: "shell" } } });
      assert.equal(host.status, 201);
    } finally {
      await down.stop();
      down.cleanup();
    }
  });

  test("after a crash (SIGKILL mid docker run) the restarted server removes the orphan container and fails the run as interrupted", async () => {
    const env: Record<string, string> = process.env.DOCKER_HOST ? { DOCKER_HOST: process.env.DOCKER_HOST } : {};
    const a = await spawnServer({ env });
    let b: TestServer | undefined;
    try {
      const t = await a.login();
      const runId = await createRun(a, t, "sleep 300");
      await eventsUntil(a, t, runId, (e) => e.type === "run.started");
      await a.kill9();
      assert.equal((await containersOfRun(client, runId)).length, 1, "the container outlives the killed server");
      b = await spawnServer({ env, dataDir: a.dataDir });
      assert.deepEqual(await containersOfRun(client, runId), [], "swept at start");
      const t2 = await b.login();
      const run = (await (await b.api(`/api/runs/${runId}`, { token: t2 })).json()) as Record<string, any>;
      assert.equal(run.status, "failed");
      assert.equal(run.error.code, "interrupted");
      const events = await allEvents(b, t2, runId);
      assert.equal(events.at(-1)!.type, "run.failed");
    } finally {
      await b?.stop();
      await a.kill9();
      const inst = (() => {
        try {
          return readFileSync(path.join(a.dataDir, "instance-id"), "utf8").trim();
        } catch {
          return undefined;
        }
      })();
      if (inst) for (const c of await client.list({ [LABEL.instance]: inst }).catch(() => [])) await client.get(c.id).remove();
      a.cleanup();
    }
  });
});
