/**
 * The `task` adapter (`agent_type: "task"`): the OpenAaaS batch contract. A
 * task run executes an admin-allowed batch image (`metadata.image`, one of
 * `docker.task_images`) in the run's container, always with docker isolation:
 *
 * 1. `command()` writes `/workspace/task.json` and `/workspace/input/` (see
 *    `inputs.ts`) and returns the image's ENTRYPOINT + CMD (from the engine's
 *    image inspect), run as-is inside the container as the non-root container
 *    user, in `/workspace`, with `OPENRUNNER_TASK_FILE=/workspace/task.json`;
 * 2. its stdout and stderr lines become `log` events;
 * 3. exit 0 completes the run; any other exit fails it with `exit_nonzero`;
 * 4. `finalize()` (after the container is gone) lists the regular files the
 *    container wrote under the workspace, except `task.json` and `input/`,
 *    never following links and bounded by `docker.artifacts_max_files` and
 *    `docker.artifacts_max_bytes` (see `src/container/artifacts.ts`), into
 *    `run.completed.artifacts`. Over a cap, the files in order up to it are
 *    listed and a `log` warning says how many were left out: the task's exit
 *    status stays the run's status (a result too big to list is still a result).
 *
 * They are downloadable at `GET /api/runs/:id/artifacts/*path`.
 */
import type { Config } from "../../config/schema.ts";
import { collectArtifacts } from "../../container/artifacts.ts";
import { ContainerError } from "../../container/errors.ts";
import type { ContainerClient } from "../../container/types.ts";
import { RunFailure } from "../../protocol/errors.ts";
import type { RunEventInput } from "../../protocol/events.ts";
import { logEvent, tailOf } from "../cli-support.ts";
import type { AgentAdapter, AgentCommand, AgentOutcome, AgentRunContext, LineParser, ProcessExit } from "../types.ts";
import { TASK_FILE, writeTaskInputs } from "./inputs.ts";
import { TASK_AGENT } from "./request.ts";

/** Options of {@link createTaskAdapter}. */
export interface TaskAdapterOptions {
  /** The engine (created on first use). */
  client: () => ContainerClient;
  docker: Pick<Config["docker"], "task_images" | "artifacts_max_files" | "artifacts_max_bytes" | "user">;
  /** Whether the server runs as root (default `process.getuid() === 0`): then inputs are given to `docker.user`. */
  isRoot?: boolean;
}

/** `log` line the server adds to a task's output (stderr stream, prefixed). */
const note = (text: string): RunEventInput => logEvent("stderr", `openrunner: ${text}`);

/**
 * Creates the `task` adapter (see the module comment).
 * @example
 * const task = createTaskAdapter({ client: dockerClient, docker: config.docker });
 */
export function createTaskAdapter(o: TaskAdapterOptions): AgentAdapter {
  const isRoot = o.isRoot ?? process.getuid?.() === 0;
  const [uid, gid = uid] = o.docker.user.split(":").map(Number) as [number, number?];
  return {
    name: TASK_AGENT,
    async detect() {
      return o.docker.task_images.length > 0
        ? { agent: TASK_AGENT, available: true }
        : { agent: TASK_AGENT, available: false, reason: "no batch image is allowed (docker.task_images is empty)" };
    },
    async command(ctx: AgentRunContext): Promise<AgentCommand> {
      const task = ctx.task;
      if (!task || !ctx.in_container) throw new RunFailure("task_needs_docker", "task runs need a batch image and docker isolation");
      const info = await o.client().imageInfo(task.image);
      if (!info) throw new ContainerError("image_not_found", `image ${task.image} not found in the docker engine`);
      const argv = [...info.entrypoint, ...info.cmd];
      if (argv.length === 0) throw new RunFailure("task_image_invalid", `image ${task.image} has neither ENTRYPOINT nor CMD`);
      await writeTaskInputs(ctx.cwd, ctx.run_id, task, isRoot ? { uid, gid } : undefined);
      return { argv, env: { OPENRUNNER_TASK_FILE: TASK_FILE }, cwd: ctx.cwd, container_native: true };
    },
    createParser: () => createTaskParser(),
    async finalize(ctx: AgentRunContext, outcome: AgentOutcome, emit: (e: RunEventInput) => void): Promise<AgentOutcome> {
      if (outcome.kind !== "completed") return outcome;
      const found = await collectArtifacts(ctx.cwd, { maxFiles: o.docker.artifacts_max_files, maxBytes: o.docker.artifacts_max_bytes });
      const { overCap, symlinks, truncatedWalk } = found.omitted;
      if (symlinks > 0) emit(note(`${symlinks} symbolic link(s) in the workspace not collected (links are never followed)`));
      if (overCap > 0 || truncatedWalk)
        emit(
          note(
            `artifacts over the cap (${o.docker.artifacts_max_files} files, ${o.docker.artifacts_max_bytes} bytes): ${found.artifacts.length} listed (${found.totalBytes} bytes)` +
              `${overCap > 0 ? `, ${overCap} more file(s) not listed` : ""}${truncatedWalk ? ", the walk stopped early (too many entries or too deep)" : ""}`,
          ),
        );
      return { ...outcome, artifacts: found.artifacts };
    },
  };
}

/** Every line is a `log` event; exit 0 completes, anything else fails with `exit_nonzero`. */
export function createTaskParser(): LineParser {
  return {
    parseLine: (line) => [logEvent("stdout", line)],
    parseStderr: (line) => [logEvent("stderr", line)],
    end: () => [],
    outcome(exit: ProcessExit): AgentOutcome {
      if (exit.exit_code === 0) return { kind: "completed", exit_code: 0 };
      const how = exit.signal ? `was killed by ${exit.signal}` : `exited with code ${exit.exit_code ?? "unknown"}`;
      const tail = tailOf(exit);
      return {
        kind: "failed",
        code: "exit_nonzero",
        message: `the task ${how}${tail ? `; stderr: ${tail}` : ""}`,
        ...(exit.exit_code !== undefined ? { exit_code: exit.exit_code } : {}),
      };
    },
  };
}
