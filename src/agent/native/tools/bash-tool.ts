/**
 * The `bash` tool: runs one command line in the run's workspace (on the host in its own process
 * group as the run's user, or inside the run's container), with a timeout and an output cap in
 * bytes (`../shell.ts`); killed at once when the run is cancelled. A non-zero exit is an error
 * result the model reads (exit code and output), never a failed run.
 */
import { Type } from "@sinclair/typebox";
import { toolFailure } from "./errors.ts";
import type { NativeTool } from "./types.ts";

/** Limits of the `bash` tool, from the configuration (`native.bash_*`). */
export interface BashLimits {
  /** Default timeout of a command, ms. */
  timeoutMs: number;
  /** Largest timeout a call may ask for, ms. */
  maxTimeoutMs: number;
  /** Output kept per command, bytes (the oldest dropped). */
  maxOutputBytes: number;
}

const BashInput = Type.Object(
  {
    command: Type.String({ minLength: 1, maxLength: 100_000, description: "The command line, run with bash -c" }),
    cwd: Type.Optional(Type.String({ minLength: 1, maxLength: 4096, description: "Folder to run in (default: the workspace)" })),
    timeout_ms: Type.Optional(Type.Integer({ minimum: 1, description: "Kill the command after this many ms" })),
  },
  { additionalProperties: false },
);

/** The `bash` tool with these limits. */
export function createBashTool(limits: BashLimits): NativeTool<typeof BashInput> {
  return {
    name: "bash",
    description: `Runs a shell command (bash -c) in the workspace and returns its exit code and output (stdout and stderr together, the last ${limits.maxOutputBytes} bytes). Default timeout ${limits.timeoutMs} ms. Each call is a new shell: no state carries over.`,
    schema: BashInput,
    mutating: true,
    async run(input, ctx) {
      try {
        const timeoutMs = Math.min(input.timeout_ms ?? limits.timeoutMs, limits.maxTimeoutMs);
        const r = await ctx.shell.run(input.command, { ...(input.cwd ? { cwd: input.cwd } : {}), timeoutMs, maxBytes: limits.maxOutputBytes, signal: ctx.signal });
        const status = r.timed_out ? `killed after the timeout of ${timeoutMs} ms` : r.aborted ? "killed: the run is stopping" : r.exit_code !== null ? `exit code ${r.exit_code}` : `killed by ${r.signal}`;
        const output = `${r.truncated ? `[output cut to the last ${limits.maxOutputBytes} bytes]\n` : ""}${r.output}`;
        return {
          output: `${status}\n${output}`.trimEnd(),
          is_error: r.exit_code !== 0,
          detail: { exit_code: r.exit_code, signal: r.signal, timed_out: r.timed_out, truncated: r.truncated, duration_ms: r.duration_ms },
        };
      } catch (err) {
        return toolFailure(err, ctx.fs, input.cwd);
      }
    },
  };
}
