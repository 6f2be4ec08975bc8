/**
 * The ACP terminal semantics (`terminal/create|output|wait_for_exit|kill|release`) for one run,
 * wherever the commands run: the cwd confined to the workspace, the run's environment plus the
 * request's variables (never OPENRUNNER_RUN_ID), the output tail kept up to the request's
 * `outputByteLimit` capped by {@link MAX_TERMINAL_OUTPUT_BYTES} (the oldest bytes dropped at a
 * character boundary, `truncated` set, as ACP specifies), the exit status, kill, release, at most
 * {@link MAX_TERMINALS} per run (creates still starting included), and {@link TerminalCore.disposeAll}
 * when the run ends.
 *
 * {@link TerminalCore} does all of that over a {@link TerminalBinding}, which only resolves a cwd
 * and starts a command as a {@link TerminalProcess}: `terminal.ts` binds it to host processes,
 * `terminal-container.ts` to execs in the run's container.
 */
import { randomUUID } from "node:crypto";

/** Server cap on one terminal's retained output, bytes. */
export const MAX_TERMINAL_OUTPUT_BYTES = 1024 * 1024;
/** Terminals one run may hold at once. */
export const MAX_TERMINALS = 16;

/** Why a terminal request failed: `not_found` (unknown id), `limit` (too many), `outside_workspace`, `spawn_failed`. */
export class TerminalError extends Error {
  constructor(
    readonly reason: "not_found" | "limit" | "outside_workspace" | "spawn_failed",
    message: string,
  ) {
    super(message);
    this.name = "TerminalError";
  }
}

/** ACP `TerminalExitStatus`. */
export interface TerminalExit {
  exitCode: number | null;
  signal: string | null;
}

/** ACP `CreateTerminalRequest`, as far as the terminals read it. */
export interface TerminalRequest {
  command: string;
  args?: string[] | null;
  env?: Array<{ name: string; value: string }> | null;
  /** Absolute (or relative to the run's working directory), as the agent sees the file system. */
  cwd?: string | null;
  /** Bytes of output to keep (capped by {@link MAX_TERMINAL_OUTPUT_BYTES}). */
  outputByteLimit?: number | null;
}

/** The terminals of one run, wherever their commands run (host: `TerminalSet`; container: `ContainerTerminalSet`). */
export interface AcpTerminals {
  /** Starts a command; returns the terminal id. @throws TerminalError (`limit`, `outside_workspace`, `spawn_failed`) */
  create(req: TerminalRequest): Promise<string>;
  /** ACP `terminal/output`. @throws TerminalError `not_found` */
  output(id: string): { output: string; truncated: boolean; exitStatus?: TerminalExit };
  /** ACP `terminal/wait_for_exit`. @throws TerminalError `not_found` */
  waitForExit(id: string): Promise<TerminalExit>;
  /** ACP `terminal/kill`: kills the command and what it started; the terminal stays readable. @throws TerminalError `not_found` */
  kill(id: string): void;
  /** ACP `terminal/release`: kills the command if still running and forgets the terminal. @throws TerminalError `not_found` */
  release(id: string): void;
  /** Kills every terminal (the run ended); later creates are refused. Resolves once the kills were sent. */
  disposeAll(): Promise<void>;
}

/** The argv of a terminal request: `args` as given, or an `args`-less command line with spaces or shell syntax under `/bin/sh -c`. */
export function terminalArgv(req: Pick<TerminalRequest, "command" | "args">): [string, string[]] {
  const args = req.args ?? [];
  const shell = args.length === 0 && /[\s|&;<>()$`*?'"\\]/.test(req.command);
  return shell ? ["/bin/sh", ["-c", req.command]] : [req.command, args];
}

/** The output byte limit of a request: its `outputByteLimit`, capped by {@link MAX_TERMINAL_OUTPUT_BYTES}. */
export function outputLimitOf(req: Pick<TerminalRequest, "outputByteLimit">): number {
  return Math.max(0, Math.min(req.outputByteLimit ?? MAX_TERMINAL_OUTPUT_BYTES, MAX_TERMINAL_OUTPUT_BYTES));
}

/** Drops the oldest bytes so `buf` fits `limit`, cutting at a UTF-8 character boundary. */
export function keepTail(buf: Buffer, limit: number): { buf: Buffer; cut: boolean } {
  if (buf.length <= limit) return { buf, cut: false };
  let start = buf.length - limit;
  while (start < buf.length && (buf[start]! & 0xc0) === 0x80) start++;
  return { buf: buf.subarray(start), cut: true };
}

/**
 * A terminal's retained output: the chunks as they came, the oldest whole chunks dropped once the
 * rest still holds `limit` bytes (so at most `limit` plus one chunk is kept, without copying on every
 * chunk); {@link read} cuts the exact tail with {@link keepTail}.
 */
export class OutputTail {
  #chunks: Buffer[] = [];
  #bytes = 0;
  #dropped = false;

  constructor(readonly limit: number) {}

  /** Appends a chunk of output. */
  push(chunk: Buffer): void {
    this.#chunks.push(chunk);
    this.#bytes += chunk.length;
    while (this.#chunks.length > 0 && this.#bytes - this.#chunks[0]!.length >= this.limit) {
      this.#bytes -= this.#chunks.shift()!.length;
      this.#dropped = true;
    }
  }

  /** The last `limit` bytes at most (cut at a UTF-8 character boundary), and whether anything was dropped. */
  read(): { buf: Buffer; truncated: boolean } {
    const kept = keepTail(Buffer.concat(this.#chunks, this.#bytes), this.limit);
    this.#chunks = kept.buf.length > 0 ? [kept.buf] : [];
    this.#bytes = kept.buf.length;
    if (kept.cut) this.#dropped = true;
    return { buf: kept.buf, truncated: this.#dropped };
  }
}

/** A command to start, as {@link TerminalCore} hands it to its binding. */
export interface TerminalCommand {
  /** The executable (see {@link terminalArgv}). */
  file: string;
  args: string[];
  /** The complete environment: the run's, then the request's variables (OPENRUNNER_RUN_ID kept). */
  env: Record<string, string>;
  /** The cwd the binding's `resolveCwd` returned. */
  cwd: string;
}

/** One started command, as its binding runs it. */
export interface TerminalProcess {
  /** Settles once, never rejects: the exit status when the command ended and its output is complete. */
  readonly exited: Promise<TerminalExit>;
  /** Kills the command and what it started (SIGKILL). Called only while no exit is known; never rejects. */
  kill(): void | Promise<void>;
  /** Called once right after the exit: kills what the command left behind (what let go of its output). */
  reap(): void;
  /** The run ended: stops whatever watches the command (called before the last {@link kill}). */
  close?(): void;
  /** Kills a command that finished starting after the run ended and lets go of it; never rejects. */
  discard(): Promise<void>;
}

/** Where a run's terminals run: the host (`terminal.ts`) or the run's container (`terminal-container.ts`). */
export interface TerminalBinding {
  /**
   * The cwd for a request's `cwd` (absent: the run's folder), checked to be inside the workspace.
   * Whatever it throws becomes TerminalError `outside_workspace` with the same message.
   */
  resolveCwd(cwd: string | null | undefined): Promise<string>;
  /**
   * Starts the command, sending its output (stdout and stderr interleaved) to `onOutput`.
   * @throws TerminalError `spawn_failed` when it cannot be started
   */
  start(cmd: TerminalCommand, onOutput: (chunk: Buffer) => void): Promise<TerminalProcess>;
  /** The command line for the `onStart` log line. */
  describe(cmd: TerminalCommand): string;
}

/** What {@link TerminalCore} needs from the run besides its binding. */
export interface TerminalCoreOptions {
  /** Environment of every command (the run's, with OPENRUNNER_RUN_ID so the orphan sweep finds it). */
  env: Record<string, string>;
  /** Called when a terminal starts, with its command line (for a `log` event). */
  onStart?: (id: string, commandLine: string) => void;
}

interface Term {
  proc: TerminalProcess;
  out: OutputTail;
  exit: TerminalExit | null;
  exited: Promise<TerminalExit>;
}

/** The terminals of one run over a {@link TerminalBinding}; see the module comment. */
export class TerminalCore implements AcpTerminals {
  readonly #terms = new Map<string, Term>();
  readonly #binding: TerminalBinding;
  readonly #o: TerminalCoreOptions;
  #disposed = false;
  /** Creates waiting for their command to start (counted against {@link MAX_TERMINALS}). */
  #starting = 0;

  constructor(binding: TerminalBinding, opts: TerminalCoreOptions) {
    this.#binding = binding;
    this.#o = opts;
  }

  /**
   * Starts `command` with `args` (no shell; an `args`-less command with spaces or shell
   * syntax runs under `/bin/sh -c`) in the request's cwd. Returns the terminal id.
   * @throws TerminalError (`limit`, `outside_workspace` for a cwd outside the workspace, `spawn_failed`, also once the run ended)
   */
  async create(req: TerminalRequest): Promise<string> {
    this.#checkCanCreate();
    let cwd: string;
    try {
      cwd = await this.#binding.resolveCwd(req.cwd);
    } catch (err) {
      throw new TerminalError("outside_workspace", (err as Error).message);
    }
    this.#checkCanCreate(); // again: the run may have ended, or other creates filled the set, meanwhile
    const [file, args] = terminalArgv(req);
    const env = { ...this.#o.env };
    for (const v of req.env ?? []) if (v.name !== "OPENRUNNER_RUN_ID") env[v.name] = v.value;
    const cmd: TerminalCommand = { file, args, env, cwd };
    const out = new OutputTail(outputLimitOf(req));
    let proc: TerminalProcess;
    this.#starting++;
    try {
      proc = await this.#binding.start(cmd, (chunk) => out.push(chunk));
    } finally {
      this.#starting--;
    }
    if (this.#disposed) {
      // The run ended while the command started: nobody would kill or forget this terminal.
      await proc.discard();
      throw new TerminalError("spawn_failed", "the run is ending");
    }
    const id = `term_${randomUUID()}`;
    const t: Term = {
      proc,
      out,
      exit: null,
      exited: proc.exited.then((exit) => {
        t.exit = exit;
        proc.reap();
        return exit;
      }),
    };
    this.#terms.set(id, t);
    this.#o.onStart?.(id, this.#binding.describe(cmd));
    return id;
  }

  /** @throws TerminalError `spawn_failed` once disposed, `limit` when the run holds {@link MAX_TERMINALS} */
  #checkCanCreate(): void {
    if (this.#disposed) throw new TerminalError("spawn_failed", "the run is ending");
    if (this.#terms.size + this.#starting >= MAX_TERMINALS) throw new TerminalError("limit", `at most ${MAX_TERMINALS} terminals per run`);
  }

  #get(id: string): Term {
    const t = this.#terms.get(id);
    if (!t) throw new TerminalError("not_found", `no terminal ${id}`);
    return t;
  }

  #kill(t: Term): void | Promise<void> {
    if (!t.exit) return t.proc.kill();
  }

  /** ACP `terminal/output`. @throws TerminalError `not_found` */
  output(id: string): { output: string; truncated: boolean; exitStatus?: TerminalExit } {
    const t = this.#get(id);
    const { buf, truncated } = t.out.read();
    return { output: buf.toString("utf8"), truncated, ...(t.exit ? { exitStatus: t.exit } : {}) };
  }

  /** ACP `terminal/wait_for_exit`. @throws TerminalError `not_found` */
  waitForExit(id: string): Promise<TerminalExit> {
    return this.#get(id).exited;
  }

  /** ACP `terminal/kill`: SIGKILL to the command and what it started; the terminal stays readable. @throws TerminalError `not_found` */
  kill(id: string): void {
    void this.#kill(this.#get(id));
  }

  /** ACP `terminal/release`: kills the command if still running and forgets the terminal. @throws TerminalError `not_found` */
  release(id: string): void {
    this.kill(id);
    this.#terms.delete(id);
  }

  /** Kills every terminal (the run ended); later creates are refused. Resolves once the kills were delivered. */
  async disposeAll(): Promise<void> {
    this.#disposed = true;
    const terms = [...this.#terms.values()];
    this.#terms.clear();
    for (const t of terms) t.proc.close?.();
    await Promise.all(terms.map((t) => this.#kill(t)));
  }
}
