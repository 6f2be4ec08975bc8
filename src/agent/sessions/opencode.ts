/**
 * OpenCode's stored sessions: its SQLite database `<home>/.local/share/opencode/opencode.db` (with its
 * `-wal`; `XDG_DATA_HOME=<home>/.local/share`, see `src/agent/opencode/adapter.ts` and
 * `../shared/agents/README.md`; tables read from a database OpenCode 1.18 wrote): `session` (`id`,
 * `directory`, `title`, `time_created`, `time_updated`, `parent_id`), `message` (`id`, `session_id`, `data`:
 * JSON with `role`), `part` (`message_id`, `session_id`, `time_created`, `data`: the same part objects
 * `opencode run --format json` prints: `text`, `reasoning`, `tool` with `callID` and `state`, `step-start`,
 * `step-finish` with `tokens`).
 *
 * Read-only and never in place: the database and its WAL are copied out of the home through
 * `home-fs.ts` (no symlink followed) into a private temporary folder, opened there, and deleted; the
 * agent's own files are never opened by SQLite (which would take locks and write `-shm`). Assistant parts
 * become the stream's lines (`{type: step_start | text | reasoning | tool_use | step_finish, timestamp,
 * sessionID, part}`) and go through the adapter's own parser (`createOpencodeParser`); user text parts are
 * the prompts. Sub-sessions (`parent_id` set: the agent's subagents) are left out.
 */
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import Database from "better-sqlite3";
import { createOpencodeParser } from "../opencode/parse.ts";
import type { RunEventInput } from "../../protocol/events.ts";
import { readHomeFileBytes } from "./home-fs.ts";
import { titleOf, type SessionSummary } from "./types.ts";

const DIRS = [".local", "share", "opencode"];
const LINE_TYPES: Readonly<Record<string, string>> = { "step-start": "step_start", text: "text", reasoning: "reasoning", tool: "tool_use", "step-finish": "step_finish" };

/** One stored OpenCode session: its summary, history and prompts. */
export interface OpencodeSession {
  summary: SessionSummary;
  events: RunEventInput[];
  prompts: string[];
}

const iso = (ms: unknown) => (typeof ms === "number" && Number.isFinite(ms) ? new Date(ms).toISOString() : null);

function parseJson(text: unknown): Record<string, unknown> {
  try {
    const v = JSON.parse(String(text)) as unknown;
    return v && typeof v === "object" ? (v as Record<string, unknown>) : {};
  } catch {
    return {};
  }
}

/**
 * The top-level sessions in the OpenCode database of `home`, each rendered; none when there is no database.
 * @throws the copy's open or query errors of better-sqlite3 for a file that is not an OpenCode database
 */
export async function readOpencodeSessions(home: string): Promise<OpencodeSession[]> {
  const db = await readHomeFileBytes(home, { dirs: DIRS, name: "opencode.db" }, true);
  if (!db) return [];
  const wal = await readHomeFileBytes(home, { dirs: DIRS, name: "opencode.db-wal" }, true);
  const tmp = await mkdtemp(path.join(os.tmpdir(), "openrunner-opencode-"));
  try {
    const file = path.join(tmp, "opencode.db");
    await writeFile(file, db, { mode: 0o600 });
    if (wal) await writeFile(`${file}-wal`, wal, { mode: 0o600 });
    const conn = new Database(file, { fileMustExist: true });
    try {
      checkPlainTables(conn);
      return querySessions(conn);
    } finally {
      conn.close();
    }
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}

type Row = Record<string, unknown>;

/** The tables the sessions are read from. */
const TABLES = ["session", "message", "part"];

/**
 * The agent wrote this file, so it is checked before any query: SQL functions are not trusted from its schema, the
 * connection cannot write, and `session`, `message` and `part` must be ordinary tables (a view, for instance over an
 * endless recursive query, or a virtual table would run the file's own code when read; better-sqlite3 is synchronous,
 * so that would hold the server's event loop).
 * @throws Error naming the object that is not an ordinary table
 */
function checkPlainTables(conn: Database.Database): void {
  conn.pragma("trusted_schema = OFF");
  conn.pragma("query_only = ON");
  const objects = conn.prepare(`SELECT name, type, sql FROM sqlite_schema WHERE name IN (${TABLES.map(() => "?").join(", ")})`).all(...TABLES) as Array<{ name: string; type: string; sql: string | null }>;
  for (const name of TABLES) {
    const o = objects.find((x) => x.name === name);
    if (!o || o.type !== "table" || /^\s*CREATE\s+VIRTUAL\b/i.test(o.sql ?? "")) throw new Error(`opencode.db: ${name} is not an ordinary table`);
  }
}

function querySessions(conn: Database.Database): OpencodeSession[] {
  const sessions = conn.prepare("SELECT id, directory, title, time_created, time_updated FROM session WHERE parent_id IS NULL ORDER BY time_created").all() as Row[];
  const roles = new Map((conn.prepare("SELECT id, data FROM message").all() as Row[]).map((m) => [String(m.id), parseJson(m.data).role]));
  const partsOf = conn.prepare("SELECT message_id, time_created, data FROM part WHERE session_id = ? ORDER BY time_created, id");
  return sessions.map((s) => {
    const id = String(s.id);
    const parser = createOpencodeParser();
    const events: RunEventInput[] = []; // the parser emits agent.session from the lines' sessionID
    const prompts: string[] = [];
    for (const p of partsOf.all(id) as Row[]) {
      const part = parseJson(p.data);
      if (roles.get(String(p.message_id)) === "user") {
        if (part.type === "text" && typeof part.text === "string" && part.synthetic !== true) prompts.push(part.text);
        continue;
      }
      const type = LINE_TYPES[String(part.type)];
      if (!type) continue;
      events.push(...parser.parseLine(JSON.stringify({ type, timestamp: p.time_created, sessionID: id, part: { ...part, messageID: p.message_id, sessionID: id } })));
    }
    events.push(...parser.end());
    const summary: SessionSummary = {
      session_id: id,
      title: titleOf(typeof s.title === "string" && s.title ? s.title : prompts[0]),
      cwd: typeof s.directory === "string" ? s.directory : null,
      started_at: iso(s.time_created),
      updated_at: iso(s.time_updated),
      turns: prompts.length,
    };
    return { summary, events, prompts };
  });
}
