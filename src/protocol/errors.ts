/**
 * The error contract (docs/architecture.md#errors): the closed table of API
 * error codes with the HTTP status each one answers, and the typed run failure.
 *
 * - {@link API_ERROR_CODES}: every `error.code` an HTTP error body
 *   (`{error: {code, message, details?}}`) can carry. The application errors
 *   of `src/errors.ts` accept only codes of their own status
 *   (`ValidationError` a 400 code, `ConflictError` a 409 code, …), the OpenAPI
 *   `ErrorResponse` schema lists them as an enum, and
 *   `test/unit/error-codes.test.ts` checks that every code maps to its status
 *   through `mapError` and that every code the source uses is in the table.
 * - {@link RunFailure}: the error an agent actor throws to end a run with
 *   `run.failed` and a code from `RUN_FAILURE_CODES`; `failureCode()` reads it.
 *
 * Part of the contract layer: imports nothing of the project but `./events.ts`
 * (types only, so there is no import cycle at run time).
 */
import type { RunFailureCode } from "./events.ts";

/** The closed set of container error codes, with their HTTP status (also run failure codes). */
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

/** One of {@link CONTAINER_ERROR_STATUS}. */
export type ContainerErrorCode = keyof typeof CONTAINER_ERROR_STATUS;

/**
 * The closed table of API error codes -> HTTP status. A code answers exactly
 * this status wherever it is thrown (one exception: an http-errors status that
 * has no code of its own answers `bad_request` with that status, see
 * `src/errors-http.ts`). Add a code here before throwing it; the error classes
 * of `src/errors.ts` do not compile with a code that is missing or of another
 * status.
 */
export const API_ERROR_CODES = {
  // 400: the request is malformed or names something it may not.
  /** The body, query or parameters fail their schema (the default of `ValidationError`). */
  validation_failed: 400,
  /** An exposed http-errors 400 without a more specific code. */
  bad_request: 400,
  /** The body is not JSON, or JSON that is neither an object nor an array. */
  invalid_json: 400,
  /** A list cursor this server did not give out. */
  invalid_cursor: 400,
  /** `Last-Event-ID` / `after` is not a non-negative integer. */
  invalid_last_event_id: 400,
  /** An artifact path that is absolute or has empty, `.` or `..` segments. */
  invalid_path: 400,
  /** A malformed proxy path (port syntax, dot segments, absolute-form request line). */
  invalid_proxy_path: 400,
  /** `metadata.agent_type` names no registered agent. */
  unknown_agent: 400,
  /** `metadata.acp_agent` names no configured ACP agent. */
  unknown_acp_agent: 400,
  /** An `acp` run without `metadata.acp_agent`. */
  acp_agent_required: 400,
  /** An `openrunner` run whose `metadata.model` (else `native.model`) names no configured provider (`providers.<name>`). */
  unknown_provider: 400,
  /** An `openrunner` run without a model (no `metadata.model`, no `native.model`), or one that is not `<provider>/<model>`. */
  invalid_model: 400,
  /** A permission decision whose `option_id` is not one of the request's options. */
  unknown_option: 400,
  /** `metadata.resume` names a run of another agent. */
  resume_agent_mismatch: 400,
  /** `metadata.resume` names a run without an agent session. */
  resume_no_session: 400,
  /** The agent cannot resume a session. */
  resume_unsupported: 400,
  /** Both `metadata.resume` and `metadata.resume_session`. */
  resume_conflict: 400,
  /** `/api/sessions` or `metadata.resume_session` for an agent whose stored sessions cannot be read (see `SESSION_AGENTS`). */
  sessions_unsupported: 400,
  /** A `task` run without docker isolation. */
  task_needs_docker: 400,
  /** A `task` run's `metadata.image` is not in `docker.task_images`. */
  image_not_allowed: 400,
  /** `metadata.isolation: "docker"` on a server without docker. */
  isolation_unavailable: 400,
  /** A container limit over the configured maximum. */
  limit_exceeded: 400,
  /** `metadata.cwd` is not a directory inside the workspaces root. */
  cwd_outside_workspace: 400,
  /** A request the distributed mode cannot serve (a project run: its container lives on one machine). */
  cluster_unsupported: 400,
  /** `metadata.cwd` names (or goes through) a file. */
  cwd_not_directory: 400,
  /** `metadata.cwd` inside `projects/` on a run that is not a project run. */
  cwd_in_projects: 400,
  /** A project run's cwd outside its project. */
  cwd_outside_project: 400,
  /** A project's directory is not a plain directory. */
  project_dir_invalid: 400,
  /** A webhook URL that is not an absolute http(s) URL with a host and without credentials. */
  webhook_url_invalid: 400,
  /** A webhook host outside `webhooks.allowed_hosts`, or resolving to a forbidden address. */
  webhook_target_not_allowed: 400,
  /** A webhook host that does not resolve. */
  webhook_target_unresolvable: 400,
  /** `POST /api/runs/batch` with more runs than `batch_max_runs`. */
  batch_too_large: 400,
  /** `metadata.mcp_servers`: a stdio server's command is not in `mcp.allowed_commands`, or its `env` names a refused variable. */
  mcp_command_not_allowed: 400,
  /** `metadata.mcp_servers`: an HTTP server's URL names a host not in `mcp.allowed_hosts`. */
  mcp_url_not_allowed: 400,
  /** `PATCH /api/config` names a setting that cannot change without a restart (`details.key`). */
  config_not_live: 400,
  // 401, 403, 404
  /** Authentication required or failed (always the same message). */
  unauthorized: 401,
  /** Authenticated, but the role does not allow it. */
  forbidden: 403,
  /** A proxy port outside `proxy.allowed_ports`. */
  port_not_allowed: 403,
  /** Absent, or owned by another user. */
  not_found: 404,
  // Other http-errors statuses (router, body parser).
  method_not_allowed: 405,
  not_acceptable: 406,
  request_timeout: 408,
  length_required: 411,
  // 409: the resource's state does not allow the operation.
  /** The default of `ConflictError`. */
  conflict: 409,
  /** A live run uses the same working directory or agent session. */
  workspace_busy: 409,
  /** `metadata.resume` names a run that is still live. */
  run_active: 409,
  /** The permission request was already decided. */
  permission_already_decided: 409,
  /** The username is taken. */
  username_taken: 409,
  /** An administrator deleting their own account. */
  cannot_delete_self: 409,
  /** The user has the maximum number of webhooks. */
  webhook_limit_reached: 409,
  /** The project container is at its run limit, or in use. */
  project_busy: 409,
  /** The user has `docker.max_projects_per_user` project containers. */
  project_limit: 409,
  /** The running project container was made with other limits. */
  project_limits_mismatch: 409,
  /** The running project container runs another image. */
  project_image_mismatch: 409,
  /** A docker run's container cannot be reached by the port proxy (no network, not running, or no docker here). */
  proxy_unavailable: 409,
  /** `/api/runs/:id/desktop…` of a run without a desktop (not `metadata.desktop`, or its container is gone). */
  desktop_unavailable: 409,
  /** `PATCH /api/config?persist=true` on a server that was started without a configuration file. */
  config_not_persistable: 409,
  /** The request body is over `body_limit_bytes`. */
  payload_too_large: 413,
  /** A request body that is not JSON, or an unsupported Content-Encoding. */
  unsupported_media_type: 415,
  /** Too many attempts; `Retry-After` says when to try again. */
  rate_limited: 429,
  // 5xx
  /** Anything unexpected (the message is generic; the cause goes to the log). */
  internal: 500,
  /** The port proxy could not reach its target. */
  upstream_unavailable: 502,
  /** The requested agent is not installed or not usable here. */
  agent_unavailable: 503,
  /** The server is shutting down and admits no new work. */
  shutting_down: 503,
  /** Distributed mode: the worker holding the run did not act on a command in time (it may be lost: its runs end `worker_lost`). */
  worker_unreachable: 503,
  /** The port proxy is shutting down. */
  proxy_closed: 503,
  /** The dashboard is not built on this machine (`web/dist` missing): run `npm run build:web`. */
  web_not_built: 503,
  /** The port proxy's target did not answer in time. */
  upstream_timeout: 504,
  ...CONTAINER_ERROR_STATUS,
} as const;

/** One of {@link API_ERROR_CODES}, e.g. `"workspace_busy"`. */
export type ApiErrorCode = keyof typeof API_ERROR_CODES;

/** An HTTP status that some {@link ApiErrorCode} answers. */
export type ApiErrorStatus = (typeof API_ERROR_CODES)[ApiErrorCode];

/**
 * The codes of {@link API_ERROR_CODES} that answer status `S`.
 * @example const c: ApiErrorCodeOf<409> = "workspace_busy"; // "unknown_agent" does not compile
 */
export type ApiErrorCodeOf<S extends ApiErrorStatus> = { [K in ApiErrorCode]: (typeof API_ERROR_CODES)[K] extends S ? K : never }[ApiErrorCode];

/** Every {@link ApiErrorCode}, in table order (the OpenAPI `ErrorResponse` enum). */
export const API_ERROR_CODE_LIST = Object.keys(API_ERROR_CODES) as ApiErrorCode[];

/** True when `code` is in {@link API_ERROR_CODES}. */
export function isApiErrorCode(code: unknown): code is ApiErrorCode {
  return typeof code === "string" && Object.hasOwn(API_ERROR_CODES, code);
}

/**
 * A run failure: thrown by an agent actor (or what it calls) to end the run with
 * `run.failed` and `code`, one of `RUN_FAILURE_CODES`. The actor catches it and
 * reports `{kind: "failed", code, message}`; `failureCode()` reads `code`.
 * Not an HTTP error: it never reaches `mapError`.
 * @example throw new RunFailure("spawn_failed", `could not start ${file}: ENOENT`);
 */
export class RunFailure extends Error {
  /** The `run.failed` error code. */
  readonly code: RunFailureCode;
  /**
   * @param code the `run.failed` error code.
   * @param message shown in `run.failed.data.error.message`.
   * @param options.cause the underlying error, for the log.
   */
  constructor(code: RunFailureCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "RunFailure";
    this.code = code;
  }
}
