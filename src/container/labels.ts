/**
 * The labels every OpenRunner container carries (docs/architecture.md#containers). The
 * sweeper and the list endpoint find containers by them; the engine is the
 * source of truth for what exists, so a crashed server's containers are found
 * again at the next start.
 */

/** Label keys. */
export const LABEL = {
  /** The server instance that owns the container (stable across restarts of that server). */
  instance: "openrunner.instance",
  /** `run` (per-run, removed after the run), `project` (long-lived, per user and project), `pool` (warm, not yet handed out). */
  kind: "openrunner.kind",
  runId: "openrunner.run-id",
  projectId: "openrunner.project-id",
  userId: "openrunner.user-id",
} as const;

export type ContainerKind = "run" | "project" | "pool";

/** The labels of one container. */
export interface ContainerLabelInput {
  instance: string;
  kind: ContainerKind;
  runId?: string;
  projectId?: string;
  userId?: string;
}

/**
 * Builds the label map for {@link ContainerSpec.labels}.
 * @example
 * containerLabels({ instance, kind: "run", runId: "run_01J…", userId: "usr_1" })
 */
export function containerLabels(l: ContainerLabelInput): Record<string, string> {
  if (!/^[A-Za-z0-9_.-]{1,64}$/.test(l.instance)) throw new RangeError(`instance id must be 1-64 characters [A-Za-z0-9_.-], got ${JSON.stringify(l.instance)}`);
  const out: Record<string, string> = { [LABEL.instance]: l.instance, [LABEL.kind]: l.kind };
  if (l.runId !== undefined) out[LABEL.runId] = l.runId;
  if (l.projectId !== undefined) out[LABEL.projectId] = l.projectId;
  if (l.userId !== undefined) out[LABEL.userId] = l.userId;
  return out;
}
