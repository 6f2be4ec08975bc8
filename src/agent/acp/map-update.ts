/**
 * Pure mapping of ACP `session/update` notifications (protocol v1, `update` field of
 * `SessionNotification`; source: agentclientprotocol.com/protocol/v1, SDK 2.4 types) to run
 * events (docs/architecture.md#event-contract). The mapper keeps per-turn state (the message being streamed,
 * tool calls seen) but does no I/O; the actor feeds it and appends what it returns.
 *
 * - `agent_message_chunk` -> `message.delta`; the whole text becomes one `message` when a tool
 *   call starts or the turn ends ({@link UpdateMapper.endTurn});
 * - `agent_thought_chunk` -> `reasoning`;
 * - `tool_call` -> `tool.call` (and `tool.result` when it arrives already finished); a call
 *   announced with an empty `rawInput` (claude-code-acp streams the input in a later
 *   `tool_call_update`) is held until its first update, the next other update, a permission
 *   request ({@link UpdateMapper.flushCalls}) or the end of the turn, so `input` is the real one;
 * - `tool_call_update` with status `completed`/`failed` -> `tool.result` (`is_error` for failed);
 * - `plan` -> `plan`;
 * - anything else (mode, commands, usage_update, notices …) -> a `log` event carrying the original.
 * Every mapped event keeps the original update in `data.raw`.
 */
import type { RunEventInput, Usage } from "../../protocol/events.ts";
import { mcpServerOfTool } from "../mcp-config.ts";

type Obj = Record<string, unknown>;

/** Per-run mapper state; see the module comment. */
export interface UpdateMapper {
  /** Maps one `update` object (the raw notification's `params.update`). */
  map(update: unknown): RunEventInput[];
  /** Flushes the message being streamed (end of the turn). */
  endTurn(): RunEventInput[];
  /** Text of the last whole message of the run, if any. */
  lastMessage(): string | undefined;
  /**
   * Emits the tool calls held for their input (before a permission request about one of them);
   * `toolCall` (the request's `ToolCallUpdate`) fills in the input and title of the call it names,
   * or announces that call when the agent asks before announcing it.
   */
  flushCalls(toolCall?: unknown): RunEventInput[];
}

const isObj = (v: unknown): v is Obj => typeof v === "object" && v !== null && !Array.isArray(v);

/** Text of an ACP content block (`{type:"text", text}`), or undefined for other kinds. */
function blockText(block: unknown): string | undefined {
  return isObj(block) && block.type === "text" && typeof block.text === "string" ? block.text : undefined;
}

/**
 * The output of a finished tool call: the text of its `content` items when there is any
 * (`{type:"content", content:{type:"text"}}`), else `rawOutput`, else the content list.
 */
export function toolOutput(update: Obj): unknown {
  const content = Array.isArray(update.content) ? update.content : [];
  const texts = content.map((c) => (isObj(c) && c.type === "content" ? blockText(c.content) : undefined)).filter((t): t is string => t !== undefined);
  if (texts.length > 0) return texts.join("\n");
  const raw = update.rawOutput;
  if (Array.isArray(raw) && raw.length > 0 && raw.every((b) => blockText(b) !== undefined)) return raw.map((b) => blockText(b)).join("\n");
  if (raw !== undefined && raw !== null) return raw;
  return content;
}

/**
 * Usage of a turn from a `session/prompt` response (`usage` is unstable in ACP v1:
 * `{inputTokens, outputTokens, cachedReadTokens?, cachedWriteTokens?}`), or undefined.
 */
export function usageOf(response: unknown): Usage | undefined {
  const u = isObj(response) ? response.usage : undefined;
  if (!isObj(u)) return undefined;
  const n = (v: unknown) => (typeof v === "number" && Number.isFinite(v) && v > 0 ? Math.round(v) : 0);
  const out: Usage = { input_tokens: n(u.inputTokens), output_tokens: n(u.outputTokens) };
  if (u.cachedReadTokens != null) out.cache_read_tokens = n(u.cachedReadTokens);
  if (u.cachedWriteTokens != null) out.cache_write_tokens = n(u.cachedWriteTokens);
  return out;
}

/**
 * Creates the mapper for one run. `messageIdPrefix` makes message ids unique per run
 * (e.g. the session id); ids are `<prefix>:<n>`.
 * @example
 * const m = createUpdateMapper("sess-1");
 * m.map({ sessionUpdate: "agent_message_chunk", content: { type: "text", text: "Hi" } }); // [message.delta]
 * m.endTurn(); // [message {text: "Hi"}]
 */
export function createUpdateMapper(messageIdPrefix: string): UpdateMapper {
  let seq = 0;
  let text = "";
  let streaming = false;
  let last: string | undefined;
  const calls = new Map<string, { done: boolean }>();
  /** Announced calls whose input has not arrived yet, in order. */
  const held = new Map<string, Obj>();
  const messageId = () => `${messageIdPrefix}:${seq}`;

  const flush = (): RunEventInput[] => {
    if (!streaming) return [];
    streaming = false;
    last = text;
    const ev: RunEventInput = { type: "message", data: { message_id: messageId(), role: "assistant", text } };
    text = "";
    seq++;
    return [ev];
  };

  const toolCall = (u: Obj, id: string): RunEventInput => {
    const name = typeof u.title === "string" && u.title ? u.title : typeof u.kind === "string" ? u.kind : "tool";
    // claude-code-acp names the tool in `_meta.claudeCode.toolName` (`mcp__<server>__<tool>` for MCP tools).
    const meta = isObj(u._meta) && isObj(u._meta.claudeCode) ? u._meta.claudeCode.toolName : undefined;
    const server = mcpServerOfTool(typeof meta === "string" ? meta : name);
    return { type: "tool.call", data: { call_id: id, name, input: u.rawInput ?? {}, ...(server ? { server } : {}), raw: u } };
  };

  const emptyInput = (v: unknown) => v === undefined || v === null || (isObj(v) && Object.keys(v).length === 0);
  const mergeInto = (first: Obj, update: Obj): Obj => ({ ...first, ...Object.fromEntries(Object.entries(update).filter(([k, v]) => v !== undefined && v !== null && k !== "sessionUpdate")) });
  const flushCalls = (hint?: unknown): RunEventInput[] => {
    const named = isObj(hint) ? String(hint.toolCallId ?? "") : undefined;
    const out = [...held.entries()].map(([id, u]) => toolCall(id === named ? mergeInto(u, hint as Obj) : u, id));
    held.clear();
    if (named && !calls.has(named)) {
      // Asked about before being announced (codex-acp, gemini): the request announces it, so tool.call comes first.
      calls.set(named, { done: false });
      out.push(toolCall(hint as Obj, named));
    }
    return out;
  };

  const finished = (u: Obj, id: string): RunEventInput[] => {
    const status = u.status;
    if (status !== "completed" && status !== "failed") return [];
    const call = calls.get(id);
    if (call?.done) return [];
    calls.set(id, { done: true });
    return [{ type: "tool.result", data: { call_id: id, output: toolOutput(u), is_error: status === "failed", raw: u } }];
  };

  return {
    map(update: unknown): RunEventInput[] {
      if (!isObj(update)) return [{ type: "log", data: { stream: "stdout", text: "acp: session/update without an update object", raw: update } }];
      const kind = update.sessionUpdate;
      const id = String(update.toolCallId ?? "");
      const mine = kind === "tool_call_update" && held.has(id);
      if (mine) {
        // The held call's input (and better title) arrive: announce it with them.
        const first = held.get(id)!;
        held.delete(id);
        return [...flushCalls(), toolCall(mergeInto(first, update), id), ...finished(update, id)];
      }
      const before = [...held.keys()];
      const out = mapOne(update, kind, id);
      // Something else happened (not a silent update such as an empty chunk): the calls held before it come first.
      if (out.length === 0 || before.length === 0) return out;
      const earlier = before.map((h) => toolCall(held.get(h)!, h));
      for (const h of before) held.delete(h);
      return [...earlier, ...out];
    },
    endTurn: () => [...flushCalls(), ...flush()],
    lastMessage: () => last,
    flushCalls,
  };

  function mapOne(update: Obj, kind: unknown, id: string): RunEventInput[] {
    switch (kind) {
      case "agent_message_chunk": {
        const t = blockText(update.content);
        if (t === undefined) return [{ type: "log", data: { stream: "stdout", text: "acp: non-text agent message content", raw: update } }];
        if (t === "") return [];
        streaming = true;
        text += t;
        return [{ type: "message.delta", data: { message_id: messageId(), text: t } }];
      }
      case "agent_thought_chunk": {
        const t = blockText(update.content);
        return t === undefined ? [] : [{ type: "reasoning", data: { text: t, raw: update } }];
      }
      case "tool_call": {
        const out = [...flush()];
        if (!calls.has(id)) {
          calls.set(id, { done: false });
          if (emptyInput(update.rawInput) && update.status !== "completed" && update.status !== "failed") {
            held.set(id, update);
            return out;
          }
          out.push(toolCall(update, id));
        }
        return [...out, ...finished(update, id)];
      }
      case "tool_call_update": {
        const out: RunEventInput[] = [];
        if (!calls.has(id)) {
          // An update for a call never announced: announce it first, so every result has its call.
          out.push(...flush());
          calls.set(id, { done: false });
          out.push(toolCall(update, id));
        }
        return [...out, ...finished(update, id)];
      }
      case "plan": {
        const entries = (Array.isArray(update.entries) ? update.entries : []).filter(isObj).map((e) => ({
          content: String(e.content ?? ""),
          status: String(e.status ?? "pending"),
          ...(typeof e.priority === "string" ? { priority: e.priority } : {}),
        }));
        return [{ type: "plan", data: { entries, raw: update } }];
      }
      default:
        return [{ type: "log", data: { stream: "stdout", text: `acp: ${typeof kind === "string" ? kind : "unknown update"}`, raw: update } }];
    }
  }
}
