/**
 * `POST /mcp`: OpenRunner as an MCP server over Streamable HTTP (MCP
 * specification 2025-06-18, "Transports"), behind the API's own
 * authentication (`Authorization: Bearer <JWT or API key>`).
 *
 * Stateless: every POST gets a new SDK `Server` and
 * `StreamableHTTPServerTransport` with `sessionIdGenerator: undefined`, bound
 * to that request's caller, and both are closed when the response ends. No
 * session id is issued and nothing is kept between requests, so the user is
 * re-read (and a revoked key refused) on every call, any number of server
 * processes could answer, and there is no session table to bound. What a
 * session would carry is not needed: a request's progress notifications
 * (`wait_run`) travel on that request's own SSE response. `GET /mcp` (a
 * standalone server-to-client stream) and `DELETE /mcp` (ending a session)
 * answer 405, which the specification allows and the SDK's client expects of
 * a stateless server.
 */
import { Router } from "@koa/router";
import { Type } from "@sinclair/typebox";
import { StreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/streamableHttp.js";
import type { AppDeps, AppState, RouteModule } from "../api/context.ts";
import { errorResponses, type OperationSpec } from "../api/openapi.ts";
import type { RunManager } from "../run/manager.ts";
import { createManagerBackend } from "./manager-backend.ts";
import { createMcpServer } from "./server.ts";

/** The path of the MCP endpoint. */
export const MCP_PATH = "/mcp";

/**
 * Builds the `/mcp` route module; mount it with the other modules (`createApp(deps, [..., createMcpRoutes(deps, manager)])`).
 * @example const app = createApp(deps, [createRunRoutes(deps, manager), createMcpRoutes(deps, manager)]);
 */
export function createMcpRoutes(deps: AppDeps, manager: RunManager): RouteModule {
  const router = new Router<AppState>();
  const log = deps.log.getSubLogger({ name: "mcp.http" });
  const backendDeps = { manager, store: deps.store, listAgentHealth: deps.listAgentHealth };

  router.post(MCP_PATH, deps.auth, async (ctx) => {
    const server = createMcpServer(createManagerBackend(backendDeps, ctx.state.user), { version: deps.version, log });
    const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined });
    transport.onerror = (err) => log.warn("MCP transport error", { err: err.message });
    ctx.respond = false;
    ctx.res.once("close", () => {
      void transport.close();
      void server.close();
    });
    await server.connect(transport);
    await transport.handleRequest(ctx.req, ctx.res, ctx.request.body);
  });

  const notAllowed = (ctx: { set(k: string, v: string): void; throw(status: number, msg: string): never }) => {
    ctx.set("Allow", "POST");
    ctx.throw(405, "this MCP endpoint is stateless: only POST is served");
  };
  router.get(MCP_PATH, deps.auth, (ctx) => notAllowed(ctx));
  router.delete(MCP_PATH, deps.auth, (ctx) => notAllowed(ctx));

  return { router, operations: mcpOperations };
}

const mcpOperations: OperationSpec[] = [
  {
    method: "post",
    path: MCP_PATH,
    summary: "MCP over Streamable HTTP (stateless): tools start_run, get_run, list_runs, wait_run, cancel_run, list_agents, answer_permission; resources openrunner://runs/{run_id}/events and …/artifacts",
    description: "A JSON-RPC 2.0 message (or batch) of the Model Context Protocol; send `Accept: application/json, text/event-stream`. Answered as JSON or as an SSE stream (requests with progress notifications).",
    tags: ["mcp"],
    auth: true,
    requestBody: Type.Unknown({ description: "a JSON-RPC 2.0 message or batch" }),
    responses: { 200: { description: "The JSON-RPC response (application/json or text/event-stream)" }, 202: { description: "A notification or response was accepted" }, ...errorResponses(401, 405, 413, 415) },
  },
];
