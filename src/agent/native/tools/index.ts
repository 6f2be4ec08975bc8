/**
 * The native agent's tool registry: every tool with its JSON schema, in the order they are
 * offered to the model. {@link nativeToolSchemas} is the plain-JSON view (`GET /api/tools`
 * serves it; the model gets the same schemas in its request).
 *
 * | tool | changes things | what |
 * |---|---|---|
 * | `read_file` | no | a file's text, a line range |
 * | `write_file` | yes | create or replace a file |
 * | `edit_file` | yes | exact string replacement, with a unified diff |
 * | `list_dir` | no | a folder's entries |
 * | `glob` | no | paths matching a glob |
 * | `grep` | no | lines matching a regular expression |
 * | `bash` | yes | a command line, with timeout and output cap |
 * | `plan` | no | the run's plan (steps with status) |
 *
 * Tools that change things pass the run's permission gate first (`metadata.permission_policy`).
 */
import { createBashTool, type BashLimits } from "./bash-tool.ts";
import { editFileTool, listDirTool, readFileTool, writeFileTool } from "./fs-tools.ts";
import { planTool } from "./plan-tool.ts";
import { globTool, grepTool } from "./search-tools.ts";
import type { NativeTool } from "./types.ts";

/** The tool contract (`types.ts`) and the `bash` limits, for callers of the registry. */
export type { NativeTool, ToolContext, ToolResult } from "./types.ts";
export type { BashLimits } from "./bash-tool.ts";

/** `bash` limits when the configuration sets none: 120 s default, 600 s at most, 64 KiB of output. */
export const DEFAULT_BASH_LIMITS: BashLimits = { timeoutMs: 120_000, maxTimeoutMs: 600_000, maxOutputBytes: 64 * 1024 };

/** The tools with the given `bash` limits, in the order they are offered. */
export function createNativeTools(bash: BashLimits = DEFAULT_BASH_LIMITS): NativeTool[] {
  return [readFileTool, writeFileTool, editFileTool, listDirTool, globTool, grepTool, createBashTool(bash), planTool] as NativeTool[];
}

/** The tools with the default limits. */
export const NATIVE_TOOLS: readonly NativeTool[] = createNativeTools();

/** A tool as `GET /api/tools` lists it: name, description, JSON schema of the input, whether it passes the permission gate. */
export interface NativeToolSchema {
  name: string;
  description: string;
  /** JSON Schema (draft 2020-12 compatible, from TypeBox) of the input object. */
  input_schema: Record<string, unknown>;
  /** True for `write_file`, `edit_file`, `bash`: the run's permission policy decides each call. */
  mutating: boolean;
}

/** Plain JSON (no TypeBox symbols) of a schema. */
export function plainSchema(schema: unknown): Record<string, unknown> {
  return JSON.parse(JSON.stringify(schema)) as Record<string, unknown>;
}

/**
 * The tools as plain JSON, in offer order.
 * @example nativeToolSchemas().map((t) => t.name) // ["read_file", "write_file", "edit_file", "list_dir", "glob", "grep", "bash", "plan"]
 */
export function nativeToolSchemas(tools: readonly NativeTool[] = NATIVE_TOOLS): NativeToolSchema[] {
  return tools.map((t) => ({ name: t.name, description: t.description, input_schema: plainSchema(t.schema), mutating: t.mutating }));
}
