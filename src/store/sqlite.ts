/**
 * The embedded store: SQLite through better-sqlite3, in WAL mode with
 * `synchronous=NORMAL` (a commit survives a process crash; a power loss may
 * lose the last commits, never corrupt the file), foreign keys on and a busy
 * timeout. Statements are prepared once per store; JSON columns hold input,
 * metadata, error, usage and event data. See `types.ts` for the contracts.
 */
import fs from "node:fs";
import path from "node:path";
import Database from "better-sqlite3";
import type { Database as Db, Statement } from "better-sqlite3";
import { monotonicFactory } from "ulid";
import { ConflictError, NotFoundError } from "../errors.ts";
import type { RunEvent, RunEventType } from "../protocol/events.ts";
import { dataJsonOf, TERMINAL_STATUSES } from "../protocol/events.ts";
import { startCheckpointer, type Checkpointer } from "./checkpointer.ts";
import { applyMigrations } from "./migrations.ts";
import { createWebhookRepo } from "./webhook-repo.ts";
import { createNativeSessionRepo } from "./native-session-repo.ts";
import { createBatchRepo } from "./batch-repo.ts";
import { asyncRepo, attempt, SqliteGate, type SyncOf, type SyncRepos } from "./sqlite-gate.ts";
import type { ApiKeyRepo, ApiKeyRow, BatchRepo, EventRepo, NativeSessionRepo, Repos, RunListQuery, RunRepo, RunRow, Store, UserRepo, UserRow, WebhookRepo } from "./types.ts";
import { decodeCursor, decodeEvent, decodeRun, encodeCursor, RUN_JSON_COLUMNS, type EventRecord } from "./run-rows.ts";

/** Options of {@link openSqliteStore}. */
export interface SqliteStoreOptions {
  /** Database file path (parent folders are created), or `":memory:"`. */
  file: string;
  /** How long a writer waits for a lock held by another connection, ms. Default 5000. */
  busyTimeoutMs?: number;
  /** Checkpoint the WAL from a worker thread instead of inside commits (default true for files). */
  backgroundCheckpoints?: boolean;
}

/**
 * Opens (creating if needed) the SQLite database at `opts.file`, applies
 * pending migrations and returns the {@link Store} (its methods resolve at once unless a
 * transaction is open: `sqlite-gate.ts`).
 *
 * Ids: users `usr_<ulid>`, API keys `key_<ulid>`; runs keep the id the caller gives.
 * Timestamps are ISO 8601 UTC strings. Listing order: users and API keys
 * oldest first; runs newest first by `(created_at, id)`; events by id ascending.
 *
 * @throws Error when the file cannot be opened or a migration fails.
 * @example
 * const store = openSqliteStore({ file: path.join(dataDir, "openrunner.db") });
 * const user = await store.users.create({ username: "admin", password_hash, role: "admin" });
 * await store.close();
 */
export function openSqliteStore(opts: SqliteStoreOptions): Store {
  if (opts.file !== ":memory:" && !opts.file.startsWith("file:")) {
    fs.mkdirSync(path.dirname(path.resolve(opts.file)), { recursive: true });
  }
  const db = new Database(opts.file);
  try {
    db.pragma("journal_mode = WAL");
    db.pragma("synchronous = NORMAL");
    db.pragma("foreign_keys = ON");
    db.pragma(`busy_timeout = ${Math.max(0, Math.floor(opts.busyTimeoutMs ?? 5000))}`);
    applyMigrations(db);
    restrictFileModes(opts.file);
    let checkpointer: Checkpointer | undefined;
    if (opts.file !== ":memory:" && !opts.file.startsWith("file:") && opts.backgroundCheckpoints !== false) {
      db.pragma("wal_autocheckpoint = 0");
      checkpointer = startCheckpointer(path.resolve(opts.file), 1000);
    }
    const ulid = monotonicFactory(); // ids sort in creation order, even within one millisecond
    const sync: SyncRepos = {
      users: createUserRepo(db, ulid),
      apiKeys: createApiKeyRepo(db, ulid),
      runs: createRunRepo(db),
      events: createEventRepo(db),
      webhooks: createWebhookRepo(db, ulid),
      nativeSessions: createNativeSessionRepo(db),
      batches: createBatchRepo(db),
    };
    const gate = new SqliteGate(db);
    const repos = (run: <T>(op: () => T) => Promise<T>) => ({
      users: asyncRepo<UserRepo>(sync.users, run),
      apiKeys: asyncRepo<ApiKeyRepo>(sync.apiKeys, run),
      runs: asyncRepo<RunRepo>(sync.runs, run),
      events: asyncRepo<EventRepo>(sync.events, run),
      webhooks: asyncRepo<WebhookRepo>(sync.webhooks, run),
      nativeSessions: asyncRepo<NativeSessionRepo>(sync.nativeSessions, run),
      batches: asyncRepo<BatchRepo>(sync.batches, run),
    });
    // Inside a transaction calls run at once; outside they wait for an open transaction to end (sqlite-gate.ts).
    const tx: Repos = { ...repos(attempt), transaction: (fn) => gate.savepoint(fn, tx) };
    let closing: Promise<void> | undefined;
    const close = (): Promise<void> =>
      (closing ??= (async () => {
        await gate.run(() => {}); // after a transaction still open has ended
        await checkpointer?.stop(); // its connection closed first: the TRUNCATE checkpoint below then finds no other reader
        if (!db.open) return;
        try {
          db.pragma("wal_checkpoint(TRUNCATE)");
        } catch {
          // another connection is busy; the WAL is replayed on the next open
        }
        db.close();
      })());
    return {
      kind: "sqlite",
      ...repos((op) => gate.run(op)),
      transaction: (fn) => gate.transaction(fn, tx),
      close,
    };
  } catch (err) {
    db.close();
    throw err;
  }
}

const now = (): string => new Date().toISOString();

/** The database and its WAL/SHM files are readable by the server's user only (0600). */
function restrictFileModes(file: string): void {
  if (file === ":memory:" || file.startsWith("file:")) return;
  for (const f of [file, `${file}-wal`, `${file}-shm`]) {
    try {
      fs.chmodSync(f, 0o600);
    } catch {
      // not created yet
    }
  }
}

function createUserRepo(db: Db, ulid: () => string): SyncOf<UserRepo> {
  const cols = "id, username, password_hash, role, created_at";
  const count = db.prepare("SELECT COUNT(*) FROM users").pluck();
  const insert = db.prepare(`INSERT INTO users (${cols}) VALUES (@id, @username, @password_hash, @role, @created_at)`);
  const byId = db.prepare(`SELECT ${cols} FROM users WHERE id = ?`);
  const byName = db.prepare(`SELECT ${cols} FROM users WHERE username = ?`);
  const list = db.prepare(`SELECT ${cols} FROM users ORDER BY created_at, id`);
  const remove = db.prepare("DELETE FROM users WHERE id = ?");
  return {
    count: () => count.get() as number,
    create(u) {
      const row: UserRow = { id: `usr_${ulid()}`, username: u.username, password_hash: u.password_hash, role: u.role, created_at: now() };
      try {
        insert.run(row);
      } catch (err) {
        if (isUniqueViolation(err)) throw new ConflictError(`username ${u.username} is taken`, "username_taken");
        throw err;
      }
      return row;
    },
    getById: (id) => byId.get(id) as UserRow | undefined,
    getByUsername: (username) => byName.get(username) as UserRow | undefined,
    list: () => list.all() as UserRow[],
    // api_keys, runs and (through runs) events go with the user: ON DELETE CASCADE.
    delete: (id) => remove.run(id).changes > 0,
  };
}

function createApiKeyRepo(db: Db, ulid: () => string): SyncOf<ApiKeyRepo> {
  const cols = "id, user_id, name, prefix, key_hash, created_at, last_used_at, revoked_at";
  const insert = db.prepare(
    `INSERT INTO api_keys (${cols}) VALUES (@id, @user_id, @name, @prefix, @key_hash, @created_at, @last_used_at, @revoked_at)`,
  );
  const byHash = db.prepare(`SELECT ${cols} FROM api_keys WHERE key_hash = ? AND revoked_at IS NULL`);
  const byUser = db.prepare(`SELECT ${cols} FROM api_keys WHERE user_id = ? ORDER BY id`);
  const revoke = db.prepare("UPDATE api_keys SET revoked_at = ? WHERE id = ? AND user_id = ? AND revoked_at IS NULL");
  const touch = db.prepare("UPDATE api_keys SET last_used_at = ? WHERE id = ?");
  return {
    create(k) {
      const row: ApiKeyRow = { id: `key_${ulid()}`, ...pick(k, ["user_id", "name", "prefix", "key_hash"]), created_at: now(), last_used_at: null, revoked_at: null };
      insert.run(row);
      return row;
    },
    getActiveByHash: (hash) => byHash.get(hash) as ApiKeyRow | undefined,
    listByUser: (userId) => byUser.all(userId) as ApiKeyRow[],
    revoke: (id, userId) => revoke.run(now(), id, userId).changes > 0,
    touch: (id, at) => void touch.run(at, id),
  };
}

/** Columns `runs.update` may set (everything but `id` and `user_id`). */
const PATCHABLE = new Set([
  "agent", "status", "input", "metadata", "cwd", "created_at", "started_at", "ended_at",
  "result", "error", "exit_code", "usage", "session_id", "last_event_id",
]);
const RUN_COLS = "id, user_id, agent, status, input, metadata, cwd, created_at, started_at, ended_at, result, error, exit_code, usage, session_id, last_event_id, batch_id";

function createRunRepo(db: Db): SyncOf<RunRepo> {
  const insert = db.prepare(
    `INSERT INTO runs (id, user_id, agent, status, input, metadata, cwd, created_at, batch_id)
     VALUES (@id, @user_id, @agent, @status, @input, @metadata, @cwd, @created_at, @batch_id)`,
  );
  const byId = db.prepare(`SELECT ${RUN_COLS} FROM runs WHERE id = ?`);
  const terminal = TERMINAL_STATUSES.map((s) => `'${s}'`).join(", ");
  const nonTerminal = db.prepare(`SELECT ${RUN_COLS} FROM runs WHERE status NOT IN (${terminal}) ORDER BY created_at, id`);
  const remove = db.prepare("DELETE FROM runs WHERE id = ?");
  const listStatements = new Map<string, Statement>();
  const updateStatements = new Map<string, Statement>();
  const get = (id: string): RunRow | undefined => decodeRun(byId.get(id));

  return {
    insert(r) {
      insert.run({ ...r, input: JSON.stringify(r.input), metadata: JSON.stringify(r.metadata), batch_id: r.batch_id ?? null });
      const row = get(r.id);
      if (!row) throw new Error(`run ${r.id} vanished after insert`);
      return row;
    },
    get,
    list(q: RunListQuery) {
      const limit = Math.max(1, Math.floor(q.limit));
      const after = q.cursor === undefined ? undefined : decodeCursor(q.cursor);
      const where: string[] = [];
      const params: Record<string, unknown> = { limit: limit + 1 };
      for (const key of ["user_id", "status", "agent", "batch_id"] as const) {
        if (q[key] === undefined) continue;
        where.push(`${key} = @${key}`);
        params[key] = q[key];
      }
      if (after) {
        where.push("(created_at, id) < (@c_created_at, @c_id)");
        params.c_created_at = after[0];
        params.c_id = after[1];
      }
      const sql = `SELECT ${RUN_COLS} FROM runs ${where.length ? `WHERE ${where.join(" AND ")}` : ""}
                   ORDER BY created_at DESC, id DESC LIMIT @limit`;
      const rows = cached(listStatements, sql, () => db.prepare(sql)).all(params).map((r) => decodeRun(r)!);
      const page = rows.slice(0, limit);
      const last = page.at(-1);
      const next_cursor = rows.length > limit && last ? encodeCursor([last.created_at, last.id]) : null;
      return { runs: page, next_cursor };
    },
    update(id, patch) {
      const keys = Object.keys(patch).filter((k) => (patch as Record<string, unknown>)[k] !== undefined).sort();
      if (keys.length === 0) return;
      const unknown = keys.find((k) => !PATCHABLE.has(k));
      if (unknown) throw new TypeError(`runs.update: ${unknown} is not an updatable column`);
      const sql = `UPDATE runs SET ${keys.map((k) => `${k} = @${k}`).join(", ")} WHERE id = @id`;
      const params: Record<string, unknown> = { id };
      for (const k of keys) {
        const v = (patch as Record<string, unknown>)[k];
        params[k] = RUN_JSON_COLUMNS.has(k) && v !== null ? JSON.stringify(v) : v;
      }
      cached(updateStatements, sql, () => db.prepare(sql)).run(params);
    },
    listNonTerminal: () => nonTerminal.all().map((r) => decodeRun(r)!),
    // Events go with the run: ON DELETE CASCADE.
    delete: (id) => remove.run(id).changes > 0,
  };
}

const ROWS_PER_INSERT = 64;

function createEventRepo(db: Db): SyncOf<EventRepo> {
  const insert = db.prepare("INSERT INTO events (run_id, id, ts, type, data) VALUES (?, ?, ?, ?, ?)");
  const bumpLast = db.prepare("UPDATE runs SET last_event_id = MAX(last_event_id, ?) WHERE id = ?");
  const list = db.prepare("SELECT id, run_id, ts, type, data FROM events WHERE run_id = ? AND id > ? ORDER BY id LIMIT ?");
  const lastId = db.prepare("SELECT COALESCE(MAX(id), 0) FROM events WHERE run_id = ?").pluck();
  const countByType = db.prepare("SELECT COUNT(*) FROM events WHERE run_id = ? AND type = ?").pluck();
  // Many rows per statement: one statement call per 64 events instead of one per event.
  const insertMany = db.prepare(`INSERT INTO events (run_id, id, ts, type, data) VALUES ${Array(ROWS_PER_INSERT).fill("(?, ?, ?, ?, ?)").join(", ")}`);
  const params: unknown[] = new Array(ROWS_PER_INSERT * 5);
  const insertRows = (events: readonly RunEvent[]) => {
    let i = 0;
    for (; i + ROWS_PER_INSERT <= events.length; i += ROWS_PER_INSERT) {
      for (let j = 0; j < ROWS_PER_INSERT; j++) {
        const e = events[i + j]!;
        const k = j * 5;
        params[k] = e.run_id;
        params[k + 1] = e.id;
        params[k + 2] = e.ts;
        params[k + 3] = e.type;
        params[k + 4] = dataJsonOf(e);
      }
      insertMany.run(params);
    }
    for (; i < events.length; i++) {
      const e = events[i]!;
      insert.run(e.run_id, e.id, e.ts, e.type, dataJsonOf(e));
    }
    const highest = new Map<string, number>(); // a run's events are in id order: the last one wins
    for (const e of events) highest.set(e.run_id, e.id);
    for (const [runId, id] of highest) bumpLast.run(id, runId);
  };
  const insertInTransaction = db.transaction(insertRows);
  const reserve = db.prepare("UPDATE runs SET last_event_id = last_event_id + ? WHERE id = ? RETURNING last_event_id").pluck();
  const appendInTransaction = db.transaction((runId: string, drafts: ReadonlyArray<Pick<RunEvent, "ts" | "type" | "data">>): RunEvent[] => {
    const last = reserve.get(drafts.length, runId) as number | undefined;
    if (last === undefined) throw new NotFoundError(`run ${runId}`);
    const first = last - drafts.length + 1;
    const events = drafts.map((d, i) => ({ id: first + i, run_id: runId, ts: d.ts, type: d.type, data: d.data }) as RunEvent);
    insertRows(events);
    return events;
  });
  return {
    append: (runId, drafts) => (drafts.length === 0 ? [] : appendInTransaction(runId, drafts)),
    insertBatch(events) {
      if (events.length === 0) return;
      // Inside the event writer's transaction already: no nested SAVEPOINT.
      if (db.inTransaction) insertRows(events);
      else insertInTransaction(events);
    },
    list(runId, after, limit) {
      const rows = list.all(runId, after, Math.max(0, Math.floor(limit))) as EventRecord[];
      return rows.map(decodeEvent);
    },
    lastId: (runId) => lastId.get(runId) as number,
    countByType: (runId, type: RunEventType) => countByType.get(runId, type) as number,
  };
}



function cached(statements: Map<string, Statement>, sql: string, prepare: () => Statement): Statement {
  let s = statements.get(sql);
  if (!s) statements.set(sql, (s = prepare()));
  return s;
}

function pick<T extends object, K extends keyof T>(o: T, keys: readonly K[]): Pick<T, K> {
  const out = {} as Pick<T, K>;
  for (const k of keys) out[k] = o[k];
  return out;
}

function isUniqueViolation(err: unknown): boolean {
  return err instanceof Database.SqliteError && err.code === "SQLITE_CONSTRAINT_UNIQUE";
}
