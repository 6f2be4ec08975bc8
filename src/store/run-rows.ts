/**
 * What both stores share about the encoding of their rows: the `runs` table's JSON columns stored
 * as text, the opaque cursor of `runs.list` (so a cursor from one implementation reads the same on
 * the other), and an `events` row with its data as JSON text.
 */
import { ValidationError } from "../errors.ts";
import { setDataJson, type RunEvent, type RunEventType } from "../protocol/events.ts";
import type { RunRow } from "./types.ts";

/** An `events` row as both stores read it (`data`: the JSON text written). */
export interface EventRecord {
  id: number;
  run_id: string;
  ts: string;
  type: RunEventType;
  data: string;
}

/** The stored event of a row, its data text kept as the event's serialized data (not serialized again for SSE). */
export function decodeEvent(r: EventRecord): RunEvent {
  return setDataJson({ id: r.id, run_id: r.run_id, ts: r.ts, type: r.type, data: JSON.parse(r.data) } as RunEvent, r.data);
}

/** Run columns stored as JSON text. */
export const RUN_JSON_COLUMNS: ReadonlySet<string> = new Set(["input", "metadata", "error", "usage"]);

/** Turns a `runs` row (JSON columns as text) into a {@link RunRow}; undefined stays undefined. */
export function decodeRun(raw: unknown): RunRow | undefined {
  if (raw === undefined) return undefined;
  const r = raw as Record<string, unknown>;
  const parse = (v: unknown): unknown => (v === null ? null : JSON.parse(v as string));
  return { ...r, input: parse(r.input), metadata: parse(r.metadata), error: parse(r.error), usage: parse(r.usage) } as RunRow;
}

/** Cursor: base64url of the JSON `[created_at, id]` of the last run on the page. */
export function encodeCursor(position: [string, string]): string {
  return Buffer.from(JSON.stringify(position)).toString("base64url");
}

/** The position a cursor names. @throws ValidationError (code `invalid_cursor`) for anything {@link encodeCursor} did not produce. */
export function decodeCursor(cursor: string): [string, string] {
  try {
    const v: unknown = JSON.parse(Buffer.from(cursor, "base64url").toString("utf8"));
    if (Array.isArray(v) && v.length === 2 && typeof v[0] === "string" && typeof v[1] === "string") return [v[0], v[1]];
  } catch {
    // fall through
  }
  throw new ValidationError("invalid cursor", { cursor }, "invalid_cursor");
}
