/**
 * What the run manager launches ({@link Launch}: the plan and what `create()`
 * resolved for it) and the two pure-ish steps built from it: the context the
 * agent adapter sees ({@link agentRunContext}) and the machine's `prepare`
 * step ({@link prepareRun}: the run's home, then its container).
 */
import type { AgentAdapter, AgentRunContext } from "../agent/types.ts";
import type { Config } from "../config/schema.ts";
import { acquireRunContainer } from "../container/acquire.ts";
import type { WarmPool } from "../container/pool.ts";
import type { ProjectSlot } from "../container/project-slots.ts";
import type { ProjectContainers } from "../container/projects.ts";
import type { ContainerRunEvent } from "../container/run-container.ts";
import type { ContainerClient } from "../container/types.ts";
import type { Log } from "../log.ts";
import type { CreateRunBody } from "../protocol/requests.ts";
import { formatTraceparent, parseTraceparent, runSpanContext } from "../protocol/trace-context.ts";
import type { PrepareOutput } from "./machine.ts";
import type { AgentPlan, ContainerPlan, RunPlan } from "./plan.ts";
import { ensureHome } from "./workspace.ts";

/** What the run manager launches: the plan and what `create()` resolved for it. */
export interface Launch {
  plan: RunPlan;
  agent: AgentPlan;
  container: ContainerPlan | null;
  /** The resolved working directory (absolute). */
  cwd: string;
  body: CreateRunBody;
  adapter: AgentAdapter;
  /** The adapter bound to the run (ACP: to its agent). */
  runAdapter: AgentAdapter;
  /** The project's turn, claimed (project runs). */
  slot?: ProjectSlot;
}

/**
 * The context the run's adapter builds its command (or its own actor) from.
 * @param env.homesRoot the absolute folder of the runs' isolated homes
 * @param env.serverEnv the server's environment, handed to adapters read-only
 */
export function agentRunContext(l: Launch, env: { homesRoot: string; serverEnv: Readonly<Record<string, string | undefined>> }): AgentRunContext {
  const { plan, body, cwd } = l;
  const md = plan.metadata;
  return {
    run_id: plan.runId,
    text: body.input.text,
    cwd,
    home: `${env.homesRoot}/${plan.homeKey}`,
    ...(md.model ? { model: md.model } : {}),
    ...(md.extra_args ? { extra_args: md.extra_args } : {}),
    ...(md.mcp_servers ? { mcp_servers: md.mcp_servers } : {}),
    ...(plan.resumed?.session_id ? { resume_session_id: md.resume_session ?? plan.resumed.session_id } : {}),
    server_env: env.serverEnv,
    ...(plan.limits ? { in_container: true } : {}),
    ...(l.agent.task ? { task: l.agent.task } : {}),
    ...(md.plan ? { plan: true } : {}),
    ...(md.traceparent ? { traceparent: traceparentOfRun(plan.runId, md.traceparent) } : {}),
  };
}

/** The `traceparent` of a run's own span (child of the caller's), for the agent's `TRACEPARENT`; the caller's as it is when the run id is not a ULID. */
function traceparentOfRun(runId: string, parent: string): string {
  const own = runSpanContext(runId, parseTraceparent(parent));
  return own ? formatTraceparent(own) : parent;
}

/** What {@link prepareRun} needs besides the launch. */
export interface PrepareDeps {
  /** The absolute folder of the runs' isolated homes. */
  homesRoot: string;
  /** The container engine, pool and project containers; required for a launch with a container plan. */
  docker: { client: () => ContainerClient; instance: string; pool?: WarmPool; projects?: ProjectContainers } | undefined;
  config: { docker?: Pick<Config["docker"], "user" | "network"> };
  log: Log;
}

/**
 * The `prepare` step of a run's machine: its isolated home, then its container (docker runs), acquired in one call.
 * @throws ContainerError (engine, image, create/start failures), or the signal's reason when aborted
 */
export async function prepareRun(l: Launch, deps: PrepareDeps, emit: (e: ContainerRunEvent) => void, signal: AbortSignal): Promise<PrepareOutput> {
  const home = { dir: await ensureHome(deps.homesRoot, l.plan.homeKey), root: deps.homesRoot };
  if (!l.container) return {};
  const docker = deps.docker!;
  const dockerConfig = deps.config.docker!;
  const { project, ...need } = l.container;
  const container = await acquireRunContainer(
    {
      ...need,
      runId: l.plan.runId,
      userId: l.plan.userId,
      workspace: l.cwd,
      home,
      emit,
      signal,
      ...(project ? { project: { ...project, slot: l.slot! } } : {}),
    },
    {
      client: docker.client,
      instance: docker.instance,
      user: dockerConfig.user,
      ...(dockerConfig.network ? { network: dockerConfig.network } : {}),
      ...(docker.pool ? { pool: docker.pool } : {}),
      ...(docker.projects ? { projects: docker.projects } : {}),
      log: deps.log,
    },
  );
  return { container };
}
