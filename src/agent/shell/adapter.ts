/**
 * The `shell` agent: runs `input.text` with `/bin/sh -c` in the run's workspace.
 * It needs no model. stdout and stderr lines become `log` events; exit code 0
 * completes the run (its result is the last stdout line), any other code fails
 * it with `exit_nonzero`, a signal with `agent_crashed`.
 */
import { access, constants } from "node:fs/promises";
import type { RunEventInput } from "../../protocol/events.ts";
import type { AgentAdapter, AgentCommand, AgentHealth, AgentRunContext, LineParser, ProcessExit, AgentOutcome } from "../types.ts";

const SHELL = "/bin/sh";

/** Parser for plain command output: every line is a `log` event. Pure. */
export function createShellParser(): LineParser {
  let lastLine: string | undefined;
  return {
    parseLine(line: string): RunEventInput[] {
      lastLine = line;
      return [{ type: "log", data: { stream: "stdout", text: line } }];
    },
    parseStderr(line: string): RunEventInput[] {
      return [{ type: "log", data: { stream: "stderr", text: line } }];
    },
    end: () => [],
    outcome(exit: ProcessExit): AgentOutcome {
      if (exit.exit_code === 0) return { kind: "completed", exit_code: 0, ...(lastLine !== undefined ? { result: lastLine } : {}) };
      if (exit.exit_code === undefined)
        return { kind: "failed", code: "agent_crashed", message: `killed by ${exit.signal ?? "signal"}` };
      return {
        kind: "failed",
        exit_code: exit.exit_code,
        code: "exit_nonzero",
        message: `command exited with code ${exit.exit_code}${exit.stderr_tail ? `: ${lastLines(exit.stderr_tail, 3)}` : ""}`,
      };
    },
  };
}

function lastLines(text: string, n: number): string {
  return text.trimEnd().split("\n").slice(-n).join(" | ");
}

/** Creates the shell adapter. `baseEnv` is passed to commands (PATH, LANG …); HOME is the run's home. */
export function createShellAdapter(opts: { baseEnv: Record<string, string> }): AgentAdapter {
  return {
    name: "shell",
    async detect(): Promise<AgentHealth> {
      try {
        await access(SHELL, constants.X_OK);
        return { agent: "shell", available: true, path: SHELL };
      } catch {
        return { agent: "shell", available: false, reason: `${SHELL} not found or not executable` };
      }
    },
    async command(ctx: AgentRunContext): Promise<AgentCommand> {
      return {
        argv: [SHELL, "-c", ctx.text],
        env: { ...opts.baseEnv, HOME: ctx.home },
        cwd: ctx.cwd,
      };
    },
    createParser: () => createShellParser(),
  };
}
