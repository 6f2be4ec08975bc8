/**
 * The runs API (docs/architecture.md#http-api): create, list, get, cancel, delete, the
 * event stream (SSE, or a JSON page with `Accept: application/json`), and
 * `POST /api/chat`, and approvals: `GET /api/runs/:id/permissions` (open requests)
 * and `POST /api/runs/:id/permissions/:request_id` `{option_id}` (see `src/run/permissions.ts`).
 * Every route requires authentication; another user's run answers 404.
 */
import { Router } from "@koa/router";
import { Type } from "@sinclair/typebox";
import { ValidationError } from "../../errors.ts";
import type { RunManager } from "../../run/manager.ts";
import { dataJsonOf, isTerminalType, type RunEvent, type RunStatus } from "../../protocol/events.ts";
import { formatTraceparent, parseTraceparent } from "../../protocol/trace-context.ts";
import { ChatResponse, CreateRunBody, CreateRunResponse, EventPageResponse, RunListQuery as ListQuery, RunListResponse, RunView } from "../../protocol/requests.ts";
import { AnswerPermissionBody, PendingPermissionList, PermissionDecisionView } from "../../protocol/requests.ts";
import type { AppDeps, AppState, RouteModule } from "../context.ts";
import { errorResponses, type OperationSpec } from "../openapi.ts";
import { streamRunEvents } from "../sse.ts";
import { validateBody, validateQuery } from "../validate.ts";
import { readLastEventId } from "../last-event-id.ts";

const EventsQuery = Type.Object(
  {
    after: Type.Optional(Type.String({ pattern: "^[0-9]{1,15}$" })),
    limit: Type.Optional(Type.String({ pattern: "^[0-9]{1,5}$" })),
    access_token: Type.Optional(Type.String()),
  },
  { additionalProperties: false },
);

/** Most bytes of event data in one JSON page; at least one event is always returned. */
const MAX_PAGE_BYTES = 4 * 1024 * 1024;

function capByBytes(events: RunEvent[], maxBytes: number): RunEvent[] {
  let total = 0;
  for (let i = 0; i < events.length; i++) {
    total += dataJsonOf(events[i]!).length + 100;
    if (total > maxBytes && i > 0) return events.slice(0, i);
  }
  return events;
}

function boundedLimit(raw: string | undefined, dflt: number, max: number): number {
  if (raw === undefined) return dflt;
  const n = Number(raw);
  if (n < 1 || n > max) throw new ValidationError(`limit must be from 1 to ${max}`, { value: raw });
  return n;
}

/** Builds the runs route module. */
export function createRunRoutes(deps: AppDeps, manager: RunManager): RouteModule {
  const router = new Router<AppState>();
  const auth = deps.auth;

  router.post("/api/runs", auth, async (ctx) => {
    const body = validateBody(CreateRunBody, ctx.request.body);
    const traceparent = parseTraceparent(ctx.get("traceparent")); // W3C trace context: the run's span is its child
    if (traceparent) body.metadata.traceparent = formatTraceparent(traceparent);
    const run = await manager.create(ctx.state.user, body);
    ctx.status = 201;
    ctx.set("Location", `/api/runs/${run.id}`);
    ctx.body = { run_id: run.id, status: run.status };
  });

  router.get("/api/runs", auth, async (ctx) => {
    const q = validateQuery(ListQuery, ctx.query);
    ctx.body = await manager.list(
      ctx.state.user,
      {
        limit: boundedLimit(q.limit, 50, 200),
        ...(q.status ? { status: q.status as RunStatus } : {}),
        ...(q.agent_type ? { agent: q.agent_type } : {}),
        ...(q.cursor ? { cursor: q.cursor } : {}),
        ...(q.batch_id ? { batch_id: q.batch_id } : {}),
      },
      q.mine === "true",
    );
  });

  router.get("/api/runs/:id", auth, async (ctx) => {
    ctx.body = await manager.get(ctx.state.user, ctx.params.id!);
  });

  router.post("/api/runs/:id/cancel", auth, async (ctx) => {
    const run = await manager.cancel(ctx.state.user, ctx.params.id!);
    ctx.status = 202;
    ctx.body = { run_id: run.id, status: run.status };
  });

  router.delete("/api/runs/:id", auth, async (ctx) => {
    await manager.delete(ctx.state.user, ctx.params.id!);
    ctx.status = 204;
  });

  router.get("/api/runs/:id/events", deps.authWithQueryToken, async (ctx) => {
    const q = validateQuery(EventsQuery, ctx.query);
    const run = await manager.get(ctx.state.user, ctx.params.id!);
    const channel = await manager.channelFor(run);
    // An id beyond the last event would skip events still to come: clamp it.
    const after = Math.min(readLastEventId(ctx, q.after), channel.lastAppendedId);
    if (ctx.accepts("text/event-stream", "application/json") === "application/json") {
      const limit = boundedLimit(q.limit, 1000, 10000);
      const events = capByBytes(await channel.readStored(after, limit), MAX_PAGE_BYTES);
      const last = events[events.length - 1];
      const done = (last !== undefined && isTerminalType(last.type)) || (events.length === 0 && channel.terminalId !== null && after >= channel.terminalId);
      ctx.body = { events, next_after: last?.id ?? after, done };
      return;
    }
    ctx.respond = false;
    await streamRunEvents(ctx.req, ctx.res, channel, after, { heartbeatMs: deps.config.sse_heartbeat_ms });
  });

  router.get("/api/runs/:id/permissions", auth, async (ctx) => {
    ctx.body = { permissions: await manager.listPermissions(ctx.state.user, ctx.params.id!) };
  });

  router.post("/api/runs/:id/permissions/:request_id", auth, async (ctx) => {
    const body = validateBody(AnswerPermissionBody, ctx.request.body);
    ctx.body = await manager.answerPermission(ctx.state.user, ctx.params.id!, ctx.params.request_id!, body.option_id);
  });

  router.post("/api/chat", auth, async (ctx) => {
    const body = validateBody(CreateRunBody, ctx.request.body);
    const created = await manager.create(ctx.state.user, body);
    const run = (await manager.waitForTerminal(created.id)) ?? created;
    ctx.body = { run_id: run.id, status: run.status, result: run.result, error: run.error, usage: run.usage };
  });

  return { router, operations: runOperations };
}

const runOperations: OperationSpec[] = [
  {
    method: "post",
    path: "/api/runs",
    summary: "Start a run",
    tags: ["runs"],
    auth: true,
    requestBody: CreateRunBody,
    responses: { 201: { description: "Queued", schema: CreateRunResponse }, ...errorResponses(400, 401, 403, 404, 413, 503) },
  },
  {
    method: "get",
    path: "/api/runs",
    summary: "List runs (own; admins all), newest first, cursor-paginated",
    tags: ["runs"],
    auth: true,
    query: ListQuery,
    responses: { 200: { description: "A page of runs", schema: RunListResponse }, ...errorResponses(400, 401) },
  },
  {
    method: "get",
    path: "/api/runs/:id",
    summary: "Get a run: state, timestamps, result, usage",
    tags: ["runs"],
    auth: true,
    responses: { 200: { description: "The run", schema: RunView }, ...errorResponses(401, 404) },
  },
  {
    method: "post",
    path: "/api/runs/:id/cancel",
    summary: "Cancel a run (idempotent)",
    tags: ["runs"],
    auth: true,
    responses: { 202: { description: "Cancellation requested", schema: CreateRunResponse }, ...errorResponses(401, 404) },
  },
  {
    method: "delete",
    path: "/api/runs/:id",
    summary: "Cancel if needed, then delete the run and its events",
    tags: ["runs"],
    auth: true,
    responses: { 204: { description: "Deleted" }, ...errorResponses(401, 404) },
  },
  {
    method: "get",
    path: "/api/runs/:id/events",
    summary: "The run's events: SSE (replay after Last-Event-ID or ?after=, then live), or a JSON page with Accept: application/json",
    tags: ["runs"],
    auth: true,
    sse: true,
    query: EventsQuery,
    responses: { 200: { description: "Events", schema: EventPageResponse }, ...errorResponses(400, 401, 404) },
  },
  {
    method: "get",
    path: "/api/runs/:id/permissions",
    summary: "The run's open permission requests (waiting for an answer), oldest first",
    tags: ["runs"],
    auth: true,
    responses: { 200: { description: "Open requests", schema: PendingPermissionList }, ...errorResponses(401, 404) },
  },
  {
    method: "post",
    path: "/api/runs/:id/permissions/:request_id",
    summary: "Answer a permission request with one of its option ids (the run's owner; admins too)",
    description: "409 `permission_already_decided` when the request was decided already (by a person, the policy or its deadline) or the run has ended; 400 `unknown_option` for an option the request did not offer.",
    tags: ["runs"],
    auth: true,
    requestBody: AnswerPermissionBody,
    responses: { 200: { description: "The decision, as recorded in the `permission.decision` event", schema: PermissionDecisionView }, ...errorResponses(400, 401, 404, 409, 413, 415) },
  },
  {
    method: "post",
    path: "/api/chat",
    summary: "Start a run, wait for it to end, return its final text",
    tags: ["runs"],
    auth: true,
    requestBody: CreateRunBody,
    responses: { 200: { description: "The finished run", schema: ChatResponse }, ...errorResponses(400, 401, 403, 404, 413, 503) },
  },
];
