/**
 * `openrunner permissions RUN [--json]`: lists a run's open permission requests
 * (GET /api/runs/:id/permissions), one block per request with its options.
 * `openrunner answer RUN REQUEST OPTION`: answers one
 * (POST /api/runs/:id/permissions/:request_id `{option_id}`); a request already
 * decided is the server's 409 `permission_already_decided`, an unknown option its
 * 400 `unknown_option` (exit 1, one line).
 */
import { createApiClient } from "./client.ts";
import { printLine, type CliContext } from "./context.ts";

/**
 * Runs `permissions`; returns the exit code (0, also when nothing is open).
 * @example openrunner permissions run_01J…
 */
export async function runPermissions(ctx: CliContext, opts: { server?: string; runId: string; json?: boolean }): Promise<number> {
  const client = createApiClient(ctx, { server: opts.server });
  const permissions = await client.api.listPermissions(opts.runId);
  if (opts.json) {
    for (const p of permissions) printLine(ctx, JSON.stringify(p));
    return 0;
  }
  if (permissions.length === 0) {
    printLine(ctx, `no open permission requests for ${opts.runId}`);
    return 0;
  }
  for (const p of permissions) {
    printLine(ctx, `${p.request_id}  ${p.name}  (deadline ${p.deadline})`);
    for (const o of p.options) printLine(ctx, `  ${o.option_id}  ${o.name} [${o.kind}]`);
  }
  return 0;
}

/**
 * Runs `answer`; returns the exit code.
 * @example openrunner answer run_01J… perm_3f… allow
 */
export async function runAnswer(ctx: CliContext, opts: { server?: string; runId: string; requestId: string; optionId: string }): Promise<number> {
  const client = createApiClient(ctx, { server: opts.server });
  const res = await client.api.answerPermission(opts.runId, opts.requestId, opts.optionId);
  printLine(ctx, `${opts.requestId}: ${res.decision} (by ${res.by})`);
  return 0;
}
