/**
 * The one place where the API turns errors into HTTP responses (STYLE.md 6):
 * what a handler throws is answered as {@link mapError} (`src/errors-http.ts`,
 * which the port proxy uses too) says: an `AppError` its status and
 * `{error: {code, message, details?}}`, an exposed http-errors 4xx its status
 * with a stable code, anything else 500 `internal`. 5xx are logged with the
 * request id, 401s with their cause; a stack never reaches a response.
 * A request no route answered becomes 404 `not_found`.
 */
import { mapError } from "../errors-http.ts";
import { NotFoundError } from "../errors.ts";
import { redactUrl, type Log } from "../log.ts";
import type { AppMiddleware } from "./context.ts";

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

/** The auth failure's cause for the log: a message, never a token. */
function describeCause(err: unknown): string | undefined {
  const cause = (err as { cause?: unknown }).cause;
  if (cause instanceof Error) return `${cause.name}: ${cause.message}`;
  return cause === undefined ? undefined : String(cause);
}
