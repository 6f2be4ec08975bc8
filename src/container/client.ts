/**
 * The dockerode implementation of {@link ContainerClient}: the only module
 * that imports dockerode (STYLE.md item 8).
 *
 * Every container is created locked down: the workspace bind-mounted at
 * `/workspace` and nothing else from the host (plus explicit read-only
 * mounts), a numeric non-root user, memory (no swap), CPU and PID limits, no
 * privileged mode, all capabilities dropped, `no-new-privileges`, network
 * `none` unless one is named, a read-only root filesystem with tmpfs `/tmp`
 * and HOME, and the engine's init (tini) as PID 1 so orphans are reaped and
 * `stop` is prompt.
 *
 * Killing an exec's process tree: every exec gets a random marker in its
 * environment (`OPENRUNNER_EXEC_ID`), which all its descendants inherit, even
 * those that start their own session or daemonize. `kill()` runs a small
 * `/bin/sh` script as the exec's user that signals every process whose
 * `/proc/<pid>/environ` carries the marker. Unlike `kill -1` it leaves the
 * other runs of a shared (project) container alone; unlike a process-group
 * kill it also reaches descendants that left the group; unlike killing the
 * engine-reported host PID it works with a remote engine. It needs `/bin/sh`,
 * `tr`, `grep` and `kill` in the image (both shipped images have them); for per-run
 * containers, stopping the container is the backstop.
 */
import { collectCapped } from "./collect.ts";
import { randomBytes } from "node:crypto";
import type { Readable, Writable } from "node:stream";
import Docker from "dockerode";
import { ValidationError } from "../errors.ts";
import { collectBuildOutput } from "./build-output.ts";
import { demuxDockerStream } from "./demux.ts";
import { KILL_SCRIPT, MARKER_ENV, OOM_SCRIPT } from "./exec-scripts.ts";
import { stdinOf, type HijackedSocket } from "./exec-stdin.ts";
import { ContainerError, toContainerError } from "./errors.ts";
import { checkExecUser, createOptions, parseDockerHost } from "./spec.ts";
import type {
  BuildOptions,
  ContainerClient,
  ContainerHandle,
  ContainerSpec,
  ContainerState,
  ContainerSummary,
  ExecExit,
  ExecHandle,
  ExecSignal,
  ExecSpec,
  ImageInfo,
  ImportOptions,
} from "./types.ts";

export type * from "./types.ts";
export { createOptions, parseDockerHost } from "./spec.ts";

/** How the engine's own exec start errors begin (written on the exec's stdout). */
const START_ERROR_PREFIX = "OCI runtime exec failed";
const MIB = 1024 * 1024;

/** Options of {@link createDockerClient}. */
export interface DockerClientOptions {
  /** A `DOCKER_HOST` value (the composition root passes the environment's); default `/var/run/docker.sock`. */
  dockerHost?: string;
}

/**
 * Creates the dockerode-backed client. No engine call is made until a method is used.
 * @example
 * const client = createDockerClient({ dockerHost: env.DOCKER_HOST });
 * await client.ping();
 * await using c = await client.create({ image, labels, workspace, user: "1000:1000", limits });
 * await c.start();
 * const x = await c.exec({ argv: ["sh", "-c", "echo hi"] });
 */
export function createDockerClient(opts: DockerClientOptions = {}): ContainerClient {
  const { options, engine } = parseDockerHost(opts.dockerHost);
  return new DockerClient(new Docker(options), engine);
}

/** Ignores the engine's "nothing to do" answers (304 not modified) and "already gone" (404) where asked. */
function tolerate(err: unknown, codes: number[]): void {
  const status = (err as { statusCode?: unknown } | null)?.statusCode;
  if (typeof status === "number" && codes.includes(status)) return;
  throw err;
}

function summaryOf(c: Docker.ContainerInfo): ContainerSummary {
  return {
    id: c.Id,
    name: (c.Names[0] ?? "").replace(/^\//, ""),
    image: c.Image,
    state: c.State,
    labels: c.Labels ?? {},
    createdAt: c.Created * 1000,
  };
}


class DockerClient implements ContainerClient {
  constructor(
    readonly docker: Docker,
    readonly engine: string,
  ) {}

  async ping(opts: { timeoutMs?: number } = {}): Promise<void> {
    try {
      await this.docker.ping({ abortSignal: AbortSignal.timeout(opts.timeoutMs ?? 5000) } as never);
    } catch (err) {
      const e = toContainerError(err, { op: "ping", engine: this.engine });
      if (e.code === "engine_unavailable") throw e;
      if ((err as { name?: string }).name === "AbortError" || (err as { name?: string }).name === "TimeoutError")
        throw new ContainerError("engine_unavailable", `docker engine at ${this.engine} did not answer within ${opts.timeoutMs ?? 5000} ms`, { cause: err });
      throw new ContainerError("engine_unavailable", `docker engine at ${this.engine} is not usable: ${e.message}`, { cause: err });
    }
  }

  async create(spec: ContainerSpec): Promise<ContainerHandle> {
    const options = createOptions(spec);
    try {
      const c = await this.docker.createContainer(options);
      return new DockerContainer(this, c.id);
    } catch (err) {
      throw toContainerError(err, { op: "create", image: spec.image, engine: this.engine });
    }
  }

  get(id: string): ContainerHandle {
    return new DockerContainer(this, id);
  }

  async list(labels: Record<string, string | true>): Promise<ContainerSummary[]> {
    const filter = Object.entries(labels).map(([k, v]) => (v === true ? k : `${k}=${v}`));
    try {
      const all = await this.docker.listContainers({ all: true, filters: { label: filter } });
      return all.map(summaryOf);
    } catch (err) {
      throw toContainerError(err, { op: "list", engine: this.engine });
    }
  }

  async imageInfo(ref: string): Promise<ImageInfo | undefined> {
    try {
      const i = await this.docker.getImage(ref).inspect();
      const argvOf = (v: unknown): string[] => (Array.isArray(v) ? v.map(String) : typeof v === "string" && v ? ["/bin/sh", "-c", v] : []);
      return { id: i.Id, tags: i.RepoTags ?? [], sizeBytes: i.Size, createdAt: i.Created, entrypoint: argvOf(i.Config?.Entrypoint), cmd: argvOf(i.Config?.Cmd), labels: i.Config?.Labels ?? {} };
    } catch (err) {
      if ((err as { statusCode?: unknown }).statusCode === 404) return undefined;
      throw toContainerError(err, { op: "image inspect", image: ref, engine: this.engine });
    }
  }

  async buildImage(context: Readable, opts: BuildOptions): Promise<ImageInfo> {
    let out: NodeJS.ReadableStream;
    try {
      out = await this.docker.buildImage(context, {
        t: opts.tag,
        dockerfile: opts.dockerfile ?? "Dockerfile",
        rm: true,
        forcerm: true,
        ...(opts.labels ? { labels: opts.labels } : {}),
      });
    } catch (err) {
      throw toContainerError(err, { op: "build", image: opts.tag, engine: this.engine });
    }
    const errors = await new Promise<string[]>((resolve, reject) => {
      collectBuildOutput(out, opts.onProgress).then(resolve, (err: Error) => reject(toContainerError(err, { op: "build", image: opts.tag, engine: this.engine })));
      context.once("error", (err: Error) => reject(new ContainerError("image_build_failed", `build context for ${opts.tag} failed: ${err.message}`, { cause: err })));
    });
    if (errors.length) throw new ContainerError("image_build_failed", `building ${opts.tag} failed: ${errors.join("; ")}`);
    const info = await this.imageInfo(opts.tag);
    if (!info) throw new ContainerError("image_build_failed", `building ${opts.tag} reported no error but the image is missing`);
    return info;
  }

  async importImage(rootfs: Readable, opts: ImportOptions): Promise<ImageInfo> {
    const [repo, tag = "latest"] = opts.tag.split(/:(?=[^:/]+$)/);
    let out: NodeJS.ReadableStream;
    try {
      out = (await this.docker.importImage(rootfs, { repo, tag, ...(opts.changes?.length ? { changes: opts.changes } : {}) } as never)) as unknown as NodeJS.ReadableStream;
    } catch (err) {
      throw new ContainerError("image_build_failed", `importing ${opts.tag} failed: ${toContainerError(err, { op: "import", image: opts.tag, engine: this.engine }).message}`, { cause: err });
    }
    const errors = await new Promise<string[]>((resolve, reject) => {
      collectBuildOutput(out, opts.onProgress).then(resolve, (err: Error) => reject(new ContainerError("image_build_failed", `importing ${opts.tag} failed: ${err.message}`, { cause: err })));
      rootfs.once("error", (err: Error) => reject(new ContainerError("image_build_failed", `the root filesystem of ${opts.tag} could not be read: ${err.message}`, { cause: err })));
    });
    if (errors.length) throw new ContainerError("image_build_failed", `importing ${opts.tag} failed: ${errors.join("; ")}`);
    const info = await this.imageInfo(opts.tag);
    if (!info) throw new ContainerError("image_build_failed", `importing ${opts.tag} reported no error but the image is missing`);
    return info;
  }
}

class DockerContainer implements ContainerHandle {
  readonly #c: Docker.Container;
  constructor(
    readonly client: DockerClient,
    readonly id: string,
  ) {
    this.#c = client.docker.getContainer(id);
  }

  #err(err: unknown, op: string): ContainerError {
    return toContainerError(err, { op, containerId: this.id, engine: this.client.engine });
  }

  async start(): Promise<void> {
    try {
      await this.#c.start();
    } catch (err) {
      try {
        tolerate(err, [304]);
      } catch {
        throw this.#err(err, "start");
      }
    }
  }

  async stop(opts: { timeoutS?: number } = {}): Promise<void> {
    try {
      await this.#c.stop({ t: opts.timeoutS ?? 5 });
    } catch (err) {
      try {
        tolerate(err, [304]);
      } catch {
        throw this.#err(err, "stop");
      }
    }
  }

  async remove(opts: { force?: boolean } = {}): Promise<void> {
    try {
      await this.#c.remove({ force: opts.force ?? true, v: true });
    } catch (err) {
      const status = (err as { statusCode?: unknown }).statusCode;
      // 404: gone; 409 "removal already in progress": someone else is removing it.
      if (status === 404 || (status === 409 && /already in progress/i.test(String((err as Error).message)))) return;
      throw this.#err(err, "remove");
    }
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.remove({ force: true });
  }

  async inspect(): Promise<ContainerState> {
    let i: Docker.ContainerInspectInfo;
    try {
      i = await this.#c.inspect();
    } catch (err) {
      throw this.#err(err, "inspect");
    }
    const hc = i.HostConfig as Docker.HostConfig & { Init?: boolean | null; Mounts?: Array<{ Type: string; Source: string; Target: string; ReadOnly?: boolean }> };
    return {
      id: i.Id,
      name: i.Name.replace(/^\//, ""),
      image: i.Config.Image,
      state: i.State.Status,
      labels: i.Config.Labels ?? {},
      createdAt: Date.parse(i.Created),
      running: i.State.Running,
      exitCode: i.State.Running ? null : i.State.ExitCode,
      oomKilled: i.State.OOMKilled,
      startedAt: i.State.StartedAt && !i.State.StartedAt.startsWith("0001") ? i.State.StartedAt : null,
      finishedAt: i.State.FinishedAt && !i.State.FinishedAt.startsWith("0001") ? i.State.FinishedAt : null,
      user: i.Config.User,
      ipAddresses: Object.fromEntries(Object.entries(i.NetworkSettings?.Networks ?? {}).flatMap(([name, n]) => (n?.IPAddress ? [[name, n.IPAddress]] : []))),
      hostConfig: {
        memoryBytes: hc.Memory ?? 0,
        memorySwapBytes: hc.MemorySwap ?? 0,
        nanoCpus: hc.NanoCpus ?? 0,
        pidsLimit: hc.PidsLimit ?? null,
        networkMode: hc.NetworkMode ?? "",
        readonlyRootfs: hc.ReadonlyRootfs ?? false,
        privileged: hc.Privileged ?? false,
        capDrop: hc.CapDrop ?? [],
        capAdd: hc.CapAdd ?? [],
        securityOpt: hc.SecurityOpt ?? [],
        tmpfs: hc.Tmpfs ?? {},
        mounts: (hc.Mounts ?? []).map((m) => ({ type: m.Type, source: m.Source, target: m.Target, readOnly: m.ReadOnly ?? false })),
        init: hc.Init ?? false,
      },
    };
  }

  async oomKills(): Promise<number | null> {
    try {
      const r = await this.execCollect({ argv: ["/bin/sh", "-c", OOM_SCRIPT], cwd: "/" });
      const m = /oom_kill (\d+)/.exec(r.stdout);
      return m ? Number(m[1]) : null;
    } catch (err) {
      if (err instanceof ContainerError && (err.code === "container_not_found" || err.code === "container_conflict")) return null;
      throw err;
    }
  }

  async exec(spec: ExecSpec): Promise<ExecHandle> {
    if (spec.argv.length === 0) throw new ValidationError("exec argv must not be empty", { field: "argv" });
    checkExecUser(spec.user);
    const marker = randomBytes(12).toString("hex");
    const env = { ...spec.env, [MARKER_ENV]: marker };
    let exec: Docker.Exec;
    let socket: NodeJS.ReadWriteStream;
    try {
      exec = await this.#c.exec({
        Cmd: spec.argv,
        Env: Object.entries(env).map(([k, v]) => `${k}=${v}`),
        WorkingDir: spec.cwd ?? "/workspace",
        ...(spec.user ? { User: spec.user } : {}),
        AttachStdin: spec.stdin === true,
        AttachStdout: true,
        AttachStderr: true,
        Tty: false,
      });
      // hijack: the engine upgrades the HTTP connection to a raw duplex stream (stdin in, multiplexed stdout/stderr out).
      socket = await exec.start({ hijack: true, stdin: spec.stdin === true, Detach: false, Tty: false });
    } catch (err) {
      throw this.#err(err, "exec");
    }
    return new DockerExec(this, exec, socket as unknown as HijackedSocket, marker, spec.user, spec.stdin === true);
  }

  async execCollect(spec: ExecSpec, opts: { maxBytes?: number } = {}): Promise<{ exitCode: number | null; stdout: string; stderr: string }> {
    const max = opts.maxBytes ?? MIB;
    const x = await this.exec(spec);
    const out = collectCapped(x.stdout, max);
    const err = collectCapped(x.stderr, max);
    const exit = await x.exit;
    if (exit.error) throw exit.error instanceof ContainerError ? exit.error : this.#err(exit.error, "exec");
    return { exitCode: exit.exitCode, stdout: out(), stderr: err() };
  }
}

class DockerExec implements ExecHandle {
  readonly stdout: Readable;
  readonly stderr: Readable;
  readonly stdin?: Writable;
  readonly exit: Promise<ExecExit>;
  readonly id: string;

  constructor(
    readonly container: DockerContainer,
    readonly exec: Docker.Exec,
    readonly socket: HijackedSocket,
    readonly marker: string,
    readonly user: string | undefined,
    withStdin = false,
  ) {
    this.id = exec.id;
    if (withStdin) this.stdin = stdinOf(socket);
    // When the engine cannot start the process it writes "OCI runtime exec failed: …" on its stdout
    // and reports 126/127: that text is held back and becomes the exit's error, never agent output.
    const demuxed = demuxDockerStream(socket, { holdPrefix: START_ERROR_PREFIX });
    this.stdout = demuxed.stdout;
    this.stderr = demuxed.stderr;
    this.exit = demuxed.done.then(async (streamErr) => {
      const exit = await this.#waitExit(streamErr);
      const held = demuxed.held().trim();
      const startFailed = held !== "" && (exit.exitCode === 126 || exit.exitCode === 127);
      demuxed.releaseHeld(!startFailed);
      if (!startFailed || exit.error) return exit;
      return { exitCode: exit.exitCode, error: new ContainerError("exec_failed", `exec in container ${container.id.slice(0, 12)} failed to start: ${held}`) };
    });
  }

  async #waitExit(streamErr: Error | undefined): Promise<ExecExit> {
    // The stream ends when the process and every holder of its pipes are gone; the engine may
    // need a moment more to record the exit code.
    const deadline = Date.now() + 5000;
    for (let delay = 5; ; delay = Math.min(delay * 2, 200)) {
      try {
        const info = await this.exec.inspect();
        if (!info.Running || Date.now() > deadline) {
          const exitCode = info.Running ? null : info.ExitCode;
          return streamErr ? { exitCode, error: streamErr } : { exitCode };
        }
      } catch (err) {
        return { exitCode: null, error: toContainerError(err, { op: "exec inspect", containerId: this.container.id, engine: this.container.client.engine }) };
      }
      await new Promise((r) => setTimeout(r, delay));
    }
  }

  async kill(signal: ExecSignal = "TERM"): Promise<number> {
    try {
      const r = await this.container.execCollect({
        argv: ["/bin/sh", "-c", KILL_SCRIPT, "openrunner-kill", signal, this.marker],
        ...(this.user ? { user: this.user } : {}),
        cwd: "/",
      });
      return Number.parseInt(r.stdout.trim(), 10) || 0;
    } catch (err) {
      // Nothing left to kill when the container is gone or stopped.
      if (err instanceof ContainerError && (err.code === "container_not_found" || err.code === "container_conflict")) return 0;
      throw err;
    }
  }

  async running(): Promise<boolean> {
    try {
      return (await this.exec.inspect()).Running;
    } catch {
      return false;
    }
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.kill("KILL").catch(() => 0);
    this.socket.destroy();
  }
}
