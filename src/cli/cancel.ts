/**
 * `openrunner cancel RUN`: asks the server to cancel a run
 * (POST /api/runs/:id/cancel, 202, idempotent). The run ends with
 * `run.cancelled` unless it had already ended.
 */
import { createApiClient } from "./client.ts";
import { printLine, type CliContext } from "./context.ts";

/**
 * Runs `cancel`; returns the exit code.
 * @example openrunner cancel run_01J…
 */
export async function runCancel(ctx: CliContext, opts: { server?: string; runId: string }): Promise<number> {
  const client = createApiClient(ctx, { server: opts.server });
  await client.api.cancelRun(opts.runId);
  printLine(ctx, `cancel requested for ${opts.runId}`);
  return 0;
}
