/**
 * Parser for `gemini -p … --output-format stream-json` output. Format source: Gemini CLI 0.61.0,
 * transcripts in `test/golden/gemini/*.jsonl` and /work/shared/agents.
 *
 * Lines: `init{session_id, model}`, `message{role:"user"|"assistant", content, delta?}` (assistant
 * text streams as deltas), `tool_use{tool_name, tool_id, parameters}`,
 * `tool_result{tool_id, status, output, error?}`, `error` (non-fatal), and
 * `result{status:"success"|"error", error?{type, message}, stats}`. The exit code of an API failure
 * is the HTTP status modulo 256 (500 → 244, 400 → 144); its own codes are 41 auth, 42 bad input,
 * 53 turn limit, 55 untrusted folder. After SIGINT/SIGTERM it exits 0 with no `result`.
 */
import type { RunEventInput, Usage } from "../../protocol/events.ts";
import type { AgentOutcome, LineParser, ProcessExit } from "../types.ts";
import { crashed, logEvent, modelFailure, parseJsonObject, planEvent, statusInMessage, tokens, unknownLine } from "../cli-support.ts";
import { mcpServerOfTool } from "../mcp-config.ts";

type Obj = Record<string, unknown>;

/** The HTTP status an exit code stands for (status mod 256), when it maps into 400–599. */
export function statusFromGeminiExit(code: number | undefined): number | undefined {
  if (code === undefined || code < 2) return undefined;
  return [code + 256, code + 512].find((s) => s >= 400 && s < 600);
}

function statsUsage(stats: Obj): Usage {
  return {
    input_tokens: tokens(stats.input_tokens ?? stats.input),
    output_tokens: tokens(stats.output_tokens),
    cache_read_tokens: tokens(stats.cached),
  };
}

/**
 * Gemini CLI reports an API failure as `[API Error: {"error":{"code":500,"message":"…","status":"INTERNAL"}}]`:
 * returns the upstream message (with its status name) and HTTP code, or the text unchanged.
 */
export function readableGeminiError(text: string): { message: string; status?: number } {
  const json = /API Error:\s*(\{.*\})\s*\]?\s*$/s.exec(text)?.[1];
  if (!json) return { message: text };
  try {
    const err = (JSON.parse(json) as { error?: { code?: unknown; message?: unknown; status?: unknown } }).error;
    if (typeof err?.message !== "string") return { message: text };
    const message = typeof err.status === "string" ? `${err.message} (${err.status})` : err.message;
    return typeof err.code === "number" ? { message, status: err.code } : { message };
  } catch {
    return { message: text };
  }
}

/**
 * Creates a parser for one Gemini CLI run.
 * @example
 * const p = createGeminiParser();
 * p.parseLine('{"type":"message","role":"assistant","content":"Hi","delta":true}'); // [{type:"message.delta",…}]
 */
export function createGeminiParser(opts: { mcpServers?: readonly string[] } = {}): LineParser {
  let session = "gemini";
  let seq = 0;
  let pending = "";
  let lastText: string | undefined;
  let result: { status: string; message?: string; usage?: Usage } | undefined;

  const messageId = () => `${session}-${seq}`;

  /** The whole `message` built from the deltas so far, if any. */
  function flush(): RunEventInput[] {
    if (!pending) return [];
    const text = pending;
    pending = "";
    lastText = text;
    const ev: RunEventInput = { type: "message", data: { message_id: messageId(), role: "assistant", text } };
    seq++;
    return [ev];
  }

  function message(line: Obj): RunEventInput[] {
    if (line.role !== "assistant") return [];
    const text = String(line.content ?? "");
    if (line.delta === true) {
      pending += text;
      return [{ type: "message.delta", data: { message_id: messageId(), text } }];
    }
    pending += text;
    return flush();
  }

  return {
    parseLine(raw) {
      const line = parseJsonObject(raw);
      if (!line) return unknownLine(raw);
      switch (line.type) {
        case "init":
          if (typeof line.session_id !== "string") return unknownLine(raw, line);
          session = line.session_id;
          return [{ type: "agent.session", data: { session_id: line.session_id, raw: line } }];
        case "message":
          return message(line);
        case "tool_use": {
          const out = flush();
          const call_id = String(line.tool_id ?? "");
          const server = mcpServerOfTool(String(line.tool_name ?? ""), opts.mcpServers); // an MCP tool of the run's servers
          out.push({ type: "tool.call", data: { call_id, name: String(line.tool_name ?? ""), input: line.parameters ?? {}, ...(server ? { server } : {}) } });
          const plan = line.tool_name === "write_todos" ? planEvent((line.parameters as Obj | undefined)?.todos) : undefined;
          if (plan) out.push(plan);
          return out;
        }
        case "tool_result": {
          const out = flush();
          const is_error = line.status === "error";
          const output = is_error ? (line.error ?? line.output ?? "") : (line.output ?? "");
          out.push({ type: "tool.result", data: { call_id: String(line.tool_id ?? ""), output, is_error } });
          return out;
        }
        case "error":
          return [...flush(), logEvent("stdout", String(line.message ?? "error"), line)];
        case "result": {
          const out = flush();
          const err = line.error as Obj | undefined;
          result = { status: String(line.status ?? "") };
          if (err) result.message = String(err.message ?? err.type ?? "error");
          if (line.stats && typeof line.stats === "object") {
            result.usage = statsUsage(line.stats as Obj);
            out.push({ type: "usage", data: result.usage });
          }
          return out;
        }
        default:
          return unknownLine(raw, line);
      }
    },
    parseStderr: (line) => [logEvent("stderr", line)],
    end: () => flush(),
    outcome(exit: ProcessExit): AgentOutcome {
      if (result?.status === "success" && exit.exit_code === 0) {
        const done: AgentOutcome = { kind: "completed", exit_code: 0 };
        if (lastText !== undefined) done.result = lastText;
        if (result.usage) done.usage = result.usage;
        return done;
      }
      if (exit.exit_code === 41) return modelFailure(exit, result?.message ?? "authentication failed", 401);
      if (result && result.status !== "success") {
        const { message, status } = readableGeminiError(result.message ?? "model request failed");
        return modelFailure(exit, message, status ?? statusInMessage(message) ?? statusFromGeminiExit(exit.exit_code));
      }
      if (exit.exit_code === 0) return crashed("gemini", exit, "exited 0 without a result event (interrupted?)");
      return crashed("gemini", exit, result ? "non-zero exit after a successful result" : "no result event");
    },
  };
}
