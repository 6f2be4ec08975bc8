/**
 * The PostgreSQL store: the shared suite (`store-suite.ts`) on a throw-away server (a fresh
 * database per test; once more on a database whose default collation is ICU en-US, so ordering
 * cannot lean on a byte-order default), PostgreSQL's own transaction behaviour, the migrations,
 * and several writer processes appending to one run at once.
 */
import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import path from "node:path";
import readline from "node:readline";
import { fileURLToPath } from "node:url";
import pg from "pg";
import { applyPostgresMigrations, openPostgresCluster, openPostgresStore, PG_MIGRATIONS, type PostgresStore } from "../../src/store/postgres/index.ts";
import type { RunEvent } from "../../src/protocol/events.ts";
import { MIGRATIONS } from "../../src/store/migrations.ts";
import { isConstraintViolation, type Store } from "../../src/store/types.ts";
import { startPostgres, type TestPostgres } from "../helpers/postgres.ts";
import { insertRun, logEvent, storeSuite } from "./store-suite.ts";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const writer = path.join(root, "test/fixtures/pg-writer.ts");

/** Set to skip these tests on a machine without PostgreSQL (CI installs Debian's `postgresql`). */
const skip = process.env.OPENRUNNER_SKIP_POSTGRES ? "OPENRUNNER_SKIP_POSTGRES is set" : false;

describe("PostgreSQL store", { skip }, () => {
  let server: TestPostgres;
  before(async () => {
    server = await startPostgres();
  });
  after(async () => {
    await server?.stop();
  });

  storeSuite("postgres", async () => openPostgresStore({ url: await server.createDatabase(), poolSize: 4 }));

  let icuWarned = false;
  storeSuite("postgres, ICU en-US default collation", async () => {
    let url: string;
    try {
      url = await server.createDatabase({ icuLocale: "en-US" });
    } catch (err) {
      // PostgreSQL before 15, or built without ICU: the collation-independence checks run on the default database only.
      if (!icuWarned) process.stderr.write(`# no ICU database (${(err as Error).message}); using the default collation\n`);
      icuWarned = true;
      url = await server.createDatabase();
    }
    return openPostgresStore({ url, poolSize: 4 });
  });

  describe("postgres: migrations", () => {
    test("the same ids and names as SQLite's; applied once, a no-op on reopening; data kept", async () => {
      assert.deepEqual(PG_MIGRATIONS.map((m) => [m.id, m.name]), MIGRATIONS.map((m) => [m.id, m.name]));
      const url = await server.createDatabase();
      const store = await openPostgresStore({ url });
      assert.equal(store.kind, "postgres");
      await store.users.create({ username: "kept", password_hash: "h", role: "user" });
      await store.close();
      const pool = new pg.Pool({ connectionString: url });
      try {
        assert.deepEqual(await applyPostgresMigrations(pool), []);
      } finally {
        await pool.end();
      }
      const rows = await query<{ version: number; name: string; applied_at: string }>(url, "SELECT version, name, applied_at FROM schema_migrations ORDER BY version");
      assert.deepEqual(rows.map((r) => r.version), MIGRATIONS.map((m) => m.id));
      assert.ok(rows.every((r) => !Number.isNaN(Date.parse(r.applied_at))));
      const again = await openPostgresStore({ url });
      assert.equal((await again.users.getByUsername("kept"))?.username, "kept");
      await again.close();
    });

    test("apply new entries in order, roll back a failing one, refuse a newer database or a bad list", async () => {
      const url = await server.createDatabase();
      const client = new pg.Client({ connectionString: url });
      await client.connect();
      try {
        const first = [{ id: 1, name: "a", sql: "CREATE TABLE a (x INTEGER)" }];
        assert.deepEqual(await applyPostgresMigrations(client, first), [1]);
        const more = [...first, { id: 2, name: "b", sql: "CREATE TABLE b (x INTEGER)" }, { id: 3, name: "bad", sql: "CREATE TABLE c (x INTEGER); SELECT * FROM nope" }];
        await assert.rejects(applyPostgresMigrations(client, more), /nope/);
        const tables = await client.query<{ tablename: string }>("SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename");
        assert.deepEqual(tables.rows.map((r) => r.tablename), ["a", "b", "schema_migrations"]);
        await assert.rejects(applyPostgresMigrations(client, []), /newer than this build/);
        await assert.rejects(applyPostgresMigrations(client, [first[0]!, first[0]!]), /ascending/);
        assert.deepEqual(await applyPostgresMigrations(client, more.slice(0, 2)), [], "a second call is a no-op");
        await client.query("INSERT INTO schema_migrations (version, name, applied_at) VALUES (99, 'future', $1)", [new Date().toISOString()]);
      } finally {
        await client.end();
      }
      await assert.rejects(openPostgresStore({ url }), /newer than this build/, "a database with versions this build does not know");
    });

    test("two processes opening a new database at once apply each migration once", async () => {
      const url = await server.createDatabase();
      const outputs = await runTogether([0, 1, 2].map(() => ["migrate", url]));
      const applied = outputs.flatMap((o) => (o as { applied: number[] }).applied).sort((a, b) => a - b);
      assert.deepEqual(applied, PG_MIGRATIONS.map((m) => m.id), "every migration applied by exactly one process");
      const rows = await query<{ version: number }>(url, "SELECT version FROM schema_migrations ORDER BY version");
      assert.deepEqual(rows.map((r) => r.version), PG_MIGRATIONS.map((m) => m.id));
    });
  });

  describe("postgres: transactions", () => {
    let store: Store;
    before(async () => {
      store = await openPostgresStore({ url: await server.createDatabase(), poolSize: 3 });
    });
    after(async () => {
      await store?.close();
    });

    test("a statement error caught inside fn still rejects the transaction (PostgreSQL aborts it) and nothing is stored", async () => {
      const u = await store.users.create({ username: "tx_u", password_hash: "h", role: "user" });
      await insertRun(store, "run_abort", u.id);
      await store.events.insertBatch([logEvent("run_abort", 1)]);
      await assert.rejects(
        store.transaction(async (tx) => {
          await tx.runs.update("run_abort", { status: "running" });
          await tx.events.insertBatch([logEvent("run_abort", 1, "dup")]).catch(() => undefined); // swallowed
          return "resolved";
        }),
        isConstraintViolation,
      );
      assert.equal((await store.runs.get("run_abort"))!.status, "queued");
      // The same inside a savepoint: the savepoint rejects, the outer transaction goes on.
      const n = await store.transaction(async (tx) => {
        await assert.rejects(
          tx.transaction(async (t2) => {
            await t2.events.insertBatch([logEvent("run_abort", 1, "dup")]).catch(() => undefined);
          }),
          isConstraintViolation,
        );
        await tx.runs.update("run_abort", { status: "running" });
        return tx.events.lastId("run_abort");
      });
      assert.equal(n, 1);
      assert.equal((await store.runs.get("run_abort"))!.status, "running");
    });

    test("connections read committed whatever the server's default, and a NUL in a text column is stored as U+FFFD instead of failing the write", async () => {
      const strict = await server.createDatabase();
      const dbName = new URL(strict).pathname.slice(1);
      await query(strict, `ALTER DATABASE "${dbName}" SET default_transaction_isolation = 'serializable'`);
      const other = await openPostgresStore({ url: strict, poolSize: 1 });
      try {
        const seen = await (other as PostgresStore).pool.query<{ default_transaction_isolation: string }>("SHOW default_transaction_isolation");
        assert.equal(seen.rows[0]!.default_transaction_isolation, "read committed");
      } finally {
        await other.close();
      }
      const u = await store.users.create({ username: "tx_nul", password_hash: "h", role: "user" });
      await insertRun(store, "run_nul", u.id);
      await store.runs.update("run_nul", { result: "a\u0000b", status: "completed" });
      assert.equal((await store.runs.get("run_nul"))!.result, "a\ufffdb");
      const level = await store.transaction(async (tx) => {
        const [e] = await tx.events.append("run_nul", [{ ts: new Date().toISOString(), type: "log", data: { stream: "stdout", text: "nul \u0000 in data" } }]);
        return e!.id;
      });
      assert.equal(level, 1);
      assert.equal(((await store.events.list("run_nul", 0, 10))[0]!.data as { text: string }).text, "nul \u0000 in data", "JSON text escapes NUL: kept as it was");
    });

    test("the repositories of a finished transaction refuse to run", async () => {
      let leaked: Store["runs"] | undefined;
      await store.transaction(async (tx) => {
        leaked = tx.runs;
      });
      await assert.rejects(leaked!.get("run_abort"), /transaction has ended/);
    });

    test("more concurrent transactions than pooled connections all commit", async () => {
      const u = await store.users.create({ username: "tx_many", password_hash: "h", role: "user" });
      await insertRun(store, "run_many", u.id);
      const ids = await Promise.all(
        Array.from({ length: 12 }, (_, i) =>
          store.transaction(async (tx) => {
            const [e] = await tx.events.append("run_many", [{ ts: new Date().toISOString(), type: "log", data: { stream: "stdout", text: `t${i}` } }]);
            await tx.runs.update("run_many", { session_id: `s${i}` });
            return e!.id;
          }),
        ),
      );
      assert.deepEqual([...ids].sort((a, b) => a - b), Array.from({ length: 12 }, (_, i) => i + 1));
    });
  });

  describe("postgres: migration 5 (cluster)", () => {
    let store: PostgresStore;
    let url: string;
    before(async () => {
      url = await server.createDatabase();
      store = await openPostgresStore({ url, poolSize: 3 });
    });
    after(async () => {
      await store?.close();
    });
    const draft = (type: "log" | "run.completed" | "run.failed", data: Record<string, unknown> = {}) =>
      ({ ts: new Date().toISOString(), type, data: type === "log" ? { stream: "stdout", text: "x" } : { exit_code: 0, duration_ms: 1, ...data } }) as Pick<RunEvent, "ts" | "type" | "data">;

    test("no event may follow a run's terminal event (SQLSTATE 23514, a constraint violation)", async () => {
      const u = await store.users.create({ username: "fence", password_hash: "h", role: "user" });
      await insertRun(store, "run_over", u.id, { status: "running" });
      await store.events.append("run_over", [draft("log"), draft("run.completed")]);
      const refused = (err: unknown) => isConstraintViolation(err) && (err as { code?: string }).code === "23514" && /is over/.test((err as Error).message);
      await assert.rejects(store.events.append("run_over", [draft("log")]), refused);
      await assert.rejects(store.events.insertBatch([logEvent("run_over", 3)]), refused);
      await assert.rejects(store.events.append("run_over", [draft("run.failed", { error: { code: "worker_lost", message: "m" } })]), refused, "nor a second terminal event");
      assert.equal((await store.runs.get("run_over"))!.last_event_id, 2, "the refused appends gave their numbers back");
      await insertRun(store, "run_same", u.id);
      await assert.rejects(store.events.insertBatch([{ ...logEvent("run_same", 1), type: "run.completed", data: { exit_code: 0, duration_ms: 1 } } as RunEvent, logEvent("run_same", 2)]), refused, "within one statement too");
      // A run's status alone does not fence: the terminal event of a run whose row says completed is stored.
      await insertRun(store, "run_row_done", u.id, { status: "completed" });
      await store.events.insertBatch([logEvent("run_row_done", 1)]);
    });

    test("every committed insert announces '<run_id>:<highest id>' on openrunner_events; a rollback announces nothing", async () => {
      const u = await store.users.create({ username: "notify", password_hash: "h", role: "user" });
      for (const id of ["run_n1", "run_n2", "run_rb", "run_end"]) await insertRun(store, id, u.id);
      const listener = new pg.Client({ connectionString: url });
      await listener.connect();
      const heard: string[] = [];
      const done = new Promise<void>((resolve) =>
        listener.on("notification", (n) => {
          if (n.channel !== "openrunner_events") return;
          heard.push(n.payload ?? "");
          if (n.payload === "run_end:1") resolve();
        }),
      );
      try {
        await listener.query("LISTEN openrunner_events");
        await store.events.insertBatch([logEvent("run_n1", 1), logEvent("run_n1", 2), logEvent("run_n2", 1)]);
        await assert.rejects(
          store.transaction(async (tx) => {
            await tx.events.append("run_rb", [draft("log")]);
            throw new Error("rolled back");
          }),
        );
        await store.transaction(async (tx) => {
          await tx.events.append("run_n1", [draft("log")]);
          await tx.events.append("run_n1", [draft("log"), draft("log")]);
        });
        await store.events.append("run_end", [draft("log")]);
        await done;
        assert.deepEqual(heard.sort(), ["run_end:1", "run_n1:2", "run_n1:3", "run_n1:5", "run_n2:1"]);
      } finally {
        await listener.end();
      }
    });

    test("the schema carries what the cluster queries need (workers, claims, leases, reaping)", async (t) => {
      const { store, cluster } = await openPostgresCluster({ url: await server.createDatabase() }); // a database of its own: counts start at 0
      t.after(() => store.close());
      const u = await store.users.create({ username: "cluster", password_hash: "h", role: "user" });
      await insertRun(store, "run_claim", u.id, { created_at: "2030-01-01T00:00:00.000Z" });
      await cluster.registerWorker({ id: "wrk_1", host: "h1", pid: 42, agents: [{ agent: "shell" }], isolations: ["none"], capacity: 2 });
      assert.equal(await cluster.heartbeat("wrk_1"), true);
      assert.equal(await cluster.heartbeat("wrk_none"), false);
      assert.equal(await cluster.queuedCount(), 1);
      const claimed = await cluster.claim({ workerId: "wrk_1", agents: ["shell"], isolations: ["none"], choose: (queued) => queued.map((q) => q.id) });
      assert.deepEqual(claimed.map((r) => r.id), ["run_claim"]);
      assert.equal(await cluster.queuedCount(u.id), 0);
      const [worker] = await cluster.listWorkers();
      assert.deepEqual([worker!.id, worker!.running, worker!.capacity, worker!.agents], ["wrk_1", 1, 2, [{ agent: "shell" }]]);
      assert.ok(!Number.isNaN(Date.parse(worker!.last_heartbeat)));
      assert.deepEqual(await cluster.reapExpired(3_600_000), [], "its worker was heard from within the lease");
      await cluster.heartbeat("wrk_1");
      await new Promise((r) => setTimeout(r, 20)); // silent for longer than a 10 ms lease
      assert.deepEqual(await cluster.reapExpired(10), ["run_claim"]);
      const row = (await store.runs.get("run_claim"))!;
      assert.equal(row.status, "failed");
      assert.equal(row.error?.code, "worker_lost");
      const [failed] = await store.events.list("run_claim", 0, 10);
      assert.equal(failed?.type, "run.failed");
      await assert.rejects(store.events.append("run_claim", [draft("log")]), isConstraintViolation, "the lost worker's later events are refused");
      await cluster.removeWorker("wrk_1");
      assert.deepEqual(await cluster.listWorkers(), []);

      // The trigger's notifications, as the cluster's listener parses them.
      await insertRun(store, "run:with:colons", u.id);
      let heard: (v: [string, number]) => void = () => {};
      const announced = new Promise<[string, number]>((resolve) => (heard = resolve));
      const stop = await cluster.listen({ events: (runId, lastId) => heard([runId, lastId]) });
      try {
        await store.events.append("run:with:colons", [draft("log"), draft("log")]);
        assert.deepEqual(await announced, ["run:with:colons", 2]);
      } finally {
        await stop();
      }
    });
  });

  describe("postgres: several writer processes", () => {
    test("4 processes × 200 appends to one run: ids exactly 1..N, no gap or duplicate, last_event_id N", async () => {
      const url = await server.createDatabase();
      const store = await openPostgresStore({ url });
      try {
        const u = await store.users.create({ username: "writers", password_hash: "h", role: "user" });
        await insertRun(store, "run_shared", u.id);
        const outputs = (await runTogether([1, 2, 3, 4].map((seed) => ["append", url, "run_shared", "200", String(seed)]))) as Array<{ ids: number[] }>;
        const owner = new Map<number, number>();
        outputs.forEach((o, proc) => {
          for (const id of o.ids) {
            assert.equal(owner.has(id), false, `id ${id} given twice`);
            owner.set(id, proc);
          }
        });
        const n = owner.size;
        assert.ok(n >= 800 && n <= 2400, `${n} events`);
        assert.deepEqual([...owner.keys()].sort((a, b) => a - b), Array.from({ length: n }, (_, i) => i + 1));
        const stored = await store.events.list("run_shared", 0, 10_000);
        assert.deepEqual(stored.map((e) => e.id), Array.from({ length: n }, (_, i) => i + 1));
        assert.equal((await store.runs.get("run_shared"))!.last_event_id, n);
        assert.equal(await store.events.lastId("run_shared"), n);
        let switches = 0;
        for (let id = 2; id <= n; id++) if (owner.get(id) !== owner.get(id - 1)) switches++;
        assert.ok(switches >= 20, `the processes' appends interleave (${switches} switches)`);
      } finally {
        await store.close();
      }
    });
  });
});

async function query<R extends pg.QueryResultRow>(url: string, sql: string, values?: unknown[]): Promise<R[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query<R>(sql, values)).rows;
  } finally {
    await client.end();
  }
}

/**
 * Starts one `pg-writer.ts` process per argument list, waits until all print `ready`, tells them
 * `go` together, and resolves each one's JSON output line (in argument order).
 * @throws when a process exits non-zero (with its stderr), or after 120 s.
 */
async function runTogether(argLists: string[][]): Promise<unknown[]> {
  const children = argLists.map((args) => {
    const child = spawn(process.execPath, ["--import", "tsx", writer, ...args], { cwd: root, stdio: ["pipe", "pipe", "pipe"] });
    let stderr = "";
    child.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d));
    const lines = readline.createInterface({ input: child.stdout });
    const ready = new Promise<void>((resolve, reject) => {
      lines.on("line", (l) => l === "ready" && resolve());
      child.once("exit", (code) => reject(new Error(`writer exited ${code} before ready: ${stderr}`)));
    });
    const output = new Promise<unknown>((resolve, reject) => {
      let last: string | undefined;
      lines.on("line", (l) => {
        if (l !== "ready") last = l;
      });
      child.once("exit", (code) => {
        if (code === 0 && last !== undefined) resolve(JSON.parse(last));
        else reject(new Error(`writer ${args.join(" ")} exited ${code}: ${stderr}`));
      });
    });
    ready.catch(() => undefined);
    return { child, ready, output };
  });
  const timer = setTimeout(() => {
    for (const c of children) c.child.kill("SIGKILL");
  }, 120_000);
  try {
    await Promise.all(children.map((c) => c.ready));
    for (const c of children) c.child.stdin.write("go\n");
    for (const c of children) c.child.stdin.end();
    return await Promise.all(children.map((c) => c.output));
  } catch (err) {
    for (const c of children) c.child.kill("SIGKILL");
    throw err;
  } finally {
    clearTimeout(timer);
  }
}
