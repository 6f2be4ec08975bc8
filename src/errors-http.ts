/**
 * How an error becomes an HTTP answer: status, `{error: {code, message, details?}}`
 * body and headers (STYLE.md 6). Used by the API's error middleware
 * (`src/api/error-middleware.ts`) and the port proxy (`src/proxy/gateway.ts`),
 * so it sits below both and imports only `src/errors.ts`.
 * - an {@link AppError} answers its `status` and code (the message only when
 *   `expose`; 429 also sets `Retry-After`, 401 `WWW-Authenticate: Bearer`);
 * - a Koa/http-errors error with `expose` (4xx from the body parser, the
 *   router…) answers its status with a stable code (`invalid_json`,
 *   `payload_too_large`, …);
 * - anything else is 500 `internal` with a generic message. A stack never
 *   reaches a response.
 */
import { AppError, BatchItemError, TooManyRequestsError, type ApiErrorCode, type ApiErrorCodeOf } from "./errors.ts";
import type { ApiErrorStatus } from "./protocol/errors.ts";

/** The JSON body of every error response; `code` is one of `API_ERROR_CODES` (`src/protocol/errors.ts`). */
export interface ErrorBody {
  error: { code: ApiErrorCode; message: string; details?: unknown };
}

/** A mapped error: what the client sees. */
export interface HttpError {
  status: number;
  body: ErrorBody;
  headers: Record<string, string>;
}

/** Stable codes for exposed http-errors 4xx statuses (each of that status in `API_ERROR_CODES`); a 5xx http-error answers `internal`. */
const HTTP_ERRORS_CODES = {
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
} as const satisfies { [S in ApiErrorStatus]?: ApiErrorCodeOf<S> };
const CODES_BY_STATUS: Partial<Record<number, ApiErrorCode>> = HTTP_ERRORS_CODES;

/**
 * Maps any thrown value to the response the client gets (see the module comment).
 * @example mapError(new NotFoundError("run")) // { status: 404, body: { error: { code: "not_found", message: … } }, headers: {} }
 */
export function mapError(err: unknown): HttpError {
  if (err instanceof AppError) {
    const headers: Record<string, string> = {};
    const retryAfterS = err instanceof TooManyRequestsError || err instanceof BatchItemError ? err.retryAfterS : undefined;
    if (retryAfterS !== undefined) headers["Retry-After"] = String(retryAfterS);
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
