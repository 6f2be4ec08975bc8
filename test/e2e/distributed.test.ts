/**
 * The distributed mode end to end (docs/architecture.md#scale-out): API servers (`openrunner
 * serve`) and workers (`openrunner worker`) as real child processes on one throw-away PostgreSQL
 * server (a fresh database per block), real shell and ACP-fixture runs, SSE over real sockets.
 *
 * Besides the API, the tests read the database directly (`pg`): the events and run rows, and an
 * audit table that a trigger installed by the test fills with every change of a run's `worker_id`
 * or `status` at the database's `clock_timestamp()` (how many runs were claimed at once, and
 * whether a run was ever claimed twice).
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import pg from "pg";
import { TERMINAL_STATUSES, type RunStatus } from "../../src/protocol/events.ts";
import { startPostgres, type TestPostgres } from "../helpers/postgres.ts";
import { Started, followSse, type TestWorker } from "../helpers/cluster.ts";
import { allEvents, createRun, describeEvents, eventsUntil, TERMINAL, type Ev } from "../helpers/events.ts";
import { groupAlive, runProcesses, until, waitFor } from "../helpers/processes.ts";
import type { TestServer } from "../helpers/spawn-server.ts";

const skip = process.env.OPENRUNNER_SKIP_POSTGRES ? "OPENRUNNER_SKIP_POSTGRES is set" : false;
const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const ACP_FIXTURE = path.join(ROOT, "test/fixtures/acp-agent/agent.ts");
const TSX = import.meta.resolve("tsx");
const T = { timeout: 120_000 };

let server: TestPostgres;
const tmpDirs: string[] = [];

/** A temporary folder the runs (an unprivileged user when the workers are root) can look into. */
function gateDir(): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), "openrunner-gate-"));
  chmodSync(dir, 0o755);
  tmpDirs.push(dir);
  return dir;
}

/** A shell fragment that waits until `file` exists (the test opens the gate: no timing in the test). */
const waitForFile = (file: string) => `while [ ! -e ${file} ]; do sleep 0.05; done`;

/** Runs a query on the test database with a client of its own. */
async function query<R extends pg.QueryResultRow>(url: string, sql: string, params: unknown[] = []): Promise<R[]> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    return (await c.query<R>(sql, params)).rows;
  } finally {
    await c.end();
  }
}

/**
 * Installs the audit trigger (after the first process ran the migrations): every change of a
 * run's `worker_id` or `status`, stamped with `clock_timestamp()` inside the writing statement.
 */
async function installAudit(url: string): Promise<void> {
  await query(
    url,
    `CREATE TABLE test_run_audit (seq BIGSERIAL PRIMARY KEY, run_id TEXT NOT NULL, at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(),
       old_worker TEXT, new_worker TEXT, old_status TEXT, new_status TEXT);
     CREATE FUNCTION test_run_audit() RETURNS trigger LANGUAGE plpgsql AS $fn$
     BEGIN
       IF NEW.worker_id IS DISTINCT FROM OLD.worker_id OR NEW.status IS DISTINCT FROM OLD.status THEN
         INSERT INTO test_run_audit (run_id, old_worker, new_worker, old_status, new_status) VALUES (NEW.id, OLD.worker_id, NEW.worker_id, OLD.status, NEW.status);
       END IF;
       RETURN NULL;
     END
     $fn$;
     CREATE TRIGGER test_run_audit AFTER UPDATE ON runs FOR EACH ROW EXECUTE FUNCTION test_run_audit();`,
  );
}

interface AuditRow {
  run_id: string;
  /** Microseconds since the epoch (the database's clock). */
  at_us: number;
  old_worker: string | null;
  new_worker: string | null;
  old_status: string;
  new_status: string;
}

const audit = (url: string, runIds: string[]) => query<AuditRow>(url, "SELECT run_id, (extract(epoch FROM at) * 1000000)::float8 AS at_us, old_worker, new_worker, old_status, new_status FROM test_run_audit WHERE run_id = ANY($1) ORDER BY seq", [runIds]);

/** Asserts the run's `worker_id` was set exactly once (from NULL to a worker, never changed after) and returns that worker. */
function claimedOnce(rows: AuditRow[], runId: string): string {
  const changes = rows.filter((r) => r.run_id === runId && r.old_worker !== r.new_worker);
  assert.equal(changes.length, 1, `worker_id of ${runId} changed ${changes.length} times: ${JSON.stringify(changes)}`);
  assert.equal(changes[0]!.old_worker, null);
  assert.ok(changes[0]!.new_worker);
  return changes[0]!.new_worker!;
}

/** Most intervals open at once; at equal instants an end counts before a start (a slot freed, then taken). */
function peakOverlap(intervals: ReadonlyArray<{ start: number; end: number }>): number {
  const points = intervals.flatMap((i) => [
    { t: i.start, d: 1 },
    { t: i.end, d: -1 },
  ]);
  points.sort((a, b) => a.t - b.t || a.d - b.d);
  let open = 0;
  let peak = 0;
  for (const p of points) {
    open += p.d;
    peak = Math.max(peak, open);
  }
  return peak;
}

/** Asserts ids 1..N in order (no gap, no duplicate) and exactly one terminal event, the last. */
function assertWellFormed(evs: readonly Pick<Ev, "id" | "type">[], what: string): void {
  assert.deepEqual(
    evs.map((e) => e.id),
    evs.map((_, i) => i + 1),
    `${what}: ids not 1..N\n${evs.map((e) => `${e.id} ${e.type}`).join("\n")}`,
  );
  assert.equal(evs.filter((e) => TERMINAL.has(e.type)).length, 1, `${what}: not exactly one terminal event`);
  assert.ok(TERMINAL.has(evs.at(-1)!.type), `${what}: the terminal event is not the last`);
}

async function json<T = any>(s: TestServer, pathname: string, token: string): Promise<T> {
  const res = await s.api(pathname, { token });
  assert.equal(res.status, 200, `GET ${pathname}: ${res.status} ${await res.clone().text()}`);
  return (await res.json()) as T;
}

const runRow = (s: TestServer, token: string, id: string) => json<Record<string, any>>(s, `/api/runs/${id}`, token);
const isTerminal = (status: string) => TERMINAL_STATUSES.includes(status as RunStatus);
const parse = (m: { data: string }) => JSON.parse(m.data) as Ev;

before(async () => {
  if (!skip) server = await startPostgres();
});

after(async () => {
  await server?.stop();
  for (const d of tmpDirs) rmSync(d, { recursive: true, force: true });
});

describe("distributed: one API server, two workers", { skip }, () => {
  const started = new Started();
  let db: string;
  let s: TestServer;
  let w1: TestWorker;
  let w2: TestWorker;
  let token: string;
  let bob: string;

  before(async () => {
    db = await server.createDatabase();
    // A worker plans a claimed run again as its owner: both sides need the setting that lets bob run shell.
    const env = { OPENRUNNER_ALLOW_SHELL_FOR_USERS: "true" };
    s = await started.api({ databaseUrl: db, env });
    [w1, w2] = await Promise.all([started.worker({ databaseUrl: db, env, args: ["--capacity", "3"] }), started.worker({ databaseUrl: db, env: { ...env, OPENRUNNER_WORKER_CAPACITY: "5" } })]);
    token = await s.login();
    assert.equal((await s.api("/api/users", { method: "POST", token, json: { username: "bob", password: "bob-password-1" } })).status, 201);
    bob = await s.login("bob", "bob-password-1");
  });
  after(() => started.stopAll());

  test("GET /api/workers lists both workers (admins only)", T, async () => {
    assert.equal((await s.api("/api/workers", { token: bob })).status, 403);
    assert.equal((await s.api("/api/workers")).status, 401);
    const body = await json<{ mode: string; workers: Array<Record<string, any>> }>(s, "/api/workers", token);
    assert.equal(body.mode, "distributed");
    assert.deepEqual(body.workers.map((w) => w.id).sort(), [w1.id, w2.id].sort());
    for (const [w, capacity] of [
      [w1, 3],
      [w2, 5],
    ] as const) {
      const row = body.workers.find((x) => x.id === w.id)!;
      assert.equal(row.pid, w.pid);
      assert.equal(row.capacity, capacity);
      assert.equal(row.running, 0);
      assert.equal(row.host, os.hostname());
      assert.ok(row.agents.some((a: { agent: string }) => a.agent === "shell"), JSON.stringify(row.agents));
      assert.deepEqual(row.agents.map((a: { agent: string }) => a.agent).sort(), [...w.agents].sort(), "the agents of its ready line");
      assert.ok(row.isolations.includes("none"), JSON.stringify(row.isolations));
      assert.ok(Number.isFinite(Date.parse(row.last_heartbeat)) && Number.isFinite(Date.parse(row.started_at)));
      assert.ok(Date.parse(row.last_heartbeat) >= Date.parse(row.started_at) - 1000);
    }
  });

  test("a run on a worker: SSE from the API server delivers every event, the live ones included; the worker counts it as running", T, async () => {
    const gate = gateDir();
    const runId = await createRun(s, token, `echo first; ${waitForFile(`${gate}/go`)}; echo second; echo third`, { agent_type: "shell" });
    let opened = false;
    let runningSeen: Array<Record<string, any>> = [];
    const stream = followSse(`${s.url}/api/runs/${runId}/events`, {
      token,
      onMessage: (m) => {
        const e = parse(m);
        if (e.type === "log" && e.data.text === "first" && !opened) {
          opened = true;
          // While the run waits at the gate: it is its worker's one running run.
          void json<{ workers: Array<Record<string, any>> }>(s, "/api/workers", token)
            .then((b) => void (runningSeen = b.workers), () => undefined) // a failed read shows in the assertion below
            .finally(() => writeFileSync(`${gate}/go`, ""));
        }
      },
    });
    const out = await stream;
    assert.ok(out.ended, "the stream ends after the terminal event");
    const evs = out.messages.map(parse);
    assert.deepEqual(out.messages.map((m) => m.id), evs.map((e) => String(e.id)), "SSE ids are the events' ids");
    assertWellFormed(evs, runId);
    assert.deepEqual(
      evs.map((e) => (e.type === "log" ? `log ${e.data.text}` : e.type)),
      ["run.queued", "run.started", "log first", "log second", "log third", "run.completed"],
      describeEvents(evs),
    );
    assert.ok(opened, "the gate was opened after `first` arrived: `second`, `third` and the end came live");
    // Which worker ran it: one running run there, none on the other.
    const [row] = await query<{ worker_id: string }>(db, "SELECT worker_id FROM runs WHERE id = $1", [runId]);
    assert.ok([w1.id, w2.id].includes(row!.worker_id));
    assert.deepEqual(
      Object.fromEntries(runningSeen.map((w) => [w.id, w.running])),
      { [row!.worker_id]: 1, [row!.worker_id === w1.id ? w2.id : w1.id]: 0 },
    );
    // The stored page agrees with the stream, and the row is final.
    const page = (await (await s.api(`/api/runs/${runId}/events?after=0`, { token, headers: { Accept: "application/json" } })).json()) as { events: Ev[]; done: boolean };
    assert.deepEqual(page.events, evs);
    assert.equal(page.done, true);
    const run = await runRow(s, token, runId);
    assert.equal(run.status, "completed");
    assert.equal(run.result, "third");
    assert.equal(run.exit_code, 0);
  });

  test("several shell runs complete; each stream is 1..N with one terminal event", T, async () => {
    const ids: string[] = [];
    const streams: Array<Promise<Ev[]>> = [];
    for (let i = 0; i < 8; i++) {
      const who = i % 2 ? bob : token;
      const id = await createRun(s, who, `echo run-${i}; echo done-${i} >&2`, { agent_type: "shell" });
      ids.push(id);
      streams.push(allEvents(s, who, id, 60_000)); // attached while the run is young
    }
    for (const [i, id] of ids.entries()) {
      const evs = await streams[i]!;
      assertWellFormed(evs, id);
      assert.equal(evs.at(-1)!.type, "run.completed", describeEvents(evs));
      assert.equal(evs.filter((e) => e.type === "run.started").length, 1);
      assert.ok(evs.some((e) => e.type === "log" && e.data.text === `run-${i}` && e.data.stream === "stdout"), describeEvents(evs));
      assert.ok(evs.some((e) => e.type === "log" && e.data.text === `done-${i}` && e.data.stream === "stderr"), describeEvents(evs));
    }
    // After the runs, no worker counts a running run.
    const body = await json<{ workers: Array<{ running: number }> }>(s, "/api/workers", token);
    assert.deepEqual(body.workers.map((w) => w.running), [0, 0]);
  });
});

describe("distributed: load, 500 runs through two workers under a global limit of 8", { skip }, () => {
  const started = new Started();
  const LIMIT = 8;
  const N = 500;
  let db: string;
  let s: TestServer;
  let workers: TestWorker[];
  let token: string;
  const env = {
    OPENRUNNER_MAX_CONCURRENT_RUNS: String(LIMIT),
    OPENRUNNER_MAX_CONCURRENT_RUNS_PER_USER: String(LIMIT),
    OPENRUNNER_MAX_QUEUED_RUNS_PER_USER: "1000",
  };

  before(async () => {
    db = await server.createDatabase();
    s = await started.api({ databaseUrl: db, env });
    await installAudit(db); // the API server ran the migrations
    workers = await Promise.all([started.worker({ databaseUrl: db, env, args: ["--capacity", "6"] }), started.worker({ databaseUrl: db, env, args: ["--capacity", "6"] })]);
    token = await s.login();
  });
  after(() => started.stopAll());

  /** Submits `count` runs `echo <n>` in batches of 100; resolves their ids and batch ids. */
  async function submit(count: number, from: number): Promise<{ ids: string[]; batches: string[] }> {
    const ids: string[] = [];
    const batches: string[] = [];
    for (let b = 0; b < count / 100; b++) {
      const runs = Array.from({ length: 100 }, (_, i) => ({ input: { text: `echo ${from + b * 100 + i}` }, metadata: { agent_type: "shell" } }));
      const res = await s.api("/api/runs/batch", { method: "POST", token, json: { runs } });
      assert.equal(res.status, 201, await res.clone().text());
      const body = (await res.json()) as { batch_id: string; runs: Array<{ run_id: string }> };
      batches.push(body.batch_id);
      ids.push(...body.runs.map((r) => r.run_id));
    }
    return { ids, batches };
  }

  /** Follows each batch's stream (`GET /api/batches/:id/events`) to its end: `batch.done`, every run completed. */
  async function batchesDone(batches: string[]): Promise<void> {
    for (const b of batches) {
      const out = await followSse(`${s.url}/api/batches/${b}/events`, { token, timeoutMs: 180_000 });
      assert.ok(out.ended, `the stream of batch ${b} ends`);
      const evs = out.messages.map((m) => JSON.parse(m.data) as { id: number; type: string; data: any });
      assert.deepEqual(evs.map((e) => e.id), evs.map((_, i) => i + 1), `batch ${b}: ids 1..N`);
      const done = evs.at(-1)!;
      assert.equal(done.type, "batch.done");
      assert.equal(done.data.counts.completed, 100, JSON.stringify(done.data.counts));
      // Every run of the batch went to completed once on the stream.
      assert.equal(evs.filter((e) => e.type === "run.status" && e.data.status === "completed").length, 100);
    }
  }

  test("all complete, never more than 8 claimed or running at once, each event stream whole, no run twice, both workers used", { timeout: 240_000 }, async (t) => {
    const { ids, batches } = await submit(N, 0);
    assert.equal(new Set(ids).size, N);
    await batchesDone(batches);

    // Every run's stored events: 1..N, one run.started, one terminal event, the last, run.completed with its output.
    const events = await query<{ run_id: string; id: string; type: string; data: string }>(db, "SELECT run_id, id, type, data FROM events WHERE run_id = ANY($1) ORDER BY run_id, id", [ids]);
    const byRun = new Map<string, Array<{ id: number; type: string; data: any }>>();
    for (const e of events) {
      let list = byRun.get(e.run_id);
      if (!list) byRun.set(e.run_id, (list = []));
      list.push({ id: Number(e.id), type: e.type, data: JSON.parse(e.data) });
    }
    assert.equal(byRun.size, N);
    for (const [i, id] of ids.entries()) {
      const evs = byRun.get(id)!;
      assertWellFormed(evs, id);
      assert.equal(evs.filter((e) => e.type === "run.started").length, 1, `${id}: run.started count`);
      assert.equal(evs.at(-1)!.type, "run.completed");
      assert.deepEqual(evs.filter((e) => e.type === "log").map((e) => e.data.text), [String(i)]);
    }

    // Rows: completed, claimed by one of the two workers, the claim never changed.
    const rows = await query<{ id: string; status: string; worker_id: string | null; started_at: string; ended_at: string }>(db, "SELECT id, status, worker_id, started_at, ended_at FROM runs WHERE id = ANY($1)", [ids]);
    assert.equal(rows.length, N);
    const workerIds = new Set(workers.map((w) => w.id));
    const perWorker = new Map<string, number>();
    const changes = await audit(db, ids);
    for (const r of rows) {
      assert.equal(r.status, "completed");
      assert.ok(r.worker_id && workerIds.has(r.worker_id), `${r.id}: worker_id ${r.worker_id}`);
      assert.equal(claimedOnce(changes, r.id), r.worker_id);
      perWorker.set(r.worker_id, (perWorker.get(r.worker_id) ?? 0) + 1);
    }
    assert.equal(perWorker.size, 2, `both workers took part: ${JSON.stringify([...perWorker])}`);

    // Runs held by a worker at once, from the claim (worker_id set) to the terminal status, on the database's clock
    // (a claim that counted a run as over ran after the commit of its terminal status: the intervals do not overlap).
    const claimed = new Map<string, number>();
    const ended = new Map<string, number>();
    for (const c of changes) {
      if (c.old_worker === null && c.new_worker !== null) claimed.set(c.run_id, c.at_us);
      if (isTerminal(c.new_status) && !isTerminal(c.old_status)) ended.set(c.run_id, c.at_us);
    }
    assert.equal(claimed.size, N);
    assert.equal(ended.size, N);
    const held = ids.map((id) => ({ start: claimed.get(id)!, end: ended.get(id)! }));
    for (const h of held) assert.ok(h.start <= h.end);
    const heldPeak = peakOverlap(held);
    // The same from the rows' started_at .. ended_at (run.started to the terminal event).
    const runPeak = peakOverlap(rows.map((r) => ({ start: Date.parse(r.started_at), end: Date.parse(r.ended_at) })));
    t.diagnostic(`runs per worker ${[...perWorker.values()].join(" + ")}; peak claimed at once ${heldPeak}, peak running at once ${runPeak}`);
    assert.ok(heldPeak <= LIMIT, `${heldPeak} runs claimed at once`);
    assert.ok(runPeak <= LIMIT, `${runPeak} runs running at once`);

    // The API server's SSE of each (finished) run: the stored events, then the end.
    for (const id of ids) {
      const evs = await allEvents(s, token, id, 30_000);
      assert.deepEqual(
        evs.map((e) => `${e.id} ${e.type}`),
        byRun.get(id)!.map((e) => `${e.id} ${e.type}`),
      );
    }
    const view = await json<{ counts: Record<string, number> }>(s, `/api/batches/${batches[0]}`, token);
    assert.equal(view.counts.completed, 100);
  });

  test("300 more runs, read over SSE while they run: every stream delivers 1..N and ends after its terminal event", { timeout: 240_000 }, async () => {
    const { ids, batches } = await submit(300, N);
    // Readers attach as their run is about to end: a follower made from a row read while the run was live must still end.
    const unended: string[] = [];
    // Six readers, each taking every sixth run in queue order: each attaches to its next run as that run is about to end.
    const READERS = 6;
    await Promise.all(
      Array.from({ length: READERS }, async (_, k) => {
        for (let i = k; i < ids.length; i += READERS) {
          const id = ids[i]!;
          // A stream that does not end within 8 s (a run takes well under a second) is noted, not waited for.
          const out = await followSse(`${s.url}/api/runs/${id}/events`, { token, timeoutMs: 8000, endOnTimeout: true });
          const evs = out.messages.map(parse);
          assertWellFormed(evs, id); // every event was delivered, the terminal one included
          if (!out.ended) unended.push(id);
        }
      }),
    );
    await batchesDone(batches);
    assert.deepEqual(unended, [], `${unended.length} streams delivered their terminal event but did not end`);
  });

  test("no deadlock in the database during the load (heartbeats' lease renewals vs. event appends)", async () => {
    const [row] = await query<{ deadlocks: string }>(db, "SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()");
    const logged = [...workers.map((w) => w.output()), s.output()].join("\n").split("\n").filter((l) => /deadlock/.test(l));
    assert.equal(Number(row!.deadlocks), 0, logged.join("\n"));
  });
});

describe("distributed: a worker cut off while its run lives", { skip }, () => {
  const started = new Started();
  const env = { OPENRUNNER_CLUSTER_LEASE_MS: "2000", OPENRUNNER_CLUSTER_HEARTBEAT_MS: "300" };
  let db: string;
  let s: TestServer;
  let token: string;

  before(async () => {
    db = await server.createDatabase();
    s = await started.api({ databaseUrl: db, env });
    token = await s.login();
  });
  after(() => started.stopAll());

  test("a worker stopped (SIGSTOP) past its lease: its run ends worker_lost; resumed, its later output is refused, it stops the run and lets it go (its one slot runs the next run)", T, async () => {
    const a = await started.worker({ databaseUrl: db, env, args: ["--capacity", "1"] });
    const runId = await createRun(s, token, "echo begun; sleep 3; echo later; sleep 30; echo never", { agent_type: "shell" });
    started.orphans.add(runId);
    const before = await eventsUntil(s, token, runId, (e) => e.type === "log" && e.data.text === "begun");
    const pid = before.find((e) => e.type === "run.started")!.data.pid as number;
    process.kill(a.pid, "SIGSTOP"); // alive but silent: no heartbeat, no commit
    try {
      await waitFor(async () => (await runRow(s, token, runId)).status === "failed", 30_000, "the stopped worker's run reaped as worker_lost", 200);
    } finally {
      process.kill(a.pid, "SIGCONT");
    }
    // Resumed, A reads `later` from the pipe and commits it: refused (the run is over); A stops the run's processes and frees its slot.
    await waitFor(() => !groupAlive(pid) && runProcesses(runId).length === 0, 30_000, "the cut-off worker stopped its run's processes");
    const evs = await allEvents(s, token, runId, 30_000);
    assertWellFormed(evs, runId);
    assert.equal(evs.at(-1)!.type, "run.failed", describeEvents(evs));
    assert.equal(evs.at(-1)!.data.error.code, "worker_lost");
    assert.ok(!evs.some((e) => e.type === "log" && (e.data.text === "later" || e.data.text === "never")), "nothing stored after the terminal event");
    // Its only slot is free again: the next run completes on A (no other worker exists).
    const next = await createRun(s, token, "echo next", { agent_type: "shell" });
    const nextEvs = await allEvents(s, token, next, 60_000);
    assert.equal(nextEvs.at(-1)!.type, "run.completed", describeEvents(nextEvs));
    const [row] = await query<{ worker_id: string }>(db, "SELECT worker_id FROM runs WHERE id = $1", [next]);
    assert.equal(row!.worker_id, a.id);
  });
});

describe("distributed: a worker killed mid-run", { skip }, () => {
  const started = new Started();
  // A short lease, renewed often: a lost worker's run ends within seconds.
  const env = { OPENRUNNER_CLUSTER_LEASE_MS: "2000", OPENRUNNER_CLUSTER_HEARTBEAT_MS: "300" };
  let db: string;
  let s: TestServer;
  let token: string;

  before(async () => {
    db = await server.createDatabase();
    s = await started.api({ databaseUrl: db, env });
    await installAudit(db);
    token = await s.login();
  });
  after(() => started.stopAll());

  test("SIGKILL of worker A: its run ends failed worker_lost, the events stored before are kept, B does not start it again; the next run completes on B", T, async () => {
    const a = await started.worker({ databaseUrl: db, env });
    const runId = await createRun(s, token, "echo begun; sleep 30; echo never", { agent_type: "shell" });
    // Attached while the run is live; left open across the worker's death.
    const whole = allEvents(s, token, runId, 60_000);
    const before = await eventsUntil(s, token, runId, (e) => e.type === "log" && e.data.text === "begun");
    const pid = before.find((e) => e.type === "run.started")!.data.pid as number;
    started.orphans.add(runId); // a backstop: the run's processes outlive their killed worker
    assert.ok(groupAlive(pid) && runProcesses(runId).length > 0, "the run's processes are tagged with its id");
    const [claim] = await query<{ worker_id: string }>(db, "SELECT worker_id FROM runs WHERE id = $1", [runId]);
    assert.equal(claim!.worker_id, a.id);
    // B comes up while the run is on A; then A dies without a word.
    const b = await started.worker({ databaseUrl: db, env });
    await a.kill9();

    const evs = await whole;
    assertWellFormed(evs, runId);
    const last = evs.at(-1)!;
    assert.equal(last.type, "run.failed", describeEvents(evs));
    assert.equal(last.data.error.code, "worker_lost");
    assert.match(last.data.error.message, new RegExp(a.id));
    assert.deepEqual(evs.slice(0, before.length), before, "the events stored before the kill are all there, unchanged");
    assert.equal(evs.filter((e) => e.type === "run.started").length, 1, "started once, never again on B");
    assert.ok(!evs.some((e) => e.type === "log" && e.data.text === "never"));
    const run = await runRow(s, token, runId);
    assert.equal(run.status, "failed");
    assert.equal(run.error.code, "worker_lost");
    const changes = await audit(db, [runId]);
    assert.equal(claimedOnce(changes, runId), a.id, "claimed once, by A");
    // The stored page agrees (a reader that comes later).
    const page = (await (await s.api(`/api/runs/${runId}/events?after=0`, { token, headers: { Accept: "application/json" } })).json()) as { events: Ev[] };
    assert.deepEqual(page.events, evs);

    // What A left behind (`sleep 30`, nobody's now): B's orphan sweep (at its start and every 10 heartbeats) kills it once the run is over.
    await waitFor(() => runProcesses(runId).length === 0 && !groupAlive(pid), 15_000, "the killed worker's run processes killed by B's orphan sweep");

    // The next run completes on B; A leaves the workers list once the reaper finds it stale.
    const next = await createRun(s, token, "echo after", { agent_type: "shell" });
    const nextEvs = await allEvents(s, token, next, 60_000);
    assert.equal(nextEvs.at(-1)!.type, "run.completed", describeEvents(nextEvs));
    const [row] = await query<{ worker_id: string }>(db, "SELECT worker_id FROM runs WHERE id = $1", [next]);
    assert.equal(row!.worker_id, b.id);
    await waitFor(async () => {
      const list = await json<{ workers: Array<{ id: string }> }>(s, "/api/workers", token);
      return list.workers.map((w) => w.id).join() === b.id;
    }, 20_000, "A removed from /api/workers", 200);
  });
});

describe("distributed: an API server killed while a client follows a run", { skip }, () => {
  const started = new Started();
  let db: string;
  let s1: TestServer;
  let s2: TestServer;
  let token: string;

  before(async () => {
    db = await server.createDatabase();
    s1 = await started.api({ databaseUrl: db });
    [s2] = await Promise.all([started.api({ databaseUrl: db }), started.worker({ databaseUrl: db })]);
    token = await s1.login(); // valid on both: one JWT secret
  });
  after(() => started.stopAll());

  test("SIGKILL of API 1 mid-stream: the client resumes on API 2 with Last-Event-ID and gets exactly the rest", T, async () => {
    const gate = gateDir();
    // 40 lines, 100 ms apart; after line 20 it waits for the gate, so the rest is written after API 1 is gone.
    const script = `i=1; while [ $i -le 40 ]; do echo line-$i; if [ $i -eq 20 ]; then ${waitForFile(`${gate}/go`)}; fi; sleep 0.1; i=$((i+1)); done`;
    const runId = await createRun(s1, token, script, { agent_type: "shell" });
    const first = await followSse(`${s1.url}/api/runs/${runId}/events`, {
      token,
      onMessage: (m) => {
        const e = parse(m);
        if (e.type === "log" && e.data.text === "line-20") s1.proc.kill("SIGKILL");
      },
    });
    await s1.kill9(); // waits for its exit
    assert.ok(first.broken && !first.ended, "the stream broke with its server");
    const got = first.messages.map(parse);
    assert.ok(got.some((e) => e.type === "log" && e.data.text === "line-20"));
    assert.ok(!got.some((e) => TERMINAL.has(e.type)));
    writeFileSync(`${gate}/go`, "");

    const lastId = got.at(-1)!.id;
    const rest = await followSse(`${s2.url}/api/runs/${runId}/events`, { token, lastEventId: lastId });
    assert.ok(rest.ended, "the stream on API 2 ends after the terminal event");
    const restEvs = rest.messages.map(parse);
    assert.ok(restEvs.length > 0 && restEvs[0]!.id === lastId + 1, `resumed after ${lastId}: ${restEvs[0]?.id}`);
    const all = [...got, ...restEvs];
    assertWellFormed(all, runId);
    assert.equal(all.at(-1)!.type, "run.completed", describeEvents(all));
    assert.deepEqual(
      all.filter((e) => e.type === "log").map((e) => e.data.text),
      Array.from({ length: 40 }, (_, i) => `line-${i + 1}`),
    );
    // API 2 agrees with what was read, and the run row is final.
    const page = (await (await s2.api(`/api/runs/${runId}/events?after=0`, { token, headers: { Accept: "application/json" } })).json()) as { events: Ev[] };
    assert.deepEqual(page.events, all);
    assert.equal((await runRow(s2, token, runId)).status, "completed");
  });
});

describe("distributed: cancel across processes", { skip }, () => {
  const started = new Started();
  // One run per user at once: the user's second run stays queued while the first runs.
  const env = { OPENRUNNER_MAX_CONCURRENT_RUNS_PER_USER: "1", OPENRUNNER_CLUSTER_HEARTBEAT_MS: "300" };
  let db: string;
  let s: TestServer;
  let token: string;

  before(async () => {
    db = await server.createDatabase();
    s = await started.api({ databaseUrl: db, env });
    await Promise.all([started.worker({ databaseUrl: db, env }), started.worker({ databaseUrl: db, env })]);
    token = await s.login();
  });
  after(() => started.stopAll());

  test("a queued run is cancelled by the API server without any worker starting it; a running one by its worker, its process group gone", T, async () => {
    const running = await createRun(s, token, "echo begun; sleep 300 & sleep 300", { agent_type: "shell" });
    const live = await eventsUntil(s, token, running, (e) => e.type === "log" && e.data.text === "begun");
    const pid = live.find((e) => e.type === "run.started")!.data.pid as number;
    started.orphans.add(running);
    assert.ok(groupAlive(pid));

    const queued = await createRun(s, token, "echo never", { agent_type: "shell" });
    // Both workers heartbeat twice after it was queued (each heartbeat is followed by a claim): it stays queued.
    const beats = async () => new Map((await json<{ workers: Array<{ id: string; last_heartbeat: string }> }>(s, "/api/workers", token)).workers.map((w) => [w.id, w.last_heartbeat]));
    const seen = new Map([...(await beats())].map(([id, hb]) => [id, new Set([hb])]));
    assert.equal(seen.size, 2);
    await waitFor(async () => {
      for (const [id, hb] of await beats()) seen.get(id)?.add(hb);
      return [...seen.values()].every((set) => set.size >= 3);
    }, 20_000, "two heartbeats of each worker", 100);
    assert.equal((await runRow(s, token, queued)).status, "queued");

    const res = await s.api(`/api/runs/${queued}/cancel`, { method: "POST", token });
    assert.equal(res.status, 202);
    const qEvs = await allEvents(s, token, queued, 30_000);
    assert.deepEqual(qEvs.map((e) => e.type), ["run.queued", "run.cancelled"], describeEvents(qEvs));
    assertWellFormed(qEvs, queued);
    assert.equal(qEvs[1]!.data.by, "user:admin");
    const [qRow] = await query<{ status: string; worker_id: string | null }>(db, "SELECT status, worker_id FROM runs WHERE id = $1", [queued]);
    assert.deepEqual(qRow, { status: "cancelled", worker_id: null }, "no worker ever claimed it");

    // The running run: the API server tells its worker; the run ends cancelled and its whole group is gone.
    assert.equal((await s.api(`/api/runs/${running}/cancel`, { method: "POST", token })).status, 202);
    const evs = await allEvents(s, token, running, 30_000);
    assertWellFormed(evs, running);
    assert.equal(evs.at(-1)!.type, "run.cancelled", describeEvents(evs));
    assert.equal(evs.at(-1)!.data.by, "user:admin");
    await waitFor(() => !groupAlive(pid) && runProcesses(running).length === 0, 10_000, "the cancelled run's processes gone");
    assert.equal((await runRow(s, token, running)).status, "cancelled");
    // The cancelled queued run was never started afterwards either (its slot freed meanwhile).
    assert.deepEqual((await allEvents(s, token, queued, 30_000)).map((e) => e.type), ["run.queued", "run.cancelled"]);
  });
});

describe("distributed: permission requests across processes (ACP fixture agent)", { skip }, () => {
  const started = new Started();
  let db: string;
  let s: TestServer;
  let token: string;
  let configDir: string;

  before(async () => {
    db = await server.createDatabase();
    configDir = mkdtempSync(path.join(os.tmpdir(), "openrunner-dist-config-"));
    tmpDirs.push(configDir);
    const config = path.join(configDir, "openrunner.yaml");
    // The same file for the API server (it checks the agent name and the ACP binding) and the worker (it runs it).
    writeFileSync(
      config,
      JSON.stringify({
        acp_agents: { fixture: { command: process.execPath, args: ["--import", TSX, ACP_FIXTURE], vendor: "none" } },
        permissions: { default_policy: "ask", timeout_secs: 300, timeout_decision: "reject" },
      }),
    );
    const env = { OPENRUNNER_CONFIG: config };
    s = await started.api({ databaseUrl: db, env });
    const w = await started.worker({ databaseUrl: db, env });
    assert.ok(w.agents.includes("acp:fixture"), w.agents.join(", "));
    token = await s.login();
  });
  after(() => started.stopAll());

  const script = JSON.stringify({ steps: [{ permission: { id: "call-1", title: "Write hello.txt" } }, { say: "after" }] });
  const answer = (runId: string, requestId: string, optionId: string) => s.api(`/api/runs/${runId}/permissions/${requestId}`, { method: "POST", token, json: { option_id: optionId } });

  test("ask: the request reaches the API server, the answer reaches the worker, the decision is recorded and the run goes on", T, async () => {
    const runId = await createRun(s, token, script, { agent_type: "acp", acp_agent: "fixture", permission_policy: "ask" });
    let requestId = "";
    let answered: Promise<Response> | undefined;
    const out = await followSse(`${s.url}/api/runs/${runId}/events`, {
      token,
      onMessage: (m) => {
        const e = parse(m);
        if (e.type === "permission.request" && !answered) {
          requestId = e.data.request_id;
          answered = (async () => {
            // The API server lists it from the stored events, and the run shows waiting.
            const open = await json<{ permissions: Array<Record<string, any>> }>(s, `/api/runs/${runId}/permissions`, token);
            assert.deepEqual(open.permissions.map((p) => [p.request_id, p.call_id, p.name]), [[requestId, "call-1", "Write hello.txt"]]);
            assert.equal(Date.parse(open.permissions[0]!.deadline) - Date.parse(open.permissions[0]!.requested_at), 300_000);
            await until(async () => ((await runRow(s, token, runId)).status === "waiting" ? true : undefined), 10_000, "run waiting");
            const bad = await answer(runId, requestId, "maybe");
            assert.equal(bad.status, 400);
            assert.equal(((await bad.json()) as { error: { code: string } }).error.code, "unknown_option");
            assert.equal((await answer(runId, "perm_0000", "allow")).status, 404);
            return answer(runId, requestId, "allow");
          })();
          answered.catch(() => undefined); // awaited (and its failure reported) below
        }
      },
    });
    assert.ok(answered, "a permission.request event arrived");
    const ok = await answered;
    assert.equal(ok.status, 200);
    assert.deepEqual(await ok.json(), { request_id: requestId, decision: "allow", by: "user:admin", option_name: "Allow", kind: "allow_once" });
    assert.ok(out.ended);
    const evs = out.messages.map(parse);
    assertWellFormed(evs, runId);
    assert.equal(evs.at(-1)!.type, "run.completed", describeEvents(evs, 200));
    const req = evs.find((e) => e.type === "permission.request")!;
    const dec = evs.find((e) => e.type === "permission.decision")!;
    assert.ok(req.id < dec.id);
    assert.deepEqual(dec.data, { request_id: requestId, decision: "allow", by: "user:admin", option_name: "Allow", kind: "allow_once" });
    assert.equal(evs.filter((e) => e.type === "permission.decision").length, 1);
    assert.match(evs.filter((e) => e.type === "message").map((e) => e.data.text).join(""), /permission allow/);
    // Decided: a second answer is refused (read from the stored events).
    const again = await answer(runId, requestId, "reject");
    assert.equal(again.status, 409);
    assert.equal(((await again.json()) as { error: { code: string } }).error.code, "permission_already_decided");
    assert.equal((await runRow(s, token, runId)).status, "completed");
  });

  test("two answers at once: one is applied (200), the other refused 409 as on one process, never told it was applied", T, async () => {
    // Five requests in one run, each answered twice at once (a narrow race each time: five chances).
    const ROUNDS = 5;
    const steps = Array.from({ length: ROUNDS }, (_, i) => ({ permission: { id: `call-${i}`, title: `Step ${i}` } }));
    const runId = await createRun(s, token, JSON.stringify({ steps: [...steps, { say: "after" }] }), { agent_type: "acp", acp_agent: "fixture", permission_policy: "ask" });
    const rounds: Array<{ requestId: string; replies: Array<{ option: string; status: number; body: Record<string, any> }> }> = [];
    const work: Array<Promise<void>> = [];
    const out = await followSse(`${s.url}/api/runs/${runId}/events`, {
      token,
      onMessage: (m) => {
        const e = parse(m);
        if (e.type !== "permission.request") return;
        const round = { requestId: e.data.request_id as string, replies: [] as Array<{ option: string; status: number; body: Record<string, any> }> };
        rounds.push(round);
        work.push(
          Promise.all(
            ["reject", "allow"].map(async (option) => {
              const res = await answer(runId, round.requestId, option);
              round.replies.push({ option, status: res.status, body: (await res.json()) as Record<string, any> });
            }),
          ).then(() => undefined),
        );
      },
    });
    await Promise.all(work);
    assert.ok(out.ended);
    const evs = out.messages.map(parse);
    assertWellFormed(evs, runId);
    assert.equal(evs.at(-1)!.type, "run.completed", describeEvents(evs, 200));
    assert.equal(rounds.length, ROUNDS);
    const wrong: string[] = [];
    for (const r of rounds) {
      const decisions = evs.filter((e) => e.type === "permission.decision" && e.data.request_id === r.requestId);
      assert.equal(decisions.length, 1);
      const applied = decisions[0]!.data.decision as string;
      const told = r.replies.filter((x) => x.status === 200).map((x) => x.body.decision);
      const others = r.replies.filter((x) => x.status !== 200);
      if (told.length !== 1 || told[0] !== applied || others.some((x) => x.status !== 409 || x.body.error?.code !== "permission_already_decided")) {
        wrong.push(`${r.requestId}: replies ${JSON.stringify(r.replies.map((x) => [x.option, x.status, x.body.decision ?? x.body.error?.code]))}, the run went on with ${applied}`);
      }
    }
    assert.deepEqual(wrong, [], `${wrong.length} of ${ROUNDS} requests answered 200 to an answer that was not applied`);
  });
});
