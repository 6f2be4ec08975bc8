/**
 * The one place where errors become HTTP responses (STYLE.md 6):
 * - an {@link AppError} answers its `status` and `{error: {code, message, details?}}`
 *   (the message only when `expose`; 429 also sets `Retry-After`, 401
 *   `WWW-Authenticate: Bearer`);
 * - a Koa/http-errors error with `expose` (4xx from the body parser, the
 *   router…) answers its status with a stable code (`invalid_json`,
 *   `payload_too_large`, …);
 * - anything else is 500 `internal` with a generic message, logged with the
 *   request id. A stack never reaches a response.
 * A request no route answered becomes 404 `not_found`.
 */
import { AppError, NotFoundError, TooManyRequestsError } from "../errors.ts";
import { redactUrl, type Log } from "../log.ts";
import type { AppMiddleware } from "./context.ts";

/** The JSON body of every error response. */
export interface ErrorBody {
  error: { code: string; message: string; details?: unknown };
}

/** A mapped error: what the client sees. */
interface HttpError {
  status: number;
  body: ErrorBody;
  headers: Record<string, string>;
}

/** Stable codes for exposed http-errors statuses. */
const CODES_BY_STATUS: Record<number, string> = {
  400: "bad_request",
  401: "unauthorized",
  403: "forbidden",
  404: "not_found",
  405: "method_not_allowed",
  406: "not_acceptable",
  408: "request_timeout",
  411: "length_required",
  413: "payload_too_large",
  415: "unsupported_media_type",
  429: "rate_limited",
  501: "not_implemented",
};

/**
 * Builds the error middleware. Mount it right inside the request-context
 * middleware (so the access log sees the final status).
 */
export function createErrorMiddleware(opts: { log: Log }): AppMiddleware {
  if (!opts?.log) throw new TypeError("createErrorMiddleware: log is required");
  const log = opts.log.getSubLogger({ name: "http.error" });
  return async (ctx, next) => {
    try {
      await next();
      // A handler that took over the response (`ctx.respond = false`, e.g. SSE) leaves status 404 and no body.
      if (ctx.status === 404 && ctx.body == null && ctx.respond !== false && !ctx.headerSent) throw new NotFoundError("route");
    } catch (err) {
      const mapped = mapError(err);
      const fields = { request_id: ctx.state.requestId, method: ctx.method, path: redactUrl(ctx.originalUrl), status: mapped.status, code: mapped.body.error.code };
      if (mapped.status >= 500) log.error("request failed", fields, err);
      else if (mapped.status === 401) log.info("authentication failed", { ...fields, cause: describeCause(err) });
      else log.debug("request rejected", fields);
      if (ctx.headerSent || !ctx.writable) return;
      // Headers the failed handler set do not belong to the error response; keep only the request id.
      for (const name of ctx.res.getHeaderNames()) if (name !== "x-request-id") ctx.remove(name);
      ctx.status = mapped.status;
      for (const [k, v] of Object.entries(mapped.headers)) ctx.set(k, v);
      ctx.body = mapped.body;
    }
  };
}

/** Maps any thrown value to the response the client gets. Exported for tests. */
export function mapError(err: unknown): HttpError {
  if (err instanceof AppError) {
    const headers: Record<string, string> = {};
    if (err instanceof TooManyRequestsError) headers["Retry-After"] = String(err.retryAfterS);
    if (err.status === 401) headers["WWW-Authenticate"] = 'Bearer realm="openrunner"';
    const message = err.expose ? err.message : "internal server error";
    const error = err.details !== undefined && err.expose ? { code: err.code, message, details: err.details } : { code: err.code, message };
    return { status: err.status, body: { error }, headers };
  }
  const e = err as { status?: unknown; statusCode?: unknown; expose?: unknown; message?: unknown; type?: unknown } | null;
  const status = typeof e?.status === "number" ? e.status : typeof e?.statusCode === "number" ? e.statusCode : 500;
  if (status >= 400 && status < 500 && e?.expose === true) {
    const code = e.type === "entity.parse.failed" ? "invalid_json" : (CODES_BY_STATUS[status] ?? "bad_request");
    return { status, body: { error: { code, message: String(e.message ?? code) } }, headers: {} };
  }
  return { status: 500, body: { error: { code: "internal", message: "internal server error" } }, headers: {} };
}

/** The auth failure's cause for the log: a message, never a token. */
function describeCause(err: unknown): string | undefined {
  const cause = (err as { cause?: unknown }).cause;
  if (cause instanceof Error) return `${cause.name}: ${cause.message}`;
  return cause === undefined ? undefined : String(cause);
}
