/**
 * The run event contract (docs/architecture.md#event-contract): one table of event types and
 * their `data` schemas. The TypeScript union, the store, the SSE `event:` names
 * and the OpenAPI document are all derived from {@link EVENT_DATA_SCHEMAS};
 * `test/unit/events-schema.test.ts` fails when the committed
 * `schemas/run-events.schema.json` drifts from it.
 *
 * Every data object may carry `raw`: the agent's original object, for detail
 * that fits no field (never lost).
 *
 * `src/protocol/` is the bottom layer (see `test/unit/layers.test.ts`): it
 * imports nothing of the project, so the store, the bus, containers and
 * agents can all depend on the contract without pointing up at `run/`.
 */
import { Type, type Static, type TSchema, type TObject, type TProperties } from "@sinclair/typebox";
import type { RunFailure } from "./errors.ts";

/** Adds the optional `raw` escape hatch to a data schema; extra fields are allowed. */
function data<P extends TProperties>(props: P) {
  return Type.Object({ ...props, raw: Type.Optional(Type.Unknown()) }, { additionalProperties: true });
}

const Usage = Type.Object(
  {
    input_tokens: Type.Integer({ minimum: 0 }),
    output_tokens: Type.Integer({ minimum: 0 }),
    cache_read_tokens: Type.Optional(Type.Integer({ minimum: 0 })),
    cache_write_tokens: Type.Optional(Type.Integer({ minimum: 0 })),
    cost_usd: Type.Optional(Type.Number({ minimum: 0 })),
  },
  { additionalProperties: true },
);
/** Token counts (tokens) and cost (USD) of a turn or a whole run. */
export type Usage = Static<typeof Usage>;
/** The JSON schema of {@link Usage}, e.g. for the API's run views. */
export const UsageSchema = Usage;

const Artifact = Type.Object({ path: Type.String(), size_bytes: Type.Integer({ minimum: 0 }) }, { additionalProperties: false });
/** A file a `task` run produced: `path` relative to the run's workspace (`/`-separated), size in bytes. */
export type Artifact = Static<typeof Artifact>;
/** The JSON schema of {@link Artifact}. */
export const ArtifactSchema = Artifact;

const RunError = Type.Object({ code: Type.String(), message: Type.String() }, { additionalProperties: true });
/** A run failure: a stable `code` (see {@link RUN_FAILURE_CODES}) and a human message. */
export type RunErrorInfo = Static<typeof RunError>;

/**
 * Stable `run.failed` error codes, the closed set every adapter and the run
 * engine draw from.
 *
 * Engine: `interrupted` (the server stopped while the run was live),
 * `internal`. Processes: `spawn_failed` (could not be started),
 * `exit_nonzero` (a shell or task run exited non-zero), `agent_unavailable`,
 * `agent_crashed` (the agent process died mid-turn), `model_error`,
 * `auth_failed`. ACP agents (stop reasons and protocol): `protocol_error`
 * (malformed JSON-RPC or an unknown stop reason), `resume_unsupported`,
 * `max_tokens`, `max_turn_requests`, `refusal`, `agent_error`,
 * `agent_cancelled` (the agent cancelled a turn nobody cancelled).
 * Containers: `engine_unavailable`, `image_not_found`, `container_not_found`,
 * `container_conflict`, `exec_failed`, `oom_killed`, `image_build_failed`,
 * `container_failed`, `disk_full`. Task runs:
 * `task_needs_docker`, `task_image_invalid`. Project containers (while
 * preparing): `project_limit` (the user has `docker.max_projects_per_user`),
 * `project_limits_mismatch` / `project_image_mismatch` (the running project
 * container was made with other limits or another image; restart it).
 * The `openrunner` agent's run limits: `max_turns` (model requests), `max_tokens`
 * (also its per-run token budget), `max_cost` (USD from the configured prices).
 * Stall watchdog (`src/run/stall.ts`): `stalled` (no event for `stall_fail_secs`).
 * Distributed mode (`src/run/worker.ts`): `worker_lost` (the worker running it stopped renewing its
 * lease), `launch_refused` (the worker that claimed it refused to launch it, e.g. its folder is busy there).
 */
export const RUN_FAILURE_CODES = [
  "interrupted",
  "internal",
  "spawn_failed",
  "exit_nonzero",
  "agent_unavailable",
  "agent_crashed",
  "model_error",
  "auth_failed",
  "protocol_error",
  "resume_unsupported",
  "max_tokens",
  "max_turn_requests",
  "refusal",
  "agent_error",
  "agent_cancelled",
  "engine_unavailable",
  "image_not_found",
  "container_not_found",
  "container_conflict",
  "exec_failed",
  "oom_killed",
  "image_build_failed",
  "container_failed",
  "disk_full",
  "task_needs_docker",
  "task_image_invalid",
  "project_limit",
  "project_limits_mismatch",
  "project_image_mismatch",
  "max_turns",
  "max_cost",
  "stalled",
  "worker_lost",
  "launch_refused",
] as const;

/** One of {@link RUN_FAILURE_CODES}. */
export type RunFailureCode = (typeof RUN_FAILURE_CODES)[number];

const FAILURE_CODE_SET: ReadonlySet<string> = new Set(RUN_FAILURE_CODES);

/**
 * The run failure code carried by a thrown error: a {@link RunFailure}'s `code`;
 * else (errors of libraries and lower layers, e.g. a `ContainerError` or a
 * `ConflictError("project_busy")`) a plain `err.code` when it is one of
 * {@link RUN_FAILURE_CODES}; else `fallback`.
 * @example failureCode(new RunFailure("spawn_failed", "could not start x"), "internal") // "spawn_failed"
 * @example failureCode(Object.assign(new Error("x"), { code: "oom_killed" }), "internal") // "oom_killed"
 * @example failureCode(Object.assign(new Error("x"), { code: "EACCES" }), "internal") // "internal"
 */
export function failureCode(err: unknown, fallback: RunFailureCode): RunFailureCode {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === "string" && FAILURE_CODE_SET.has(code) ? (code as RunFailureCode) : fallback;
}

/**
 * Why a run went silent (`run.stalled.cause`), checked in this order: `waiting_permission` (a permission request is
 * open), `tool_running` (a child process of the agent lives), `model_request_open` (a connection to the model's base
 * URL is open and unanswered), `idle_process` (none of these).
 */
export const STALL_CAUSES = ["waiting_permission", "tool_running", "model_request_open", "idle_process"] as const;
/** One of {@link STALL_CAUSES}. */
export type StallCause = (typeof STALL_CAUSES)[number];
const STALL_CAUSE_LITERALS = STALL_CAUSES.map((c) => Type.Literal(c));

/** The `data` schema of every event type: the single table the contract derives from. */
export const EVENT_DATA_SCHEMAS = {
  "run.queued": data({ agent: Type.String(), input: Type.Object({ text: Type.String() }), position: Type.Integer({ minimum: 0 }) }),
  "run.started": data({
    agent: Type.String(),
    agent_version: Type.Optional(Type.String()),
    pid: Type.Optional(Type.Integer()),
    container_id: Type.Optional(Type.String()),
    cwd: Type.String(),
  }),
  "agent.session": data({ session_id: Type.String() }),
  "message.delta": data({ message_id: Type.String(), text: Type.String() }),
  message: data({ message_id: Type.String(), role: Type.Literal("assistant"), text: Type.String() }),
  reasoning: data({ text: Type.String() }),
  plan: data({
    entries: Type.Array(
      Type.Object(
        { content: Type.String(), status: Type.String(), priority: Type.Optional(Type.String()) },
        { additionalProperties: true },
      ),
    ),
  }),
  "tool.call": data({ call_id: Type.String(), name: Type.String(), input: Type.Unknown(), server: Type.Optional(Type.String({ description: "the MCP server of an MCP tool (a key of metadata.mcp_servers, or one the agent has itself)" })) }),
  "tool.result": data({ call_id: Type.String(), output: Type.Unknown(), is_error: Type.Boolean() }),
  "permission.request": data({
    request_id: Type.String(),
    call_id: Type.Optional(Type.String()),
    name: Type.String(),
    input: Type.Unknown(),
    options: Type.Array(Type.Unknown()),
  }),
  /**
   * `decision`: the chosen option_id, or `cancelled` when no option was chosen (`kind` absent: the run ended
   * first, or the policy found no option of its kind). `by`: `user:<name>`, `policy`, `timeout` or `run_ended`.
   */
  "permission.decision": data({
    request_id: Type.String(),
    decision: Type.String(),
    by: Type.String(),
    option_name: Type.Optional(Type.String()),
    kind: Type.Optional(Type.String()),
  }),
  usage: Usage,
  log: data({ stream: Type.Union([Type.Literal("stdout"), Type.Literal("stderr")]), text: Type.String() }),
  /** `pool`: taken from the warm pool (created and started earlier, emitted at hand-over); `project_id`: the run's project container, created for this run. */
  "container.created": data({ container_id: Type.String(), pool: Type.Optional(Type.Boolean()), project_id: Type.Optional(Type.String()) }),
  "container.started": data({ container_id: Type.String(), pool: Type.Optional(Type.Boolean()), project_id: Type.Optional(Type.String()) }),
  "container.stopped": data({ container_id: Type.String() }),
  "container.removed": data({ container_id: Type.String() }),
  "run.completed": data({
    result: Type.Optional(Type.String()),
    exit_code: Type.Integer(),
    duration_ms: Type.Integer({ minimum: 0 }),
    usage: Type.Optional(Usage),
    /** `task` runs: the files the container wrote under the workspace (see `src/container/artifacts.ts`). */
    artifacts: Type.Optional(Type.Array(Artifact)),
  }),
  "run.failed": data({
    error: RunError,
    exit_code: Type.Optional(Type.Integer()),
    duration_ms: Type.Integer({ minimum: 0 }),
  }),
  "run.cancelled": data({ reason: Type.String(), by: Type.Optional(Type.String()), duration_ms: Type.Integer({ minimum: 0 }) }),
  "run.timed_out": data({ timeout_ms: Type.Integer({ minimum: 0 }), duration_ms: Type.Integer({ minimum: 0 }) }),
  /**
   * The stall watchdog (`src/run/stall.ts`): no event for `idle_ms` while the agent's process lives. `cause`, see
   * {@link STALL_CAUSES}; `pid`: the process inspected; `request_ids`: the open permission requests
   * (`waiting_permission`); `endpoint`: the model base URL with an open connection (`model_request_open`);
   * `tool_pids`/`cpu_busy`: the agent's live child processes and whether they used CPU since the last look (`tool_running`).
   */
  "run.stalled": data({
    cause: Type.Union(STALL_CAUSE_LITERALS),
    idle_ms: Type.Integer({ minimum: 0 }),
    pid: Type.Optional(Type.Integer()),
    request_ids: Type.Optional(Type.Array(Type.String())),
    endpoint: Type.Optional(Type.String()),
    tool_pids: Type.Optional(Type.Array(Type.Integer())),
    cpu_busy: Type.Optional(Type.Boolean()),
  }),
  /** Events came again after a `run.stalled`: `stalled_ms`, how long the run had been silent. */
  "run.resumed_activity": data({ stalled_ms: Type.Integer({ minimum: 0 }) }),
} satisfies Record<string, TObject>;

/** Every event type name, e.g. `"tool.call"`. */
export type RunEventType = keyof typeof EVENT_DATA_SCHEMAS;
/** The `data` of one event type. */
export type RunEventData<T extends RunEventType> = Static<(typeof EVENT_DATA_SCHEMAS)[T]>;

/** All event type names, in table order. */
export const RUN_EVENT_TYPES = Object.keys(EVENT_DATA_SCHEMAS) as RunEventType[];

/** The four terminal event types; exactly one of them ends every run, always last. */
export const TERMINAL_EVENT_TYPES = ["run.completed", "run.failed", "run.cancelled", "run.timed_out"] as const;
/** One of {@link TERMINAL_EVENT_TYPES}. */
export type TerminalEventType = (typeof TERMINAL_EVENT_TYPES)[number];

/** True when `type` ends a run. */
export function isTerminalType(type: string): type is TerminalEventType {
  return (TERMINAL_EVENT_TYPES as readonly string[]).includes(type);
}

/** A stored event: `id` is the run's own sequence, 1, 2, 3 … without gaps; `ts` is ISO 8601 UTC. */
export type RunEvent = {
  [T in RunEventType]: { id: number; run_id: string; ts: string; type: T; data: RunEventData<T> };
}[RunEventType];

/**
 * Hidden property on a stored event: its `data` already serialized to JSON
 * (computed once at append; reused by the store and the SSE frames).
 */
export const DATA_JSON: unique symbol = Symbol("openrunner.dataJson");

/** The JSON text of `event.data`, serialized once and cached on the event. */
export function dataJsonOf(event: RunEvent): string {
  const e = event as RunEvent & { [DATA_JSON]?: string };
  const cached = e[DATA_JSON];
  if (cached !== undefined) return cached;
  const json = JSON.stringify(e.data);
  setDataJson(event, json);
  return json;
}

/** Caches `json` as the event's data JSON (a non-enumerable property, invisible to deep equality). */
export function setDataJson<E extends object>(event: E, json: string): E {
  Object.defineProperty(event, DATA_JSON, { value: json, enumerable: false, writable: true });
  return event;
}

/** An event before the channel numbers and stamps it: what adapters and the run machine produce. */
export type RunEventInput = {
  [T in RunEventType]: { type: T; data: RunEventData<T> };
}[RunEventType];

/**
 * The run statuses (docs/architecture.md#run-lifecycle); `run.*` terminal events map to the last four.
 * `waiting`: running, but blocked on a `permission.request` nobody has answered yet.
 */
export const RUN_STATUSES = ["queued", "preparing", "running", "waiting", "completed", "failed", "cancelled", "timed_out"] as const;
/** One of {@link RUN_STATUSES}. */
export type RunStatus = (typeof RUN_STATUSES)[number];
/** The statuses a run ends in, one per terminal event type. */
export const TERMINAL_STATUSES: readonly RunStatus[] = ["completed", "failed", "cancelled", "timed_out"];

/** The status a terminal event type leaves the run in. */
export function statusOfTerminal(type: TerminalEventType): RunStatus {
  return type.slice(4) as RunStatus;
}

/** Schema of a whole stored event of one type (envelope plus data). */
function envelope<T extends RunEventType>(type: T): TSchema {
  return Type.Object(
    {
      id: Type.Integer({ minimum: 1 }),
      run_id: Type.String(),
      ts: Type.String({ format: "date-time" }),
      type: Type.Literal(type),
      data: EVENT_DATA_SCHEMAS[type],
    },
    { additionalProperties: false, $id: `RunEvent.${type}` },
  );
}

/** The JSON Schema of any stored run event: a `oneOf` over every type's envelope. */
export function buildRunEventJsonSchema(): Record<string, unknown> {
  return JSON.parse(
    JSON.stringify({
      $schema: "http://json-schema.org/draft-07/schema#",
      title: "RunEvent",
      oneOf: RUN_EVENT_TYPES.map((t) => {
        const { $id: _id, ...rest } = envelope(t) as unknown as Record<string, unknown>;
        return { title: t, ...rest };
      }),
    }),
  );
}
