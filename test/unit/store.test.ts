/**
 * The SQLite store: the shared suite (`store-suite.ts`) on a fresh temporary file per test, plus
 * what only SQLite has (the migrations on a file, WAL mode, file modes).
 */
import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import Database from "better-sqlite3";
import { openSqliteStore } from "../../src/store/sqlite.ts";
import { applyMigrations, MIGRATIONS } from "../../src/store/migrations.ts";
import { storeSuite } from "./store-suite.ts";

let tmp: string;
before(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), "openrunner-store-"));
});
after(() => {
  // A closed store's checkpoint thread may still be letting go of its files: retry instead of failing on ENOTEMPTY.
  fs.rmSync(tmp, { recursive: true, force: true, maxRetries: 10, retryDelay: 50 });
});

let files = 0;
storeSuite("sqlite", async () => openSqliteStore({ file: path.join(tmp, `suite-${++files}.db`) }));

describe("sqlite: migrations", () => {
  test("apply once on a file database, then are a no-op after reopening", async () => {
    const file = path.join(tmp, "migrate", "db.sqlite");
    const store = await openSqliteStore({ file });
    await store.users.create({ username: "kept", password_hash: "h", role: "user" });
    await store.close();
    await store.close(); // idempotent
    assert.equal(fs.statSync(file).mode & 0o777, 0o600, "the database is readable by its owner only");

    const db = new Database(file);
    assert.deepEqual(applyMigrations(db), []);
    assert.deepEqual(applyMigrations(db), []);
    const versions = db.prepare("SELECT version FROM schema_migrations ORDER BY version").pluck().all();
    assert.deepEqual(versions, MIGRATIONS.map((m) => m.id));
    const applied = db.prepare("SELECT applied_at FROM schema_migrations").pluck().get() as string;
    assert.ok(!Number.isNaN(Date.parse(applied)));
    assert.equal(db.pragma("journal_mode", { simple: true }), "wal");
    db.close();

    const again = await openSqliteStore({ file });
    assert.equal((await again.users.getByUsername("kept"))?.username, "kept");
    await again.close();
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
