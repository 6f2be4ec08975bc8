/**
 * Project containers (docs/architecture.md#containers, `metadata.project_id`): one
 * long-lived container per (user, project), reused by that user's runs of the
 * project, as RCoder does.
 *
 * - Ownership: the key is (user id, project id); the container carries the
 *   labels `openrunner.kind=project`, `openrunner.user-id` and
 *   `openrunner.project-id`, so another user naming the same project id gets a
 *   container of their own and can never reach this one.
 * - Workspace: `<workspaces>/<user id>/projects/<project id>` on the host,
 *   bind-mounted at `/workspace`; files persist between the project's runs.
 *   A run's `metadata.cwd` is relative to that directory (default: the
 *   directory itself) and maps to the same path under `/workspace`.
 * - Limits and image are fixed when the container is created (by the first
 *   run, or by `PUT /api/projects/:id/container`); a later run that asks for
 *   other limits, or whose agent uses another image, fails with
 *   `project_limits_mismatch` / `project_image_mismatch` (restart the
 *   container to change them).
 * - Concurrency (`project-slots.ts`): at most `docker.max_runs_per_project` runs hold the project
 *   at a time. A run claims its turn when it is created ({@link ProjectContainers.claim}):
 *   with `project_busy: "reject"` a claim past the limit is a 409
 *   `project_busy`; with `"wait"` the run waits for its turn (FIFO) in
 *   `preparing` (its timeout counts, and it holds an admission slot meanwhile).
 *   The turn is given back when the run's terminal event is written.
 * - Idle: while a run holds the container the sweeper keeps it; after the last
 *   run (or keepalive) it lives `docker.project_idle_secs`, then the periodic
 *   idle sweep (`sweeper.ts`) removes it. The API view (`project-status.ts`)
 *   shows when.
 * - Homes: the container exists before its runs, so a run's home cannot be
 *   mounted; it is copied in before the run's exec, to
 *   `/home/agent/runs/<home key>` (HOME of that exec; see `container-exec.ts`).
 *   What the agent writes there (sessions) stays in the container, so a
 *   resumed run of the project finds it while the container lives; it is not
 *   copied back to the host.
 * - Launcher: with a local engine the container's main process is the launcher
 *   (`launcher-handle.ts`, socket directory `<workspaces>/.launch/<name>`), so
 *   a run's process starts without the engine's exec; handles found again
 *   (also after a restart) use the same socket, or the exec path when none answers.
 * - A run ending (cancel, timeout) kills only its own exec'd process tree
 *   (`container-exec.ts`); the container stays.
 * - Restart of the server: running project containers are adopted, and the
 *   processes of runs that were in flight (their execs carry
 *   `OPENRUNNER_RUN_ID`) are killed inside them ({@link ProjectContainers.adopt},
 *   `project-adopt.ts`).
 */
import { createHash } from "node:crypto";
import { mkdir, realpath } from "node:fs/promises";
import path from "node:path";
import type { Config } from "../config/schema.ts";
import { ConflictError, ValidationError } from "../errors.ts";
import type { Log } from "../log.ts";
import { PROJECT_ID_PATTERN } from "../protocol/requests.ts";
import { LABEL, containerLabels } from "./labels.ts";
import { DESKTOP_INIT, waitDesktopReady } from "./desktop.ts";
import { LAUNCHER_SCRIPT, launcherDir, prepareLauncherDir, withLauncher } from "./launcher-handle.ts";
import { adoptProjectContainers, type InterruptedRun } from "./project-adopt.ts";
import { projectKey, ProjectTurns, type ProjectSlot } from "./project-slots.ts";
import { projectStatus, type ProjectContainerStatus } from "./project-status.ts";
import { CONTAINER_HOME, CONTAINER_RUN_HOMES, CONTAINER_WORKDIR, checkRunHome, chownTree, mib, type ContainerRunEvent, type RunContainer, type RunHome } from "./run-container.ts";
import type { ContainerSweeper } from "./sweeper.ts";
import type { ContainerClient, ContainerHandle, ContainerLimits, ContainerState, ContainerSummary } from "./types.ts";

const PROJECT_ID = new RegExp(PROJECT_ID_PATTERN);

/** Options of {@link ProjectContainers}. */
export interface ProjectContainersOptions {
  client: () => ContainerClient;
  /** This server's instance id (label). */
  instance: string;
  /** Absolute workspaces root; a user's projects live under `<root>/<user id>/projects/`. */
  workspacesRoot: string;
  docker: Pick<Config["docker"], "image" | "user" | "network" | "memory_mb" | "cpus" | "pids_limit" | "max_runs_per_project" | "project_busy" | "max_projects_per_user">;
  /** Keeps held containers from the idle sweep and tells when each was last used. */
  sweeper?: ContainerSweeper;
  log?: Pick<Log, "info" | "warn">;
  /** Whether this process runs as root (default: `process.getuid() === 0`); then project directories are chowned to the container user. */
  isRoot?: boolean;
  /** Start project containers with the launcher (default: when the engine is local, `unix://…`); false: exec only. */
  launcher?: boolean;
}

/** Ensure options: what to create when there is no container yet. */
export interface EnsureOptions {
  image?: string;
  limits?: ContainerLimits;
  /** Called with `container.created`/`container.started` when this call creates the container. */
  emit?: (e: ContainerRunEvent) => void;
  /** Create it as a desktop container (`image` the desktop image); handed over once the desktop is ready. */
  desktop?: boolean;
}

/** Options of {@link ProjectContainers.acquireForRun}. */
export interface ProjectRunOptions {
  userId: string;
  projectId: string;
  runId: string;
  image: string;
  limits: ContainerLimits;
  /** The request named limits of its own (they must then match an existing container's). */
  limitsAsked: boolean;
  /** The run's host cwd (inside the project directory). */
  cwd: string;
  /** The run's isolated home (checked with `checkRunHome`), copied into the container before the exec. */
  home: RunHome;
  command?: string;
  slot: ProjectSlot;
  emit: (e: ContainerRunEvent) => void;
  signal?: AbortSignal;
  /** `metadata.desktop`: the project container must be a desktop container (created as one when missing). */
  desktop?: boolean;
}

/**
 * See the module comment. One per server.
 * @example
 * const projects = new ProjectContainers({ client, instance, workspacesRoot, docker: config.docker, sweeper });
 * const slot = projects.claim(user.id, "site");           // 409 project_busy in reject mode
 * await slot.ready(signal);
 * const container = await projects.acquireForRun({ ...,  slot });
 */
export class ProjectContainers {
  readonly #o: ProjectContainersOptions;
  readonly #turns: ProjectTurns;
  /** Per-key queue of engine operations (ensure, restart, remove), one at a time. */
  readonly #ops = new Map<string, Promise<unknown>>();
  /** Per-key container id, as last seen. */
  readonly #ids = new Map<string, string>();

  constructor(opts: ProjectContainersOptions) {
    this.#o = opts;
    this.#turns = new ProjectTurns({ docker: opts.docker, ...(opts.log ? { log: opts.log } : {}) });
  }

  /** Throws ValidationError when `projectId` does not match {@link PROJECT_ID_PATTERN}. */
  static check(projectId: string): void {
    if (!PROJECT_ID.test(projectId)) throw new ValidationError(`project_id must be 1-64 characters [A-Za-z0-9_.-] starting with a letter or digit, got ${JSON.stringify(projectId)}`, { field: "project_id" });
  }

  /** The default limits of a new project container (the `docker` settings). */
  get defaultLimits(): ContainerLimits {
    const d = this.#o.docker;
    return { memoryBytes: mib(d.memory_mb), nanoCpus: Math.round(d.cpus * 1e9), pidsLimit: d.pids_limit };
  }

  /**
   * Host directory of a project (`<root>/<user>/projects/<project>`), created if missing, symlink-free.
   * @throws ValidationError `project_dir_invalid` when a component of the path is a symlink (it would be bind-mounted)
   */
  async ensureDir(userId: string, projectId: string): Promise<string> {
    ProjectContainers.check(projectId);
    await mkdir(this.#o.workspacesRoot, { recursive: true });
    const expected = path.join(await realpath(this.#o.workspacesRoot), userId, "projects", projectId);
    await mkdir(expected, { recursive: true });
    if ((await realpath(expected)) !== expected) throw new ValidationError(`the directory of project ${projectId} is not a plain directory`, { field: "project_id" }, "project_dir_invalid");
    return expected;
  }

  /**
   * Refuses a non-project run's cwd inside the user's `projects/` folder: only project containers write there, so nothing can
   * turn a project directory into a symlink before it is bind-mounted.
   * @throws ValidationError `cwd_in_projects`
   */
  async checkNotInProjects(userId: string, cwd: string): Promise<void> {
    const projects = path.join(await realpath(this.#o.workspacesRoot), userId, "projects");
    if (cwd === projects || cwd.startsWith(`${projects}${path.sep}`))
      throw new ValidationError("metadata.cwd inside projects/ is reserved for project runs (use metadata.project_id)", { field: "metadata.cwd" }, "cwd_in_projects");
  }

  /**
   * Claims a turn for a run of (user, project); see the module comment and {@link ProjectTurns.claim}.
   * @throws ConflictError `project_busy` (409) in `reject` mode when the project already has `max_runs_per_project` runs
   */
  claim(userId: string, projectId: string): ProjectSlot {
    return this.#turns.claim(userId, projectId);
  }

  /** Runs holding / waiting for (user, project). */
  load(userId: string, projectId: string): { active: number; waiting: number } {
    return this.#turns.load(userId, projectId);
  }

  /**
   * The project container, created and started if there is none running (idempotent; one engine operation per project at a time).
   * @returns the handle, its state and whether this call created it
   * @throws ContainerError (`engine_unavailable`, `image_not_found`, …)
   */
  async ensure(userId: string, projectId: string, o: EnsureOptions = {}): Promise<{ handle: ContainerHandle; state: ContainerState; created: boolean }> {
    ProjectContainers.check(projectId);
    return this.#serial(projectKey(userId, projectId), () => this.#ensure(userId, projectId, o));
  }

  /** The running container of (user, project) with its state, or undefined. */
  async find(userId: string, projectId: string): Promise<{ handle: ContainerHandle; state: ContainerState } | undefined> {
    ProjectContainers.check(projectId);
    const key = projectKey(userId, projectId);
    const client = this.#o.client();
    let id = this.#ids.get(key);
    if (!id) {
      const found = await client.list(this.#labels(userId, projectId));
      id = (found.find((c) => c.state === "running") ?? found[0])?.id;
      if (!id) return undefined;
    }
    try {
      const handle = withLauncher(client.get(id), launcherDir(this.#launcherRoot, this.#name(userId, projectId)));
      const state = await handle.inspect();
      this.#ids.set(key, id);
      return { handle, state };
    } catch (err) {
      if ((err as { code?: string }).code === "container_not_found") {
        this.#ids.delete(key);
        return undefined;
      }
      throw err;
    }
  }

  /** The API view of (user, project)'s container, or undefined. */
  async status(userId: string, projectId: string): Promise<ProjectContainerStatus | undefined> {
    const f = await this.find(userId, projectId);
    return f ? this.#view(userId, projectId, f.state) : undefined;
  }

  /** {@link ensure}, as the API view plus whether it was created. */
  async ensureStatus(userId: string, projectId: string, o: EnsureOptions = {}): Promise<{ status: ProjectContainerStatus; created: boolean }> {
    const r = await this.ensure(userId, projectId, o);
    return { status: this.#view(userId, projectId, r.state), created: r.created };
  }

  /** Resets the idle time of (user, project)'s container. @returns its view, or undefined when there is none */
  async keepalive(userId: string, projectId: string): Promise<ProjectContainerStatus | undefined> {
    const f = await this.find(userId, projectId);
    if (!f) return undefined;
    this.#o.sweeper?.touch(f.handle.id);
    return this.#view(userId, projectId, f.state);
  }

  /**
   * Destroys and recreates (user, project)'s container with the same image and limits (the workspace stays).
   * @returns the new view, or undefined when there was no container
   * @throws ConflictError `project_busy` while a run holds the project
   */
  async restart(userId: string, projectId: string): Promise<ProjectContainerStatus | undefined> {
    const key = projectKey(userId, projectId);
    return this.#serial(key, async () => {
      this.#refuseBusy(userId, projectId, "restarted");
      const f = await this.find(userId, projectId);
      if (!f) return undefined;
      await f.handle.remove({ force: true });
      this.#ids.delete(key);
      const h = f.state.hostConfig;
      const r = await this.#ensure(userId, projectId, { image: f.state.image, limits: { memoryBytes: h.memoryBytes, nanoCpus: h.nanoCpus, pidsLimit: h.pidsLimit ?? this.defaultLimits.pidsLimit } });
      return this.#view(userId, projectId, r.state);
    });
  }

  /**
   * Removes (user, project)'s container (the workspace directory stays).
   * @returns false when there was none
   * @throws ConflictError `project_busy` while a run holds the project
   */
  async remove(userId: string, projectId: string): Promise<boolean> {
    const key = projectKey(userId, projectId);
    return this.#serial(key, async () => {
      this.#refuseBusy(userId, projectId, "removed");
      const f = await this.find(userId, projectId);
      if (!f) return false;
      await f.handle.remove({ force: true });
      this.#ids.delete(key);
      return true;
    });
  }

  /**
   * The container a project run executes in, once its slot is ready: ensured (created with the run's image and limits when
   * missing, emitting `container.created`/`container.started` with `project_id`), held against the idle sweep until the slot is released.
   * @throws ConflictError `project_image_mismatch` / `project_limits_mismatch` (the run ends failed with that code); ContainerError
   */
  async acquireForRun(o: ProjectRunOptions): Promise<RunContainer> {
    const homeKey = await checkRunHome(o.home);
    await o.slot.ready(o.signal);
    o.signal?.throwIfAborted();
    const r = await this.ensure(o.userId, o.projectId, { image: o.image, limits: o.limits, emit: o.emit, ...(o.desktop ? { desktop: true } : {}) });
    const st = r.state;
    if (!r.created && st.image !== o.image)
      throw new ConflictError(`project ${o.projectId}'s container runs image ${st.image}, not ${o.image}; restart it to change`, "project_image_mismatch");
    const h = st.hostConfig;
    if (!r.created && o.limitsAsked && (h.memoryBytes !== o.limits.memoryBytes || h.nanoCpus !== o.limits.nanoCpus || h.pidsLimit !== o.limits.pidsLimit))
      throw new ConflictError(`project ${o.projectId}'s container was created with other limits; restart it to change them`, "project_limits_mismatch");
    if (this.#o.sweeper) o.slot.onRelease(this.#o.sweeper.hold(r.handle.id));
    const projectDir = path.join(this.#o.workspacesRoot, o.userId, "projects", o.projectId);
    const rel = path.relative(await realpath(projectDir), o.cwd);
    if (rel === ".." || rel.startsWith(`..${path.sep}`) || path.isAbsolute(rel)) throw new ValidationError(`the run's cwd is outside project ${o.projectId}`, { field: "metadata.cwd" }, "cwd_outside_project");
    return {
      handle: r.handle,
      perRun: false,
      workdir: rel === "" ? CONTAINER_WORKDIR : path.posix.join(CONTAINER_WORKDIR, ...rel.split(path.sep)),
      home: `${CONTAINER_RUN_HOMES}/${homeKey}`,
      homeFrom: "copy",
      user: st.user || this.#o.docker.user,
      memoryBytes: h.memoryBytes,
      ...(o.command ? { command: o.command } : {}),
      ...(o.desktop ? { desktop: { socketDir: launcherDir(this.#launcherRoot, this.#name(o.userId, o.projectId)) } } : {}),
    };
  }

  /**
   * At start: remembers adopted (running) project containers and kills, inside them, the processes of runs that were in
   * flight when the previous server stopped (every exec of a run carries `OPENRUNNER_RUN_ID=<run id>`).
   * @param interrupted runs just ended as interrupted by recovery, with their owner and metadata
   * @returns how many processes were killed
   */
  async adopt(adopted: ContainerSummary[], interrupted: InterruptedRun[]): Promise<number> {
    return adoptProjectContainers(adopted, interrupted, { client: this.#o.client, remember: (userId, projectId, id) => this.#ids.set(projectKey(userId, projectId), id), ...(this.#o.log ? { log: this.#o.log } : {}) });
  }

  /** Removes every project container of a user (before the user is deleted). @returns how many */
  async removeAllOf(userId: string): Promise<number> {
    const all = await this.#o.client().list({ [LABEL.instance]: this.#o.instance, [LABEL.kind]: "project", [LABEL.userId]: userId });
    for (const c of all) {
      await this.#o.client().get(c.id).remove({ force: true });
      const projectId = c.labels[LABEL.projectId];
      if (projectId) this.#ids.delete(projectKey(userId, projectId));
    }
    return all.length;
  }

  /**
   * Refuses a new project container past `docker.max_projects_per_user`,
   * counting the user's containers (by label) other than this project's.
   * @throws ConflictError 409 `project_limit`
   */
  async #withinUserLimit(userId: string, projectId: string): Promise<void> {
    const max = this.#o.docker.max_projects_per_user;
    const all = await this.#o.client().list({ [LABEL.instance]: this.#o.instance, [LABEL.kind]: "project", [LABEL.userId]: userId });
    const others = new Set(all.map((c) => c.labels[LABEL.projectId]).filter((p) => p !== projectId));
    if (others.size >= max) throw new ConflictError(`you already have ${others.size} project containers (max_projects_per_user ${max}); remove one with DELETE /api/projects/:project_id/container`, "project_limit");
  }

  /** Where launcher sockets (and desktops' reports) of this server's containers live (`<workspaces>/.launch`, mode 0700). */
  get launcherRoot(): string {
    return this.#launcherRoot;
  }

  get #launcherRoot(): string {
    return path.join(this.#o.workspacesRoot, ".launch");
  }

  #name(userId: string, projectId: string): string {
    return `openrunner-project-${createHash("sha256").update(`${this.#o.instance}/${userId}/${projectId}`).digest("hex").slice(0, 20)}`;
  }

  #labels(userId: string, projectId: string): Record<string, string> {
    return { [LABEL.instance]: this.#o.instance, [LABEL.kind]: "project", [LABEL.userId]: userId, [LABEL.projectId]: projectId };
  }

  #refuseBusy(userId: string, projectId: string, what: string): void {
    const { active } = this.load(userId, projectId);
    if (active > 0) throw new ConflictError(`project ${projectId}'s container is in use by ${active} run(s) and cannot be ${what} now`, "project_busy");
  }

  async #ensure(userId: string, projectId: string, o: EnsureOptions): Promise<{ handle: ContainerHandle; state: ContainerState; created: boolean }> {
    const key = projectKey(userId, projectId);
    const f = await this.find(userId, projectId);
    if (f?.state.running) {
      this.#o.sweeper?.touch(f.handle.id); // about to be used: not idle
      return { ...f, created: false };
    }
    if (f) {
      // Exited (or never started): recreate rather than revive a container whose PID 1 died.
      await f.handle.remove({ force: true });
      this.#ids.delete(key);
    }
    // Per user, one creation at a time, so the limit holds under concurrent requests for different projects.
    return this.#serial(`user\u0000${userId}`, async () => {
      await this.#withinUserLimit(userId, projectId);
      return this.#create(userId, projectId, o);
    });
  }

  async #create(userId: string, projectId: string, o: EnsureOptions): Promise<{ handle: ContainerHandle; state: ContainerState; created: boolean }> {
    const key = projectKey(userId, projectId);
    const d = this.#o.docker;
    const dir = await this.ensureDir(userId, projectId);
    const [uid, gid = uid] = d.user.split(":").map(Number) as [number, number?];
    const isRoot = this.#o.isRoot ?? process.getuid?.() === 0;
    if (isRoot) await chownTree(dir, uid, gid);
    const client = this.#o.client();
    const name = this.#name(userId, projectId);
    const socketDir = (this.#o.launcher ?? client.engine.startsWith("unix://")) ? await prepareLauncherDir(this.#launcherRoot, name, d.user, isRoot) : undefined;
    const raw = await client.create({
      image: o.image ?? d.image,
      name,
      labels: containerLabels({ instance: this.#o.instance, kind: "project", userId, projectId }),
      workspace: dir,
      user: d.user,
      limits: o.limits ?? this.defaultLimits,
      home: CONTAINER_HOME,
      ...(d.network ? { network: d.network } : {}),
      ...(socketDir ? { launcher: { socketDir, script: LAUNCHER_SCRIPT }, ...(o.desktop ? { desktop: { init: DESKTOP_INIT } } : {}) } : {}),
    });
    const handle = withLauncher(raw, socketDir ?? launcherDir(this.#launcherRoot, name));
    const data = { container_id: handle.id, project_id: projectId };
    o.emit?.({ type: "container.created", data });
    try {
      await handle.start();
    } catch (err) {
      await handle.remove({ force: true }).catch(() => {});
      throw err;
    }
    // Its runs start through the launcher once it answers (an image without node: never; then exec).
    try {
      if (socketDir && o.desktop) await waitDesktopReady(socketDir);
    } catch (err) {
      await handle.remove({ force: true }).catch(() => {});
      throw err;
    }
    if (socketDir && !(await handle.ready())) this.#o.log?.info("project container has no launcher; its runs start with the engine's exec", { container_id: handle.id });
    o.emit?.({ type: "container.started", data });
    this.#ids.set(key, handle.id);
    this.#o.sweeper?.touch(handle.id);
    return { handle, state: await handle.inspect(), created: true };
  }

  #view(userId: string, projectId: string, st: ContainerState): ProjectContainerStatus {
    return projectStatus(userId, projectId, st, this.load(userId, projectId), this.#o.sweeper);
  }

  async #serial<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.#ops.get(key) ?? Promise.resolve();
    const p = prev.catch(() => {}).then(fn);
    this.#ops.set(key, p);
    try {
      return await p;
    } finally {
      if (this.#ops.get(key) === p) this.#ops.delete(key);
    }
  }
}
