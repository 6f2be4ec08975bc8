/**
 * The PostgreSQL users, API keys, runs and events repositories (contracts in `../types.ts`, the
 * semantics of `../sqlite.ts`). Every method runs on an {@link Exec}: the pool, or the client of
 * the transaction it was handed out in. Writes that take more than one step are one statement
 * (a data-modifying CTE), so they are atomic outside a transaction too.
 */
import { ConflictError, NotFoundError } from "../../errors.ts";
import type { RunEvent, RunEventType } from "../../protocol/events.ts";
import { dataJsonOf, setDataJson, TERMINAL_STATUSES } from "../../protocol/events.ts";
import type { ApiKeyRepo, ApiKeyRow, EventRepo, RunListQuery, RunRepo, RunRow, UserRepo, UserRow } from "../types.ts";
import type { Exec } from "./exec.ts";
import { decodeCursor, decodeEvent, decodeRun, encodeCursor, RUN_JSON_COLUMNS, type EventRecord } from "../run-rows.ts";

const now = (): string => new Date().toISOString();

/** SQLSTATE of a unique violation. */
const UNIQUE_VIOLATION = "23505";

export function createUserRepo(exec: Exec, ulid: () => string): UserRepo {
  const cols = "id, username, password_hash, role, created_at";
  return {
    count: async () => Number((await exec.query<{ n: number }>("SELECT COUNT(*) AS n FROM users")).rows[0]!.n),
    async create(u) {
      const row: UserRow = { id: `usr_${ulid()}`, username: u.username, password_hash: u.password_hash, role: u.role, created_at: now() };
      const insert = (e: Exec) =>
        e.query(`INSERT INTO users (${cols}) VALUES ($1, $2, $3, $4, $5)`, [row.id, row.username, row.password_hash, row.role, row.created_at]);
      try {
        // Inside a transaction, in a savepoint: a taken name undoes only this insert, as on SQLite.
        await (exec.inTransaction ? exec.atomic(insert) : insert(exec));
      } catch (err) {
        if (sqlState(err) === UNIQUE_VIOLATION) throw new ConflictError(`username ${u.username} is taken`, "username_taken");
        throw err;
      }
      return row;
    },
    getById: async (id) => (await exec.query<UserRow>(`SELECT ${cols} FROM users WHERE id = $1`, [id])).rows[0],
    getByUsername: async (username) => (await exec.query<UserRow>(`SELECT ${cols} FROM users WHERE username = $1`, [username])).rows[0],
    list: async () => (await exec.query<UserRow>(`SELECT ${cols} FROM users ORDER BY created_at, id`)).rows,
    // api_keys, runs and (through runs) events go with the user: ON DELETE CASCADE.
    delete: async (id) => changed(await exec.query("DELETE FROM users WHERE id = $1", [id])),
  };
}

export function createApiKeyRepo(exec: Exec, ulid: () => string): ApiKeyRepo {
  const cols = "id, user_id, name, prefix, key_hash, created_at, last_used_at, revoked_at";
  return {
    async create(k) {
      const row: ApiKeyRow = { id: `key_${ulid()}`, user_id: k.user_id, name: k.name, prefix: k.prefix, key_hash: k.key_hash, created_at: now(), last_used_at: null, revoked_at: null };
      await exec.query(`INSERT INTO api_keys (${cols}) VALUES ($1, $2, $3, $4, $5, $6, NULL, NULL)`, [row.id, row.user_id, row.name, row.prefix, row.key_hash, row.created_at]);
      return row;
    },
    getActiveByHash: async (hash) => (await exec.query<ApiKeyRow>(`SELECT ${cols} FROM api_keys WHERE key_hash = $1 AND revoked_at IS NULL`, [hash])).rows[0],
    listByUser: async (userId) => (await exec.query<ApiKeyRow>(`SELECT ${cols} FROM api_keys WHERE user_id = $1 ORDER BY id`, [userId])).rows,
    revoke: async (id, userId) =>
      changed(await exec.query("UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND user_id = $3 AND revoked_at IS NULL", [now(), id, userId])),
    touch: async (id, at) => void (await exec.query("UPDATE api_keys SET last_used_at = $1 WHERE id = $2", [at, id])),
  };
}

/** Columns `runs.update` may set (everything but `id` and `user_id`; as on SQLite). */
const PATCHABLE = new Set([
  "agent", "status", "input", "metadata", "cwd", "created_at", "started_at", "ended_at",
  "result", "error", "exit_code", "usage", "session_id", "last_event_id",
]);
const RUN_COLS = "id, user_id, agent, status, input, metadata, cwd, created_at, started_at, ended_at, result, error, exit_code, usage, session_id, last_event_id, batch_id";
const TERMINAL = TERMINAL_STATUSES.map((s) => `'${s}'`).join(", ");

export function createRunRepo(exec: Exec): RunRepo {
  const get = async (id: string): Promise<RunRow | undefined> => decodeRun((await exec.query(`SELECT ${RUN_COLS} FROM runs WHERE id = $1`, [id])).rows[0]);
  return {
    async insert(r) {
      const { rows } = await exec.query(
        `INSERT INTO runs (id, user_id, agent, status, input, metadata, cwd, created_at, batch_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING ${RUN_COLS}`,
        [r.id, r.user_id, r.agent, r.status, JSON.stringify(r.input), JSON.stringify(r.metadata), r.cwd, r.created_at, r.batch_id ?? null],
      );
      const row = decodeRun(rows[0]);
      if (!row) throw new Error(`run ${r.id} vanished after insert`);
      return row;
    },
    get,
    async list(q: RunListQuery) {
      const limit = Math.max(1, Math.floor(q.limit));
      const after = q.cursor === undefined ? undefined : decodeCursor(q.cursor);
      const where: string[] = [];
      const params: unknown[] = [];
      for (const key of ["user_id", "status", "agent", "batch_id"] as const) {
        if (q[key] === undefined) continue;
        params.push(q[key]);
        where.push(`${key} = $${params.length}`);
      }
      if (after) {
        params.push(after[0], after[1]);
        where.push(`(created_at, id) < ($${params.length - 1}, $${params.length})`);
      }
      params.push(limit + 1);
      const sql = `SELECT ${RUN_COLS} FROM runs ${where.length ? `WHERE ${where.join(" AND ")}` : ""}
                   ORDER BY created_at DESC, id DESC LIMIT $${params.length}`;
      const rows = (await exec.query(sql, params)).rows.map((r) => decodeRun(r)!);
      const page = rows.slice(0, limit);
      const last = page.at(-1);
      const next_cursor = rows.length > limit && last ? encodeCursor([last.created_at, last.id]) : null;
      return { runs: page, next_cursor };
    },
    async update(id, patch) {
      const keys = Object.keys(patch).filter((k) => (patch as Record<string, unknown>)[k] !== undefined).sort();
      if (keys.length === 0) return;
      const unknown = keys.find((k) => !PATCHABLE.has(k));
      if (unknown) throw new TypeError(`runs.update: ${unknown} is not an updatable column`);
      const params: unknown[] = [id];
      const sets = keys.map((k) => {
        const v = (patch as Record<string, unknown>)[k];
        // PostgreSQL's text refuses U+0000 (SQLSTATE 22021), which an agent's output can hold: it becomes U+FFFD (JSON columns escape it).
        params.push(RUN_JSON_COLUMNS.has(k) && v !== null ? JSON.stringify(v) : typeof v === "string" ? v.replaceAll("\u0000", "\ufffd") : v);
        return `${k} = $${params.length}`;
      });
      await exec.query(`UPDATE runs SET ${sets.join(", ")} WHERE id = $1`, params);
    },
    listNonTerminal: async () =>
      (await exec.query(`SELECT ${RUN_COLS} FROM runs WHERE status NOT IN (${TERMINAL}) ORDER BY created_at, id`)).rows.map((r) => decodeRun(r)!),
    // Events go with the run: ON DELETE CASCADE.
    delete: async (id) => changed(await exec.query("DELETE FROM runs WHERE id = $1", [id])),
  };
}

/**
 * Inserts caller-numbered events (one statement: the rows from one JSON array of
 * `[run_id, id, ts, type, data]`, then each run's `last_event_id` raised to its highest id with
 * GREATEST). One JSON text rather than five text arrays: V8's JSON.stringify escapes the event
 * data natively, where the driver's array encoding escapes element by element in JavaScript (the
 * hottest code of a busy worker).
 */
const INSERT_BATCH = `
  WITH rows AS (
    SELECT r->>0 AS run_id, (r->>1)::bigint AS id, r->>2 AS ts, r->>3 AS type, r->>4 AS data FROM json_array_elements($1::json) AS r
  ), inserted AS (
    INSERT INTO events (run_id, id, ts, type, data) SELECT run_id, id, ts, type, data FROM rows
  )
  UPDATE runs SET last_event_id = GREATEST(runs.last_event_id, highest.id)
  FROM (SELECT run_id, MAX(id) AS id FROM rows GROUP BY run_id) AS highest
  WHERE runs.id = highest.run_id`;

/**
 * Numbers and inserts a run's events (one statement): the UPDATE takes the run's row lock and
 * moves `last_event_id` by the number of events, so a concurrent writer (any process) waits for
 * this transaction and then numbers after it; a rollback gives the numbers back.
 */
const APPEND = `
  WITH bumped AS (
    UPDATE runs SET last_event_id = last_event_id + $2::bigint WHERE id = $1::text RETURNING last_event_id
  )
  INSERT INTO events (run_id, id, ts, type, data)
  SELECT $1::text, bumped.last_event_id - $2::bigint + d.ord, d.ts, d.type, d.data
  FROM bumped CROSS JOIN unnest($3::text[], $4::text[], $5::text[]) WITH ORDINALITY AS d(ts, type, data, ord)
  RETURNING id`;

export function createEventRepo(exec: Exec): EventRepo {
  return {
    async insertBatch(events) {
      if (events.length === 0) return;
      // PostgreSQL's text refuses U+0000: JSON escapes it inside data, and ids, run ids, ts and types never hold one.
      const rows = events.map((e) => [e.run_id, e.id, e.ts, e.type, dataJsonOf(e)]);
      await exec.query(INSERT_BATCH, [JSON.stringify(rows)]);
    },
    async append(runId, drafts) {
      if (drafts.length === 0) return []; // as on SQLite: nothing to number, the run is not looked up
      const json = drafts.map((d) => dataJsonOf(d as RunEvent));
      const { rows } = await exec.query<{ id: number }>(APPEND, [runId, drafts.length, drafts.map((d) => d.ts), drafts.map((d) => d.type), json]);
      if (rows.length === 0) throw new NotFoundError(`run ${runId}`);
      const first = Math.min(...rows.map((r) => Number(r.id)));
      return drafts.map((d, i) => setDataJson({ id: first + i, run_id: runId, ts: d.ts, type: d.type, data: d.data } as RunEvent, json[i]!));
    },
    async list(runId, after, limit) {
      // A run's ids have no gaps: the page is the id range after `after`. Bounding it keeps the plan an index range scan even
      // before the table has statistics (a fresh database, a long new run), where `id > $2 … LIMIT` alone scanned and sorted the rest of the run.
      const n = sqlLimit(limit);
      const { rows } = await exec.query<EventRecord>(
        n === null
          ? "SELECT id, run_id, ts, type, data FROM events WHERE run_id = $1 AND id > $2 ORDER BY id"
          : "SELECT id, run_id, ts, type, data FROM events WHERE run_id = $1 AND id > $2 AND id <= $2::bigint + $3::bigint ORDER BY id LIMIT $3",
        n === null ? [runId, after] : [runId, after, n],
      );
      return rows.map(decodeEvent);
    },
    lastId: async (runId) => Number((await exec.query<{ n: number }>("SELECT COALESCE(MAX(id), 0) AS n FROM events WHERE run_id = $1", [runId])).rows[0]!.n),
    countByType: async (runId, type: RunEventType) =>
      Number((await exec.query<{ n: number }>("SELECT COUNT(*) AS n FROM events WHERE run_id = $1 AND type = $2", [runId, type])).rows[0]!.n),
  };
}


/** A LIMIT value: a non-negative integer, or null (no limit) for a non-finite one. */
export function sqlLimit(limit: number): number | null {
  return Number.isFinite(limit) ? Math.max(0, Math.floor(limit)) : null;
}

/** True when a write changed at least one row. */
export function changed(result: { rowCount: number | null }): boolean {
  return (result.rowCount ?? 0) > 0;
}

/** The SQLSTATE of a driver error, else undefined. */
export function sqlState(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === "string" ? code : undefined;
}

