/**
 * The ACP client's file system capability (`fs/read_text_file`, `fs/write_text_file`),
 * confined to the run's workspace: a path is resolved against the workspace, the real path
 * of its nearest existing ancestor (symlinks followed, also a dangling last link) must lie
 * inside the workspace's real path, so neither `../` nor a link planted by the agent reaches
 * outside. The agent runs concurrently and may swap a folder for a link after that check, so
 * the file is then reached from the workspace's open descriptor one component at a time
 * (`safe-fs.ts`, Linux `/proc/self/fd`): a component or file that is a symlink by then is
 * refused, never followed; folders a write creates are made and handed to the run's user
 * through their descriptors. Only regular files with one link are read or written (a FIFO
 * is opened non-blocking and refused; a hard link may be a file from outside, linked in), and
 * a read stops past {@link MAX_READ_BYTES}. Files the server creates are handed to the run's user.
 *
 * In a container the agent names paths as it sees them (the workspace is mounted at
 * `/workspace`): {@link containerPathToHost} maps them onto the host workspace first, refusing
 * anything outside the run's folder there; the checks above then run on the host path. A
 * symlink with an absolute target means the container's file system to the agent but the
 * host's to these checks, so such a link is refused (outside, or dangling) rather than followed.
 */
import { lstat, realpath, type FileHandle } from "node:fs/promises";
import path from "node:path";
import type { RunAs } from "../run-as.ts";
import { openDir, openDirPath, openFileAt, readAtMost, SafeFsError, type OpenFileOptions } from "../safe-fs.ts";

/** Largest file `fs/read_text_file` returns, bytes. */
export const MAX_READ_BYTES = 10 * 1024 * 1024;

/**
 * Why a path was refused: `outside_workspace` (also through a symlink), `not_found`, `too_large`,
 * `not_a_file` (a folder, FIFO, socket …), `hard_link` (a file with more than one link).
 */
export class WorkspacePathError extends Error {
  constructor(
    readonly reason: "outside_workspace" | "not_found" | "too_large" | "not_a_file" | "hard_link",
    readonly requested: string,
    message: string,
  ) {
    super(message);
    this.name = "WorkspacePathError";
  }
}

const inside = (root: string, p: string) => p === root || p.startsWith(root.endsWith(path.sep) ? root : root + path.sep);

/** Where a container sees the run's workspace: the host folder and its path inside the container. */
export interface ContainerPathMap {
  /** The run's host working directory (the confinement root). */
  hostRoot: string;
  /** The same folder inside the container (`/workspace`, or a folder below it in a project container). */
  containerRoot: string;
}

/**
 * Maps a path from inside the container (absolute, or relative to `containerRoot`) onto the
 * host: `/workspace/a/b.txt` -> `<hostRoot>/a/b.txt`. Pure; `..` is resolved first, so no
 * container path outside `containerRoot` maps inside.
 * @throws WorkspacePathError `outside_workspace` for a path outside `containerRoot`
 * @example
 * containerPathToHost("/workspace/src/x.ts", { hostRoot: "/data/ws/u1/run_1", containerRoot: "/workspace" }) // "/data/ws/u1/run_1/src/x.ts"
 */
export function containerPathToHost(requested: string, map: ContainerPathMap): string {
  const root = path.posix.resolve(map.containerRoot);
  const p = path.posix.resolve(root, requested);
  if (p !== root && !p.startsWith(root === "/" ? "/" : `${root}/`)) throw new WorkspacePathError("outside_workspace", requested, `${requested} is outside the run's workspace (${root} in the container)`);
  return p === root ? map.hostRoot : path.join(map.hostRoot, ...p.slice(root.length + (root === "/" ? 0 : 1)).split("/"));
}

/**
 * The container path of a host path inside `map.hostRoot` (the inverse of {@link containerPathToHost}).
 * @throws WorkspacePathError `outside_workspace` when `hostPath` is not inside `hostRoot`
 */
export function hostPathToContainer(hostPath: string, map: ContainerPathMap): string {
  const rel = path.relative(map.hostRoot, hostPath);
  if (rel === ".." || rel.startsWith(`..${path.sep}`) || path.isAbsolute(rel)) throw new WorkspacePathError("outside_workspace", hostPath, `${hostPath} is outside the run's workspace`);
  return rel === "" ? map.containerRoot : path.posix.join(map.containerRoot, ...rel.split(path.sep));
}

/**
 * Resolves `requested` (absolute, or relative to `root`) to a real path inside `root`.
 * Components that do not exist yet are appended to the real path of the nearest existing
 * ancestor. @throws WorkspacePathError `outside_workspace`
 */
export async function resolveInWorkspace(root: string, requested: string): Promise<string> {
  const realRoot = await realpath(root);
  const target = path.resolve(root, requested);
  if (!inside(path.resolve(root), target) && !inside(realRoot, target)) throw new WorkspacePathError("outside_workspace", requested, `${requested} is outside the run's workspace`);
  const rest: string[] = [];
  let cur = target;
  for (;;) {
    let exists = true;
    try {
      await lstat(cur);
    } catch {
      exists = false;
    }
    if (exists) {
      let real: string;
      try {
        real = await realpath(cur);
      } catch {
        // a dangling symlink: where it points is unknown to the check, so refuse it
        throw new WorkspacePathError("outside_workspace", requested, `${requested} goes through a dangling symlink`);
      }
      const full = path.join(real, ...rest.reverse());
      if (!inside(realRoot, full)) throw new WorkspacePathError("outside_workspace", requested, `${requested} resolves outside the run's workspace (through a symlink)`);
      return full;
    }
    const parent = path.dirname(cur);
    if (parent === cur) throw new WorkspacePathError("outside_workspace", requested, `${requested} is outside the run's workspace`);
    rest.push(path.basename(cur));
    cur = parent;
  }
}

/** How {@link openInWorkspace} opens the file (never exclusively; `create` also makes missing folders). */
type FileOptions = Omit<OpenFileOptions, "mode" | "exclusive">;

/**
 * Resolves `requested` ({@link resolveInWorkspace}), then opens the file from the workspace's descriptor, component by
 * component (see the module comment); `create` also makes missing folders, given to `owner`.
 * @throws WorkspacePathError; other file system errors as they are
 */
async function openInWorkspace(root: string, requested: string, file: FileOptions): Promise<{ fh: FileHandle; resolved: string }> {
  const resolved = await resolveInWorkspace(root, requested);
  const realRoot = await realpath(root);
  const names = path.relative(realRoot, resolved).split(path.sep);
  const name = names.pop();
  if (!name) throw new WorkspacePathError("not_a_file", requested, `${requested} is the workspace folder, not a file`);
  try {
    const rootFh = await openDir(realRoot);
    let dir: FileHandle;
    try {
      dir = await openDirPath(rootFh, names, { create: file.create ?? false, ...(file.owner ? { owner: file.owner } : {}) });
    } finally {
      await rootFh.close();
    }
    try {
      return { fh: await openFileAt(dir, name, file), resolved };
    } finally {
      await dir.close();
    }
  } catch (err) {
    if (!(err instanceof SafeFsError)) throw err;
    if (err.reason === "symlink") throw new WorkspacePathError("outside_workspace", requested, `${requested} goes through a symlink (${err.target}, changed while it was opened)`);
    if (err.reason === "not_a_directory") throw new WorkspacePathError("not_found", requested, `${requested}: ${err.target} is not a folder`);
    if (err.reason === "hard_link") throw new WorkspacePathError("hard_link", requested, `${requested} has more than one hard link`);
    throw new WorkspacePathError("not_a_file", requested, `${requested} is not a regular file`);
  }
}

/**
 * Reads a text file inside the workspace. `line` (1-based) and `limit` (lines) select a
 * range as in ACP's `ReadTextFileRequest`.
 * @throws WorkspacePathError (outside, not found, larger than {@link MAX_READ_BYTES}, not a regular file, hard-linked)
 */
export async function readWorkspaceFile(root: string, requested: string, line?: number | null, limit?: number | null): Promise<string> {
  let fh: FileHandle;
  try {
    ({ fh } = await openInWorkspace(root, requested, {}));
  } catch (err) {
    if (err instanceof WorkspacePathError) throw err;
    const code = (err as NodeJS.ErrnoException).code;
    throw new WorkspacePathError("not_found", requested, `${requested}: ${code ?? String(err)}`);
  }
  try {
    const tooLarge = (await fh.stat()).size > MAX_READ_BYTES;
    const { data, over } = tooLarge ? { data: Buffer.alloc(0), over: true } : await readAtMost(fh, MAX_READ_BYTES);
    if (over) throw new WorkspacePathError("too_large", requested, `${requested} is larger than ${MAX_READ_BYTES} bytes`);
    const text = data.toString("utf8");
    if (!line && !limit) return text;
    const lines = text.split("\n");
    const start = Math.max(0, (line ?? 1) - 1);
    return lines.slice(start, limit ? start + limit : undefined).join("\n");
  } finally {
    await fh.close();
  }
}

/**
 * Writes (creates or replaces) a text file inside the workspace, creating missing parent
 * folders; new folders and the file are given to `runAs` when set.
 * @returns the file's (resolved) path
 * @throws WorkspacePathError (`outside_workspace`, also for a folder swapped for a symlink meanwhile; `not_a_file`, `hard_link`, `not_found` when a parent is a file); other file system errors
 */
export async function writeWorkspaceFile(root: string, requested: string, content: string, runAs?: RunAs): Promise<string> {
  const { fh, resolved } = await openInWorkspace(root, requested, { write: true, create: true, ...(runAs ? { owner: runAs } : {}) });
  try {
    await fh.truncate(0);
    await fh.writeFile(content, "utf8");
  } finally {
    await fh.close();
  }
  return resolved;
}
