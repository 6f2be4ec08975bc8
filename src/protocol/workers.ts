/**
 * `GET /api/workers` (admins, docs/architecture.md#scale-out): the worker processes of the
 * distributed mode. Part of the contract layer: imports nothing of the project.
 */
import { Type, type Static } from "@sinclair/typebox";

/** One registered worker. Times ISO 8601 UTC. */
export const WorkerView = Type.Object({
  id: Type.String({ description: "`wrk_<ulid>`, new at every start of the worker" }),
  host: Type.String(),
  pid: Type.Integer(),
  agents: Type.Array(Type.Object({ agent: Type.String(), version: Type.Optional(Type.String()) }), { description: "the agents it can run, as /health/agents reports them on its machine" }),
  isolations: Type.Array(Type.String(), { description: "`none` (host) and/or `docker`" }),
  capacity: Type.Integer({ description: "most runs it executes at once" }),
  running: Type.Integer({ description: "its runs not yet terminal" }),
  started_at: Type.String(),
  last_heartbeat: Type.String(),
  heartbeat_age_ms: Type.Integer({ description: "how long ago its last heartbeat was, by the database's clock, ms" }),
});
/** One registered worker. */
export type WorkerView = Static<typeof WorkerView>;

/** Response of `GET /api/workers`; `mode` `single`: one process, no workers. */
export const WorkerListResponse = Type.Object({
  mode: Type.Union([Type.Literal("single"), Type.Literal("distributed")]),
  workers: Type.Array(WorkerView),
});
/** Response of `GET /api/workers`. */
export type WorkerListResponse = Static<typeof WorkerListResponse>;
