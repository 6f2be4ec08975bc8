/**
 * Parser for Claude Code's `-p --output-format stream-json --verbose --include-partial-messages`
 * output (one JSON object per line). Format source: Claude Code 2.1.197 and 2.1.332, transcripts in
 * `test/golden/claude-code/*.jsonl` (2.1.197), `test/golden/claude-code@2.1.332/*.jsonl` and
 * /work/shared/agents (observed-event-schemas.md).
 *
 * Lines: `system/init` (session id), `system/status`, `system/api_retry`, `stream_event`
 * (raw Messages API events: text deltas), `assistant` (one complete content block per line:
 * text, thinking, tool_use; `model:"<synthetic>"` + `error` for API failures), `user`
 * (tool_result blocks), `result` (final text, usage, cost; `is_error` — a synthetic API error
 * has `subtype:"success"` with `is_error:true`).
 */
import type { RunEventInput, Usage } from "../../protocol/events.ts";
import type { AgentOutcome, LineParser, ProcessExit } from "../types.ts";
import { crashed, logEvent, modelFailure, parseJsonObject, planEvent, statusInMessage, tokens, unknownLine } from "../cli-support.ts";
import { mcpServerOfTool } from "../mcp-config.ts";

type Obj = Record<string, unknown>;

interface ClaudeResult {
  subtype?: string;
  is_error?: boolean;
  api_error_status?: number | null;
  result?: string;
  errors?: unknown[];
  terminal_reason?: string;
}

/** Text of a tool_result `content` (a string, or an array of text/image blocks). */
function toolOutput(content: unknown): unknown {
  if (!Array.isArray(content)) return content ?? "";
  const texts = content.filter((b: Obj) => b?.type === "text").map((b: Obj) => String(b.text ?? ""));
  return texts.length === content.length ? texts.join("\n") : content;
}

/** Maps Claude's result usage to the normalized {@link Usage}. */
export function claudeUsage(line: Obj): Usage | undefined {
  const u = line.usage as Obj | undefined;
  if (!u) return undefined;
  const usage: Usage = {
    input_tokens: tokens(u.input_tokens),
    output_tokens: tokens(u.output_tokens),
    cache_read_tokens: tokens(u.cache_read_input_tokens),
    cache_write_tokens: tokens(u.cache_creation_input_tokens),
  };
  if (typeof line.total_cost_usd === "number" && line.total_cost_usd >= 0) usage.cost_usd = line.total_cost_usd;
  return usage;
}

/**
 * Creates a parser for one Claude Code run.
 * @example
 * const p = createClaudeCodeParser();
 * p.parseLine('{"type":"system","subtype":"init","session_id":"abc",…}'); // [{type:"agent.session",…}]
 */
export function createClaudeCodeParser(): LineParser {
  let result: ClaudeResult | undefined;
  let usage: Usage | undefined;
  let lastText: string | undefined;
  let syntheticError: { kind: string; text: string } | undefined;
  let streamMessageId = "";
  /** Text streamed as deltas but not yet confirmed by a whole `assistant` text block. */
  let pendingText = "";

  function system(line: Obj): RunEventInput[] {
    if (line.subtype === "init" && typeof line.session_id === "string") {
      return [{ type: "agent.session", data: { session_id: line.session_id, raw: line } }];
    }
    if (line.subtype === "status" || line.subtype === "thinking_tokens") return [];
    if (line.subtype === "api_retry") {
      const status = line.error_status ?? "no status";
      const text = `model request failed (${status}, ${String(line.error)}); retry ${String(line.attempt)}/${String(line.max_retries)} in ${Math.round(Number(line.retry_delay_ms) || 0)} ms`;
      return [logEvent("stdout", text, line)];
    }
    return [logEvent("stdout", `system ${String(line.subtype)}`, line)];
  }

  function streamEvent(line: Obj): RunEventInput[] {
    const ev = (line.event ?? {}) as Obj;
    if (ev.type === "message_start") streamMessageId = String((ev.message as Obj | undefined)?.id ?? "");
    const delta = ev.delta as Obj | undefined;
    if (ev.type === "content_block_delta" && delta?.type === "text_delta" && typeof delta.text === "string") {
      pendingText += delta.text;
      return [{ type: "message.delta", data: { message_id: streamMessageId, text: delta.text } }];
    }
    return [];
  }

  function assistant(line: Obj): RunEventInput[] {
    const message = (line.message ?? {}) as Obj;
    const blocks = Array.isArray(message.content) ? (message.content as Obj[]) : [];
    if (message.model === "<synthetic>" || typeof line.error === "string") {
      const text = blocks.map((b) => String(b.text ?? "")).join("\n");
      syntheticError = { kind: String(line.error ?? "unknown"), text };
      return [logEvent("stdout", text || `agent error: ${String(line.error)}`, line)];
    }
    const messageId = String(message.id ?? "");
    const out: RunEventInput[] = [];
    for (const b of blocks) {
      if (b.type === "text" && typeof b.text === "string") {
        lastText = b.text;
        pendingText = "";
        out.push({ type: "message", data: { message_id: messageId, role: "assistant", text: b.text } });
      } else if (b.type === "thinking" && typeof b.thinking === "string") {
        out.push({ type: "reasoning", data: { text: b.thinking } });
      } else if (b.type === "tool_use") {
        const server = mcpServerOfTool(String(b.name)); // MCP tools are `mcp__<server>__<tool>`
        out.push({ type: "tool.call", data: { call_id: String(b.id), name: String(b.name), input: b.input ?? {}, ...(server ? { server } : {}) } });
        const plan = b.name === "TodoWrite" ? planEvent((b.input as Obj | undefined)?.todos) : undefined;
        if (plan) out.push(plan);
      } else if (b.type !== "redacted_thinking") {
        out.push(logEvent("stdout", `assistant ${String(b.type)} block`, b));
      }
    }
    return out;
  }

  function user(line: Obj): RunEventInput[] {
    const content = (line.message as Obj | undefined)?.content;
    if (typeof content === "string") return [logEvent("stdout", content, line)];
    const out: RunEventInput[] = [];
    for (const b of Array.isArray(content) ? (content as Obj[]) : []) {
      if (b.type === "tool_result") {
        out.push({ type: "tool.result", data: { call_id: String(b.tool_use_id), output: toolOutput(b.content), is_error: b.is_error === true } });
      } else {
        out.push(logEvent("stdout", typeof b.text === "string" ? b.text : `user ${String(b.type)} block`, b));
      }
    }
    return out;
  }

  return {
    parseLine(raw) {
      const line = parseJsonObject(raw);
      if (!line) return unknownLine(raw);
      switch (line.type) {
        case "system":
          return system(line);
        case "stream_event":
          return streamEvent(line);
        case "assistant":
          return assistant(line);
        case "user":
          return user(line);
        case "result": {
          result = line as ClaudeResult;
          usage = claudeUsage(line);
          return usage ? [{ type: "usage", data: usage }] : [];
        }
        default:
          return unknownLine(raw, line);
      }
    },
    parseStderr: (line) => [logEvent("stderr", line)],
    end() {
      // Interrupted mid-block: the deltas so far, as the whole message that never came.
      if (!pendingText) return [];
      const text = pendingText;
      pendingText = "";
      return [{ type: "message", data: { message_id: streamMessageId, role: "assistant", text } }];
    },
    outcome(exit: ProcessExit): AgentOutcome {
      if (!result) return crashed("claude", exit, "no result event");
      if (!result.is_error) {
        if (exit.exit_code !== 0) return crashed("claude", exit, "non-zero exit after a successful result");
        const done: AgentOutcome = { kind: "completed", exit_code: 0 };
        const text = typeof result.result === "string" ? result.result : lastText;
        if (text !== undefined) done.result = text;
        if (usage) done.usage = usage;
        return done;
      }
      const text = result.result ?? syntheticError?.text ?? (result.errors ?? []).map(String).join("; ");
      if (result.subtype === "success" || syntheticError || typeof result.api_error_status === "number") {
        const status = result.api_error_status ?? statusInMessage(text) ?? (syntheticError?.kind === "authentication_failed" ? 401 : undefined);
        return modelFailure(exit, text || "model request failed", status ?? undefined);
      }
      const why = `${result.subtype ?? "error"}${result.terminal_reason ? ` (${result.terminal_reason})` : ""}: ${text}`;
      return crashed("claude", exit, why);
    },
  };
}
