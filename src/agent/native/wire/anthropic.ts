/**
 * The Anthropic Messages wire (`@anthropic-ai/sdk`, `POST /v1/messages` with `stream: true`).
 * Request and event shapes from Anthropic's Messages API reference ("Streaming Messages"):
 * `message_start` (input and cache token counts), `content_block_start` / `_delta` / `_stop`
 * (`text_delta`, `thinking_delta`, `signature_delta`, `input_json_delta` of a `tool_use` block),
 * `message_delta` (`stop_reason`, output tokens), `message_stop`. Tool results go back as
 * `tool_result` blocks of a user message; adjacent messages of one role are merged, as the API
 * wants alternating roles.
 */
import Anthropic from "@anthropic-ai/sdk";
import type { ThinkingBlock, ToolCallItem, TranscriptItem } from "../transcript.ts";
import { parseArguments, type ModelRequest, type StopKind, type TurnResult, type TurnSink, type TurnUsage, type WireClient } from "./types.ts";

type Block = Record<string, unknown>;
type Message = { role: "user" | "assistant"; content: Block[] };

/** The Messages API `messages` of a conversation (pure). */
export function toAnthropicMessages(transcript: readonly TranscriptItem[]): Message[] {
  const out: Message[] = [];
  const push = (role: Message["role"], blocks: Block[]) => {
    if (blocks.length === 0) return;
    const last = out.at(-1);
    if (last?.role === role) last.content.push(...blocks);
    else out.push({ role, content: blocks });
  };
  for (const item of transcript) {
    if (item.role === "user") push("user", [{ type: "text", text: item.text }]);
    else if (item.role === "tool") push("user", item.results.map((r) => ({ type: "tool_result", tool_use_id: r.call_id, content: r.output, ...(r.is_error ? { is_error: true } : {}) })));
    else {
      const blocks: Block[] = [];
      for (const t of item.thinking ?? []) if (t.signature) blocks.push({ type: "thinking", thinking: t.text, signature: t.signature });
      if (item.text) blocks.push({ type: "text", text: item.text });
      for (const c of item.tool_calls) blocks.push({ type: "tool_use", id: c.id, name: c.name, input: typeof c.input === "object" && c.input !== null ? c.input : {} });
      push("assistant", blocks.length > 0 ? blocks : [{ type: "text", text: "(no answer)" }]);
    }
  }
  return out;
}

/** What the stream has built so far (see {@link applyAnthropicEvent}). */
export interface AnthropicTurnState {
  text: string;
  reasoning: string;
  thinking: ThinkingBlock[];
  calls: ToolCallItem[];
  /** Open blocks by index: a tool call's JSON so far, a thinking block. */
  open: Map<number, { kind: "tool"; call: ToolCallItem; json: string } | { kind: "thinking"; block: ThinkingBlock } | { kind: "text" }>;
  usage: TurnUsage;
  stopRaw?: string;
}

/** A fresh {@link AnthropicTurnState}. */
export function newAnthropicTurn(): AnthropicTurnState {
  return { text: "", reasoning: "", thinking: [], calls: [], open: new Map(), usage: { input_tokens: 0, output_tokens: 0, input_includes_cache: false } };
}

/** Applies one stream event to the turn's state, handing text and thinking to `sink` (pure apart from `sink`). */
export function applyAnthropicEvent(s: AnthropicTurnState, ev: Record<string, unknown>, sink: TurnSink): void {
  const type = ev.type;
  if (type === "message_start") {
    const u = ((ev.message as Block | undefined)?.usage ?? {}) as Record<string, number | null | undefined>;
    s.usage.input_tokens = u.input_tokens ?? 0;
    s.usage.output_tokens = u.output_tokens ?? 0;
    if (u.cache_read_input_tokens) s.usage.cache_read_tokens = u.cache_read_input_tokens;
    if (u.cache_creation_input_tokens) s.usage.cache_write_tokens = u.cache_creation_input_tokens;
  } else if (type === "content_block_start") {
    const b = ev.content_block as Block;
    const index = ev.index as number;
    if (b.type === "tool_use") {
      const call: ToolCallItem = { id: String(b.id), name: String(b.name), input: {} };
      s.open.set(index, { kind: "tool", call, json: "" });
    } else if (b.type === "thinking") {
      const block: ThinkingBlock = { text: "" };
      s.thinking.push(block);
      s.open.set(index, { kind: "thinking", block });
    } else s.open.set(index, { kind: "text" });
  } else if (type === "content_block_delta") {
    const d = ev.delta as Block;
    const open = s.open.get(ev.index as number);
    if (d.type === "text_delta") {
      s.text += String(d.text);
      sink.text(String(d.text));
    } else if (d.type === "thinking_delta" && open?.kind === "thinking") {
      open.block.text += String(d.thinking);
      s.reasoning += String(d.thinking);
      sink.reasoning(String(d.thinking));
    } else if (d.type === "signature_delta" && open?.kind === "thinking") open.block.signature = (open.block.signature ?? "") + String(d.signature);
    else if (d.type === "input_json_delta" && open?.kind === "tool") open.json += String(d.partial_json);
  } else if (type === "content_block_stop") {
    const open = s.open.get(ev.index as number);
    if (open?.kind === "tool") {
      open.call.input = parseArguments(open.json);
      s.calls.push(open.call);
    }
    s.open.delete(ev.index as number);
  } else if (type === "message_delta") {
    const d = ev.delta as Block;
    if (typeof d.stop_reason === "string") s.stopRaw = d.stop_reason;
    const u = ev.usage as Record<string, number | null | undefined> | undefined;
    if (typeof u?.output_tokens === "number") s.usage.output_tokens = u.output_tokens;
  }
}

/** The stop of an Anthropic `stop_reason`. */
export function anthropicStop(reason: string | undefined, calls: number): StopKind {
  if (reason === "tool_use" || (calls > 0 && reason !== "max_tokens")) return "tool_use";
  if (reason === "end_turn" || reason === "stop_sequence") return "end_turn";
  if (reason === "max_tokens") return "max_tokens";
  if (reason === "refusal") return "refusal";
  return "other";
}

/** Options of {@link createAnthropicWire}. */
export interface AnthropicWireOptions {
  baseURL?: string;
  apiKey: string;
  maxRetries: number;
  timeoutMs: number;
}

/** The Anthropic client of a provider; see the module comment. */
export function createAnthropicWire(o: AnthropicWireOptions): WireClient {
  // Everything explicit: the SDK would otherwise read ANTHROPIC_AUTH_TOKEN, ANTHROPIC_BASE_URL and ANTHROPIC_LOG from the server's environment.
  const client = new Anthropic({ apiKey: o.apiKey, authToken: null, baseURL: o.baseURL ?? "https://api.anthropic.com", maxRetries: o.maxRetries, timeout: o.timeoutMs, logLevel: "off" });
  return {
    async turn(req: ModelRequest, sink: TurnSink, signal: AbortSignal): Promise<TurnResult> {
      const params = {
        model: req.model,
        max_tokens: req.maxOutputTokens,
        system: req.system,
        messages: toAnthropicMessages(req.transcript),
        tools: req.tools.map((t) => ({ name: t.name, description: t.description, input_schema: t.input_schema })),
        ...(req.forceTool ? { tool_choice: { type: "tool", name: req.forceTool } } : {}),
        stream: true as const,
      };
      const stream = await client.messages.create(params as never, { signal });
      const s = newAnthropicTurn();
      for await (const ev of stream as unknown as AsyncIterable<Record<string, unknown>>) applyAnthropicEvent(s, ev, sink);
      return {
        text: s.text,
        reasoning: s.reasoning,
        ...(s.thinking.length > 0 ? { thinking: s.thinking } : {}),
        tool_calls: s.calls,
        usage: s.usage,
        stop: anthropicStop(s.stopRaw, s.calls.length),
        ...(s.stopRaw ? { stop_raw: s.stopRaw } : {}),
      };
    },
  };
}
