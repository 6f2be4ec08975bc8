/** The contract of one agent's session reader (`claude-code.ts`, `codex.ts`). */
import type { RunEventInput } from "../../protocol/events.ts";
import type { HomeFile } from "./home-fs.ts";

/** What a reader tells about one session from its records. */
export interface SessionSummary {
  session_id: string;
  title: string;
  cwd: string | null;
  started_at: string | null;
  updated_at: string | null;
  turns: number;
}

/** Reads one agent's stored sessions. Everything but {@link SessionReader.find} is pure. */
export interface SessionReader {
  /** The session files in a home. */
  find(home: string): Promise<HomeFile[]>;
  /** The session id a file's name gives; undefined when the name does not tell (the id is then the summary's). */
  idOf(file: HomeFile): string | undefined;
  /** The working directory of a session whose records do not name it (Gemini CLI: from its projects file). */
  cwdOf?(home: string, file: HomeFile): Promise<string | undefined>;
  summarize(id: string, records: ReadonlyArray<Record<string, unknown>>): SessionSummary;
  /** The session as run event inputs, in order (through the adapter's own parser where the format is its stream's). */
  render(records: ReadonlyArray<Record<string, unknown>>): RunEventInput[];
  /** The user's prompts, in order (the union has no event for them). */
  prompts(records: ReadonlyArray<Record<string, unknown>>): string[];
}

/** A title from a prompt: the first line, cut at 200 characters. */
export function titleOf(prompt: string | undefined): string {
  const first = (prompt ?? "").trim().split("\n")[0] ?? "";
  return first.length > 200 ? `${first.slice(0, 199)}…` : first;
}
