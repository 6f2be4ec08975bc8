/**
 * The Koa application: the middleware order, the built-in route modules
 * (health, metrics, auth, users, API keys), the caller's modules (runs,
 * events, chat) and the OpenAPI document built from all of them.
 *
 * Order: request context (id, access log, latency) -> error mapping -> JSON
 * body parsing -> built-in routes -> `modules` -> docs -> the dashboard
 * (`web/dist`, paths outside the API's prefixes) -> 404 `not_found`.
 */
import Koa from "koa";
import type { Registry } from "prom-client";
import type { AgentHealth } from "../agent/types.ts";
import { createJwtService } from "../auth/jwt.ts";
import { createAuthMiddleware } from "../auth/middleware.ts";
import { createLoginLimiter } from "../auth/rate-limit.ts";
import { loadOrCreateJwtSecret } from "../auth/secret.ts";
import type { Bus } from "../bus/bus.ts";
import type { Config } from "../config/schema.ts";
import type { Log } from "../log.ts";
import type { Store } from "../store/types.ts";
import { createBodyMiddleware } from "./body.ts";
import type { AppDeps, AppMiddleware, AppState, RouteModule } from "./context.ts";
import { createErrorMiddleware } from "./error-middleware.ts";
import { createMetrics, createMetricsRoutes } from "./metrics.ts";
import { createRequestContextMiddleware } from "./request-context.ts";
import { createApiKeyRoutes } from "./routes/api-keys.ts";
import { createAuthRoutes } from "./routes/auth.ts";
import { createDocsRoutes } from "./routes/docs.ts";
import { createHealthRoutes } from "./routes/health.ts";
import { createUserRoutes } from "./routes/users.ts";
import { createWebMiddleware } from "./routes/web.ts";
import { compileSchema } from "./validate.ts";

/** Input of {@link createAppDeps}. */
export interface CreateAppDepsOptions {
  config: Config;
  store: Store;
  bus: Bus;
  log: Log;
  /** Resolved data folder; holds the generated `jwt-secret` when `config.jwt_secret` is unset. */
  dataDir: string;
  version: string;
  listAgentHealth: () => Promise<AgentHealth[]>;
  beforeUserDelete?: (userId: string) => Promise<void>;
  /** Epoch ms; default now. */
  startedAt?: number;
  /** The Prometheus registry `/metrics` exposes (the engine's); a new one when absent. */
  metricsRegistry?: Registry;
}

/**
 * Builds {@link AppDeps}: loads or creates the JWT secret, and creates the JWT
 * service, the login limiter, the metrics registry (subscribed to `bus`) and
 * the auth middleware (`deps.auth`).
 * @throws ConfigError for an unusable JWT secret or limiter setting; fs errors
 *   when the secret file cannot be created or read.
 * @example
 * const deps = createAppDeps({ config, store, bus, log, dataDir, version, listAgentHealth: () => registry.health() });
 * const app = createApp(deps, [createRunRoutes(deps, manager)]);
 */
export function createAppDeps(opts: CreateAppDepsOptions): AppDeps {
  const { config, store, bus, log } = opts;
  const jwt = createJwtService({ secret: loadOrCreateJwtSecret(opts.dataDir, config.jwt_secret), expiresInSecs: config.jwt_expires_in_secs });
  return {
    config,
    store,
    bus,
    log,
    jwt,
    limiter: createLoginLimiter({ maxAttempts: config.login_max_attempts, windowSecs: config.login_window_secs }),
    metrics: createMetrics(bus, opts.metricsRegistry),
    auth: createAuthMiddleware({ jwt, store, log }) as AppMiddleware,
    authWithQueryToken: createAuthMiddleware({ jwt, store, log, allowQueryToken: true }) as AppMiddleware,
    startedAt: opts.startedAt ?? Date.now(),
    version: opts.version,
    listAgentHealth: opts.listAgentHealth,
    ...(opts.beforeUserDelete ? { beforeUserDelete: opts.beforeUserDelete } : {}),
  };
}

const REQUIRED_DEPS = ["config", "store", "bus", "log", "jwt", "limiter", "metrics", "auth", "version", "listAgentHealth"] as const;

/**
 * Creates the Koa application. `modules` are mounted after the built-in
 * routes, in order; each guards its own routes with `deps.auth`. Every
 * operation's request body schema is compiled here, so a broken schema fails
 * at boot, and the OpenAPI document covers every module.
 * @throws TypeError when a dependency is missing; Error when a schema does not
 *   compile or two operations share a method and path.
 * @example
 * const server = http.createServer(createApp(deps, [createRunRoutes(deps, manager)]).callback());
 */
export function createApp(deps: AppDeps, modules: readonly RouteModule[] = []): Koa<AppState> {
  const missing = REQUIRED_DEPS.filter((k) => deps?.[k] === undefined || deps[k] === null);
  if (missing.length > 0) throw new TypeError(`createApp: missing dependencies: ${missing.join(", ")}`);
  const log = deps.log.getSubLogger({ name: "http.app" });
  const app = new Koa<AppState>();
  // Errors Koa still sees (a stream failing after the response started): log them instead of printing to stderr.
  app.on("error", (err: unknown) => log.warn("response error", { err: err instanceof Error ? err.message : String(err) }));

  app.use(createRequestContextMiddleware({ log: deps.log, metrics: deps.metrics }));
  app.use(createErrorMiddleware({ log: deps.log }));
  app.use(createBodyMiddleware({ limitBytes: deps.config.body_limit_bytes }));

  const mounted: RouteModule[] = [
    createHealthRoutes(deps),
    createMetricsRoutes(deps),
    createAuthRoutes(deps),
    createUserRoutes(deps),
    createApiKeyRoutes(deps),
    ...modules,
  ];
  for (const m of mounted) {
    for (const op of m.operations) if (op.requestBody) compileSchema(op.requestBody);
    app.use(m.router.routes());
  }
  const docs = createDocsRoutes({ version: deps.version, operations: mounted.flatMap((m) => m.operations) });
  app.use(docs.router.routes());
  app.use(createWebMiddleware()); // the dashboard at / (web/dist), after every API route
  return app;
}
