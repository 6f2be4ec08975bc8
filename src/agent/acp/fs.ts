/**
 * The ACP client's file system capability (`fs/read_text_file`, `fs/write_text_file`),
 * confined to the run's workspace: a path is resolved against the workspace, the real path
 * of its nearest existing ancestor (symlinks followed, also a dangling last link) must lie
 * inside the workspace's real path, and the final open refuses a symlink (`O_NOFOLLOW`), so
 * neither `../` nor a link planted by the agent reaches outside. Against a link swapped in
 * between the check and the open (the agent runs concurrently), the opened descriptor is
 * checked again through `/proc/self/fd` (Linux), and a write opens its file relative to the
 * already checked parent folder's descriptor. Files the server creates are handed to the
 * run's user.
 *
 * In a container the agent names paths as it sees them (the workspace is mounted at
 * `/workspace`): {@link containerPathToHost} maps them onto the host workspace first, refusing
 * anything outside the run's folder there; the checks above then run on the host path. A
 * symlink with an absolute target means the container's file system to the agent but the
 * host's to these checks, so such a link is refused (outside, or dangling) rather than followed.
 */
import { constants } from "node:fs";
import { lchown, lstat, mkdir, open, realpath } from "node:fs/promises";
import path from "node:path";
import type { RunAs } from "../run-as.ts";

/** Largest file `fs/read_text_file` returns, bytes. */
export const MAX_READ_BYTES = 10 * 1024 * 1024;

/** Why a path was refused: `outside_workspace` (also through a symlink) or `not_found`, `too_large`. */
export class WorkspacePathError extends Error {
  constructor(
    readonly reason: "outside_workspace" | "not_found" | "too_large" | "not_a_file",
    readonly requested: string,
    message: string,
  ) {
    super(message);
    this.name = "WorkspacePathError";
  }
}

const inside = (root: string, p: string) => p === root || p.startsWith(root.endsWith(path.sep) ? root : root + path.sep);

/** The real path of an open descriptor (Linux `/proc/self/fd`), or undefined where there is no /proc. */
async function realpathOfFd(fd: number): Promise<string | undefined> {
  try {
    return await realpath(`/proc/self/fd/${fd}`);
  } catch {
    return undefined;
  }
}

/** Throws `outside_workspace` when the open descriptor `fd` is not inside `root` (a link swapped in after the check). */
async function checkOpened(root: string, fd: number, requested: string): Promise<void> {
  const real = await realpathOfFd(fd);
  if (real !== undefined && !inside(await realpath(root), real)) throw new WorkspacePathError("outside_workspace", requested, `${requested} resolves outside the run's workspace (through a symlink)`);
}

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

/**
 * Reads a text file inside the workspace. `line` (1-based) and `limit` (lines) select a
 * range as in ACP's `ReadTextFileRequest`.
 * @throws WorkspacePathError (outside, not found, larger than {@link MAX_READ_BYTES}, not a regular file)
 */
export async function readWorkspaceFile(root: string, requested: string, line?: number | null, limit?: number | null): Promise<string> {
  const file = await resolveInWorkspace(root, requested);
  let fh;
  try {
    fh = await open(file, constants.O_RDONLY | constants.O_NOFOLLOW);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "ELOOP") throw new WorkspacePathError("outside_workspace", requested, `${requested} is a symlink`);
    throw new WorkspacePathError("not_found", requested, `${requested}: ${code ?? String(err)}`);
  }
  try {
    await checkOpened(root, fh.fd, requested);
    const st = await fh.stat();
    if (!st.isFile()) throw new WorkspacePathError("not_a_file", requested, `${requested} is not a regular file`);
    if (st.size > MAX_READ_BYTES) throw new WorkspacePathError("too_large", requested, `${requested} is larger than ${MAX_READ_BYTES} bytes`);
    const text = await fh.readFile("utf8");
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
 * @throws WorkspacePathError `outside_workspace`
 */
export async function writeWorkspaceFile(root: string, requested: string, content: string, runAs?: RunAs): Promise<string> {
  const file = await resolveInWorkspace(root, requested);
  const dir = path.dirname(file);
  const created = await mkdir(dir, { recursive: true });
  // Open the folder, check what was opened, then create the file relative to that descriptor: a link
  // swapped into the path meanwhile cannot redirect the write.
  const dirFh = await open(dir, constants.O_RDONLY | constants.O_DIRECTORY);
  let fh;
  try {
    await checkOpened(root, dirFh.fd, requested);
    const viaFd = (await realpathOfFd(dirFh.fd)) !== undefined ? `/proc/self/fd/${dirFh.fd}/${path.basename(file)}` : file;
    fh = await open(viaFd, constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC | constants.O_NOFOLLOW, 0o644);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ELOOP") throw new WorkspacePathError("outside_workspace", requested, `${requested} is a symlink`);
    throw err;
  } finally {
    await dirFh.close();
  }
  try {
    await fh.writeFile(content, "utf8");
    if (runAs) await fh.chown(runAs.uid, runAs.gid);
  } finally {
    await fh.close();
  }
  if (runAs && created) {
    // Give every folder mkdir made (from `created` down to `dir`) to the run's user.
    for (let d = dir; inside(created, d); d = path.dirname(d)) {
      await lchown(d, runAs.uid, runAs.gid);
      if (d === created) break;
    }
  }
  return file;
}
