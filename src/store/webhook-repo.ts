/**
 * The SQLite {@link WebhookRepo}: webhooks, their deliveries and every attempt
 * (migration 2). Ids: webhooks `wh_<ulid>`, deliveries `whd_<ulid>` (ulids sort
 * in creation order). `events` is stored as JSON text. A webhook's deliveries
 * and attempts go with it (ON DELETE CASCADE); deliveries keep their `run_id`
 * after the run is deleted (no foreign key: the history of what was sent stays).
 */
import type { Database as Db } from "better-sqlite3";
import type { WebhookAttemptRow, WebhookDeliveryRow, WebhookRepo, WebhookRow } from "./types.ts";
import type { SyncOf } from "./sqlite-gate.ts";

const HOOK_COLS = "id, user_id, url, events, secret, created_at";
const DELIVERY_COLS = "id, webhook_id, run_id, event_type, event_id, status, attempts, created_at, updated_at";

/** Creates the repository on an open, migrated database; `ulid` makes sortable ids. */
export function createWebhookRepo(db: Db, ulid: () => string): SyncOf<WebhookRepo> {
  const now = () => new Date().toISOString();
  const insertHook = db.prepare(`INSERT INTO webhooks (${HOOK_COLS}) VALUES (@id, @user_id, @url, @events, @secret, @created_at)`);
  const hookById = db.prepare(`SELECT ${HOOK_COLS} FROM webhooks WHERE id = ?`);
  const hooksByUser = db.prepare(`SELECT ${HOOK_COLS} FROM webhooks WHERE user_id = ? ORDER BY id`);
  const deleteHook = db.prepare("DELETE FROM webhooks WHERE id = ? AND user_id = ?");
  const insertDelivery = db.prepare(`INSERT INTO webhook_deliveries (${DELIVERY_COLS}) VALUES (@id, @webhook_id, @run_id, @event_type, @event_id, @status, 0, @created_at, @created_at)`);
  const deliveryById = db.prepare(`SELECT ${DELIVERY_COLS} FROM webhook_deliveries WHERE id = ?`);
  const setStatus = db.prepare("UPDATE webhook_deliveries SET status = ?, updated_at = ? WHERE id = ?");
  const insertAttempt = db.prepare("INSERT INTO webhook_attempts (delivery_id, attempt, at, status_code, error, duration_ms) VALUES (@delivery_id, @attempt, @at, @status_code, @error, @duration_ms)");
  const bumpAttempts = db.prepare("UPDATE webhook_deliveries SET attempts = MAX(attempts, ?), updated_at = ? WHERE id = ?");
  const deliveriesOf = db.prepare(`SELECT ${DELIVERY_COLS} FROM webhook_deliveries WHERE webhook_id = ? ORDER BY id DESC LIMIT ?`);
  const attemptsOf = db.prepare("SELECT delivery_id, attempt, at, status_code, error, duration_ms FROM webhook_attempts WHERE delivery_id = ? ORDER BY attempt");
  const prune = db.prepare(
    "DELETE FROM webhook_deliveries WHERE webhook_id = @webhook_id AND id NOT IN (SELECT id FROM webhook_deliveries WHERE webhook_id = @webhook_id ORDER BY id DESC LIMIT @keep)",
  );
  const abandon = db.prepare("UPDATE webhook_deliveries SET status = 'abandoned', updated_at = ? WHERE status = 'pending'");
  const decodeHook = (r: unknown): WebhookRow | undefined => (r === undefined ? undefined : { ...(r as WebhookRow), events: JSON.parse((r as { events: string }).events) as string[] });
  const record = db.transaction((a: WebhookAttemptRow) => {
    insertAttempt.run(a);
    bumpAttempts.run(a.attempt, a.at, a.delivery_id);
  });
  return {
    create(w) {
      const row: WebhookRow = { id: `wh_${ulid()}`, user_id: w.user_id, url: w.url, events: [...w.events], secret: w.secret, created_at: now() };
      insertHook.run({ ...row, events: JSON.stringify(row.events) });
      return row;
    },
    get: (id) => decodeHook(hookById.get(id)),
    listByUser: (userId) => hooksByUser.all(userId).map((r) => decodeHook(r)!),
    delete: (id, userId) => deleteHook.run(id, userId).changes > 0,
    insertDelivery(d) {
      const id = `whd_${ulid()}`;
      insertDelivery.run({ id, ...d, created_at: now() });
      return deliveryById.get(id) as WebhookDeliveryRow;
    },
    updateDelivery(id, patch) {
      const at = now();
      if (patch.attempts !== undefined) bumpAttempts.run(patch.attempts, at, id);
      setStatus.run(patch.status, at, id);
    },
    recordAttempt: (a) => void record(a),
    listDeliveries(webhookId, limit) {
      const rows = deliveriesOf.all(webhookId, Math.max(1, Math.floor(limit))) as WebhookDeliveryRow[];
      return rows.map((d) => ({ ...d, attempt_log: attemptsOf.all(d.id) as WebhookAttemptRow[] }));
    },
    pruneDeliveries: (webhookId, keep) => prune.run({ webhook_id: webhookId, keep: Math.max(0, Math.floor(keep)) }).changes,
    abandonPending: () => abandon.run(now()).changes,
  };
}
