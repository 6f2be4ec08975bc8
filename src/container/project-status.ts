/**
 * What the API shows of a project container (`GET /api/projects/:id/container`),
 * built from the engine's state, the project's turns and the sweeper's idle
 * bookkeeping (when it was last used, whether a run holds it). Pure.
 */
import type { ContainerSweeper } from "./sweeper.ts";
import type { ContainerState } from "./types.ts";

/** What the API shows of a project container. Times ISO 8601 UTC. */
export interface ProjectContainerStatus {
  project_id: string;
  user_id: string;
  container_id: string;
  /** Engine state (`running`, `exited`, …). */
  state: string;
  image: string;
  created_at: string;
  /** Runs holding the project now (at most `max_runs_per_project`). */
  active_runs: number;
  /** Runs waiting for their turn. */
  waiting_runs: number;
  /** When the idle sweep may remove it (null while a run holds it, or without a sweeper). */
  idle_expires_at: string | null;
  /** Memory in MiB, CPUs (fractional), PIDs (0 when the engine reports no limit). */
  limits: { memory_mb: number; cpus: number; pids_limit: number };
}

/**
 * The API view of (user, project)'s container.
 * @param load the project's turns now (`ProjectTurns.load`)
 * @param sweeper the idle sweep, if any (absent: `idle_expires_at` is null)
 */
export function projectStatus(
  userId: string,
  projectId: string,
  st: ContainerState,
  load: { active: number; waiting: number },
  sweeper: Pick<ContainerSweeper, "lastUsed" | "isHeld" | "idleMs"> | undefined,
): ProjectContainerStatus {
  const last = sweeper?.lastUsed(st.id);
  const held = sweeper?.isHeld(st.id) ?? false;
  return {
    project_id: projectId,
    user_id: userId,
    container_id: st.id,
    state: st.state,
    image: st.image,
    created_at: new Date(st.createdAt).toISOString(),
    active_runs: load.active,
    waiting_runs: load.waiting,
    idle_expires_at: held || !sweeper || last === undefined ? null : new Date(last + sweeper.idleMs).toISOString(),
    limits: { memory_mb: Math.round(st.hostConfig.memoryBytes / (1024 * 1024)), cpus: st.hostConfig.nanoCpus / 1e9, pids_limit: st.hostConfig.pidsLimit ?? 0 },
  };
}
