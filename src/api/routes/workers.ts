/**
 * `GET /api/workers` (admins, docs/architecture.md#scale-out): the registered workers of the
 * distributed mode, oldest first, with the agents and isolations they offer, their live runs and
 * their last heartbeat; `mode: "single"` and no workers on the embedded single-process store.
 */
import { Router } from "@koa/router";
import { requireAdmin } from "../../auth/middleware.ts";
import { WorkerListResponse } from "../../protocol/workers.ts";
import type { Cluster } from "../../store/cluster.ts";
import type { AppDeps, AppState, RouteModule } from "../context.ts";
import { errorResponses, type OperationSpec } from "../openapi.ts";

/** Builds the workers route module; `cluster` absent: the single-process mode. */
export function createWorkerRoutes(deps: AppDeps, cluster: Cluster | undefined): RouteModule {
  const router = new Router<AppState>();
  router.get("/api/workers", deps.auth, requireAdmin(), async (ctx) => {
    const body: WorkerListResponse = cluster ? { mode: "distributed", workers: await cluster.listWorkers() } : { mode: "single", workers: [] };
    ctx.body = body;
  });
  return { router, operations: workerOperations };
}

const workerOperations: OperationSpec[] = [
  {
    method: "get",
    path: "/api/workers",
    summary: "The workers of the distributed mode (admin)",
    tags: ["workers"],
    auth: true,
    responses: { 200: { description: "Registered workers, oldest first", schema: WorkerListResponse }, ...errorResponses(401, 403) },
  },
];
