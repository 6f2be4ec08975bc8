/**
 * Follows a run's event stream (`GET /api/runs/:id/events`, SSE) until its
 * terminal event. The stream is parsed with eventsource-parser over fetch. A
 * dropped or stalled connection, a server that ends the stream early, or a
 * `stream.lagged` notice all lead to a reconnect with `Last-Event-ID`; events
 * already seen are skipped, so the caller sees each id once, in order.
 */
import { createParser } from "eventsource-parser";
import { isTerminalType, type RunEvent } from "../protocol/events.ts";
import { STREAM_LAGGED } from "../protocol/sse.ts";
import { ApiError, ConnectionError, type ApiClient } from "./client.ts";

/** Options of {@link followRunEvents}. */
export interface FollowOptions {
  /** Start after this event id (0: from the beginning). */
  after?: number;
  /** Called once per event, in id order. */
  onEvent: (event: RunEvent) => void;
  /**
   * Called before each reconnect with the last id seen, why, and the attempt
   * number since the stream last delivered an event (1 for the first).
   */
  onReconnect?: (after: number, reason: "lagged" | "disconnected", attempt: number) => void;
  /** Consecutive failed attempts allowed before giving up (default 8). */
  maxRetries?: number;
  /** Reconnect when nothing (not even a heartbeat) arrives for this long, ms (default 45 000). */
  idleTimeoutMs?: number;
  /** Delay before the n-th retry, ms (default: 250 · 2^(n-1), at most 5 000). */
  retryDelayMs?: (attempt: number) => number;
}

/** What one connection ended with. */
type Outcome = { kind: "terminal"; event: RunEvent } | { kind: "lagged" } | { kind: "dropped"; reason: string };

/**
 * Streams the run's events to `onEvent` and resolves with the terminal event.
 * Rejects with {@link ApiError} for a 4xx answer (e.g. unknown run) and with
 * {@link ConnectionError} after `maxRetries` failed reconnects in a row.
 * @example
 * const last = await followRunEvents(client, runId, { onEvent: (e) => console.log(e.type) });
 */
export async function followRunEvents(client: ApiClient, runId: string, opts: FollowOptions): Promise<RunEvent> {
  const maxRetries = opts.maxRetries ?? 8;
  const delay = opts.retryDelayMs ?? ((n: number) => Math.min(5000, 250 * 2 ** (n - 1)));
  const state = { lastId: opts.after ?? 0, progressed: false };
  let failures = 0;
  for (;;) {
    state.progressed = false;
    const outcome = await connectOnce(client, runId, state, opts);
    if (outcome.kind === "terminal") return outcome.event;
    if (outcome.kind === "lagged") {
      failures = 0;
      opts.onReconnect?.(state.lastId, "lagged", 1);
      continue;
    }
    failures = state.progressed ? 1 : failures + 1;
    if (failures > maxRetries) {
      throw new ConnectionError(client.baseUrl, `event stream lost after event ${state.lastId}: ${outcome.reason}`);
    }
    opts.onReconnect?.(state.lastId, "disconnected", failures);
    await sleep(delay(failures));
  }
}

/** The note shown when the stream reconnects. */
export function describeReconnect(why: "lagged" | "disconnected", after: number): string {
  return why === "lagged"
    ? `(stream lagged; resuming after event ${after})`
    : `(connection lost; reconnecting after event ${after} …)`;
}

async function connectOnce(
  client: ApiClient,
  runId: string,
  state: { lastId: number; progressed: boolean },
  opts: FollowOptions,
): Promise<Outcome> {
  const controller = new AbortController();
  let outcome: Outcome | undefined;
  const finish = (o: Outcome) => {
    outcome ??= o;
    controller.abort();
  };
  const idleMs = opts.idleTimeoutMs ?? 45_000;
  let idle: NodeJS.Timeout | undefined;
  const touch = () => {
    clearTimeout(idle);
    idle = setTimeout(() => finish({ kind: "dropped", reason: `no data for ${idleMs} ms` }), idleMs);
  };

  const parser = createParser({
    onEvent(msg) {
      if (outcome) return;
      if (msg.event === STREAM_LAGGED) return finish({ kind: "lagged" });
      let ev: RunEvent;
      try {
        ev = JSON.parse(msg.data) as RunEvent;
      } catch {
        return; // not an event (a server notice we do not know)
      }
      if ((ev.type as string) === STREAM_LAGGED) return finish({ kind: "lagged" });
      if (typeof ev.id !== "number" || ev.id <= state.lastId) return;
      state.lastId = ev.id;
      state.progressed = true;
      opts.onEvent(ev);
      if (isTerminalType(ev.type)) finish({ kind: "terminal", event: ev });
    },
  });

  touch();
  try {
    const after = state.lastId;
    const res = await client.open("GET", `/api/runs/${encodeURIComponent(runId)}/events`, {
      query: { after },
      headers: { accept: "text/event-stream", ...(after > 0 ? { "last-event-id": String(after) } : {}) },
      signal: controller.signal,
      timeoutMs: 0,
    });
    if (!res.body) return { kind: "dropped", reason: "empty response" };
    const reader = res.body.getReader();
    const decoder = new TextDecoder();
    try {
      while (!outcome) {
        const { done, value } = await reader.read();
        if (done) break;
        touch();
        parser.feed(decoder.decode(value, { stream: true }));
      }
    } finally {
      reader.cancel().catch(() => {});
    }
    return outcome ?? { kind: "dropped", reason: "stream ended before the run did" };
  } catch (err) {
    if (outcome) return outcome;
    if (err instanceof ApiError && err.status < 500) throw err;
    const reason = err instanceof ConnectionError ? err.reason : err instanceof Error ? err.message : String(err);
    return { kind: "dropped", reason };
  } finally {
    clearTimeout(idle);
    controller.abort();
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
