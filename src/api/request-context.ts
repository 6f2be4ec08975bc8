/**
 * The outermost middleware: gives every request an id (a sane incoming
 * `X-Request-Id`, else a new UUID), echoes it in the response, writes one
 * access log line per request and records its latency in the metrics.
 * The logged path goes through `redactUrl`, so `?access_token=` values never
 * reach a log line.
 */
import crypto from "node:crypto";
import { redactUrl, type Log } from "../log.ts";
import type { AppMiddleware } from "./context.ts";
import type { Metrics } from "./metrics.ts";

/** An incoming request id is kept only when it matches this (1–128 safe characters). */
const SANE_REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/** Response (and accepted request) header carrying the request id. */
export const REQUEST_ID_HEADER = "X-Request-Id";

/**
 * Builds the request-context middleware. Mount it first.
 * Duration is measured until the downstream middleware returns (for a
 * streamed response, `ctx.respond = false`, until the stream ends; such
 * requests are logged but kept out of the latency histogram).
 * @throws TypeError when `log` or `metrics` is missing.
 */
export function createRequestContextMiddleware(opts: { log: Log; metrics: Metrics }): AppMiddleware {
  if (!opts?.log || !opts.metrics) throw new TypeError("createRequestContextMiddleware: log and metrics are required");
  const log = opts.log.getSubLogger({ name: "http" });
  const { metrics } = opts;
  return async (ctx, next) => {
    const started = process.hrtime.bigint();
    const incoming = ctx.get(REQUEST_ID_HEADER);
    const requestId = SANE_REQUEST_ID.test(incoming) ? incoming : crypto.randomUUID();
    ctx.state.requestId = requestId;
    ctx.set(REQUEST_ID_HEADER, requestId);
    try {
      await next();
    } finally {
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      const matched = (ctx as { _matchedRoute?: unknown })._matchedRoute;
      const route = typeof matched === "string" ? matched : "unmatched";
      // A handler that wrote the response itself (`ctx.respond = false`, SSE) set the status on `res`.
      const status = ctx.respond === false ? ctx.res.statusCode : ctx.status;
      // Streams last as long as the client stays; they would swamp the latency histogram.
      if (ctx.respond !== false) metrics.observeHttp({ method: ctx.method, route, status }, seconds);
      log.info("request", {
        request_id: requestId,
        method: ctx.method,
        path: redactUrl(ctx.originalUrl),
        status,
        duration_ms: Math.round(seconds * 1e6) / 1e3,
        user_id: ctx.state.user?.id,
      });
    }
  };
}
