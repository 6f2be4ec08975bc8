/**
 * Where a run may work, decided at creation (docs/architecture.md#placement): one live run
 * per folder tree and per agent home, and a resumed run's placement inherited
 * from the earlier run.
 */
import path from "node:path";
import { ConflictError } from "../errors.ts";
import type { CreateRunBody } from "../protocol/requests.ts";

/** The part of a live run its placement is checked against. */
export interface LivePlacement {
  id: string;
  userId: string;
  /** Working directory, absolute. */
  cwd: string;
  /** Agent home key (a resumed run shares its earlier run's). */
  homeKey: string;
  /** A project run: its folder is shared by design (the project's lock serializes them). */
  project: boolean;
}

/**
 * One live run per folder tree and per agent home: root prepares a run's
 * folders (chown, input files) while the agents of other runs could be
 * rewriting them, and two agents editing one checkout undo each other.
 * Project runs share their project folder by design.
 * @throws ConflictError 409 `workspace_busy` naming the live run
 */
export function checkWorkspaceFree(live: Iterable<LivePlacement>, next: Omit<LivePlacement, "id">): void {
  const within = (a: string, b: string) => a === b || a.startsWith(b.endsWith(path.sep) ? b : b + path.sep);
  for (const other of live) {
    if (other.userId !== next.userId) continue;
    if (other.homeKey === next.homeKey) throw new ConflictError(`run ${other.id} (live) uses the same agent session and home; start this one after it ends`, "workspace_busy");
    if (next.project && other.project) continue;
    if (within(next.cwd, other.cwd) || within(other.cwd, next.cwd)) throw new ConflictError(`run ${other.id} (live) works in ${other.cwd === next.cwd ? "the same folder" : "an overlapping folder"}; start this one after it ends or use another cwd`, "workspace_busy");
  }
}

/**
 * The metadata of a resumed run: `isolation` and `project_id` of the earlier run
 * (its stored metadata) where the request leaves them unset, so a follow-up to
 * a containerized run does not silently run on the host, and a project run's
 * follow-up never runs in the project folder outside the project's container.
 */
export function inheritPlacement(md: CreateRunBody["metadata"], earlier: Record<string, unknown>): CreateRunBody["metadata"] {
  const out = { ...md };
  if (out.isolation === undefined && (earlier.isolation === "docker" || earlier.isolation === "none")) out.isolation = earlier.isolation;
  // A project run resumes in its project (with `isolation: "none"` that is a 400: projects need docker).
  if (out.project_id === undefined && typeof earlier.project_id === "string") out.project_id = earlier.project_id;
  return out;
}
