/**
 * Claude Code's stored sessions: `<home>/.claude/projects/<cwd with / and . as ->/<session id>.jsonl`
 * (`CLAUDE_CONFIG_DIR=<home>/.claude`, see `src/agent/claude-code/adapter.ts`; the layout is recorded in
 * `../shared/agents/README.md` and was read from files Claude Code 2.1 wrote). One JSON object a line:
 * `{type: "user" | "assistant", message: <Anthropic Messages message>, uuid, parentUuid, isSidechain,
 * sessionId, cwd, timestamp, …}` plus bookkeeping records (`queue-operation`, `attachment`, `last-prompt`,
 * `summary` with the agent's own title). The `user`/`assistant` records have the shape of the
 * `--output-format stream-json` lines, so they are rendered by the adapter's own parser
 * (`createClaudeCodeParser`); sidechain (subagent) records are left out.
 */
import { createClaudeCodeParser } from "../claude-code/parse.ts";
import type { RunEventInput } from "../../protocol/events.ts";
import { findFiles } from "./home-fs.ts";
import { titleOf, type SessionReader, type SessionSummary } from "./types.ts";

type Rec = Readonly<Record<string, unknown>>;
const FILE = /^[0-9a-fA-F-]{8,64}\.jsonl$/;

/** The prompt a `user` record carries (text content, not a tool result); undefined otherwise. */
function promptOf(r: Rec): string | undefined {
  if (r.type !== "user" || r.isSidechain === true || r.isMeta === true) return undefined;
  const content = (r.message as Rec | undefined)?.content;
  if (typeof content === "string") return content;
  if (!Array.isArray(content)) return undefined;
  const texts = (content as Rec[]).filter((b) => b.type === "text" && typeof b.text === "string").map((b) => b.text as string);
  return texts.length > 0 && !(content as Rec[]).some((b) => b.type === "tool_result") ? texts.join("\n") : undefined;
}

const str = (v: unknown) => (typeof v === "string" ? v : undefined);

export const claudeCodeSessions: SessionReader = {
  find: (home) => findFiles(home, [".claude", "projects"], 1, FILE),
  idOf: (f) => (FILE.test(f.name) ? f.name.slice(0, -".jsonl".length) : undefined),
  summarize(id, records): SessionSummary {
    const stamps = records.map((r) => str(r.timestamp)).filter((t): t is string => t !== undefined);
    const prompts = this.prompts(records);
    const summary = [...records].reverse().find((r) => r.type === "summary" && typeof r.summary === "string");
    return {
      session_id: id,
      title: titleOf(str(summary?.summary) ?? prompts[0]),
      cwd: records.map((r) => str(r.cwd)).find((c) => c !== undefined) ?? null,
      started_at: stamps[0] ?? null,
      updated_at: stamps.at(-1) ?? null,
      turns: prompts.length,
    };
  },
  render(records): RunEventInput[] {
    const parser = createClaudeCodeParser();
    const id = records.map((r) => str(r.sessionId)).find((s) => s !== undefined);
    const out: RunEventInput[] = id ? [{ type: "agent.session", data: { session_id: id } }] : [];
    for (const r of records) {
      if ((r.type !== "assistant" && r.type !== "user") || r.isSidechain === true || promptOf(r) !== undefined) continue;
      out.push(...parser.parseLine(JSON.stringify({ type: r.type, message: r.message, session_id: r.sessionId })));
    }
    out.push(...parser.end());
    return out;
  },
  prompts: (records) => records.map(promptOf).filter((p): p is string => p !== undefined),
};
