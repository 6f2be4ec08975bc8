/**
 * Per-run directories. Every run works in a directory inside the workspaces
 * root; a requested `cwd` (relative to the root, or absolute) must resolve,
 * after following symlinks, inside the root, or it is refused with a
 * ValidationError (`cwd_outside_workspace`, 400). Agents also get an isolated
 * home directory under `<data_dir>/homes`.
 */
import { lstat, mkdir, realpath } from "node:fs/promises";
import path from "node:path";
import { ValidationError } from "../errors.ts";

/** Resolves `p` through symlinks as far as it exists, re-appending the part that does not exist yet. */
async function resolveExisting(p: string): Promise<string> {
  const missing: string[] = [];
  let cur = p;
  for (;;) {
    try {
      const real = await realpath(cur);
      return path.join(real, ...missing.reverse());
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === "ENOTDIR") throw new ValidationError("metadata.cwd goes through a file, not a directory", { field: "metadata.cwd" }, "cwd_not_directory");
      if (code !== "ENOENT") throw err;
      if (await isSymlink(cur)) {
        // A dangling symlink: where it points is not ours to create.
        throw new ValidationError("metadata.cwd must be a directory inside the workspaces root", { field: "metadata.cwd" }, "cwd_outside_workspace");
      }
      const parent = path.dirname(cur);
      if (parent === cur) throw err;
      missing.push(path.basename(cur));
      cur = parent;
    }
  }
}

async function isSymlink(p: string): Promise<boolean> {
  try {
    return (await lstat(p)).isSymbolicLink();
  } catch {
    return false;
  }
}

function isInside(root: string, p: string): boolean {
  const rel = path.relative(root, p);
  return rel === "" || (rel !== ".." && !rel.startsWith(`..${path.sep}`) && !path.isAbsolute(rel));
}

/**
 * Returns the absolute, symlink-free working directory for a run and creates it.
 * @param root the workspaces root (created if missing)
 * @param runId used for the default directory `<root>/<runId>`
 * @param requested the request's `metadata.cwd`, relative to the root or absolute
 * @throws ValidationError `cwd_outside_workspace` when it resolves outside the root (also via symlinks)
 */
export async function resolveRunCwd(root: string, runId: string, requested?: string): Promise<string> {
  await mkdir(root, { recursive: true });
  const realRoot = await realpath(root);
  if (requested !== undefined && requested.includes("\0")) throw new ValidationError("cwd contains a NUL byte", { field: "metadata.cwd" }, "cwd_outside_workspace");
  const wanted = requested === undefined ? path.join(realRoot, runId) : path.resolve(realRoot, requested);
  const resolved = await resolveExisting(wanted);
  if (!isInside(realRoot, resolved) || resolved === realRoot) {
    throw new ValidationError("metadata.cwd must be a directory inside the workspaces root", { field: "metadata.cwd", value: requested }, "cwd_outside_workspace");
  }
  try {
    await mkdir(resolved, { recursive: true });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "EEXIST" || code === "ENOTDIR") throw new ValidationError("metadata.cwd names a file, not a directory", { field: "metadata.cwd", value: requested }, "cwd_not_directory");
    throw err;
  }
  // Re-check after creation: a symlink could have been swapped in between.
  const final = await realpath(resolved);
  if (!isInside(realRoot, final)) throw new ValidationError("metadata.cwd must be a directory inside the workspaces root", { field: "metadata.cwd", value: requested }, "cwd_outside_workspace");
  return final;
}

/** Creates (mode 0700) and returns the isolated home directory `<homesRoot>/<key>`. */
export async function ensureHome(homesRoot: string, key: string): Promise<string> {
  const dir = path.join(homesRoot, key);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  return dir;
}
