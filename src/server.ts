/**
 * The server's composition: store, bus, auth, agent registry, event writer,
 * run manager, the container engine client and sweeper, and the Koa app,
 * wired once, plus the ordered, idempotent shutdown. `src/main.ts` (the
 * command line) calls {@link startServer}.
 */
import { randomBytes } from "node:crypto";
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import http from "node:http";
import type { AddressInfo } from "node:net";
import path from "node:path";
import { AgentRegistry } from "./agent/registry.ts";
import { readAgentsLock, testedVersionsOf } from "./agent/tested-versions.ts";
import { resolveRunAs } from "./agent/run-as.ts";
import { createClaudeCodeAdapter } from "./agent/claude-code/adapter.ts";
import { createCodexAdapter } from "./agent/codex/adapter.ts";
import { createGeminiAdapter } from "./agent/gemini/adapter.ts";
import { createOpencodeAdapter } from "./agent/opencode/adapter.ts";
import { createShellAdapter } from "./agent/shell/adapter.ts";
import { createTaskAdapter } from "./agent/task/adapter.ts";
import { createAcpAdapter } from "./agent/acp/adapter.ts";
import type { AgentAdapter } from "./agent/types.ts";
import { createApp, createAppDeps } from "./api/app.ts";
import { createProxyRoutes } from "./api/routes/proxy.ts";
import { createContainerAddressLookup } from "./proxy/container-target.ts";
import { createRunRoutes } from "./api/routes/runs.ts";
import { createArtifactRoutes } from "./api/routes/artifacts.ts";
import { createWebhookRoutes } from "./api/routes/webhooks.ts";
import { loadOrCreateJwtSecret } from "./auth/secret.ts";
import { ensureFirstAdmin } from "./auth/bootstrap.ts";
import { Bus, type BusEvents } from "./bus/bus.ts";
import { resolvePaths } from "./config/load.ts";
import type { Config } from "./config/schema.ts";
import { createDockerClient } from "./container/client.ts";
import { LABEL } from "./container/labels.ts";
import { ContainerSweeper } from "./container/sweeper.ts";
import { WarmPool } from "./container/pool.ts";
import { ProjectContainers } from "./container/projects.ts";
import { createContainerRoutes } from "./api/routes/containers.ts";
import type { ContainerClient } from "./container/types.ts";
import { ConfigError } from "./errors.ts";
import type { Log } from "./log.ts";
import { EventWriter } from "./run/event-writer.ts";
import { RunManager } from "./run/manager.ts";
import { WebhookDispatcher } from "./webhooks/dispatcher.ts";
import { acquireDataDirLock } from "./store/data-lock.ts";
import { openSqliteStore } from "./store/sqlite.ts";

export const VERSION = "0.1.0";

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
}

/** Environment variables handed to every agent process (besides the agent's own). */
const PASSED_ENV = ["PATH", "LANG", "LC_ALL", "TZ", "TMPDIR"];

/** Parses `host:port` (IPv6 hosts in brackets). */
export function parseAddr(addr: string): { host: string; port: number } {
  const i = addr.lastIndexOf(":");
  const host = addr.slice(0, i).replace(/^\[(.*)\]$/, "$1");
  return { host, port: Number(addr.slice(i + 1)) };
}

const INSTANCE_ID = /^[A-Za-z0-9_.-]{1,64}$/;

/**
 * This server's stable instance id (the `openrunner.instance` label of its
 * containers): read from `<data_dir>/instance-id`, created there once.
 * @throws ConfigError when the file holds something that is not an id
 */
export function ensureInstanceId(dataDir: string): string {
  const file = path.join(dataDir, "instance-id");
  let id: string;
  try {
    id = readFileSync(file, "utf8").trim();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
    id = `or-${randomBytes(8).toString("hex")}`;
    writeFileSync(file, `${id}\n`, { mode: 0o600, flag: "wx" });
  }
  if (!INSTANCE_ID.test(id)) throw new ConfigError(file, "1-64 characters [A-Za-z0-9_.-] (delete the file to get a new id)", id);
  return id;
}

/** Checks the docker settings that span two values. */
function checkDockerConfig(d: Config["docker"]): void {
  for (const [v, max] of [
    ["memory_mb", "max_memory_mb"],
    ["cpus", "max_cpus"],
    ["pids_limit", "max_pids_limit"],
  ] as const) {
    if (d[v] > d[max]) throw new ConfigError(`docker.${v}`, `at most docker.${max} (${d[max]})`, d[v]);
  }
  if (d.network === "host") throw new ConfigError("docker.network", "a named network or absent (host networking is never used)", d.network);
}

/**
 * The tested agent versions for `/health/agents`; a missing or broken `scripts/agents.lock.json`
 * (an install without the scripts folder) only loses the `tested` flags, with a warning, never the boot.
 */
function loadTestedVersions(log: Log): ReadonlyMap<string, string> {
  try {
    return testedVersionsOf(readAgentsLock());
  } catch (err) {
    log.warn("agent versions lock not readable; /health/agents reports no tested flags", { err: (err as Error).message });
    return new Map();
  }
}

/**
 * Opens the store (creating the data folder), ends runs a crash left live,
 * creates the first admin if there is none, and listens on `config.addr`.
 * @throws when the data folder or database cannot be opened, or the address is in use
 */
export async function startServer(opts: StartServerOptions): Promise<ServerHandle> {
  const { config, log, print } = opts;
  const paths = resolvePaths(config, opts.cwd ?? process.cwd());
  mkdirSync(paths.data_dir, { recursive: true, mode: 0o700 });
  const lock = acquireDataDirLock(paths.data_dir); // before recovery: never "recover" a live server's runs
  process.once("exit", () => lock.release());
  const homes = path.join(paths.data_dir, "homes");
  mkdirSync(homes, { recursive: true, mode: 0o700 });
  const runAs = resolveRunAs(config.host_run_user, process.getuid?.());
  if (runAs) {
    // The run's user may pass through (not list) the data folder to its own workspace and home;
    // everything else in it (database, JWT secret, lock) stays 0600 root.
    chmodSync(paths.data_dir, 0o711);
    chmodSync(homes, 0o711);
  }
  checkDockerConfig(config.docker);
  const instance = ensureInstanceId(paths.data_dir);
  let docker: ContainerClient | undefined;
  // No engine call until used; a bad DOCKER_HOST fails the boot here.
  const dockerClient = () => (docker ??= createDockerClient({ ...(opts.env.DOCKER_HOST ? { dockerHost: opts.env.DOCKER_HOST } : {}) }));
  dockerClient();
  const store = openSqliteStore({ file: path.join(paths.data_dir, "openrunner.db") });
  const bus = new Bus((err, topic) => log.error("bus handler failed", { topic, err: String(err) }));

  const baseEnv: Record<string, string> = {};
  for (const k of PASSED_ENV) if (opts.env[k] !== undefined) baseEnv[k] = opts.env[k]!;
  const agentOpts = (name: string) => config.agents[name] ?? {};
  const registry = new AgentRegistry([
    createShellAdapter({ baseEnv }),
    createClaudeCodeAdapter(agentOpts("claude_code"), opts.env),
    createCodexAdapter(agentOpts("codex"), opts.env),
    createOpencodeAdapter(agentOpts("opencode"), opts.env),
    createGeminiAdapter(agentOpts("gemini"), opts.env),
    createTaskAdapter({ client: dockerClient, docker: config.docker }),
    createAcpAdapter(config.acp_agents, opts.env),
    ...(opts.adapters ?? []),
  ], { tested: loadTestedVersions(log) });

  let manager: RunManager | undefined;
  const writer = new EventWriter({
    store,
    project: (events) => manager?.project(events),
    onStored: (run_id, count) => bus.publish("run.events.stored", { run_id, count }),
    onError: (err) => log.error("event commit failed", { err: String(err) }),
    onDropped: (run_id, count, err) => log.error("events of a deleted run dropped", { run_id, count, err: String(err) }),
  });
  // Containers of this instance left by an earlier process are swept below (their runs are ended as interrupted by recover()).
  const sweeper = new ContainerSweeper({
    client: dockerClient(),
    instance,
    idleMs: config.docker.project_idle_secs * 1000,
    intervalMs: config.docker.sweep_interval_secs * 1000,
    log: log.getSubLogger({ name: "container.sweeper" }),
  });
  const projects = new ProjectContainers({ client: dockerClient, instance, workspacesRoot: paths.workspaces_dir, docker: config.docker, sweeper, log: log.getSubLogger({ name: "container.projects" }) });
  const pool =
    config.docker.warm_pool > 0
      ? new WarmPool({
          client: dockerClient,
          instance,
          workspacesRoot: paths.workspaces_dir,
          homesRoot: homes,
          images: [config.docker.image, ...Object.values(config.agents).flatMap((a) => (a.image ? [a.image] : []))],
          size: config.docker.warm_pool,
          limits: projects.defaultLimits,
          user: config.docker.user,
          ...(config.docker.network ? { network: config.docker.network } : {}),
          log: log.getSubLogger({ name: "container.pool" }),
        })
      : undefined;
  manager = new RunManager({
    config,
    store,
    bus,
    log,
    registry,
    writer,
    dirs: { workspaces: paths.workspaces_dir, homes },
    serverEnv: opts.env,
    docker: { client: dockerClient, instance, projects, ...(pool ? { pool } : {}) },
    ...(runAs ? { runAs } : {}),
  });
  const interrupted = manager.recover();
  if (interrupted.length > 0) log.warn("ended runs interrupted by the previous shutdown", { count: interrupted.length });

  try {
    await dockerClient().ping({ timeoutMs: 3000 });
    const swept = await sweeper.sweepOrphans({ adopt: (c) => c.labels[LABEL.kind] === "project" && c.state === "running" });
    // Running project containers are kept; processes of their runs that were in flight are killed.
    await projects.adopt(swept.adopted, interrupted.flatMap((id) => store.runs.get(id) ?? []));
    await pool?.start();
    if (swept.removed.length > 0) log.info("removed containers of an earlier process", { count: swept.removed.length, instance });
    sweeper.start();
  } catch (err) {
    if (config.docker.default_isolation === "docker") {
      store.close();
      throw err;
    }
    log.warn("docker engine unavailable: docker runs fail until it answers", { engine: dockerClient().engine, err: err instanceof Error ? err.message : String(err) });
  }

  const admin = await ensureFirstAdmin({ store, ...(config.admin_password ? { password: config.admin_password } : {}), print });
  void admin;

  const deps = createAppDeps({
    config,
    store,
    bus,
    log,
    dataDir: paths.data_dir,
    version: VERSION,
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
  // Webhooks hear committed run events on the bus and deliver off the run's path.
  const webhooks = new WebhookDispatcher({ store, bus, config: config.webhooks, log, registry: deps.metrics.registry, version: VERSION });
  webhooks.start();
  const app = createApp(deps, [createRunRoutes(deps, manager), createArtifactRoutes(deps, manager), containerRoutes, proxy, createWebhookRoutes(deps)]);
  const koa = app.callback();
  const server = http.createServer((req, res) => {
    if (!proxy.handleRequest(req, res)) void koa(req, res);
  });
  server.on("upgrade", (req, socket, head) => {
    if (!proxy.handleUpgrade(req, socket, head)) socket.destroy();
  });
  server.keepAliveTimeout = 65_000;
  const { host, port } = parseAddr(config.addr);
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const actualPort = (server.address() as AddressInfo).port;
  const url = `http://${host.includes(":") ? `[${host}]` : host}:${actualPort}`;
  print(`OpenRunner ${VERSION} listening on ${url}`);
  log.info("listening", { url, data_dir: paths.data_dir });

  let closing: Promise<void> | null = null;
  const close = () =>
    (closing ??= (async () => {
      log.info("shutting down");
      await manager.close(); // stop admitting, end runs (their containers are removed), flush events, end SSE streams
      await webhooks.close(); // attempts in flight finish (bounded by webhooks.timeout_ms); the rest is marked abandoned
      await pool?.close(); // warm containers not handed out; project containers stay (adopted at the next start)
      await sweeper.close();
      proxy.close();
      await new Promise<void>((resolve) => {
        const force = setTimeout(() => server.closeAllConnections(), config.shutdown_grace_ms).unref();
        server.close(() => {
          clearTimeout(force);
          resolve();
        });
        server.closeIdleConnections();
      });
      writer.flush();
      store.close();
      lock.release();
      log.info("stopped");
    })());
  return { url, port: actualPort, manager, bus, close };
}
