/**
 * Follows a run's event stream until its terminal event, for `run` and
 * `logs -f`: the client's {@link OpenRunnerClient.events} (reconnects with
 * `Last-Event-ID`, no gap, no duplicate) with a callback per event and the
 * note the CLI prints when the stream reconnects.
 */
import type { EventStreamOptions, ReconnectReason } from "../client/events.ts";
import { OpenRunnerNetworkError } from "../client/errors.ts";
import type { RunEvent } from "../protocol/events.ts";
import type { ApiClient } from "./client.ts";

/** Options of {@link followRunEvents}: the stream's options plus a callback per event. */
export interface FollowOptions extends EventStreamOptions {
  /** Called once per event, in id order. */
  onEvent: (event: RunEvent) => void;
}

/**
 * Streams the run's events to `onEvent` and resolves with the terminal event.
 * Rejects with the client's `OpenRunnerError` for a 4xx answer (e.g. unknown
 * run) and its `OpenRunnerNetworkError` after `maxRetries` failed reconnects in a row.
 * @example
 * const last = await followRunEvents(client, runId, { onEvent: (e) => console.log(e.type) });
 */
export async function followRunEvents(client: ApiClient, runId: string, opts: FollowOptions): Promise<RunEvent> {
  const { onEvent, ...streamOpts } = opts;
  let last: RunEvent | undefined;
  for await (const ev of client.api.events(runId, streamOpts)) {
    last = ev;
    onEvent(ev);
  }
  if (!last) throw new OpenRunnerNetworkError(client.baseUrl, "the event stream ended without an event");
  return last;
}

/** The note shown when the stream reconnects. */
export function describeReconnect(why: ReconnectReason, after: number): string {
  return why === "lagged"
    ? `(stream lagged; resuming after event ${after})`
    : `(connection lost; reconnecting after event ${after} …)`;
}
