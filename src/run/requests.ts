/**
 * Request and response schemas of the runs API (DESIGN.md section 6). The same
 * TypeBox schemas validate requests (ajv) and appear in the OpenAPI document.
 */
import { Type, type Static } from "@sinclair/typebox";
import { RUN_STATUSES, UsageSchema } from "./events.ts";

export const CreateRunBody = Type.Object(
  {
    input: Type.Object({ text: Type.String({ minLength: 1, maxLength: 1_000_000 }) }, { additionalProperties: false }),
    metadata: Type.Object(
      {
        agent_type: Type.String({ minLength: 1, maxLength: 64, pattern: "^[a-z][a-z0-9_-]*$" }),
        cwd: Type.Optional(Type.String({ minLength: 1, maxLength: 4096 })),
        timeout_secs: Type.Optional(Type.Integer({ minimum: 1 })),
        model: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })),
        extra_args: Type.Optional(Type.Array(Type.String({ maxLength: 4096 }), { maxItems: 64 })),
        resume: Type.Optional(Type.String({ minLength: 1, maxLength: 64 })),
        /** `docker`: run inside a per-run container (default: the server's `docker.default_isolation`). */
        isolation: Type.Optional(Type.Union([Type.Literal("none"), Type.Literal("docker")])),
        /** Container memory limit, MiB (docker isolation; at most the admin's `docker.max_memory_mb`). */
        memory_mb: Type.Optional(Type.Integer({ minimum: 6 })),
        /** Container CPU quota (docker isolation; at most `docker.max_cpus`). */
        cpus: Type.Optional(Type.Number({ minimum: 0.01 })),
        /** Container process limit (docker isolation; at most `docker.max_pids_limit`). */
        pids_limit: Type.Optional(Type.Integer({ minimum: 1 })),
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
});

export const CreateRunResponse = Type.Object({ run_id: Type.String(), status: RunStatusSchema });
export const RunListResponse = Type.Object({ runs: Type.Array(RunView), next_cursor: Type.Union([Type.String(), Type.Null()]) });
export const EventPageResponse = Type.Object({
  events: Type.Array(Type.Unknown()),
  next_after: Type.Integer(),
  done: Type.Boolean(),
});
export const ChatResponse = Type.Object({
  run_id: Type.String(),
  status: RunStatusSchema,
  result: Type.Union([Type.String(), Type.Null()]),
  error: Type.Union([Type.Object({ code: Type.String(), message: Type.String() }), Type.Null()]),
  usage: Type.Union([UsageSchema, Type.Null()]),
});
