/**
 * The SSE wire format of `GET /api/runs/:id/events` (docs/architecture.md#sse):
 * one frame per stored event (`id:` the event id, `event:` the type, `data:`
 * the whole event as JSON), and the one frame that is not a stored event,
 * `stream.lagged`, sent to a subscriber too slow for its buffer just before it
 * is closed. The server writes these frames and the CLI reads them; both take
 * the names from here. Part of the contract layer: imports nothing of the
 * project but `./events.ts`.
 */
import { dataJsonOf, type RunEvent } from "./events.ts";

/**
 * Formats one event as an SSE frame; `data:` is the whole event as JSON, built
 * around the event's cached data JSON (see {@link dataJsonOf}).
 * @example formatSseFrame(event) // 'id: 7\nevent: tool.call\ndata: {"id":7,"run_id":"run_…",…}\n\n'
 */
export function formatSseFrame(e: RunEvent): string {
  const json = `{"id":${e.id},"run_id":${JSON.stringify(e.run_id)},"ts":"${e.ts}","type":"${e.type}","data":${dataJsonOf(e)}}`;
  return `id: ${e.id}\nevent: ${e.type}\ndata: ${json}\n\n`;
}

/**
 * The SSE `event:` name of the lagged notice. It is not a {@link RunEvent}: it
 * has no `id:`, is never stored and never replayed. The client reconnects with
 * `Last-Event-ID: <last_event_id>` and loses nothing.
 */
export const STREAM_LAGGED = "stream.lagged";

/** The `data:` of a {@link STREAM_LAGGED} frame: the id of the last event the subscriber was sent. */
export interface StreamLaggedData {
  last_event_id: number;
}

/**
 * Formats the {@link STREAM_LAGGED} frame.
 * @param lastEventId the last event id the subscriber got (0 when none)
 * @example formatLaggedFrame(3) // 'event: stream.lagged\ndata: {"last_event_id":3}\n\n'
 */
export function formatLaggedFrame(lastEventId: number): string {
  const data: StreamLaggedData = { last_event_id: lastEventId };
  return `event: ${STREAM_LAGGED}\ndata: ${JSON.stringify(data)}\n\n`;
}
