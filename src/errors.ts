/**
 * The closed set of application errors. Each carries an HTTP `status`, a stable
 * `code` and `expose` (whether `message` may be shown to the client). The API
 * maps them to `{error: {code, message, details?}}` in one middleware
 * (`src/api/error-middleware.ts`); nothing else translates errors to HTTP.
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
