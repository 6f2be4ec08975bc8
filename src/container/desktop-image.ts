/**
 * `openrunner image build --desktop`: the desktop image (docs/architecture.md#desktop), offline, from
 * Debian's packages, with no registry:
 *
 * 1. `debootstrap --variant=minbase --include=<docker/desktop/packages.txt>` of this machine's suite
 *    (`VERSION_CODENAME` of /etc/os-release) from the configured apt mirror (the first `deb` source of
 *    /etc/apt/sources.list or /etc/apt/sources.list.d/*), into a temporary directory;
 * 2. the image's own files: the unprivileged user `agent` (1000:1000), a machine id (D-Bus), writable
 *    places of a read-only root moved to /tmp (Xvfb's compiled keymaps), this machine's node (for the
 *    launcher and the desktop's init, both mounted from this checkout when a container starts, so
 *    changing them needs no rebuild); the package caches removed;
 * 3. `tar` of that root filesystem streamed into the engine's import with the image's settings
 *    (user, workdir, environment, labels).
 *
 * The image carries the label `openrunner.image.content-hash`: a hash of everything it is made from
 * (the package list, the suite and mirror, node's version, this recipe). A build whose
 * hash equals the existing image's returns at once (`cached: true`) unless `force`, so CI and the tests
 * build it once per machine.
 *
 * Needs root (debootstrap) and the `debootstrap` package; about 1.3 GB, a few minutes with a near mirror.
 */
import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { chmod, chown, copyFile, mkdir, mkdtemp, readdir, readFile, rm, symlink, writeFile, appendFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { DESKTOP_INIT_IN_IMAGE } from "./desktop.ts";
import { ContainerError } from "./errors.ts";
import { REPO_ROOT, type BuiltImage } from "./image.ts";
import type { ContainerClient } from "./types.ts";

/** The default tag of the desktop image. */
export const DESKTOP_IMAGE_TAG = "openrunner-desktop:latest";
/** The label holding the hash of what the image is made from. */
export const CONTENT_HASH_LABEL = "openrunner.image.content-hash";
/** Bump when the steps below change in a way the inputs do not show. */
const RECIPE_VERSION = "1";

/** Options of {@link buildDesktopImage}. */
export interface BuildDesktopImageOptions {
  client: ContainerClient;
  tag?: string;
  /** Rebuild even when the image's content hash is current. */
  force?: boolean;
  /** Debian mirror URL (default: from this machine's apt sources). */
  mirror?: string;
  /** Debian suite (default: this machine's `VERSION_CODENAME`). */
  suite?: string;
  /** The node binary copied into the image (default: the running one). */
  nodePath?: string;
  repoRoot?: string;
  onProgress?: (line: string) => void;
}

/** What {@link buildDesktopImage} produced. */
export interface BuiltDesktopImage extends BuiltImage {
  /** True when the existing image was current and nothing was built. */
  cached: boolean;
  contentHash: string;
}

/** The package names of a packages file: one per line, `#` comments and blank lines ignored. */
export function parsePackageList(text: string): string[] {
  return text
    .split("\n")
    .map((l) => l.replace(/#.*/, "").trim())
    .filter((l) => l !== "");
}

/**
 * The first Debian mirror of apt's sources (one-line `deb URL suite …` or deb822 `URIs:` of a `Types: deb` stanza),
 * skipping security and non-http sources; undefined when there is none.
 */
export function mirrorFromSources(files: string[]): string | undefined {
  for (const text of files) {
    for (const line of text.split("\n")) {
      const m = /^\s*deb\s+(?:\[[^\]]*\]\s+)?(https?:\/\/\S+)\s+(\S+)/.exec(line);
      if (m && !/security/.test(m[1]!) && !/-security$/.test(m[2]!)) return m[1]!.replace(/\/$/, "");
    }
    for (const stanza of text.split(/\n\s*\n/)) {
      if (!/^Types:(?:.*\s)?deb(?:\s|$)/m.test(stanza)) continue;
      const uris = /^URIs:\s*(.+)$/m.exec(stanza)?.[1]?.split(/\s+/) ?? [];
      const uri = uris.find((u) => /^https?:\/\//.test(u) && !/security/.test(u));
      if (uri) return uri.replace(/\/$/, "");
    }
  }
  return undefined;
}

async function readSources(): Promise<string[]> {
  const out: string[] = [];
  out.push(await readFile("/etc/apt/sources.list", "utf8").catch(() => ""));
  const dir = "/etc/apt/sources.list.d";
  for (const f of (await readdir(dir).catch(() => [])).sort()) if (/\.(list|sources)$/.test(f)) out.push(await readFile(path.join(dir, f), "utf8").catch(() => ""));
  return out;
}

async function hostSuite(): Promise<string | undefined> {
  const osRelease = await readFile("/etc/os-release", "utf8").catch(() => "");
  return /^VERSION_CODENAME=("?)([a-z]+)\1$/m.exec(osRelease)?.[2];
}

/** Runs a program, its output lines to `onLine`; rejects with `image_build_failed` and the output's tail on failure. */
function runStep(cmd: string, args: string[], onLine?: (l: string) => void): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ["ignore", "pipe", "pipe"] });
    let tail = "";
    const read = (d: Buffer) => {
      const s = d.toString("utf8");
      tail = (tail + s).slice(-2000);
      for (const l of s.split("\n")) if (l.trim()) onLine?.(l);
    };
    child.stdout.on("data", read);
    child.stderr.on("data", read);
    child.on("error", (err) => reject(new ContainerError("image_build_failed", `${cmd} could not run: ${err.message}${(err as { code?: string }).code === "ENOENT" ? ` (install it: apt-get install -y ${cmd})` : ""}`, { cause: err })));
    child.on("exit", (code) => (code === 0 ? resolve() : reject(new ContainerError("image_build_failed", `${cmd} failed (exit ${code}): ${tail.trim().slice(-800)}`))));
  });
}

/** The writable places and own files of the image, written into the debootstrapped root `dir`. */
async function finishRootfs(dir: string, nodePath: string): Promise<void> {
  await rm(path.join(dir, "var/cache/apt/archives"), { recursive: true, force: true });
  await rm(path.join(dir, "var/lib/apt/lists"), { recursive: true, force: true });
  await mkdir(path.join(dir, "var/cache/apt/archives/partial"), { recursive: true });
  await mkdir(path.join(dir, "var/lib/apt/lists/partial"), { recursive: true });
  await appendFile(path.join(dir, "etc/passwd"), "agent:x:1000:1000:agent:/home/agent:/bin/sh\n");
  await appendFile(path.join(dir, "etc/group"), "agent:x:1000:\n");
  await writeFile(path.join(dir, "etc/machine-id"), `${createHash("sha256").update("openrunner-desktop").digest("hex").slice(0, 32)}\n`);
  // Xvfb compiles keymaps into /var/lib/xkb; the root is read-only, /tmp is not.
  await rm(path.join(dir, "var/lib/xkb"), { recursive: true, force: true });
  await symlink("/tmp", path.join(dir, "var/lib/xkb"));
  for (const d of ["home/agent", "workspace"]) {
    await mkdir(path.join(dir, d), { recursive: true });
    await chown(path.join(dir, d), 1000, 1000);
  }
  await chmod(path.join(dir, "home/agent"), 0o700);
  await mkdir(path.join(dir, "usr/local/bin"), { recursive: true });
  await copyFile(nodePath, path.join(dir, "usr/local/bin/node"));
  await chmod(path.join(dir, "usr/local/bin/node"), 0o755);
  // The desktop's init program and the launcher are mounted from this checkout at run time (`spec.ts`).
  await mkdir(path.join(dir, path.dirname(DESKTOP_INIT_IN_IMAGE).slice(1)), { recursive: true });
}

/**
 * Builds (or finds current) the desktop image; see the module comment.
 * @throws ContainerError `image_build_failed` (no mirror or suite found, debootstrap missing or failing, not root,
 *   import refused), `engine_unavailable`
 * @example
 * const img = await buildDesktopImage({ client, onProgress: console.log });
 * console.log(img.tag, img.cached ? "current" : `built in ${img.durationMs} ms`);
 */
export async function buildDesktopImage(o: BuildDesktopImageOptions): Promise<BuiltDesktopImage> {
  const started = Date.now();
  const tag = o.tag ?? DESKTOP_IMAGE_TAG;
  const root = o.repoRoot ?? REPO_ROOT;
  const packagesText = await readFile(path.join(root, "docker/desktop/packages.txt"), "utf8");
  const mirror = o.mirror ?? mirrorFromSources(await readSources());
  const suite = o.suite ?? (await hostSuite());
  if (!mirror) throw new ContainerError("image_build_failed", "no Debian mirror found in /etc/apt/sources.list*; pass one (--mirror)");
  if (!suite) throw new ContainerError("image_build_failed", "this machine's Debian suite (VERSION_CODENAME in /etc/os-release) is unknown; pass one (--suite)");
  const nodePath = o.nodePath ?? process.execPath;
  const packages = parsePackageList(packagesText);
  const contentHash = createHash("sha256").update(JSON.stringify({ RECIPE_VERSION, packages, suite, mirror, node: process.version })).digest("hex");
  const existing = await o.client.imageInfo(tag);
  if (existing && !o.force && existing.labels[CONTENT_HASH_LABEL] === contentHash) {
    return { ...existing, tag, durationMs: Date.now() - started, cached: true, contentHash };
  }
  if (!o.client.importImage) throw new ContainerError("image_build_failed", "this container client cannot import images");
  if (process.getuid?.() !== 0) throw new ContainerError("image_build_failed", "building the desktop image needs root (debootstrap)");
  const work = await mkdtemp(path.join(os.tmpdir(), "openrunner-desktop-"));
  const dir = path.join(work, "rootfs");
  try {
    o.onProgress?.(`debootstrap ${suite} from ${mirror} with ${packages.length} packages`);
    await runStep("debootstrap", ["--variant=minbase", `--include=${packages.join(",")}`, suite, dir, mirror], o.onProgress);
    await finishRootfs(dir, nodePath);
    o.onProgress?.(`importing ${tag}`);
    const tar = spawn("tar", ["-C", dir, "--numeric-owner", "--one-file-system", "-cf", "-", "."], { stdio: ["ignore", "pipe", "pipe"] });
    let tarErr = "";
    tar.stderr.on("data", (d: Buffer) => (tarErr = (tarErr + d.toString()).slice(-1000)));
    const tarDone = new Promise<void>((resolve, reject) => tar.on("exit", (code) => (code === 0 ? resolve() : reject(new ContainerError("image_build_failed", `tar of the desktop root filesystem failed (exit ${code}): ${tarErr}`)))));
    const info = await o.client.importImage(tar.stdout, {
      tag,
      changes: [
        "ENV PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
        "ENV HOME=/home/agent",
        "ENV USER=agent",
        "ENV LANG=C.UTF-8",
        "USER 1000:1000",
        "WORKDIR /workspace",
        'CMD ["sleep", "infinity"]',
        'LABEL org.opencontainers.image.title="openrunner-desktop"',
        "LABEL openrunner.image.variant=desktop",
        `LABEL ${CONTENT_HASH_LABEL}=${contentHash}`,
      ],
      ...(o.onProgress ? { onProgress: o.onProgress } : {}),
    });
    await tarDone;
    return { ...info, tag, durationMs: Date.now() - started, cached: false, contentHash };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}
