/**
 * A failed model request as a run outcome: the SDKs' errors (`APIError` with `status`, after
 * their own retries; `APIConnectionError`; the Responses stream's `response.failed`) become
 * `auth_failed` (401, 403) or `model_error` (429, 5xx, other 4xx, connection), with the
 * status, the provider and the SDK's message (which never holds the key).
 */
import { RunFailure } from "../../protocol/errors.ts";
import type { AgentOutcome } from "../types.ts";

/** The outcome of an error thrown by a model request of `provider` (`retries`: the SDK's setting, for the message). */
export function outcomeOfModelError(err: unknown, provider: string, retries: number): AgentOutcome {
  if (err instanceof RunFailure) return { kind: "failed", code: err.code, message: err.message };
  const e = err as { status?: unknown; message?: unknown; name?: unknown };
  const status = typeof e.status === "number" ? e.status : undefined;
  const message = String(e.message ?? err).slice(0, 1000);
  if (status === 401 || status === 403) return { kind: "failed", code: "auth_failed", message: `provider ${provider} refused the key (HTTP ${status}): ${message}` };
  if (status !== undefined) {
    const retried = status === 429 || status >= 500 || status === 408 || status === 409 ? ` after ${retries} ${retries === 1 ? "retry" : "retries"}` : "";
    return { kind: "failed", code: "model_error", message: `provider ${provider} answered HTTP ${status}${retried}: ${message}` };
  }
  return { kind: "failed", code: "model_error", message: `provider ${provider}: ${message}` };
}
