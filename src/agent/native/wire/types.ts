/**
 * What every wire module (`anthropic.ts`, `responses.ts`, `chat.ts`) does: one model request,
 * streamed, from the neutral conversation (`../transcript.ts`) to a {@link TurnResult}, text and
 * reasoning handed to a {@link TurnSink} as they arrive.
 */
import type { ThinkingBlock, ToolCallItem, TranscriptItem } from "../transcript.ts";

/** A tool as the model is offered it. */
export interface ToolSpec {
  name: string;
  description: string;
  /** JSON Schema of the input object (plain JSON). */
  input_schema: Record<string, unknown>;
}

/** One model request. */
export interface ModelRequest {
  /** The model name at the provider (without the `provider/` prefix). */
  model: string;
  system: string;
  transcript: readonly TranscriptItem[];
  tools: readonly ToolSpec[];
  /** Output tokens this request may produce. */
  maxOutputTokens: number;
  /** Make the model call this tool (the planning turn). */
  forceTool?: string;
}

/** Receives streamed pieces while a turn runs. */
export interface TurnSink {
  /** A piece of assistant text. */
  text(delta: string): void;
  /** A piece of reasoning (thinking, reasoning summary). */
  reasoning(delta: string): void;
}

/**
 * Token counts of one request, as the vendor reports them. `input_includes_cache`: OpenAI's
 * `input_tokens` include the cached ones (`cache_read_tokens` is a part of them); Anthropic's
 * do not (cache reads and writes are counted apart).
 */
export interface TurnUsage {
  input_tokens: number;
  output_tokens: number;
  cache_read_tokens?: number;
  cache_write_tokens?: number;
  input_includes_cache: boolean;
}

/** Why the model stopped: its turn is over, it wants tool results, it hit the output limit, it refused, or something else. */
export type StopKind = "end_turn" | "tool_use" | "max_tokens" | "refusal" | "other";

/** The outcome of one request. */
export interface TurnResult {
  text: string;
  reasoning: string;
  thinking?: ThinkingBlock[];
  tool_calls: ToolCallItem[];
  usage: TurnUsage;
  stop: StopKind;
  /** The vendor's own stop reason, for the log. */
  stop_raw?: string;
}

/** A provider's client for one wire API. */
export interface WireClient {
  /**
   * Makes one streamed request. Rejects with the SDK's error (after the SDK's retries), or its
   * abort error when `signal` aborts (the stream is closed at once).
   */
  turn(req: ModelRequest, sink: TurnSink, signal: AbortSignal): Promise<TurnResult>;
}

/** Parses tool-call arguments: the object, or the raw text when it is not JSON. */
export function parseArguments(text: string): unknown {
  if (text.trim() === "") return {};
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return text;
  }
}
