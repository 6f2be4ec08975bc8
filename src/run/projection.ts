/**
 * How events project onto the run row (status, timestamps, session id,
 * result, usage): pure helpers the RunManager applies inside the EventWriter's
 * commit transaction, so a row and its events never disagree.
 */
import type { RunRow } from "../store/types.ts";
import { statusOfTerminal, type RunEvent, type TerminalEventType, type Usage } from "../protocol/events.ts";

/** Sums two usage records; optional counts stay absent when both are. */
export function addUsage(a: Usage | null, b: Usage): Usage {
  if (!a) return { ...b };
  const sum = (x?: number, y?: number) => (x === undefined && y === undefined ? undefined : (x ?? 0) + (y ?? 0));
  const out: Usage = { input_tokens: a.input_tokens + b.input_tokens, output_tokens: a.output_tokens + b.output_tokens };
  const cr = sum(a.cache_read_tokens, b.cache_read_tokens);
  const cw = sum(a.cache_write_tokens, b.cache_write_tokens);
  const cost = sum(a.cost_usd, b.cost_usd);
  if (cr !== undefined) out.cache_read_tokens = cr;
  if (cw !== undefined) out.cache_write_tokens = cw;
  if (cost !== undefined) out.cost_usd = cost;
  return out;
}

/**
 * The row patch of a terminal event. `usage`: the event's own, else the sum of
 * the run's `usage` events (`accumulated`), else null.
 */
export function terminalPatch(e: RunEvent & { type: TerminalEventType }, accumulated: Usage | null): Partial<RunRow> {
  const d = e.data as Record<string, unknown>;
  return {
    status: statusOfTerminal(e.type),
    ended_at: e.ts,
    result: typeof d.result === "string" ? d.result : null,
    error: (d.error as RunRow["error"]) ?? null,
    exit_code: typeof d.exit_code === "number" ? d.exit_code : null,
    usage: (d.usage as Usage | undefined) ?? accumulated,
  };
}
