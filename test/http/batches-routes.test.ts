/**
 * The batch routes in-process (src/api/routes/batches.ts) over a real engine (temporary data folder, shell
 * runs, no container engine): all-or-none with the failing item's index, the whole batch against the queue
 * cap, batch_max_runs, priority admission under a global limit of 1, counts, ownership, `?batch_id=`,
 * cancel, and the batch stream (JSON page and SSE with Last-Event-ID replay, ending after batch.done).
 */
import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import supertest from "supertest";
import { createApp, createAppDeps } from "../../src/api/app.ts";
import { createBatchRoutes } from "../../src/api/routes/batches.ts";
import { createRunRoutes } from "../../src/api/routes/runs.ts";
import { ensureFirstAdmin } from "../../src/auth/bootstrap.ts";
import { hashPassword } from "../../src/auth/passwords.ts";
import { loadConfig } from "../../src/config/load.ts";
import type { Config } from "../../src/config/schema.ts";
import { createEngine, type Engine } from "../../src/engine.ts";
import { createSilentLogger } from "../../src/log.ts";
import { readSse } from "../helpers/sse.ts";

const ADMIN_PASSWORD = "admin-password-1";
const shell = (text: string, extra: Record<string, unknown> = {}) => ({ input: { text }, metadata: { agent_type: "shell", ...extra } });

describe("batch routes", () => {
  let tmp: string;
  let engine: Engine;
  let server: http.Server;
  let base: string;
  let request: ReturnType<typeof supertest>;
  const tokens: Record<string, string> = {};
  const as = (who: string) => ({ Authorization: `Bearer ${tokens[who]}` });

  before(async () => {
    tmp = mkdtempSync(path.join(os.tmpdir(), "openrunner-batches-"));
    const config: Config = {
      ...loadConfig({ env: {}, cwd: tmp }),
      data_dir: tmp,
      jwt_secret: "batch-test-secret-0123456789abcdefghijkl",
      allow_shell_for_users: true,
      max_concurrent_runs: 1,
      max_queued_runs_per_user: 6,
      batch_max_runs: 8,
      kill_grace_ms: 500,
      login_max_attempts: 1000,
    };
    const log = createSilentLogger();
    engine = await createEngine({ config, env: { PATH: process.env.PATH, DOCKER_HOST: "unix:///nonexistent/openrunner-test.sock" }, log });
    await ensureFirstAdmin({ store: engine.store, password: ADMIN_PASSWORD, print: () => {} });
    for (const name of ["bob", "carol"]) await engine.store.users.create({ username: name, password_hash: await hashPassword("user-password"), role: "user" });
    const deps = createAppDeps({ config, store: engine.store, bus: engine.bus, log, dataDir: tmp, version: "test", listAgentHealth: async () => [] });
    server = http.createServer(createApp(deps, [createRunRoutes(deps, engine.manager), createBatchRoutes(deps, engine.manager)]).callback());
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    request = supertest(server);
    for (const [who, username, password] of [["admin", "admin", ADMIN_PASSWORD], ["bob", "bob", "user-password"], ["carol", "carol", "user-password"]] as const) {
      const res = await request.post("/api/auth/login").send({ username, password });
      assert.equal(res.status, 200);
      tokens[who] = res.body.token;
    }
  });
  after(async () => {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
    await engine.close();
    rmSync(tmp, { recursive: true, force: true });
  });

  const runCount = async (who: string) => (await request.get("/api/runs?limit=200").set(as(who))).body.runs.length as number;

  test("an item failing its schema refuses the whole batch: 400 with details.index, nothing stored", async () => {
    const before = await runCount("bob");
    const res = await request.post("/api/runs/batch").set(as("bob")).send({ runs: [shell("true"), { input: { text: "x" }, metadata: {} }, shell("true")] });
    assert.equal(res.status, 400);
    assert.equal(res.body.error.code, "validation_failed");
    assert.equal(res.body.error.details.index, 1);
    assert.deepEqual(res.body.error.details.details, [{ path: "/metadata/agent_type", message: "is required" }]);
    const bad = await request.post("/api/runs/batch").set(as("bob")).send({ runs: [shell("true", { priority: "urgent" })] });
    assert.equal(bad.status, 400);
    assert.equal(bad.body.error.details.index, 0);
    assert.match(JSON.stringify(bad.body.error.details.details), /low.*normal.*high.*critical/);
    const empty = await request.post("/api/runs/batch").set(as("bob")).send({ runs: [] });
    assert.equal(empty.status, 400);
    assert.equal(await runCount("bob"), before);
  });

  test("an item the admission refuses refuses the whole batch with its own code and index", async () => {
    const before = await runCount("bob");
    const unknown = await request.post("/api/runs/batch").set(as("bob")).send({ runs: [shell("true"), shell("true"), { input: { text: "x" }, metadata: { agent_type: "nope" } }] });
    assert.equal(unknown.status, 400);
    assert.equal(unknown.body.error.code, "unknown_agent");
    assert.equal(unknown.body.error.details.index, 2);
    // Two items in one folder: the second is refused as if the first were live already.
    const busy = await request.post("/api/runs/batch").set(as("bob")).send({ runs: [shell("true", { cwd: "same" }), shell("true", { cwd: "same" })] });
    assert.equal(busy.status, 409);
    assert.equal(busy.body.error.code, "workspace_busy");
    assert.equal(busy.body.error.details.index, 1);
    const forbidden = await request.post("/api/runs/batch").set(as("bob")).send({ runs: [shell("true"), shell("true", { extra_args: ["-x"] })] });
    assert.equal(forbidden.status, 403);
    assert.equal(forbidden.body.error.details.index, 1);
    assert.equal(await runCount("bob"), before);
  });

  test("the queue cap counts the whole batch (429 naming the first item past it); batch_max_runs caps a batch (400 batch_too_large)", async () => {
    const capped = await request.post("/api/runs/batch").set(as("bob")).send({ runs: Array.from({ length: 7 }, () => shell("true")) });
    assert.equal(capped.status, 429);
    assert.equal(capped.body.error.code, "rate_limited");
    assert.equal(capped.headers["retry-after"], "5");
    assert.equal(capped.body.error.details.index, 6, "6 may wait (max_queued_runs_per_user), the 7th may not");
    const large = await request.post("/api/runs/batch").set(as("admin")).send({ runs: Array.from({ length: 9 }, () => shell("true")) });
    assert.equal(large.status, 400);
    assert.equal(large.body.error.code, "batch_too_large");
    assert.deepEqual(large.body.error.details, { max: 8, count: 9 });
  });

  test("a batch: priority admission under a limit of 1, counts, ownership, ?batch_id=, cancel, and its stream", async () => {
    const res = await request.post("/api/runs/batch").set(as("bob")).send({ runs: [shell("sleep 30", { priority: "low" }), shell("sleep 30"), shell("sleep 30", { priority: "critical" })] });
    assert.equal(res.status, 201, JSON.stringify(res.body));
    const { batch_id, runs } = res.body as { batch_id: string; runs: Array<{ run_id: string; status: string }> };
    assert.match(batch_id, /^bat_/);
    assert.equal(res.headers.location, `/api/batches/${batch_id}`);
    assert.deepEqual(runs.map((r) => r.status), ["queued", "queued", "queued"]);
    const ids = runs.map((r) => r.run_id);

    const view = await request.get(`/api/batches/${batch_id}`).set(as("bob"));
    assert.equal(view.status, 200);
    assert.deepEqual(view.body.run_ids, ids, "request order");
    assert.equal(view.body.total, 3);
    assert.equal(view.body.done, false);
    assert.equal(view.body.counts.queued, 2, "the limit of 1 admitted one run");
    const statuses = await Promise.all(ids.map(async (id) => (await request.get(`/api/runs/${id}`).set(as("bob"))).body));
    assert.notEqual(statuses[2].status, "queued", "the critical item was admitted first");
    assert.deepEqual([statuses[0].status, statuses[1].status], ["queued", "queued"]);
    assert.deepEqual(statuses.map((r) => r.metadata.priority), ["low", "normal", "critical"]);
    assert.deepEqual(statuses.map((r) => r.batch_id), [batch_id, batch_id, batch_id]);

    assert.equal((await request.get(`/api/batches/${batch_id}`).set(as("carol"))).status, 404, "another user's batch");
    assert.equal((await request.get(`/api/batches/${batch_id}`).set(as("admin"))).status, 200, "admins see all");
    assert.equal((await request.post(`/api/batches/${batch_id}/cancel`).set(as("carol"))).status, 404);
    assert.equal((await request.get("/api/batches/bat_nope").set(as("bob"))).status, 404);
    const listed = await request.get(`/api/runs?batch_id=${batch_id}`).set(as("bob"));
    assert.deepEqual(listed.body.runs.map((r: { id: string }) => r.id).sort(), [...ids].sort());

    const cancel = await request.post(`/api/batches/${batch_id}/cancel`).set(as("bob"));
    assert.equal(cancel.status, 202);
    for (const id of ids) await engine.manager.waitForTerminal(id);
    const done = await request.get(`/api/batches/${batch_id}`).set(as("bob"));
    assert.equal(done.body.counts.cancelled, 3);
    assert.equal(done.body.done, true);
    assert.equal((await request.post(`/api/batches/${batch_id}/cancel`).set(as("bob"))).status, 202, "idempotent");

    const page = await request.get(`/api/batches/${batch_id}/events`).set(as("bob")).set("Accept", "application/json");
    assert.equal(page.status, 200);
    const events = page.body.events as Array<{ id: number; type: string; data: { run_id?: string; status?: string; counts?: Record<string, number> } }>;
    assert.deepEqual(events.map((e) => e.id), events.map((_, i) => i + 1), "numbered 1, 2, 3 … without gaps");
    assert.deepEqual(events.slice(0, 3).map((e) => [e.data.run_id, e.data.status]), ids.map((id) => [id, "queued"]));
    assert.equal(events.at(-1)!.type, "batch.done");
    assert.equal(events.at(-1)!.data.counts!.cancelled, 3);
    assert.equal(events.filter((e) => e.type === "batch.done").length, 1);
    for (const id of ids) assert.equal(events.filter((e) => e.data.run_id === id && e.data.status === "cancelled").length, 1, `${id} cancelled once`);
    assert.equal(page.body.done, true);

    const sse = await readSse(`${base}/api/batches/${batch_id}/events`, { token: tokens.bob!, lastEventId: 2, timeoutMs: 10_000 });
    assert.equal(sse.status, 200);
    assert.ok(sse.ended, "the stream ends after batch.done");
    assert.deepEqual(sse.messages.map((m) => Number(m.id)), events.slice(2).map((e) => e.id), "replay after Last-Event-ID 2, no gap, no duplicate");
    assert.equal(sse.messages.at(-1)!.event, "batch.done");
    const bad = await request.get(`/api/batches/${batch_id}/events?after=x`).set(as("bob"));
    assert.equal(bad.status, 400);
  });

  test("the batch stream follows live and ends when the last run ends", async () => {
    const res = await request.post("/api/runs/batch").set(as("admin")).send({ runs: [shell("true"), shell("true", { priority: "high" })] });
    assert.equal(res.status, 201);
    const sse = await readSse(`${base}/api/batches/${res.body.batch_id}/events`, { token: tokens.admin!, timeoutMs: 20_000 });
    assert.ok(sse.ended);
    const evs = sse.messages.map((m) => JSON.parse(m.data) as { type: string; data: { run_id?: string; status?: string } });
    assert.equal(evs.at(-1)!.type, "batch.done");
    const completed = evs.filter((e) => e.data.status === "completed").map((e) => e.data.run_id);
    assert.deepEqual(completed, [res.body.runs[1].run_id, res.body.runs[0].run_id], "the high item ran first, then the normal one");
  });
});
