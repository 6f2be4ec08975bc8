/**
 * Runs one tool call of the model: finds the tool, validates the input against its schema
 * (ajv), asks the run's permission gate for a tool that changes things (`write_file`,
 * `edit_file`, `bash`: the gate writes `permission.request` and `permission.decision`, and
 * applies the run's `allow` / `deny` / `ask` policy), runs it, and emits `tool.call` and
 * `tool.result`. Whatever fails (unknown tool, bad input, a denial, the tool itself) is a
 * result with `is_error: true` for the model; nothing here throws.
 */
import { Ajv, type ValidateFunction } from "ajv";
import type { RunEventInput } from "../../protocol/events.ts";
import type { PermissionGate, PermissionOption } from "../permissions.ts";
import type { ToolCallItem, ToolResultItem } from "./transcript.ts";
import type { NativeTool, ToolContext, ToolResult } from "./tools/types.ts";

/** Characters of a tool's output the model gets at most (and the `tool.result` event carries). */
export const MAX_TOOL_OUTPUT_CHARS = 256 * 1024;

/** The options a permission request for a tool call offers (ACP's kinds). */
export const TOOL_PERMISSION_OPTIONS: PermissionOption[] = [
  { option_id: "allow", name: "Allow", kind: "allow_once" },
  { option_id: "reject", name: "Reject", kind: "reject_once" },
];

/** What {@link createToolRunner} needs from the run. */
export interface ToolRunnerOptions {
  tools: readonly NativeTool[];
  emit: (e: RunEventInput) => void;
  /** The run's permission gate; absent (unit tests, tools that change nothing): every call runs. */
  permissions?: PermissionGate;
}

/** Runs tool calls; see the module comment. */
export interface ToolRunner {
  run(call: ToolCallItem, ctx: ToolContext): Promise<ToolResultItem>;
}

const cap = (s: string) => (s.length > MAX_TOOL_OUTPUT_CHARS ? `${s.slice(0, MAX_TOOL_OUTPUT_CHARS)}\n[output cut at ${MAX_TOOL_OUTPUT_CHARS} characters]` : s);

/** Compiled input validators, by schema object (the tools are made once per server, runs are many). */
const validators = new WeakMap<object, ValidateFunction>();
let ajv: Ajv | undefined;

function validatorOf(tool: NativeTool): ValidateFunction {
  let v = validators.get(tool.schema);
  if (!v) {
    ajv ??= new Ajv({ allErrors: true, strict: false, coerceTypes: false, useDefaults: false });
    v = ajv.compile(tool.schema);
    validators.set(tool.schema, v);
  }
  return v;
}

/** Creates the runner for one run's tools. */
export function createToolRunner(o: ToolRunnerOptions): ToolRunner {
  const byName = new Map<string, { tool: NativeTool; validate: ValidateFunction }>(o.tools.map((t) => [t.name, { tool: t, validate: validatorOf(t) }]));
  const decide = async (tool: NativeTool, call: ToolCallItem, signal: AbortSignal): Promise<ToolResult | undefined> => {
    if (!tool.mutating || !o.permissions) return undefined;
    const answer = await o.permissions.ask({ call_id: call.id, name: tool.name, input: call.input, options: TOOL_PERMISSION_OPTIONS }, signal);
    if (answer.outcome === "cancelled") return { output: `${tool.name} was not run: the run is ending`, is_error: true, detail: { reason: "cancelled" } };
    if (answer.option_id !== "allow") return { output: `${tool.name} was not run: permission denied by the user. Do not retry the same call; choose another way or stop.`, is_error: true, detail: { reason: "denied" } };
    return undefined;
  };
  return {
    async run(call, ctx) {
      o.emit({ type: "tool.call", data: { call_id: call.id, name: call.name, input: call.input } });
      let result: ToolResult;
      const entry = byName.get(call.name);
      if (!entry) result = { output: `unknown tool ${JSON.stringify(call.name)}; the tools are: ${[...byName.keys()].join(", ")}`, is_error: true, detail: { reason: "unknown_tool" } };
      else if (!entry.validate(call.input)) {
        const why = (entry.validate.errors ?? []).map((e) => `${e.instancePath || "input"} ${e.message ?? "is invalid"}`).join("; ");
        result = { output: `invalid input for ${call.name}: ${why}`, is_error: true, detail: { reason: "invalid_input" } };
      } else {
        result = (await decide(entry.tool, call, ctx.signal)) ?? (await entry.tool.run(call.input as never, ctx).catch((err: unknown) => ({ output: `${call.name} failed: ${err instanceof Error ? err.message : String(err)}`, is_error: true })));
      }
      const output = cap(result.output);
      o.emit({ type: "tool.result", data: { call_id: call.id, output, is_error: result.is_error, ...(result.detail ? { raw: result.detail } : {}) } });
      return { call_id: call.id, output, is_error: result.is_error };
    },
  };
}
