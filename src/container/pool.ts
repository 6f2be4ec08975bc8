/**
 * The warm pool (docs/architecture.md#containers): `docker.warm_pool` containers per
 * image, created and started ahead of time, handed to per-run runs at once and
 * replaced in the background, to hide the cold start.
 *
 * The workspace problem: a container's bind mount is fixed when it is
 * created, before anyone knows which run (and so which workspace) it will
 * serve. Design: each pooled container gets a fresh, empty directory of its
 * own, `<workspaces>/.pool/<name>`, bind-mounted at `/workspace`. At hand-over
 * that directory is *renamed* onto the run's workspace path, which must be an
 * empty directory on the same filesystem (the default per-run directory
 * always is): `rename(2)` replaces an empty directory atomically, and the
 * container's mount follows the directory (a bind mount pins the directory,
 * not its path), so the run's files appear at the run's own path on the host.
 * When the rename cannot be done (the run's cwd is not empty, another
 * filesystem) the container goes back to the pool and the run gets a cold
 * container. The engine's inspect still shows the old mount source; the
 * directory is the same.
 *
 * The run's home (where its adapter writes the CLI's config, see
 * `run-container.ts`) is done the same way: each pooled container also gets
 * `<homes>/.pool/<name>` (mode 0700) bind-mounted at HOME, renamed onto the
 * run's home directory at hand-over (which must then be empty: a fresh run's
 * home is; a resumed run's is not, and gets a cold container). The home is
 * renamed first and put back when the workspace cannot be taken.
 *
 * Only runs whose limits equal the pool's (the `docker` defaults), whose image
 * is pooled and that are not project runs take a pooled container. A pooled
 * container serves exactly one run and is then stopped and removed like any
 * per-run container: never reused across runs or users. Its labels still say
 * `openrunner.kind=pool` (labels are immutable); the pool remembers which
 * run and user it was given to ({@link WarmPool.assignment}), for the list
 * endpoint. `container.created` and `container.started` appear in the run's
 * stream at hand-over, with `pool: true`.
 *
 * With a local engine each pooled container's main process is the launcher
 * (`launcher-handle.ts`): its socket directory is `<workspaces>/.launch/<name>`,
 * a container counts as warm once the launcher answers, and the run's process
 * starts through it instead of the engine's exec (which stays the fallback).
 *
 * `close()` stops refilling, waits for creations in flight and removes every
 * container not handed out (runs remove theirs), and their directories.
 */
import { randomBytes } from "node:crypto";
import { mkdir, readdir, rename, rm, rmdir } from "node:fs/promises";
import path from "node:path";
import type { Log } from "../log.ts";
import { containerLabels } from "./labels.ts";
import { LAUNCHER_SCRIPT, prepareLauncherDir, withLauncher, type LauncherContainerHandle } from "./launcher-handle.ts";
import { CONTAINER_HOME, CONTAINER_WORKDIR, chownTree, type RunContainer } from "./run-container.ts";
import type { ContainerClient, ContainerHandle, ContainerLimits } from "./types.ts";

/** Options of {@link WarmPool}. */
export interface WarmPoolOptions {
  client: () => ContainerClient;
  instance: string;
  /** Absolute workspaces root; pool directories live in `<root>/.pool/`. */
  workspacesRoot: string;
  /** Absolute homes root (the runs' homes); pooled homes live in `<root>/.pool/`. */
  homesRoot: string;
  /** Images to keep warm (duplicates ignored). */
  images: string[];
  /** Containers kept ready per image. */
  size: number;
  /** Limits of pooled containers (the `docker` defaults). */
  limits: ContainerLimits;
  /** Numeric non-root `uid:gid`. */
  user: string;
  network?: string;
  log?: Pick<Log, "info" | "warn">;
  /** Whether this process runs as root (default: `process.getuid() === 0`); then pool directories are chowned to `user`. */
  isRoot?: boolean;
  /** Delay before retrying after a failed creation, ms (default 5000). */
  retryMs?: number;
  /**
   * Start pooled containers with the launcher (default: when the engine is local, `unix://…`, since the launcher's
   * socket directory is bind-mounted from this machine). False: every run's process starts with the engine's exec.
   */
  launcher?: boolean;
}

interface Warm {
  handle: ContainerHandle | LauncherContainerHandle;
  /** Its launcher's socket directory on the host, when it has one. */
  launcherDir?: string;
  dir: string;
  /** Its HOME on the host, `<homes>/.pool/<name>`. */
  homeDir: string;
  image: string;
}

/** What a run needs from the pool. */
export interface PoolRequest {
  image: string;
  limits: ContainerLimits;
  runId: string;
  userId: string;
  /** The run's host workspace: an empty directory (the pool directory is renamed onto it). */
  workspace: string;
  /** The run's home (checked by the caller): an empty directory (the pooled home is renamed onto it). */
  home: string;
  command?: string;
}

const removeWarm = async (w: Warm) => {
  await w.handle.remove({ force: true });
  await rm(w.dir, { recursive: true, force: true });
  await rm(w.homeDir, { recursive: true, force: true });
  if (w.launcherDir) await rm(w.launcherDir, { recursive: true, force: true });
};

/** Whether a warm container still runs: its launcher's answer (no engine call), else the engine's. */
async function stillRunning(w: Warm): Promise<boolean> {
  if ("alive" in w.handle && (await w.handle.alive())) return true;
  return w.handle.inspect().then(
    (st) => st.running,
    () => false,
  );
}

/** Name prefix of pooled containers (and their launcher directories). */
const POOL_PREFIX = "openrunner-pool-";

const sameLimits = (a: ContainerLimits, b: ContainerLimits) => a.memoryBytes === b.memoryBytes && a.nanoCpus === b.nanoCpus && a.pidsLimit === b.pidsLimit;

/**
 * See the module comment. One per server.
 * @example
 * const pool = new WarmPool({ client, instance, workspacesRoot, homesRoot, images: ["openrunner-agent:latest"], size: 2, limits, user: "1000:1000" });
 * await pool.start();
 * const c = await pool.take({ image, limits, runId, userId, workspace: cwd, home }); // undefined: create one cold
 * await pool.close();
 */
export class WarmPool {
  readonly #o: WarmPoolOptions;
  readonly #ready = new Map<string, Warm[]>();
  readonly #creating = new Map<string, number>();
  readonly #inFlight = new Set<Promise<void>>();
  readonly #assigned = new Map<string, { runId: string; userId: string }>();
  #retryTimer: NodeJS.Timeout | undefined;
  #closing: Promise<void> | null = null;
  #started = false;

  constructor(opts: WarmPoolOptions) {
    this.#o = { ...opts, images: [...new Set(opts.images)] };
  }

  /** The pool's directory (`<workspaces>/.pool`). */
  get dir(): string {
    return path.join(this.#o.workspacesRoot, ".pool");
  }

  /** Where pooled containers' launcher sockets live (`<workspaces>/.launch`, mode 0700). */
  get launcherRoot(): string {
    return path.join(this.#o.workspacesRoot, ".launch");
  }

  /** The pool's homes directory (`<homes>/.pool`). */
  get homesDir(): string {
    return path.join(this.#o.homesRoot, ".pool");
  }

  /** Containers ready now, per image. */
  readyCounts(): Record<string, number> {
    return Object.fromEntries(this.#o.images.map((i) => [i, this.#ready.get(i)?.length ?? 0]));
  }

  /** The run and user a pooled container was handed to, if it was. */
  assignment(containerId: string): { runId: string; userId: string } | undefined {
    return this.#assigned.get(containerId);
  }

  /**
   * Removes leftover pool directories of an earlier process (their containers are swept by label), then fills the pool in the
   * background. Call after the orphan sweep. No-op when `size` is 0.
   */
  async start(): Promise<void> {
    if (this.#started || this.#closing || this.#o.size === 0) return;
    this.#started = true;
    await rm(this.dir, { recursive: true, force: true });
    await rm(this.homesDir, { recursive: true, force: true });
    // Only the pool's own launcher directories: project containers' (adopted ones too) stay.
    for (const name of await readdir(this.launcherRoot).catch(() => [] as string[])) if (name.startsWith(POOL_PREFIX)) await rm(path.join(this.launcherRoot, name), { recursive: true, force: true });
    await mkdir(this.dir, { recursive: true, mode: 0o711 });
    await mkdir(this.homesDir, { recursive: true, mode: 0o711 });
    this.#fill();
  }

  /**
   * A started container for the run, or undefined when none fits (other limits or image, pool empty, workspace not an empty
   * directory on the pool's filesystem). The pool is refilled in the background.
   */
  async take(req: PoolRequest): Promise<RunContainer | undefined> {
    if (this.#closing || !sameLimits(req.limits, this.#o.limits)) return undefined;
    const list = this.#ready.get(req.image);
    while (list?.length) {
      const w = list.shift()!;
      // A warm container that died meanwhile (engine restart, OOM of PID 1) is dropped.
      if (!(await stillRunning(w))) {
        void removeWarm(w).catch(() => {});
        continue;
      }
      if (!(await this.#handOver(w, req))) {
        // Not empty directories, or another filesystem: the container stays in the pool.
        list.unshift(w);
        return undefined;
      }
      this.#assigned.set(w.handle.id, { runId: req.runId, userId: req.userId });
      this.#fill();
      return {
        handle: w.handle,
        perRun: true,
        workdir: CONTAINER_WORKDIR,
        home: CONTAINER_HOME,
        homeFrom: "mount",
        user: this.#o.user,
        memoryBytes: this.#o.limits.memoryBytes,
        ...(req.command ? { command: req.command } : {}),
        ...(w.launcherDir ? { launcherDir: w.launcherDir } : {}),
      };
    }
    this.#fill();
    return undefined;
  }

  /** Renames the warm container's home, then its workspace, onto the run's; false (nothing changed) when either cannot be. */
  async #handOver(w: Warm, req: PoolRequest): Promise<boolean> {
    try {
      await rename(w.homeDir, req.home);
    } catch (err) {
      this.#o.log?.info("warm container not used: the run's home cannot take its directory", { run_id: req.runId, err: String(err) });
      return false;
    }
    try {
      await rename(w.dir, req.workspace);
      return true;
    } catch (err) {
      this.#o.log?.info("warm container not used: the run's workspace cannot take its directory", { run_id: req.runId, err: String(err) });
    }
    // Put the home back: the run's (empty) home directory again where it was.
    try {
      await rename(req.home, w.homeDir);
      await mkdir(req.home, { mode: 0o700 });
    } catch (err) {
      this.#o.log?.warn("could not give a warm container's home back", { run_id: req.runId, err: String(err) });
      await rmdir(req.home).catch(() => {});
      await mkdir(req.home, { mode: 0o700 }).catch(() => {});
    }
    return false;
  }

  /** Forgets handed-out containers that are no longer in `live` (their runs removed them). */
  prune(live: ReadonlySet<string>): void {
    for (const id of this.#assigned.keys()) if (!live.has(id)) this.#assigned.delete(id);
  }

  /** Stops refilling, waits for creations in flight, removes the containers not handed out and their directories. Idempotent. */
  close(): Promise<void> {
    return (this.#closing ??= (async () => {
      clearTimeout(this.#retryTimer);
      while (this.#inFlight.size) await Promise.allSettled([...this.#inFlight]);
      const all = [...this.#ready.values()].flat();
      this.#ready.clear();
      await Promise.allSettled(all.map(removeWarm));
      if (all.length) this.#o.log?.info("removed warm pool containers", { count: all.length });
    })());
  }

  #fill(): void {
    if (this.#closing || !this.#started) return;
    for (const image of this.#o.images) {
      const have = (this.#ready.get(image)?.length ?? 0) + (this.#creating.get(image) ?? 0);
      for (let i = have; i < this.#o.size; i++) {
        this.#creating.set(image, (this.#creating.get(image) ?? 0) + 1);
        const p = this.#create(image)
          .then(
            (w) => {
              if (this.#closing) {
                void removeWarm(w).catch(() => {});
                return;
              }
              const list = this.#ready.get(image) ?? [];
              list.push(w);
              this.#ready.set(image, list);
            },
            (err: unknown) => {
              this.#o.log?.warn("could not create a warm container", { image, err: err instanceof Error ? err.message : String(err) });
              if (!this.#closing && !this.#retryTimer) {
                this.#retryTimer = setTimeout(() => {
                  this.#retryTimer = undefined;
                  this.#fill();
                }, this.#o.retryMs ?? 5000);
                this.#retryTimer.unref();
              }
            },
          )
          .finally(() => {
            this.#creating.set(image, (this.#creating.get(image) ?? 1) - 1);
            this.#inFlight.delete(p);
          });
        this.#inFlight.add(p);
      }
    }
  }

  async #create(image: string): Promise<Warm> {
    const name = `${POOL_PREFIX}${randomBytes(8).toString("hex")}`;
    const dir = path.join(this.dir, name);
    const homeDir = path.join(this.homesDir, name);
    await mkdir(dir, { recursive: true });
    await mkdir(homeDir, { recursive: true, mode: 0o700 });
    const [uid, gid = uid] = this.#o.user.split(":").map(Number) as [number, number?];
    let handle: ContainerHandle | undefined;
    let launcherDir: string | undefined;
    try {
      const isRoot = this.#o.isRoot ?? process.getuid?.() === 0;
      if (isRoot) {
        await chownTree(dir, uid, gid);
        await chownTree(homeDir, uid, gid);
      }
      const client = this.#o.client();
      if (this.#o.launcher ?? client.engine.startsWith("unix://")) launcherDir = await prepareLauncherDir(this.launcherRoot, name, this.#o.user, isRoot);
      handle = await client.create({
        image,
        name,
        labels: containerLabels({ instance: this.#o.instance, kind: "pool" }),
        workspace: dir,
        user: this.#o.user,
        limits: this.#o.limits,
        home: CONTAINER_HOME,
        homeSource: homeDir,
        ...(this.#o.network ? { network: this.#o.network } : {}),
        ...(launcherDir ? { launcher: { socketDir: launcherDir, script: LAUNCHER_SCRIPT } } : {}),
      });
      await handle.start();
      if (!launcherDir) return { handle, dir, homeDir, image };
      const h = withLauncher(handle, launcherDir);
      // Warm means ready to start a process at once: the launcher answers (an image without node never will; then exec).
      if (!(await h.ready())) this.#o.log?.info("warm container has no launcher; its run will start with the engine's exec", { image, container_id: handle.id });
      return { handle: h, dir, homeDir, image, launcherDir };
    } catch (err) {
      await handle?.remove({ force: true }).catch(() => {});
      await rm(dir, { recursive: true, force: true });
      await rm(homeDir, { recursive: true, force: true });
      if (launcherDir) await rm(launcherDir, { recursive: true, force: true });
      throw err;
    }
  }
}
