/**
 * Gemini CLI's stored chats: `<home>/.gemini/tmp/<project>/chats/session-<time>-<id8>.jsonl`
 * (`GEMINI_CLI_HOME=<home>`, see `src/agent/gemini/adapter.ts`; layout in `../shared/agents/README.md`,
 * records read from files Gemini CLI wrote). One JSON object a line: first a header `{sessionId,
 * projectHash, startTime, lastUpdated, kind}`, then message records `{id, timestamp, type: "user" |
 * "gemini", content, thoughts?, tokens?, toolCalls?, model?}`, a record written again under the same `id`
 * when it grows (the last one wins, at the first one's place), and `{"$set": {…}}` patches of the header.
 * The project folder's working directory is in `<home>/.gemini/projects.json` (`{projects: {<cwd>: <folder>}}`).
 * This is not the `--output-format stream-json` stream the adapter's parser reads, so it is mapped here:
 *
 * | record | events |
 * |---|---|
 * | header | `agent.session {session_id}` |
 * | `gemini` | `reasoning` per thought (`subject: description`), `message {message_id: id, text: content}`, per `toolCalls[]` entry `tool.call {call_id: id, name, input: args}` and `tool.result {call_id, output: the functionResponse's output (or the result), is_error: status "error"}`, `usage` from `tokens` |
 *
 * `user` records are prompts (the first, `<session_context>…`, is context) or tool responses, not events.
 */
import type { RunEventInput } from "../../protocol/events.ts";
import { findFiles, readHomeFile } from "./home-fs.ts";
import { titleOf, type SessionReader, type SessionSummary } from "./types.ts";

type Rec = Readonly<Record<string, unknown>>;
const FILE = /^session-.+\.jsonl$/;
const str = (v: unknown) => (typeof v === "string" ? v : undefined);

/** The message records, one per id (the last version, at the first one's place). */
function messages(records: ReadonlyArray<Rec>): Rec[] {
  const order: string[] = [];
  const byId = new Map<string, Rec>();
  for (const r of records) {
    const id = str(r.id);
    if (!id || (r.type !== "user" && r.type !== "gemini")) continue;
    if (!byId.has(id)) order.push(id);
    byId.set(id, r);
  }
  return order.map((id) => byId.get(id)!);
}

function promptOf(r: Rec): string | undefined {
  if (r.type !== "user") return undefined;
  const parts = Array.isArray(r.content) ? (r.content as Rec[]) : typeof r.content === "string" ? [{ text: r.content }] : [];
  if (parts.some((p) => p.functionResponse !== undefined)) return undefined;
  const text = parts.map((p) => str(p.text) ?? "").join("");
  return text && !text.trimStart().startsWith("<session_context>") ? text : undefined;
}

function resultOutput(result: unknown): unknown {
  const first = Array.isArray(result) ? (result[0] as Rec | undefined) : undefined;
  const response = (first?.functionResponse as Rec | undefined)?.response as Rec | undefined;
  return response?.output ?? response ?? result;
}

function mapMessage(r: Rec): RunEventInput[] {
  if (r.type !== "gemini") return [];
  const out: RunEventInput[] = [];
  for (const t of Array.isArray(r.thoughts) ? (r.thoughts as Rec[]) : []) {
    const text = [str(t.subject), str(t.description)].filter(Boolean).join(": ");
    if (text) out.push({ type: "reasoning", data: { text } });
  }
  const text = typeof r.content === "string" ? r.content : "";
  if (text) out.push({ type: "message", data: { message_id: str(r.id) ?? "", role: "assistant", text, raw: r } });
  for (const c of Array.isArray(r.toolCalls) ? (r.toolCalls as Rec[]) : []) {
    const callId = str(c.id) ?? "";
    out.push({ type: "tool.call", data: { call_id: callId, name: str(c.name) ?? "", input: c.args ?? {} } });
    if (c.result !== undefined) out.push({ type: "tool.result", data: { call_id: callId, output: resultOutput(c.result), is_error: c.status === "error" } });
  }
  const tokens = r.tokens as Rec | undefined;
  if (tokens && typeof tokens.input === "number")
    out.push({ type: "usage", data: { input_tokens: tokens.input, output_tokens: Number(tokens.output ?? 0), ...(tokens.cached ? { cache_read_tokens: Number(tokens.cached) } : {}) } });
  return out;
}

/** Gemini CLI's reader; `cwdOf` maps a chat's project folder to its working directory (from `projects.json`). */
export const geminiSessions: SessionReader = {
  find: (home) => findFiles(home, [".gemini", "tmp"], 2, FILE).then((files) => files.filter((f) => f.dirs[3] === "chats")),
  idOf: () => undefined, // the id is in the header, not the name: see summarize
  async cwdOf(home, file) {
    const text = await readHomeFile(home, { dirs: [".gemini"], name: "projects.json" });
    let projects: unknown;
    try {
      projects = text === undefined ? undefined : (JSON.parse(text) as Rec).projects;
    } catch {
      return undefined;
    }
    if (!projects || typeof projects !== "object") return undefined;
    return Object.entries(projects as Rec).find(([, folder]) => folder === file.dirs[2])?.[0];
  },
  summarize(id, records): SessionSummary {
    const header = records[0] ?? {};
    const msgs = messages(records);
    const stamps = msgs.map((m) => str(m.timestamp)).filter((t): t is string => t !== undefined);
    const updates = records.map((r) => str((r.$set as Rec | undefined)?.lastUpdated)).filter((t): t is string => t !== undefined);
    const prompts = this.prompts(records);
    return {
      session_id: str(header.sessionId) ?? id,
      title: titleOf(prompts[0]),
      cwd: null,
      started_at: str(header.startTime) ?? stamps[0] ?? null,
      updated_at: updates.at(-1) ?? stamps.at(-1) ?? str(header.lastUpdated) ?? null,
      turns: prompts.length,
    };
  },
  render(records): RunEventInput[] {
    const id = str(records[0]?.sessionId);
    return [...(id ? [{ type: "agent.session" as const, data: { session_id: id } }] : []), ...messages(records).flatMap(mapMessage)];
  },
  prompts: (records) => messages(records).map(promptOf).filter((p): p is string => p !== undefined),
};
