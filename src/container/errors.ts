/**
 * Errors of the container layer. {@link ContainerError} is an {@link AppError}
 * with a stable `code` from a closed set, so a run that fails in Docker ends
 * with `run.failed` and a specific `error.code`, and an API route answers with
 * the matching status. {@link toContainerError} maps what dockerode and
 * docker-modem throw (HTTP status errors with `statusCode`/`json`, socket
 * errors with `code`) onto that set, once, at the client boundary.
 *
 * Proposed for `src/errors.ts` (the closed set): move `ContainerError` there
 * unchanged; this module would then re-export it.
 */
import { AppError } from "../errors.ts";

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
 * An error of the container layer.
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

/** Socket-level error codes meaning "no engine there". */
const UNREACHABLE = new Set(["ECONNREFUSED", "ENOENT", "EACCES", "ECONNRESET", "EPIPE", "ETIMEDOUT", "EHOSTUNREACH", "ENOTFOUND", "ENETUNREACH", "EAI_AGAIN"]);

/** What the failing call was about, for the message. */
export interface ErrorContext {
  /** Operation, e.g. `"create"`, `"exec"`, `"stop"`. */
  op: string;
  image?: string;
  containerId?: string;
  /** Where the engine was expected, e.g. `unix:///var/run/docker.sock`. */
  engine?: string;
}

/** The engine's own message from a docker-modem error (`json.message`), else the error's message. */
export function engineMessage(err: unknown): string {
  const json = (err as { json?: unknown } | null)?.json;
  if (json && typeof json === "object" && typeof (json as { message?: unknown }).message === "string") return (json as { message: string }).message;
  if (typeof json === "string" && json.trim()) return json.trim();
  return err instanceof Error ? err.message.trim() : String(err);
}

/**
 * Maps anything thrown by dockerode to a {@link ContainerError}; a ContainerError passes through.
 * @example
 * try { await docker.createContainer(opts) } catch (err) { throw toContainerError(err, { op: "create", image }) }
 */
export function toContainerError(err: unknown, ctx: ErrorContext): ContainerError {
  if (err instanceof ContainerError) return err;
  const e = err as { statusCode?: unknown; code?: unknown } | null;
  const status = typeof e?.statusCode === "number" ? e.statusCode : undefined;
  const sysCode = typeof e?.code === "string" ? e.code : undefined;
  const msg = engineMessage(err);
  const subject = ctx.containerId ? `container ${ctx.containerId.slice(0, 12)}` : ctx.image ? `image ${ctx.image}` : "docker";
  if (status === undefined && sysCode && UNREACHABLE.has(sysCode)) {
    return new ContainerError("engine_unavailable", `docker engine unreachable${ctx.engine ? ` at ${ctx.engine}` : ""} (${sysCode}) during ${ctx.op}`, { cause: err });
  }
  if (status === 404) {
    if (/no such image|pull access denied|repository does not exist/i.test(msg) || (ctx.op === "create" && /image/i.test(msg))) {
      return new ContainerError("image_not_found", `image ${ctx.image ?? "(unknown)"} not found in the docker engine; build it with \`openrunner image build\``, { cause: err });
    }
    return new ContainerError("container_not_found", `${subject} not found (${ctx.op}): ${msg}`, { cause: err });
  }
  if (status === 409) return new ContainerError("container_conflict", `${subject}: ${ctx.op} not possible now: ${msg}`, { cause: err });
  if (ctx.op === "exec" && /OCI runtime|exec failed|executable file not found/i.test(msg)) {
    return new ContainerError("exec_failed", `could not start a process in ${subject}: ${msg}`, { cause: err });
  }
  return new ContainerError("container_failed", `docker ${ctx.op} failed for ${subject}${status ? ` (HTTP ${status})` : ""}: ${msg}`, { cause: err });
}
