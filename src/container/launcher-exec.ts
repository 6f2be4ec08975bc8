/**
 * The server's side of the in-container launcher (see `launcher-handle.ts`
 * and `docker/launcher/openrunner-launcher.mjs`): one unix-socket connection
 * per request. {@link launcherRequest} asks a one-shot question (`ping`,
 * `oom`, `kill`); {@link spawnViaLauncher} starts a process and returns it as
 * an {@link ExecHandle} with the same behaviour as an engine exec: marker in
 * the environment, demultiplexed stdout/stderr, optional stdin, kill of the
 * whole tree, the exit code in shell convention, `exec_failed` (126/127) when
 * the program or cwd does not exist.
 */
import { lstat } from "node:fs/promises";
import net from "node:net";
import { PassThrough, Writable } from "node:stream";
import { ContainerError } from "../errors.ts";
import { FRAME, MAX_FRAME_BYTES, createFrameReader, encodeControl, encodeFrame, type LauncherEvent, type LauncherReply } from "./launcher-protocol.ts";
import type { ExecExit, ExecHandle, ExecSignal, ExecSpec } from "./types.ts";

/** How long a launcher may take to answer a request or a spawn, ms. */
const ANSWER_TIMEOUT_MS = 10_000;

/**
 * Connects to the launcher's socket; undefined when nothing listens there (no socket, a symlink or anything but a
 * socket at the path, refused, path too long): the caller falls back to the engine's exec.
 */
export async function connectLauncher(socketPath: string): Promise<net.Socket | undefined> {
  // The container can write the socket's folder: only a socket itself is connected to, never a symlink it put there
  // (which could point the server at another container's launcher).
  const st = await lstat(socketPath).catch(() => undefined);
  if (!st?.isSocket()) return undefined;
  return new Promise((resolve) => {
    const sock = net.createConnection(socketPath);
    const fail = () => {
      sock.destroy();
      resolve(undefined);
    };
    sock.once("error", fail);
    sock.once("connect", () => {
      sock.off("error", fail);
      resolve(sock);
    });
  });
}

/**
 * One request and its one answer over a fresh connection.
 * @returns the launcher's reply, or undefined when no launcher answers (not listening, closed without answer, timeout)
 */
export async function launcherRequest(socketPath: string, msg: { op: "ping" } | { op: "oom" } | { op: "kill"; marker: string; signal: ExecSignal }, timeoutMs = ANSWER_TIMEOUT_MS): Promise<LauncherReply | undefined> {
  const sock = await connectLauncher(socketPath);
  if (!sock) return undefined;
  return new Promise((resolve) => {
    let answered = false;
    const finish = (r: LauncherReply | undefined) => {
      if (answered) return;
      answered = true;
      clearTimeout(timer);
      sock.destroy();
      resolve(r);
    };
    const timer = setTimeout(() => finish(undefined), timeoutMs);
    const feed = createFrameReader((type, payload) => {
      if (type !== FRAME.ctrl) return;
      try {
        finish(JSON.parse(payload.toString("utf8")) as LauncherReply);
      } catch {
        finish(undefined);
      }
    });
    sock.on("data", (b: Buffer) => {
      if (!feed(b)) finish(undefined);
    });
    sock.on("error", () => finish(undefined));
    sock.on("close", () => finish(undefined));
    sock.write(encodeControl(msg));
  });
}

/** Options of {@link spawnViaLauncher}. */
export interface LauncherSpawnOptions {
  /** The launcher's socket on the host. */
  socketPath: string;
  /** The exec's marker (`OPENRUNNER_EXEC_ID`), random per exec. */
  marker: string;
  /** Container id, for messages. */
  containerId: string;
  /**
   * How the exec ended when the connection was lost before the launcher reported it (launcher or
   * container gone): the caller asks the engine (e.g. an OOM-killed container reports 137).
   */
  onLost: () => Promise<ExecExit>;
}

/**
 * Starts `spec` through the launcher and resolves once the launcher reported the process started (or
 * that it could not be: the handle's `exit` then carries `exec_failed` with 126/127, as an engine exec
 * of a missing program does).
 * @returns undefined when no launcher listens, or it closed the connection without answering (the caller
 *   falls back to the engine's exec; a process it may have started is killed when the connection closes)
 */
export async function spawnViaLauncher(spec: ExecSpec, o: LauncherSpawnOptions): Promise<LauncherExec | undefined> {
  const sock = await connectLauncher(o.socketPath);
  if (!sock) return undefined;
  return new Promise((resolve) => new LauncherExec(sock, spec, o, resolve));
}

/** An {@link ExecHandle} over a launcher connection; made by {@link spawnViaLauncher}. */
export class LauncherExec implements ExecHandle {
  readonly id: string;
  readonly marker: string;
  readonly stdout = new PassThrough();
  readonly stderr = new PassThrough();
  readonly stdin?: Writable;
  readonly exit: Promise<ExecExit>;
  /** The process's pid inside the container, once spawned. */
  pid: number | undefined;
  readonly #sock: net.Socket;
  readonly #o: LauncherSpawnOptions;
  #exited = false;
  #settled = false;
  #startError: ContainerError | undefined;
  #signalWaiters: Array<(n: number) => void> = [];
  readonly #argv0: string;

  /** Use {@link spawnViaLauncher}. */
  constructor(sock: net.Socket, spec: ExecSpec, o: LauncherSpawnOptions, onStarted: (x: LauncherExec | undefined) => void) {
    this.#sock = sock;
    this.#o = o;
    this.marker = o.marker;
    this.id = `launcher-${o.marker}`;
    this.#argv0 = spec.argv[0] ?? "";
    let started = false;
    const startTimer = setTimeout(() => {
      if (!started) sock.destroy();
    }, ANSWER_TIMEOUT_MS);
    const markStarted = () => {
      if (started) return;
      started = true;
      clearTimeout(startTimer);
      onStarted(this);
    };
    let resolveExit!: (e: ExecExit) => void;
    this.exit = new Promise((r) => (resolveExit = r));
    const settle = (e: ExecExit) => {
      if (this.#settled) return;
      this.#settled = true;
      this.#exited = true;
      this.stdout.end();
      this.stderr.end();
      for (const w of this.#signalWaiters.splice(0)) w(0);
      resolveExit(e);
    };
    const feed = createFrameReader((type, payload) => {
      if (type === FRAME.stdout) this.stdout.write(payload);
      else if (type === FRAME.stderr) this.stderr.write(payload);
      else if (type === FRAME.ctrl) {
        let ev: LauncherEvent;
        try {
          ev = JSON.parse(payload.toString("utf8")) as LauncherEvent;
        } catch {
          sock.destroy();
          return;
        }
        this.#onEvent(ev, markStarted, settle);
      }
    });
    sock.on("data", (b: Buffer) => {
      if (!feed(b)) sock.destroy();
    });
    sock.on("error", () => {});
    sock.on("close", () => {
      clearTimeout(startTimer);
      if (!started) {
        started = true;
        onStarted(undefined);
        return;
      }
      if (this.#settled) return;
      void o.onLost().then(settle, (err: unknown) => settle({ exitCode: null, error: err instanceof Error ? err : new Error(String(err)) }));
    });
    if (spec.stdin) this.stdin = this.#stdinWritable();
    sock.write(encodeControl({ op: "spawn", argv: spec.argv, env: spec.env ?? {}, cwd: spec.cwd ?? "/workspace", stdin: spec.stdin === true, marker: o.marker }));
  }

  #onEvent(ev: LauncherEvent, markStarted: () => void, settle: (e: ExecExit) => void): void {
    switch (ev.ev) {
      case "spawned":
        this.pid = ev.pid;
        markStarted();
        break;
      case "error":
        this.#startError = new ContainerError("exec_failed", `could not start ${JSON.stringify(this.#argv0)} in container ${this.#o.containerId.slice(0, 12)}: ${ev.message}`);
        markStarted();
        break;
      case "exit":
        this.#exited = true;
        break;
      case "signalled":
        this.#signalWaiters.shift()?.(ev.n);
        break;
      case "done":
        settle(this.#startError ? { exitCode: ev.code, error: this.#startError } : { exitCode: ev.code });
        this.#sock.end();
        break;
    }
  }

  #stdinWritable(): Writable {
    const sock = this.#sock;
    return new Writable({
      write(chunk: Buffer, _enc, cb) {
        if (sock.destroyed || !sock.writable) return cb(Object.assign(new Error("the process's stdin is closed"), { code: "EPIPE" }));
        let ok = true;
        for (let i = 0; i < chunk.length; i += MAX_FRAME_BYTES) ok = sock.write(encodeFrame(FRAME.stdin, chunk.subarray(i, i + MAX_FRAME_BYTES)));
        if (ok) cb();
        else sock.once("drain", () => cb());
      },
      final(cb) {
        if (!sock.destroyed && sock.writable) sock.write(encodeControl({ op: "stdin_end" }));
        cb();
      },
    });
  }

  /**
   * Signals the process's group and every process carrying its marker (over its own connection while it runs,
   * else a one-shot `kill` request). Resolves with how many were signalled; 0 when none is left or the launcher is gone.
   */
  async kill(signal: ExecSignal = "TERM"): Promise<number> {
    if (!this.#settled && !this.#sock.destroyed && this.#sock.writable) {
      return new Promise((resolve) => {
        this.#signalWaiters.push(resolve);
        this.#sock.write(encodeControl({ op: "signal", signal }));
      });
    }
    const r = await launcherRequest(this.#o.socketPath, { op: "kill", marker: this.marker, signal });
    return r?.ok ? Number(r.n) || 0 : 0;
  }

  /** Whether the process itself still runs (the launcher reports its exit before its pipes close). */
  async running(): Promise<boolean> {
    return !this.#exited;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.kill("KILL").catch(() => 0);
    this.#sock.destroy();
  }
}
