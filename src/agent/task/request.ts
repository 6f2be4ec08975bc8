/**
 * Admission checks of `agent_type: "task"` runs (the OpenAaaS batch contract,
 * see `adapter.ts`), made by `RunManager.create` before anything is stored:
 * a task run names an admin-allowed batch image and runs in docker, in a
 * fresh workspace; the task-only fields are refused on other runs.
 */
import type { Config } from "../../config/schema.ts";
import { ValidationError } from "../../errors.ts";
import type { CreateRunBody } from "../../protocol/requests.ts";
import type { TaskRunSpec } from "../types.ts";

/** The agent name of batch runs. */
export const TASK_AGENT = "task";

/**
 * Validates the task part of a create request.
 * @param docker `docker.task_images` of the configuration
 * @param inDocker whether the run resolved to docker isolation
 * @returns the task spec for a `task` run, undefined for any other agent
 * @throws ValidationError (400): `task_needs_docker` (a task on the host), `image_not_allowed`, a missing `metadata.image`,
 *   `cwd`/`resume`/`project_id` on a task run, `metadata.image` or `input.files` on another run, a bad or duplicate input path
 * @example
 * const task = checkTaskRequest(body, config.docker, limits !== null); // { image, input, metadata } | undefined
 */
export function checkTaskRequest(body: CreateRunBody, docker: Pick<Config["docker"], "task_images"> | undefined, inDocker: boolean): TaskRunSpec | undefined {
  const md = body.metadata;
  if (md.agent_type !== TASK_AGENT) {
    if (md.image !== undefined) throw new ValidationError("metadata.image is for task runs only (agent_type task)", { field: "metadata.image" });
    if (body.input.files !== undefined) throw new ValidationError("input.files is for task runs only (agent_type task)", { field: "input.files" });
    return undefined;
  }
  if (!inDocker) throw new ValidationError('task runs run in a container: set metadata.isolation to "docker"', { field: "metadata.isolation" }, "task_needs_docker");
  if (md.image === undefined) throw new ValidationError("task runs need metadata.image (one of the server's docker.task_images)", { field: "metadata.image" });
  if (!(docker?.task_images ?? []).includes(md.image))
    throw new ValidationError(`image ${JSON.stringify(md.image)} is not allowed for task runs (docker.task_images)`, { field: "metadata.image", value: md.image }, "image_not_allowed");
  for (const f of ["cwd", "resume", "project_id"] as const) {
    if ((md as Record<string, unknown>)[f] !== undefined) throw new ValidationError(`metadata.${f} is not supported for task runs (they get a fresh workspace)`, { field: `metadata.${f}` });
  }
  const seen = new Set<string>();
  for (const [i, f] of (body.input.files ?? []).entries()) {
    const segs = f.path.split("/");
    if (f.path.includes("\0") || f.path.startsWith("/") || segs.some((s) => s === "" || s === "." || s === ".."))
      throw new ValidationError(`input.files[${i}].path must be relative, without empty, "." or ".." segments`, { field: `input.files[${i}].path`, value: f.path });
    if (f.encoding === "base64" && !/^[A-Za-z0-9+/]*={0,2}$/.test(f.content))
      throw new ValidationError(`input.files[${i}].content is not base64`, { field: `input.files[${i}].content` });
    // A file may not also be the directory of another ("a" and "a/b").
    for (let k = 1; k <= segs.length; k++) {
      const prefix = segs.slice(0, k).join("/");
      const kind = k === segs.length ? `f:${prefix}` : `d:${prefix}`;
      const clash = k === segs.length ? `d:${prefix}` : `f:${prefix}`;
      if (seen.has(clash) || (kind.startsWith("f:") && seen.has(kind)))
        throw new ValidationError(`input.files[${i}].path ${JSON.stringify(f.path)} clashes with another input file`, { field: `input.files[${i}].path` });
      seen.add(kind);
    }
  }
  return { image: md.image, input: body.input, metadata: { ...md } };
}
