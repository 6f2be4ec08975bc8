/**
 * Pure helpers of the distributed mode's two halves of a launch (docs/architecture.md#scale-out):
 * what an API server stores for a planned run, and the request a worker plans again from the
 * stored row.
 */
import path from "node:path";
import { ValidationError } from "../errors.ts";
import type { CreateRunBody } from "../protocol/requests.ts";
import type { RunRepo, RunRow } from "../store/types.ts";
import type { Launch } from "./launch.ts";
import type { RunPlan } from "./plan.ts";

/** The row of a planned run, `queued` (`metadata.priority` defaulted to `normal`). */
export function rowOfLaunch(l: Launch, batchId?: string): Parameters<RunRepo["insert"]>[0] {
  return {
    id: l.plan.runId,
    user_id: l.plan.userId,
    agent: l.adapter.name,
    status: "queued",
    input: { text: l.body.input.text },
    metadata: { ...l.plan.rowMetadata, priority: l.plan.metadata.priority ?? "normal" },
    cwd: l.cwd,
    created_at: new Date().toISOString(),
    ...(batchId !== undefined ? { batch_id: batchId } : {}),
  };
}

/** A planned run as an API server queues it for the workers: its row and the agent its `run.queued` names. */
export interface QueuedRun {
  row: Parameters<RunRepo["insert"]>[0];
  agent: string;
}

/** {@link QueuedRun} of a planned launch. */
export function queuedOf(l: Launch, batchId?: string): QueuedRun {
  return { row: rowOfLaunch(l, batchId), agent: l.adapter.name };
}

/**
 * The `api` role's working directory of a planned run: where the worker will create it, checked
 * lexically (the worker resolves links when it creates it, with the same refusals).
 * @throws ValidationError `cwd_outside_workspace`; `cluster_unsupported` for a project run (project containers live on one machine)
 */
export function plannedCwd(plan: RunPlan): string {
  const w = plan.workspace;
  if (w.kind === "resumed") return w.cwd;
  if (w.kind === "project") throw new ValidationError("project runs (metadata.project_id) are not available in distributed mode", { field: "metadata.project_id" }, "cluster_unsupported");
  if (w.cwd?.includes("\0")) throw new ValidationError("cwd contains a NUL byte", { field: "metadata.cwd" }, "cwd_outside_workspace");
  const cwd = path.resolve(w.root, w.cwd ?? plan.runId);
  const rel = path.relative(w.root, cwd);
  if (rel === "" || rel === ".." || rel.startsWith(`..${path.sep}`) || path.isAbsolute(rel)) {
    throw new ValidationError("metadata.cwd must be a directory inside the workspaces root", { field: "metadata.cwd", value: w.cwd }, "cwd_outside_workspace");
  }
  return cwd;
}

/** The request a stored run was created from: its prompt and its metadata as accepted (without what planning added: `home_of`). */
export function bodyOfRow(row: RunRow): CreateRunBody {
  const { home_of: _home, ...metadata } = row.metadata;
  return { input: { text: row.input.text }, metadata: metadata as CreateRunBody["metadata"] };
}
