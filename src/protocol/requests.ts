/**
 * Request and response schemas of the runs API (docs/architecture.md#http-api). The same
 * TypeBox schemas validate requests (ajv) and appear in the OpenAPI document.
 * Part of the contract layer: imports nothing of the project but `./events.ts`.
 */
import { Type, type Static } from "@sinclair/typebox";
import { RUN_STATUSES, UsageSchema } from "./events.ts";
import { TRACEPARENT_PATTERN } from "./trace-context.ts";

/** What a project id (`metadata.project_id`, the `:project_id` of the project routes) must match. */
export const PROJECT_ID_PATTERN = "^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$";

/** The priorities of `metadata.priority`, lowest first (admission orders by them, then FIFO; see `src/run/admission.ts`). */
export const RUN_PRIORITIES = ["low", "normal", "high", "critical"] as const;
/** One of {@link RUN_PRIORITIES}. */
export type RunPriority = (typeof RUN_PRIORITIES)[number];

/** What the name of a per-run MCP server (a key of `metadata.mcp_servers`) must match. */
export const MCP_SERVER_NAME_PATTERN = "^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$";

/**
 * A per-run MCP server the agent starts and talks to over stdio: `command` must be one of the admin's
 * `mcp.allowed_commands` (exactly as listed); `args` and `env` are passed to it (dynamic-loader and
 * interpreter-startup variables such as `LD_PRELOAD` or `NODE_OPTIONS` are refused).
 */
export const McpStdioServer = Type.Object(
  {
    type: Type.Optional(Type.Literal("stdio")),
    command: Type.String({ minLength: 1, maxLength: 4096 }),
    args: Type.Optional(Type.Array(Type.String({ maxLength: 4096 }), { maxItems: 64 })),
    env: Type.Optional(Type.Record(Type.String({ pattern: "^[A-Za-z_][A-Za-z0-9_]{0,127}$" }), Type.String({ maxLength: 8192 }), { additionalProperties: false })),
  },
  { additionalProperties: false },
);
/** A per-run MCP server the agent reaches over Streamable HTTP: the URL's host must be one of the admin's `mcp.allowed_hosts`. */
export const McpHttpServer = Type.Object(
  {
    type: Type.Optional(Type.Literal("http")),
    url: Type.String({ minLength: 1, maxLength: 4096, pattern: "^https?://" }),
    headers: Type.Optional(Type.Record(Type.String({ pattern: "^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,128}$" }), Type.String({ maxLength: 8192 }), { additionalProperties: false })),
  },
  { additionalProperties: false },
);
/** `metadata.mcp_servers`: the run's MCP servers by name, offered to the agent in its own configuration (at most 16). */
export const McpServers = Type.Record(Type.String({ pattern: MCP_SERVER_NAME_PATTERN }), Type.Union([McpStdioServer, McpHttpServer]), { maxProperties: 16, additionalProperties: false });
/** A stdio MCP server of `metadata.mcp_servers`. */
export type McpStdioServer = Static<typeof McpStdioServer>;
/** An HTTP MCP server of `metadata.mcp_servers`. */
export type McpHttpServer = Static<typeof McpHttpServer>;
/** `metadata.mcp_servers`. */
export type McpServers = Static<typeof McpServers>;

export const CreateRunBody = Type.Object(
  {
    input: Type.Object(
      {
        text: Type.String({ minLength: 1, maxLength: 1_000_000 }),
        /**
         * `task` runs only: files written under `/workspace/input/` before the entrypoint starts. `path` is relative
         * (`/`-separated, no `..`); `content` is UTF-8 text or, with `encoding: "base64"`, bytes. Bounded by the body limit.
         */
        files: Type.Optional(
          Type.Array(
            Type.Object(
              {
                path: Type.String({ minLength: 1, maxLength: 1024, pattern: "^[^/\\u0000]" }),
                content: Type.String({ maxLength: 50_000_000 }),
                encoding: Type.Optional(Type.Union([Type.Literal("utf8"), Type.Literal("base64")])),
              },
              { additionalProperties: false },
            ),
            { maxItems: 1000 },
          ),
        ),
      },
      { additionalProperties: false },
    ),
    metadata: Type.Object(
      {
        agent_type: Type.String({ minLength: 1, maxLength: 64, pattern: "^[a-z][a-z0-9_-]*$" }),
        cwd: Type.Optional(Type.String({ minLength: 1, maxLength: 4096 })),
        timeout_secs: Type.Optional(Type.Integer({ minimum: 1 })),
        model: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })),
        extra_args: Type.Optional(Type.Array(Type.String({ maxLength: 4096 }), { maxItems: 64 })),
        resume: Type.Optional(Type.String({ minLength: 1, maxLength: 64 })),
        /** Resume a session listed by `GET /api/sessions` (its `session_id`), in the agent home and workspace that hold it; not with `resume`. */
        resume_session: Type.Optional(Type.String({ minLength: 1, maxLength: 128, pattern: "^[A-Za-z0-9][A-Za-z0-9._-]*$" })),
        /** `docker`: run inside a per-run container (default: the server's `docker.default_isolation`). */
        isolation: Type.Optional(Type.Union([Type.Literal("none"), Type.Literal("docker")])),
        /** Container memory limit, MiB (docker isolation; at most the admin's `docker.max_memory_mb`). */
        memory_mb: Type.Optional(Type.Integer({ minimum: 6 })),
        /** Container CPU quota (docker isolation; at most `docker.max_cpus`). */
        cpus: Type.Optional(Type.Number({ minimum: 0.01 })),
        /** Container process limit (docker isolation; at most `docker.max_pids_limit`). */
        pids_limit: Type.Optional(Type.Integer({ minimum: 1 })),
        /** `task` runs: the batch image to run (one of the admin's `docker.task_images`). */
        image: Type.Optional(Type.String({ minLength: 1, maxLength: 256 })),
        /**
         * Run in the caller's long-lived container of this project (implies docker isolation): its
         * workspace (`<workspaces>/<user>/projects/<project_id>`) persists between the project's runs;
         * `cwd` is then relative to it.
         */
        project_id: Type.Optional(Type.String({ pattern: PROJECT_ID_PATTERN, description: "1-64 characters [A-Za-z0-9_.-], starting with a letter or digit" })),
        /**
         * With docker isolation (per-run or project container): the run's container is the desktop image with a desktop
         * (Xvfb, VNC, noVNC, PulseAudio, ibus, chromium), ready before the agent starts; agents see `DISPLAY`.
         * `GET /api/runs/:id/desktop` gives its noVNC link, `POST /api/runs/:id/desktop/screenshot` a PNG.
         */
        desktop: Type.Optional(Type.Boolean()),
        /** With `agent_type: "acp"`: which configured ACP agent runs (`acp_agents.<name>`, e.g. `claude-code-acp`). */
        acp_agent: Type.Optional(Type.String({ minLength: 1, maxLength: 64, pattern: "^[A-Za-z0-9][A-Za-z0-9_.-]*$" })),
        /** Who decides the agent's permission requests: `allow`, `deny`, or `ask` the owner (default: the server's `permissions.default_policy`). */
        permission_policy: Type.Optional(Type.Union([Type.Literal("allow"), Type.Literal("deny"), Type.Literal("ask")])),
        /** How long an `ask` request waits for the owner before the default decision applies, seconds (default `permissions.timeout_secs`). */
        permission_timeout_secs: Type.Optional(Type.Integer({ minimum: 1, maximum: 604800 })),
        /** `openrunner` runs: ask the model for a plan first (a `plan` event), then carry it out. */
        plan: Type.Optional(Type.Boolean()),
        /** W3C trace context of the caller (the `traceparent` request header wins): the run's span is its child; the agent gets the run's as `TRACEPARENT`. */
        traceparent: Type.Optional(Type.String({ pattern: TRACEPARENT_PATTERN })),
        /** MCP servers offered to the agent for this run (stdio: admin-allowed commands; http: admin-allowed hosts), in the agent's own configuration. */
        mcp_servers: Type.Optional(McpServers),
        /** Admission priority (default `normal`): higher first, then FIFO; a waiting run gains a level per `priority_aging_secs`. */
        priority: Type.Optional(Type.Union(RUN_PRIORITIES.map((p) => Type.Literal(p)))),
      },
      { additionalProperties: false },
    ),
  },
  { additionalProperties: false },
);
/** Body of POST /api/runs and POST /api/chat. */
export type CreateRunBody = Static<typeof CreateRunBody>;

const RunStatusSchema = Type.Union(RUN_STATUSES.map((s) => Type.Literal(s)));

/** A run as the API returns it. Timestamps ISO 8601 UTC. */
export const RunView = Type.Object({
  id: Type.String(),
  user_id: Type.String(),
  agent: Type.String(),
  status: RunStatusSchema,
  input: Type.Object({ text: Type.String() }),
  metadata: Type.Record(Type.String(), Type.Unknown()),
  cwd: Type.String(),
  created_at: Type.String({ format: "date-time" }),
  started_at: Type.Union([Type.String({ format: "date-time" }), Type.Null()]),
  ended_at: Type.Union([Type.String({ format: "date-time" }), Type.Null()]),
  result: Type.Union([Type.String(), Type.Null()]),
  error: Type.Union([Type.Object({ code: Type.String(), message: Type.String() }), Type.Null()]),
  exit_code: Type.Union([Type.Integer(), Type.Null()]),
  usage: Type.Union([UsageSchema, Type.Null()]),
  session_id: Type.Union([Type.String(), Type.Null()]),
  last_event_id: Type.Integer(),
  /** The batch the run was created in (`POST /api/runs/batch`), or null. */
  batch_id: Type.Optional(Type.Union([Type.String(), Type.Null()])),
});

/** Query of `GET /api/runs`: filters, the page size (1-200, default 50) and the cursor of the previous page's `next_cursor`. */
export const RunListQuery = Type.Object(
  {
    status: Type.Optional(RunStatusSchema),
    agent_type: Type.Optional(Type.String({ minLength: 1, maxLength: 64 })),
    cursor: Type.Optional(Type.String({ minLength: 1, maxLength: 512 })),
    limit: Type.Optional(Type.String({ pattern: "^[0-9]{1,3}$" })),
    /** `true`: an admin sees only their own runs. */
    mine: Type.Optional(Type.Union([Type.Literal("true"), Type.Literal("false")])),
    /** Only the runs of this batch (`POST /api/runs/batch`). */
    batch_id: Type.Optional(Type.String({ minLength: 1, maxLength: 64 })),
  },
  { additionalProperties: false },
);

/** A run as the API returns it. */
export type RunView = Static<typeof RunView>;

/** Response of `POST /api/runs` and `POST /api/runs/:id/cancel`. */
export const CreateRunResponse = Type.Object({ run_id: Type.String(), status: RunStatusSchema });
/** Response of `POST /api/runs` and `POST /api/runs/:id/cancel`. */
export type CreateRunResponse = Static<typeof CreateRunResponse>;
/** Response of `GET /api/runs`: a page of runs, newest first; `next_cursor` null on the last page. */
export const RunListResponse = Type.Object({ runs: Type.Array(RunView), next_cursor: Type.Union([Type.String(), Type.Null()]) });
/** Response of `GET /api/runs`. */
export type RunListResponse = Static<typeof RunListResponse>;
/** Response of `GET /api/runs/:id/events` with `Accept: application/json`: stored events after `after`. */
export const EventPageResponse = Type.Object({
  events: Type.Array(Type.Unknown()),
  next_after: Type.Integer(),
  done: Type.Boolean(),
});
/** Response of `POST /api/chat`: the finished run. */
export const ChatResponse = Type.Object({
  run_id: Type.String(),
  status: RunStatusSchema,
  result: Type.Union([Type.String(), Type.Null()]),
  error: Type.Union([Type.Object({ code: Type.String(), message: Type.String() }), Type.Null()]),
  usage: Type.Union([UsageSchema, Type.Null()]),
});

/** Body of `POST /api/runs/:id/permissions/:request_id`: one of the request's `options[].option_id`. */
export const AnswerPermissionBody = Type.Object({ option_id: Type.String({ minLength: 1, maxLength: 512 }) }, { additionalProperties: false });
export type AnswerPermissionBody = Static<typeof AnswerPermissionBody>;

const PermissionOptionView = Type.Object({ option_id: Type.String(), name: Type.String(), kind: Type.String({ description: "allow_once, allow_always, reject_once or reject_always" }) });

/** The recorded decision of a permission request (the data of its `permission.decision` event). */
export const PermissionDecisionView = Type.Object({
  request_id: Type.String(),
  decision: Type.String({ description: "the chosen option_id" }),
  by: Type.String({ description: "`user:<name>`, `policy`, `timeout` or `run_ended`" }),
  option_name: Type.Optional(Type.String()),
  kind: Type.Optional(Type.String()),
});

/** An open permission request of a run (`GET /api/runs/:id/permissions`). Times ISO 8601 UTC. */
export const PendingPermissionView = Type.Object({
  request_id: Type.String(),
  call_id: Type.Optional(Type.String()),
  name: Type.String(),
  input: Type.Unknown(),
  options: Type.Array(PermissionOptionView),
  requested_at: Type.String({ format: "date-time" }),
  deadline: Type.String({ format: "date-time", description: "when the default decision applies" }),
});
/** An open permission request of a run. */
export type PendingPermissionView = Static<typeof PendingPermissionView>;
/** Response of `GET /api/runs/:id/permissions`. */
export const PendingPermissionList = Type.Object({ permissions: Type.Array(PendingPermissionView) });
/** Response of `GET /api/runs/:id/permissions`. */
export type PendingPermissionList = Static<typeof PendingPermissionList>;
/** The recorded decision of a permission request. */
export type PermissionDecisionView = Static<typeof PermissionDecisionView>;
/** Response of `POST /api/chat`. */
export type ChatResponse = Static<typeof ChatResponse>;
