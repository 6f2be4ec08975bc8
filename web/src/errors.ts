/**
 * Reading the API's errors for people: an `OpenRunnerError`'s `code` and
 * message, and the `validation_failed` details (`[{path, message}]`, JSON
 * Pointers into the request body) keyed by field, so a form shows each
 * beside its input.
 */
import { OpenRunnerError } from "openrunner/client";

/** One problem of a field: the server's `code`, the pointer it named, its message. */
export interface FieldProblem {
  code: string;
  path: string;
  message: string;
}

/** A one-line description of any error (`code: message` for an API error). */
export function describeError(err: unknown): string {
  if (err instanceof OpenRunnerError) return `${err.code}: ${err.message}`;
  return err instanceof Error ? err.message : String(err);
}

/** True for the 401 that means the session is over. */
export function isUnauthorized(err: unknown): boolean {
  return err instanceof OpenRunnerError && err.status === 401;
}

/**
 * The problems of a `validation_failed` error by JSON Pointer (`/metadata/timeout_secs`);
 * other codes land on `byCode[code]`'s pointer when the form maps them to a field.
 * @param byCode codes without details that belong to one field, e.g. `{workspace_busy: "/metadata/cwd"}`
 */
export function fieldProblems(err: unknown, byCode: Record<string, string> = {}): Map<string, FieldProblem> {
  const out = new Map<string, FieldProblem>();
  if (!(err instanceof OpenRunnerError)) return out;
  if (Array.isArray(err.details)) {
    for (const d of err.details as Array<{ path?: unknown; message?: unknown }>) {
      if (typeof d?.path !== "string") continue;
      if (!out.has(d.path)) out.set(d.path, { code: err.code, path: d.path, message: typeof d.message === "string" ? d.message : "is invalid" });
    }
  }
  const mapped = byCode[err.code];
  if (mapped && !out.has(mapped)) out.set(mapped, { code: err.code, path: mapped, message: err.message });
  return out;
}
