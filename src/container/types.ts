/**
 * The narrow interface between OpenRunner and a container engine (STYLE.md
 * item 8). Only `client.ts` knows dockerode; everything else (the container
 * actor, the pool, the sweeper, the image build, tests with a fake) uses
 * these types. Handles own engine objects and implement
 * `Symbol.asyncDispose`, so `await using c = await client.create(spec)`
 * removes the container on every path out of the scope.
 */
import type { Readable, Writable } from "node:stream";

/** Resource limits of one container. */
export interface ContainerLimits {
  /** Memory limit in bytes (swap is disabled: memory+swap = memory). At least 6 MiB. */
  memoryBytes: number;
  /** CPU quota in units of 1e-9 CPUs (1.5 CPUs = 1_500_000_000). */
  nanoCpus: number;
  /** Maximum number of processes/threads in the container. */
  pidsLimit: number;
}

/** What to create. Everything not listed here is locked down by the client. */
export interface ContainerSpec {
  image: string;
  /** Labels, normally from `containerLabels()`; `openrunner.instance` is required. */
  labels: Record<string, string>;
  /** Optional container name (unique in the engine). */
  name?: string;
  /** Absolute host directory, bind-mounted read-write at `/workspace`. Must exist. */
  workspace: string;
  /** Extra host paths mounted read-only (e.g. agent config). Targets must be absolute and outside `/workspace`. */
  readOnlyMounts?: Array<{ source: string; target: string }>;
  /** Numeric `uid:gid` (or `uid`), never 0: containers never run as root. */
  user: string;
  limits: ContainerLimits;
  /** Docker network to join; when absent the container has no network at all (`none`). */
  network?: string;
  /** Root filesystem read-only (default true); `/tmp` and `home` are tmpfs either way. */
  readonlyRootfs?: boolean;
  /** HOME inside the container (default `/home/agent`): a tmpfs owned by `user`, or `homeSource` mounted there. */
  home?: string;
  /**
   * Absolute host directory bind-mounted read-write as HOME instead of the tmpfs: the run's own
   * isolated agent home (config written by the adapter, sessions kept for resume). Never a user's real home.
   */
  homeSource?: string;
  /** Size of each tmpfs (`/tmp`, home), bytes (default 256 MiB). Counts against the memory limit. */
  tmpfsBytes?: number;
  /** Container-level environment (execs add their own). */
  env?: Record<string, string>;
  /** PID 1's command under the engine's init (tini); default `["sleep", "infinity"]`. */
  cmd?: string[];
  /**
   * Run the launcher as the main process (`launcher-handle.ts`): `socketDir` (absolute host directory, writable by
   * `user`) is bind-mounted at `/run/openrunner`, `script` (the launcher program on the host) read-only at
   * `/opt/openrunner/launcher.mjs`; the image's `node` runs it, or, without node, PID 1 sleeps as without a launcher.
   * Excludes `cmd`.
   */
  launcher?: { socketDir: string; script: string };
  /**
   * A desktop container (`desktop.ts`; the image must be the desktop image): `init` (the desktop's init program on the
   * host, `docker/desktop/desktop-init.mjs`) is mounted read-only and started next to the launcher (required),
   * `DISPLAY` and the sound and input-method variables are in the environment, and /dev/shm is 256 MiB (for the browser).
   */
  desktop?: { init: string };
}

/** A container as listed by labels. */
export interface ContainerSummary {
  id: string;
  name: string;
  image: string;
  /** Engine state: `created`, `running`, `paused`, `restarting`, `removing`, `exited`, `dead`. */
  state: string;
  labels: Record<string, string>;
  /** Creation time, ms since the epoch. */
  createdAt: number;
}

/** A container as inspected. */
export interface ContainerState extends ContainerSummary {
  running: boolean;
  /** Exit code of PID 1 once exited. */
  exitCode: number | null;
  /** True when the kernel OOM-killed a process of the container (reported by the engine when the container exits). */
  oomKilled: boolean;
  startedAt: string | null;
  finishedAt: string | null;
  /** The security-relevant part of the engine's HostConfig, as applied. */
  hostConfig: {
    memoryBytes: number;
    memorySwapBytes: number;
    nanoCpus: number;
    pidsLimit: number | null;
    networkMode: string;
    readonlyRootfs: boolean;
    privileged: boolean;
    capDrop: string[];
    capAdd: string[];
    securityOpt: string[];
    tmpfs: Record<string, string>;
    mounts: Array<{ type: string; source: string; target: string; readOnly: boolean }>;
    init: boolean;
  };
  /** Configured user (`uid:gid`). */
  user: string;
  /** The container's IPv4 address on each network it is attached to (network name -> address); empty with network `none`. */
  ipAddresses: Record<string, string>;
}

/** One process to run inside a running container. */
export interface ExecSpec {
  /** argv[0] is looked up in the container's PATH. */
  argv: string[];
  /** Added to the container's environment (image ENV such as PATH and HOME stays unless overridden). */
  env?: Record<string, string>;
  /** Working directory inside the container (default `/workspace`). */
  cwd?: string;
  /** `uid:gid` to run as (default: the container's user). Never root. */
  user?: string;
  /**
   * Attach the process's stdin (default false: it reads EOF at once). The handle then has a
   * {@link ExecHandle.stdin} to write to; ending it closes the process's stdin.
   */
  stdin?: boolean;
}

/** How an exec ended. */
export interface ExecExit {
  /** The process's exit code (128+n after signal n, shell convention), or null when the engine could not tell. */
  exitCode: number | null;
  /** Set when the engine connection failed or the container vanished mid-exec. */
  error?: Error;
}

/** Signals {@link ExecHandle.kill} may send. */
export type ExecSignal = "TERM" | "KILL" | "INT" | "HUP";

/** A process running in a container. */
export interface ExecHandle extends AsyncDisposable {
  /** Engine exec id. */
  readonly id: string;
  /**
   * Value of `OPENRUNNER_EXEC_ID` in the process's environment: inherited by
   * every descendant, it is how {@link kill} finds the whole tree.
   */
  readonly marker: string;
  /** Demultiplexed output; both end when the process (and its pipes) end. */
  readonly stdout: Readable;
  readonly stderr: Readable;
  /**
   * The process's stdin, when the spec asked for it (`stdin: true`): bytes written go to the
   * process as they are; `end()` closes its stdin (the output streams stay open until it exits).
   * Writes after the process is gone fail quietly (the `exit` promise tells how it ended).
   */
  readonly stdin?: Writable;
  /** Resolves once both streams ended and the engine reports the exit; never rejects. */
  readonly exit: Promise<ExecExit>;
  /**
   * Sends `signal` to every process in the container that carries this exec's
   * marker (the process, its children, and daemons it left behind), as the
   * exec's user. Resolves with the number of processes signalled; 0 when
   * none is left (or the container is gone).
   */
  kill(signal?: ExecSignal): Promise<number>;
  /**
   * Whether the exec'd process itself still runs (the engine's view). Its output streams stay open
   * while anything it left behind holds its pipes; this tells the two apart. False once the
   * process ended, or when the engine cannot tell.
   */
  running(): Promise<boolean>;
}

/** A container owned by the caller. Disposing it removes it (force), ignoring "already gone". */
export interface ContainerHandle extends AsyncDisposable {
  readonly id: string;
  /** Starts it; already running is fine. */
  start(): Promise<void>;
  /** Starts a process in it and attaches to its stdout and stderr. */
  exec(spec: ExecSpec): Promise<ExecHandle>;
  /** Runs a process to completion and collects its output (bounded to `maxBytes` per stream, default 1 MiB). */
  execCollect(spec: ExecSpec, opts?: { maxBytes?: number }): Promise<{ exitCode: number | null; stdout: string; stderr: string }>;
  inspect(): Promise<ContainerState>;
  /**
   * How many processes the kernel has OOM-killed in this container so far (its memory cgroup's
   * `oom_kill` counter, read from inside, cgroup v1 or v2), or null when it cannot be read. Compare
   * before/after an exec that ended with 137 to report `oom_killed` while the container keeps running
   * (the engine's `State.OOMKilled` is only set when PID 1 dies).
   */
  oomKills(): Promise<number | null>;
  /** SIGTERM to PID 1 (tini forwards it), SIGKILL after `timeoutS` (default 5). Already stopped is fine. */
  stop(opts?: { timeoutS?: number }): Promise<void>;
  /** Removes it; `force` (default true) kills it first. Already gone is fine. */
  remove(opts?: { force?: boolean }): Promise<void>;
}

/** An image in the engine. */
export interface ImageInfo {
  id: string;
  tags: string[];
  sizeBytes: number;
  createdAt: string;
  /** The image's ENTRYPOINT and CMD (exec form; empty when unset): what a `task` run executes. */
  entrypoint: string[];
  cmd: string[];
  /** The image's labels (e.g. `openrunner.image.content-hash`, which tells whether a build is current). */
  labels: Record<string, string>;
}

/** Options of {@link ContainerClient.importImage}. */
export interface ImportOptions {
  /** `repo:tag` to give the image. */
  tag: string;
  /** Dockerfile instructions applied to the imported filesystem (`ENV A=b`, `USER 1000:1000`, `LABEL k=v`, `CMD [...]`). */
  changes?: string[];
  onProgress?: (line: string) => void;
}

/** Options of {@link ContainerClient.buildImage}. */
export interface BuildOptions {
  tag: string;
  /** Path of the Dockerfile inside the context (default `Dockerfile`). */
  dockerfile?: string;
  labels?: Record<string, string>;
  /** Each line of build output (`Step 1/5 : FROM scratch`, …). */
  onProgress?: (line: string) => void;
}

/** The engine operations OpenRunner needs, and nothing else. */
export interface ContainerClient {
  /** Where the engine is, for messages (`unix:///var/run/docker.sock`). */
  readonly engine: string;
  /** Resolves when the engine answers; otherwise ContainerError `engine_unavailable`. */
  ping(opts?: { timeoutMs?: number }): Promise<void>;
  /** Creates (does not start) a locked-down container; see {@link ContainerSpec}. */
  create(spec: ContainerSpec): Promise<ContainerHandle>;
  /** A handle on an existing container (no engine call until used). */
  get(id: string): ContainerHandle;
  /** Containers (running or not) carrying every given label; a value of `true` matches any value. */
  list(labels: Record<string, string | true>): Promise<ContainerSummary[]>;
  /** The image, or undefined when the engine does not have it. */
  imageInfo(ref: string): Promise<ImageInfo | undefined>;
  /** Builds an image from a tar context stream with the engine's build API. */
  buildImage(context: Readable, opts: BuildOptions): Promise<ImageInfo>;
  /**
   * Makes an image from a root filesystem as one tar stream (the engine's import, `docker import`).
   * @throws ContainerError `image_build_failed` when the engine refuses it or the stream fails
   */
  importImage?(rootfs: Readable, opts: ImportOptions): Promise<ImageInfo>;
}
