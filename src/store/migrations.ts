/**
 * Versioned schema migrations of the SQLite store. Each migration is an ordered
 * entry with a numeric `id` and its SQL; {@link applyMigrations} applies the
 * pending ones, each in its own `BEGIN IMMEDIATE` transaction together with its
 * row in `schema_migrations`, so a crash leaves no half-applied version and a
 * second process opening the same file waits instead of applying twice.
 *
 * Add a migration by appending an entry with the next id; never edit an entry
 * that has shipped.
 */
import type { Database } from "better-sqlite3";

/** One schema change: `id` is its version (1, 2, 3 … ascending), `sql` one or more statements. */
export interface Migration {
  id: number;
  name: string;
  sql: string;
}

/** All migrations, in the order they are applied. */
export const MIGRATIONS: readonly Migration[] = [
  {
    id: 1,
    name: "initial",
    sql: `
      CREATE TABLE users (
        id            TEXT PRIMARY KEY,
        username      TEXT NOT NULL UNIQUE,
        password_hash TEXT NOT NULL,
        role          TEXT NOT NULL CHECK (role IN ('admin', 'user')),
        created_at    TEXT NOT NULL
      );

      CREATE TABLE api_keys (
        id           TEXT PRIMARY KEY,
        user_id      TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        name         TEXT NOT NULL,
        prefix       TEXT NOT NULL,
        key_hash     TEXT NOT NULL UNIQUE,
        created_at   TEXT NOT NULL,
        last_used_at TEXT,
        revoked_at   TEXT
      );
      CREATE INDEX api_keys_by_user ON api_keys (user_id, id);

      CREATE TABLE runs (
        id            TEXT PRIMARY KEY,
        user_id       TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        agent         TEXT NOT NULL,
        status        TEXT NOT NULL,
        input         TEXT NOT NULL,
        metadata      TEXT NOT NULL,
        cwd           TEXT NOT NULL,
        created_at    TEXT NOT NULL,
        started_at    TEXT,
        ended_at      TEXT,
        result        TEXT,
        error         TEXT,
        exit_code     INTEGER,
        usage         TEXT,
        session_id    TEXT,
        last_event_id INTEGER NOT NULL DEFAULT 0
      );
      CREATE INDEX runs_by_created ON runs (created_at, id);
      CREATE INDEX runs_by_user_created ON runs (user_id, created_at, id);
      CREATE INDEX runs_by_status ON runs (status);

      CREATE TABLE events (
        run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
        id     INTEGER NOT NULL,
        ts     TEXT NOT NULL,
        type   TEXT NOT NULL,
        data   TEXT NOT NULL,
        PRIMARY KEY (run_id, id)
      );
    `,
  },
  {
    id: 2,
    name: "webhooks",
    sql: `
      CREATE TABLE webhooks (
        id         TEXT PRIMARY KEY,
        user_id    TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        url        TEXT NOT NULL,
        events     TEXT NOT NULL,
        secret     TEXT NOT NULL,
        created_at TEXT NOT NULL
      );
      CREATE INDEX webhooks_by_user ON webhooks (user_id, id);

      CREATE TABLE webhook_deliveries (
        id         TEXT PRIMARY KEY,
        webhook_id TEXT NOT NULL REFERENCES webhooks(id) ON DELETE CASCADE,
        run_id     TEXT NOT NULL,
        event_type TEXT NOT NULL,
        event_id   INTEGER NOT NULL,
        status     TEXT NOT NULL CHECK (status IN ('pending', 'delivered', 'failed', 'dropped', 'abandoned')),
        attempts   INTEGER NOT NULL DEFAULT 0,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
      );
      CREATE INDEX webhook_deliveries_by_hook ON webhook_deliveries (webhook_id, id);
      CREATE INDEX webhook_deliveries_pending ON webhook_deliveries (status) WHERE status = 'pending';

      CREATE TABLE webhook_attempts (
        delivery_id TEXT NOT NULL REFERENCES webhook_deliveries(id) ON DELETE CASCADE,
        attempt     INTEGER NOT NULL,
        at          TEXT NOT NULL,
        status_code INTEGER,
        error       TEXT,
        duration_ms INTEGER NOT NULL,
        PRIMARY KEY (delivery_id, attempt)
      );
    `,
  },
  {
    id: 3,
    name: "batches",
    sql: `
      CREATE TABLE batches (
        id         TEXT PRIMARY KEY,
        user_id    TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        created_at TEXT NOT NULL
      );
      CREATE INDEX batches_by_user ON batches (user_id, id);

      ALTER TABLE runs ADD COLUMN batch_id TEXT REFERENCES batches(id) ON DELETE SET NULL;
      CREATE INDEX runs_by_batch ON runs (batch_id) WHERE batch_id IS NOT NULL;

      CREATE TABLE batch_events (
        batch_id TEXT NOT NULL REFERENCES batches(id) ON DELETE CASCADE,
        id       INTEGER NOT NULL,
        ts       TEXT NOT NULL,
        type     TEXT NOT NULL,
        data     TEXT NOT NULL,
        PRIMARY KEY (batch_id, id)
      );
    `,
  },
  {
    id: 4,
    name: "native_sessions",
    sql: `
      CREATE TABLE native_sessions (
        session_id TEXT PRIMARY KEY,
        run_id     TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
        parent_id  TEXT,
        model      TEXT NOT NULL,
        messages   TEXT NOT NULL,
        updated_at TEXT NOT NULL
      );
      CREATE INDEX native_sessions_by_run ON native_sessions (run_id);
    `,
  },
  {
    // The distributed mode's columns and table (store/cluster.ts; used on PostgreSQL, kept here so both schemas carry the same versions).
    id: 5,
    name: "cluster",
    sql: `
      ALTER TABLE runs ADD COLUMN worker_id TEXT;
      ALTER TABLE runs ADD COLUMN cancel_requested TEXT;
      CREATE TABLE workers (
        id             TEXT PRIMARY KEY,
        host           TEXT NOT NULL,
        pid            INTEGER NOT NULL,
        agents         TEXT NOT NULL,
        isolations     TEXT NOT NULL,
        capacity       INTEGER NOT NULL,
        started_at     TEXT NOT NULL,
        last_heartbeat TEXT NOT NULL
      );
    `,
  },
  {
    // PostgreSQL only (the distributed mode's batch stream trigger); here it records the version, so both schemas stay numbered alike.
    id: 6,
    name: "batch_stream",
    sql: `SELECT 1;`,
  },
];

/**
 * Brings `db` to the latest schema version. Creates `schema_migrations`
 * (`version` INTEGER PRIMARY KEY, `name`, `applied_at` ISO 8601 UTC) if needed,
 * then applies every migration whose id is not recorded yet, in order, each in
 * one transaction. Running it again is a no-op.
 *
 * @param db an open better-sqlite3 database
 * @param migrations the list to apply (tests pass their own); default {@link MIGRATIONS}
 * @returns the ids applied by this call (empty when already up to date)
 * @throws Error when the list is not strictly ascending, or when the database
 *   records a version newer than this build knows (a downgrade), or when a
 *   migration's SQL fails (that migration is rolled back; earlier ones stay).
 * @example
 * const db = new Database("data/openrunner.db");
 * applyMigrations(db); // [1] the first time, [] afterwards
 */
export function applyMigrations(db: Database, migrations: readonly Migration[] = MIGRATIONS): number[] {
  assertAscending(migrations);
  db.exec(`CREATE TABLE IF NOT EXISTS schema_migrations (
    version    INTEGER PRIMARY KEY,
    name       TEXT NOT NULL,
    applied_at TEXT NOT NULL
  )`);
  const readLatest = db.prepare("SELECT COALESCE(MAX(version), 0) FROM schema_migrations").pluck();
  const isApplied = db.prepare("SELECT 1 FROM schema_migrations WHERE version = ?").pluck();
  const record = db.prepare("INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)");
  const known = migrations.at(-1)?.id ?? 0;
  const applyOne = db.transaction((m: Migration): boolean => {
    const latest = readLatest.get() as number;
    if (latest > known) {
      throw new Error(`database schema version ${latest} is newer than this build supports (${known})`);
    }
    if (isApplied.get(m.id) !== undefined) return false;
    db.exec(m.sql);
    record.run(m.id, m.name, new Date().toISOString());
    return true;
  });
  const applied: number[] = [];
  for (const m of migrations) {
    if (applyOne.immediate(m)) applied.push(m.id);
  }
  const latest = readLatest.get() as number;
  if (latest > known) {
    throw new Error(`database schema version ${latest} is newer than this build supports (${known})`);
  }
  return applied;
}

/** Throws unless migration ids are positive integers in strictly ascending order. */
function assertAscending(migrations: readonly Migration[]): void {
  let previous = 0;
  for (const m of migrations) {
    if (!Number.isInteger(m.id) || m.id <= previous) {
      throw new Error(`migration ids must be ascending positive integers: ${m.id} follows ${previous}`);
    }
    previous = m.id;
  }
}
