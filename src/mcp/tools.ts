/**
 * The MCP tools of OpenRunner (docs/architecture.md#mcp): `start_run`,
 * `get_run`, `list_runs`, `wait_run`, `cancel_run`, `list_agents`,
 * `answer_permission`. Each tool's `inputSchema` and `outputSchema` are the
 * REST API's own TypeBox schemas (`src/protocol/requests.ts`, `api.ts`), which
 * are JSON Schema already; arguments are validated with the API's ajv
 * (`src/api/validate.ts`) before the tool runs. Tools act through an
 * {@link McpBackend}, so they never know whether they run in the server or
 * over HTTP.
 */
import { Type, type TSchema } from "@sinclair/typebox";
import { validateBody } from "../api/validate.ts";
import { AgentHealthResponse } from "../protocol/api.ts";
import { isTerminalType, type RunEvent } from "../protocol/events.ts";
import { AnswerPermissionBody, CreateRunBody, CreateRunResponse, PermissionDecisionView, RunListQuery, RunListResponse, RunView } from "../protocol/requests.ts";
import { TERMINAL_STATUSES, type RunStatus } from "../protocol/events.ts";
import type { McpBackend } from "./backend.ts";

const RunId = Type.String({ minLength: 1, maxLength: 64, description: "a run id, `run_…`" });

/** Arguments of `get_run` and `cancel_run`. */
export const RunIdArgs = Type.Object({ run_id: RunId }, { additionalProperties: false });

/** Arguments of `list_runs`: the filters of `GET /api/runs`, with `limit` as a number. */
export const ListRunsArgs = Type.Composite(
  [Type.Pick(RunListQuery, ["status", "agent_type", "cursor"]), Type.Object({ limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 200, description: "page size, default 50" })) })],
  { additionalProperties: false },
);

/** Most seconds one `wait_run` call waits. */
export const MAX_WAIT_SECS = 3600;
/**
 * Seconds `wait_run` waits when the call names none: under the 60 s request timeout MCP clients commonly use
 * (the SDK's default), so a silent run answers `done: false` and the caller asks again instead of timing out.
 */
export const DEFAULT_WAIT_SECS = 50;

/** Arguments of `wait_run`. */
export const WaitRunArgs = Type.Object(
  {
    run_id: RunId,
    timeout_secs: Type.Optional(Type.Integer({ minimum: 1, maximum: MAX_WAIT_SECS, description: "how long to wait at most (default 50); the answer then has done: false: call again" })),
  },
  { additionalProperties: false },
);

/** Result of `wait_run`: the run, and whether it has ended. */
export const WaitRunResult = Type.Object({ done: Type.Boolean(), run: RunView });

/** Arguments of `answer_permission`: the route's path parameters plus its body (`AnswerPermissionBody`). */
export const AnswerPermissionArgs = Type.Composite([Type.Object({ run_id: RunId, request_id: Type.String({ minLength: 1, maxLength: 512 }) }), AnswerPermissionBody], { additionalProperties: false });

/** What a running tool may use besides its arguments. */
export interface ToolContext {
  /** Aborted when the client cancels the request or goes away. */
  signal: AbortSignal;
  /** Sends a progress notification when the client asked for them (a `progressToken`); else does nothing. */
  progress(progress: number, message: string): Promise<void>;
}

/** One tool: its MCP description, its schemas and what it does. */
export interface ToolSpec {
  name: string;
  title: string;
  description: string;
  input: TSchema;
  output: TSchema;
  /** Runs the tool on validated arguments; the answer matches `output`. */
  run(backend: McpBackend, args: never, ctx: ToolContext): Promise<unknown>;
}

const isTerminalStatus = (s: string) => TERMINAL_STATUSES.includes(s as RunStatus);

/** The tools, in the order `tools/list` answers them. */
export const TOOLS: readonly ToolSpec[] = [
  {
    name: "start_run",
    title: "Start a run",
    description:
      "Starts a run: one prompt (`input.text`) given to one agent (`metadata.agent_type`: shell, claude_code, codex, opencode, gemini, acp …; see list_agents). Same body as POST /api/runs. Answers {run_id, status: \"queued\"}; follow it with wait_run.",
    input: CreateRunBody,
    output: CreateRunResponse,
    run: (b, args: typeof CreateRunBody.static) => b.startRun(args),
  },
  {
    name: "get_run",
    title: "Get a run",
    description: "A run's state, timestamps, result, error and usage (GET /api/runs/:id).",
    input: RunIdArgs,
    output: RunView,
    run: (b, args: typeof RunIdArgs.static) => b.getRun(args.run_id),
  },
  {
    name: "list_runs",
    title: "List runs",
    description: "The caller's runs (an admin's: everyone's), newest first, filtered by status or agent; pass next_cursor as cursor for the next page.",
    input: ListRunsArgs,
    output: RunListResponse,
    run: (b, args: typeof ListRunsArgs.static) => b.listRuns({ ...args, ...(args.status ? { status: args.status as RunStatus } : {}) }),
  },
  {
    name: "wait_run",
    title: "Wait for a run to end",
    description:
      "Waits until the run has ended (completed, failed, cancelled, timed_out) or timeout_secs have passed, sending a progress notification when it begins and one for each event of the run while it waits (progress = the event id). Answers {done, run}.",
    input: WaitRunArgs,
    output: WaitRunResult,
    run: (b, args: typeof WaitRunArgs.static, ctx) => waitRun(b, args.run_id, (args.timeout_secs ?? DEFAULT_WAIT_SECS) * 1000, ctx),
  },
  {
    name: "cancel_run",
    title: "Cancel a run",
    description: "Cancels a run (idempotent: an ended run is left as it is). Answers {run_id, status}.",
    input: RunIdArgs,
    output: CreateRunResponse,
    run: (b, args: typeof RunIdArgs.static) => b.cancelRun(args.run_id),
  },
  {
    name: "list_agents",
    title: "List agents",
    description: "Which agents this server can run: per agent, whether it is available, its version and why not (GET /health/agents).",
    input: Type.Object({}, { additionalProperties: false }),
    output: AgentHealthResponse,
    run: async (b) => ({ agents: await b.listAgents() }),
  },
  {
    name: "answer_permission",
    title: "Answer a permission request",
    description:
      "Answers an open permission request of a run (a permission.request event; see the run's events resource) with one of its options[].option_id. Answers the recorded decision.",
    input: AnswerPermissionArgs,
    output: PermissionDecisionView,
    run: (b, args: typeof AnswerPermissionArgs.static) => b.answerPermission(args.run_id, args.request_id, args.option_id),
  },
];

/**
 * Validates `args` against the tool's input schema, then runs it.
 * @throws ValidationError (400 `validation_failed`, with the issues) for bad arguments; whatever the backend throws
 */
export async function callTool(tool: ToolSpec, backend: McpBackend, args: unknown, ctx: ToolContext): Promise<unknown> {
  const valid = validateBody(tool.input, args ?? {});
  return tool.run(backend, valid as never, ctx);
}

/** `wait_run`: follows the run's events from its current last one until the terminal event or the deadline. */
async function waitRun(b: McpBackend, runId: string, timeoutMs: number, ctx: ToolContext): Promise<{ done: boolean; run: unknown }> {
  const before = await b.getRun(runId);
  if (isTerminalStatus(before.status)) return { done: true, run: before };
  // A first notification at once: the client knows the wait has begun (and where), even if the run is silent for long.
  await ctx.progress(before.last_event_id, `waiting: ${before.status}`);
  const deadline = AbortSignal.timeout(timeoutMs);
  const signal = AbortSignal.any([ctx.signal, deadline]);
  try {
    for await (const e of b.followEvents(runId, before.last_event_id, signal)) {
      await ctx.progress(e.id, describeEvent(e));
      if (isTerminalType(e.type)) break;
    }
  } catch (err) {
    if (!signal.aborted) throw err; // the deadline (or the client) ended the wait: answer the state as it is
  }
  ctx.signal.throwIfAborted();
  const run = await b.getRun(runId);
  return { done: isTerminalStatus(run.status), run };
}

/** One line about an event, for a progress notification. */
export function describeEvent(e: RunEvent): string {
  const d = e.data as Record<string, unknown>;
  const clip = (s: unknown) => {
    const t = typeof s === "string" ? s : JSON.stringify(s);
    return t.length > 120 ? `${t.slice(0, 119)}…` : t;
  };
  switch (e.type) {
    case "message":
    case "message.delta":
    case "reasoning":
      return `${e.type}: ${clip(d.text)}`;
    case "tool.call":
      return `tool.call ${String(d.name)}${typeof d.server === "string" ? ` (${d.server})` : ""}`;
    case "log":
      return `log ${String(d.stream)}: ${clip(d.text)}`;
    case "run.failed":
      return `run.failed: ${clip((d.error as { code?: unknown } | undefined)?.code)}`;
    default:
      return e.type;
  }
}
