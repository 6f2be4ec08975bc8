/**
 * The ACP agent inside the run's container (`metadata.isolation: "docker"`): the agent's
 * command is exec'd there with stdin attached (the engine's hijacked exec connection; stdout
 * and stderr demultiplexed), so the actor speaks ACP over it exactly as over a host child's
 * pipes.
 *
 * - Command: translated as for the CLI adapters (`toContainerExec`): the run's host folder and
 *   home become the container's, host PATH/HOME/TMPDIR are dropped, OPENRUNNER_RUN_ID is kept.
 *   The run's home is made usable as HOME first (`provideRunHome`: a mounted home is given to
 *   the container's user when the server is root; a project container gets a copy), since the
 *   adapter's command just wrote the agent's config there as the server.
 * - Signals reach the exec's whole process tree in the container (its marker; see
 *   `src/container/client.ts`), never a host process.
 * - The agent ended but something it left behind still holds its output open: that is killed,
 *   so `done` resolves (polled, as in `container-exec.ts`).
 * - `finish`: a per-run container is stopped and removed (`container.stopped`,
 *   `container.removed`); in a shared project container only the run's leftovers are killed.
 */
import type { Log } from "../../log.ts";
import { RunFailure } from "../../protocol/errors.ts";
import type { ContainerRunEvent, RunContainer } from "../../container/run-container.ts";
import type { ExecHandle } from "../../container/types.ts";
import { teardownRunContainer, toContainerExec } from "../container-exec.ts";
import { provideRunHome } from "../container-home.ts";
import type { AgentCommand, AgentRunContext } from "../types.ts";
import type { AcpAgentProcess, AgentProcessEnd } from "./agent-process.ts";

/** How often the engine is asked whether the agent still runs while its output is open (ms). */
const LIVENESS_POLL_MS = 1000;

/** Options of {@link spawnContainerAgent}. */
export interface ContainerAgentOptions {
  container: RunContainer;
  command: AgentCommand;
  ctx: Pick<AgentRunContext, "run_id" | "cwd" | "home">;
  /** Receives `container.stopped` / `container.removed` of a per-run container. */
  emit: (e: ContainerRunEvent) => void;
  log?: Pick<Log, "warn">;
  /** Whether this process runs as root (default: `process.getuid() === 0`): then a mounted home is given to the container user. */
  isRoot?: boolean;
}

/** The container environment of the agent's exec (what terminals it opens inherit too). */
export function containerAgentEnv(o: Pick<ContainerAgentOptions, "container" | "command" | "ctx">): Record<string, string> {
  return toContainerExec(o.command, o.ctx, o.container).env ?? {};
}

const ended = (s: { readableEnded: boolean; destroyed: boolean; once(ev: string, f: () => void): unknown }) =>
  new Promise<void>((resolve) => {
    if (s.readableEnded || s.destroyed) return resolve();
    s.once("end", resolve);
    s.once("close", resolve);
  });

/**
 * Execs the agent in the run's container with stdin attached; see the module comment.
 * @throws ContainerError (`exec_failed`, `container_not_found`, `engine_unavailable`, …) when the engine refuses the exec;
 * RunFailure `internal` when the exec has no stdin
 * @example
 * const proc = await spawnContainerAgent({ container, command, ctx, emit });
 * const stream = createStdioStream(proc.stdin, proc.stdout, taps);
 */
export async function spawnContainerAgent(o: ContainerAgentOptions): Promise<AcpAgentProcess> {
  const c = o.container;
  const warn = (msg: string, err: unknown) => o.log?.warn(msg, { run_id: o.ctx.run_id, container_id: c.handle.id, err: String(err) });
  const adjust = await provideRunHome(c, o.ctx.home, o.isRoot);
  const x: ExecHandle = await c.handle.exec(adjust({ ...toContainerExec(o.command, o.ctx, c), stdin: true }));
  if (!x.stdin) throw new RunFailure("internal", "the container client gave the exec no stdin");
  let over = false;
  let disposed = false;
  let signalled: "TERM" | "KILL" | undefined;
  let pollTimer: NodeJS.Timeout | undefined;
  const signal = (sig: "TERM" | "KILL") => {
    if (over || disposed) return;
    signalled = sig === "KILL" || signalled === "KILL" ? "KILL" : "TERM";
    void x.kill(sig).catch((err: unknown) => warn(`could not send SIG${sig} to the ACP agent in its container`, err));
  };
  const poll = () => {
    pollTimer = setTimeout(() => {
      void x.running().then((running) => {
        if (over || disposed) return;
        if (!running) void x.kill("KILL").catch(() => 0);
        else poll();
      });
    }, LIVENESS_POLL_MS);
  };
  poll();
  const done = Promise.all([x.exit, ended(x.stdout), ended(x.stderr)]).then(([r]): AgentProcessEnd => {
    over = true;
    clearTimeout(pollTimer);
    const code = r.exitCode;
    // 128+n after our signal n: report the signal, as a host process would.
    if (signalled && (code === 143 || code === 137)) return { signal: code === 143 ? "SIGTERM" : "SIGKILL", ...(r.error ? { error: r.error } : {}) };
    return { ...(code !== null ? { exit_code: code } : {}), ...(r.error ? { error: r.error } : {}) };
  });
  return {
    stdin: x.stdin,
    stdout: x.stdout,
    stderr: x.stderr,
    started: { container_id: c.handle.id },
    done,
    terminate: () => signal("TERM"),
    kill: () => signal("KILL"),
    async finish() {
      if (disposed) return;
      if (c.perRun) await teardownRunContainer(c, o.emit, o.log);
      else await x.kill("KILL").catch((err: unknown) => warn("could not kill the ACP agent's leftovers in the project container", err));
    },
    dispose() {
      if (disposed) return;
      disposed = true;
      clearTimeout(pollTimer);
      if (c.perRun) void c.handle.remove({ force: true }).catch((err: unknown) => warn("could not remove the run's container", err));
      else if (!over) void Promise.resolve(x[Symbol.asyncDispose]()).catch(() => {});
    },
  };
}
