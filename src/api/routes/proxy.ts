/**
 * The port proxy's routes (docs/architecture.md#port-proxy, issue 6 part 1):
 * - `ALL /proxy/:port/*` to `127.0.0.1:<port>` for ports in `proxy.allowed_ports`;
 * - `ALL /api/runs/:id/proxy/:port/*` for a host run (same allowlist), or any
 *   port of a docker run's container at its address on `docker.network`
 *   (409 `proxy_unavailable` with network none or no running container);
 * - `POST /api/runs/:id/preview-links {port, ttl_secs?}` -> `{url, path, expires_at}`.
 *
 * Proxy requests should reach {@link ProxyRouteModule.handleRequest} before
 * Koa (server.ts), so bodies stream past the JSON body parser; the Koa routes
 * here are the fallback (they serve methods without a body). WebSocket
 * upgrades go to {@link ProxyRouteModule.handleUpgrade} from the server's
 * `upgrade` event.
 */
import type http from "node:http";
import type { Duplex } from "node:stream";
import { Router } from "@koa/router";
import { PreviewLinkBody, PreviewLinkResponse } from "../../protocol/api.ts";
import { normalizeAllowedPorts } from "../../config/proxy-schema.ts";
import { UnauthorizedError, ValidationError } from "../../errors.ts";
import type { ProxyPublish } from "../../proxy/events.ts";
import { isApiKey } from "../../auth/api-keys.ts";
import { createAuthCache, jwtExpiryMs, type AuthCache } from "../../proxy/auth-cache.ts";
import { createForwarder } from "../../proxy/forwarder.ts";
import { createProxyGateway, ProxyUnavailableError, type ProxyRunView } from "../../proxy/gateway.ts";
import { createPreviewTokens } from "../../proxy/preview.ts";
import { PortNotAllowedError, PREVIEW_COOKIE, readQueryParam } from "../../proxy/target.ts";
import type { AppContext, AppDeps, AppState, AuthUser, RouteModule } from "../context.ts";
import { errorResponses, type HttpMethod, type OperationSpec } from "../openapi.ts";
import { validateBody } from "../validate.ts";

/** The proxy settings the routes need (the config's `proxy` section). */
export interface ProxyRouteSettings {
  /** `"5173,8000-8100"` or an array of ports. */
  allowed_ports: string | readonly number[];
  timeout_ms: number;
  preview_ttl_secs?: number;
  max_idle_sockets?: number;
}

/** Options of {@link createProxyRoutes}. */
export interface ProxyRouteOptions {
  /** Run lookup with the API's visibility rule (resolves the run; rejects NotFoundError): `manager` (a RunManager) fits. */
  runs: { get(caller: AuthUser, runId: string): Promise<ProxyRunView> };
  /** Default: `deps.config.proxy` (once merged into the config). */
  settings?: ProxyRouteSettings;
  /** Preview links are signed with a key derived from this (e.g. the JWT secret); absent: a random key per process. */
  previewSecret?: string;
  /** Default: `deps.bus.publish` once the bus lists the proxy topics; else events are dropped. */
  publish?: ProxyPublish;
  /**
   * A verified Bearer / `access_token` credential is trusted this long, ms
   * (`src/proxy/auth-cache.ts`); 0 re-checks every request. Default 5000: revoking
   * an API key or deleting a user takes effect on the proxy within this time.
   */
  authCacheMs?: number;
  /** A docker run's container address (`src/proxy/container-target.ts`); absent: docker runs answer 409 `proxy_unavailable`. */
  containerAddress?: (run: ProxyRunView) => Promise<string>;
}

/** The route module plus the entry points server.ts attaches. */
export interface ProxyRouteModule extends RouteModule {
  /** Call first in the HTTP server's request handler: true when it took the request. */
  handleRequest(req: http.IncomingMessage, res: http.ServerResponse): boolean;
  /** Attach to the HTTP server's `upgrade` event: true when it took the socket. */
  handleUpgrade(req: http.IncomingMessage, socket: Duplex, head: Buffer): boolean;
  /** Closes the upstream connection pool. Idempotent. */
  close(): void;
}

/** The preview-link schemas live in the contract layer (the typed client uses them); re-exported for existing importers. */
export { PreviewLinkBody, PreviewLinkResponse };

/**
 * Builds the proxy routes and the proxy actor behind them.
 * @throws ConfigError for a malformed `allowed_ports`; TypeError for other bad options.
 * @example
 * const proxy = createProxyRoutes(deps, { runs: manager, previewSecret: jwtSecret });
 * const app = createApp(deps, [createRunRoutes(deps, manager), proxy]);
 * const koa = app.callback();
 * const server = http.createServer((req, res) => proxy.handleRequest(req, res) || void koa(req, res));
 * server.on("upgrade", (req, socket, head) => proxy.handleUpgrade(req, socket, head) || socket.destroy());
 */
export function createProxyRoutes(deps: AppDeps, opts: ProxyRouteOptions): ProxyRouteModule {
  const settings = opts.settings ?? (deps.config as { proxy?: ProxyRouteSettings }).proxy;
  if (!settings) throw new TypeError("createProxyRoutes: settings (the config's proxy section) are required");
  if (!opts.runs) throw new TypeError("createProxyRoutes: runs is required");
  const allowedPorts = normalizeAllowedPorts(settings.allowed_ports);
  const allowed = new Set(allowedPorts);
  const defaultTtl = settings.preview_ttl_secs ?? 3600;
  const publish: ProxyPublish = opts.publish ?? ((topic, payload) => (deps.bus.publish as (t: string, p: unknown) => void)(topic, payload));
  const forwarder = createForwarder({ timeoutMs: settings.timeout_ms, maxIdleSockets: settings.max_idle_sockets ?? 256, log: deps.log, publish });
  const authCache = createAuthCache({ ttlMs: opts.authCacheMs ?? 5000 });
  const previews = createPreviewTokens(opts.previewSecret === undefined ? {} : { secret: opts.previewSecret });

  const gateway = createProxyGateway({
    allowedPorts,
    forwarder,
    previews,
    publish,
    log: deps.log,
    getRun: (caller, runId) => opts.runs.get(caller, runId),
    ...(opts.containerAddress ? { containerAddress: opts.containerAddress } : {}),
    findUser: async (id) => {
      const u = await deps.store.users.getById(id);
      return u ? { id: u.id, username: u.username, role: u.role } : undefined;
    },
    authenticate: (req, query) => authenticateCached(deps, authCache, req, query),
  });

  const router = new Router<AppState>();

  router.post("/api/runs/:id/preview-links", deps.auth, async (ctx) => {
    const body = validateBody(PreviewLinkBody, ctx.request.body);
    const run = await opts.runs.get(ctx.state.user, ctx.params.id!);
    if (run.metadata.isolation === "docker") {
      // Any port of the run's own container; it must be reachable now.
      if (!opts.containerAddress) throw new ProxyUnavailableError("docker is not available on this server, so a container's ports cannot be proxied");
      await opts.containerAddress(run);
    } else if (!allowed.has(body.port)) throw new PortNotAllowedError(body.port);
    const exp = Math.floor(Date.now() / 1000) + (body.ttl_secs ?? defaultTtl);
    const token = previews.issue({ runId: run.id, port: body.port, userId: ctx.state.user.id, exp });
    const path = `/api/runs/${run.id}/proxy/${body.port}/?${PREVIEW_COOKIE}=${token}`;
    ctx.status = 201;
    ctx.set("Cache-Control", "no-store");
    ctx.body = { url: `${ctx.protocol}://${ctx.host}${path}`, path, expires_at: new Date(exp * 1000).toISOString() };
  });

  // Fallback when server.ts does not dispatch proxy paths first: serves what Koa's body parser lets through.
  const delegate = async (ctx: AppContext) => {
    ctx.respond = false;
    if (!(await gateway.serve(ctx.req, ctx.res))) throw new ValidationError("not a proxy path", undefined, "invalid_proxy_path");
  };
  router.all("/proxy/:port{/*rest}", delegate);
  router.all("/api/runs/:id/proxy/:port{/*rest}", delegate);

  return {
    router,
    operations: proxyOperations,
    handleRequest: (req, res) => gateway.handleRequest(req, res),
    handleUpgrade: (req, socket, head) => gateway.handleUpgrade(req, socket, head),
    close: () => forwarder.close(),
  };
}

const BEARER = /^Bearer[ ]+([^\s]+)[ ]*$/i;

/**
 * Authenticates a bare request (the proxy is served outside Koa): a token
 * verified less than the cache's TTL ago answers from `cache`; otherwise the
 * app's `authWithQueryToken` middleware decides (same rules and errors as the
 * API), and a success is cached.
 */
async function authenticateCached(deps: AppDeps, cache: AuthCache, req: http.IncomingMessage, query: string): Promise<AuthUser> {
  const header = req.headers.authorization;
  const token = header ? BEARER.exec(header)?.[1] : readQueryParam(query, "access_token") || undefined;
  if (token !== undefined) {
    const hit = cache.get(token, req.socket);
    if (hit) return hit;
  }
  const user = await authenticateWith(deps, req, query);
  if (token !== undefined) cache.set(token, user, isApiKey(token) ? undefined : jwtExpiryMs(token), req.socket);
  return user;
}

/** Runs the app's `authWithQueryToken` middleware against a bare request. */
async function authenticateWith(deps: AppDeps, req: http.IncomingMessage, query: string): Promise<AuthUser> {
  const accessToken = readQueryParam(query, "access_token");
  const ctx = {
    get: (name: string) => {
      const v = req.headers[name.toLowerCase()];
      return Array.isArray(v) ? (v[0] ?? "") : (v ?? "");
    },
    query: accessToken === undefined ? {} : { access_token: accessToken },
    state: {} as { user?: AuthUser },
  };
  await deps.authWithQueryToken(ctx as never, async () => {});
  if (!ctx.state.user) throw new UnauthorizedError({ cause: new Error("auth middleware set no user") });
  return ctx.state.user;
}

const PROXY_METHODS: HttpMethod[] = ["get", "post", "put", "patch", "delete"];

const proxyOperations: OperationSpec[] = [
  {
    method: "post",
    path: "/api/runs/:id/preview-links",
    summary: "Create a preview link: an expiring URL that opens a run's proxied port in a browser",
    description:
      "The link's token is scoped to this run, this port and the caller, and expires after `ttl_secs` (default `proxy.preview_ttl_secs`). Opening it sets an HttpOnly SameSite=Lax cookie for the proxy path and redirects to the clean URL.",
    tags: ["proxy"],
    auth: true,
    requestBody: PreviewLinkBody,
    responses: { 201: { description: "The link", schema: PreviewLinkResponse }, ...errorResponses(400, 401, 403, 404, 409) },
  },
  ...PROXY_METHODS.flatMap((method): OperationSpec[] => [
    {
      method,
      path: "/proxy/:port/:path",
      operationId: `${method}_proxy_port`,
      summary: "Forward to 127.0.0.1:<port> (ports in proxy.allowed_ports); any method, any path depth, WebSocket upgrades too",
      description:
        "The `/proxy/:port` prefix is stripped; `Location` and cookie paths are rewritten under it. Bearer or `?access_token=` (removed before forwarding). 502 `upstream_unavailable`, 504 `upstream_timeout`.",
      tags: ["proxy"],
      auth: true,
      responses: { 200: { description: "The target's response, streamed" }, 502: { description: "Target unreachable (`upstream_unavailable`)" }, 504: { description: "Target too slow (`upstream_timeout`)" }, ...errorResponses(400, 401, 403) },
    },
    {
      method,
      path: "/api/runs/:id/proxy/:port/:path",
      operationId: `${method}_run_proxy_port`,
      summary: "Forward to a port of a run (host runs: 127.0.0.1, within proxy.allowed_ports; docker runs: any port of the run's container); any method, any path depth, WebSocket upgrades too",
      description: "Also accepts the preview-link cookie. Another user's run is 404; a docker run whose container is not running or has no network (docker.network none) is 409 `proxy_unavailable`.",
      tags: ["proxy"],
      auth: true,
      responses: { 200: { description: "The target's response, streamed" }, 502: { description: "Target unreachable (`upstream_unavailable`)" }, 504: { description: "Target too slow (`upstream_timeout`)" }, ...errorResponses(400, 401, 403, 404, 409) },
    },
  ]),
];
