/**
 * The one place that gets a run its container (docs/architecture.md#placement):
 * the run's `prepare` step hands {@link acquireRunContainer} what the run needs
 * ({@link RunContainerSpec}) and gets back the {@link RunContainer} its agent
 * executes in. The choice:
 *
 * 1. a project run (`spec.project`): the project's long-lived container, once
 *    the run's turn is ready (`ProjectContainers.acquireForRun`, `projects.ts`);
 * 2. otherwise a warm container from the pool when one fits (`pool.ts`: same
 *    image and limits, empty workspace and home), emitting `container.created`
 *    and `container.started` with `pool: true` at hand-over;
 * 3. otherwise a new per-run container (`createRunContainer`, `run-container.ts`).
 *
 * A desktop run (`spec.desktop`, `metadata.desktop: true`) runs in the desktop image
 * ({@link DESKTOP_IMAGE_TAG}) and never takes a warm container: its per-run (or
 * project) container starts the desktop and is handed over once it is ready.
 */
import type { Log } from "../log.ts";
import { DESKTOP_IMAGE_TAG } from "./desktop-image.ts";
import type { WarmPool } from "./pool.ts";
import type { ProjectSlot } from "./project-slots.ts";
import type { ProjectContainers } from "./projects.ts";
import { checkRunHome, createRunContainer, type ContainerRunEvent, type RunContainer, type RunHome } from "./run-container.ts";
import type { ContainerClient, ContainerLimits } from "./types.ts";

/** What container a run needs; built by the run's prepare step from its plan. */
export interface RunContainerSpec {
  runId: string;
  userId: string;
  /** The image its agent runs in (a task's batch image, the agent's configured image, else `docker.image`). */
  image: string;
  limits: ContainerLimits;
  /** The run's host working directory (absolute): bind-mounted at `/workspace` (per-run), or inside the project directory. */
  workspace: string;
  /** The run's isolated home on the host (checked with `checkRunHome`). */
  home: RunHome;
  /** argv[0] inside the container instead of the basename of the host command (`agents.<name>.container_command`). */
  command?: string;
  /** Appends the container's lifecycle events to the run's stream. */
  emit: (e: ContainerRunEvent) => void;
  /** Aborted when the run ends (cancel, timeout) before the container is handed over. */
  signal?: AbortSignal;
  /** A project run: the project, whether the request named limits of its own (they must match), and its claimed turn. */
  project?: { projectId: string; limitsAsked: boolean; slot: ProjectSlot };
  /** `metadata.desktop`: a container of the desktop image with its desktop running. */
  desktop?: boolean;
}

/** The server's container machinery {@link acquireRunContainer} chooses from. */
export interface AcquireDeps {
  /** The engine (created on first use; asked only for per-run containers). */
  client: () => ContainerClient;
  /** This server's instance id (label). */
  instance: string;
  /** Numeric non-root `uid:gid` of per-run containers (`docker.user`). */
  user: string;
  /** Docker network of per-run containers (`docker.network`); absent: none. */
  network?: string;
  pool?: WarmPool;
  /** Required for project runs. */
  projects?: ProjectContainers;
  log?: Pick<Log, "warn">;
}

/**
 * The container the run's agent executes in; see the module comment for the choice.
 * @throws ContainerError (`engine_unavailable`, `image_not_found`, …; a per-run container created before the failure is
 *   removed first), ConflictError `project_image_mismatch` / `project_limits_mismatch` (project runs), ValidationError
 *   `cwd_outside_project`, the signal's reason when the run ended first; Error when a project run finds no project containers
 */
export async function acquireRunContainer(spec: RunContainerSpec, deps: AcquireDeps): Promise<RunContainer> {
  const { project, workspace, desktop, ...rest } = spec;
  if (desktop) rest.image = DESKTOP_IMAGE_TAG;
  if (project) {
    if (!deps.projects) throw new Error("project runs need project containers (docker)");
    return deps.projects.acquireForRun({ ...rest, ...project, cwd: workspace, ...(desktop ? { desktop: true } : {}) });
  }
  spec.signal?.throwIfAborted();
  if (desktop) {
    if (!deps.projects) throw new Error("desktop runs need the container machinery (docker)");
    return createRunContainer({
      ...rest,
      workspace,
      client: deps.client(),
      instance: deps.instance,
      user: deps.user,
      desktop: { launcherRoot: deps.projects.launcherRoot },
      ...(deps.network ? { network: deps.network } : {}),
      ...(deps.log ? { log: deps.log } : {}),
    });
  }
  if (deps.pool) await checkRunHome(spec.home);
  const warm = await deps.pool?.take({ image: spec.image, limits: spec.limits, runId: spec.runId, userId: spec.userId, workspace, home: spec.home.dir, ...(spec.command ? { command: spec.command } : {}) });
  if (!warm) {
    return createRunContainer({
      ...rest,
      workspace,
      client: deps.client(),
      instance: deps.instance,
      user: deps.user,
      ...(deps.network ? { network: deps.network } : {}),
      ...(deps.log ? { log: deps.log } : {}),
    });
  }
  const data = { container_id: warm.handle.id, pool: true };
  spec.emit({ type: "container.created", data });
  spec.emit({ type: "container.started", data });
  if (spec.signal?.aborted) {
    // The run ended meanwhile: nobody takes the container over.
    void warm.handle.remove({ force: true }).catch(() => {});
    spec.signal.throwIfAborted();
  }
  const discard = () => void warm.handle.remove({ force: true }).catch(() => {});
  spec.signal?.addEventListener("abort", discard, { once: true });
  return warm;
}
