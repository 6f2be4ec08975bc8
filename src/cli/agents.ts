/**
 * `openrunner agents`: which agents work on the server (GET /health/agents) as
 * a table: name, available, version, whether that version is the tested one
 * (`scripts/agents.lock.json`), and the path or the reason it is not.
 */
import type { AgentHealthView } from "../protocol/api.ts";
import { createApiClient } from "./client.ts";
import { printLine, type CliContext } from "./context.ts";
import { formatTable } from "./format.ts";

/**
 * Runs `agents`; returns the exit code.
 * @example openrunner agents
 */
export async function runAgents(ctx: CliContext, opts: { server?: string }): Promise<number> {
  const client = createApiClient(ctx, { server: opts.server });
  const agents = await client.api.agentsHealth();
  printLine(ctx, formatAgentsTable(agents));
  return 0;
}

/** The table `agents` prints. */
export function formatAgentsTable(agents: readonly AgentHealthView[]): string {
  const rows = agents.map((a) => [
    a.agent,
    a.available ? "yes" : "no",
    a.version ?? "-",
    a.tested === undefined ? "-" : a.tested ? "yes" : `no (tested ${a.tested_version})`,
    (a.available ? a.path : a.reason) ?? a.path ?? a.reason ?? "",
  ]);
  return formatTable(["AGENT", "AVAILABLE", "VERSION", "TESTED", "PATH / REASON"], rows);
}
