/**
 * Batches of runs (docs/architecture.md#http-api): `POST /api/runs/batch` (up to
 * `batch_max_runs` runs, all admitted or none), `GET /api/batches/:id` (counts
 * by status and the run ids), `POST /api/batches/:id/cancel` (every unfinished
 * run of the batch) and `GET /api/batches/:id/events` (the batch's stream of
 * run status changes: SSE with `Last-Event-ID` / `?after=` replay, ending
 * after `batch.done`; `Accept: application/json` gives a page of stored
 * events). A batch is its creator's: another user gets 404; admins see all.
 */
import { Router } from "@koa/router";
import { Type } from "@sinclair/typebox";
import { AppError, BatchItemError, NotFoundError, ValidationError } from "../../errors.ts";
import { BATCH_DONE, BatchEventPageResponse, BatchEventSchema, BatchView, CreateBatchBody, CreateBatchEnvelope, CreateBatchResponse, type BatchView as BatchViewT } from "../../protocol/batches.ts";
import { TERMINAL_STATUSES } from "../../protocol/events.ts";
import { CreateRunBody } from "../../protocol/requests.ts";
import { allTerminal, countByStatus } from "../../run/batch-feed.ts";
import type { RunManager } from "../../run/manager.ts";
import type { Caller } from "../../run/plan.ts";
import type { BatchRow, Store } from "../../store/types.ts";
import { streamBatchEvents } from "../batch-sse.ts";
import type { AppDeps, AppState, RouteModule } from "../context.ts";
import { errorResponses, type OperationSpec } from "../openapi.ts";
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

/** Resolves the batch if the caller may see it (its creator; admins: any). @throws NotFoundError */
async function visibleBatch(store: Store, caller: Caller, id: string): Promise<BatchRow> {
  const b = await store.batches.get(id);
  if (!b || (caller.role !== "admin" && b.user_id !== caller.id)) throw new NotFoundError("batch");
  return b;
}

/** Resolves the batch's view: counts by status (every status), run ids in request order, whether all are terminal. */
export async function viewBatch(store: Store, b: BatchRow): Promise<BatchViewT> {
  const runs = await store.batches.runs(b.id);
  return { batch_id: b.id, user_id: b.user_id, created_at: b.created_at, total: runs.length, counts: countByStatus(runs), run_ids: runs.map((r) => r.id), done: allTerminal(runs) };
}

/** Builds the batch route module. */
export function createBatchRoutes(deps: AppDeps, manager: RunManager): RouteModule {
  const router = new Router<AppState>();
  const auth = deps.auth;

  router.post("/api/runs/batch", auth, async (ctx) => {
    const { runs } = validateBody(CreateBatchEnvelope, ctx.request.body);
    const max = deps.config.batch_max_runs;
    if (runs.length > max) throw new ValidationError(`a batch holds at most ${max} runs (batch_max_runs), got ${runs.length}`, { max, count: runs.length }, "batch_too_large");
    const bodies = runs.map((item, i) => {
      try {
        return validateBody(CreateRunBody, item);
      } catch (err) {
        throw err instanceof AppError ? new BatchItemError(i, err) : err;
      }
    });
    const { batch, runs: rows } = await manager.createBatch(ctx.state.user, bodies);
    ctx.status = 201;
    ctx.set("Location", `/api/batches/${batch.id}`);
    ctx.body = { batch_id: batch.id, runs: rows.map((r) => ({ run_id: r.id, status: r.status })) };
  });

  router.get("/api/batches/:id", auth, async (ctx) => {
    ctx.body = await viewBatch(deps.store, await visibleBatch(deps.store, ctx.state.user, ctx.params.id!));
  });

  router.post("/api/batches/:id/cancel", auth, async (ctx) => {
    const b = await visibleBatch(deps.store, ctx.state.user, ctx.params.id!);
    for (const r of await deps.store.batches.runs(b.id)) {
      if (!TERMINAL_STATUSES.includes(r.status)) await manager.cancel(ctx.state.user, r.id, "batch cancelled");
    }
    ctx.status = 202;
    ctx.body = await viewBatch(deps.store, b);
  });

  router.get("/api/batches/:id/events", deps.authWithQueryToken, async (ctx) => {
    const q = validateQuery(EventsQuery, ctx.query);
    const b = await visibleBatch(deps.store, ctx.state.user, ctx.params.id!);
    const feed = manager.batches;
    const after = Math.min(readLastEventId(ctx, q.after), await feed.lastId(b.id)); // as for runs: an id beyond the last would skip events to come
    if (ctx.accepts("text/event-stream", "application/json") === "application/json") {
      const limit = q.limit === undefined ? 1000 : Number(q.limit);
      if (limit < 1 || limit > 10000) throw new ValidationError("limit must be from 1 to 10000", { value: q.limit });
      const events = await feed.readStored(b.id, after, limit);
      const last = events[events.length - 1];
      ctx.body = { events, next_after: last?.id ?? after, done: last?.type === BATCH_DONE || (events.length === 0 && (await feed.isDone(b.id))) };
      return;
    }
    ctx.respond = false;
    await streamBatchEvents(ctx.req, ctx.res, feed, b.id, after, { heartbeatMs: deps.config.sse_heartbeat_ms });
  });

  return { router, operations: batchOperations };
}

const batchOperations: OperationSpec[] = [
  {
    method: "post",
    path: "/api/runs/batch",
    summary: "Start up to batch_max_runs runs at once: all are admitted or none",
    description:
      "Every item is validated like `POST /api/runs` (schema and admission: agent, placement, limits; the caller's queue cap counts the whole batch). The first failing item answers its own status and code with `details.index` naming it; 400 `batch_too_large` past `batch_max_runs`.",
    tags: ["batches"],
    auth: true,
    requestBody: CreateBatchBody,
    responses: { 201: { description: "Queued", schema: CreateBatchResponse }, ...errorResponses(400, 401, 403, 404, 409, 413, 429, 503) },
  },
  {
    method: "get",
    path: "/api/batches/:id",
    summary: "A batch: counts by status and its run ids",
    tags: ["batches"],
    auth: true,
    responses: { 200: { description: "The batch", schema: BatchView }, ...errorResponses(401, 404) },
  },
  {
    method: "post",
    path: "/api/batches/:id/cancel",
    summary: "Cancel every unfinished run of the batch (idempotent)",
    tags: ["batches"],
    auth: true,
    responses: { 202: { description: "Cancellation requested; the batch as it is now", schema: BatchView }, ...errorResponses(401, 404) },
  },
  {
    method: "get",
    path: "/api/batches/:id/events",
    summary: "The batch's run status changes: SSE (replay after Last-Event-ID or ?after=, then live, ending after batch.done), or a JSON page with Accept: application/json",
    tags: ["batches"],
    auth: true,
    sse: true,
    sseEvent: { schema: BatchEventSchema, name: "batch event" },
    query: EventsQuery,
    responses: { 200: { description: "Batch events (`run.status`, then `batch.done`)", schema: BatchEventPageResponse }, ...errorResponses(400, 401, 404) },
  },
];
