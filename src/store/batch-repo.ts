/**
 * The SQLite batch repository (`BatchRepo` in `types.ts`): the `batches` table,
 * the batch's runs (the `runs` rows with its `batch_id`, in insertion order)
 * and the batch's stored event stream (`batch_events`, numbered per batch).
 */
import type { Database as Db } from "better-sqlite3";
import type { BatchEvent } from "../protocol/batches.ts";
import type { RunStatus } from "../protocol/events.ts";
import type { BatchRepo, BatchRow } from "./types.ts";
import type { SyncOf } from "./sqlite-gate.ts";

/** Builds the {@link BatchRepo} over an open database (migration 3 applied). */
export function createBatchRepo(db: Db): SyncOf<BatchRepo> {
  const insert = db.prepare("INSERT INTO batches (id, user_id, created_at) VALUES (@id, @user_id, @created_at)");
  const byId = db.prepare("SELECT id, user_id, created_at FROM batches WHERE id = ?");
  const runs = db.prepare("SELECT id, status FROM runs WHERE batch_id = ? ORDER BY rowid");
  const appendEvent = db.prepare("INSERT INTO batch_events (batch_id, id, ts, type, data) VALUES (?, ?, ?, ?, ?)");
  const listEvents = db.prepare("SELECT batch_id, id, ts, type, data FROM batch_events WHERE batch_id = ? AND id > ? ORDER BY id LIMIT ?");
  const lastEventId = db.prepare("SELECT COALESCE(MAX(id), 0) FROM batch_events WHERE batch_id = ?").pluck();
  return {
    insert(b) {
      insert.run(b);
      return { ...b };
    },
    get: (id) => byId.get(id) as BatchRow | undefined,
    runs: (id) => runs.all(id) as Array<{ id: string; status: RunStatus }>,
    appendEvent: (e) => void appendEvent.run(e.batch_id, e.id, e.ts, e.type, JSON.stringify(e.data)),
    listEvents: (batchId, after, limit) =>
      (listEvents.all(batchId, after, Math.max(0, Math.floor(limit))) as Array<{ batch_id: string; id: number; ts: string; type: string; data: string }>).map(
        (r) => ({ id: r.id, batch_id: r.batch_id, ts: r.ts, type: r.type, data: JSON.parse(r.data) }) as BatchEvent,
      ),
    lastEventId: (batchId) => lastEventId.get(batchId) as number,
  };
}
