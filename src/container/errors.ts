/**
 * Errors of the container layer. {@link ContainerError} is an {@link AppError}
 * with a stable `code` from a closed set, so a run that fails in Docker ends
 * with `run.failed` and a specific `error.code`, and an API route answers with
 * the matching status. {@link toContainerError} maps what dockerode and
 * docker-modem throw (HTTP status errors with `statusCode`/`json`, socket
 * errors with `code`) onto that set, once, at the client boundary.
 *
 * `ContainerError` itself lives in `src/errors.ts` (the closed set); it is
 * re-exported here.
 */
import { ContainerError } from "../errors.ts";

export { CONTAINER_ERROR_STATUS, ContainerError, type ContainerErrorCode } from "../errors.ts";

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
