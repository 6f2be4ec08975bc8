/**
 * The one error type of the client (docs/architecture.md#errors): an
 * {@link OpenRunnerError} carries the server's `{error: {code, message, details?}}`
 * and the HTTP status; its subclass {@link OpenRunnerNetworkError} (code
 * `network_error`, status 0) says the server could not be reached or the
 * connection broke. Aborting a call through its `AbortSignal` rejects with the
 * signal's reason (an `AbortError` `DOMException` by default), not with these.
 */
import type { ApiErrorCode } from "../protocol/errors.ts";

/**
 * The codes an {@link OpenRunnerError} can carry: every server code of
 * `API_ERROR_CODES`, plus the client's own `network_error` (no answer),
 * `bad_response` (a success status with a body that is not JSON) and
 * `http_<status>` (an error status without an error body, e.g. from a proxy).
 */
export type OpenRunnerErrorCode = ApiErrorCode | "network_error" | "bad_response" | `http_${number}`;

/**
 * An API call that failed: the server answered an error status, or (see
 * {@link OpenRunnerNetworkError}) did not answer at all.
 * @example
 * try { await client.getRun("run_nope"); }
 * catch (e) { if (e instanceof OpenRunnerError && e.code === "not_found") … }
 */
export class OpenRunnerError extends Error {
  /** The HTTP status; 0 for a network failure. */
  readonly status: number;
  /** The server's stable `error.code` (see {@link OpenRunnerErrorCode}). */
  readonly code: OpenRunnerErrorCode;
  /** The server's `error.details` (e.g. the failing fields of a `validation_failed`), if any. */
  readonly details: unknown;

  /**
   * @param status the HTTP status (0: no answer)
   * @param code the server's `error.code`, or one of the client's codes
   * @param message the server's `error.message`
   * @param details the server's `error.details`
   */
  constructor(status: number, code: OpenRunnerErrorCode, message: string, details?: unknown, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "OpenRunnerError";
    this.status = status;
    this.code = code;
    this.details = details;
  }
}

/**
 * The server could not be reached (refused, unknown host, timed out) or the
 * connection broke before an answer. `code` is `network_error`, `status` 0,
 * `cause` the underlying `fetch` error.
 */
export class OpenRunnerNetworkError extends OpenRunnerError {
  /** The server address the call went to. */
  readonly baseUrl: string;
  /** A short reason: `connection refused`, `host not found`, `timed out`, or the system error code. */
  readonly reason: string;

  /**
   * @param baseUrl the server address
   * @param reason the short reason
   * @param cause the underlying `fetch` error
   */
  constructor(baseUrl: string, reason: string, cause?: unknown) {
    super(0, "network_error", `cannot reach the OpenRunner server at ${baseUrl} (${reason})`, undefined, { cause });
    this.name = "OpenRunnerNetworkError";
    this.baseUrl = baseUrl;
    this.reason = reason;
  }
}

/** A short reason for a failed `fetch` (see {@link OpenRunnerNetworkError.reason}). */
export function describeFetchFailure(err: unknown): string {
  const e = err as { name?: string; message?: string; cause?: { code?: string; message?: string } } | undefined;
  if (e?.name === "TimeoutError") return "timed out";
  const code = e?.cause?.code;
  if (code === "ECONNREFUSED") return "connection refused";
  if (code === "ENOTFOUND" || code === "EAI_AGAIN") return "host not found";
  if (code) return code;
  return e?.cause?.message ?? e?.message ?? "network error";
}

/**
 * Reads an error answer `{error: {code, message, details?}}` into an
 * {@link OpenRunnerError}; a body that is not one keeps the status line
 * (code `http_<status>`).
 */
export async function readErrorResponse(res: Response): Promise<OpenRunnerError> {
  let code: OpenRunnerErrorCode = `http_${res.status}`;
  let message = res.statusText || "request failed";
  let details: unknown;
  try {
    const body = (await res.json()) as { error?: { code?: unknown; message?: unknown; details?: unknown } };
    if (typeof body.error?.code === "string") code = body.error.code as OpenRunnerErrorCode;
    if (typeof body.error?.message === "string") message = body.error.message;
    details = body.error?.details;
  } catch {
    // not JSON: keep the status line
  }
  return new OpenRunnerError(res.status, code, message, details);
}
