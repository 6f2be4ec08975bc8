/**
 * The plan of a new run (docs/architecture.md#prompt-path): everything
 * `RunManager.create` decides about a run before launching it, as pure
 * functions of the request, the caller, the configuration and a snapshot of
 * the manager's live state. No I/O, no mutation; a refusal is thrown as the
 * application error the API answers with.
 *
 * Three steps, because the agent lookup and the engine between them are I/O
 * and the order of the refusals is part of the behaviour (the first that
 * applies is the one answered):
 *
 * 1. {@link planRun}: admission (shutting down, user being deleted, queue cap),
 *    the resumed run, placement inherited from it, `extra_args`, timeout,
 *    isolation and container limits, project, agent home, where the working
 *    directory comes from, and the permission settings.
 * 2. {@link planAgent}, once the registry has the agent: the task request and
 *    the host-shell rule.
 * 3. {@link planContainer}, once an ACP adapter is bound to its agent: the
 *    image and command of the run's container.
 *
 * The manager then resolves the working directory (`workspace.ts`), checks
 * placement against the live runs (`placement.ts`), claims the project's turn
 * and launches the run.
 */
import path from "node:path";
import { checkTaskRequest } from "../agent/task/request.ts";
import type { TaskRunSpec } from "../agent/types.ts";
import type { Config } from "../config/schema.ts";
import type { ContainerLimits } from "../container/types.ts";
import { ConflictError, ForbiddenError, NotFoundError, ShuttingDownError, TooManyRequestsError, UnauthorizedError, ValidationError } from "../errors.ts";
import { TERMINAL_STATUSES } from "../protocol/events.ts";
import type { CreateRunBody } from "../protocol/requests.ts";
import type { RunRow } from "../store/types.ts";
import { resolveContainerLimits } from "./container-limits.ts";
import type { PermissionGateOptions } from "./permissions.ts";
import { checkMcpServers } from "./mcp-servers.ts";
import { inheritPlacement } from "./placement.ts";

/** The caller of a manager method. */
export interface Caller {
  id: string;
  username: string;
  role: "admin" | "user";
}

/** The settings a plan reads. */
export type PlanConfig = Pick<Config, "max_queued_runs_per_user" | "allow_shell_for_users" | "default_timeout_secs" | "max_timeout_secs"> & {
  docker?: Config["docker"];
  agents?: Config["agents"];
  permissions?: Config["permissions"];
  mcp?: Config["mcp"];
};

/** What {@link planRun} knows besides the request: the caller, the settings and the manager's state at this moment. */
export interface PlanSnapshot {
  caller: Caller;
  /** The new run's id (names its default workspace and home). */
  runId: string;
  config: PlanConfig;
  /** Absolute workspaces root; a user's runs work under `<root>/<user id>`. */
  workspacesRoot: string;
  /** This server has a container engine set up; `projects`: and project containers. Absent: docker runs are refused. */
  engine?: { projects: boolean };
  /** The manager still admits runs (false once shutdown began). */
  admitting: boolean;
  /** The caller is being deleted: no new runs. */
  blocked: boolean;
  /** The caller's runs waiting in the admission queue. */
  queued: number;
  /**
   * The run `metadata.resume` names, as the caller may see it (admins: any, users: their own). Undefined when the
   * request names none; null when it names one that does not exist or is not visible.
   */
  resumed: RunRow | null | undefined;
}

/**
 * Where the working directory comes from. Resolving it creates directories, so the manager does it
 * (`resolveRunCwd`, `ProjectContainers.ensureDir`):
 * - `resumed`: the earlier run's `cwd`, as it is;
 * - `project`: the project directory, or `cwd` relative to it;
 * - `user`: `cwd` relative to `root` (the user's own workspaces root), default `<root>/<run id>`.
 */
export type WorkspacePlan = { kind: "resumed"; cwd: string } | { kind: "project"; projectId: string; cwd?: string } | { kind: "user"; root: string; cwd?: string };

/** The decisions of {@link planRun}. */
export interface RunPlan {
  runId: string;
  userId: string;
  /** `metadata.agent_type`: the registry name of the agent. */
  agentType: string;
  /** The request's metadata with the resumed run's placement (`isolation`, `project_id`) where the request leaves it unset. */
  metadata: CreateRunBody["metadata"];
  /** The metadata stored on the row: {@link metadata} plus `timeout_secs`, `home_of` and the resolved `isolation`. */
  rowMetadata: Record<string, unknown>;
  /** The earlier run this one continues (`metadata.resume`): ended, same agent, with an agent session. */
  resumed?: RunRow;
  /** Seconds; the run's timeout counts from the start of `preparing`. */
  timeoutSecs: number;
  /** The container's limits; null: the run executes on the host. */
  limits: ContainerLimits | null;
  /** Set for a project run (`metadata.project_id`, docker only). */
  projectId?: string;
  /** Key of the agent home `<homes>/<key>`: the run's id, or the resumed run's home. */
  homeKey: string;
  workspace: WorkspacePlan;
  /**
   * A non-project run that names its `cwd`: the resolved directory must not lie inside the user's `projects/`
   * folder (`ProjectContainers.checkNotInProjects`, when the server has project containers).
   */
  guardProjectsFolder: boolean;
  /** The run's permission gate: policy (`metadata.permission_policy`, else `permissions.default_policy`, else `ask`), wait (ms) and decision at the deadline. */
  permissions: Pick<PermissionGateOptions, "policy" | "timeoutMs" | "timeoutDecision">;
}

/**
 * Plans a run from its request (already schema-validated) and a snapshot; pure.
 * @throws ShuttingDownError (503) when the manager no longer admits runs; UnauthorizedError (401) for a user being deleted;
 *   TooManyRequestsError (429, retry after 5 s) past `max_queued_runs_per_user` queued runs; NotFoundError (404 `not_found`)
 *   for a resume of an unknown or foreign run; ConflictError (409 `run_active`) for a resume of a run not ended;
 *   ValidationError (400): `resume_agent_mismatch`, `resume_no_session`, `metadata.timeout_secs` over `max_timeout_secs`,
 *   the limit errors of {@link resolveContainerLimits} (`limit_exceeded`, `isolation_unavailable`, limits on a host run),
 *   `metadata.project_id` without docker isolation; ForbiddenError (403) for `extra_args` by a non-admin
 * @example
 * const plan = planRun(body, { caller, runId, config, workspacesRoot, engine: { projects: true }, admitting: true, blocked: false, queued: 0, resumed: undefined });
 */
export function planRun(body: CreateRunBody, s: PlanSnapshot): RunPlan {
  const { caller, config } = s;
  if (!s.admitting) throw new ShuttingDownError();
  if (s.blocked) throw new UnauthorizedError();
  if (s.queued >= config.max_queued_runs_per_user) throw new TooManyRequestsError(5);
  let resumed: RunRow | undefined;
  if (body.metadata.resume !== undefined) {
    if (!s.resumed) throw new NotFoundError("run");
    resumed = s.resumed;
    if (!TERMINAL_STATUSES.includes(resumed.status)) throw new ConflictError(`run ${resumed.id} is still ${resumed.status}; resume it once it has ended`, "run_active");
    if (resumed.agent !== body.metadata.agent_type) throw new ValidationError(`run ${body.metadata.resume} used agent ${resumed.agent}, not ${body.metadata.agent_type}`, { field: "metadata.resume" }, "resume_agent_mismatch");
    if (!resumed.session_id) throw new ValidationError(`run ${body.metadata.resume} has no agent session to resume`, { field: "metadata.resume" }, "resume_no_session");
  }
  // A resumed run keeps where the earlier one ran (its isolation and project) unless the request says otherwise.
  const md = resumed ? inheritPlacement(body.metadata, resumed.metadata) : body.metadata;
  if (md.extra_args && caller.role !== "admin") throw new ForbiddenError("metadata.extra_args is allowed for admins only");
  if (md.mcp_servers) checkMcpServers(md.mcp_servers, config.mcp);
  const timeoutSecs = md.timeout_secs ?? config.default_timeout_secs;
  if (timeoutSecs > config.max_timeout_secs) throw new ValidationError(`metadata.timeout_secs must be at most ${config.max_timeout_secs}`, { field: "metadata.timeout_secs", value: timeoutSecs });
  // A project run (`metadata.project_id`, see src/container/projects.ts) implies docker isolation.
  const limits = resolveContainerLimits(md.project_id !== undefined && md.isolation === undefined ? { ...md, isolation: "docker" } : md, config.docker, s.engine !== undefined);
  if (md.project_id !== undefined && (!limits || !s.engine?.projects)) throw new ValidationError("metadata.project_id needs docker isolation", { field: "metadata.project_id" });
  if (md.desktop && !limits) throw new ValidationError("metadata.desktop needs docker isolation", { field: "metadata.desktop" });
  const homeKey = resumed ? String(resumed.metadata.home_of ?? resumed.id) : s.runId;
  // Each user has a root of their own: a cwd can never name another user's workspace.
  const workspace: WorkspacePlan = resumed
    ? { kind: "resumed", cwd: resumed.cwd }
    : md.project_id !== undefined
      ? { kind: "project", projectId: md.project_id, ...(md.cwd !== undefined ? { cwd: md.cwd } : {}) }
      : { kind: "user", root: path.join(s.workspacesRoot, caller.id), ...(md.cwd !== undefined ? { cwd: md.cwd } : {}) };
  const perm = config.permissions;
  return {
    runId: s.runId,
    userId: caller.id,
    agentType: md.agent_type,
    metadata: md,
    rowMetadata: { ...md, timeout_secs: timeoutSecs, home_of: homeKey, isolation: limits ? "docker" : "none" },
    ...(resumed ? { resumed } : {}),
    timeoutSecs,
    limits,
    ...(md.project_id !== undefined ? { projectId: md.project_id } : {}),
    homeKey,
    workspace,
    guardProjectsFolder: md.project_id === undefined && md.cwd !== undefined,
    permissions: {
      policy: md.permission_policy ?? perm?.default_policy ?? "ask",
      timeoutMs: (md.permission_timeout_secs ?? perm?.timeout_secs ?? 300) * 1000,
      timeoutDecision: perm?.timeout_decision ?? "reject",
    },
  };
}

/** The decisions of {@link planAgent}. */
export interface AgentPlan {
  /** The batch task of an `agent_type: "task"` run (`src/agent/task/`); absent for every other agent. */
  task?: TaskRunSpec;
}

/**
 * The agent's part of the plan, once the registry has the agent (named `agentName` there); pure.
 * @throws ValidationError (400) from `checkTaskRequest` (`task_needs_docker`, `image_not_allowed`, task-only fields on
 *   other runs, …); ForbiddenError (403) for a host `shell` run by a non-admin unless `allow_shell_for_users`
 */
export function planAgent(plan: RunPlan, body: CreateRunBody, agentName: string, caller: Caller, config: PlanConfig): AgentPlan {
  const task = checkTaskRequest(body, config.docker, plan.limits !== null); // agent_type "task": the batch image (src/agent/task/)
  if (agentName === "shell" && caller.role !== "admin" && !config.allow_shell_for_users && !plan.limits)
    throw new ForbiddenError("host shell runs are for admins only (use isolation docker, or set allow_shell_for_users)");
  return task ? { task } : {};
}

/** What container a docker run needs, from {@link planContainer}. */
export interface ContainerPlan {
  /** A task's batch image, else the ACP agent's `acp_agents.<name>.image`, else `agents.<name>.image`, else `docker.image`. */
  image: string;
  /** `agents.<name>.container_command`: argv[0] inside the container. */
  command?: string;
  limits: ContainerLimits;
  /** A project run: its project, and whether the request named limits of its own (they must match the container's). */
  project?: { projectId: string; limitsAsked: boolean };
  /** `metadata.desktop`: a container of the desktop image with its desktop (`src/container/desktop.ts`). */
  desktop?: boolean;
}

/**
 * The container of a planned run (null: on the host); pure.
 * @param agentName the registry name of the agent
 * @param acpImage the image of the ACP agent the run is bound to, if configured
 */
export function planContainer(plan: RunPlan, agent: AgentPlan, agentName: string, acpImage: string | undefined, config: PlanConfig): ContainerPlan | null {
  if (!plan.limits) return null;
  const agentCfg = config.agents?.[agentName];
  const md = plan.metadata;
  return {
    image: agent.task?.image ?? acpImage ?? agentCfg?.image ?? config.docker!.image,
    ...(agentCfg?.container_command ? { command: agentCfg.container_command } : {}),
    limits: plan.limits,
    ...(plan.projectId !== undefined ? { project: { projectId: plan.projectId, limitsAsked: md.memory_mb !== undefined || md.cpus !== undefined || md.pids_limit !== undefined } } : {}),
    ...(md.desktop ? { desktop: true } : {}),
  };
}
