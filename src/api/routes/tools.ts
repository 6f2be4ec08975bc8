/**
 * `GET /api/tools` (docs/architecture.md#http-api): the tools of the native
 * `openrunner` agent with their input JSON schemas, from the agent's own
 * registry (`src/agent/native/tools/index.ts`), in the order the model is
 * offered them. Any authenticated caller.
 */
import { Router } from "@koa/router";
import { nativeToolSchemas } from "../../agent/native/tools/index.ts";
import { ToolListResponse } from "../../protocol/config-api.ts";
import type { AppDeps, AppState, RouteModule } from "../context.ts";
import { errorResponses, type OperationSpec } from "../openapi.ts";

/** Builds the tools route module. */
export function createToolRoutes(deps: AppDeps): RouteModule {
  const router = new Router<AppState>();
  const body = { tools: nativeToolSchemas() };
  router.get("/api/tools", deps.auth, (ctx) => {
    ctx.body = body;
  });
  return { router, operations: toolOperations };
}

const toolOperations: OperationSpec[] = [
  {
    method: "get",
    path: "/api/tools",
    summary: "The native openrunner agent's tools with their input schemas",
    tags: ["agents"],
    auth: true,
    responses: { 200: { description: "The tools, in the order the model is offered them", schema: ToolListResponse }, ...errorResponses(401) },
  },
];
