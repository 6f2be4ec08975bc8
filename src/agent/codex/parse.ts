/**
 * Parser for `codex exec --json` output (JSONL "thread events"). Format source: codex-cli
 * 0.169.0 and 0.171.0, transcripts in `test/golden/codex/*.jsonl` (0.169.0, `gpt-5.5`) and
 * `test/golden/codex@0.171.0/*.jsonl` (0.171.0, its default code-mode model): in code mode the nested
 * tool calls of the `exec` orchestrator are reported as the same items (`command_execution`,
 * `file_change`), and 0.171 adds no item type for these cases.
 *
 * Lines: `thread.started{thread_id}`, `turn.started`, `item.started|updated|completed{item}`
 * (item types `agent_message`, `reasoning`, `command_execution`, `file_change`,
 * `mcp_tool_call`, `web_search`, `todo_list`, `error`), `turn.completed{usage}`,
 * `turn.failed{error}`, and top-level `error{message}` (retry notices and the final error).
 * Agent text arrives whole (no deltas). An HTTP 500 is reported as "high demand" text; only 4xx
 * bodies reach the message.
 */
import type { RunEventInput, Usage } from "../../protocol/events.ts";
import type { AgentOutcome, LineParser, ProcessExit } from "../types.ts";
import { crashed, logEvent, modelFailure, parseJsonObject, planEvent, statusInMessage, tokens, unknownLine } from "../cli-support.ts";

type Obj = Record<string, unknown>;

/** The tool call a codex item stands for, or undefined for non-tool items. */
function toolCallOf(item: Obj): { name: string; input: unknown; server?: string } | undefined {
  switch (item.type) {
    case "command_execution":
      return { name: "command_execution", input: { command: item.command } };
    case "file_change":
      return { name: "file_change", input: { changes: item.changes } };
    case "mcp_tool_call":
      return { name: `${String(item.server)}.${String(item.tool)}`, input: item.arguments ?? {}, server: String(item.server) };
    case "web_search":
      return { name: "web_search", input: { query: item.query } };
    default:
      return undefined;
  }
}

function toolResultOf(item: Obj): { output: unknown; is_error: boolean } {
  const failed = item.status === "failed" || item.status === "declined";
  switch (item.type) {
    case "command_execution":
      return { output: item.aggregated_output ?? "", is_error: failed || (typeof item.exit_code === "number" && item.exit_code !== 0) };
    case "file_change":
      return { output: item.changes ?? [], is_error: failed };
    case "mcp_tool_call":
      return { output: item.error ?? item.result ?? null, is_error: failed || item.error != null };
    default:
      return { output: item.action ?? item.query ?? null, is_error: failed };
  }
}

/** codex passes a 4xx response body through verbatim: show its `error.message` when it is JSON. */
function readableError(message: string): string {
  try {
    const body = JSON.parse(message) as { error?: { message?: unknown; type?: unknown } };
    if (typeof body.error?.message === "string") {
      return typeof body.error.type === "string" ? `${body.error.message} (${body.error.type})` : body.error.message;
    }
  } catch {
    // not JSON: keep as is
  }
  return message;
}

/**
 * Creates a parser for one codex run.
 * @example
 * const p = createCodexParser();
 * p.parseLine('{"type":"thread.started","thread_id":"019…"}'); // [{type:"agent.session",…}]
 */
export function createCodexParser(): LineParser {
  const startedCalls = new Set<string>();
  let completed = false;
  let failure: string | undefined;
  let lastError: string | undefined;
  let lastText: string | undefined;
  let usage: Usage | undefined;

  function item(kind: string, line: Obj): RunEventInput[] {
    const it = (line.item ?? {}) as Obj;
    const id = String(it.id ?? "");
    if (it.type === "agent_message") {
      if (kind !== "item.completed") return [];
      lastText = String(it.text ?? "");
      return [{ type: "message", data: { message_id: id, role: "assistant", text: lastText } }];
    }
    if (it.type === "reasoning") return kind === "item.completed" ? [{ type: "reasoning", data: { text: String(it.text ?? "") } }] : [];
    if (it.type === "todo_list") {
      const plan = planEvent(it.items);
      return plan ? [plan] : [];
    }
    if (it.type === "error") {
      lastError = String(it.message ?? "");
      return [logEvent("stdout", lastError, line)];
    }
    const call = toolCallOf(it);
    if (!call) return unknownLine(JSON.stringify(line), line);
    const out: RunEventInput[] = [];
    if (!startedCalls.has(id)) {
      startedCalls.add(id);
      out.push({ type: "tool.call", data: { call_id: id, name: call.name, input: call.input, ...(call.server !== undefined ? { server: call.server } : {}) } });
    }
    if (kind === "item.completed") out.push({ type: "tool.result", data: { call_id: id, ...toolResultOf(it) } });
    return out;
  }

  return {
    parseLine(raw) {
      const line = parseJsonObject(raw);
      if (!line) return unknownLine(raw);
      switch (line.type) {
        case "thread.started":
          return typeof line.thread_id === "string" ? [{ type: "agent.session", data: { session_id: line.thread_id } }] : unknownLine(raw, line);
        case "turn.started":
          return [];
        case "item.started":
        case "item.updated":
        case "item.completed":
          return item(line.type, line);
        case "turn.completed": {
          const u = (line.usage ?? {}) as Obj;
          completed = true;
          usage = {
            input_tokens: tokens(u.input_tokens),
            output_tokens: tokens(u.output_tokens),
            cache_read_tokens: tokens(u.cached_input_tokens),
            cache_write_tokens: tokens(u.cache_write_input_tokens),
          };
          return [{ type: "usage", data: usage }];
        }
        case "turn.failed":
          failure = String((line.error as Obj | undefined)?.message ?? "turn failed");
          return [logEvent("stdout", failure, line)];
        case "error":
          lastError = String(line.message ?? "");
          return [logEvent("stdout", lastError, line)];
        default:
          return unknownLine(raw, line);
      }
    },
    parseStderr: (line) => [logEvent("stderr", line)],
    end: () => [],
    outcome(exit: ProcessExit): AgentOutcome {
      if (completed && !failure && exit.exit_code === 0) {
        const done: AgentOutcome = { kind: "completed", exit_code: 0 };
        if (lastText !== undefined) done.result = lastText;
        if (usage) done.usage = usage;
        return done;
      }
      if (failure) return modelFailure(exit, readableError(failure), statusInMessage(failure));
      if (exit.exit_code !== 0 && lastError && !/^Reconnecting\.\.\./.test(lastError)) return modelFailure(exit, lastError, statusInMessage(lastError));
      return crashed("codex", exit, completed ? "non-zero exit after turn.completed" : "no turn.completed event");
    },
  };
}
