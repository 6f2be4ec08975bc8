/**
 * Serves one run's events as Server-Sent Events (docs/architecture.md#sse): `id:`
 * is the event id, `event:` the type, `data:` the whole event as JSON. Replays
 * after `after`, then follows live; a comment heartbeat every
 * `heartbeatMs`; ends after the terminal event, on client abort, or on
 * shutdown, whichever is first. A subscriber too slow for its buffer gets a
 * `stream.lagged` event (`data: {"last_event_id": N}`) and is closed. The
 * frames are formatted by `src/protocol/sse.ts`.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import { formatLaggedFrame } from "../protocol/sse.ts";
import type { EventChunk, RunChannel } from "../run/channel.ts";

export interface SseOptions {
  /** Heartbeat comment interval, ms. */
  heartbeatMs: number;
  /** A client that reads nothing for this long while writes are pending is disconnected, ms. Default 60 s. */
  stallTimeoutMs?: number;
  /** Client reconnect delay announced with `retry:`, ms. */
  retryMs?: number;
  /**
   * Another view of the same events (the AG-UI route, `routes/agui.ts`): the text to write for a chunk instead of its
   * own frames (`""`: nothing), and the frame for a lagging subscriber instead of `stream.lagged` (`""`: none).
   */
  render?: { chunk(chunk: EventChunk): string; lagged(lastId: number): string };
}

/**
 * Starts an SSE response on `res` (taken over from Koa): no socket timeout, no
 * Nagle delay, the event-stream headers (no caching, no proxy buffering), the
 * client's reconnect delay (`retry:`, default 1000 ms) and a comment heartbeat
 * every `heartbeatMs`, written only while the socket drains (a stalled client
 * gets nothing more buffered). Returns the function that stops the heartbeat.
 */
export function beginSse(req: IncomingMessage, res: ServerResponse, opts: { heartbeatMs: number; retryMs?: number }): () => void {
  req.socket.setTimeout(0);
  req.socket.setNoDelay(true);
  res.writeHead(200, {
    "Content-Type": "text/event-stream; charset=utf-8",
    "Cache-Control": "no-cache, no-transform",
    Connection: "keep-alive",
    "X-Accel-Buffering": "no",
  });
  res.write(`retry: ${opts.retryMs ?? 1000}\n\n`);
  const heartbeat = setInterval(() => res.writableNeedDrain || res.write(": ping\n\n"), opts.heartbeatMs);
  return () => clearInterval(heartbeat);
}

/**
 * Takes over `res` (the caller must stop its framework from responding, e.g.
 * Koa's `ctx.respond = false`) and streams `channel` from `after`.
 * Resolves when the stream is over.
 */
export function streamRunEvents(req: IncomingMessage, res: ServerResponse, channel: RunChannel, after: number, opts: SseOptions): Promise<void> {
  return new Promise((resolve) => {
    const stopHeartbeat = beginSse(req, res, opts);
    let finished = false;
    const finish = () => {
      if (finished) return;
      finished = true;
      stopHeartbeat();
      clearTimeout(stallTimer);
      sub?.close();
      if (!res.writableEnded) res.end();
      resolve();
    };
    let sub: ReturnType<RunChannel["subscribe"]> | undefined;
    let stallTimer: NodeJS.Timeout | undefined;
    const onDrain = () => {
      clearTimeout(stallTimer);
      stallTimer = undefined;
      try {
        sub?.resume();
      } catch {
        res.destroy(); // never let a replay failure escape an event listener
      }
    };
    res.on("drain", onDrain);
    res.once("close", finish);
    sub = channel.subscribe(after, {
      write(chunk: EventChunk): boolean {
        if (finished) return false;
        const text = opts.render?.chunk(chunk);
        if (text === "") return true;
        const more = res.write(text ?? chunk.bytes());
        // A client that stops reading is dropped, not held forever (it reconnects with Last-Event-ID).
        if (!more) stallTimer ??= setTimeout(() => res.destroy(), opts.stallTimeoutMs ?? 60_000);
        return more;
      },
      lagged(lastId: number) {
        const frame = opts.render ? opts.render.lagged(lastId) : formatLaggedFrame(lastId);
        if (frame !== "") res.write(frame);
        finish();
        // A lagging socket may never drain: do not wait for it.
        setTimeout(() => res.destroy(), 5000).unref();
      },
      end: finish,
    });
    if (finished) sub.close();
  });
}
