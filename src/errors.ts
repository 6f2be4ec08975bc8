/**
 * The closed set of application errors (docs/architecture.md#errors). Each
 * carries an HTTP `status`, a stable `code` from the closed table
 * {@link API_ERROR_CODES} (`src/protocol/errors.ts`) and `expose` (whether
 * `message` may be shown to the client). A class accepts only codes of its own
 * status (`ValidationError` a 400 code, `ConflictError` a 409 code), so a code
 * missing from the table, or of another status, does not compile. The API maps
 * them to `{error: {code, message, details?}}` with one function, `mapError`
 * (`src/errors-http.ts`, used by the API's error middleware and the port
 * proxy); nothing else translates errors to HTTP.
 *
 * Run failures are not HTTP errors: {@link RunFailure} (re-exported from
 * `src/protocol/errors.ts`) carries a `run.failed` code.
 */
import { API_ERROR_CODES, CONTAINER_ERROR_STATUS, type ApiErrorCode, type ApiErrorCodeOf, type ContainerErrorCode } from "./protocol/errors.ts";

export { API_ERROR_CODES, CONTAINER_ERROR_STATUS, RunFailure, type ApiErrorCode, type ApiErrorCodeOf, type ContainerErrorCode } from "./protocol/errors.ts";

/** The base of every application error; see the module comment. */
export abstract class AppError extends Error {
  abstract readonly status: number;
  /** The stable machine-readable code of the response body, from {@link API_ERROR_CODES}. */
  readonly code: ApiErrorCode;
  readonly details?: unknown;
  get expose(): boolean {
    return this.status < 500;
  }
  /**
   * @param code a code of {@link API_ERROR_CODES} whose status is the subclass's `status`.
   * @param message the response's message (shown only when `expose`).
   * @param details extra structured detail for the body (only when `expose`).
   */
  constructor(code: ApiErrorCode, message: string, details?: unknown, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
    this.details = details;
  }
}

/**
 * 400: the request or a configuration value is malformed.
 * @param code any 400 code of {@link API_ERROR_CODES}; default `validation_failed`.
 */
export class ValidationError extends AppError {
  readonly status = 400;
  constructor(message: string, details?: unknown, code: ApiErrorCodeOf<400> = "validation_failed") {
    super(code, message, details);
  }
}

/** 401: always the same generic message; the cause goes to the log only. */
export class UnauthorizedError extends AppError {
  readonly status = API_ERROR_CODES.unauthorized;
  constructor(options?: { cause?: unknown }) {
    super("unauthorized", "authentication required", undefined, options);
  }
}

/** 403: authenticated, but the role does not allow it. */
export class ForbiddenError extends AppError {
  readonly status = API_ERROR_CODES.forbidden;
  constructor(message = "forbidden") {
    super("forbidden", message);
  }
}

/** 404: absent, or owned by another user (never say which). */
export class NotFoundError extends AppError {
  readonly status = API_ERROR_CODES.not_found;
  constructor(what = "resource") {
    super("not_found", `${what} not found`);
  }
}

/**
 * 409: the resource's state does not allow the operation.
 * @param code any 409 code of {@link API_ERROR_CODES}; default `conflict`.
 */
export class ConflictError extends AppError {
  readonly status = 409;
  constructor(message: string, code: ApiErrorCodeOf<409> = "conflict") {
    super(code, message);
  }
}

/** 413: request body over the configured limit. */
export class PayloadTooLargeError extends AppError {
  readonly status = API_ERROR_CODES.payload_too_large;
  constructor(limitBytes: number) {
    super("payload_too_large", `request body exceeds ${limitBytes} bytes`);
  }
}

/** 429: rate limited; `retryAfterS` in seconds. */
export class TooManyRequestsError extends AppError {
  readonly status = API_ERROR_CODES.rate_limited;
  constructor(readonly retryAfterS: number) {
    super("rate_limited", "too many requests, retry later");
  }
}

/** 503: the requested agent is not installed or not usable here. */
export class AgentUnavailableError extends AppError {
  readonly status = API_ERROR_CODES.agent_unavailable;
  override get expose(): boolean {
    return true;
  }
  constructor(agent: string, reason: string) {
    super("agent_unavailable", `agent ${agent} is unavailable: ${reason}`);
  }
}

/** 503: the server is shutting down and admits no new work. */
export class ShuttingDownError extends AppError {
  readonly status = API_ERROR_CODES.shutting_down;
  override get expose(): boolean {
    return true;
  }
  constructor() {
    super("shutting_down", "server is shutting down");
  }
}

/** 503: distributed mode: the worker holding a run did not act on a command in time. */
export class WorkerUnreachableError extends AppError {
  readonly status = API_ERROR_CODES.worker_unreachable;
  override get expose(): boolean {
    return true;
  }
  constructor(what: string) {
    super("worker_unreachable", `the run's worker did not ${what} in time; it may be lost (its runs then end worker_lost)`);
  }
}

/**
 * One item of a batch request (`POST /api/runs/batch`) was refused: answers the item's own error (its status,
 * code and `Retry-After`) with `details: {index, details?}` naming the item (0-based) and carrying its details.
 * @example throw new BatchItemError(3, new ConflictError("…", "workspace_busy")) // 409 workspace_busy, details {index: 3}
 */
export class BatchItemError extends AppError {
  readonly status: number;
  /** Seconds, when the item's error was a {@link TooManyRequestsError}. */
  readonly retryAfterS: number | undefined;
  override get expose(): boolean {
    return this.inner.expose;
  }
  /**
   * @param index the failing item's index in the request's `runs`
   * @param inner the item's error
   */
  constructor(
    readonly index: number,
    readonly inner: AppError,
  ) {
    super(inner.code, `runs[${index}]: ${inner.message}`, { index, ...(inner.details !== undefined ? { details: inner.details } : {}) }, { cause: inner });
    this.status = inner.status;
    this.retryAfterS = inner instanceof TooManyRequestsError ? inner.retryAfterS : undefined;
  }
}

/**
 * An error of the container layer (src/container), with a stable `code` from
 * {@link CONTAINER_ERROR_STATUS}: a run that fails in Docker ends with
 * `run.failed` and that code; an API route answers with the matching status.
 * @example
 * throw new ContainerError("image_not_found", "image openrunner-agent:latest not found; run `openrunner image build --offline`");
 */
export class ContainerError extends AppError {
  readonly status: (typeof CONTAINER_ERROR_STATUS)[ContainerErrorCode];
  override readonly code: ContainerErrorCode;
  /** 503s name the fault (engine down, image missing) so the operator can fix it; 5xx engine errors stay in the log. */
  override get expose(): boolean {
    return this.status < 500 || this.status === 503;
  }
  constructor(code: ContainerErrorCode, message: string, options?: { cause?: unknown; details?: unknown }) {
    super(code, message, options?.details, options?.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.status = CONTAINER_ERROR_STATUS[code];
  }
}

/** Thrown at boot for an invalid setting: names the setting, the expected form and the value. */
export class ConfigError extends Error {
  constructor(
    readonly setting: string,
    readonly expected: string,
    readonly value: unknown,
  ) {
    super(`invalid configuration: ${setting} must be ${expected}, got ${JSON.stringify(value)}`);
    this.name = "ConfigError";
  }
}
