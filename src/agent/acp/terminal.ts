/**
 * The ACP client's terminal capability (`terminal/create|output|wait_for_exit|kill|release`)
 * for one run: each terminal is a command started with execa in its own process group, in
 * the run's workspace (or a folder inside it), as the run's user, with the run's environment
 * (which carries OPENRUNNER_RUN_ID, so the orphan sweep finds it). Output (stdout and stderr
 * interleaved) is kept up to a byte limit: the request's `outputByteLimit`, capped by
 * {@link MAX_TERMINAL_OUTPUT_BYTES}; past it the oldest bytes are dropped (at a character
 * boundary) and `truncated` is set, as ACP specifies. {@link TerminalSet.disposeAll} kills every
 * terminal when the run ends.
 *
 * {@link AcpTerminals} is what the request handlers use; `terminal-container.ts` implements it
 * for runs in a container (commands exec'd there instead of spawned on the host).
 */
import { execa, type ResultPromise } from "execa";
import { randomUUID } from "node:crypto";
import type { RunAs } from "../run-as.ts";
import { resolveInWorkspace } from "./fs.ts";

/** Server cap on one terminal's retained output, bytes. */
export const MAX_TERMINAL_OUTPUT_BYTES = 1024 * 1024;
/** Terminals one run may hold at once. */
export const MAX_TERMINALS = 16;

/** Why a terminal request failed: `not_found` (unknown id), `limit` (too many), `outside_workspace`. */
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

/** The terminals of one run, wherever their commands run (host: {@link TerminalSet}; container: `ContainerTerminalSet`). */
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

interface Term {
  child: ResultPromise;
  pid: number | undefined;
  out: OutputTail;
  exit: TerminalExit | null;
  exited: Promise<TerminalExit>;
}

/** What `create` needs from the run. */
export interface TerminalSetOptions {
  /** The run's workspace (terminals run there or below). */
  root: string;
  /** The run's complete environment (PATH, HOME …, OPENRUNNER_RUN_ID). */
  env: Record<string, string>;
  runAs?: RunAs;
  /** Called when a terminal starts, with its command line (for a `log` event). */
  onStart?: (id: string, commandLine: string) => void;
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

const killGroup = (pid: number | undefined, signal: NodeJS.Signals) => {
  if (pid === undefined) return;
  try {
    process.kill(-pid, signal);
  } catch {
    // gone
  }
};

/** The terminals of one run on the host; see the module comment. */
export class TerminalSet implements AcpTerminals {
  readonly #terms = new Map<string, Term>();
  readonly #o: TerminalSetOptions;
  #disposed = false;

  constructor(opts: TerminalSetOptions) {
    this.#o = opts;
  }

  /**
   * Starts `command` with `args` (no shell; an `args`-less command with spaces or shell
   * syntax runs under `/bin/sh -c`). Returns the terminal id.
   * @throws TerminalError (`limit`, `outside_workspace` for a cwd outside the workspace, `spawn_failed`)
   */
  async create(req: TerminalRequest): Promise<string> {
    this.#checkCanCreate();
    let cwd: string;
    try {
      cwd = await resolveInWorkspace(this.#o.root, req.cwd ?? this.#o.root);
    } catch (err) {
      throw new TerminalError("outside_workspace", (err as Error).message);
    }
    this.#checkCanCreate(); // again: the run may have ended, or other creates filled the set, meanwhile
    const [file, argv] = terminalArgv(req);
    const env = { ...this.#o.env };
    for (const v of req.env ?? []) if (v.name !== "OPENRUNNER_RUN_ID") env[v.name] = v.value;
    const child = execa(file, argv, {
      cwd,
      env,
      extendEnv: false,
      detached: true,
      stdin: "ignore",
      buffer: false,
      reject: false,
      all: true,
      ...(this.#o.runAs ? { uid: this.#o.runAs.uid, gid: this.#o.runAs.gid } : {}),
    });
    if (child.pid === undefined) {
      const r = await child;
      throw new TerminalError("spawn_failed", `could not start ${file}: ${r.message ?? "spawn failed"}`);
    }
    const id = `term_${randomUUID()}`;
    const t: Term = {
      child,
      pid: child.pid,
      out: new OutputTail(outputLimitOf(req)),
      exit: null,
      exited: child.then((r) => {
        const exit: TerminalExit = { exitCode: typeof r.exitCode === "number" ? r.exitCode : null, signal: r.signal ?? null };
        t.exit = exit;
        killGroup(t.pid, "SIGKILL"); // what the command left in its group
        return exit;
      }),
    };
    child.all?.on("data", (chunk: Buffer) => t.out.push(chunk));
    this.#terms.set(id, t);
    this.#o.onStart?.(id, [file, ...argv].join(" "));
    return id;
  }

  /** @throws TerminalError `spawn_failed` once disposed, `limit` when the run holds {@link MAX_TERMINALS} */
  #checkCanCreate(): void {
    if (this.#disposed) throw new TerminalError("spawn_failed", "the run is ending");
    if (this.#terms.size >= MAX_TERMINALS) throw new TerminalError("limit", `at most ${MAX_TERMINALS} terminals per run`);
  }

  #get(id: string): Term {
    const t = this.#terms.get(id);
    if (!t) throw new TerminalError("not_found", `no terminal ${id}`);
    return t;
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

  /** ACP `terminal/kill`: SIGKILL to the command's group; the terminal stays readable. @throws TerminalError `not_found` */
  kill(id: string): void {
    const t = this.#get(id);
    if (!t.exit) killGroup(t.pid, "SIGKILL");
  }

  /** ACP `terminal/release`: kills the command if still running and forgets the terminal. @throws TerminalError `not_found` */
  release(id: string): void {
    this.kill(id);
    this.#terms.delete(id);
  }

  /** Kills every terminal (run ended); later creates are refused. */
  disposeAll(): Promise<void> {
    this.#disposed = true;
    for (const t of this.#terms.values()) if (!t.exit) killGroup(t.pid, "SIGKILL");
    this.#terms.clear();
    return Promise.resolve();
  }
}
