/**
 * The sessions agent CLIs left in a user's own agent homes (README "Sessions an agent left behind"): each
 * run's home is `<data_dir>/homes/<key>` (`key` the run's id, or the home of the run it resumed: the
 * row's `metadata.home_of`, see `src/run/plan.ts`), so a user's homes are those of their own runs and of no
 * one else's. Per agent a {@link SessionReader} finds the session files in a home (`claude-code.ts`,
 * `codex.ts`, `gemini.ts`), summarizes them and renders them as run event inputs; OpenCode's database is read
 * by `opencode.ts`. Reads never leave the home
 * (`home-fs.ts`).
 */
import path from "node:path";
import { TERMINAL_STATUSES } from "../../protocol/events.ts";
import type { SessionAgent, SessionView } from "../../protocol/sessions.ts";
import type { RunEventInput } from "../../protocol/events.ts";
import type { RunRepo } from "../../store/types.ts";
import { claudeCodeSessions } from "./claude-code.ts";
import { codexSessions } from "./codex.ts";
import { geminiSessions } from "./gemini.ts";
import { readOpencodeSessions } from "./opencode.ts";
import { jsonLines, readHomeFile } from "./home-fs.ts";
import type { SessionReader } from "./types.ts";

const READERS: Record<Exclude<SessionAgent, "opencode">, SessionReader> = { claude_code: claudeCodeSessions, codex: codexSessions, gemini: geminiSessions };

/** An agent home of the user: its folder and the run that stands for it (the latest ended run using it, else the latest). */
export interface UserHome {
  dir: string;
  runId: string;
}

/** Most runs looked at for a user's homes (newest first). */
const MAX_RUNS = 10_000;

/**
 * Resolves the agent homes of `userId`'s runs of `agent`, newest first, one entry per home.
 * @param homesRoot absolute `<data_dir>/homes`
 */
export async function homesOf(runs: Pick<RunRepo, "list">, userId: string, agent: string, homesRoot: string): Promise<UserHome[]> {
  const byKey = new Map<string, { runId: string; ended: boolean }>();
  let cursor: string | undefined;
  for (let seen = 0; seen < MAX_RUNS; ) {
    const page = await runs.list({ user_id: userId, agent, limit: 200, ...(cursor ? { cursor } : {}) });
    for (const r of page.runs) {
      const key = String(r.metadata.home_of ?? r.id);
      if (!/^run_[0-9A-Za-z]+$/.test(key)) continue;
      const ended = TERMINAL_STATUSES.includes(r.status);
      const had = byKey.get(key);
      if (!had || (!had.ended && ended)) byKey.set(key, { runId: r.id, ended });
    }
    seen += page.runs.length;
    if (!page.next_cursor) break;
    cursor = page.next_cursor;
  }
  return [...byKey].map(([key, v]) => ({ dir: path.join(homesRoot, key), runId: v.runId }));
}

/** A stored session with its history. */
export interface SessionDetail {
  session: SessionView;
  events: RunEventInput[];
  prompts: string[];
}

async function readAll(agent: SessionAgent, homes: readonly UserHome[], only?: string): Promise<Array<SessionDetail & { records: number }>> {
  if (agent === "opencode") return readAllOpencode(homes, only);
  const reader = READERS[agent];
  const out: Array<SessionDetail & { records: number }> = [];
  for (const home of homes) {
    for (const f of await reader.find(home.dir)) {
      const named = reader.idOf(f);
      if (named !== undefined && only !== undefined && named !== only) continue;
      const text = await readHomeFile(home.dir, f);
      if (text === undefined) continue;
      const records = jsonLines(text);
      if (records.length === 0) continue;
      const summary = reader.summarize(named ?? f.name, records);
      if (only !== undefined && summary.session_id !== only) continue;
      if (summary.cwd === null && reader.cwdOf) summary.cwd = (await reader.cwdOf(home.dir, f)) ?? null;
      out.push({ session: { agent, ...summary, run_id: home.runId }, events: only !== undefined ? reader.render(records) : [], prompts: only !== undefined ? reader.prompts(records) : [], records: records.length });
    }
  }
  return out;
}

/** OpenCode keeps its sessions in one database per home (`opencode.ts`), not a file each. */
async function readAllOpencode(homes: readonly UserHome[], only?: string): Promise<Array<SessionDetail & { records: number }>> {
  const out: Array<SessionDetail & { records: number }> = [];
  for (const home of homes) {
    const sessions = await readOpencodeSessions(home.dir).catch(() => []); // not an OpenCode database: nothing to show
    for (const s of sessions) {
      if (only !== undefined && s.summary.session_id !== only) continue;
      out.push({ session: { agent: "opencode", ...s.summary, run_id: home.runId }, events: only !== undefined ? s.events : [], prompts: only !== undefined ? s.prompts : [], records: s.events.length });
    }
  }
  return out;
}

/** The sessions of `agent` in `homes`, most recently updated first (one per session id: the newest copy). */
export async function listSessions(agent: SessionAgent, homes: readonly UserHome[]): Promise<SessionView[]> {
  const all = (await readAll(agent, homes)).map((d) => d.session);
  all.sort((a, b) => (b.updated_at ?? "").localeCompare(a.updated_at ?? ""));
  const seen = new Set<string>();
  return all.filter((s) => !seen.has(s.session_id) && (seen.add(s.session_id), true));
}

/** One session of `agent` in `homes`, rendered; undefined when none of them holds it. */
export async function readSession(agent: SessionAgent, sessionId: string, homes: readonly UserHome[]): Promise<SessionDetail | undefined> {
  const found = await readAll(agent, homes, sessionId);
  found.sort((a, b) => (b.session.updated_at ?? "").localeCompare(a.session.updated_at ?? ""));
  const best = found[0];
  return best ? { session: best.session, events: best.events, prompts: best.prompts } : undefined;
}
