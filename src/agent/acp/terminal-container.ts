/**
 * The ACP terminal capability for a run whose agent runs in a container: each terminal's
 * command is exec'd in that container (never on the host), as the container's user, in the
 * run's folder there or below it, with the agent's container environment (which carries
 * OPENRUNNER_RUN_ID) plus the request's variables. The limits and the output handling are the
 * host's (`terminal.ts`): stdout and stderr interleaved, the tail kept up to the request's
 * `outputByteLimit` capped by {@link MAX_TERMINAL_OUTPUT_BYTES}, at most {@link MAX_TERMINALS}.
 *
 * A kill reaches the command's whole tree in the container (the exec's marker, see
 * `src/container/client.ts`); when the command exits, whatever it left behind is killed as
 * on the host. A command the engine cannot start (not in the image) exits 126/127 with the
 * engine's message as its output. Killed commands report `signal` (`SIGKILL`/`SIGTERM`) and a
 * null `exitCode`, as on the host.
 */
import { randomUUID } from "node:crypto";
import { realpath } from "node:fs/promises";
import type { ContainerHandle, ExecHandle } from "../../container/types.ts";
import { hostPathToContainer, resolveInWorkspace, containerPathToHost, type ContainerPathMap } from "./fs.ts";
import { MAX_TERMINALS, OutputTail, outputLimitOf, TerminalError, terminalArgv, type AcpTerminals, type TerminalExit, type TerminalRequest } from "./terminal.ts";

/** How often a running terminal's process is checked while its output stays open (ms). */
const LIVENESS_POLL_MS = 1000;

/** What the terminals need from the run. */
export interface ContainerTerminalOptions {
  /** The run's container (only `exec` is used). */
  container: Pick<ContainerHandle, "exec">;
  /** The run's folder on the host and inside the container (terminal cwds are confined to it). */
  paths: ContainerPathMap;
  /** Environment of every command (the agent's container environment, with OPENRUNNER_RUN_ID). */
  env: Record<string, string>;
  /** Called when a terminal starts, with its command line (for a `log` event). */
  onStart?: (id: string, commandLine: string) => void;
  /** Told about engine failures while killing (the run goes on). */
  onError?: (what: string, err: unknown) => void;
}

interface Term {
  exec: ExecHandle;
  out: OutputTail;
  killed: boolean;
  exit: TerminalExit | null;
  exited: Promise<TerminalExit>;
  poll?: NodeJS.Timeout;
}

/** The exit status of a terminal's exec: 137/143 after our kill are SIGKILL/SIGTERM, as on the host. */
function exitStatusOf(code: number | null, killed: boolean): TerminalExit {
  if (killed && code === 137) return { exitCode: null, signal: "SIGKILL" };
  if (killed && code === 143) return { exitCode: null, signal: "SIGTERM" };
  return { exitCode: code, signal: null };
}

/** The terminals of one containerized run; see the module comment. */
export class ContainerTerminalSet implements AcpTerminals {
  readonly #terms = new Map<string, Term>();
  readonly #o: ContainerTerminalOptions;
  #disposed = false;
  /** Creates waiting for the engine (counted against {@link MAX_TERMINALS}). */
  #starting = 0;

  constructor(opts: ContainerTerminalOptions) {
    this.#o = opts;
  }

  /**
   * Execs the command in the container; `cwd` is a container path inside the run's folder.
   * @throws TerminalError (`limit`, `outside_workspace` for a cwd outside the run's folder, `spawn_failed` when the engine refuses the exec)
   */
  async create(req: TerminalRequest): Promise<string> {
    this.#checkCanCreate();
    let cwd: string;
    try {
      // Checked on the host (symlinks included), then named as the container sees it.
      const host = await resolveInWorkspace(this.#o.paths.hostRoot, containerPathToHost(req.cwd ?? this.#o.paths.containerRoot, this.#o.paths));
      cwd = hostPathToContainer(host, { ...this.#o.paths, hostRoot: await realpath(this.#o.paths.hostRoot) });
    } catch (err) {
      throw new TerminalError("outside_workspace", (err as Error).message);
    }
    this.#checkCanCreate(); // again: the run may have ended, or other creates filled the set, meanwhile
    const [file, argv] = terminalArgv(req);
    const env = { ...this.#o.env };
    for (const v of req.env ?? []) if (v.name !== "OPENRUNNER_RUN_ID") env[v.name] = v.value;
    let exec: ExecHandle;
    this.#starting++;
    try {
      exec = await this.#o.container.exec({ argv: [file, ...argv], env, cwd });
    } catch (err) {
      throw new TerminalError("spawn_failed", `could not start ${file} in the container: ${err instanceof Error ? err.message : String(err)}`);
    } finally {
      this.#starting--;
    }
    if (this.#disposed) {
      // The run ended while the engine started the exec: nobody would kill or forget this terminal.
      try {
        await exec[Symbol.asyncDispose](); // kills its tree, lets go of its stream
      } catch (err) {
        this.#o.onError?.("could not kill a terminal started as the run ended", err);
      }
      throw new TerminalError("spawn_failed", "the run is ending");
    }
    const id = `term_${randomUUID()}`;
    const t: Term = { exec, out: new OutputTail(outputLimitOf(req)), killed: false, exit: null, exited: Promise.resolve({ exitCode: null, signal: null }) };
    const append = (chunk: Buffer) => t.out.push(chunk);
    exec.stdout.on("data", append);
    exec.stderr.on("data", append);
    t.exited = exec.exit.then((r) => {
      clearTimeout(t.poll);
      if (r.error) append(Buffer.from(`${r.error.message}\n`));
      const exit = exitStatusOf(r.exitCode, t.killed);
      t.exit = exit;
      // What the command left behind (daemons that let go of its output) goes, as on the host.
      void exec.kill("KILL").catch((err: unknown) => this.#o.onError?.("could not kill a terminal's leftovers", err));
      return exit;
    });
    // The command ended but something it started still holds its output open: kill that, so the exit is seen.
    const poll = () => {
      t.poll = setTimeout(() => {
        void exec.running().then((running) => {
          if (t.exit) return;
          if (!running) void exec.kill("KILL").catch(() => 0);
          else poll();
        });
      }, LIVENESS_POLL_MS);
    };
    poll();
    this.#terms.set(id, t);
    this.#o.onStart?.(id, `${[file, ...argv].join(" ")} (in the container, cwd ${cwd})`);
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

  #kill(t: Term): Promise<void> {
    if (t.exit) return Promise.resolve();
    t.killed = true;
    return t.exec.kill("KILL").then(
      () => {},
      (err: unknown) => this.#o.onError?.("could not kill a terminal", err),
    );
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

  /** ACP `terminal/kill`: SIGKILL to the command's tree in the container; the terminal stays readable. @throws TerminalError `not_found` */
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
    for (const t of terms) clearTimeout(t.poll);
    await Promise.all(terms.map((t) => this.#kill(t)));
  }
}
