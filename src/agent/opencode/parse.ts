/**
 * Parser for `opencode run --format json` output. Format source: opencode 1.18.33, transcripts
 * in `test/golden/opencode/*.jsonl` and /work/shared/agents.
 *
 * Every line is `{type, timestamp, sessionID, part | error}`: `step_start`, `text` (a whole text
 * part, no deltas), `reasoning`, `tool_use` (emitted once finished: `state.status` completed or
 * error, with input and output), `step_finish` (`reason` "tool-calls" | "stop", tokens, cost),
 * `error` (`error.name` e.g. "APIError", `error.data.statusCode`, `responseBody`). Success has NO
 * final event: the stream just ends after a `step_finish` whose reason is not "tool-calls".
 */
import type { RunEventInput, Usage } from "../../protocol/events.ts";
import type { AgentOutcome, LineParser, ProcessExit } from "../types.ts";
import { crashed, logEvent, modelFailure, parseJsonObject, planEvent, statusInMessage, tokens, unknownLine } from "../cli-support.ts";
import { mcpServerOfTool } from "../mcp-config.ts";

type Obj = Record<string, unknown>;

function stepUsage(part: Obj): Usage {
  const t = (part.tokens ?? {}) as Obj;
  const cache = (t.cache ?? {}) as Obj;
  const usage: Usage = {
    input_tokens: tokens(t.input),
    output_tokens: tokens(t.output),
    cache_read_tokens: tokens(cache.read),
    cache_write_tokens: tokens(cache.write),
  };
  if (typeof part.cost === "number" && part.cost >= 0) usage.cost_usd = part.cost;
  return usage;
}

function addUsage(a: Usage | undefined, b: Usage): Usage {
  if (!a) return { ...b };
  const sum: Usage = {
    input_tokens: a.input_tokens + b.input_tokens,
    output_tokens: a.output_tokens + b.output_tokens,
    cache_read_tokens: (a.cache_read_tokens ?? 0) + (b.cache_read_tokens ?? 0),
    cache_write_tokens: (a.cache_write_tokens ?? 0) + (b.cache_write_tokens ?? 0),
  };
  if (a.cost_usd !== undefined || b.cost_usd !== undefined) sum.cost_usd = (a.cost_usd ?? 0) + (b.cost_usd ?? 0);
  return sum;
}

/**
 * Creates a parser for one opencode run.
 * @example
 * const p = createOpencodeParser();
 * p.parseLine('{"type":"text","sessionID":"ses_1","part":{"id":"prt_1","type":"text","text":"Hi"}}');
 */
export function createOpencodeParser(opts: { mcpServers?: readonly string[] } = {}): LineParser {
  let session: string | undefined;
  let finished = false;
  let error: { name: string; message: string; status?: number } | undefined;
  let lastText: string | undefined;
  let total: Usage | undefined;

  function tool(part: Obj): RunEventInput[] {
    const state = (part.state ?? {}) as Obj;
    const call_id = String(part.callID ?? part.id ?? "");
    const name = String(part.tool ?? "");
    const server = mcpServerOfTool(name, opts.mcpServers); // the run's MCP tools are `<server>_<tool>`
    const out: RunEventInput[] = [{ type: "tool.call", data: { call_id, name, input: state.input ?? {}, ...(server ? { server } : {}) } }];
    if (name === "todowrite") {
      const plan = planEvent((state.input as Obj | undefined)?.todos);
      if (plan) out.push(plan);
    }
    if (state.status === "completed" || state.status === "error") {
      const is_error = state.status === "error";
      out.push({ type: "tool.result", data: { call_id, output: is_error ? (state.error ?? state.output ?? "") : (state.output ?? ""), is_error } });
    }
    return out;
  }

  function body(line: Obj, raw: string): RunEventInput[] {
    const part = (line.part ?? {}) as Obj;
    switch (line.type) {
      case "step_start":
        return [];
      case "text":
        lastText = String(part.text ?? "");
        return [{ type: "message", data: { message_id: String(part.id ?? part.messageID ?? ""), role: "assistant", text: lastText } }];
      case "reasoning":
        return [{ type: "reasoning", data: { text: String(part.text ?? "") } }];
      case "tool_use":
        return tool(part);
      case "step_finish": {
        if (part.reason !== "tool-calls") finished = true;
        const usage = stepUsage(part);
        total = addUsage(total, usage);
        return [{ type: "usage", data: usage }];
      }
      case "error": {
        const e = (line.error ?? {}) as Obj;
        const data = (e.data ?? {}) as Obj;
        const message = String(data.message ?? e.message ?? e.name ?? "error");
        const status = typeof data.statusCode === "number" ? data.statusCode : statusInMessage(message);
        error = { name: String(e.name ?? "Error"), message, ...(status === undefined ? {} : { status }) };
        return [logEvent("stdout", `${error.name}: ${message}`, line)];
      }
      default:
        return unknownLine(raw, line);
    }
  }

  return {
    parseLine(raw) {
      const line = parseJsonObject(raw);
      if (!line) return unknownLine(raw);
      const out: RunEventInput[] = [];
      if (!session && typeof line.sessionID === "string") {
        session = line.sessionID;
        out.push({ type: "agent.session", data: { session_id: session } });
      }
      return [...out, ...body(line, raw)];
    },
    parseStderr: (line) => [logEvent("stderr", line)],
    end: () => [],
    outcome(exit: ProcessExit): AgentOutcome {
      if (error) {
        if (error.name === "ProviderAuthError") return modelFailure(exit, error.message, error.status ?? 401);
        return modelFailure(exit, error.message, error.status);
      }
      if (exit.exit_code === 0 && finished) {
        const done: AgentOutcome = { kind: "completed", exit_code: 0 };
        if (lastText !== undefined) done.result = lastText;
        if (total) done.usage = total;
        return done;
      }
      return crashed("opencode", exit, finished ? "non-zero exit after the final step" : "no final step_finish");
    },
  };
}
