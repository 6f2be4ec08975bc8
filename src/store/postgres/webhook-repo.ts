/**
 * The PostgreSQL {@link WebhookRepo} (migration 2), with the semantics of the SQLite one
 * (`../webhook-repo.ts`): ids `wh_<ulid>` and `whd_<ulid>` (sorting in creation order),
 * `events` as JSON text, deliveries and attempts going with their webhook (ON DELETE CASCADE),
 * a delivery keeping its `run_id` after the run is deleted.
 */
import type { WebhookAttemptRow, WebhookDeliveryRow, WebhookRepo, WebhookRow } from "../types.ts";
import type { Exec } from "./exec.ts";
import { changed } from "./repos.ts";

const HOOK_COLS = "id, user_id, url, events, secret, created_at";
const DELIVERY_COLS = "id, webhook_id, run_id, event_type, event_id, status, attempts, created_at, updated_at";
const ATTEMPT_COLS = "delivery_id, attempt, at, status_code, error, duration_ms";

/** Creates the repository on a migrated database; `ulid` makes sortable ids. */
export function createWebhookRepo(exec: Exec, ulid: () => string): WebhookRepo {
  const now = () => new Date().toISOString();
  const decodeHook = (r: unknown): WebhookRow | undefined =>
    r === undefined ? undefined : { ...(r as WebhookRow), events: JSON.parse((r as { events: string }).events) as string[] };
  return {
    async create(w) {
      const row: WebhookRow = { id: `wh_${ulid()}`, user_id: w.user_id, url: w.url, events: [...w.events], secret: w.secret, created_at: now() };
      await exec.query(`INSERT INTO webhooks (${HOOK_COLS}) VALUES ($1, $2, $3, $4, $5, $6)`, [row.id, row.user_id, row.url, JSON.stringify(row.events), row.secret, row.created_at]);
      return row;
    },
    get: async (id) => decodeHook((await exec.query(`SELECT ${HOOK_COLS} FROM webhooks WHERE id = $1`, [id])).rows[0]),
    listByUser: async (userId) => (await exec.query(`SELECT ${HOOK_COLS} FROM webhooks WHERE user_id = $1 ORDER BY id`, [userId])).rows.map((r) => decodeHook(r)!),
    delete: async (id, userId) => changed(await exec.query("DELETE FROM webhooks WHERE id = $1 AND user_id = $2", [id, userId])),
    async insertDelivery(d) {
      const at = now();
      const { rows } = await exec.query<WebhookDeliveryRow>(
        `INSERT INTO webhook_deliveries (${DELIVERY_COLS}) VALUES ($1, $2, $3, $4, $5, $6, 0, $7, $7) RETURNING ${DELIVERY_COLS}`,
        [`whd_${ulid()}`, d.webhook_id, d.run_id, d.event_type, d.event_id, d.status, at],
      );
      return rows[0]!;
    },
    async updateDelivery(id, patch) {
      // attempts only grows (as on SQLite: MAX(attempts, ?)); one statement for both columns.
      await exec.query("UPDATE webhook_deliveries SET status = $1, updated_at = $2, attempts = GREATEST(attempts, COALESCE($3::integer, attempts)) WHERE id = $4", [
        patch.status,
        now(),
        patch.attempts ?? null,
        id,
      ]);
    },
    async recordAttempt(a) {
      await exec.query(
        `WITH attempt AS (INSERT INTO webhook_attempts (${ATTEMPT_COLS}) VALUES ($1, $2, $3, $4, $5, $6))
         UPDATE webhook_deliveries SET attempts = GREATEST(attempts, $2), updated_at = $3 WHERE id = $1`,
        [a.delivery_id, a.attempt, a.at, a.status_code, a.error, a.duration_ms],
      );
    },
    async listDeliveries(webhookId, limit) {
      const { rows } = await exec.query<WebhookDeliveryRow>(`SELECT ${DELIVERY_COLS} FROM webhook_deliveries WHERE webhook_id = $1 ORDER BY id DESC LIMIT $2`, [
        webhookId,
        Math.max(1, Math.floor(limit)),
      ]);
      if (rows.length === 0) return [];
      const attempts = await exec.query<WebhookAttemptRow>(`SELECT ${ATTEMPT_COLS} FROM webhook_attempts WHERE delivery_id = ANY($1::text[]) ORDER BY delivery_id, attempt`, [
        rows.map((d) => d.id),
      ]);
      const byDelivery = new Map<string, WebhookAttemptRow[]>();
      for (const a of attempts.rows) {
        let list = byDelivery.get(a.delivery_id);
        if (!list) byDelivery.set(a.delivery_id, (list = []));
        list.push(a);
      }
      return rows.map((d) => ({ ...d, attempt_log: byDelivery.get(d.id) ?? [] }));
    },
    pruneDeliveries: async (webhookId, keep) =>
      (
        await exec.query(
          "DELETE FROM webhook_deliveries WHERE webhook_id = $1 AND id NOT IN (SELECT id FROM webhook_deliveries WHERE webhook_id = $1 ORDER BY id DESC LIMIT $2)",
          [webhookId, Math.max(0, Math.floor(keep))],
        )
      ).rowCount ?? 0,
    abandonPending: async () => (await exec.query("UPDATE webhook_deliveries SET status = 'abandoned', updated_at = $1 WHERE status = 'pending'", [now()])).rowCount ?? 0,
  };
}
