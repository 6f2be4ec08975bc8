/**
 * The PostgreSQL store: the {@link Store} interface of `../types.ts` over a `pg` connection pool,
 * for several OpenRunner processes (on several machines) sharing one database. Same contracts and
 * same observable behaviour as the embedded SQLite store (`../sqlite.ts`); the shared test suite
 * (`test/unit/store-suite.ts`) runs against both.
 *
 * - Outside a transaction every call is one statement on a pooled connection (multi-step writes
 *   are single statements, hence atomic); `transaction(fn)` checks out one connection for BEGIN …
 *   COMMIT and nests as savepoints (see `exec.ts`).
 * - `events.append` numbers under the run's row lock (`UPDATE runs … RETURNING last_event_id`), so
 *   writers in any number of processes get gap-free, unique ids.
 * - Driver errors keep their SQLSTATE in `code` ({@link isConstraintViolation} recognizes class 23).
 * - BIGINT values (event ids, counts) are read as JavaScript numbers.
 */
import pg from "pg";
import type { CustomTypesConfig, Pool } from "pg";
import { monotonicFactory } from "ulid";
import type { Cluster } from "../cluster.ts";
import type { Repos, Store } from "../types.ts";
import { createBatchRepo } from "./batch-repo.ts";
import { createPostgresCluster } from "./cluster.ts";
import { poolExec, type Exec } from "./exec.ts";
import { applyPostgresMigrations } from "./migrations.ts";
import { createNativeSessionRepo } from "./native-session-repo.ts";
import { createApiKeyRepo, createEventRepo, createRunRepo, createUserRepo } from "./repos.ts";
import { createWebhookRepo } from "./webhook-repo.ts";

export { applyPostgresMigrations, PG_MIGRATIONS } from "./migrations.ts";

/** Options of {@link openPostgresStore}. */
export interface PostgresStoreOptions {
  /** The distributed mode: the database writes the batch event stream (migration 6, `batch_stream`). Default false. */
  batchStream?: boolean;
  /** Connection URL, e.g. `postgresql://openrunner:secret@db.internal:5432/openrunner` (libpq URL form, `?sslmode=` etc. as the `pg` driver reads them). */
  url: string;
  /** Most connections the pool opens. Default 10. */
  poolSize?: number;
  /** How long to wait for a connection (new, or free in the pool), ms; 0 waits forever. Default 10000. */
  connectTimeoutMs?: number;
  /** How long an idle pooled connection is kept, ms. Default 30000. */
  idleTimeoutMs?: number;
  /** `application_name` of the connections (shown in `pg_stat_activity`). Default `openrunner`. */
  applicationName?: string;
  /**
   * Told about an error of an idle pooled connection (e.g. the server restarted); the connection is
   * dropped and the next statement opens another. Default: ignored.
   */
  onConnectionError?: (err: Error) => void;
}

/** The PostgreSQL {@link Store}, plus what the distributed mode builds on it. */
export interface PostgresStore extends Store {
  readonly kind: "postgres";
  /** The store's connection pool (shared with the cluster; ended by `close()`). */
  readonly pool: Pool;
  /**
   * The distributed mode's operations (`../cluster.ts`) over this store's pool and repositories;
   * `onListenError` hears failures of its LISTEN connection (which reconnects).
   */
  cluster(opts?: { onListenError?: (err: Error) => void }): Cluster;
}

/** Reads BIGINT (OID 20) as a JavaScript number (ids and counts stay below 2^53); other types as `pg` does. */
const TYPES: CustomTypesConfig = {
  getTypeParser: ((oid: number, format?: "text" | "binary") =>
    oid === 20 && format !== "binary" ? (v: string) => Number(v) : pg.types.getTypeParser(oid, format ?? "text")) as CustomTypesConfig["getTypeParser"],
};

/**
 * Connects to the PostgreSQL database at `opts.url`, applies pending migrations (once, even when
 * several processes start at the same time: see {@link applyPostgresMigrations}) and returns the
 * {@link Store} (`kind: "postgres"`).
 *
 * Ids: users `usr_<ulid>`, API keys `key_<ulid>`, webhooks `wh_<ulid>`, deliveries `whd_<ulid>`;
 * runs and batches keep the id the caller gives. Timestamps are ISO 8601 UTC strings. Listing
 * order: users and API keys oldest first; runs newest first by `(created_at, id)` compared as
 * bytes; events by id ascending.
 *
 * @throws the driver's Error when the database cannot be reached (within `connectTimeoutMs`) or
 *   a migration fails, Error when the database's schema is newer than this build; the pool is
 *   closed before it rejects.
 * @example
 * const store = await openPostgresStore({ url: process.env.DATABASE_URL! });
 * const user = await store.users.create({ username: "admin", password_hash, role: "admin" });
 * await store.close();
 */
export async function openPostgresStore(opts: PostgresStoreOptions): Promise<PostgresStore> {
  const pool = new pg.Pool({
    connectionString: opts.url,
    max: Math.max(1, Math.floor(opts.poolSize ?? 10)),
    connectionTimeoutMillis: Math.max(0, Math.floor(opts.connectTimeoutMs ?? 10_000)),
    idleTimeoutMillis: Math.max(0, Math.floor(opts.idleTimeoutMs ?? 30_000)),
    application_name: opts.applicationName ?? "openrunner",
    // events.append numbers under a row lock and relies on READ COMMITTED (a stricter server default would fail concurrent appends with 40001).
    options: `-c default_transaction_isolation=read\\ committed${opts.batchStream ? " -c openrunner.batch_stream=on" : ""}`,
    types: TYPES,
  });
  // Without a listener an idle connection's error (server restart, network) would crash the process.
  pool.on("error", (err) => opts.onConnectionError?.(err));
  try {
    await applyPostgresMigrations(pool);
  } catch (err) {
    await pool.end().catch(() => undefined);
    throw err;
  }
  const ulid = monotonicFactory(); // ids sort in creation order, even within one millisecond
  const exec = poolExec(pool);
  const reposOver = (e: Exec): Repos => createRepos(e, ulid);
  let closing: Promise<void> | undefined;
  return {
    kind: "postgres",
    ...reposOver(exec),
    pool,
    cluster: (o) => createPostgresCluster({ pool, url: opts.url, exec, reposOver, ...(o?.onListenError ? { onListenError: o.onListenError } : {}) }),
    // Waits for the checked-out connections to come back (running queries and transactions end), then disconnects.
    close: () => (closing ??= pool.end()),
  };
}

/** The repositories over `exec`; `transaction` hands `fn` the repositories over the transaction's client. */
function createRepos(exec: Exec, ulid: () => string): Repos {
  return {
    users: createUserRepo(exec, ulid),
    apiKeys: createApiKeyRepo(exec, ulid),
    runs: createRunRepo(exec),
    events: createEventRepo(exec),
    webhooks: createWebhookRepo(exec, ulid),
    nativeSessions: createNativeSessionRepo(exec),
    batches: createBatchRepo(exec),
    transaction: (fn) => exec.atomic((inner) => fn(createRepos(inner, ulid))),
  };
}

/**
 * Opens the PostgreSQL store ({@link openPostgresStore}) and its {@link Cluster} (the distributed
 * mode's workers, claims, leases and notifications, over the store's pool). The LISTEN
 * connection's failures go to `onListenError`, else to `onConnectionError`.
 * @throws as {@link openPostgresStore}
 * @example
 * const { store, cluster } = await openPostgresCluster({ url: config.database_url });
 */
export async function openPostgresCluster(opts: PostgresStoreOptions & { onListenError?: (err: Error) => void }): Promise<{ store: PostgresStore; cluster: Cluster }> {
  const store = await openPostgresStore({ ...opts, batchStream: true });
  const onListenError = opts.onListenError ?? opts.onConnectionError;
  return { store, cluster: store.cluster(onListenError ? { onListenError } : {}) };
}
