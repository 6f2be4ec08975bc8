/**
 * Codex's stored sessions ("rollouts"): `<home>/.codex/sessions/YYYY/MM/DD/rollout-<time>-<session id>.jsonl`
 * (`CODEX_HOME=<home>/.codex`, see `src/agent/codex/adapter.ts`; layout in `../shared/agents/README.md`,
 * records read from files codex 0.169 wrote). One JSON object a line, `{timestamp, type, payload}`:
 * `session_meta` (`payload.id`, `cwd`, `cli_version`), `response_item` (the OpenAI Responses items of the
 * conversation: `message` with `role` user/developer/assistant, `reasoning`, `function_call`,
 * `function_call_output`, `custom_tool_call`, `custom_tool_call_output`), `event_msg` (`task_started` per
 * prompt, `token_count`, `item_completed` …), `turn_context`. This is not the `codex exec --json` stream the
 * adapter's parser reads, so it is mapped here:
 *
 * | record | event |
 * |---|---|
 * | `session_meta` | `agent.session {session_id}` |
 * | `response_item` `message` role `assistant` | `message {message_id: id, text: the output_text parts}` |
 * | `response_item` `reasoning` | `reasoning {text: the summary texts}` |
 * | `response_item` `function_call` / `custom_tool_call` | `tool.call {call_id, name, input: arguments parsed / input}` |
 * | `response_item` `function_call_output` / `custom_tool_call_output` | `tool.result {call_id, output, is_error: false}` |
 * | `event_msg` `token_count` | `usage` from `info.last_token_usage` |
 *
 * Every event keeps its record in `raw`. User and developer messages are prompts and context, not events.
 */
import type { RunEventInput } from "../../protocol/events.ts";
import { findFiles } from "./home-fs.ts";
import { titleOf, type SessionReader, type SessionSummary } from "./types.ts";

type Rec = Readonly<Record<string, unknown>>;
const FILE = /^rollout-.+-([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})\.jsonl$/;

const str = (v: unknown) => (typeof v === "string" ? v : undefined);
const payloadOf = (r: Rec) => (r.payload ?? {}) as Rec;
const texts = (content: unknown, kind: string) =>
  Array.isArray(content) ? (content as Rec[]).filter((c) => c.type === kind && typeof c.text === "string").map((c) => c.text as string) : [];

/** The user's own prompt in a `response_item` message (context items start with `<…>` tags). */
function promptOf(r: Rec): string | undefined {
  const p = payloadOf(r);
  if (r.type !== "response_item" || p.type !== "message" || p.role !== "user") return undefined;
  const text = texts(p.content, "input_text").join("\n");
  return text && !text.trimStart().startsWith("<") ? text : undefined;
}

function parseArgs(raw: unknown): unknown {
  if (typeof raw !== "string") return raw;
  try {
    return JSON.parse(raw);
  } catch {
    return raw;
  }
}

/** One record as event inputs (see the table in the module comment). */
function mapRecord(r: Rec): RunEventInput[] {
  const p = payloadOf(r);
  if (r.type === "session_meta" && typeof p.id === "string") return [{ type: "agent.session", data: { session_id: p.id, raw: r } }];
  if (r.type === "event_msg" && p.type === "token_count") {
    const u = ((p.info as Rec | null)?.last_token_usage ?? undefined) as Rec | undefined;
    if (!u) return [];
    return [{ type: "usage", data: { input_tokens: Number(u.input_tokens ?? 0), output_tokens: Number(u.output_tokens ?? 0), ...(u.cached_input_tokens ? { cache_read_tokens: Number(u.cached_input_tokens) } : {}) } }];
  }
  if (r.type !== "response_item") return [];
  switch (p.type) {
    case "message":
      if (p.role !== "assistant") return [];
      return [{ type: "message", data: { message_id: str(p.id) ?? "", role: "assistant", text: texts(p.content, "output_text").join(""), raw: r } }];
    case "reasoning": {
      const text = texts(p.summary, "summary_text").join("\n");
      return text ? [{ type: "reasoning", data: { text, raw: r } }] : [];
    }
    case "function_call":
    case "custom_tool_call":
      return [{ type: "tool.call", data: { call_id: str(p.call_id) ?? "", name: str(p.name) ?? "", input: p.type === "function_call" ? parseArgs(p.arguments) : p.input, raw: r } }];
    case "function_call_output":
    case "custom_tool_call_output":
      return [{ type: "tool.result", data: { call_id: str(p.call_id) ?? "", output: p.output, is_error: false, raw: r } }];
    default:
      return [];
  }
}

export const codexSessions: SessionReader = {
  find: (home) => findFiles(home, [".codex", "sessions"], 3, FILE),
  idOf: (f) => FILE.exec(f.name)?.[1],
  summarize(id, records): SessionSummary {
    const stamps = records.map((r) => str(r.timestamp)).filter((t): t is string => t !== undefined);
    const meta = records.find((r) => r.type === "session_meta");
    const prompts = this.prompts(records);
    const started = records.filter((r) => r.type === "event_msg" && payloadOf(r).type === "task_started").length;
    return {
      session_id: id,
      title: titleOf(prompts[0]),
      cwd: (meta ? str(payloadOf(meta).cwd) : undefined) ?? null,
      started_at: stamps[0] ?? null,
      updated_at: stamps.at(-1) ?? null,
      turns: started || prompts.length,
    };
  },
  render: (records) => records.flatMap(mapRecord),
  prompts: (records) => records.map(promptOf).filter((p): p is string => p !== undefined),
};
