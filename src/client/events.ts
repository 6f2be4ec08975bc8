/**
 * A run's live event stream as an async iterable (docs/architecture.md#sse):
 * `GET /api/runs/:id/events` (or a batch's `GET /api/batches/:id/events`,
 * which follows the same rules) over SSE, parsed with eventsource-parser. A
 * dropped or stalled connection, a server that ends the stream early, or a
 * `stream.lagged` notice lead to a reconnect with `Last-Event-ID` (bounded
 * exponential backoff); ids already seen are skipped, so the consumer sees each
 * event once, in id order, without a gap, and the iteration ends after the
 * terminal event.
 */
import { createParser } from "eventsource-parser";
import { isTerminalType, type RunEvent } from "../protocol/events.ts";
import { STREAM_LAGGED } from "../protocol/sse.ts";
import { OpenRunnerError, OpenRunnerNetworkError } from "./errors.ts";

/** Why the stream reconnects: the server said `stream.lagged`, or the connection was lost. */
export type ReconnectReason = "lagged" | "disconnected";

/** Options of {@link OpenRunnerClient.events}. */
export interface EventStreamOptions {
  /** Start after this event id (default 0: from the first event). */
  after?: number;
  /** Ends the iteration: the pending `next()` rejects with the signal's reason. */
  signal?: AbortSignal;
  /**
   * Called before each reconnect with the last id seen, why, and the attempt
   * number since the stream last delivered an event (1 for the first).
   */
  onReconnect?: (after: number, reason: ReconnectReason, attempt: number) => void;
  /** Consecutive failed attempts allowed before giving up (default 8). */
  maxRetries?: number;
  /** Reconnect when nothing (not even a heartbeat) arrives for this long, ms (default 45 000). */
  idleTimeoutMs?: number;
  /** Delay before the n-th retry, ms (default: 250 · 2^(n-1), at most 5 000). */
  retryDelayMs?: (attempt: number) => number;
}

/** Opens one SSE connection after `after`; rejects with {@link OpenRunnerError} for an error answer. */
export type OpenEventStream = (after: number, signal: AbortSignal) => Promise<Response>;

/** The default backoff: 250 ms, doubling, at most 5 s. */
const defaultDelay = (n: number): number => Math.min(5000, 250 * 2 ** (n - 1));

/**
 * Yields the stream's events after `opts.after` until the last one (a run's
 * terminal event by default; the batch stream's `batch.done`).
 * Throws {@link OpenRunnerError} for a 4xx answer (e.g. 404 `not_found`) and
 * {@link OpenRunnerNetworkError} after `maxRetries` failed reconnects in a row.
 * @param baseUrl for the network error's message
 * @param isLast true for the event after which the stream is over
 */
export async function* followEventStream<E extends { id: number; type: string } = RunEvent>(
  open: OpenEventStream,
  baseUrl: string,
  opts: EventStreamOptions = {},
  isLast: (event: E) => boolean = (e) => isTerminalType(e.type),
): AsyncGenerator<E, void, undefined> {
  const maxRetries = opts.maxRetries ?? 8;
  const delay = opts.retryDelayMs ?? defaultDelay;
  const idleMs = opts.idleTimeoutMs ?? 45_000;
  const signal = opts.signal;
  let lastId = opts.after ?? 0;
  let failures = 0;
  for (;;) {
    signal?.throwIfAborted();
    const conn = new AbortController();
    const onAbort = () => conn.abort(signal?.reason);
    signal?.addEventListener("abort", onAbort, { once: true });
    const pending: E[] = [];
    let lagged = false;
    let progressed = false;
    let reason = "stream ended before the run did";
    const parser = createParser({
      onEvent(msg) {
        if (msg.event === STREAM_LAGGED) {
          lagged = true;
          return;
        }
        let ev: E;
        try {
          ev = JSON.parse(msg.data) as E;
        } catch {
          return; // not an event (a server notice we do not know)
        }
        const seen = pending.at(-1)?.id ?? lastId;
        if (typeof ev?.id !== "number" || ev.id <= seen) return;
        pending.push(ev);
      },
    });
    let idle: ReturnType<typeof setTimeout> | undefined;
    /** (Re)starts the idle limit: waiting for the response headers counts as well as waiting for data. */
    const arm = () => {
      clearTimeout(idle);
      idle = setTimeout(() => conn.abort(new Error(`no data for ${idleMs} ms`)), idleMs);
    };
    let reader: ReadableStreamDefaultReader<Uint8Array> | undefined;
    try {
      arm();
      const res = await open(lastId, conn.signal);
      if (!res.body) throw new Error("empty response");
      reader = res.body.getReader();
      const decoder = new TextDecoder();
      while (!lagged) {
        arm();
        const { done, value } = await reader.read();
        clearTimeout(idle);
        if (done) break;
        parser.feed(decoder.decode(value, { stream: true }));
        while (pending.length > 0) {
          const ev = pending.shift()!;
          lastId = ev.id;
          progressed = true;
          yield ev;
          if (isLast(ev)) return;
          signal?.throwIfAborted(); // aborted while the consumer held this event: deliver no more
        }
      }
    } catch (err) {
      if (signal?.aborted) throw signal.reason;
      if (err instanceof OpenRunnerError && !(err instanceof OpenRunnerNetworkError) && err.status < 500) throw err;
      const cause = conn.signal.aborted ? conn.signal.reason : err;
      reason = err instanceof OpenRunnerNetworkError ? err.reason : cause instanceof Error ? cause.message : String(cause);
    } finally {
      clearTimeout(idle);
      signal?.removeEventListener("abort", onAbort);
      conn.abort();
      reader?.cancel().catch(() => {});
    }
    if (lagged) {
      // Lagging again without a new event counts as a failed attempt: bounded and backed off like a drop.
      failures = progressed ? 0 : failures + 1;
      if (failures > maxRetries) throw new OpenRunnerNetworkError(baseUrl, `event stream lagged ${failures} times in a row after event ${lastId}`);
      opts.onReconnect?.(lastId, "lagged", Math.max(1, failures));
      if (failures > 0) await sleep(delay(failures), signal);
      continue;
    }
    failures = progressed ? 1 : failures + 1;
    if (failures > maxRetries) throw new OpenRunnerNetworkError(baseUrl, `event stream lost after event ${lastId}: ${reason}`);
    opts.onReconnect?.(lastId, "disconnected", failures);
    await sleep(delay(failures), signal);
  }
}

/** Waits `ms`; rejects with the signal's reason when it aborts first. */
function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal!.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}
