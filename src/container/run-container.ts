/**
 * The per-run container of a `metadata.isolation: "docker"` run (see
 * docs/architecture.md#containers): created and started while the run is `preparing`, handed to the
 * process actor, which runs the agent in it with `exec` and stops and removes
 * it when the agent's process ends (`src/agent/container-exec.ts`).
 *
 * The run's isolated home (`<data>/homes/<key>`, where the adapter writes the
 * CLI's config, and where the CLI keeps the sessions a resumed run needs) is
 * bind-mounted read-write at the container's HOME, after {@link checkRunHome}
 * made sure it is a plain directory directly under the homes root. It is the
 * only host path besides the workspace a container sees. Files the adapter
 * writes there after the container started are given to the container user
 * before the exec (`container-exec.ts`).
 *
 * Lifecycle events go into the run's stream: `container.created` and
 * `container.started` here, `container.stopped` and `container.removed` before
 * the terminal event. When the run ends while this is still in flight (cancel
 * or timeout in `preparing`: the AbortSignal fires), the container is removed
 * without events, since the terminal event is already written.
 */
import { lstat, realpath } from "node:fs/promises";
import path from "node:path";
import { chownTree as chownTreeByFd } from "../agent/safe-fs.ts";
import { ContainerError } from "../errors.ts";
import type { Log } from "../log.ts";
import { DESKTOP_INIT, waitDesktopReady } from "./desktop.ts";
import { containerLabels } from "./labels.ts";
import { LAUNCHER_SCRIPT, prepareLauncherDir, withLauncher, type LauncherContainerHandle } from "./launcher-handle.ts";
import type { ContainerClient, ContainerHandle, ContainerLimits } from "./types.ts";

/** Where the workspace is mounted inside every container. */
export const CONTAINER_WORKDIR = "/workspace";
/** HOME inside the container: the run's home mounted there (per-run and pooled containers), else a tmpfs owned by the container user. */
export const CONTAINER_HOME = "/home/agent";
/** Where the per-run homes live inside a shared (project) container: `<this>/<home key>` is a run's HOME there. */
export const CONTAINER_RUN_HOMES = `${CONTAINER_HOME}/runs`;
const MIB = 1024 * 1024;

/** A container event of a run, as emitted into its channel. */
export type ContainerRunEvent = {
  type: "container.created" | "container.started" | "container.stopped" | "container.removed";
  data: { container_id: string; pool?: boolean; project_id?: string };
};

/** A container a run's agent executes in; what `prepare` hands to the process actor. */
export interface RunContainer {
  handle: ContainerHandle;
  /** Per-run: stopped and removed (with events) when the agent's process ends. */
  perRun: boolean;
  /** The workspace inside (`/workspace`). */
  workdir: string;
  /** HOME inside (the run's home as the agent sees it). */
  home: string;
  /**
   * How the run's host home gets to {@link home}: `"mount"`, bind-mounted (per-run and pooled containers; the
   * files are given to {@link user} before the exec when the server is root), or `"copy"`, copied in before
   * the exec (project containers, created before the run was known; what the agent writes there stays in the container).
   */
  homeFrom: "mount" | "copy";
  /** The container's numeric non-root `uid:gid`. */
  user: string;
  /** argv[0] to use inside instead of the basename of the host command. */
  command?: string;
  /** The memory limit, bytes (for the `oom_killed` message). */
  memoryBytes: number;
  /** A desktop container (`metadata.desktop`): the host directory where its launcher and desktop report (`desktop.ts`). */
  desktop?: { socketDir: string };
  /** A per-run container's launcher directory on the host, removed with the container. */
  launcherDir?: string;
}

/** Options of {@link createRunContainer}. */
export interface RunContainerOptions {
  client: ContainerClient;
  /** This server's instance id (label). */
  instance: string;
  runId: string;
  userId: string;
  image: string;
  /** Numeric non-root `uid:gid`. */
  user: string;
  /** Docker network; absent: none. */
  network?: string;
  /** The run's host working directory, bind-mounted at `/workspace`. */
  workspace: string;
  /** The run's isolated home, bind-mounted read-write at HOME (checked with {@link checkRunHome}). */
  home: RunHome;
  limits: ContainerLimits;
  /** argv[0] inside (see {@link RunContainer.command}). */
  command?: string;
  emit: (e: ContainerRunEvent) => void;
  /** Aborted when the run ends before the container is handed over. */
  signal?: AbortSignal;
  log?: Pick<Log, "warn">;
  /** Whether this process runs as root (default: `process.getuid() === 0`); then the workspace is chowned to `user`. */
  isRoot?: boolean;
  /**
   * A desktop run (`image` is the desktop image): the container runs the launcher and the desktop, with its socket
   * directory under `launcherRoot` (required then); the container is handed over once the desktop is ready.
   */
  desktop?: { launcherRoot: string };
}

/** A run's isolated home on the host: `dir` must be a directory directly under `root` (the server's homes folder). */
export interface RunHome {
  /** Absolute, e.g. `<data>/homes/run_01J…`. */
  dir: string;
  /** Absolute homes root, e.g. `<data>/homes`. */
  root: string;
}

/** A home key: the last path segment of a run's home (a run id). */
const HOME_KEY = /^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$/;

/**
 * Checks that a run's home may be shown to a container: a real directory (not a symlink) whose real path is
 * directly under the real homes root, with a plain name. Nothing else of the host is ever mounted as HOME.
 * @returns the home key (the directory's name)
 * @throws ContainerError `container_failed` naming the path otherwise
 */
export async function checkRunHome(h: RunHome): Promise<string> {
  const refuse = (why: string, cause?: unknown) => new ContainerError("container_failed", `the run's home ${h.dir} cannot be given to the container: ${why}`, cause === undefined ? undefined : { cause });
  const key = path.basename(h.dir);
  if (!path.isAbsolute(h.dir) || !path.isAbsolute(h.root) || !HOME_KEY.test(key)) throw refuse("not an absolute path with a plain name");
  let st: import("node:fs").Stats;
  let realRoot: string;
  let real: string;
  try {
    st = await lstat(h.dir);
    [realRoot, real] = await Promise.all([realpath(h.root), realpath(h.dir)]);
  } catch (err) {
    throw refuse(String((err as Error).message), err);
  }
  if (st.isSymbolicLink() || !st.isDirectory()) throw refuse("not a plain directory");
  if (real !== path.join(realRoot, key)) throw refuse(`not directly under the homes root ${h.root}`);
  return key;
}

/**
 * Makes `dir` and everything below it owned by `uid:gid`, so the container user can write the
 * bind-mounted workspace. Walks descriptors, never following a symlink (also one swapped in while
 * it runs), leaves hard-linked files and stops after `MAX_TREE_ENTRIES` entries: see `chownTree` in
 * `src/agent/safe-fs.ts`.
 */
export async function chownTree(dir: string, uid: number, gid: number): Promise<void> {
  await chownTreeByFd(dir, { uid, gid });
}

/**
 * Creates and starts the run's container, emitting `container.created` and
 * `container.started`.
 * @throws ContainerError (`engine_unavailable`, `image_not_found`, …); a container created before the failure is removed first (with `container.removed`)
 * @example
 * const c = await createRunContainer({ client, instance, runId, userId, image, user: "1000:1000", workspace: cwd, home: { dir: `${homes}/${runId}`, root: homes }, limits, emit, signal });
 */
export async function createRunContainer(o: RunContainerOptions): Promise<RunContainer> {
  const [uid, gid = uid] = o.user.split(":").map(Number) as [number, number?];
  await checkRunHome(o.home);
  if (o.isRoot ?? process.getuid?.() === 0) {
    await chownTree(o.workspace, uid, gid);
    await chownTree(o.home.dir, uid, gid);
  }
  o.signal?.throwIfAborted();
  const name = `openrunner-${o.runId}`.toLowerCase();
  const socketDir = o.desktop ? await prepareLauncherDir(o.desktop.launcherRoot, name, o.user, o.isRoot ?? process.getuid?.() === 0) : undefined;
  if (o.desktop && !socketDir) throw new ContainerError("container_failed", `the launcher directory under ${o.desktop.launcherRoot} makes too long a socket path for a desktop container`);
  const raw = await o.client.create({
    image: o.image,
    name,
    labels: containerLabels({ instance: o.instance, kind: "run", runId: o.runId, userId: o.userId }),
    workspace: o.workspace,
    user: o.user,
    limits: o.limits,
    home: CONTAINER_HOME,
    homeSource: o.home.dir,
    ...(o.network ? { network: o.network } : {}),
    ...(socketDir ? { launcher: { socketDir, script: LAUNCHER_SCRIPT }, desktop: { init: DESKTOP_INIT } } : {}),
  });
  const handle = socketDir ? withLauncher(raw, socketDir) : raw;
  const data = { container_id: handle.id };
  o.emit({ type: "container.created", data });
  // The run ended meanwhile: nobody will take the container over; remove it quietly (the terminal event is written).
  const discard = () => void handle.remove({ force: true }).catch((err: unknown) => o.log?.warn("could not remove the container of an ended run", { run_id: o.runId, container_id: handle.id, err: String(err) }));
  if (o.signal?.aborted) {
    discard();
    o.signal.throwIfAborted();
  }
  o.signal?.addEventListener("abort", discard, { once: true });
  try {
    await handle.start();
    if (socketDir) {
      // Handed over with its desktop ready (reported by the container, not slept for); its processes start through the launcher.
      await waitDesktopReady(socketDir);
      await (handle as LauncherContainerHandle).ready();
    }
  } catch (err) {
    o.signal?.removeEventListener("abort", discard);
    await handle.remove({ force: true }).then(
      () => o.emit({ type: "container.removed", data }),
      (e: unknown) => o.log?.warn("could not remove a container that failed to start", { run_id: o.runId, container_id: handle.id, err: String(e) }),
    );
    throw err;
  }
  o.emit({ type: "container.started", data });
  return {
    handle,
    perRun: true,
    workdir: CONTAINER_WORKDIR,
    home: CONTAINER_HOME,
    homeFrom: "mount",
    user: o.user,
    memoryBytes: o.limits.memoryBytes,
    ...(o.command ? { command: o.command } : {}),
    ...(socketDir ? { desktop: { socketDir }, launcherDir: socketDir } : {}),
  };
}

/** MiB to bytes. */
export const mib = (n: number) => Math.round(n * MIB);
