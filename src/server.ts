/**
 * The server: the engine (`src/engine.ts`: store, bus, agent registry, run
 * manager, containers, webhooks) plus auth, the Koa app and the port proxy
 * on one HTTP listener, and the ordered, idempotent shutdown. `src/main.ts`
 * (the command line) calls {@link startServer}.
 */
import http from "node:http";
import type { AddressInfo } from "node:net";
import type { AgentAdapter } from "./agent/types.ts";
import { createApp, createAppDeps } from "./api/app.ts";
import { createProxyRoutes } from "./api/routes/proxy.ts";
import { createContainerAddressLookup } from "./proxy/container-target.ts";
import { createRunRoutes } from "./api/routes/runs.ts";
import { createArtifactRoutes } from "./api/routes/artifacts.ts";
import { createWebhookRoutes } from "./api/routes/webhooks.ts";
import { createMcpRoutes } from "./mcp/http-route.ts";
import { createAguiRoutes } from "./api/routes/agui.ts";
import { createBatchRoutes } from "./api/routes/batches.ts";
import { createConfigRoutes } from "./api/routes/config.ts";
import { createToolRoutes } from "./api/routes/tools.ts";
import { createSessionRoutes } from "./api/routes/sessions.ts";
import { LiveConfig } from "./config/live.ts";
import type { ConfigSource } from "./config/load.ts";
import { loadOrCreateJwtSecret } from "./auth/secret.ts";
import { ensureFirstAdmin } from "./auth/bootstrap.ts";
import type { Bus, BusEvents } from "./bus/bus.ts";
import type { Config } from "./config/schema.ts";
import { createContainerRoutes } from "./api/routes/containers.ts";
import { createDesktopRoutes } from "./api/routes/desktop.ts";
import { createWorkerRoutes } from "./api/routes/workers.ts";
import { ConfigError } from "./errors.ts";
import { createEngine, VERSION } from "./engine.ts";
import type { Log } from "./log.ts";
import type { RunManager } from "./run/manager.ts";

export { VERSION };

/** A started server. `close()` is ordered and returns the same promise when called again. */
export interface ServerHandle {
  url: string;
  port: number;
  manager: RunManager;
  /** The server's bus (tunnel and proxy actors publish their state here). */
  bus: Bus;
  close(): Promise<void>;
}

export interface StartServerOptions {
  config: Config;
  /** The process environment (only the composition root reads process.env). */
  env: Record<string, string | undefined>;
  log: Log;
  /** Prints a line for the operator (the listening URL, the first admin's password once). */
  print: (line: string) => void;
  /** Extra adapters (the real agent CLIs register here). */
  adapters?: AgentAdapter[];
  /** Working directory for relative paths; default process.cwd(). */
  cwd?: string;
  /** Where `config`'s values came from and the file it was read from (`loadConfigWithSources`), for `GET`/`PATCH /api/config`; default: all defaults, no file. */
  configSources?: { sources: Map<string, ConfigSource>; file: string | undefined };
}

/** Parses `host:port` (IPv6 hosts in brackets). */
export function parseAddr(addr: string): { host: string; port: number } {
  const i = addr.lastIndexOf(":");
  const host = addr.slice(0, i).replace(/^\[(.*)\]$/, "$1");
  return { host, port: Number(addr.slice(i + 1)) };
}

/**
 * Starts the engine ({@link createEngine}: store, recovery of runs a crash
 * left live, containers), creates the first admin if there is none, and
 * listens on `config.addr`.
 * @throws what {@link createEngine} throws; the listen error when the address is in use
 */
export async function startServer(opts: StartServerOptions): Promise<ServerHandle> {
  const { config, log, print } = opts;
  // API servers of one cluster accept each other's tokens: the secret must be the same everywhere, so it is given, never generated.
  if (config.database_url && !config.jwt_secret) throw new ConfigError("OPENRUNNER_JWT_SECRET", "a secret of 32 or more characters, the same on every API server (distributed mode: database_url is set)", "");
  const engine = await createEngine({ config, env: opts.env, log, ...(opts.adapters ? { adapters: opts.adapters } : {}), ...(opts.cwd ? { cwd: opts.cwd } : {}) });
  const { store, bus, registry, manager, projects, pool, dockerClient, instance, paths } = engine;

  try {
    await ensureFirstAdmin({ store, ...(config.admin_password ? { password: config.admin_password } : {}), print });
  } catch (err) {
    await engine.close();
    throw err;
  }

  const deps = createAppDeps({
    config,
    store,
    bus,
    log,
    dataDir: paths.data_dir,
    version: VERSION,
    metricsRegistry: engine.metricsRegistry,
    listAgentHealth: () => registry.health(),
    beforeUserDelete: async (userId) => {
      await manager.cancelUserRuns(userId, "admin");
      // Their project containers go too (engine down: the idle sweep removes them later).
      await projects.removeAllOf(userId).catch((err: unknown) => log.warn("could not remove a deleted user's project containers", { user_id: userId, err: String(err) }));
    },
  });
  // Proxy paths are dispatched before Koa, so proxied bodies stream untouched (no body parser).
  const containerAddress = createContainerAddressLookup({ client: dockerClient, liveContainerId: (id) => manager.liveContainerId(id), ...(config.docker.network ? { network: config.docker.network } : {}) });
  const proxy = createProxyRoutes(deps, { runs: manager, containerAddress, previewSecret: loadOrCreateJwtSecret(paths.data_dir, config.jwt_secret), publish: (topic, payload) => bus.publish(topic, payload as BusEvents[typeof topic]) });
  const containerRoutes = createContainerRoutes(deps, { client: dockerClient, instance, projects, ...(pool ? { pool } : {}), docker: config.docker, agents: config.agents });
  const live = new LiveConfig({ config, sources: opts.configSources?.sources ?? new Map(), file: opts.configSources?.file });
  const configRoutes = createConfigRoutes(deps, { live, onChanged: () => manager.reconfigure() });
  const app = createApp(deps, [createRunRoutes(deps, manager), createBatchRoutes(deps, manager), createArtifactRoutes(deps, manager), containerRoutes, proxy, createDesktopRoutes(deps, { runs: manager, client: dockerClient, launcherRoot: projects.launcherRoot, previewSecret: loadOrCreateJwtSecret(paths.data_dir, config.jwt_secret), ...(config.docker.network ? { network: config.docker.network } : {}) }), createWebhookRoutes(deps), configRoutes, createToolRoutes(deps), createSessionRoutes(deps, { homesRoot: `${paths.data_dir}/homes` }), createMcpRoutes(deps, manager), createAguiRoutes(deps, manager), createWorkerRoutes(deps, engine.cluster)]);
  const koa = app.callback();
  const server = http.createServer((req, res) => {
    engine.telemetry?.traceRequest(req, res); // POST /api/runs: a server span, parent of the run's (src/telemetry/)
    if (!proxy.handleRequest(req, res)) void koa(req, res);
  });
  server.on("upgrade", (req, socket, head) => {
    if (!proxy.handleUpgrade(req, socket, head)) socket.destroy();
  });
  server.keepAliveTimeout = 65_000;
  const { host, port } = parseAddr(config.addr);
  try {
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(port, host, () => {
        server.off("error", reject);
        resolve();
      });
    });
  } catch (err) {
    await engine.close(); // the address is in use: release the data folder for the next attempt
    throw err;
  }
  const actualPort = (server.address() as AddressInfo).port;
  const url = `http://${host.includes(":") ? `[${host}]` : host}:${actualPort}`;
  print(`OpenRunner ${VERSION} listening on ${url}`);
  log.info("listening", { url, data_dir: paths.data_dir });

  let closing: Promise<void> | null = null;
  const close = () =>
    (closing ??= (async () => {
      log.info("shutting down");
      await engine.stopRuns(); // stop admitting, end runs and their containers, flush events, end SSE streams, webhooks, pool
      proxy.close();
      await new Promise<void>((resolve) => {
        const force = setTimeout(() => server.closeAllConnections(), config.shutdown_grace_ms).unref();
        server.close(() => {
          clearTimeout(force);
          resolve();
        });
        server.closeIdleConnections();
      });
      await engine.close(); // the store and the data folder's lock
      log.info("stopped");
    })());
  return { url, port: actualPort, manager, bus, close };
}
