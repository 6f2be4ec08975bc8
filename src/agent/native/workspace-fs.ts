/**
 * The run's workspace as the native agent's file tools see it: every path the model names is
 * resolved inside the run's folder with the confined file operations of `src/agent/acp/fs.ts`
 * (`resolveInWorkspace`, descriptor walks of `safe-fs.ts`: neither `../` nor a symlink reaches
 * outside). On the host the model sees the real folder; in a container it sees the folder as
 * mounted there (`/workspace`): its paths are mapped onto the host folder first
 * (`containerPathToHost`), and paths in results are shown as the container sees them.
 *
 * Directory listings and walks (`list_dir`, `glob`, `grep`) read entries with `lstat` types and
 * never descend through a symlink.
 */
import { opendir, realpath } from "node:fs/promises";
import path from "node:path";
import type { RunAs } from "../run-as.ts";
import { containerPathToHost, hostPathToContainer, readWorkspaceFile, resolveInWorkspace, writeWorkspaceFile, type ContainerPathMap } from "../acp/fs.ts";

/** One directory entry. `type` from lstat: a symlink is `symlink`, never followed. */
export interface DirEntry {
  name: string;
  type: "file" | "dir" | "symlink" | "other";
}

/** Options of {@link createWorkspaceFs}. */
export interface WorkspaceFsOptions {
  /** The run's folder on the host (absolute). */
  root: string;
  /** In a container: where the container sees `root`. */
  container?: ContainerPathMap;
  /** Owner of files and folders the tools create (the run's user on the host, the container's user). */
  owner?: RunAs;
}

/** The confined file operations; every method throws `WorkspacePathError` for a refused path. */
export interface WorkspaceFs {
  /** The workspace root as the model sees it. */
  readonly root: string;
  /** The workspace root on the host (never shown to a containerized model). */
  readonly hostRoot: string;
  /** The host path of a model path (checked to lie inside the workspace, symlinks resolved). */
  resolve(p: string): Promise<string>;
  /** A host path as the model sees it. */
  show(hostPath: string): string;
  /** The text of a file; `line` (1-based) and `limit` (lines) select a range. */
  read(p: string, line?: number, limit?: number): Promise<string>;
  /** Creates or replaces a file (parents created). Returns the host path. */
  write(p: string, content: string): Promise<string>;
  /** Entries of a folder, sorted by name. */
  list(p: string): Promise<DirEntry[]>;
  /**
   * Walks the tree below `p` depth first (names sorted), calling `visit` with each entry's path
   * relative to `p` (`/`-separated); never through a symlink. Stops after `maxEntries` entries or
   * when `visit` returns false. Folders named `.git` and `node_modules` are not entered.
   * @returns whether the walk was cut short by `maxEntries`
   */
  walk(p: string, visit: (rel: string, e: DirEntry) => boolean | void, maxEntries: number): Promise<boolean>;
}

const typeOf = (d: { isFile(): boolean; isDirectory(): boolean; isSymbolicLink(): boolean }): DirEntry["type"] =>
  d.isSymbolicLink() ? "symlink" : d.isDirectory() ? "dir" : d.isFile() ? "file" : "other";

/** Folders {@link WorkspaceFs.walk} does not enter. */
const SKIPPED_DIRS = new Set([".git", "node_modules"]);

async function readDir(dir: string): Promise<DirEntry[]> {
  const out: DirEntry[] = [];
  const d = await opendir(dir);
  for await (const e of d) out.push({ name: e.name, type: typeOf(e) });
  return out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

/**
 * Creates the workspace view of one run; see the module comment.
 * @example
 * const fs = createWorkspaceFs({ root: "/data/ws/u1/run_1" });
 * await fs.write("src/a.ts", "x"); // "/data/ws/u1/run_1/src/a.ts"
 */
export function createWorkspaceFs(o: WorkspaceFsOptions): WorkspaceFs {
  const map = o.container;
  const onHost = (p: string) => (map ? containerPathToHost(p, map) : path.resolve(o.root, p));
  let realRoot: string | undefined;
  const resolve = async (p: string) => {
    const resolved = await resolveInWorkspace(o.root, onHost(p));
    realRoot ??= await realpath(o.root);
    return resolved;
  };
  const show = (hostPath: string) => {
    if (!map) return hostPath;
    try {
      return hostPathToContainer(hostPath, { ...map, hostRoot: realRoot ?? map.hostRoot });
    } catch {
      return hostPath;
    }
  };
  const fs: WorkspaceFs = {
    root: map ? map.containerRoot : o.root,
    hostRoot: o.root,
    resolve,
    show,
    read: (p, line, limit) => readWorkspaceFile(o.root, onHost(p), line ?? null, limit ?? null),
    write: (p, content) => writeWorkspaceFile(o.root, onHost(p), content, o.owner),
    list: async (p) => readDir(await resolve(p)),
    async walk(p, visit, maxEntries) {
      const top = await resolve(p);
      let seen = 0;
      const go = async (dir: string, rel: string): Promise<boolean> => {
        let entries: DirEntry[];
        try {
          entries = await readDir(dir);
        } catch {
          return true; // gone or unreadable: skipped
        }
        for (const e of entries) {
          if (++seen > maxEntries) return false;
          const r = rel ? `${rel}/${e.name}` : e.name;
          if (visit(r, e) === false) return false;
          if (e.type === "dir" && !SKIPPED_DIRS.has(e.name) && !(await go(path.join(dir, e.name), r))) return false;
        }
        return true;
      };
      const complete = await go(top, "");
      return !complete && seen > maxEntries;
    },
  };
  return fs;
}
