/**
 * The native agent's conversation in its own neutral form, independent of the wire API: what
 * the store keeps (`native_sessions.messages`) and what each wire module (`wire/*.ts`) turns
 * into its vendor's request. A resumed run may therefore continue a conversation on another
 * provider.
 */

/** A tool call the model made. `input` is the parsed JSON arguments (an object, or the raw string when they were not JSON). */
export interface ToolCallItem {
  id: string;
  name: string;
  input: unknown;
}

/** The result the loop sent back for a call. */
export interface ToolResultItem {
  call_id: string;
  output: string;
  is_error: boolean;
}

/** Anthropic thinking blocks, kept with their signatures so they can be sent back (extended thinking with tools needs them). */
export interface ThinkingBlock {
  text: string;
  signature?: string;
}

/** One item of the conversation. */
export type TranscriptItem =
  | { role: "user"; text: string }
  | { role: "assistant"; text: string; tool_calls: ToolCallItem[]; thinking?: ThinkingBlock[] }
  | { role: "tool"; results: ToolResultItem[] };

/** True when `v` looks like a stored transcript (an array of items with a known role). */
export function isTranscript(v: unknown): v is TranscriptItem[] {
  return Array.isArray(v) && v.every((i) => typeof i === "object" && i !== null && ["user", "assistant", "tool"].includes((i as { role?: unknown }).role as string));
}
