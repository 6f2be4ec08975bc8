/**
 * The SQLite {@link NativeSessionRepo} (migration 4, table `native_sessions`): the stored
 * conversation of each session of the `openrunner` agent (`src/agent/native/`), so a follow-up
 * run (`metadata.resume`) continues it from the store rather than from a vendor's session file.
 * One row per session; a resumed run starts a new session whose `parent_id` names the one it
 * continued (two follow-ups of one run each continue it, neither overwrites the other). A
 * session goes with its run (ON DELETE CASCADE). `messages` is JSON text.
 */
import type { Database as Db } from "better-sqlite3";
import type { NativeSessionRepo, NativeSessionRow } from "./types.ts";
import type { SyncOf } from "./sqlite-gate.ts";

const COLS = "session_id, run_id, parent_id, model, messages, updated_at";

/** Creates the repository on an open, migrated database. */
export function createNativeSessionRepo(db: Db): SyncOf<NativeSessionRepo> {
  const upsert = db.prepare(
    `INSERT INTO native_sessions (${COLS}) VALUES (@session_id, @run_id, @parent_id, @model, @messages, @updated_at)
     ON CONFLICT (session_id) DO UPDATE SET model = excluded.model, messages = excluded.messages, updated_at = excluded.updated_at`,
  );
  const byId = db.prepare(`SELECT ${COLS} FROM native_sessions WHERE session_id = ?`);
  return {
    get(sessionId) {
      const r = byId.get(sessionId) as (Omit<NativeSessionRow, "messages"> & { messages: string }) | undefined;
      return r && { ...r, messages: JSON.parse(r.messages) as unknown[] };
    },
    save(row) {
      const messages = "messages_json" in row ? row.messages_json : JSON.stringify(row.messages);
      upsert.run({ session_id: row.session_id, run_id: row.run_id, parent_id: row.parent_id, model: row.model, messages, updated_at: new Date().toISOString() });
    },
  };
}
