/**
 * The ACP terminal capability for a run whose agent runs in a container: each terminal's
 * command is exec'd in that container (never on the host), as the container's user, in the
 * run's folder there or below it, with the agent's container environment (which carries
 * OPENRUNNER_RUN_ID) plus the request's variables. The limits and the output handling are the
 * host's (`terminal-core.ts`): stdout and stderr interleaved, the tail kept up to the request's
 * `outputByteLimit` capped by `MAX_TERMINAL_OUTPUT_BYTES`, at most `MAX_TERMINALS`.
 *
 * A kill reaches the command's whole tree in the container (the exec's marker, see
 * `src/container/client.ts`); when the command exits, whatever it left behind is killed as
 * on the host. A command the engine cannot start (not in the image) exits 126/127 with the
 * engine's message as its output. Killed commands report `signal` (`SIGKILL`/`SIGTERM`) and a
 * null `exitCode`, as on the host.
 */
import { realpath } from "node:fs/promises";
import type { ContainerHandle, ExecHandle } from "../../container/types.ts";
import { hostPathToContainer, resolveInWorkspace, containerPathToHost, type ContainerPathMap } from "./fs.ts";
import { TerminalCore, TerminalError, type TerminalBinding, type TerminalExit } from "./terminal-core.ts";

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

/** The exit status of a terminal's exec: 137/143 after our kill are SIGKILL/SIGTERM, as on the host. */
function exitStatusOf(code: number | null, killed: boolean): TerminalExit {
  if (killed && code === 137) return { exitCode: null, signal: "SIGKILL" };
  if (killed && code === 143) return { exitCode: null, signal: "SIGTERM" };
  return { exitCode: code, signal: null };
}

/** Execs in the run's container for {@link TerminalCore}. */
function containerBinding(o: ContainerTerminalOptions): TerminalBinding {
  return {
    async resolveCwd(cwd) {
      // Checked on the host (symlinks included), then named as the container sees it.
      const host = await resolveInWorkspace(o.paths.hostRoot, containerPathToHost(cwd ?? o.paths.containerRoot, o.paths));
      return hostPathToContainer(host, { ...o.paths, hostRoot: await realpath(o.paths.hostRoot) });
    },
    async start({ file, args, env, cwd }, onOutput) {
      let exec: ExecHandle;
      try {
        exec = await o.container.exec({ argv: [file, ...args], env, cwd });
      } catch (err) {
        throw new TerminalError("spawn_failed", `could not start ${file} in the container: ${err instanceof Error ? err.message : String(err)}`);
      }
      let killed = false;
      let exitKnown = false;
      let poll: NodeJS.Timeout | undefined;
      exec.stdout.on("data", onOutput);
      exec.stderr.on("data", onOutput);
      const exited = exec.exit.then((r) => {
        exitKnown = true;
        clearTimeout(poll);
        if (r.error) onOutput(Buffer.from(`${r.error.message}\n`));
        return exitStatusOf(r.exitCode, killed);
      });
      // The command ended but something it started still holds its output open: kill that, so the exit is seen.
      const watch = () => {
        poll = setTimeout(() => {
          void exec.running().then((running) => {
            if (exitKnown) return;
            if (!running) void exec.kill("KILL").catch(() => 0);
            else watch();
          });
        }, LIVENESS_POLL_MS);
      };
      watch();
      return {
        exited,
        kill() {
          killed = true;
          return exec.kill("KILL").then(
            () => {},
            (err: unknown) => o.onError?.("could not kill a terminal", err),
          );
        },
        // What the command left behind (daemons that let go of its output) goes, as on the host.
        reap: () => void exec.kill("KILL").catch((err: unknown) => o.onError?.("could not kill a terminal's leftovers", err)),
        close: () => clearTimeout(poll),
        async discard() {
          clearTimeout(poll);
          try {
            await exec[Symbol.asyncDispose](); // kills its tree, lets go of its stream
          } catch (err) {
            o.onError?.("could not kill a terminal started as the run ended", err);
          }
        },
      };
    },
    describe: ({ file, args, cwd }) => `${[file, ...args].join(" ")} (in the container, cwd ${cwd})`,
  };
}

/** The terminals of one containerized run; see the module comment. */
export class ContainerTerminalSet extends TerminalCore {
  constructor(opts: ContainerTerminalOptions) {
    super(containerBinding(opts), opts);
  }
}
