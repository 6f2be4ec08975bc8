/**
 * The closed set of application errors. Each carries an HTTP `status`, a stable
 * `code` and `expose` (whether `message` may be shown to the client). The API
 * maps them to `{error: {code, message, details?}}` with one function,
 * `mapError` (`src/errors-http.ts`, used by the API's error middleware and the
 * port proxy); nothing else translates errors to HTTP.
 */
export abstract class AppError extends Error {
  abstract readonly status: number;
  readonly code: string;
  readonly details?: unknown;
  get expose(): boolean {
    return this.status < 500;
  }
  constructor(code: string, message: string, details?: unknown, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
    this.details = details;
  }
}

/** 400: the request or a configuration value is malformed. Default code `validation_failed`. */
export class ValidationError extends AppError {
  readonly status = 400;
  constructor(message: string, details?: unknown, code = "validation_failed") {
    super(code, message, details);
  }
}

/** 401: always the same generic message; the cause goes to the log only. */
export class UnauthorizedError extends AppError {
  readonly status = 401;
  constructor(options?: { cause?: unknown }) {
    super("unauthorized", "authentication required", undefined, options);
  }
}

/** 403: authenticated, but the role does not allow it. */
export class ForbiddenError extends AppError {
  readonly status = 403;
  constructor(message = "forbidden") {
    super("forbidden", message);
  }
}

/** 404: absent, or owned by another user (never say which). */
export class NotFoundError extends AppError {
  readonly status = 404;
  constructor(what = "resource") {
    super("not_found", `${what} not found`);
  }
}

/** 409: the resource's state does not allow the operation. */
export class ConflictError extends AppError {
  readonly status = 409;
  constructor(message: string, code = "conflict") {
    super(code, message);
  }
}

/** 413: request body over the configured limit. */
export class PayloadTooLargeError extends AppError {
  readonly status = 413;
  constructor(limitBytes: number) {
    super("payload_too_large", `request body exceeds ${limitBytes} bytes`);
  }
}

/** 429: rate limited; `retryAfterS` in seconds. */
export class TooManyRequestsError extends AppError {
  readonly status = 429;
  constructor(readonly retryAfterS: number) {
    super("rate_limited", "too many requests, retry later");
  }
}

/** 503: the requested agent is not installed or not usable here. */
export class AgentUnavailableError extends AppError {
  readonly status = 503;
  override get expose(): boolean {
    return true;
  }
  constructor(agent: string, reason: string) {
    super("agent_unavailable", `agent ${agent} is unavailable: ${reason}`);
  }
}

/** 503: the server is shutting down and admits no new work. */
export class ShuttingDownError extends AppError {
  readonly status = 503;
  override get expose(): boolean {
    return true;
  }
  constructor() {
    super("shutting_down", "server is shutting down");
  }
}

/** The closed set of container error codes, with their HTTP status. */
export const CONTAINER_ERROR_STATUS = {
  /** The engine cannot be reached (socket missing, refused, reset). */
  engine_unavailable: 503,
  /** The configured image does not exist in the engine (no registry pull is attempted). */
  image_not_found: 503,
  /** The container (or exec) is gone. */
  container_not_found: 404,
  /** The container's state forbids the operation (not running, name in use, removal in progress). */
  container_conflict: 409,
  /** The engine refused to start a process inside the container. */
  exec_failed: 500,
  /** The kernel killed a process of the container for exceeding its memory limit. */
  oom_killed: 500,
  /** The image build reported an error. */
  image_build_failed: 500,
  /** Any other engine error. */
  container_failed: 500,
} as const;

export type ContainerErrorCode = keyof typeof CONTAINER_ERROR_STATUS;

/**
 * An error of the container layer (src/container), with a stable `code` from
 * {@link CONTAINER_ERROR_STATUS}: a run that fails in Docker ends with
 * `run.failed` and that code; an API route answers with the matching status.
 * @example
 * throw new ContainerError("image_not_found", "image openrunner-agent:latest not found; run `openrunner image build --offline`");
 */
export class ContainerError extends AppError {
  readonly status: number;
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
