/**
 * The PostgreSQL {@link BatchRepo} (migration 3), with the semantics of the SQLite one
 * (`../batch-repo.ts`): the `batches` table, the batch's runs in insertion order (`runs.seq`,
 * an identity column, where SQLite uses `rowid`) and the batch's event stream (`batch_events`,
 * numbered per batch by the caller, `data` as JSON text).
 */
import type { BatchEvent } from "../../protocol/batches.ts";
import type { RunStatus } from "../../protocol/events.ts";
import type { BatchRepo, BatchRow } from "../types.ts";
import type { Exec } from "./exec.ts";
import { sqlLimit } from "./repos.ts";

/** Creates the repository on a migrated database. */
export function createBatchRepo(exec: Exec): BatchRepo {
  return {
    async insert(b) {
      await exec.query("INSERT INTO batches (id, user_id, created_at) VALUES ($1, $2, $3)", [b.id, b.user_id, b.created_at]);
      return { ...b };
    },
    get: async (id) => (await exec.query<BatchRow>("SELECT id, user_id, created_at FROM batches WHERE id = $1", [id])).rows[0],
    runs: async (id) => (await exec.query<{ id: string; status: RunStatus }>("SELECT id, status FROM runs WHERE batch_id = $1 ORDER BY seq", [id])).rows,
    appendEvent: async (e) =>
      void (await exec.query("INSERT INTO batch_events (batch_id, id, ts, type, data) VALUES ($1, $2, $3, $4, $5)", [e.batch_id, e.id, e.ts, e.type, JSON.stringify(e.data)])),
    async listEvents(batchId, after, limit) {
      const { rows } = await exec.query<{ batch_id: string; id: number; ts: string; type: string; data: string }>(
        "SELECT batch_id, id, ts, type, data FROM batch_events WHERE batch_id = $1 AND id > $2 ORDER BY id LIMIT $3",
        [batchId, after, sqlLimit(limit)],
      );
      return rows.map((r) => ({ id: r.id, batch_id: r.batch_id, ts: r.ts, type: r.type, data: JSON.parse(r.data) }) as BatchEvent);
    },
    lastEventId: async (batchId) => Number((await exec.query<{ n: number }>("SELECT COALESCE(MAX(id), 0) AS n FROM batch_events WHERE batch_id = $1", [batchId])).rows[0]!.n),
  };
}
