/**
 * `openrunner image build [--offline] [--tag openrunner-agent:latest]`: builds
 * the agent image with the engine's build API from a tar context made here.
 *
 * - online (`docker/Dockerfile`): FROM node:20-slim, then the agent CLIs via
 *   `scripts/install-agents.sh`; for users whose engine can pull images.
 * - offline (`docker/offline/Dockerfile`): FROM scratch with this machine's
 *   node binary and the shared libraries `ldd` lists for it, busybox (static)
 *   as /bin/sh and the usual utilities, `/etc/passwd` with the unprivileged
 *   user `agent` (1000:1000), and the agent CLIs of `<repo>/.agents/bin`
 *   (single binaries, or npm packages copied whole; default Claude Code and
 *   claude-code-acp, see {@link DEFAULT_IMAGE_AGENTS}) in `/opt/agents`. Nothing is downloaded; the context maps host
 *   files straight into the archive (see `tar.ts`), nothing is staged on disk.
 */
import { execFile } from "node:child_process";
import { access, open, readdir, readFile, readlink, realpath, stat } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { ContainerError } from "./errors.ts";
import { createTarStream, type TarEntry } from "./tar.ts";
import type { ContainerClient, ImageInfo } from "./types.ts";

const run = promisify(execFile);

/** The default image tag. */
export const DEFAULT_IMAGE_TAG = "openrunner-agent:latest";

/** The repository root (where `docker/` and `scripts/` are). */
export const REPO_ROOT = fileURLToPath(new URL("../..", import.meta.url));

/** Host files the offline image is made of. */
export interface OfflineSources {
  /** The node binary to copy (default: the running one, `process.execPath`). */
  nodePath?: string;
  /** A busybox binary, preferably static (Debian: `busybox-static`); default `/bin/busybox`. */
  busyboxPath?: string;
  /** CA bundle to include when present (default Debian's). */
  caBundlePath?: string;
  /**
   * Agent CLIs to copy from `<repo>/.agents/bin` into `/opt/agents/bin` (on the image's PATH); default
   * {@link DEFAULT_IMAGE_AGENTS}. A single binary (ELF: claude, opencode) is copied with its shared libraries; a
   * script of an npm package in `.agents/lib/node_modules` (gemini) brings its whole package directory (run by the
   * image's node). A name missing from `.agents/bin` is skipped (reported through `onSkip`).
   */
  agents?: string[];
  /** Told about each agent CLI left out, with the reason. */
  onSkip?: (message: string) => void;
}

/**
 * The agent CLIs the offline image carries by default: Claude Code (one 245 MB binary: the image is 352 MB
 * instead of 107 MB) and its ACP adapter `claude-code-acp` (`@zed-industries/claude-code-acp`, an npm package of
 * ~125 MB with its own bundled Claude Code SDK, run by the image's node; for `agent_type: "acp"` docker runs).
 * opencode (354 MB, one binary) and gemini (a 100 MB npm package) can be added with `agents`; codex (404 MB of
 * per-platform native packages) is left to the online image.
 */
export const DEFAULT_IMAGE_AGENTS: readonly string[] = ["claude", "claude-code-acp"];

async function isElf(file: string): Promise<boolean> {
  const h = await open(file, "r");
  try {
    const { buffer, bytesRead } = await h.read(Buffer.alloc(4), 0, 4, 0);
    return bytesRead === 4 && buffer.equals(Buffer.from([0x7f, 0x45, 0x4c, 0x46]));
  } finally {
    await h.close();
  }
}

/** Options of {@link buildAgentImage}. */
export interface BuildAgentImageOptions extends OfflineSources {
  client: ContainerClient;
  /** Local files only (FROM scratch); otherwise the registry-based Dockerfile. */
  offline: boolean;
  tag?: string;
  /** Where `docker/` and `scripts/` are (default: this checkout). */
  repoRoot?: string;
  onProgress?: (line: string) => void;
}

/** What a build produced. */
export interface BuiltImage extends ImageInfo {
  tag: string;
  durationMs: number;
}

/**
 * Builds the agent image and returns it (id, size).
 * @throws ContainerError `engine_unavailable`, `image_build_failed` (including missing host files for --offline)
 * @example
 * const img = await buildAgentImage({ client, offline: true });
 * console.log(img.tag, Math.round(img.sizeBytes / 1e6), "MB");
 */
export async function buildAgentImage(opts: BuildAgentImageOptions): Promise<BuiltImage> {
  const tag = opts.tag ?? DEFAULT_IMAGE_TAG;
  const root = opts.repoRoot ?? REPO_ROOT;
  const started = Date.now();
  const entries = opts.offline ? await offlineContext(root, opts) : await onlineContext(root);
  const info = await opts.client.buildImage(createTarStream(entries), {
    tag,
    dockerfile: opts.offline ? "Dockerfile" : "docker/Dockerfile",
    ...(opts.onProgress ? { onProgress: opts.onProgress } : {}),
  });
  return { ...info, tag, durationMs: Date.now() - started };
}

async function onlineContext(root: string): Promise<TarEntry[]> {
  return [
    { type: "dir", path: "docker" },
    { type: "file", path: "docker/Dockerfile", source: path.join(root, "docker/Dockerfile"), mode: 0o644 },
    { type: "dir", path: "scripts" },
    { type: "file", path: "scripts/install-agents.sh", source: path.join(root, "scripts/install-agents.sh"), mode: 0o755 },
  ];
}

/** Shared libraries `ldd` lists for a binary: absolute paths as the loader looks them up. Empty for a static binary. */
export async function sharedLibraries(binary: string): Promise<string[]> {
  let stdout: string;
  try {
    ({ stdout } = await run("ldd", [binary], { encoding: "utf8" }));
  } catch (err) {
    const out = `${(err as { stdout?: string }).stdout ?? ""}${(err as { stderr?: string }).stderr ?? ""}`;
    if (/not a dynamic executable|statically linked/.test(out)) return [];
    throw new ContainerError("image_build_failed", `ldd ${binary} failed: ${out.trim() || (err as Error).message}`, { cause: err });
  }
  const libs: string[] = [];
  for (const line of stdout.split("\n")) {
    if (/statically linked/.test(line)) return [];
    // "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x…)" or "/lib64/ld-linux-x86-64.so.2 (0x…)"; skip the vdso.
    const m = /(?:=>\s*)?(\/\S+)\s+\(0x[0-9a-f]+\)/.exec(line);
    if (m) libs.push(m[1]!);
    else if (/=>\s*not found/.test(line)) throw new ContainerError("image_build_failed", `${binary} needs a library that is not installed: ${line.trim()}`);
  }
  return libs;
}

const PASSWD = "root:x:0:0:root:/root:/bin/sh\nagent:x:1000:1000:agent:/home/agent:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n";
const GROUP = "root:x:0:\nagent:x:1000:\nnogroup:x:65534:\n";
const NSSWITCH = "passwd: files\ngroup: files\nhosts: files dns\n";

async function requireFile(p: string, what: string, hint: string): Promise<string> {
  try {
    await access(p);
    return await realpath(p);
  } catch (err) {
    throw new ContainerError("image_build_failed", `${what} not found at ${p}; ${hint}`, { cause: err });
  }
}

/** The npm package (`name`, e.g. `@google/gemini-cli`, its directory, and the script's path in it) of a CLI script under `<root>/.agents/lib/node_modules`. */
async function npmPackageOf(root: string, script: string): Promise<{ name: string; dir: string; script: string } | undefined> {
  const modules = (await realpath(path.join(root, ".agents/lib/node_modules")).catch(() => undefined)) ?? "";
  if (!modules || !script.startsWith(`${modules}/`)) return undefined;
  const segs = script.slice(modules.length + 1).split("/");
  const n = segs[0]!.startsWith("@") ? 2 : 1;
  if (segs.length <= n) return undefined;
  const name = segs.slice(0, n).join("/");
  return { name, dir: path.join(modules, name), script: segs.slice(n).join("/") };
}

/** Every file and relative link under `dir`, as tar entries below `prefix` (absolute links and empty directories are left out). */
async function packageEntries(dir: string, prefix: string): Promise<TarEntry[]> {
  const out: TarEntry[] = [];
  const walk = async (d: string, p: string): Promise<void> => {
    for (const entry of (await readdir(d, { withFileTypes: true })).sort((a, b) => a.name.localeCompare(b.name))) {
      const src = path.join(d, entry.name);
      const dst = `${p}/${entry.name}`;
      // Directories come from the files' parents.
      if (entry.isDirectory()) await walk(src, dst);
      else if (entry.isSymbolicLink()) {
        const target = await readlink(src);
        if (!target.startsWith("/")) out.push({ type: "symlink", path: dst, target });
      } else if (entry.isFile()) {
        out.push({ type: "file", path: dst, source: src, mode: (await stat(src)).mode & 0o755 });
      }
    }
  };
  await walk(dir, prefix);
  return out;
}

/** The offline build context: the Dockerfile, `rootfs/` and `home-agent/`. Exported for tests. */
export async function offlineContext(root: string, src: OfflineSources = {}): Promise<TarEntry[]> {
  const node = await requireFile(src.nodePath ?? process.execPath, "node binary", "pass nodePath");
  const busybox = await requireFile(src.busyboxPath ?? "/bin/busybox", "busybox", "install it: apt-get install -y busybox-static");
  const dockerfile = await readFile(path.join(root, "docker/offline/Dockerfile"));
  const files: TarEntry[] = [];
  const taken = new Set<string>();
  const add = (e: TarEntry) => {
    if (taken.has(e.path)) return;
    taken.add(e.path);
    files.push(e);
  };

  add({ type: "file", path: "rootfs/usr/local/bin/node", source: node, mode: 0o755 });
  add({ type: "file", path: "rootfs/bin/busybox", source: busybox, mode: 0o755 });
  const agentLibs: string[] = [];
  for (const name of src.agents ?? DEFAULT_IMAGE_AGENTS) {
    if (!/^[a-z0-9][a-z0-9_-]*$/.test(name)) throw new ContainerError("image_build_failed", `agent CLI name ${JSON.stringify(name)} is not a plain name`);
    let bin: string;
    try {
      bin = await realpath(path.join(root, ".agents/bin", name));
    } catch {
      src.onSkip?.(`agent CLI ${name} not in ${path.join(root, ".agents/bin")} (run scripts/install-agents.sh); left out of the image`);
      continue;
    }
    if (await isElf(bin)) {
      add({ type: "file", path: `agents/bin/${name}`, source: bin, mode: 0o755 });
      agentLibs.push(...(await sharedLibraries(bin)));
      continue;
    }
    const pkg = await npmPackageOf(root, bin);
    if (!pkg) {
      src.onSkip?.(`agent CLI ${name} (${bin}) is neither a single binary nor a script of a package in .agents/lib/node_modules; left out of the image`);
      continue;
    }
    for (const e of await packageEntries(pkg.dir, `agents/lib/node_modules/${pkg.name}`)) add(e);
    add({ type: "symlink", path: `agents/bin/${name}`, target: `../lib/node_modules/${pkg.name}/${pkg.script}` });
  }
  for (const lib of new Set([...(await sharedLibraries(node)), ...(await sharedLibraries(busybox)), ...agentLibs])) {
    add({ type: "file", path: `rootfs${lib}`, source: lib, mode: 0o755 });
  }
  // Applets as symlinks to /bin/busybox, at their usual places (bin/sh, usr/bin/env, …).
  let applets: string;
  try {
    ({ stdout: applets } = await run(busybox, ["--list-full"], { encoding: "utf8" }));
  } catch (err) {
    throw new ContainerError("image_build_failed", `${busybox} --list-full failed: ${(err as Error).message}`, { cause: err });
  }
  for (const a of applets.split("\n").map((s) => s.trim())) {
    if (!a || !a.includes("/") || a.includes("..")) continue;
    add({ type: "symlink", path: `rootfs/${a}`, target: "/bin/busybox" });
  }
  add({ type: "file", path: "rootfs/etc/passwd", content: PASSWD });
  add({ type: "file", path: "rootfs/etc/group", content: GROUP });
  add({ type: "file", path: "rootfs/etc/nsswitch.conf", content: NSSWITCH });
  add({ type: "file", path: "rootfs/etc/hostname", content: "openrunner\n" });
  const ca = src.caBundlePath ?? "/etc/ssl/certs/ca-certificates.crt";
  if (await access(ca).then(() => true, () => false)) add({ type: "file", path: "rootfs/etc/ssl/certs/ca-certificates.crt", source: ca, mode: 0o644 });

  // Directories first (parents of everything, plus the empty ones the image needs).
  const dirs = new Map<string, number>([
    ["rootfs/tmp", 0o1777],
    ["rootfs/root", 0o700],
    ["rootfs/workspace", 0o755],
    ["rootfs/proc", 0o555],
    ["rootfs/dev", 0o755],
    ["rootfs/sys", 0o555],
    ["rootfs/home", 0o755],
    ["home-agent", 0o700],
    ["agents/bin", 0o755],
  ]);
  for (const e of [...files, ...[...dirs.keys()].map((p) => ({ path: p }))]) {
    for (let d = path.posix.dirname(e.path); d !== "." && d !== "/"; d = path.posix.dirname(d)) if (!dirs.has(d)) dirs.set(d, 0o755);
  }
  const dirEntries: TarEntry[] = [...dirs.entries()].sort(([a], [b]) => a.length - b.length || a.localeCompare(b)).map(([p, mode]) => ({ type: "dir", path: p, mode }));
  return [{ type: "file", path: "Dockerfile", content: dockerfile }, ...dirEntries, ...files];
}
