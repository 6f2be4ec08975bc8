/**
 * `openrunner run --agent A [--cwd DIR] [--timeout SECS] [--model M] [--resume RUN] [--acp-agent NAME]
 * [--isolation none|docker] [--project ID] [--permission-policy allow|deny|ask] [--json] "text"`:
 * creates a run (POST /api/runs) and streams its events until the terminal
 * one. Exit code 0 when the run completed, 1 otherwise.
 */
import type { CreateRunBody } from "../protocol/requests.ts";
import { createApiClient } from "./client.ts";
import { shouldUseColor, type CliContext } from "./context.ts";
import { createEventOutput } from "./event-output.ts";
import { createPaint } from "./format.ts";
import { describeReconnect, followRunEvents } from "./sse.ts";

/** Flags and argument of `run`. */
export interface RunCommandOptions {
  server?: string;
  agent: string;
  text: string;
  cwd?: string;
  timeout?: number;
  model?: string;
  resume?: string;
  /** `metadata.acp_agent`. */
  acpAgent?: string;
  /** `metadata.isolation`. */
  isolation?: "none" | "docker";
  /** `metadata.project_id`. */
  project?: string;
  /** `metadata.permission_policy`. */
  permissionPolicy?: "allow" | "deny" | "ask";
  json?: boolean;
}

/**
 * Runs `run`; returns the exit code (0 only on `run.completed`).
 * @example openrunner run --agent shell "echo hello"
 */
export async function runRunCommand(ctx: CliContext, opts: RunCommandOptions): Promise<number> {
  const client = createApiClient(ctx, { server: opts.server });
  const metadata: CreateRunBody["metadata"] = { agent_type: opts.agent };
  if (opts.cwd !== undefined) metadata.cwd = opts.cwd;
  if (opts.timeout !== undefined) metadata.timeout_secs = opts.timeout;
  if (opts.model !== undefined) metadata.model = opts.model;
  if (opts.resume !== undefined) metadata.resume = opts.resume;
  if (opts.acpAgent !== undefined) metadata.acp_agent = opts.acpAgent;
  if (opts.isolation !== undefined) metadata.isolation = opts.isolation;
  if (opts.project !== undefined) metadata.project_id = opts.project;
  if (opts.permissionPolicy !== undefined) metadata.permission_policy = opts.permissionPolicy;

  const created = await client.api.createRun({ input: { text: opts.text }, metadata });
  const json = opts.json === true;
  if (!json) {
    const paint = createPaint(shouldUseColor(ctx));
    ctx.stdout.write(`${paint("bold", created.run_id)}${paint("dim", ` · ${opts.agent} · ${created.status}`)}\n`);
  }

  const out = createEventOutput(ctx, { json, spinner: true });
  try {
    const last = await followRunEvents(client, created.run_id, {
      onEvent: (ev) => out.print(ev),
      onReconnect: (after, why, attempt) => {
        if (attempt === 1) out.note(describeReconnect(why, after));
      },
    });
    return last.type === "run.completed" ? 0 : 1;
  } finally {
    out.finish();
  }
}
