/**
 * The {@link Cluster} on PostgreSQL (migration 5, `cluster`): workers in the `workers` table, claims
 * in `runs.worker_id`, wake-ups by LISTEN/NOTIFY. A run's lease is its worker's heartbeat (one row
 * per worker, never the run rows: a heartbeat that locked its runs' rows deadlocked with the event
 * writer's commits, which lock the same rows in another order).
 *
 * - `openrunner_events`: sent by the database itself, at commit, by the statement trigger on
 *   `events` (payload `<run_id>:<last id>`), whoever wrote them. The same trigger refuses events
 *   of a run that is already over (SQLSTATE 23514), which fences off a worker that lost its lease.
 * - `openrunner_batches`: batch events written by the database (migration 6) in the transaction
 *   that changed a batch run's status (payload `<batch_id>:<id>`).
 * - `openrunner_queue`: a run was queued, or a slot freed (payload empty).
 * - `openrunner_control`: a command for the worker that holds a run (JSON {@link ControlMessage}).
 *
 * Claims take a transaction-scoped advisory lock, so admission decisions are made one at a time
 * across the cluster and limits are exact; everything else uses row locks.
 */
import { hostname } from "node:os";
import pg from "pg";
import type { Pool } from "pg";
import { TERMINAL_STATUSES, type RunEvent } from "../../protocol/events.ts";
import type { ClaimRequest, Cluster, ClusterListeners, ControlMessage, WorkerRow } from "../cluster.ts";
import type { Repos, RunRow } from "../types.ts";
import type { Exec } from "./exec.ts";

const EVENTS = "openrunner_events";
const BATCHES = "openrunner_batches";
const QUEUE = "openrunner_queue";
const CONTROL = "openrunner_control";
/** Key of the advisory lock that serializes claims (any constant; "OpenRun" in ASCII). */
const CLAIM_LOCK = 0x4f70656e52756e;
/** Most queued runs one claim looks at (oldest first). */
const CLAIM_WINDOW = 2000;
const TERMINAL = `(${TERMINAL_STATUSES.map((s) => `'${s}'`).join(", ")})`;

/** What {@link createPostgresCluster} needs from the store. */
export interface PostgresClusterDeps {
  pool: Pool;
  /** Connection URL, for the LISTEN connection (a dedicated client, outside the pool). */
  url: string;
  exec: Exec;
  /** The store's repositories over a transaction's client. */
  reposOver: (exec: Exec) => Repos;
  /** Told when the LISTEN connection fails (it reconnects). */
  onListenError?: (err: Error) => void;
}

/** Builds the cluster over the store's pool; see the module comment. */
export function createPostgresCluster(d: PostgresClusterDeps): Cluster {
  const { pool, exec } = d;
  return {
    async registerWorker(w) {
      await pool.query(
        `INSERT INTO workers (id, host, pid, agents, isolations, capacity, started_at, last_heartbeat)
         VALUES ($1, $2, $3, $4, $5, $6, $7, now())
         ON CONFLICT (id) DO UPDATE SET host = excluded.host, pid = excluded.pid, agents = excluded.agents,
           isolations = excluded.isolations, capacity = excluded.capacity, last_heartbeat = now()`,
        [w.id, w.host || hostname(), w.pid, JSON.stringify(w.agents), JSON.stringify(w.isolations), w.capacity, new Date().toISOString()],
      );
    },

    async heartbeat(workerId) {
      const { rowCount } = await pool.query("UPDATE workers SET last_heartbeat = now() WHERE id = $1", [workerId]);
      return (rowCount ?? 0) > 0;
    },

    async removeWorker(workerId) {
      await pool.query("DELETE FROM workers WHERE id = $1", [workerId]);
    },

    async listWorkers() {
      const { rows } = await pool.query<{ id: string; host: string; pid: number; agents: string; isolations: string; capacity: number; started_at: string; last_heartbeat: Date; age_ms: number; running: number }>(
        `SELECT w.id, w.host, w.pid, w.agents, w.isolations, w.capacity, w.started_at, w.last_heartbeat,
                (EXTRACT(EPOCH FROM (now() - w.last_heartbeat)) * 1000)::float8 AS age_ms,
                (SELECT COUNT(*) FROM runs r WHERE r.worker_id = w.id AND r.status NOT IN ${TERMINAL}) AS running
         FROM workers w ORDER BY w.started_at, w.id`,
      );
      return rows.map(
        (r): WorkerRow => ({ id: r.id, host: r.host, pid: r.pid, agents: JSON.parse(r.agents), isolations: JSON.parse(r.isolations), capacity: r.capacity, started_at: r.started_at, last_heartbeat: r.last_heartbeat.toISOString(), heartbeat_age_ms: Math.max(0, Math.round(Number(r.age_ms))), running: Number(r.running) }),
      );
    },

    async claim(req: ClaimRequest): Promise<RunRow[]> {
      const ids = await exec.atomic(async (tx) => {
        await tx.query("SELECT pg_advisory_xact_lock($1)", [CLAIM_LOCK]);
        const queued = await tx.query<{ id: string; user_id: string; metadata: string; created_at: string }>(
          `SELECT id, user_id, metadata, created_at FROM runs WHERE status = 'queued' AND worker_id IS NULL AND agent = ANY($1::text[])
           ORDER BY created_at, id LIMIT ${CLAIM_WINDOW}`,
          [req.agents],
        );
        const candidates = [];
        for (const r of queued.rows) {
          const md = JSON.parse(r.metadata) as { isolation?: unknown; priority?: unknown };
          const isolation = md.isolation === "docker" ? "docker" : "none";
          if (!req.isolations.includes(isolation)) continue;
          candidates.push({ id: r.id, user_id: r.user_id, priority: typeof md.priority === "string" ? md.priority : "normal", created_at: r.created_at });
        }
        if (candidates.length === 0) return [];
        const running = await tx.query<{ user_id: string }>(`SELECT user_id FROM runs WHERE worker_id IS NOT NULL AND status NOT IN ${TERMINAL}`);
        const chosen = req.choose(candidates, running.rows);
        if (chosen.length === 0) return [];
        const { rows } = await tx.query<{ id: string }>(
          `UPDATE runs SET worker_id = $1 WHERE id = ANY($2::text[]) AND status = 'queued' AND worker_id IS NULL RETURNING id`,
          [req.workerId, chosen],
        );
        const taken = new Set(rows.map((r) => r.id));
        return chosen.filter((id) => taken.has(id)); // in admission order
      });
      const runs = d.reposOver(exec).runs;
      const out: RunRow[] = [];
      for (const id of ids) {
        const row = await runs.get(id);
        if (row) out.push(row);
      }
      return out;
    },

    async cancelQueued(runId, data) {
      return exec.atomic(async (tx) => {
        const { rows } = await tx.query<{ status: string; worker_id: string | null; created_at: string }>("SELECT status, worker_id, created_at FROM runs WHERE id = $1 FOR UPDATE", [runId]);
        const row = rows[0];
        if (!row || row.status !== "queued" || row.worker_id !== null) return null;
        const ts = new Date().toISOString();
        const [event] = await d.reposOver(tx).events.append(runId, [{ ts, type: "run.cancelled", data: { ...data, duration_ms: Math.max(0, Date.parse(ts) - Date.parse(row.created_at)) } }]);
        await tx.query("UPDATE runs SET status = 'cancelled', ended_at = $2 WHERE id = $1", [runId, ts]);
        return event ?? null;
      });
    },

    async reapExpired(leaseMs) {
      const ended: string[] = [];
      for (;;) {
        const one = await exec.atomic(async (tx) => {
          // The lease is re-checked under the run's row lock: a worker heard from meanwhile keeps its run.
          const { rows } = await tx.query<{ id: string; worker_id: string; created_at: string; started_at: string | null }>(
            `SELECT r.id, r.worker_id, r.created_at, r.started_at FROM runs r LEFT JOIN workers w ON w.id = r.worker_id
             WHERE r.worker_id IS NOT NULL AND r.status NOT IN ${TERMINAL}
               AND (w.id IS NULL OR w.last_heartbeat < now() - $1 * interval '1 millisecond')
             ORDER BY r.created_at, r.id LIMIT 1 FOR UPDATE OF r SKIP LOCKED`,
            [leaseMs],
          );
          const row = rows[0];
          if (!row) return null;
          const ts = new Date().toISOString();
          const error = { code: "worker_lost", message: `worker ${row.worker_id} stopped renewing its lease while the run was live` };
          const started = Date.parse(row.started_at ?? row.created_at);
          await d.reposOver(tx).events.append(row.id, [{ ts, type: "run.failed", data: { error, duration_ms: Math.max(0, Date.parse(ts) - started) } }]);
          await tx.query("UPDATE runs SET status = 'failed', ended_at = $2, error = $3 WHERE id = $1", [row.id, ts, JSON.stringify(error)]);
          return row.id;
        });
        if (one === null) break;
        ended.push(one);
      }
      await pool.query("DELETE FROM workers WHERE last_heartbeat < now() - $1 * interval '1 millisecond'", [2 * leaseMs]);
      if (ended.length > 0) await pool.query("SELECT pg_notify($1, '')", [QUEUE]); // their slots are free
      return ended;
    },

    async orphaned(runIds) {
      if (runIds.length === 0) return [];
      const { rows } = await pool.query<{ id: string }>(
        `SELECT r.id FROM runs r WHERE r.id = ANY($1::text[])
           AND (r.status IN ${TERMINAL} OR r.worker_id IS NULL OR NOT EXISTS (SELECT 1 FROM workers w WHERE w.id = r.worker_id))
           AND r.status <> 'queued'`,
        [runIds],
      );
      return rows.map((r) => r.id);
    },

    async queuedCount(userId) {
      const { rows } = await pool.query<{ n: number }>(
        `SELECT COUNT(*) AS n FROM runs WHERE status = 'queued' AND worker_id IS NULL${userId === undefined ? "" : " AND user_id = $1"}`,
        userId === undefined ? [] : [userId],
      );
      return Number(rows[0]!.n);
    },

    async notifyQueued() {
      await pool.query("SELECT pg_notify($1, '')", [QUEUE]);
    },

    async requestCancel(runId, reason, by) {
      await pool.query(`UPDATE runs SET cancel_requested = $2 WHERE id = $1 AND status NOT IN ${TERMINAL}`, [runId, JSON.stringify({ reason, by })]);
      await pool.query("SELECT pg_notify($1, $2)", [CONTROL, JSON.stringify({ type: "cancel", run_id: runId, reason, by } satisfies ControlMessage)]);
    },

    async cancelRequests(workerId) {
      const { rows } = await pool.query<{ id: string; cancel_requested: string }>(
        `SELECT id, cancel_requested FROM runs WHERE worker_id = $1 AND status NOT IN ${TERMINAL} AND cancel_requested IS NOT NULL`,
        [workerId],
      );
      return rows.map((r) => ({ run_id: r.id, ...(JSON.parse(r.cancel_requested) as { reason: string; by: string }) }));
    },

    async publishControl(msg: ControlMessage) {
      await pool.query("SELECT pg_notify($1, $2)", [CONTROL, JSON.stringify(msg)]);
    },

    listen: (handlers) => listen(d, handlers),
  };
}

/**
 * One LISTEN connection (outside the pool) for the process's handlers; reconnects with backoff
 * (0.1 s doubling to 5 s) and then calls `reconnected`. Resolves once listening.
 */
async function listen(d: PostgresClusterDeps, h: ClusterListeners): Promise<() => Promise<void>> {
  let client: pg.Client | null = null;
  let stopped = false;
  let delay = 100;
  let timer: NodeJS.Timeout | null = null;
  const channels = [h.events && EVENTS, h.batches && BATCHES, h.queue && QUEUE, h.control && CONTROL].filter((c): c is string => Boolean(c));
  /** `<id>:<n>` payloads of the events and batches channels. */
  const split = (payload: string | undefined): [string, number] | null => {
    const at = (payload ?? "").lastIndexOf(":");
    return at > 0 ? [payload!.slice(0, at), Number(payload!.slice(at + 1))] : null;
  };

  const onNotification = (n: pg.Notification) => {
    try {
      if (n.channel === EVENTS && h.events) {
        const p = split(n.payload);
        if (p) h.events(p[0], p[1]);
      } else if (n.channel === BATCHES && h.batches) {
        const p = split(n.payload);
        if (p) h.batches(p[0], p[1]);
      } else if (n.channel === QUEUE) h.queue?.();
      else if (n.channel === CONTROL && h.control) h.control(JSON.parse(n.payload ?? "null") as ControlMessage);
    } catch (err) {
      d.onListenError?.(err instanceof Error ? err : new Error(String(err)));
    }
  };

  const connect = async (): Promise<void> => {
    const c = new pg.Client({ connectionString: d.url, application_name: "openrunner-listen", keepAlive: true });
    c.on("notification", onNotification);
    c.on("error", (err) => {
      d.onListenError?.(err);
      retry(c);
    });
    c.on("end", () => retry(c));
    await c.connect();
    for (const ch of channels) await c.query(`LISTEN ${ch}`);
    client = c;
    delay = 100;
  };

  // A half-open connection (a peer gone without a FIN) is noticed by a query that fails or hangs, not by waiting: ping every 15 s.
  const ping = setInterval(() => {
    const c = client;
    if (!c) return;
    const timeout = setTimeout(() => retry(c), 10_000);
    c.query("SELECT 1").then(
      () => clearTimeout(timeout),
      () => (clearTimeout(timeout), retry(c)),
    );
  }, 15_000);
  ping.unref();

  const retry = (c: pg.Client) => {
    if (stopped || client !== c) return;
    client = null;
    void c.end().catch(() => undefined);
    const again = () => {
      timer = null;
      if (stopped) return;
      connect().then(
        () => h.reconnected?.(),
        (err: unknown) => {
          d.onListenError?.(err instanceof Error ? err : new Error(String(err)));
          delay = Math.min(5000, delay * 2);
          timer = setTimeout(again, delay);
        },
      );
    };
    timer = setTimeout(again, delay);
  };

  await connect();
  return async () => {
    stopped = true;
    clearInterval(ping);
    if (timer) clearTimeout(timer);
    const c = client;
    client = null;
    await c?.end().catch(() => undefined);
  };
}

/** The event a notification announces: the run and its highest stored id. */
export type EventsNotification = Pick<RunEvent, "run_id" | "id">;
