import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import Database from "better-sqlite3";
import { openSqliteStore } from "../../src/store/sqlite.ts";
import { applyMigrations, MIGRATIONS } from "../../src/store/migrations.ts";
import type { Store, RunRow } from "../../src/store/types.ts";
import type { RunEvent, RunStatus } from "../../src/protocol/events.ts";
import { ConflictError, ValidationError } from "../../src/errors.ts";

let tmp: string;
before(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), "openrunner-store-"));
});
after(() => {
  fs.rmSync(tmp, { recursive: true, force: true });
});

function openMemory(): Store {
  return openSqliteStore({ file: ":memory:" });
}

function insertRun(store: Store, id: string, user_id: string, over: Partial<Pick<RunRow, "agent" | "status" | "created_at">> = {}): RunRow {
  return store.runs.insert({
    id,
    user_id,
    agent: over.agent ?? "shell",
    status: over.status ?? "queued",
    input: { text: `prompt ${id}` },
    metadata: { agent_type: over.agent ?? "shell" },
    cwd: `/ws/${id}`,
    created_at: over.created_at ?? new Date().toISOString(),
  });
}

function logEvent(run_id: string, id: number, text = `line ${id}`): RunEvent {
  return { id, run_id, ts: new Date().toISOString(), type: "log", data: { stream: "stdout", text } };
}

describe("migrations", () => {
  test("apply once on a file database, then are a no-op after reopening", () => {
    const file = path.join(tmp, "migrate", "db.sqlite");
    const store = openSqliteStore({ file });
    store.users.create({ username: "kept", password_hash: "h", role: "user" });
    store.close();
    store.close(); // idempotent

    const db = new Database(file);
    assert.deepEqual(applyMigrations(db), []);
    assert.deepEqual(applyMigrations(db), []);
    const versions = db.prepare("SELECT version FROM schema_migrations ORDER BY version").pluck().all();
    assert.deepEqual(versions, MIGRATIONS.map((m) => m.id));
    const applied = db.prepare("SELECT applied_at FROM schema_migrations").pluck().get() as string;
    assert.ok(!Number.isNaN(Date.parse(applied)));
    assert.equal(db.pragma("journal_mode", { simple: true }), "wal");
    db.close();

    const again = openSqliteStore({ file });
    assert.equal(again.users.getByUsername("kept")?.username, "kept");
    again.close();
  });

  test("apply new entries in order, roll back a failing one, refuse a newer database", () => {
    const db = new Database(":memory:");
    const first = [{ id: 1, name: "a", sql: "CREATE TABLE a (x INTEGER)" }];
    assert.deepEqual(applyMigrations(db, first), [1]);
    const more = [...first, { id: 2, name: "b", sql: "CREATE TABLE b (x INTEGER)" }, { id: 3, name: "bad", sql: "CREATE TABLE c (x); SELECT * FROM nope" }];
    assert.throws(() => applyMigrations(db, more), /nope/);
    const tables = db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").pluck().all();
    assert.deepEqual(tables, ["a", "b", "schema_migrations"]);
    assert.throws(() => applyMigrations(db, []), /newer than this build/);
    assert.throws(() => applyMigrations(db, [first[0]!, first[0]!]), /ascending/);
    db.close();
  });
});

describe("users and api keys", () => {
  test("create, look up, list, unique username", () => {
    const store = openMemory();
    assert.equal(store.users.count(), 0);
    const a = store.users.create({ username: "alice", password_hash: "ha", role: "admin" });
    const b = store.users.create({ username: "bob", password_hash: "hb", role: "user" });
    assert.match(a.id, /^usr_[0-9A-HJKMNP-TV-Z]{26}$/);
    assert.equal(store.users.count(), 2);
    assert.deepEqual(store.users.getById(a.id), a);
    assert.deepEqual(store.users.getByUsername("bob"), b);
    assert.equal(store.users.getByUsername("carol"), undefined);
    assert.deepEqual(store.users.list().map((u) => u.username), ["alice", "bob"]);
    assert.throws(() => store.users.create({ username: "alice", password_hash: "x", role: "user" }), ConflictError);
    store.close();
  });

  test("api keys: active lookup, revoke only own and only once, touch", () => {
    const store = openMemory();
    const a = store.users.create({ username: "alice", password_hash: "h", role: "user" });
    const b = store.users.create({ username: "bob", password_hash: "h", role: "user" });
    const k = store.apiKeys.create({ user_id: a.id, name: "ci", prefix: "or_ab12", key_hash: "f".repeat(64) });
    assert.match(k.id, /^key_[0-9A-Z]{26}$/);
    assert.equal(k.revoked_at, null);
    assert.deepEqual(store.apiKeys.getActiveByHash("f".repeat(64)), k);
    store.apiKeys.touch(k.id, "2030-01-01T00:00:00.000Z");
    assert.equal(store.apiKeys.listByUser(a.id)[0]?.last_used_at, "2030-01-01T00:00:00.000Z");
    assert.deepEqual(store.apiKeys.listByUser(b.id), []);
    assert.equal(store.apiKeys.revoke(k.id, b.id), false);
    assert.equal(store.apiKeys.revoke(k.id, a.id), true);
    assert.equal(store.apiKeys.revoke(k.id, a.id), false);
    assert.equal(store.apiKeys.getActiveByHash("f".repeat(64)), undefined);
    assert.notEqual(store.apiKeys.listByUser(a.id)[0]?.revoked_at, null);
    const made = Array.from({ length: 20 }, (_, i) => store.apiKeys.create({ user_id: b.id, name: `k${i}`, prefix: "or_x", key_hash: `h${i}` }).id);
    assert.deepEqual(store.apiKeys.listByUser(b.id).map((k) => k.id), made, "listed in creation order");
    store.close();
  });

  test("deleting a user removes their api keys, runs and events, and nobody else's", () => {
    const store = openMemory();
    const a = store.users.create({ username: "alice", password_hash: "h", role: "user" });
    const b = store.users.create({ username: "bob", password_hash: "h", role: "user" });
    store.apiKeys.create({ user_id: a.id, name: "k", prefix: "or_1", key_hash: "1" });
    store.apiKeys.create({ user_id: b.id, name: "k", prefix: "or_2", key_hash: "2" });
    insertRun(store, "run_a", a.id);
    insertRun(store, "run_b", b.id);
    store.events.insertBatch([logEvent("run_a", 1), logEvent("run_a", 2), logEvent("run_b", 1)]);

    assert.equal(store.users.delete(a.id), true);
    assert.equal(store.users.delete(a.id), false);
    assert.equal(store.users.getById(a.id), undefined);
    assert.equal(store.apiKeys.getActiveByHash("1"), undefined);
    assert.equal(store.runs.get("run_a"), undefined);
    assert.deepEqual(store.events.list("run_a", 0, 10), []);
    assert.ok(store.apiKeys.getActiveByHash("2"));
    assert.ok(store.runs.get("run_b"));
    assert.equal(store.events.list("run_b", 0, 10).length, 1);
    store.close();
  });
});

describe("runs", () => {
  test("insert and get round-trip JSON columns; update patches only the given fields", () => {
    const store = openMemory();
    const u = store.users.create({ username: "u", password_hash: "h", role: "user" });
    const run = insertRun(store, "run_1", u.id);
    assert.deepEqual(run.input, { text: "prompt run_1" });
    assert.deepEqual(run.metadata, { agent_type: "shell" });
    assert.equal(run.last_event_id, 0);
    assert.equal(run.usage, null);

    store.runs.update("run_1", { status: "running", started_at: "2030-01-01T00:00:00.000Z" });
    store.runs.update("run_1", { usage: { input_tokens: 3, output_tokens: 4 }, error: { code: "internal", message: "x" }, session_id: undefined });
    const got = store.runs.get("run_1")!;
    assert.equal(got.status, "running");
    assert.equal(got.started_at, "2030-01-01T00:00:00.000Z");
    assert.deepEqual(got.usage, { input_tokens: 3, output_tokens: 4 });
    assert.deepEqual(got.error, { code: "internal", message: "x" });
    assert.equal(got.session_id, null);
    assert.deepEqual(got.input, run.input);
    assert.equal(got.cwd, run.cwd);
    store.runs.update("run_1", { error: null });
    assert.equal(store.runs.get("run_1")!.error, null);
    assert.throws(() => store.runs.update("run_1", { nope: 1 } as never), /not an updatable column/);
    store.close();
  });

  test("list pages newest first with filters, no duplicates, opaque cursor", () => {
    const store = openMemory();
    const a = store.users.create({ username: "a", password_hash: "h", role: "user" });
    const b = store.users.create({ username: "b", password_hash: "h", role: "user" });
    const statuses: RunStatus[] = ["queued", "running", "completed"];
    const base = Date.parse("2030-01-01T00:00:00.000Z");
    // 60 runs; every 3 share a created_at so the id tie-break matters.
    for (let i = 0; i < 60; i++) {
      const created_at = new Date(base + Math.floor(i / 3) * 1000).toISOString();
      const id = `run_${String(i).padStart(3, "0")}`;
      insertRun(store, id, i % 2 === 0 ? a.id : b.id, { created_at, status: statuses[i % 3], agent: i % 4 < 2 ? "shell" : "codex" });
    }
    const collect = (q: { user_id?: string; status?: RunStatus; agent?: string }, limit: number): RunRow[] => {
      const all: RunRow[] = [];
      let cursor: string | undefined;
      for (let pages = 0; pages < 100; pages++) {
        const page = store.runs.list({ ...q, cursor, limit });
        assert.ok(page.runs.length <= limit);
        all.push(...page.runs);
        if (page.next_cursor === null) return all;
        assert.match(page.next_cursor, /^[A-Za-z0-9_-]+$/);
        cursor = page.next_cursor;
      }
      assert.fail("pagination did not end");
    };
    const newestFirst = (rows: RunRow[]) =>
      [...rows].sort((x, y) => (x.created_at === y.created_at ? (x.id < y.id ? 1 : -1) : x.created_at < y.created_at ? 1 : -1));

    const everything = collect({}, 7);
    assert.equal(everything.length, 60);
    assert.equal(new Set(everything.map((r) => r.id)).size, 60);
    assert.deepEqual(everything.map((r) => r.id), newestFirst(everything).map((r) => r.id));
    assert.equal(everything[0]?.id, "run_059");

    const filtered = collect({ user_id: a.id, status: "queued", agent: "shell" }, 2);
    const expected = newestFirst(everything.filter((r) => r.user_id === a.id && r.status === "queued" && r.agent === "shell"));
    assert.ok(expected.length > 2, "the filter must need several pages");
    assert.deepEqual(filtered.map((r) => r.id), expected.map((r) => r.id));

    const exact = store.runs.list({ agent: "codex", limit: 30 });
    assert.equal(exact.runs.length, 30);
    assert.equal(exact.next_cursor, null, "a page that ends exactly at the last run has no next cursor");
    assert.deepEqual(store.runs.list({ status: "failed", limit: 5 }), { runs: [], next_cursor: null });
    assert.throws(() => store.runs.list({ cursor: "not-a-cursor", limit: 5 }), ValidationError);
    store.close();
  });

  test("listNonTerminal and delete (with its events)", () => {
    const store = openMemory();
    const u = store.users.create({ username: "u", password_hash: "h", role: "user" });
    insertRun(store, "run_q", u.id, { status: "queued" });
    insertRun(store, "run_r", u.id, { status: "running" });
    insertRun(store, "run_c", u.id, { status: "completed" });
    insertRun(store, "run_t", u.id, { status: "timed_out" });
    assert.deepEqual(store.runs.listNonTerminal().map((r) => r.id).sort(), ["run_q", "run_r"]);
    store.events.insertBatch([logEvent("run_r", 1), logEvent("run_r", 2), logEvent("run_c", 1)]);
    assert.equal(store.runs.delete("run_r"), true);
    assert.equal(store.runs.delete("run_r"), false);
    assert.equal(store.runs.get("run_r"), undefined);
    assert.equal(store.events.lastId("run_r"), 0);
    assert.deepEqual(store.events.list("run_r", 0, 10), []);
    assert.equal(store.events.lastId("run_c"), 1);
    store.close();
  });
});

describe("events", () => {
  test("insertBatch across several runs; list ascending after N with a limit", () => {
    const store = openMemory();
    const u = store.users.create({ username: "u", password_hash: "h", role: "user" });
    insertRun(store, "run_x", u.id);
    insertRun(store, "run_y", u.id);
    const batch: RunEvent[] = [];
    for (let i = 1; i <= 5; i++) batch.push(logEvent("run_x", i), logEvent("run_y", i));
    batch.push({ id: 6, run_id: "run_x", ts: new Date().toISOString(), type: "tool.call", data: { call_id: "c1", name: "bash", input: { cmd: "ls", n: [1, 2] } } });
    store.events.insertBatch(batch);
    store.events.insertBatch([]);

    assert.deepEqual(store.events.list("run_x", 0, 100).map((e) => e.id), [1, 2, 3, 4, 5, 6]);
    assert.deepEqual(store.events.list("run_x", 2, 2).map((e) => e.id), [3, 4]);
    assert.deepEqual(store.events.list("run_y", 5, 10), []);
    const last = store.events.list("run_x", 5, 1)[0]!;
    assert.deepEqual(last, batch.at(-1));
    assert.equal(store.events.lastId("run_x"), 6);
    assert.equal(store.events.lastId("run_y"), 5);
    assert.equal(store.events.lastId("run_none"), 0);
    assert.equal(store.runs.get("run_x")!.last_event_id, 6);
    assert.equal(store.runs.get("run_y")!.last_event_id, 5);
    assert.equal(store.events.countByType("run_x", "log"), 5);
    assert.equal(store.events.countByType("run_x", "tool.call"), 1);
    assert.equal(store.events.countByType("run_y", "tool.call"), 0);
    store.close();
  });

  test("insertBatch is one transaction: a duplicate id stores nothing of the batch", () => {
    const store = openMemory();
    const u = store.users.create({ username: "u", password_hash: "h", role: "user" });
    insertRun(store, "run_x", u.id);
    store.events.insertBatch([logEvent("run_x", 1)]);
    assert.throws(() => store.events.insertBatch([logEvent("run_x", 2), logEvent("run_x", 3), logEvent("run_x", 1, "again")]));
    assert.deepEqual(store.events.list("run_x", 0, 10).map((e) => e.id), [1]);
    assert.equal(store.runs.get("run_x")!.last_event_id, 1);
    assert.throws(() => store.events.insertBatch([logEvent("run_unknown", 1)]), /FOREIGN KEY/);
    store.close();
  });

  test("store.transaction commits together or not at all", () => {
    const store = openMemory();
    const u = store.users.create({ username: "u", password_hash: "h", role: "user" });
    assert.throws(() =>
      store.transaction(() => {
        insertRun(store, "run_tx", u.id);
        store.events.insertBatch([logEvent("run_tx", 1)]);
        throw new Error("boom");
      }),
    );
    assert.equal(store.runs.get("run_tx"), undefined);
    const n = store.transaction(() => {
      insertRun(store, "run_tx", u.id);
      store.events.insertBatch([logEvent("run_tx", 1)]);
      return store.events.lastId("run_tx");
    });
    assert.equal(n, 1);
    store.close();
  });
});
