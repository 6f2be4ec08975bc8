/**
 * Artifacts of `task` runs (the OpenAaaS contract, docs/architecture.md#containers): the
 * regular files a batch container wrote under the run's workspace, found on
 * the host side of the bind mount once the container is gone.
 *
 * Nothing here follows a symbolic link: the walk uses `lstat` and descends
 * only into real directories, links (to anywhere, inside or outside) are
 * neither listed nor served, and {@link openArtifact} refuses a path with a
 * link in any component (each directory is `lstat`ed, the file is opened with
 * `O_NOFOLLOW`, and the opened descriptor's real path must lie inside the
 * workspace). FIFOs, sockets and devices are skipped too (and opened with
 * `O_NONBLOCK`, so a FIFO put in place later cannot hang a download).
 *
 * The listing is bounded: at most `maxFiles` files and `maxBytes` bytes in
 * total are listed, in a stable order (names sorted by code unit, depth
 * first), and the walk itself visits at most `maxEntries` directory entries
 * and `maxDepth` levels, so a container that made millions of files or a very
 * deep tree costs a bounded amount of work. What is left out is counted in
 * {@link ArtifactListing.omitted}.
 */
import { constants } from "node:fs";
import { lstat, open, readdir, readlink, realpath, type FileHandle } from "node:fs/promises";
import path from "node:path";
import type { Artifact } from "../protocol/events.ts";

/** Bounds of {@link collectArtifacts}. */
export interface ArtifactLimits {
  /** Most files listed. */
  maxFiles: number;
  /** Most bytes listed in total (sum of `size_bytes`). */
  maxBytes: number;
  /** Most directory entries looked at (default max(10 000, 4 × maxFiles)). */
  maxEntries?: number;
  /** Deepest directory level descended into (default 64). */
  maxDepth?: number;
}

/** What {@link collectArtifacts} found. */
export interface ArtifactListing {
  artifacts: Artifact[];
  /** Bytes listed (sum of `size_bytes`). */
  totalBytes: number;
  /** What was left out and why. */
  omitted: {
    /** Regular files past `maxFiles` or `maxBytes` (or past the entry budget). */
    overCap: number;
    /** Symbolic links (never followed, never listed). */
    symlinks: number;
    /** FIFOs, sockets, devices, and entries that vanished during the walk. */
    other: number;
    /** True when the entry budget or the depth limit stopped the walk early. */
    truncatedWalk: boolean;
  };
}

/** Top-level names of the workspace that are inputs, not outputs: never listed, never served. */
export const TASK_INPUT_NAMES: ReadonlySet<string> = new Set(["task.json", "input"]);

/**
 * Lists the artifacts under `root` (see the module comment), excluding the
 * top-level names in `exclude` (default {@link TASK_INPUT_NAMES}).
 * @throws the fs error when `root` itself cannot be read
 * @example
 * const { artifacts, omitted } = await collectArtifacts("/data/workspaces/u1/run_01", { maxFiles: 1000, maxBytes: 1 << 30 });
 * // artifacts: [{ path: "out/result.json", size_bytes: 42 }]
 */
export async function collectArtifacts(root: string, limits: ArtifactLimits, exclude: ReadonlySet<string> = TASK_INPUT_NAMES): Promise<ArtifactListing> {
  const maxEntries = limits.maxEntries ?? Math.max(10_000, limits.maxFiles * 4);
  const maxDepth = limits.maxDepth ?? 64;
  const out: ArtifactListing = { artifacts: [], totalBytes: 0, omitted: { overCap: 0, symlinks: 0, other: 0, truncatedWalk: false } };
  let seen = 0;
  let full = false;

  const walk = async (dir: string, rel: string, depth: number): Promise<void> => {
    const names = (await readdir(dir)).sort();
    for (const name of names) {
      if (depth === 0 && exclude.has(name)) continue;
      if (++seen > maxEntries) {
        out.omitted.truncatedWalk = true;
        return;
      }
      const p = path.join(dir, name);
      const r = rel ? `${rel}/${name}` : name;
      let st;
      try {
        st = await lstat(p);
      } catch {
        out.omitted.other++;
        continue;
      }
      if (st.isSymbolicLink()) out.omitted.symlinks++;
      else if (st.isDirectory()) {
        if (depth + 1 > maxDepth) out.omitted.truncatedWalk = true;
        else await walk(p, r, depth + 1).catch(() => void out.omitted.other++);
        if (out.omitted.truncatedWalk && seen > maxEntries) return;
      } else if (st.isFile()) {
        if (full || out.artifacts.length >= limits.maxFiles || out.totalBytes + st.size > limits.maxBytes) {
          // Stop listing at the first file over the cap, so what is listed is a prefix of the order.
          full = true;
          out.omitted.overCap++;
        } else {
          out.artifacts.push({ path: r, size_bytes: st.size });
          out.totalBytes += st.size;
        }
      } else out.omitted.other++;
    }
  };
  await walk(root, "", 0);
  return out;
}

/** Why {@link openArtifact} refused a path. */
export type ArtifactOpenFailure = "invalid_path" | "not_found";

/**
 * Checks an artifact path as a client sends it: relative, `/`-separated, no
 * empty, `.` or `..` segment, no NUL, not one of the task's inputs.
 * Returns its segments, or undefined when it is not acceptable.
 */
export function artifactSegments(rel: string, exclude: ReadonlySet<string> = TASK_INPUT_NAMES): string[] | undefined {
  if (!rel || rel.length > 4096 || rel.includes("\0") || rel.startsWith("/")) return undefined;
  const segs = rel.split("/");
  if (segs.some((s) => s === "" || s === "." || s === "..")) return undefined;
  if (exclude.has(segs[0]!)) return undefined;
  return segs;
}

/**
 * Opens an artifact under `root` for reading without following any link (see
 * the module comment). The caller closes the handle.
 * @returns the open handle and its size, or the reason it cannot be served
 * @example
 * const r = await openArtifact(row.cwd, "out/result.json");
 * if ("handle" in r) ctx.body = r.handle.createReadStream();
 */
export async function openArtifact(root: string, rel: string): Promise<{ handle: FileHandle; size: number } | { failure: ArtifactOpenFailure }> {
  const segs = artifactSegments(rel);
  if (!segs) return { failure: "invalid_path" };
  let realRoot: string;
  try {
    realRoot = await realpath(root);
  } catch {
    return { failure: "not_found" };
  }
  // Every directory on the way must be a real directory, not a link.
  let dir = realRoot;
  for (const s of segs.slice(0, -1)) {
    dir = path.join(dir, s);
    const st = await lstat(dir).catch(() => undefined);
    if (!st?.isDirectory()) return { failure: "not_found" };
  }
  let handle: FileHandle;
  try {
    handle = await open(path.join(dir, segs.at(-1)!), constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch {
    return { failure: "not_found" };
  }
  try {
    const st = await handle.stat();
    // Where the descriptor really points (Linux); elsewhere the path's realpath.
    const real = await readlink(`/proc/self/fd/${handle.fd}`).catch(() => realpath(path.join(dir, segs.at(-1)!)));
    if (!st.isFile() || !real.startsWith(`${realRoot}/`)) {
      await handle.close();
      return { failure: "not_found" };
    }
    return { handle, size: st.size };
  } catch {
    await handle.close().catch(() => {});
    return { failure: "not_found" };
  }
}
