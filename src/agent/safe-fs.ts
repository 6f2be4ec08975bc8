/**
 * File system steps the server takes, often as root, inside folders an agent can change at the
 * same time (a run's workspace and home): nothing here hands a path of more than one component
 * to the kernel below a folder that was opened and checked first. Node has no `openat`/`mkdirat`,
 * so a step names its target as `/proc/self/fd/<fd>/<name>`: the kernel resolves the directory
 * through the open descriptor (the magic link, which a rename or a swapped symlink cannot
 * redirect) and only `<name>` by name, which these functions never follow when it is a symlink
 * (`O_NOFOLLOW`; `mkdir`, `lchown` and `rmdir` do not follow their last component).
 *
 * Requires Linux with `/proc` mounted (other systems: the `/proc/self/fd` paths fail with
 * `ENOENT`). Every function throws {@link SafeFsError} for what it refuses and passes other file
 * system errors (`ENOENT`, `EACCES`, `EEXIST` for `exclusive` …) on as Node's errors.
 *
 * @example
 * const root = await openDir("/data/workspaces/u1/run_1");
 * try {
 *   const dir = await openDirPath(root, ["src", "new"], { create: true, owner: { uid: 65534, gid: 65534 } });
 *   const fh = await openFileAt(dir, "x.ts", { write: true, create: true, owner: { uid: 65534, gid: 65534 } }).finally(() => dir.close());
 *   try { await fh.truncate(0); await fh.writeFile("…"); } finally { await fh.close(); }
 * } finally {
 *   await root.close();
 * }
 */
import { constants, type Dirent } from "node:fs";
import { lstat, mkdir, open, opendir, rmdir, unlink, type FileHandle } from "node:fs/promises";

/** A numeric user and group (the shape of `RunAs`). */
export interface Owner {
  uid: number;
  gid: number;
}

/** Entries {@link chownTree} visits at most by default (a larger tree is left partly as it is). */
export const MAX_TREE_ENTRIES = 50_000;
/** Directory levels below the top that {@link chownTree} and {@link removeTreeAt} descend (one descriptor is open per level). */
export const MAX_TREE_DEPTH = 256;

/**
 * Why a step was refused: `symlink` (a component, or the file, is a symbolic link), `not_a_directory`,
 * `not_a_file` (a FIFO, socket or device where a regular file was expected), `hard_link` (a file with
 * more than one link: it may be a file from outside, linked in), `bad_name` (empty, `.`, `..` or with
 * `/`), `too_deep` (a tree deeper than {@link MAX_TREE_DEPTH}).
 */
export class SafeFsError extends Error {
  constructor(
    readonly reason: "symlink" | "not_a_directory" | "not_a_file" | "hard_link" | "bad_name" | "too_deep",
    /** The name (or path) the step was about. */
    readonly target: string,
    message: string,
  ) {
    super(message);
    this.name = "SafeFsError";
  }
}

const code = (err: unknown) => (err as NodeJS.ErrnoException).code;
const DIR_FLAGS = constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW;
const CHUNK_BYTES = 64 * 1024;
/** Entries {@link chownTree} changes at once. */
const CHOWN_BATCH = 8;

/**
 * `/proc/self/fd/<fd>/<name>`: `name` inside the directory open as `dir` (the directory itself without `name`).
 * @throws SafeFsError `bad_name` for a name that is not exactly one component
 */
export function pathAt(dir: FileHandle, name?: string): string {
  if (name === undefined) return `/proc/self/fd/${dir.fd}`;
  checkName(name);
  return `/proc/self/fd/${dir.fd}/${name}`;
}

function checkName(name: string): void {
  if (name === "" || name === "." || name === ".." || name.includes("/") || name.includes("\0")) throw new SafeFsError("bad_name", name, `${JSON.stringify(name)} is not a single file name`);
}

/** The refusal for a failed `O_NOFOLLOW | O_DIRECTORY` open of `p` (a symlink, or something else than a directory). */
async function notADirectory(p: string, shown: string): Promise<SafeFsError> {
  const st = await lstat(p).catch(() => undefined);
  return st?.isSymbolicLink()
    ? new SafeFsError("symlink", shown, `${shown} is a symbolic link`)
    : new SafeFsError("not_a_directory", shown, `${shown} is not a directory`);
}

async function openDirectory(p: string, shown: string): Promise<FileHandle> {
  try {
    return await open(p, DIR_FLAGS);
  } catch (err) {
    if (code(err) === "ELOOP" || code(err) === "ENOTDIR") throw await notADirectory(p, shown);
    throw err;
  }
}

/**
 * Opens the directory `dirPath` (absolute; a trusted path: its earlier components are followed)
 * for the steps below, refusing a symlink as its last component.
 * @throws SafeFsError `symlink`, `not_a_directory`; `ENOENT` and other errors of `open`
 */
export function openDir(dirPath: string): Promise<FileHandle> {
  return openDirectory(dirPath, dirPath);
}

/** Options of {@link openDirAt} and {@link openDirPath}. */
export interface OpenDirOptions {
  /** Create a missing directory (an existing one is used as it is). */
  create?: boolean;
  /** Mode of a created directory (default 0o755, less the umask). */
  mode?: number;
  /** Give a directory created here to this user (through its descriptor). */
  owner?: Owner;
}

/**
 * Opens the directory `name` inside the open directory `dir`, creating it first when asked; a
 * symlink there is refused, never followed. The caller closes the returned handle.
 * @throws SafeFsError `symlink`, `not_a_directory`, `bad_name`; `ENOENT` (missing, not `create`) and other errors
 */
export async function openDirAt(dir: FileHandle, name: string, o: OpenDirOptions = {}): Promise<FileHandle> {
  const p = pathAt(dir, name);
  let created = false;
  if (o.create) {
    try {
      await mkdir(p, { mode: o.mode ?? 0o755 });
      created = true;
    } catch (err) {
      if (code(err) !== "EEXIST") throw err;
    }
  }
  const fh = await openDirectory(p, name);
  if (created && o.owner) {
    try {
      await fh.chown(o.owner.uid, o.owner.gid);
    } catch (err) {
      await fh.close();
      throw err;
    }
  }
  return fh;
}

/**
 * Opens the directory reached from the open directory `root` through `names` (one component
 * each), one step at a time as {@link openDirAt} does; `names` empty: `root` again, as a new handle.
 * `root` stays open; the caller closes the returned handle.
 * @throws SafeFsError `symlink`, `not_a_directory`, `bad_name` for the first component refused; `ENOENT` and other errors
 */
export async function openDirPath(root: FileHandle, names: readonly string[], o: OpenDirOptions = {}): Promise<FileHandle> {
  let cur = await open(pathAt(root), constants.O_RDONLY | constants.O_DIRECTORY); // the magic link itself is followed: the same directory
  for (const name of names) {
    try {
      const next = await openDirAt(cur, name, o);
      await cur.close();
      cur = next;
    } catch (err) {
      await cur.close();
      throw err;
    }
  }
  return cur;
}

/** Options of {@link openFileAt}. */
export interface OpenFileOptions {
  /** Open for writing (default: reading). The file is never truncated by the open: call `truncate` on the handle. */
  write?: boolean;
  /** Create the file when missing. */
  create?: boolean;
  /** With `create`: fail with `EEXIST` when it exists. */
  exclusive?: boolean;
  /** Mode of a created file (default 0o644, less the umask). */
  mode?: number;
  /** Give the file to this user (through its descriptor), created or not. */
  owner?: Owner;
}

/**
 * Opens the regular file `name` inside the open directory `dir` with `O_NOFOLLOW | O_NONBLOCK`
 * (a FIFO neither blocks the open nor is accepted), then checks what was opened: a regular file
 * with exactly one link. The caller closes the returned handle.
 * @throws SafeFsError `symlink`, `not_a_file`, `hard_link`, `bad_name`; `ENOENT`, `EEXIST` (`exclusive`), `ENXIO` (a FIFO opened for writing) and other errors
 */
export async function openFileAt(dir: FileHandle, name: string, o: OpenFileOptions = {}): Promise<FileHandle> {
  const p = pathAt(dir, name);
  const flags =
    (o.write ? constants.O_WRONLY : constants.O_RDONLY) |
    constants.O_NOFOLLOW |
    constants.O_NONBLOCK |
    constants.O_NOCTTY |
    (o.create ? constants.O_CREAT : 0) |
    (o.create && o.exclusive ? constants.O_EXCL : 0);
  let fh: FileHandle;
  try {
    fh = await open(p, flags, o.mode ?? 0o644);
  } catch (err) {
    if (code(err) === "ELOOP") throw new SafeFsError("symlink", name, `${name} is a symbolic link`);
    if (code(err) === "ENXIO") throw new SafeFsError("not_a_file", name, `${name} is not a regular file`);
    throw err;
  }
  try {
    const st = await fh.stat();
    if (!st.isFile()) throw new SafeFsError("not_a_file", name, `${name} is not a regular file`);
    if (st.nlink !== 1) throw new SafeFsError("hard_link", name, `${name} has ${st.nlink} hard links`);
    if (o.owner) await fh.chown(o.owner.uid, o.owner.gid);
    return fh;
  } catch (err) {
    await fh.close();
    throw err;
  }
}

/**
 * Reads an open file from its current position to its end, or `max + 1` bytes, whichever comes
 * first (a file that grows while read, or whose size said 0, is not read without bound).
 * @returns the bytes, and `over` when there were more than `max`
 */
export async function readAtMost(fh: FileHandle, max: number): Promise<{ data: Buffer; over: boolean }> {
  const parts: Buffer[] = [];
  let total = 0;
  while (total <= max) {
    const buf = Buffer.allocUnsafe(Math.min(CHUNK_BYTES, max + 1 - total));
    const { bytesRead } = await fh.read(buf, 0, buf.length, null);
    if (bytesRead === 0) break;
    parts.push(buf.subarray(0, bytesRead));
    total += bytesRead;
  }
  return total > max ? { data: Buffer.concat(parts).subarray(0, max), over: true } : { data: Buffer.concat(parts), over: false };
}

/** The entries of the open directory `dir`, at most `max` (`opendir` through the descriptor). */
async function listAt(dir: FileHandle, max: number): Promise<Dirent[]> {
  const out: Dirent[] = [];
  if (max <= 0) return out;
  const d = await opendir(pathAt(dir));
  try {
    for (let e = await d.read(); e !== null; e = await d.read()) {
      out.push(e);
      if (out.length >= max) break;
    }
  } finally {
    await d.close();
  }
  return out;
}

/** Opens `name` in `dir` without following a symlink or blocking on a FIFO; undefined for a symlink, a socket, or an entry gone meanwhile. */
async function openEntryAt(dir: FileHandle, name: string): Promise<FileHandle | undefined> {
  try {
    return await open(pathAt(dir, name), constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK | constants.O_NOCTTY);
  } catch (err) {
    if (code(err) === "ELOOP" || code(err) === "ENXIO" || code(err) === "ENOENT") return undefined;
    throw err;
  }
}

/**
 * Gives the directory `dir` and everything below it to `owner`, walking descriptors (see the module
 * comment): every entry is opened with `O_NOFOLLOW | O_NONBLOCK` and checked and changed through its
 * descriptor, so a folder swapped for a symlink meanwhile is skipped, never followed, and a FIFO does not
 * block. Directories, and regular files and FIFOs with exactly one link, are changed; symlinks, sockets,
 * hard-linked files (which may be files from outside, linked in) and anything else are left as they are.
 * Visits at most `maxEntries` entries (default {@link MAX_TREE_ENTRIES}) and {@link MAX_TREE_DEPTH}
 * levels below `dir`: the rest of a larger tree is left as it is. `dir` itself is opened by path (its
 * last component not followed); when it is not a directory, only it is changed under the same rules.
 * @returns how many entries were visited (`dir` included)
 * @throws `ENOENT` when `dir` does not exist; errors of `fchown`
 * @example
 * await chownTree("/data/workspaces/u1/run_1", { uid: 1000, gid: 1000 });
 */
export async function chownTree(dir: string, owner: Owner, maxEntries = MAX_TREE_ENTRIES): Promise<number> {
  let top: FileHandle;
  try {
    top = await open(dir, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK | constants.O_NOCTTY);
  } catch (err) {
    if (code(err) === "ELOOP" || code(err) === "ENXIO") return 1; // a symlink or a socket: left as it is
    throw err;
  }
  let count = 0;
  /** Changes the open `fh` when it is a regular file or FIFO with one link; returns whether it is a directory (changed when walked). */
  const change = async (fh: FileHandle): Promise<boolean> => {
    const st = await fh.stat();
    if ((st.isFile() || st.isFIFO()) && st.nlink === 1) await fh.chown(owner.uid, owner.gid);
    return st.isDirectory();
  };
  const walk = async (at: FileHandle, depth: number): Promise<void> => {
    await at.chown(owner.uid, owner.gid);
    if (depth >= MAX_TREE_DEPTH) return;
    const subdirs: string[] = [];
    const entries = await listAt(at, maxEntries - count);
    // A few entries at a time (the thread pool has several threads); subdirectories are noted and walked one by one after.
    for (let i = 0; i < entries.length && count < maxEntries; i += CHOWN_BATCH) {
      const batch = entries.slice(i, i + Math.min(CHOWN_BATCH, maxEntries - count));
      count += batch.length;
      await Promise.all(
        batch.map(async (e) => {
          const fh = await openEntryAt(at, e.name);
          if (!fh) return;
          try {
            if (await change(fh)) subdirs.push(e.name);
          } finally {
            await fh.close();
          }
        }),
      );
    }
    for (const name of subdirs) {
      let sub: FileHandle;
      try {
        sub = await open(pathAt(at, name), DIR_FLAGS); // swapped for a symlink since: refused, not followed
      } catch {
        continue;
      }
      try {
        await walk(sub, depth + 1);
      } finally {
        await sub.close();
      }
    }
  };
  count++;
  const isDir = await change(top).catch(async (err: unknown) => {
    await top.close();
    throw err;
  });
  try {
    if (isDir) await walk(top, 0);
  } finally {
    await top.close();
  }
  return count;
}

/**
 * Removes `name` inside the open directory `dir` and, when it is a directory, everything below it,
 * through descriptors (a folder swapped for a symlink meanwhile is unlinked as a link, never
 * followed). Missing: nothing happens.
 * @throws SafeFsError `too_deep` below {@link MAX_TREE_DEPTH} levels, `bad_name`; `ENOTEMPTY` when files are added meanwhile, other errors
 */
export async function removeTreeAt(dir: FileHandle, name: string, depth = 0): Promise<void> {
  const p = pathAt(dir, name);
  let sub: FileHandle;
  try {
    sub = await open(p, DIR_FLAGS);
  } catch (err) {
    if (code(err) === "ENOENT") return;
    if (code(err) !== "ELOOP" && code(err) !== "ENOTDIR") throw err;
    await unlink(p).catch((e: unknown) => {
      if (code(e) !== "ENOENT") throw e;
    });
    return;
  }
  try {
    if (depth >= MAX_TREE_DEPTH) throw new SafeFsError("too_deep", name, `${name} is nested deeper than ${MAX_TREE_DEPTH} levels`);
    for (const e of await listAt(sub, Number.MAX_SAFE_INTEGER)) await removeTreeAt(sub, e.name, depth + 1);
  } finally {
    await sub.close();
  }
  await rmdir(p);
}
