/**
 * Serves one run's events as Server-Sent Events (DESIGN.md section 4): `id:`
 * is the event id, `event:` the type, `data:` the whole event as JSON. Replays
 * after `after`, then follows live; a comment heartbeat every
 * `heartbeatMs`; ends after the terminal event, on client abort, or on
 * shutdown, whichever is first. A subscriber too slow for its buffer gets a
 * `stream.lagged` event (`data: {"last_event_id": N}`) and is closed.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import type { EventChunk, RunChannel } from "../run/channel.ts";

export interface SseOptions {
  /** Heartbeat comment interval, ms. */
  heartbeatMs: number;
  /** Client reconnect delay announced with `retry:`, ms. */
  retryMs?: number;
}

/**
 * Takes over `res` (the caller must stop its framework from responding, e.g.
 * Koa's `ctx.respond = false`) and streams `channel` from `after`.
 * Resolves when the stream is over.
 */
export function streamRunEvents(req: IncomingMessage, res: ServerResponse, channel: RunChannel, after: number, opts: SseOptions): Promise<void> {
  return new Promise((resolve) => {
    req.socket.setTimeout(0);
    req.socket.setNoDelay(true);
    res.writeHead(200, {
      "Content-Type": "text/event-stream; charset=utf-8",
      "Cache-Control": "no-cache, no-transform",
      Connection: "keep-alive",
      "X-Accel-Buffering": "no",
    });
    res.write(`retry: ${opts.retryMs ?? 1000}\n\n`);
    let finished = false;
    const heartbeat = setInterval(() => res.write(": ping\n\n"), opts.heartbeatMs);
    const finish = () => {
      if (finished) return;
      finished = true;
      clearInterval(heartbeat);
      sub?.close();
      if (!res.writableEnded) res.end();
      resolve();
    };
    let sub: ReturnType<RunChannel["subscribe"]> | undefined;
    const onDrain = () => sub?.resume();
    res.on("drain", onDrain);
    res.once("close", finish);
    sub = channel.subscribe(after, {
      write(chunk: EventChunk): boolean {
        if (finished) return false;
        return res.write(chunk.bytes());
      },
      lagged(lastId: number) {
        res.write(`event: stream.lagged\ndata: ${JSON.stringify({ last_event_id: lastId })}\n\n`);
        finish();
      },
      end: finish,
    });
    if (finished) sub.close();
  });
}
