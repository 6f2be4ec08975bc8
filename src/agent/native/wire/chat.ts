/**
 * The OpenAI Chat Completions wire (`openai` SDK, `POST /v1/chat/completions` with `stream:
 * true` and `stream_options.include_usage`), for any OpenAI-compatible server (vLLM, Ollama,
 * LiteLLM …). Shapes from OpenAI's API reference ("Chat Completions", "The chat completion
 * chunk object"): `delta.content`, `delta.tool_calls[]` (by `index`: `id` and `function.name`
 * first, `function.arguments` in pieces), `finish_reason`, a last chunk with `usage` and no
 * choices. Reasoning comes as `delta.reasoning_content` (vLLM, DeepSeek) or `delta.reasoning`
 * (Ollama, OpenRouter). Output is capped with `max_tokens`, which these servers read.
 */
import type { ToolCallItem, TranscriptItem } from "../transcript.ts";
import { createOpenAiClient, type OpenAiWireOptions } from "./responses.ts";
import { parseArguments, type ModelRequest, type StopKind, type TurnResult, type TurnSink, type TurnUsage, type WireClient } from "./types.ts";

type Item = Record<string, unknown>;

/** The Chat Completions `messages` of a conversation, the system prompt first (pure). */
export function toChatMessages(system: string, transcript: readonly TranscriptItem[]): Item[] {
  const out: Item[] = [{ role: "system", content: system }];
  for (const item of transcript) {
    if (item.role === "user") out.push({ role: "user", content: item.text });
    else if (item.role === "tool") for (const r of item.results) out.push({ role: "tool", tool_call_id: r.call_id, content: r.output });
    else
      out.push({
        role: "assistant",
        content: item.text || null,
        ...(item.tool_calls.length > 0
          ? { tool_calls: item.tool_calls.map((c) => ({ id: c.id, type: "function", function: { name: c.name, arguments: typeof c.input === "string" ? c.input : JSON.stringify(c.input) } })) }
          : {}),
      });
  }
  return out;
}

/** What the stream has built so far (see {@link applyChatChunk}). */
export interface ChatTurnState {
  text: string;
  reasoning: string;
  /** Tool calls by their `index`, arguments as text so far. */
  calls: Map<number, { id: string; name: string; args: string }>;
  finish?: string;
  usage: TurnUsage;
}

/** A fresh {@link ChatTurnState}. */
export function newChatTurn(): ChatTurnState {
  return { text: "", reasoning: "", calls: new Map(), usage: { input_tokens: 0, output_tokens: 0, input_includes_cache: true } };
}

/** Applies one chunk to the turn's state, handing text and reasoning to `sink`. */
export function applyChatChunk(s: ChatTurnState, chunk: Item, sink: TurnSink): void {
  const u = chunk.usage as Record<string, unknown> | null | undefined;
  if (u) {
    s.usage.input_tokens = Number(u.prompt_tokens ?? 0);
    s.usage.output_tokens = Number(u.completion_tokens ?? 0);
    const cached = Number((u.prompt_tokens_details as Item | undefined)?.cached_tokens ?? 0);
    if (cached > 0) s.usage.cache_read_tokens = cached;
  }
  for (const choice of (chunk.choices as Item[] | undefined) ?? []) {
    const d = (choice.delta ?? {}) as Item;
    if (typeof d.content === "string" && d.content) {
      s.text += d.content;
      sink.text(d.content);
    }
    const r = typeof d.reasoning_content === "string" ? d.reasoning_content : typeof d.reasoning === "string" ? d.reasoning : "";
    if (r) {
      s.reasoning += r;
      sink.reasoning(r);
    }
    for (const tc of (d.tool_calls as Item[] | undefined) ?? []) {
      const index = Number(tc.index ?? 0);
      const fn = (tc.function ?? {}) as Item;
      const cur = s.calls.get(index) ?? { id: "", name: "", args: "" };
      if (typeof tc.id === "string" && tc.id) cur.id = tc.id;
      if (typeof fn.name === "string" && fn.name) cur.name += fn.name;
      if (typeof fn.arguments === "string") cur.args += fn.arguments;
      s.calls.set(index, cur);
    }
    if (typeof choice.finish_reason === "string") s.finish = choice.finish_reason;
  }
}

/** The finished calls of a turn, in index order (a call without an id gets one). */
export function chatCalls(s: ChatTurnState): ToolCallItem[] {
  return [...s.calls.entries()].sort((a, b) => a[0] - b[0]).map(([i, c]) => ({ id: c.id || `call_${i}`, name: c.name, input: parseArguments(c.args) }));
}

/** The stop of a Chat Completions `finish_reason`. */
export function chatStop(finish: string | undefined, calls: number): StopKind {
  if (calls > 0 && finish !== "length") return "tool_use";
  if (finish === "stop" || finish === undefined) return "end_turn";
  if (finish === "length") return "max_tokens";
  if (finish === "content_filter") return "refusal";
  return "other";
}

/** The Chat Completions client of a provider; see the module comment. */
export function createChatWire(o: OpenAiWireOptions): WireClient {
  const client = createOpenAiClient(o);
  return {
    async turn(req: ModelRequest, sink: TurnSink, signal: AbortSignal): Promise<TurnResult> {
      const params = {
        model: req.model,
        messages: toChatMessages(req.system, req.transcript),
        tools: req.tools.map((t) => ({ type: "function", function: { name: t.name, description: t.description, parameters: t.input_schema } })),
        tool_choice: req.forceTool ? { type: "function", function: { name: req.forceTool } } : "auto",
        max_tokens: req.maxOutputTokens,
        stream: true as const,
        stream_options: { include_usage: true },
      };
      const stream = await client.chat.completions.create(params as never, { signal });
      const s = newChatTurn();
      for await (const chunk of stream as unknown as AsyncIterable<Item>) applyChatChunk(s, chunk, sink);
      const calls = chatCalls(s);
      return { text: s.text, reasoning: s.reasoning, tool_calls: calls, usage: s.usage, stop: chatStop(s.finish, calls.length), ...(s.finish ? { stop_raw: s.finish } : {}) };
    },
  };
}
