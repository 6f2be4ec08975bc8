/**
 * Writes what a batch container reads (the OpenAaaS contract): the run's
 * `task.json` and its `input/` files, into the run's host workspace, which is
 * bind-mounted at `/workspace`.
 *
 * `task.json` is `{run_id, input: {text, files: [paths]}, metadata}`, with
 * `files` the paths under `/workspace/input/`. The workspace may be changed by an agent meanwhile
 * (a project's other runs), so nothing here follows a link or takes a path of more than one
 * component below the workspace: every step starts from the workspace's open descriptor
 * (`safe-fs.ts`): `task.json` is opened without following a link and refused when it is not a
 * regular file with one link, `input/` is removed (through descriptors) and made afresh, and every
 * input file is created with `O_EXCL | O_NOFOLLOW` in folders opened with `O_NOFOLLOW`. When the
 * server runs as root the files and folders made here are handed to the container user (through
 * their descriptors), readable (0644) but theirs.
 */
import { Buffer } from "node:buffer";
import path from "node:path";
import { openDir, openDirAt, openDirPath, openFileAt, removeTreeAt, type Owner } from "../safe-fs.ts";
import type { TaskRunSpec } from "../types.ts";

/** Where the contract puts things, inside the container. */
export const TASK_FILE = "/workspace/task.json";
export const TASK_INPUT_DIR = "/workspace/input";

/**
 * Writes `task.json` and `input/` under `workspace` (see the module comment).
 * @param owner uid/gid to give the files to (when the server runs as root); absent: left as created
 * @throws SafeFsError (`symlink`, `hard_link`, `not_a_file` for a planted `task.json` or folder); fs errors (`EEXIST` for a duplicate input path)
 * @example
 * await writeTaskInputs("/data/workspaces/u1/run_01", "run_01", task, { uid: 1000, gid: 1000 });
 */
export async function writeTaskInputs(workspace: string, runId: string, task: TaskRunSpec, owner?: Owner): Promise<void> {
  const files = task.input.files ?? [];
  const doc = { run_id: runId, input: { text: task.input.text, files: files.map((f) => f.path) }, metadata: task.metadata };
  const own = owner ? { owner } : {};
  const root = await openDir(path.resolve(workspace));
  try {
    const h = await openFileAt(root, "task.json", { write: true, create: true, ...own });
    try {
      await h.truncate(0);
      await h.writeFile(`${JSON.stringify(doc, null, 2)}\n`);
    } finally {
      await h.close();
    }
    await removeTreeAt(root, "input"); // a link named input is removed, not followed
    const input = await openDirAt(root, "input", { create: true, ...own });
    try {
      for (const f of files) {
        const segs = f.path.split("/");
        const dir = await openDirPath(input, segs.slice(0, -1), { create: true, ...own });
        try {
          const fh = await openFileAt(dir, segs.at(-1)!, { write: true, create: true, exclusive: true, ...own });
          try {
            await fh.writeFile(f.encoding === "base64" ? Buffer.from(f.content, "base64") : f.content);
          } finally {
            await fh.close();
          }
        } finally {
          await dir.close();
        }
      }
    } finally {
      await input.close();
    }
  } finally {
    await root.close();
  }
}
