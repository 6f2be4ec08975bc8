/**
 * Writes what a batch container reads (the OpenAaaS contract): the run's
 * `task.json` and its `input/` files, into the run's host workspace, which is
 * bind-mounted at `/workspace`.
 *
 * `task.json` is `{run_id, input: {text, files: [paths]}, metadata}`, with
 * `files` the paths under `/workspace/input/`. Nothing here follows a link:
 * `task.json` is created with `O_NOFOLLOW`, `input/` is removed and made
 * afresh, and every input file is created with `O_EXCL | O_NOFOLLOW` below
 * directories made here. When the server runs as root the files are handed
 * to the container user, readable (0644) but theirs.
 */
import { Buffer } from "node:buffer";
import { constants } from "node:fs";
import { lchown, mkdir, open, rm } from "node:fs/promises";
import path from "node:path";
import type { TaskRunSpec } from "../types.ts";

/** Where the contract puts things, inside the container. */
export const TASK_FILE = "/workspace/task.json";
export const TASK_INPUT_DIR = "/workspace/input";

async function writeNew(file: string, data: Buffer | string, flags: number, owner?: { uid: number; gid: number }): Promise<void> {
  const h = await open(file, flags | constants.O_WRONLY | constants.O_NOFOLLOW, 0o644);
  try {
    await h.writeFile(data);
    if (owner) await h.chown(owner.uid, owner.gid);
  } finally {
    await h.close();
  }
}

/**
 * Writes `task.json` and `input/` under `workspace` (see the module comment).
 * @param owner uid/gid to give the files to (when the server runs as root); absent: left as created
 * @throws fs errors (`ELOOP` when `task.json` is a link, `EEXIST` for a duplicate input path)
 * @example
 * await writeTaskInputs("/data/workspaces/u1/run_01", "run_01", task, { uid: 1000, gid: 1000 });
 */
export async function writeTaskInputs(workspace: string, runId: string, task: TaskRunSpec, owner?: { uid: number; gid: number }): Promise<void> {
  const files = task.input.files ?? [];
  const doc = { run_id: runId, input: { text: task.input.text, files: files.map((f) => f.path) }, metadata: task.metadata };
  await writeNew(path.join(workspace, "task.json"), `${JSON.stringify(doc, null, 2)}\n`, constants.O_CREAT | constants.O_TRUNC, owner);
  const inputDir = path.join(workspace, "input");
  await rm(inputDir, { recursive: true, force: true }); // a link named input is removed, not followed
  await mkdir(inputDir, { mode: 0o755 });
  if (owner) await lchown(inputDir, owner.uid, owner.gid);
  for (const f of files) {
    const segs = f.path.split("/");
    let dir = inputDir;
    for (const s of segs.slice(0, -1)) {
      dir = path.join(dir, s);
      try {
        await mkdir(dir, { mode: 0o755 });
        if (owner) await lchown(dir, owner.uid, owner.gid);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
      }
    }
    const data = f.encoding === "base64" ? Buffer.from(f.content, "base64") : f.content;
    await writeNew(path.join(dir, segs.at(-1)!), data, constants.O_CREAT | constants.O_EXCL, owner);
  }
}
