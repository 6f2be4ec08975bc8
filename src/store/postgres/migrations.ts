/**
 * The PostgreSQL schema: one entry per migration of the SQLite store (`../migrations.ts`), with
 * the same ids and names and the same tables, columns, keys, `ON DELETE` actions and checks, in
 * PostgreSQL's dialect. Differences, all invisible through the repositories:
 * - ids and timestamps are `TEXT COLLATE "C"`, so ordering and the runs cursor compare bytes as
 *   SQLite does, whatever the database's default collation;
 * - JSON columns stay `TEXT` (the exact text written is the text read back, as on SQLite);
 * - event ids and `last_event_id` are `BIGINT`;
 * - `runs.seq` (an identity column) stands for SQLite's `rowid`: a batch's runs in insertion order;
 * - migration 5 (`cluster`) keeps leases and heartbeats as TIMESTAMPTZ, adds indexes for claims
 *   and leases, and a statement trigger on `events` (the fence after a terminal event and the
 *   `openrunner_events` notification that `./cluster.ts` relies on).
 *
 * {@link applyPostgresMigrations} applies the pending ones, each in its own transaction with its
 * row in `schema_migrations`, under a transaction-scoped advisory lock, so two processes starting
 * at once apply each migration once (the second waits, then finds it recorded).
 *
 * Add a migration by appending an entry with the id of the matching SQLite migration; never edit
 * an entry that has shipped.
 */
import pg from "pg";
import type { ClientBase, Pool } from "pg";
import type { Migration } from "../migrations.ts";

/** All PostgreSQL migrations, in the order they are applied (ids and names as in `MIGRATIONS`). */
export const PG_MIGRATIONS: readonly Migration[] = [
  {
    id: 1,
    name: "initial",
    sql: `
      CREATE TABLE users (
        id            TEXT COLLATE "C" PRIMARY KEY,
        username      TEXT NOT NULL UNIQUE,
        password_hash TEXT NOT NULL,
        role          TEXT NOT NULL CHECK (role IN ('admin', 'user')),
        created_at    TEXT COLLATE "C" NOT NULL
      );

      CREATE TABLE api_keys (
        id           TEXT COLLATE "C" PRIMARY KEY,
        user_id      TEXT COLLATE "C" NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        name         TEXT NOT NULL,
        prefix       TEXT NOT NULL,
        key_hash     TEXT NOT NULL UNIQUE,
        created_at   TEXT COLLATE "C" NOT NULL,
        last_used_at TEXT COLLATE "C",
        revoked_at   TEXT COLLATE "C"
      );
      CREATE INDEX api_keys_by_user ON api_keys (user_id, id);

      CREATE TABLE runs (
        id            TEXT COLLATE "C" PRIMARY KEY,
        user_id       TEXT COLLATE "C" NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        agent         TEXT NOT NULL,
        status        TEXT NOT NULL,
        input         TEXT NOT NULL,
        metadata      TEXT NOT NULL,
        cwd           TEXT NOT NULL,
        created_at    TEXT COLLATE "C" NOT NULL,
        started_at    TEXT COLLATE "C",
        ended_at      TEXT COLLATE "C",
        result        TEXT,
        error         TEXT,
        exit_code     INTEGER,
        usage         TEXT,
        session_id    TEXT,
        last_event_id BIGINT NOT NULL DEFAULT 0,
        seq           BIGINT GENERATED ALWAYS AS IDENTITY
      );
      CREATE INDEX runs_by_created ON runs (created_at, id);
      CREATE INDEX runs_by_user_created ON runs (user_id, created_at, id);
      CREATE INDEX runs_by_status ON runs (status);

      CREATE TABLE events (
        run_id TEXT COLLATE "C" NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
        id     BIGINT NOT NULL,
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
        id         TEXT COLLATE "C" PRIMARY KEY,
        user_id    TEXT COLLATE "C" NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        url        TEXT NOT NULL,
        events     TEXT NOT NULL,
        secret     TEXT NOT NULL,
        created_at TEXT COLLATE "C" NOT NULL
      );
      CREATE INDEX webhooks_by_user ON webhooks (user_id, id);

      CREATE TABLE webhook_deliveries (
        id         TEXT COLLATE "C" PRIMARY KEY,
        webhook_id TEXT COLLATE "C" NOT NULL REFERENCES webhooks(id) ON DELETE CASCADE,
        run_id     TEXT COLLATE "C" NOT NULL,
        event_type TEXT NOT NULL,
        event_id   BIGINT NOT NULL,
        status     TEXT NOT NULL CHECK (status IN ('pending', 'delivered', 'failed', 'dropped', 'abandoned')),
        attempts   INTEGER NOT NULL DEFAULT 0,
        created_at TEXT COLLATE "C" NOT NULL,
        updated_at TEXT COLLATE "C" NOT NULL
      );
      CREATE INDEX webhook_deliveries_by_hook ON webhook_deliveries (webhook_id, id);
      CREATE INDEX webhook_deliveries_pending ON webhook_deliveries (status) WHERE status = 'pending';

      CREATE TABLE webhook_attempts (
        delivery_id TEXT COLLATE "C" NOT NULL REFERENCES webhook_deliveries(id) ON DELETE CASCADE,
        attempt     INTEGER NOT NULL,
        at          TEXT COLLATE "C" NOT NULL,
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
        id         TEXT COLLATE "C" PRIMARY KEY,
        user_id    TEXT COLLATE "C" NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        created_at TEXT COLLATE "C" NOT NULL
      );
      CREATE INDEX batches_by_user ON batches (user_id, id);

      ALTER TABLE runs ADD COLUMN batch_id TEXT COLLATE "C" REFERENCES batches(id) ON DELETE SET NULL;
      CREATE INDEX runs_by_batch ON runs (batch_id, seq) WHERE batch_id IS NOT NULL;

      CREATE TABLE batch_events (
        batch_id TEXT COLLATE "C" NOT NULL REFERENCES batches(id) ON DELETE CASCADE,
        id       BIGINT NOT NULL,
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
        session_id TEXT COLLATE "C" PRIMARY KEY,
        run_id     TEXT COLLATE "C" NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
        parent_id  TEXT COLLATE "C",
        model      TEXT NOT NULL,
        messages   TEXT NOT NULL,
        updated_at TEXT COLLATE "C" NOT NULL
      );
      CREATE INDEX native_sessions_by_run ON native_sessions (run_id);
    `,
  },
  {
    // The distributed mode (../cluster.ts, ./cluster.ts). Leases and heartbeats are TIMESTAMPTZ:
    // they are compared with the database's now(), so the machines' clocks do not matter.
    id: 5,
    name: "cluster",
    sql: `
      ALTER TABLE runs ADD COLUMN worker_id TEXT COLLATE "C";
      -- A cancel asked for while a worker holds the run (JSON {reason, by}): the worker acts on it at its next heartbeat even when the notification was lost.
      ALTER TABLE runs ADD COLUMN cancel_requested TEXT;
      CREATE INDEX runs_by_worker ON runs (worker_id) WHERE worker_id IS NOT NULL;
      CREATE INDEX runs_queued ON runs (created_at, id) WHERE status = 'queued' AND worker_id IS NULL;

      CREATE TABLE workers (
        id             TEXT COLLATE "C" PRIMARY KEY,
        host           TEXT NOT NULL,
        pid            INTEGER NOT NULL,
        agents         TEXT NOT NULL,
        isolations     TEXT NOT NULL,
        capacity       INTEGER NOT NULL,
        started_at     TEXT COLLATE "C" NOT NULL,
        last_heartbeat TIMESTAMPTZ NOT NULL
      );

      -- The terminal events of each run (at most one), for the fence below.
      CREATE INDEX events_terminal ON events (run_id, id) WHERE type IN ('run.completed', 'run.failed', 'run.cancelled', 'run.timed_out');

      -- After every INSERT into events, whoever wrote them: refuse an event that follows a stored
      -- terminal event of its run (the run is over: this fences off a worker that lost its lease
      -- and was reaped; SQLSTATE 23514, a constraint violation), then announce each run's highest
      -- id on openrunner_events ('<run_id>:<id>', delivered at commit; none after a rollback).
      CREATE FUNCTION openrunner_events_inserted() RETURNS trigger LANGUAGE plpgsql AS $fn$
      DECLARE
        r record;
      BEGIN
        FOR r IN SELECT run_id, MAX(id) AS last_id FROM inserted GROUP BY run_id LOOP
          IF EXISTS (
            SELECT 1 FROM events t
            WHERE t.run_id = r.run_id AND t.id < r.last_id
              AND t.type IN ('run.completed', 'run.failed', 'run.cancelled', 'run.timed_out')
          ) THEN
            RAISE EXCEPTION 'run % is over: no event may follow its terminal event', r.run_id
              USING ERRCODE = 'check_violation', TABLE = 'events';
          END IF;
          PERFORM pg_notify('openrunner_events', r.run_id || ':' || r.last_id);
        END LOOP;
        RETURN NULL;
      END
      $fn$;
      CREATE TRIGGER events_inserted AFTER INSERT ON events
        REFERENCING NEW TABLE AS inserted
        FOR EACH STATEMENT EXECUTE FUNCTION openrunner_events_inserted();
    `,
  },
  {
    id: 6,
    name: "batch_stream",
    sql: `
      -- The batch event stream of the distributed mode, written by the database in the transaction
      -- that changes a batch run's status, whichever process it is (API server: queued, a queued run
      -- cancelled; worker: preparing … terminal; reaper: worker_lost): a run.status event, then
      -- batch.done with the counts once every run of the batch is terminal (so exactly once),
      -- announced on openrunner_batches ('<batch_id>:<id>'). Numbered under ONE transaction-scoped
      -- advisory lock for all batches, not a lock per batch: a worker's commit changes runs of
      -- several batches in no set order, and per-batch locks taken in event order deadlocked.
      -- Only for connections that set openrunner.batch_stream = on (the cluster's); the single
      -- process numbers its batch events itself (run/batch-feed.ts).
      CREATE FUNCTION openrunner_batch_status() RETURNS trigger LANGUAGE plpgsql AS $fn$
      DECLARE
        next_id bigint;
        ts text := to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"');
        prev text := CASE WHEN TG_OP = 'UPDATE' THEN OLD.status ELSE NULL END;
        counts jsonb;
      BEGIN
        IF NEW.batch_id IS NULL OR NEW.status IS NOT DISTINCT FROM prev
           OR current_setting('openrunner.batch_stream', true) IS DISTINCT FROM 'on' THEN
          RETURN NULL;
        END IF;
        PERFORM pg_advisory_xact_lock(5139087742011470401);
        IF EXISTS (SELECT 1 FROM batch_events WHERE batch_id = NEW.batch_id AND type = 'batch.done') THEN
          RETURN NULL;
        END IF;
        SELECT COALESCE(MAX(id), 0) + 1 INTO next_id FROM batch_events WHERE batch_id = NEW.batch_id;
        INSERT INTO batch_events (batch_id, id, ts, type, data)
        VALUES (NEW.batch_id, next_id, ts, 'run.status', jsonb_build_object('run_id', NEW.id, 'status', NEW.status, 'prev', prev)::text);
        PERFORM pg_notify('openrunner_batches', NEW.batch_id || ':' || next_id);
        IF NEW.status IN ('completed', 'failed', 'cancelled', 'timed_out') AND NOT EXISTS (
          SELECT 1 FROM runs WHERE batch_id = NEW.batch_id AND status NOT IN ('completed', 'failed', 'cancelled', 'timed_out')
        ) THEN
          SELECT jsonb_build_object('queued', 0, 'preparing', 0, 'running', 0, 'waiting', 0, 'completed', 0, 'failed', 0, 'cancelled', 0, 'timed_out', 0)
                 || COALESCE(jsonb_object_agg(c.status, c.n), '{}'::jsonb)
            INTO counts
            FROM (SELECT status, COUNT(*) AS n FROM runs WHERE batch_id = NEW.batch_id GROUP BY status) c;
          INSERT INTO batch_events (batch_id, id, ts, type, data)
          VALUES (NEW.batch_id, next_id + 1, ts, 'batch.done', jsonb_build_object('counts', counts)::text);
          PERFORM pg_notify('openrunner_batches', NEW.batch_id || ':' || (next_id + 1));
        END IF;
        RETURN NULL;
      END
      $fn$;
      CREATE TRIGGER runs_batch_status AFTER INSERT OR UPDATE OF status ON runs
        FOR EACH ROW EXECUTE FUNCTION openrunner_batch_status();
    `,
  },
];

/**
 * Key of the transaction-scoped advisory lock every migration transaction takes first (one
 * schema per database: processes of other applications are unlikely to use this number).
 */
export const MIGRATION_LOCK_KEY = 7_402_118_650_521_931;

/**
 * Brings the database to the latest schema version. Creates `schema_migrations` (`version`
 * INTEGER PRIMARY KEY, `name`, `applied_at` ISO 8601 UTC) if needed, then applies every migration
 * whose id is not recorded yet, in order, each in one transaction that first takes
 * `pg_advisory_xact_lock(MIGRATION_LOCK_KEY)`: a second process doing the same at the same time
 * waits for the first one's commit and then skips what it recorded. Running it again is a no-op.
 *
 * @param db a pool (one client is checked out for the duration) or a connected client that is
 *   not inside a transaction
 * @param migrations the list to apply (tests pass their own); default {@link PG_MIGRATIONS}
 * @returns the ids applied by this call, ascending (empty when already up to date)
 * @throws Error when the list is not strictly ascending, or when the database records a version
 *   newer than this build knows (a downgrade), or the driver's error (with its SQLSTATE `code`)
 *   when a migration's SQL fails (that migration is rolled back; earlier ones stay).
 * @example
 * const pool = new pg.Pool({ connectionString: url });
 * await applyPostgresMigrations(pool); // [1, 2, 3, 4] the first time, [] afterwards
 */
export async function applyPostgresMigrations(db: Pool | ClientBase, migrations: readonly Migration[] = PG_MIGRATIONS): Promise<number[]> {
  assertAscending(migrations);
  const known = migrations.at(-1)?.id ?? 0;
  const pooled = db instanceof pg.Pool;
  const client: ClientBase = pooled ? await db.connect() : db;
  let broken: Error | undefined;
  // A checked-out client has no pool listener: a connection failing between statements would be an unhandled 'error'.
  const onError = (err: Error) => void (broken = err);
  if (pooled) client.on("error", onError);
  try {
    // In a transaction of its own: one whose applied versions are all there commits nothing else.
    const applied = await inLockedTransaction(client, async () => {
      await client.query(`CREATE TABLE IF NOT EXISTS schema_migrations (
        version    INTEGER PRIMARY KEY,
        name       TEXT NOT NULL,
        applied_at TEXT NOT NULL
      )`);
      const { rows } = await client.query<{ version: number }>("SELECT version FROM schema_migrations ORDER BY version");
      return rows.map((r) => r.version);
    });
    assertNotNewer(applied, known);
    const done = new Set(applied);
    const out: number[] = [];
    for (const m of migrations) {
      if (done.has(m.id)) continue;
      const ran = await inLockedTransaction(client, async () => {
        const { rows } = await client.query<{ version: number }>("SELECT version FROM schema_migrations ORDER BY version");
        const now = rows.map((r) => r.version);
        assertNotNewer(now, known);
        if (now.includes(m.id)) return false; // another process applied it while we waited
        await client.query(m.sql);
        await client.query("INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)", [m.id, m.name, new Date().toISOString()]);
        return true;
      });
      if (ran) out.push(m.id);
    }
    return out;
  } catch (err) {
    if (!(err instanceof pg.DatabaseError) && pooled && !(err instanceof MigrationError)) broken = err instanceof Error ? err : new Error(String(err));
    throw err;
  } finally {
    if (pooled) {
      client.off("error", onError);
      (client as pg.PoolClient).release(broken);
    }
  }
}

/** A refused migration list or database version (not a driver error). */
class MigrationError extends Error {}

/** Runs `fn` between BEGIN and COMMIT after taking the migrations' advisory lock; ROLLBACK when it throws. */
async function inLockedTransaction<T>(client: ClientBase, fn: () => Promise<T>): Promise<T> {
  await client.query("BEGIN");
  try {
    await client.query(`SELECT pg_advisory_xact_lock(${MIGRATION_LOCK_KEY})`);
    const out = await fn();
    await client.query("COMMIT");
    return out;
  } catch (err) {
    await client.query("ROLLBACK").catch(() => undefined);
    throw err;
  }
}

function assertNotNewer(versions: readonly number[], known: number): void {
  const latest = versions.at(-1) ?? 0;
  if (latest > known) throw new MigrationError(`database schema version ${latest} is newer than this build supports (${known})`);
}

/** Throws unless migration ids are positive integers in strictly ascending order. */
function assertAscending(migrations: readonly Migration[]): void {
  let previous = 0;
  for (const m of migrations) {
    if (!Number.isInteger(m.id) || m.id <= previous) {
      throw new MigrationError(`migration ids must be ascending positive integers: ${m.id} follows ${previous}`);
    }
    previous = m.id;
  }
}
