/**
 * End to end (issue 13): batches, priorities and the configuration API against the real server on port 0
 * with shell runs and a configuration file: a batch all or none, counts, cancel, the batch SSE stream with
 * Last-Event-ID, admission order by priority under a global limit of 1, GET /api/config redaction and
 * provenance, and PATCH /api/config raising the concurrency limit live (queued runs start while the run
 * that held the only slot is still running), then persisted into the file.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { spawnServer, type TestServer } from "../helpers/spawn-server.ts";
import { allEvents, createRun, eventsUntil, type Ev } from "../helpers/events.ts";
import { waitFor } from "../helpers/processes.ts";
import { readSse } from "../helpers/sse.ts";

const JWT_SECRET = "e2e-batch-secret-0123456789abcdefghijklmn";
const FILE_TEXT = `# e2e configuration (this comment must survive a persisted PATCH)
max_concurrent_runs: 1
allow_shell_for_users: true
agents:
  codex:
    api_key: sk-e2e-file-key
`;

const shell = (text: string, extra: Record<string, unknown> = {}) => ({ input: { text }, metadata: { agent_type: "shell", ...extra } });

describe("batches, priorities and live configuration end to end", () => {
  let s: TestServer;
  let token: string;
  let dir: string;
  let file: string;
  /** A shell command that runs until `release(name)` creates its flag file. */
  const blocker = (name: string) => `while [ ! -f ${path.join(dir, name)} ]; do sleep 0.05; done`;
  const release = (name: string) => writeFileSync(path.join(dir, name), "");
  const json = async (res: Response) => ({ status: res.status, body: (await res.json()) as any });
  const runOf = async (id: string) => (await json(await s.api(`/api/runs/${id}`, { token }))).body;

  before(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), "openrunner-e2e-batch-"));
    chmodSync(dir, 0o755); // host runs may run as an unprivileged user: they must see the flag files
    file = path.join(dir, "openrunner.yaml");
    writeFileSync(file, FILE_TEXT);
    s = await spawnServer({ args: ["--config", file], env: { OPENRUNNER_JWT_SECRET: JWT_SECRET, OPENRUNNER_MAX_CONCURRENT_RUNS_PER_USER: "10" } });
    token = await s.login();
  });
  after(async () => {
    await s.stop();
    s.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });

  test("a batch is accepted whole or not at all", async () => {
    const before = (await json(await s.api("/api/runs?limit=200", { token }))).body.runs.length;
    const bad = await json(await s.api("/api/runs/batch", { method: "POST", token, json: { runs: [shell("true"), shell("true"), { input: { text: "x" }, metadata: { agent_type: "no_such_agent" } }] } }));
    assert.equal(bad.status, 400);
    assert.equal(bad.body.error.code, "unknown_agent");
    assert.equal(bad.body.error.details.index, 2);
    const invalid = await json(await s.api("/api/runs/batch", { method: "POST", token, json: { runs: [shell("true", { priority: "asap" })] } }));
    assert.equal(invalid.status, 400);
    assert.equal(invalid.body.error.details.index, 0);
    assert.equal((await json(await s.api("/api/runs?limit=200", { token }))).body.runs.length, before, "no run of a refused batch was stored");
  });

  test("counts, the batch stream (live, then replayed after Last-Event-ID) and its end", async () => {
    const created = await json(await s.api("/api/runs/batch", { method: "POST", token, json: { runs: [shell("echo one"), shell("echo two"), shell("exit 3")] } }));
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const id = created.body.batch_id as string;
    const live = await readSse(`${s.url}/api/batches/${id}/events`, { token, timeoutMs: 60_000 });
    assert.ok(live.ended, "the stream ends after batch.done");
    const evs = live.messages.map((m) => JSON.parse(m.data) as { id: number; type: string; data: any });
    assert.deepEqual(evs.map((e) => e.id), evs.map((_, i) => i + 1));
    assert.equal(evs.at(-1)!.type, "batch.done");
    assert.deepEqual({ completed: evs.at(-1)!.data.counts.completed, failed: evs.at(-1)!.data.counts.failed }, { completed: 2, failed: 1 });
    const view = (await json(await s.api(`/api/batches/${id}`, { token }))).body;
    assert.equal(view.total, 3);
    assert.equal(view.counts.completed, 2);
    assert.equal(view.counts.failed, 1);
    assert.equal(view.done, true);
    assert.deepEqual(view.run_ids, created.body.runs.map((r: { run_id: string }) => r.run_id));
    const replay = await readSse(`${s.url}/api/batches/${id}/events`, { token, lastEventId: 4, timeoutMs: 10_000 });
    assert.ok(replay.ended);
    assert.deepEqual(replay.messages.map((m) => Number(m.id)), evs.slice(4).map((e) => e.id));
    const listed = (await json(await s.api(`/api/runs?batch_id=${id}`, { token }))).body.runs.map((r: { id: string }) => r.id).sort();
    assert.deepEqual(listed, [...view.run_ids].sort());
  });

  test("cancel of a batch ends every unfinished run; its stream ends with them", async () => {
    const created = await json(await s.api("/api/runs/batch", { method: "POST", token, json: { runs: [shell("sleep 30"), shell("sleep 30"), shell("sleep 30")] } }));
    assert.equal(created.status, 201);
    const id = created.body.batch_id as string;
    const first = created.body.runs[0].run_id as string;
    await eventsUntil(s, token, first, (e) => e.type === "run.started");
    const cancel = await json(await s.api(`/api/batches/${id}/cancel`, { method: "POST", token }));
    assert.equal(cancel.status, 202);
    const stream = await readSse(`${s.url}/api/batches/${id}/events`, { token, timeoutMs: 60_000 });
    assert.ok(stream.ended);
    const done = JSON.parse(stream.messages.at(-1)!.data);
    assert.equal(done.type, "batch.done");
    assert.equal(done.data.counts.cancelled, 3);
    const evs: Ev[] = await allEvents(s, token, first, 10_000);
    assert.equal(evs.at(-1)!.type, "run.cancelled");
  });

  test("admission by priority under a global limit of 1", async () => {
    const hold = await createRun(s, token, blocker("prio"), { agent_type: "shell" });
    await eventsUntil(s, token, hold, (e) => e.type === "run.started");
    const ids: Record<string, string> = {};
    for (const p of ["low", "normal", "high", "critical"]) ids[p] = await createRun(s, token, "true", { agent_type: "shell", priority: p });
    assert.equal((await runOf(ids.critical!)).status, "queued", "the one slot is taken");
    release("prio");
    for (const id of Object.values(ids)) await allEvents(s, token, id, 60_000);
    const started = await Promise.all(["critical", "high", "normal", "low"].map(async (p) => (await runOf(ids[p]!)).started_at as string));
    assert.deepEqual([...started].sort(), started, `started in priority order: ${started.join(", ")}`);
  });

  test("GET /api/config: secrets redacted, each value's source", async () => {
    const user = await s.api("/api/users", { method: "POST", token, json: { username: "e2e-user", password: "user-password-1" } });
    assert.equal(user.status, 201);
    const userToken = await s.login("e2e-user", "user-password-1");
    assert.equal((await s.api("/api/config", { token: userToken })).status, 403);
    const res = await s.api("/api/config", { token });
    assert.equal(res.status, 200);
    const text = await res.text();
    assert.doesNotMatch(text, /sk-e2e-file-key|e2e-batch-secret|test-admin-password/);
    const body = JSON.parse(text);
    assert.equal(body.config.jwt_secret, "[redacted]");
    assert.equal(body.config.admin_password, "[redacted]");
    assert.equal(body.config.agents.codex.api_key, "[redacted]");
    assert.equal(body.sources.max_concurrent_runs, "file");
    assert.equal(body.sources.jwt_secret, "env");
    assert.equal(body.sources.max_concurrent_runs_per_user, "env");
    assert.equal(body.sources.default_timeout_secs, "default");
    assert.equal(body.file, file);
  });

  test("PATCH /api/config raises the limit live: queued runs start at once; ?persist=true writes the file", async () => {
    const hold = await createRun(s, token, blocker("live"), { agent_type: "shell" });
    await eventsUntil(s, token, hold, (e) => e.type === "run.started");
    const queued = [await createRun(s, token, blocker("live2"), { agent_type: "shell" }), await createRun(s, token, blocker("live2"), { agent_type: "shell", cwd: "second" })];
    for (const id of queued) assert.equal((await runOf(id)).status, "queued");
    const notLive = await json(await s.api("/api/config", { method: "PATCH", token, json: { addr: "127.0.0.1:1" } }));
    assert.equal(notLive.status, 400);
    assert.equal(notLive.body.error.code, "config_not_live");
    assert.equal(notLive.body.error.details.key, "addr");
    const patched = await json(await s.api("/api/config", { method: "PATCH", token, json: { max_concurrent_runs: 3 } }));
    assert.equal(patched.status, 200, JSON.stringify(patched.body));
    assert.deepEqual(patched.body.changed, [{ key: "max_concurrent_runs", secret: false, from: 1, to: 3 }]);
    assert.equal(patched.body.sources.max_concurrent_runs, "api");
    for (const id of queued) await eventsUntil(s, token, id, (e) => e.type === "run.started");
    assert.equal((await runOf(hold)).status, "running", "both started while the first still holds its slot");
    assert.equal(readFileSync(file, "utf8"), FILE_TEXT, "not written without persist");
    release("live");
    release("live2");
    for (const id of [hold, ...queued]) await allEvents(s, token, id, 60_000);

    const persisted = await json(await s.api("/api/config?persist=true", { method: "PATCH", token, json: { max_concurrent_runs: 2, permissions: { timeout_secs: 30 } } }));
    assert.equal(persisted.status, 200);
    assert.equal(persisted.body.persisted, true);
    await waitFor(() => readFileSync(file, "utf8") !== FILE_TEXT, 5000, "the file to be written");
    const written = readFileSync(file, "utf8");
    assert.match(written, /^# e2e configuration \(this comment must survive a persisted PATCH\)/);
    assert.match(written, /^max_concurrent_runs: 2$/m);
    assert.match(written, /^permissions:\n {2}timeout_secs: 30$/m);
    assert.match(written, /api_key: sk-e2e-file-key/, "the rest of the file is kept");
  });

  test("a batch cut short by a crash is finished at the next start: its runs failed interrupted, its stream ends", async () => {
    const created = await json(await s.api("/api/runs/batch", { method: "POST", token, json: { runs: [shell(blocker("never")), shell(blocker("never"), { cwd: "b" }), shell(blocker("never"), { cwd: "c" })] } }));
    assert.equal(created.status, 201);
    const id = created.body.batch_id as string;
    await eventsUntil(s, token, created.body.runs[0].run_id, (e) => e.type === "run.started");
    await s.kill9();
    s = await spawnServer({ dataDir: s.dataDir, args: ["--config", file], env: { OPENRUNNER_JWT_SECRET: JWT_SECRET, OPENRUNNER_MAX_CONCURRENT_RUNS_PER_USER: "10" } });
    const view = (await json(await s.api(`/api/batches/${id}`, { token }))).body;
    assert.equal(view.done, true);
    assert.equal(view.counts.failed, 3);
    for (const r of created.body.runs) assert.equal((await runOf(r.run_id)).error.code, "interrupted");
    const stream = await readSse(`${s.url}/api/batches/${id}/events`, { token, timeoutMs: 10_000 });
    assert.ok(stream.ended);
    const evs = stream.messages.map((m) => JSON.parse(m.data) as { type: string; data: any });
    assert.equal(evs.at(-1)!.type, "batch.done");
    assert.equal(evs.filter((e) => e.data.status === "failed").length, 3);
  });
});
