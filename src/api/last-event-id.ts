/**
 * Where an SSE reader resumes: the `Last-Event-ID` header (a reconnecting
 * EventSource sends it) or else the `?after=` query value, for the run, batch
 * and AG-UI streams alike.
 */
import { ValidationError } from "../errors.ts";
import type { AppContext } from "./context.ts";

/**
 * The event id to resume after: `Last-Event-ID`, else `after`, else 0. A
 * malformed value is a 400, never a silent replay from the start.
 * @throws ValidationError `invalid_last_event_id` for anything but a non-negative integer (at most 15 digits)
 */
export function readLastEventId(ctx: AppContext, after: string | undefined): number {
  const header = ctx.get("Last-Event-ID");
  const raw = header !== "" ? header : after;
  if (raw === undefined) return 0;
  if (!/^[0-9]{1,15}$/.test(raw.trim())) throw new ValidationError("Last-Event-ID / after must be a non-negative integer", { value: raw }, "invalid_last_event_id");
  return Number(raw.trim());
}
