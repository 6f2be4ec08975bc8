/**
 * Repository interfaces of the store, asynchronous so that one set of interfaces has two
 * implementations: the embedded SQLite one (`sqlite.ts`, better-sqlite3 in WAL mode, the
 * default) and PostgreSQL (`postgres/`, the `pg` driver, for several processes on several
 * machines). One shared test suite (`test/unit/store-suite.ts`) runs against both. All
 * timestamps are ISO 8601 UTC strings. A method that finds nothing resolves `undefined`
 * (or `false`); a refused write rejects with the error named in its comment.
 */
import type { BatchEvent } from "../protocol/batches.ts";
import type { RunEvent, RunEventType, RunStatus, Usage } from "../protocol/events.ts";

export type Role = "admin" | "user";

export interface UserRow {
  id: string;
  username: string;
  password_hash: string;
  role: Role;
  created_at: string;
}

export interface ApiKeyRow {
  id: string;
  user_id: string;
  name: string;
  /** First characters of the key, shown in listings (e.g. `or_ab12cd`). */
  prefix: string;
  /** SHA-256 hex of the whole key. */
  key_hash: string;
  created_at: string;
  last_used_at: string | null;
  revoked_at: string | null;
}

export interface RunRow {
  id: string;
  user_id: string;
  agent: string;
  status: RunStatus;
  input: { text: string };
  /** The request's metadata as accepted (validated). */
  metadata: Record<string, unknown>;
  cwd: string;
  created_at: string;
  started_at: string | null;
  ended_at: string | null;
  /** Final text, when the agent produced one. */
  result: string | null;
  error: { code: string; message: string } | null;
  exit_code: number | null;
  usage: Usage | null;
  /** The agent's own session id (from `agent.session`), for resume. */
  session_id: string | null;
  /** Id of the last stored event. */
  last_event_id: number;
  /** The batch it was created in (`POST /api/runs/batch`), else null (absent on rows built by hand). */
  batch_id?: string | null;
}

export interface UserRepo {
  count(): Promise<number>;
  create(u: { username: string; password_hash: string; role: Role }): Promise<UserRow>;
  getById(id: string): Promise<UserRow | undefined>;
  getByUsername(username: string): Promise<UserRow | undefined>;
  list(): Promise<UserRow[]>;
  /** Deletes the user, their API keys, runs and events. Returns false if absent. */
  delete(id: string): Promise<boolean>;
}

export interface ApiKeyRepo {
  create(k: { user_id: string; name: string; prefix: string; key_hash: string }): Promise<ApiKeyRow>;
  /** The active (not revoked) key with this hash. */
  getActiveByHash(key_hash: string): Promise<ApiKeyRow | undefined>;
  listByUser(user_id: string): Promise<ApiKeyRow[]>;
  /** Marks revoked; false if absent, not the user's, or already revoked. */
  revoke(id: string, user_id: string): Promise<boolean>;
  touch(id: string, at: string): Promise<void>;
}

export interface RunListQuery {
  /** Only this user's runs; undefined for all (admin). */
  user_id?: string;
  status?: RunStatus;
  agent?: string;
  /** Only the runs of this batch. */
  batch_id?: string;
  /** Opaque cursor from the previous page (runs older than it). */
  cursor?: string;
  limit: number;
}

export interface RunRepo {
  insert(r: Omit<RunRow, "started_at" | "ended_at" | "result" | "error" | "exit_code" | "usage" | "session_id" | "last_event_id" | "batch_id"> & { batch_id?: string }): Promise<RunRow>;
  get(id: string): Promise<RunRow | undefined>;
  /** Newest first; `next_cursor` is null on the last page. */
  list(q: RunListQuery): Promise<{ runs: RunRow[]; next_cursor: string | null }>;
  update(id: string, patch: Partial<Omit<RunRow, "id" | "user_id">>): Promise<void>;
  /** Runs in a non-terminal status (for recovery at start). */
  listNonTerminal(): Promise<RunRow[]>;
  /** Deletes the run and its events. */
  delete(id: string): Promise<boolean>;
}

export interface EventRepo {
  /**
   * Inserts events numbered by the caller (any runs) in one transaction (the caller's, inside
   * {@link Store.transaction}) and raises each run's `last_event_id` to its highest id. This is
   * the single-writer path: the process that runs a run numbers its events.
   * @throws an error that {@link isConstraintViolation} recognizes when an id is taken or the run is gone.
   */
  insertBatch(events: readonly RunEvent[]): Promise<void>;
  /**
   * Numbers and stores events of one run: ids are taken from the run's `last_event_id` inside
   * the transaction (a row lock on PostgreSQL), so writers in several processes get gap-free,
   * unique ids. Resolves the stored events, in order.
   * @throws NotFoundError (code `not_found`) when the run does not exist.
   */
  append(run_id: string, drafts: ReadonlyArray<Pick<RunEvent, "ts" | "type" | "data">>): Promise<RunEvent[]>;
  /**
   * Events of a run with `id > after`, ascending, at most `limit`. A run's ids have no gaps (every writer
   * numbers right after the last stored id); the PostgreSQL store's page query relies on it.
   */
  list(run_id: string, after: number, limit: number): Promise<RunEvent[]>;
  /** Highest stored id of a run, 0 if none. */
  lastId(run_id: string): Promise<number>;
  countByType(run_id: string, type: RunEventType): Promise<number>;
}

/** A registered webhook (`/api/webhooks`). `secret` signs deliveries; it is never returned after creation. */
export interface WebhookRow {
  id: string;
  user_id: string;
  url: string;
  /** Event types delivered, e.g. `["permission.request", "run.completed"]`. */
  events: string[];
  secret: string;
  created_at: string;
}

/**
 * One event to deliver to one webhook. `pending`: queued, in flight or waiting to retry;
 * `dropped`: the queue was full; `abandoned`: the server stopped before it was delivered.
 */
export type WebhookDeliveryStatus = "pending" | "delivered" | "failed" | "dropped" | "abandoned";

export interface WebhookDeliveryRow {
  id: string;
  webhook_id: string;
  run_id: string;
  event_type: string;
  /** The run event's id. */
  event_id: number;
  status: WebhookDeliveryStatus;
  /** Attempts made so far. */
  attempts: number;
  created_at: string;
  updated_at: string;
}

/** One HTTP attempt of a delivery: the response status, or the error when there was none (or it was refused). */
export interface WebhookAttemptRow {
  delivery_id: string;
  /** 1, 2, 3 … */
  attempt: number;
  at: string;
  status_code: number | null;
  error: string | null;
  duration_ms: number;
}

export interface WebhookRepo {
  create(w: { user_id: string; url: string; events: string[]; secret: string }): Promise<WebhookRow>;
  get(id: string): Promise<WebhookRow | undefined>;
  /** Oldest first. */
  listByUser(user_id: string): Promise<WebhookRow[]>;
  /** Deletes the webhook and its deliveries; false if absent or not the user's. */
  delete(id: string, user_id: string): Promise<boolean>;
  insertDelivery(d: { webhook_id: string; run_id: string; event_type: string; event_id: number; status: WebhookDeliveryStatus }): Promise<WebhookDeliveryRow>;
  updateDelivery(id: string, patch: { status: WebhookDeliveryStatus; attempts?: number }): Promise<void>;
  /** Records an attempt (and bumps the delivery's `attempts`). */
  recordAttempt(a: WebhookAttemptRow): Promise<void>;
  /** A webhook's deliveries, newest first, each with its attempts (oldest first). */
  listDeliveries(webhook_id: string, limit: number): Promise<Array<WebhookDeliveryRow & { attempt_log: WebhookAttemptRow[] }>>;
  /** Keeps the newest `keep` deliveries of a webhook; returns how many were removed. */
  pruneDeliveries(webhook_id: string, keep: number): Promise<number>;
  /** Marks every `pending` delivery `abandoned` (at shutdown and at start); returns how many. */
  abandonPending(): Promise<number>;
}

/** A batch of runs (`POST /api/runs/batch`). */
export interface BatchRow {
  id: string;
  user_id: string;
  created_at: string;
}

/** Batches and their event streams. A batch's runs are the runs whose `batch_id` is its id. */
export interface BatchRepo {
  insert(b: BatchRow): Promise<BatchRow>;
  get(id: string): Promise<BatchRow | undefined>;
  /** The batch's runs, in creation (request) order. */
  runs(id: string): Promise<Array<{ id: string; status: RunStatus }>>;
  /** Stores an event of the batch's stream (the caller numbers it: last id + 1). */
  appendEvent(e: BatchEvent): Promise<void>;
  /** Events of a batch with `id > after`, ascending, at most `limit`. */
  listEvents(batch_id: string, after: number, limit: number): Promise<BatchEvent[]>;
  /** Highest stored event id of a batch, 0 if none. */
  lastEventId(batch_id: string): Promise<number>;
}

/** The stored conversation of one session of the `openrunner` agent (`src/agent/native/`). */
export interface NativeSessionRow {
  /** The session id (the run's `agent.session`). */
  session_id: string;
  /** The run that wrote it. */
  run_id: string;
  /** The session it continued (`metadata.resume`), or null. */
  parent_id: string | null;
  /** `<provider>/<model>` of its last turn. */
  model: string;
  /** The whole conversation in the agent's own neutral form (`src/agent/native/transcript.ts`). */
  messages: unknown[];
  updated_at: string;
}

/** Conversations of the `openrunner` agent. */
export interface NativeSessionRepo {
  /** The session, or undefined. */
  get(sessionId: string): Promise<NativeSessionRow | undefined>;
  /**
   * Creates or replaces the session's conversation (`updated_at` is set here). `messages_json`:
   * the conversation already serialized (`JSON.stringify(messages)`), so a growing conversation
   * is not serialized whole again every turn.
   */
  save(row: Omit<NativeSessionRow, "updated_at" | "messages"> & ({ messages: unknown[] } | { messages_json: string })): Promise<void>;
}

/** The repositories, as seen outside and inside a transaction. */
export interface Repos {
  users: UserRepo;
  apiKeys: ApiKeyRepo;
  runs: RunRepo;
  events: EventRepo;
  webhooks: WebhookRepo;
  /** Conversations of the `openrunner` agent, by session (`native-session-repo.ts`). */
  nativeSessions: NativeSessionRepo;
  batches: BatchRepo;
  /**
   * Runs `fn` in one transaction and resolves what it resolves; the repositories `fn` gets
   * (`tx`) write inside it, and `tx.transaction` nests (a savepoint: its failure rolls back
   * only its own writes). When `fn` rejects, everything it wrote is rolled back and the
   * rejection is passed on. Use `tx` inside `fn`, never the outer store (on SQLite the outer
   * store waits for the transaction to end: it would never resolve).
   */
  transaction<T>(fn: (tx: Repos) => Promise<T>): Promise<T>;
}

/** Which implementation a {@link Store} is. */
export type StoreKind = "sqlite" | "postgres";

/** The store: repositories plus lifecycle. */
export interface Store extends Repos {
  readonly kind: StoreKind;
  /** Closes the database (waits for running queries); safe to call twice. */
  close(): Promise<void>;
}

/**
 * True for a write refused by a constraint of either implementation: a taken key or a missing
 * parent row (SQLite `SQLITE_CONSTRAINT*`, PostgreSQL SQLSTATE class 23).
 */
export function isConstraintViolation(err: unknown): boolean {
  const code = String((err as { code?: unknown } | null)?.code ?? "");
  return code.startsWith("SQLITE_CONSTRAINT") || /^23[0-9A-Z]{3}$/.test(code);
}
