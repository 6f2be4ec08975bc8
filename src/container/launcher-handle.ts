/**
 * Pooled and project containers start a run's process without the engine's
 * `exec` (docs/architecture.md#launcher): their main process is a small
 * launcher (`docker/launcher/openrunner-launcher.mjs`, run by the image's
 * node under tini) listening on a unix socket in a host directory
 * bind-mounted at `/run/openrunner`. {@link withLauncher} wraps the
 * container's handle so that `exec`, `execCollect` and `oomKills` go through
 * that socket (a few ms) and fall back to the engine's exec (about 120 ms)
 * when no launcher answers: an image without node, a container created before
 * the launcher existed, a remote engine, an exec as another user.
 *
 * Why a socket in a shared directory and not the attached stdio of PID 1: one
 * connection per process needs no multiplexing of several processes over one
 * stream, no reattach after a server restart (a project container's socket is
 * still there), and the bytes never pass through the engine; a connection
 * that closes early is the kill signal, so nothing outlives its caller.
 *
 * Parity with the exec path (`client.ts`): the same marker
 * (`OPENRUNNER_EXEC_ID`) in the environment, the container's environment
 * plus the spec's, the spec's cwd (default `/workspace`), the container's
 * user and cgroup (so the same memory, CPU and PID limits and network), stdin
 * only when asked, kill of the process group and every process carrying the
 * marker, exit codes 128+n after signal n, 126/127 with `exec_failed` for a
 * program or cwd that does not exist, `oom_kill` read from the container's
 * memory cgroup (or, when the container itself died, the engine's `OOMKilled`).
 */
import { collectCapped } from "./collect.ts";
import { randomBytes } from "node:crypto";
import { watch } from "node:fs";
import { access, mkdir, rm, chown, chmod } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { ValidationError } from "../errors.ts";
import { ContainerError } from "./errors.ts";
import { launcherRequest, spawnViaLauncher } from "./launcher-exec.ts";
import { LAUNCHER_ABSENT_NAME, LAUNCHER_SOCKET_NAME } from "./launcher-protocol.ts";
import { checkExecUser } from "./spec.ts";
import type { ContainerHandle, ContainerState, ExecExit, ExecHandle, ExecSpec } from "./types.ts";

/** The launcher program on the host (bind-mounted read-only into the container). */
export const LAUNCHER_SCRIPT = fileURLToPath(new URL("../../docker/launcher/openrunner-launcher.mjs", import.meta.url));

/** Longest unix socket path Linux accepts (sun_path is 108 bytes with the terminating NUL). */
const MAX_SOCKET_PATH = 107;
const MIB = 1024 * 1024;

/**
 * The host directory of a container's launcher socket: `<root>/<container name>`. The root must be a directory
 * only the server can enter (mode 0700): whoever reaches the socket can start processes in the container.
 */
export function launcherDir(root: string, containerName: string): string {
  return path.join(root, containerName);
}

/**
 * Creates the root (0700) and the container's directory, writable by the container user (`uid:gid`).
 * @returns the directory, or undefined when its socket path would be longer than a unix socket path can be (the
 *   container then runs without a launcher)
 */
export async function prepareLauncherDir(root: string, containerName: string, user: string, isRoot = process.getuid?.() === 0): Promise<string | undefined> {
  const dir = launcherDir(root, containerName);
  if (Buffer.byteLength(path.join(dir, LAUNCHER_SOCKET_NAME)) > MAX_SOCKET_PATH) return undefined;
  await mkdir(root, { recursive: true, mode: 0o700 });
  await chmod(root, 0o700);
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { mode: 0o700 });
  const [uid, gid = uid] = user.split(":").map(Number) as [number, number?];
  if (isRoot) await chown(dir, uid, gid);
  // Not root: the container user may be another uid; the 0700 root above is what keeps others out.
  else await chmod(dir, 0o777);
  return dir;
}

/** A container handle whose processes start through its launcher when one answers; see the module comment. */
export interface LauncherContainerHandle extends ContainerHandle {
  /** The launcher's socket on the host. */
  readonly socketPath: string;
  /**
   * Waits until the launcher answers (the socket appears, then a ping), or the container's main process said it could
   * not start one, at most `timeoutMs` (default 15000).
   * @returns whether it answers; false means every exec falls back to the engine
   */
  ready(timeoutMs?: number): Promise<boolean>;
  /** One ping: whether the launcher answers now. */
  alive(): Promise<boolean>;
  /** How the last `exec` started its process. */
  readonly lastVia: "launcher" | "exec" | undefined;
}

/**
 * Wraps `inner` (a container created with `launcher: { socketDir }`) so its processes start through the launcher.
 * @example
 * const h = withLauncher(await client.create({ ...spec, launcher: { socketDir: dir, script: LAUNCHER_SCRIPT } }), dir);
 * await h.start();
 * await h.ready();
 * const x = await h.exec({ argv: ["sh", "-c", "echo hi"] }); // no engine exec
 */
export function withLauncher(inner: ContainerHandle, socketDir: string): LauncherContainerHandle {
  return new LauncherContainer(inner, path.join(socketDir, LAUNCHER_SOCKET_NAME));
}

class LauncherContainer implements LauncherContainerHandle {
  readonly #inner: ContainerHandle;
  readonly socketPath: string;
  #identity: string | undefined;
  #lastOom = 0;
  lastVia: "launcher" | "exec" | undefined;

  constructor(inner: ContainerHandle, socketPath: string) {
    this.#inner = inner;
    this.socketPath = socketPath;
  }

  get id(): string {
    return this.#inner.id;
  }

  start(): Promise<void> {
    return this.#inner.start();
  }

  inspect(): Promise<ContainerState> {
    return this.#inner.inspect();
  }

  stop(opts?: { timeoutS?: number }): Promise<void> {
    return this.#inner.stop(opts);
  }

  remove(opts?: { force?: boolean }): Promise<void> {
    return this.#inner.remove(opts);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.#inner[Symbol.asyncDispose]();
  }

  async alive(): Promise<boolean> {
    const r = await launcherRequest(this.socketPath, { op: "ping" }, 2000);
    if (r?.ok) this.#identity = `${String(r.uid)}:${String(r.gid)}`;
    return r?.ok === true;
  }

  async ready(timeoutMs = 15_000): Promise<boolean> {
    const dir = path.dirname(this.socketPath);
    const exists = () => access(this.socketPath).then(() => true, () => false);
    const absent = path.join(dir, LAUNCHER_ABSENT_NAME);
    const noLauncher = () => access(absent).then(() => true, () => false);
    if (!(await exists())) {
      if (await noLauncher()) return false;
      const appeared = await new Promise<boolean>((resolve) => {
        let w: ReturnType<typeof watch> | undefined;
        const done = (v: boolean) => {
          clearTimeout(timer);
          w?.close();
          resolve(v);
        };
        const timer = setTimeout(() => done(false), timeoutMs);
        try {
          w = watch(dir, (_event, name) => {
            if (name === LAUNCHER_SOCKET_NAME) done(true);
            else if (name === LAUNCHER_ABSENT_NAME) done(false);
          });
          w.on("error", () => done(false));
        } catch {
          done(false);
          return;
        }
        // Created between the first check and the watch.
        void exists().then((e) => e && done(true));
        void noLauncher().then((e) => e && done(false));
      });
      if (!appeared) return false;
    }
    // The launcher renames its socket into place once it listens; a stale one (launcher gone) is refused.
    return this.alive();
  }

  async exec(spec: ExecSpec): Promise<ExecHandle> {
    if (spec.argv.length === 0) throw new ValidationError("exec argv must not be empty", { field: "argv" });
    checkExecUser(spec.user);
    // Another user than the launcher's: only the engine can switch users.
    if (spec.user === undefined || (this.#identity !== undefined && sameUser(spec.user, this.#identity))) {
      const marker = randomBytes(12).toString("hex");
      const x = await spawnViaLauncher(spec, { socketPath: this.socketPath, marker, containerId: this.id, onLost: () => this.#lostExit() });
      if (x) {
        this.lastVia = "launcher";
        return x;
      }
    }
    this.lastVia = "exec";
    return this.#inner.exec(spec);
  }

  async execCollect(spec: ExecSpec, opts: { maxBytes?: number } = {}): Promise<{ exitCode: number | null; stdout: string; stderr: string }> {
    const max = opts.maxBytes ?? MIB;
    const x = await this.exec(spec);
    const out = collectCapped(x.stdout, max);
    const err = collectCapped(x.stderr, max);
    const exit = await x.exit;
    if (exit.error) throw exit.error;
    return { exitCode: exit.exitCode, stdout: out(), stderr: err() };
  }

  async oomKills(): Promise<number | null> {
    const r = await launcherRequest(this.socketPath, { op: "oom" }, 2000);
    if (r?.ok) {
      const n = typeof r.oom_kill === "number" ? r.oom_kill : null;
      if (n !== null) this.#lastOom = n;
      return n;
    }
    const viaExec = await this.#inner.oomKills();
    if (viaExec !== null) return viaExec;
    // The container itself is gone: the engine's word for it.
    const st = await this.#inner.inspect().catch(() => undefined);
    return st && !st.running && st.oomKilled ? this.#lastOom + 1 : null;
  }

  /** The exec's end as the engine tells it, when the launcher connection was lost before the launcher reported it. */
  async #lostExit(): Promise<ExecExit> {
    let st: ContainerState;
    try {
      st = await this.#inner.inspect();
    } catch (err) {
      return { exitCode: null, error: err instanceof Error ? err : new Error(String(err)) };
    }
    if (st.running) return { exitCode: null, error: new ContainerError("container_failed", `the launcher of container ${this.id.slice(0, 12)} stopped answering`) };
    if (st.oomKilled) return { exitCode: 137 };
    return { exitCode: null, error: new ContainerError("container_failed", `container ${this.id.slice(0, 12)} stopped (exit ${st.exitCode ?? "unknown"}) while a process ran in it`) };
  }
}

function sameUser(a: string, b: string): boolean {
  const norm = (u: string) => (u.includes(":") ? u : `${u}:${u}`);
  return norm(a) === norm(b);
}
