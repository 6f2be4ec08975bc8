/**
 * Turn-taking of project runs (docs/architecture.md#containers, `metadata.project_id`):
 * at most `docker.max_runs_per_project` runs hold one (user, project) at a
 * time. A run claims its turn when it is created ({@link ProjectTurns.claim});
 * with `project_busy: "reject"` a claim past the limit is a 409
 * `project_busy`, with `"wait"` the run waits for its turn (FIFO). Pure
 * bookkeeping: no engine, no I/O. Used by `ProjectContainers` (`projects.ts`).
 */
import type { Config } from "../config/schema.ts";
import { ConflictError } from "../errors.ts";
import type { Log } from "../log.ts";

/** A run's turn on a project; see {@link ProjectTurns.claim}. */
export interface ProjectSlot {
  /** Resolves once the run may use the project container; rejects with the signal's reason when aborted first. */
  ready(signal?: AbortSignal): Promise<void>;
  /** Gives the turn back (or leaves the queue); runs `onRelease` callbacks. Idempotent. */
  release(): void;
  /** Called once on release (e.g. the sweeper hold). */
  onRelease(fn: () => void): void;
}

/** Options of {@link ProjectTurns}. */
export interface ProjectTurnsOptions {
  docker: Pick<Config["docker"], "max_runs_per_project" | "project_busy">;
  /** Where a throwing `onRelease` callback is reported. */
  log?: Pick<Log, "warn">;
}

interface Waiter {
  grant: () => void;
}

interface ProjectState {
  active: number;
  queue: Waiter[];
}

/** The map key of (user, project). */
export const projectKey = (userId: string, projectId: string): string => `${userId}\u0000${projectId}`;

/** See the module comment. One per `ProjectContainers`. */
export class ProjectTurns {
  readonly #o: ProjectTurnsOptions;
  readonly #states = new Map<string, ProjectState>();

  constructor(opts: ProjectTurnsOptions) {
    this.#o = opts;
  }

  /**
   * Claims a turn for a run of (user, project); granted at once when the project has a free turn and nobody waits.
   * @throws ConflictError `project_busy` (409) in `reject` mode when the project already has `max_runs_per_project` runs
   */
  claim(userId: string, projectId: string): ProjectSlot {
    const key = projectKey(userId, projectId);
    const st = this.#states.get(key) ?? { active: 0, queue: [] };
    const max = this.#o.docker.max_runs_per_project;
    if (this.#o.docker.project_busy === "reject" && st.active >= max)
      throw new ConflictError(`project ${projectId} already runs ${st.active} run(s) (max_runs_per_project ${max}); retry when it ends`, "project_busy");
    this.#states.set(key, st);
    let granted = false;
    let released = false;
    const cleanups: Array<() => void> = [];
    const onGrant: Array<() => void> = [];
    const waiter: Waiter = {
      grant: () => {
        granted = true;
        st.active++;
        for (const f of onGrant.splice(0)) f();
      },
    };
    if (st.active < max && st.queue.length === 0) waiter.grant();
    else st.queue.push(waiter);
    return {
      ready: (signal) => {
        if (granted) return Promise.resolve();
        if (released) return Promise.reject(new Error("project slot released"));
        return new Promise<void>((resolve, reject) => {
          const abort = () => reject(signal!.reason ?? new Error("aborted"));
          if (signal?.aborted) return abort();
          signal?.addEventListener("abort", abort, { once: true });
          onGrant.push(() => {
            signal?.removeEventListener("abort", abort);
            resolve();
          });
        });
      },
      release: () => {
        if (released) return;
        released = true;
        if (granted) {
          st.active--;
          const next = st.queue.shift();
          next?.grant();
        } else {
          const i = st.queue.indexOf(waiter);
          if (i >= 0) st.queue.splice(i, 1);
        }
        if (st.active === 0 && st.queue.length === 0) this.#states.delete(key);
        for (const f of cleanups.splice(0)) {
          try {
            f();
          } catch (err) {
            this.#o.log?.warn("project slot cleanup failed", { err: String(err) });
          }
        }
      },
      onRelease: (fn) => {
        if (released) fn();
        else cleanups.push(fn);
      },
    };
  }

  /** Runs holding (`active`) / waiting for (`waiting`) (user, project). */
  load(userId: string, projectId: string): { active: number; waiting: number } {
    const st = this.#states.get(projectKey(userId, projectId));
    return { active: st?.active ?? 0, waiting: st?.queue.length ?? 0 };
  }
}
