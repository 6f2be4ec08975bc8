/**
 * Adoption of project containers at start (docs/architecture.md#recovery): the
 * running project containers an earlier process of this instance left are kept
 * for their users (the sweeper reports them as adopted), and the processes of
 * runs that were in flight when it stopped are killed inside them (every exec
 * of a run carries `OPENRUNNER_RUN_ID=<run id>`; recovery has ended those runs
 * as `interrupted`).
 */
import type { Log } from "../log.ts";
import { KILL_BY_ENV_SCRIPT } from "./exec-scripts.ts";
import { LABEL } from "./labels.ts";
import type { ContainerClient, ContainerSummary } from "./types.ts";

/** A run recovery just ended as interrupted: its id, owner and stored metadata (`project_id`). */
export interface InterruptedRun {
  id: string;
  user_id: string;
  metadata: Record<string, unknown>;
}

/** What {@link adoptProjectContainers} needs. */
export interface AdoptDeps {
  /** The engine (created on first use: only called when a process has to be killed). */
  client: () => ContainerClient;
  /** Called for every adopted container that names its user and project (labels), to remember its id. */
  remember: (userId: string, projectId: string, containerId: string) => void;
  log?: Pick<Log, "info" | "warn">;
}

/**
 * Remembers each adopted project container and kills, inside it, the processes of the interrupted runs of its
 * (user, project), with SIGKILL. A failed kill is logged and skipped, never thrown.
 * @param adopted the containers the orphan sweep kept (running project containers of this instance)
 * @returns how many processes were killed
 */
export async function adoptProjectContainers(adopted: ContainerSummary[], interrupted: InterruptedRun[], d: AdoptDeps): Promise<number> {
  let killed = 0;
  for (const c of adopted) {
    const userId = c.labels[LABEL.userId];
    const projectId = c.labels[LABEL.projectId];
    if (!userId || !projectId) continue;
    d.remember(userId, projectId, c.id);
    for (const run of interrupted) {
      if (run.user_id !== userId || run.metadata.project_id !== projectId) continue;
      try {
        const r = await d.client().get(c.id).execCollect({ argv: ["/bin/sh", "-c", KILL_BY_ENV_SCRIPT, "openrunner-kill", "KILL", `OPENRUNNER_RUN_ID=${run.id}`], cwd: "/" });
        killed += Number.parseInt(r.stdout.trim(), 10) || 0;
      } catch (err) {
        d.log?.warn("could not kill an interrupted run's processes in its project container", { run_id: run.id, container_id: c.id, err: String(err) });
      }
    }
  }
  if (adopted.length) d.log?.info("adopted project containers", { count: adopted.length, killed });
  return killed;
}
