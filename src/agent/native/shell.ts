/**
 * The native agent's `bash` runner: one command at a time under `/bin/bash -c` (falling back to
 * `/bin/sh` where there is no bash), over the ACP terminal core (`src/agent/acp/terminal-core.ts`)
 * so the host and the container behave alike: on the host each command is its own process group,
 * as the run's user, with the run's environment (OPENRUNNER_RUN_ID marks it for the orphan sweep);
 * in the run's container it is an exec there, and a kill reaches its whole process tree.
 *
 * The output (stdout and stderr interleaved) is kept up to a byte cap, the oldest bytes dropped;
 * a command past its timeout, or running when the run's signal aborts, is SIGKILLed at once, with
 * everything it started. {@link ShellRunner.dispose} kills whatever still runs when the run ends.
 */
import type { AcpTerminals, TerminalExit } from "../acp/terminal-core.ts";

/** What one command produced. */
export interface ShellResult {
  /** Exit code, null when killed by a signal. */
  exit_code: number | null;
  signal: string | null;
  /** Output tail (stdout and stderr interleaved), UTF-8, at most the cap. */
  output: string;
  /** Older output was dropped to fit the cap. */
  truncated: boolean;
  /** Killed because it ran past its timeout. */
  timed_out: boolean;
  /** Killed because the run was stopping. */
  aborted: boolean;
  duration_ms: number;
}

/** Runs commands for the `bash` tool. */
export interface ShellRunner {
  /**
   * Runs `command` in `cwd` (a folder inside the workspace, as the model names it; default the workspace).
   * @throws TerminalError `outside_workspace` for a cwd outside it, `spawn_failed`
   */
  run(command: string, o: { cwd?: string; timeoutMs: number; maxBytes: number; signal: AbortSignal }): Promise<ShellResult>;
  /** Kills every command still running; later runs fail. */
  dispose(): Promise<void>;
}

/** The shell a command runs under: bash when the host or image has it, else sh. */
export const SHELL_ARGV = ["/bin/sh", "-c", 'if command -v bash >/dev/null 2>&1; then exec bash -c "$0"; else exec sh -c "$0"; fi'] as const;

/**
 * The runner over a set of terminals (`TerminalSet` on the host, `ContainerTerminalSet` in a container).
 * @example
 * const shell = createShellRunner(new TerminalSet({ root: cwd, env }));
 * const r = await shell.run("npm test", { timeoutMs: 120_000, maxBytes: 65_536, signal });
 */
export function createShellRunner(terminals: AcpTerminals): ShellRunner {
  return {
    async run(command, o) {
      const started = Date.now();
      if (o.signal.aborted) return { exit_code: null, signal: "SIGKILL", output: "", truncated: false, timed_out: false, aborted: true, duration_ms: 0 };
      const id = await terminals.create({ command: SHELL_ARGV[0], args: [SHELL_ARGV[1], SHELL_ARGV[2], command], cwd: o.cwd ?? null, outputByteLimit: o.maxBytes });
      let timedOut = false;
      let aborted = false;
      const timer = setTimeout(() => {
        timedOut = true;
        terminals.kill(id);
      }, o.timeoutMs);
      const onAbort = () => {
        aborted = true;
        terminals.kill(id);
      };
      o.signal.addEventListener("abort", onAbort, { once: true });
      let exit: TerminalExit;
      try {
        exit = await terminals.waitForExit(id);
      } finally {
        clearTimeout(timer);
        o.signal.removeEventListener("abort", onAbort);
      }
      const out = terminals.output(id);
      terminals.release(id);
      return { exit_code: exit.exitCode, signal: exit.signal, output: out.output, truncated: out.truncated, timed_out: timedOut, aborted, duration_ms: Date.now() - started };
    },
    dispose: () => terminals.disposeAll(),
  };
}
