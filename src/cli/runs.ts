/**
 * `openrunner runs [--status S] [--agent A] [--limit N] [--all]`: lists runs
 * (your own; an admin sees everyone's) as a table, newest first. `--all`
 * follows `next_cursor` through every page.
 */
import type { RunStatus } from "../protocol/events.ts";
import type { RunView } from "../protocol/requests.ts";
import { createApiClient } from "./client.ts";
import { printLine, type CliContext } from "./context.ts";
import { formatDuration, formatTable, formatTimestamp, truncateLine } from "./format.ts";

/** Flags of `runs`. */
export interface RunsOptions {
  server?: string;
  status?: string;
  agent?: string;
  limit?: number;
  all?: boolean;
}

/** A run as listed by the API. */
export type RunSummary = RunView;

/**
 * Runs `runs`; returns the exit code.
 * @example openrunner runs --status failed --limit 5
 */
export async function runRunsList(ctx: CliContext, opts: RunsOptions): Promise<number> {
  const client = createApiClient(ctx, { server: opts.server });
  const runs: RunSummary[] = [];
  let cursor: string | undefined;
  do {
    const page = await client.api.listRuns({
      ...(opts.status !== undefined ? { status: opts.status as RunStatus } : {}),
      ...(opts.agent !== undefined ? { agent_type: opts.agent } : {}),
      ...(opts.limit !== undefined ? { limit: opts.limit } : {}),
      ...(cursor !== undefined ? { cursor } : {}),
    });
    runs.push(...(page.runs ?? []));
    cursor = page.next_cursor ?? undefined;
  } while (opts.all && cursor);

  if (runs.length === 0) {
    printLine(ctx, "no runs");
    return 0;
  }
  printLine(ctx, formatRunsTable(runs));
  if (!opts.all && cursor) printLine(ctx, "(more runs: use --all or a larger --limit)");
  return 0;
}

/** The table of runs `runs` prints: id, agent, status, created, duration, input. */
export function formatRunsTable(runs: readonly RunSummary[]): string {
  const rows = runs.map((r) => [
    r.id,
    r.agent,
    r.status,
    formatTimestamp(r.created_at),
    durationOf(r),
    truncateLine(r.input?.text ?? "", 40),
  ]);
  return formatTable(["ID", "AGENT", "STATUS", "CREATED", "DURATION", "INPUT"], rows);
}

function durationOf(r: RunSummary): string {
  if (!r.started_at) return "-";
  const end = r.ended_at ? Date.parse(r.ended_at) : Date.now();
  const ms = end - Date.parse(r.started_at);
  return Number.isFinite(ms) ? formatDuration(ms) + (r.ended_at ? "" : "…") : "-";
}
