/**
 * The run's isolated home inside its container, just before the agent's exec
 * (the adapter has written the CLI's config into the host home by then):
 *
 * - `homeFrom: "mount"` (per-run and pooled containers): the home is already
 *   bind-mounted at HOME; when the server is root, what the adapter wrote is
 *   given to the container user (`chownTree` of `safe-fs.ts`: descriptors walked,
 *   symlinks never followed), so the CLI can
 *   write its sessions next to its config.
 * - `homeFrom: "copy"` (project containers, created before the run was
 *   known): the home's directories and regular files are archived (tar) and
 *   extracted into the container's per-run HOME by the container user, through
 *   exec (the archive travels base64-encoded in the exec's arguments, in
 *   chunks, staged in the container's /tmp). Symbolic links and the host
 *   TMPDIR (`tmp/`) are left out; at most {@link HOME_COPY_MAX_BYTES}.
 */
import { randomBytes } from "node:crypto";
import { lstat, readdir } from "node:fs/promises";
import path from "node:path";
import { ContainerError } from "../errors.ts";
import type { RunContainer } from "../container/run-container.ts";
import { createTarStream, type TarEntry } from "../container/tar.ts";
import type { ContainerHandle, ExecSpec } from "../container/types.ts";
import { chownTree } from "./safe-fs.ts";

/** Most bytes of file content a home copied into a container may hold. */
export const HOME_COPY_MAX_BYTES = 16 * 1024 * 1024;
/** Characters of base64 per exec argument (Linux caps one argument at 128 KiB). */
const CHUNK_CHARS = 96 * 1024;
/** Top-level entries of a home never copied: the host runs' TMPDIR. */
const SKIPPED = new Set(["tmp"]);

/**
 * The tar entries of a host home: directories and regular files below it (relative, `/`-separated), without
 * symbolic links, other special files and the top-level `tmp/`.
 * @returns the entries and their total file size in bytes
 * @throws ContainerError `container_failed` when the files exceed {@link HOME_COPY_MAX_BYTES}
 */
export async function listHomeEntries(home: string): Promise<{ entries: TarEntry[]; bytes: number }> {
  const entries: TarEntry[] = [];
  let bytes = 0;
  const walk = async (dir: string, rel: string): Promise<void> => {
    for (const name of (await readdir(dir)).sort()) {
      if (rel === "" && SKIPPED.has(name)) continue;
      const abs = path.join(dir, name);
      const relPath = rel === "" ? name : `${rel}/${name}`;
      const st = await lstat(abs);
      if (st.isDirectory()) {
        entries.push({ type: "dir", path: relPath, mode: st.mode & 0o700 });
        await walk(abs, relPath);
      } else if (st.isFile()) {
        bytes += st.size;
        if (bytes > HOME_COPY_MAX_BYTES)
          throw new ContainerError("container_failed", `the run's home ${home} holds more than ${HOME_COPY_MAX_BYTES / (1024 * 1024)} MiB; too much to copy into a project container`);
        entries.push({ type: "file", path: relPath, source: abs, mode: st.mode & 0o700 });
      }
    }
  };
  await walk(home, "");
  return { entries, bytes };
}

async function collect(entries: TarEntry[]): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const chunk of createTarStream(entries)) parts.push(chunk as Buffer);
  return Buffer.concat(parts);
}

async function run(handle: ContainerHandle, argv: string[], what: string): Promise<void> {
  const r = await handle.execCollect({ argv, cwd: "/" }, { maxBytes: 16 * 1024 });
  if (r.exitCode !== 0) throw new ContainerError("exec_failed", `copying the run's home into container ${handle.id.slice(0, 12)} failed (${what}, exit ${r.exitCode}): ${(r.stderr || r.stdout).trim().slice(-500)}`);
}

/**
 * Copies the host home `home` into `target` (absolute, created with mode 0700) inside the running container, as
 * the container's user; existing files there are overwritten, others kept (a resumed run's sessions).
 * @throws ContainerError `exec_failed` when a step fails in the container, `container_failed` for a home too large
 * @example
 * await copyHomeIn(handle, "/data/homes/run_01J…", "/home/agent/runs/run_01J…");
 */
export async function copyHomeIn(handle: ContainerHandle, home: string, target: string, listed?: TarEntry[]): Promise<void> {
  if (!target.startsWith("/") || target.split("/").includes("..")) throw new ContainerError("container_failed", `container home ${JSON.stringify(target)} is not an absolute path`);
  const entries = listed ?? (await listHomeEntries(home)).entries;
  const b64 = (await collect(entries)).toString("base64");
  const extract = 'set -e; umask 077; mkdir -p "$1"; chmod 700 "$1"; base64 -d | tar -x -C "$1"';
  if (b64.length <= CHUNK_CHARS) {
    await run(handle, ["/bin/sh", "-c", `printf %s "$2" | { ${extract}; }`, "sh", target, b64], "extract");
    return;
  }
  const stage = `/tmp/.openrunner-home-${randomBytes(8).toString("hex")}.b64`;
  try {
    for (let i = 0; i < b64.length; i += CHUNK_CHARS) {
      await run(handle, ["/bin/sh", "-c", 'umask 077; printf %s "$2" >> "$1"', "sh", stage, b64.slice(i, i + CHUNK_CHARS)], "stage");
    }
    await run(handle, ["/bin/sh", "-c", `{ ${extract}; } < "$2"`, "sh", target, stage], "extract");
  } finally {
    await handle.execCollect({ argv: ["rm", "-f", stage], cwd: "/" }).catch(() => undefined);
  }
}

/** Adjusts the agent's exec for its home; see {@link provideRunHome}. */
export type ExecHomeAdjust = (spec: ExecSpec) => ExecSpec;

const unchanged: ExecHomeAdjust = (spec) => spec;

/**
 * Creates HOME (mode 0700) in the agent's own exec, then runs the agent in its place
 * (`exec "$@"`: same process, same marker), instead of a separate copy exec.
 */
const createHomeFirst: ExecHomeAdjust = (spec) => ({ ...spec, argv: ["/bin/sh", "-c", 'mkdir -p -m 700 "$HOME" && exec "$@"', "sh", ...spec.argv] });

/**
 * Makes the run's home (`hostHome`, already written by the adapter) usable as HOME in `c`; see the module comment.
 * A copied home with no file in it (a shell run's) is not copied: the agent's exec creates it
 * itself, which saves one engine round trip (about 100 ms here) before every project run.
 * @param isRoot whether this process runs as root (default: `process.getuid() === 0`)
 * @returns how to adjust the agent's exec spec (apply it to the spec before `exec`)
 * @throws ContainerError from {@link copyHomeIn}; file system errors of the chown
 * @example
 * const adjust = await provideRunHome(container, ctx.home);
 * const x = await container.handle.exec(adjust(toContainerExec(command, ctx, container)));
 */
export async function provideRunHome(c: Pick<RunContainer, "handle" | "home" | "homeFrom" | "user">, hostHome: string, isRoot = process.getuid?.() === 0): Promise<ExecHomeAdjust> {
  if (c.homeFrom === "copy") {
    const { entries } = await listHomeEntries(hostHome);
    if (!entries.some((e) => e.type === "file")) return createHomeFirst;
    await copyHomeIn(c.handle, hostHome, c.home, entries);
    return unchanged;
  }
  if (!isRoot) return unchanged;
  const [uid, gid = uid] = c.user.split(":").map(Number) as [number, number?];
  await chownTree(hostHome, { uid, gid });
  return unchanged;
}
