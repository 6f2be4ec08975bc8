/**
 * Liveness and agent availability (docs/architecture.md#http-api), both unauthenticated:
 * `GET /health` -> `{status: "ok", version, uptime_s}`;
 * `GET /health/agents` -> `{agents: [{agent, available, version?, path?, reason?, tested_version?, tested?}]}`
 * (`tested`: the installed version is the one in `scripts/agents.lock.json`); after the
 * `acp` entry, one `acp:<name>` entry per configured ACP agent with `acp_agent`, and the version,
 * `capabilities` and `protocol_version` it reported at `initialize` (cached).
 */
import { Router } from "@koa/router";
import { AgentHealthResponse, HealthResponse } from "../../protocol/api.ts";
import type { AppDeps, AppState, RouteModule } from "../context.ts";

/** Builds the health routes from `deps.version`, `deps.startedAt` and `deps.listAgentHealth`. */
export function createHealthRoutes(deps: Pick<AppDeps, "version" | "startedAt" | "listAgentHealth">): RouteModule {
  const router = new Router<AppState>();
  router.get("/health", (ctx) => {
    ctx.body = { status: "ok", version: deps.version, uptime_s: Math.max(0, Math.floor((Date.now() - deps.startedAt) / 1000)) };
  });
  router.get("/health/agents", async (ctx) => {
    ctx.body = { agents: await deps.listAgentHealth() };
  });
  return {
    router,
    operations: [
      {
        method: "get",
        path: "/health",
        summary: "Liveness: status, version and uptime",
        tags: ["system"],
        auth: false,
        responses: { 200: { description: "The server is up", schema: HealthResponse } },
      },
      {
        method: "get",
        path: "/health/agents",
        summary: "Which agents can run on this server",
        tags: ["system"],
        auth: false,
        responses: { 200: { description: "Per-agent availability", schema: AgentHealthResponse } },
      },
    ],
  };
}
