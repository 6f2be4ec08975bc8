/**
 * What both stores share about the `runs` table's encoding: JSON columns stored as text, and the
 * opaque cursor of `runs.list` (so a cursor from one implementation reads the same on the other).
 */
import { ValidationError } from "../errors.ts";
import type { RunRow } from "./types.ts";

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
