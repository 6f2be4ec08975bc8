/**
 * Serves a batch's event stream as Server-Sent Events (docs/architecture.md#sse), with
 * the rules of a run's stream (`sse.ts`): `id:` the batch event id, `event:`
 * its type (`run.status`, `batch.done`), `data:` the whole event as JSON
 * (`formatBatchFrame`, `src/protocol/batches.ts`); replay after `after`
 * (`Last-Event-ID` / `?after=`), then live; a comment heartbeat; the stream
 * ends after `batch.done`, on client abort or on shutdown. A client whose
 * unread output passes `maxBufferedBytes` gets `stream.lagged` with the last
 * id it was sent and is closed; it reconnects with `Last-Event-ID` and loses nothing.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import { formatBatchFrame } from "../protocol/batches.ts";
import { formatLaggedFrame } from "../protocol/sse.ts";
import type { BatchFeed } from "../run/batch-feed.ts";
import { beginSse } from "./sse.ts";

/** Options of {@link streamBatchEvents}. */
export interface BatchSseOptions {
  /** Heartbeat comment interval, ms. */
  heartbeatMs: number;
  /** Unsent bytes a client may have pending before it is told `stream.lagged`; default 4 MiB. */
  maxBufferedBytes?: number;
  /** Client reconnect delay announced with `retry:`, ms. */
  retryMs?: number;
}

/**
 * Takes over `res` (the caller sets Koa's `ctx.respond = false`) and streams batch `batchId` from `after`.
 * Resolves when the stream is over.
 */
export function streamBatchEvents(req: IncomingMessage, res: ServerResponse, feed: BatchFeed, batchId: string, after: number, opts: BatchSseOptions): Promise<void> {
  const limit = opts.maxBufferedBytes ?? 4 * 1024 * 1024;
  return new Promise((resolve) => {
    const stopHeartbeat = beginSse(req, res, opts);
    let finished = false;
    let lastSent = after;
    let detach: (() => void) | undefined;
    const finish = () => {
      if (finished) return;
      finished = true;
      stopHeartbeat();
      detach?.();
      if (!res.writableEnded) res.end();
      resolve();
    };
    res.once("close", finish);
    detach = feed.subscribe(batchId, after, {
      event(e) {
        if (finished) return;
        if (res.writableLength > limit) {
          res.write(formatLaggedFrame(lastSent));
          finish();
          setTimeout(() => res.destroy(), 5000).unref(); // a lagging socket may never drain
          return;
        }
        res.write(formatBatchFrame(e));
        lastSent = e.id;
      },
      end: finish,
    });
    if (finished) detach();
  });
}
