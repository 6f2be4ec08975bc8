/**
 * Types shared by the HTTP layer: the per-request state, the Koa context and
 * router types, the dependencies every route module receives, and the shape a
 * route module returns (its router plus its OpenAPI operations).
 */
import type Koa from "koa";
import type { Router } from "@koa/router";
import type { AgentHealth } from "../agent/types.ts";
import type { JwtService } from "../auth/jwt.ts";
import type { AuthUser } from "../auth/middleware.ts";
import type { LoginLimiter } from "../auth/rate-limit.ts";
import type { Bus } from "../bus/bus.ts";
import type { Config } from "../config/schema.ts";
import type { Log } from "../log.ts";
import type { Store } from "../store/types.ts";
import type { Metrics } from "./metrics.ts";
import type { OperationSpec } from "./openapi.ts";

/** The authenticated caller (defined by the auth layer, re-exported for routes). */
export type { AuthUser };

/**
 * `ctx.state` of every request. `requestId` is always set (request-context
 * middleware); `user` is set only behind the auth middleware — handlers not
 * guarded by `deps.auth` must not read it.
 */
export interface AppState {
  user: AuthUser;
  requestId: string;
}

/** The Koa context of this app. */
export type AppContext = Koa.ParameterizedContext<AppState>;
/** A Koa middleware of this app. */
export type AppMiddleware = Koa.Middleware<AppState>;
/** The router type every route module uses: `new Router<AppState>()`. */
export type AppRouter = Router<AppState>;

/**
 * Everything route modules need. Built once by the composition root (see
 * `createAppDeps` in `app.ts`, which fills `jwt`, `limiter`, `metrics` and `auth`).
 */
export interface AppDeps {
  config: Config;
  store: Store;
  bus: Bus;
  /** Root logger; modules take sub-loggers. */
  log: Log;
  jwt: JwtService;
  limiter: LoginLimiter;
  metrics: Metrics;
  /**
   * The authentication middleware (`createAuthMiddleware({jwt, store, log})`):
   * put it before a handler, e.g. `router.get("/api/runs", deps.auth, handler)`;
   * sets `ctx.state.user` or throws UnauthorizedError (401).
   */
  auth: AppMiddleware;
  /** Like `auth`, but also accepts `?access_token=` (for SSE, whose EventSource clients cannot send headers). */
  authWithQueryToken: AppMiddleware;
  /** Process start, epoch milliseconds (for `uptime_s`). */
  startedAt: number;
  /** Server version (package.json), reported by /health and the OpenAPI document. */
  version: string;
  /** Per-agent availability for `GET /health/agents` (the agent registry's detection). */
  listAgentHealth: () => Promise<AgentHealth[]>;
  /** Called before a user is deleted (cascading to their runs): ends their live runs first. */
  beforeUserDelete?: (userId: string) => Promise<void>;
}

/** One group of routes: its router and the OpenAPI description of each route in it. */
export interface RouteModule {
  router: AppRouter;
  operations: OperationSpec[];
}
