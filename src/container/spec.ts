/**
 * The pure half of the Docker client: `DOCKER_HOST` parsing, validation of
 * container and exec specs, and the engine's create request for a spec (the
 * lock-down described in `client.ts`). No I/O and no dockerode import; the
 * request type below is the subset of the engine's ContainerCreate body we
 * send, structurally compatible with dockerode's.
 */
import { ConfigError, ValidationError } from "../errors.ts";
import { DESKTOP_ENV, DESKTOP_INIT_IN_IMAGE } from "./desktop.ts";
import { LABEL } from "./labels.ts";
import { LAUNCHER_ABSENT_NAME, LAUNCHER_SCRIPT_TARGET, LAUNCHER_SOCKET_DIR, LAUNCHER_SOCKET_NAME } from "./launcher-protocol.ts";
import type { ContainerSpec } from "./types.ts";

/** Where the engine listens, as dockerode options. */
export type EngineOptions = { socketPath: string } | { host: string; port: number; protocol: "http" };

const DEFAULT_SOCKET = "/var/run/docker.sock";
const MIB = 1024 * 1024;

/** The engine's container create body, as far as OpenRunner sets it. */
export interface CreateRequest {
  name?: string;
  Image: string;
  /** Always `[]`: the image's ENTRYPOINT never runs as PID 1 (a batch image's is exec'd by a `task` run instead). */
  Entrypoint: string[];
  Cmd: string[];
  User: string;
  WorkingDir: string;
  Labels: Record<string, string>;
  Env: string[];
  AttachStdin: boolean;
  AttachStdout: boolean;
  AttachStderr: boolean;
  OpenStdin: boolean;
  Tty: boolean;
  HostConfig: {
    Init: boolean;
    Mounts: Array<{ Type: "bind"; Source: string; Target: string; ReadOnly: boolean }>;
    Binds?: string[];
    Memory: number;
    MemorySwap: number;
    NanoCpus: number;
    PidsLimit: number;
    Privileged: boolean;
    CapDrop: string[];
    SecurityOpt: string[];
    NetworkMode: string;
    ReadonlyRootfs: boolean;
    Tmpfs: Record<string, string>;
    IpcMode: string;
    /** /dev/shm size, bytes (desktop containers: the browser uses it). */
    ShmSize?: number;
    RestartPolicy: { Name: "no" };
    AutoRemove: boolean;
    LogConfig: { Type: string; Config: Record<string, string> };
  };
}

/**
 * Parses a `DOCKER_HOST` value: empty for the default socket, `unix:///path`, or `tcp://host:port` (plain HTTP).
 * @throws ConfigError for anything else (TLS and ssh engines are not supported yet).
 */
export function parseDockerHost(dockerHost: string | undefined): { options: EngineOptions; engine: string } {
  const v = dockerHost?.trim();
  if (!v) return { options: { socketPath: DEFAULT_SOCKET }, engine: `unix://${DEFAULT_SOCKET}` };
  if (v.startsWith("unix://")) {
    const socketPath = v.slice("unix://".length) || DEFAULT_SOCKET;
    return { options: { socketPath }, engine: `unix://${socketPath}` };
  }
  const m = /^tcp:\/\/([^:/\s]+|\[[0-9a-fA-F:]+\]):(\d{1,5})\/?$/.exec(v);
  if (m && Number(m[2]) !== 2376) return { options: { host: m[1]!.replace(/^\[|\]$/g, ""), port: Number(m[2]), protocol: "http" }, engine: v };
  throw new ConfigError("DOCKER_HOST", "unix:///path/to/docker.sock or tcp://host:port (plain HTTP; TLS is not supported)", dockerHost);
}

const UID_GID = /^([0-9]+)(?::([0-9]+))?$/;

function checkSpec(spec: ContainerSpec): { uid: number; gid: number } {
  const bad = (field: string, expected: string, value: unknown) =>
    new ValidationError(`container ${field} must be ${expected}, got ${JSON.stringify(value)}`, { field, value });
  const m = UID_GID.exec(spec.user);
  if (!m) throw bad("user", "a numeric uid:gid", spec.user);
  const uid = Number(m[1]);
  const gid = Number(m[2] ?? m[1]);
  if (uid === 0 || gid === 0) throw bad("user", "a non-root uid:gid", spec.user);
  if (!spec.workspace.startsWith("/")) throw bad("workspace", "an absolute host path", spec.workspace);
  if (!spec.labels[LABEL.instance]) throw bad("labels", `a map containing ${LABEL.instance}`, spec.labels);
  const { memoryBytes, nanoCpus, pidsLimit } = spec.limits;
  if (!Number.isInteger(memoryBytes) || memoryBytes < 6 * MIB) throw bad("limits.memoryBytes", "an integer of at least 6 MiB", memoryBytes);
  if (!Number.isInteger(nanoCpus) || nanoCpus < 10_000_000) throw bad("limits.nanoCpus", "an integer of at least 0.01 CPU (10000000)", nanoCpus);
  if (!Number.isInteger(pidsLimit) || pidsLimit < 1) throw bad("limits.pidsLimit", "a positive integer", pidsLimit);
  for (const mnt of spec.readOnlyMounts ?? []) {
    if (!mnt.source.startsWith("/") || !mnt.target.startsWith("/")) throw bad("readOnlyMounts", "absolute source and target paths", mnt);
    if (mnt.target === "/workspace" || mnt.target.startsWith("/workspace/")) throw bad("readOnlyMounts", "targets outside /workspace", mnt);
  }
  if (spec.homeSource !== undefined && !spec.homeSource.startsWith("/")) throw bad("homeSource", "an absolute host path", spec.homeSource);
  if (spec.desktop && !spec.launcher) throw bad("launcher", "set for a desktop container (its status is reported in the launcher's directory)", spec.launcher);
  if (spec.desktop && !spec.desktop.init.startsWith("/")) throw bad("desktop.init", "an absolute host path", spec.desktop.init);
  if (spec.launcher) {
    if (spec.cmd) throw bad("cmd", "absent when a launcher runs as the main process", spec.cmd);
    if (!spec.launcher.socketDir.startsWith("/") || !spec.launcher.script.startsWith("/")) throw bad("launcher", "absolute host paths", spec.launcher);
  }
  if (spec.network === "host") throw bad("network", "a named network or absent (host networking is never used)", spec.network);
  return { uid, gid };
}

export function checkExecUser(user: string | undefined): void {
  if (user === undefined) return;
  const m = UID_GID.exec(user);
  if (!m || Number(m[1]) === 0 || Number(m[2] ?? 1) === 0) throw new ValidationError(`exec user must be a non-root numeric uid:gid, got ${JSON.stringify(user)}`, { field: "user", value: user });
}

/**
 * PID 1's command with a launcher: the launcher on the image's node (one V8 worker thread and a small heap: its
 * threads count against the PID limit, its memory against the memory limit), or, where the image has no node
 * (or the launcher fails), a plain sleep, so the container still serves the exec path; then it says so with an
 * empty file {@link LAUNCHER_ABSENT_NAME} next to the socket, so nobody waits for a launcher that will not come.
 */
function launcherCmd(desktop: boolean): string[] {
  const sock = `${LAUNCHER_SOCKET_DIR}/${LAUNCHER_SOCKET_NAME}`;
  const none = `${LAUNCHER_SOCKET_DIR}/${LAUNCHER_ABSENT_NAME}`;
  // A desktop container also starts its services (they report to desktop.json in the same directory).
  const services = desktop ? `node ${DESKTOP_INIT_IN_IMAGE} & ` : "";
  return ["/bin/sh", "-c", `${services}node --v8-pool-size=1 --max-old-space-size=32 ${LAUNCHER_SCRIPT_TARGET} ${sock} || { : > ${none}; exec sleep infinity; }`];
}

/** The create request for a spec; exported for tests. */
export function createOptions(spec: ContainerSpec): CreateRequest {
  const { uid, gid } = checkSpec(spec);
  const home = spec.home ?? "/home/agent";
  const size = spec.tmpfsBytes ?? 256 * MIB;
  return {
    ...(spec.name ? { name: spec.name } : {}),
    Image: spec.image,
    Entrypoint: [],
    Cmd: spec.launcher ? launcherCmd(spec.desktop !== undefined) : (spec.cmd ?? ["sleep", "infinity"]),
    User: spec.user,
    WorkingDir: "/workspace",
    Labels: spec.labels,
    Env: [`HOME=${home}`, ...Object.entries({ ...(spec.desktop ? DESKTOP_ENV : {}), ...spec.env }).map(([k, v]) => `${k}=${v}`)],
    AttachStdin: false,
    AttachStdout: false,
    AttachStderr: false,
    OpenStdin: false,
    Tty: false,
    HostConfig: {
      Init: true,
      Mounts: [
        { Type: "bind", Source: spec.workspace, Target: "/workspace", ReadOnly: false },
        ...(spec.homeSource ? [{ Type: "bind" as const, Source: spec.homeSource, Target: home, ReadOnly: false }] : []),
        ...(spec.readOnlyMounts ?? []).map((m) => ({ Type: "bind" as const, Source: m.source, Target: m.target, ReadOnly: true })),
        ...(spec.launcher
          ? [
              { Type: "bind" as const, Source: spec.launcher.socketDir, Target: LAUNCHER_SOCKET_DIR, ReadOnly: false },
              { Type: "bind" as const, Source: spec.launcher.script, Target: LAUNCHER_SCRIPT_TARGET, ReadOnly: true },
            ]
          : []),
        ...(spec.desktop ? [{ Type: "bind" as const, Source: spec.desktop.init, Target: DESKTOP_INIT_IN_IMAGE, ReadOnly: true }] : []),
      ],
      Memory: spec.limits.memoryBytes,
      MemorySwap: spec.limits.memoryBytes,
      NanoCpus: spec.limits.nanoCpus,
      PidsLimit: spec.limits.pidsLimit,
      Privileged: false,
      CapDrop: ["ALL"],
      SecurityOpt: ["no-new-privileges:true"],
      NetworkMode: spec.network ?? "none",
      ReadonlyRootfs: spec.readonlyRootfs ?? true,
      Tmpfs: {
        "/tmp": `rw,nosuid,nodev,size=${size},mode=1777`,
        ...(spec.homeSource ? {} : { [home]: `rw,nosuid,nodev,size=${size},uid=${uid},gid=${gid},mode=0700` }),
      },
      IpcMode: "private",
      ...(spec.desktop ? { ShmSize: 256 * MIB } : {}),
      RestartPolicy: { Name: "no" },
      AutoRemove: false,
      LogConfig: { Type: "json-file", Config: { "max-size": "1m", "max-file": "1" } },
    },
  };
}
