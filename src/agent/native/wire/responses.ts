/**
 * The OpenAI Responses wire (`openai` SDK, `POST /v1/responses` with `stream: true`, `store:
 * false`: the conversation is sent whole every turn, never kept at OpenAI). Shapes from OpenAI's
 * API reference ("Responses", "Streaming events"): input items (`{role, content}` messages,
 * `function_call`, `function_call_output`), events `response.output_text.delta`,
 * `response.reasoning_summary_text.delta` / `response.reasoning_text.delta`,
 * `response.output_item.done` (a finished `function_call` with its `arguments`),
 * `response.completed` / `response.incomplete` (usage, `incomplete_details.reason`),
 * `response.failed` and `error`.
 */
import OpenAI from "openai";
import type { ToolCallItem, TranscriptItem } from "../transcript.ts";
import { parseArguments, type ModelRequest, type StopKind, type TurnResult, type TurnSink, type TurnUsage, type WireClient } from "./types.ts";

type Item = Record<string, unknown>;

/** The Responses API `input` of a conversation (pure). */
export function toResponsesInput(transcript: readonly TranscriptItem[]): Item[] {
  const out: Item[] = [];
  for (const item of transcript) {
    if (item.role === "user") out.push({ role: "user", content: item.text });
    else if (item.role === "tool") for (const r of item.results) out.push({ type: "function_call_output", call_id: r.call_id, output: r.output });
    else {
      if (item.text) out.push({ role: "assistant", content: item.text });
      for (const c of item.tool_calls) out.push({ type: "function_call", call_id: c.id, name: c.name, arguments: typeof c.input === "string" ? c.input : JSON.stringify(c.input) });
    }
  }
  return out;
}

/** What the stream has built so far (see {@link applyResponsesEvent}). */
export interface ResponsesTurnState {
  text: string;
  reasoning: string;
  calls: ToolCallItem[];
  usage: TurnUsage;
  status?: string;
  incomplete?: string;
}

/** A fresh {@link ResponsesTurnState}. */
export function newResponsesTurn(): ResponsesTurnState {
  return { text: "", reasoning: "", calls: [], usage: { input_tokens: 0, output_tokens: 0, input_includes_cache: true } };
}

/** A failed response or an `error` event, as an Error with the vendor's code. */
export class ResponsesStreamError extends Error {
  constructor(
    message: string,
    readonly code?: string,
  ) {
    super(message);
    this.name = "ResponsesStreamError";
  }
}

/**
 * Applies one stream event to the turn's state, handing text and reasoning to `sink`.
 * @throws ResponsesStreamError for `response.failed` and `error` events
 */
export function applyResponsesEvent(s: ResponsesTurnState, ev: Item, sink: TurnSink): void {
  const type = ev.type as string;
  if (type === "response.output_text.delta") {
    s.text += String(ev.delta);
    sink.text(String(ev.delta));
  } else if (type === "response.reasoning_summary_text.delta" || type === "response.reasoning_text.delta") {
    s.reasoning += String(ev.delta);
    sink.reasoning(String(ev.delta));
  } else if (type === "response.output_item.done") {
    const item = ev.item as Item;
    if (item.type === "function_call") s.calls.push({ id: String(item.call_id), name: String(item.name), input: parseArguments(String(item.arguments ?? "")) });
    else if (item.type === "message" && s.text === "") {
      // No deltas came (a proxy that does not stream parts): take the finished message's text.
      const parts = (item.content as Item[] | undefined) ?? [];
      const text = parts.filter((p) => p.type === "output_text").map((p) => String(p.text)).join("");
      if (text) {
        s.text = text;
        sink.text(text);
      }
    }
  } else if (type === "response.completed" || type === "response.incomplete") {
    const r = ev.response as Item;
    s.status = String(r.status ?? (type === "response.completed" ? "completed" : "incomplete"));
    const reason = (r.incomplete_details as Item | null | undefined)?.reason;
    if (typeof reason === "string") s.incomplete = reason;
    const u = r.usage as Record<string, unknown> | undefined;
    if (u) {
      s.usage.input_tokens = Number(u.input_tokens ?? 0);
      s.usage.output_tokens = Number(u.output_tokens ?? 0);
      const cached = Number((u.input_tokens_details as Item | undefined)?.cached_tokens ?? 0);
      if (cached > 0) s.usage.cache_read_tokens = cached;
    }
  } else if (type === "response.failed") {
    const err = ((ev.response as Item | undefined)?.error ?? {}) as Item;
    throw new ResponsesStreamError(`the model's response failed: ${String(err.message ?? "unknown error")}`, typeof err.code === "string" ? err.code : undefined);
  } else if (type === "error") {
    throw new ResponsesStreamError(`the model stream reported an error: ${String(ev.message ?? "unknown error")}`, typeof ev.code === "string" ? ev.code : undefined);
  }
}

/** The stop of a finished Responses turn. */
export function responsesStop(s: Pick<ResponsesTurnState, "calls" | "status" | "incomplete">): StopKind {
  if (s.calls.length > 0) return "tool_use";
  if (s.incomplete === "max_output_tokens") return "max_tokens";
  if (s.incomplete === "content_filter") return "refusal";
  return s.status === "completed" || s.status === undefined ? "end_turn" : "other";
}

/** Options of the OpenAI wires. */
export interface OpenAiWireOptions {
  baseURL?: string;
  apiKey: string;
  maxRetries: number;
  timeoutMs: number;
}

/** An OpenAI SDK client with every setting explicit (the SDK would otherwise read OPENAI_BASE_URL, OPENAI_ORG_ID, OPENAI_PROJECT_ID and OPENAI_LOG from the environment). */
export function createOpenAiClient(o: OpenAiWireOptions): OpenAI {
  return new OpenAI({ apiKey: o.apiKey, baseURL: o.baseURL ?? "https://api.openai.com/v1", maxRetries: o.maxRetries, timeout: o.timeoutMs, organization: null, project: null, logLevel: "off" });
}

/** The Responses client of a provider; see the module comment. */
export function createResponsesWire(o: OpenAiWireOptions): WireClient {
  const client = createOpenAiClient(o);
  return {
    async turn(req: ModelRequest, sink: TurnSink, signal: AbortSignal): Promise<TurnResult> {
      const params = {
        model: req.model,
        instructions: req.system,
        input: toResponsesInput(req.transcript),
        tools: req.tools.map((t) => ({ type: "function", name: t.name, description: t.description, parameters: t.input_schema, strict: false })),
        tool_choice: req.forceTool ? { type: "function", name: req.forceTool } : "auto",
        max_output_tokens: req.maxOutputTokens,
        store: false,
        stream: true as const,
      };
      const stream = await client.responses.create(params as never, { signal });
      const s = newResponsesTurn();
      for await (const ev of stream as unknown as AsyncIterable<Item>) applyResponsesEvent(s, ev, sink);
      return { text: s.text, reasoning: s.reasoning, tool_calls: s.calls, usage: s.usage, stop: responsesStop(s), ...(s.incomplete ? { stop_raw: s.incomplete } : s.status ? { stop_raw: s.status } : {}) };
    },
  };
}
