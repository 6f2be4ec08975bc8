/**
 * The contract of the native agent's tools (`src/agent/native/tools/`): each tool has a name,
 * a description for the model, a JSON schema of its input (TypeBox, so the same object is the
 * TypeScript type, the schema offered to the model and the schema `GET /api/tools` serves), and
 * whether it changes things (then the run's permission gate decides before it runs).
 *
 * A tool never throws at the loop: whatever goes wrong (a path outside the workspace, a file
 * that is missing, a command that fails) is a {@link ToolResult} with `is_error: true`, which
 * goes back to the model as the call's result.
 */
import type { Static, TSchema } from "@sinclair/typebox";
import type { PlanEntry } from "../plan.ts";
import type { WorkspaceFs } from "../workspace-fs.ts";
import type { ShellRunner } from "../shell.ts";

/** What a tool returns: the text the model reads, whether it is an error, and structured detail for the `tool.result` event. */
export interface ToolResult {
  /** What the model reads as the call's result (capped by the loop). */
  output: string;
  is_error: boolean;
  /** Structured detail that goes into the `tool.result` event's `raw` (a diff, an exit code …); never shown to the model. */
  detail?: Record<string, unknown>;
}

/** What a tool may use while it runs: the run's workspace, its shell, the run's plan and the run's abort signal. */
export interface ToolContext {
  fs: WorkspaceFs;
  shell: ShellRunner;
  /** Replaces the run's plan (the `plan` tool). */
  setPlan(entries: PlanEntry[]): void;
  /** Aborted when the run is cancelled or times out: long tools stop at once. */
  signal: AbortSignal;
}

/** One tool of the native agent. */
export interface NativeTool<S extends TSchema = TSchema> {
  /** The name the model calls it by (`read_file`, `bash` …). */
  readonly name: string;
  /** One paragraph for the model: what it does, its limits. */
  readonly description: string;
  /** JSON schema (TypeBox) of the input object. */
  readonly schema: S;
  /** True when the tool changes the workspace or runs commands: it passes the run's permission gate first. */
  readonly mutating: boolean;
  /** Runs the tool on an input already validated against {@link schema}. Never rejects. */
  run(input: Static<S>, ctx: ToolContext): Promise<ToolResult>;
}

/** The result of a failed tool: `is_error` with the message. */
export function toolError(message: string, detail?: Record<string, unknown>): ToolResult {
  return { output: message, is_error: true, ...(detail ? { detail } : {}) };
}
