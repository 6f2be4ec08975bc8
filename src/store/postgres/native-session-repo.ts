/**
 * The PostgreSQL {@link NativeSessionRepo} (migration 4, table `native_sessions`), with the
 * semantics of the SQLite one (`../native-session-repo.ts`): one row per session, an upsert that
 * replaces model, messages and `updated_at` (never `run_id` or `parent_id`), `messages` as JSON
 * text, a session going with its run (ON DELETE CASCADE).
 */
import type { NativeSessionRepo, NativeSessionRow } from "../types.ts";
import type { Exec } from "./exec.ts";

const COLS = "session_id, run_id, parent_id, model, messages, updated_at";

/** Creates the repository on a migrated database. */
export function createNativeSessionRepo(exec: Exec): NativeSessionRepo {
  return {
    async get(sessionId) {
      const r = (await exec.query<Omit<NativeSessionRow, "messages"> & { messages: string }>(`SELECT ${COLS} FROM native_sessions WHERE session_id = $1`, [sessionId])).rows[0];
      return r && { ...r, messages: JSON.parse(r.messages) as unknown[] };
    },
    async save(row) {
      const messages = "messages_json" in row ? row.messages_json : JSON.stringify(row.messages);
      await exec.query(
        `INSERT INTO native_sessions (${COLS}) VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (session_id) DO UPDATE SET model = EXCLUDED.model, messages = EXCLUDED.messages, updated_at = EXCLUDED.updated_at`,
        [row.session_id, row.run_id, row.parent_id, row.model, messages, new Date().toISOString()],
      );
    },
  };
}
