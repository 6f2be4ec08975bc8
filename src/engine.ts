/**
 * The engine's composition: the data folder and its lock, store, bus, agent
 * registry, event writer, run manager, the container engine client, sweeper,
 * project containers and warm pool, and the webhook dispatcher, wired once,
 * with an ordered shutdown that is safe to call twice. No HTTP here:
 * `src/server.ts` puts the Koa app and the port proxy on top of it, and
 * `src/embed.ts` (`createOpenRunner`) hands it to a program as a library.
 */
import { randomBytes } from "node:crypto";
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { Gauge, Registry } from "prom-client";
import { AgentRegistry } from "./agent/registry.ts";
import { readAgentsLock, testedVersionsOf } from "./agent/tested-versions.ts";
import { resolveRunAs, type RunAs } from "./agent/run-as.ts";
import { createClaudeCodeAdapter } from "./agent/claude-code/adapter.ts";
import { createCodexAdapter } from "./agent/codex/adapter.ts";
import { createGeminiAdapter } from "./agent/gemini/adapter.ts";
import { createOpencodeAdapter } from "./agent/opencode/adapter.ts";
import { createShellAdapter } from "./agent/shell/adapter.ts";
import { createTaskAdapter } from "./agent/task/adapter.ts";
import { createAcpAdapter } from "./agent/acp/adapter.ts";
import { createNativeAdapter } from "./agent/native/adapter.ts";
import type { AgentAdapter } from "./agent/types.ts";
import { Bus } from "./bus/bus.ts";
import { resolvePaths, type ResolvedPaths } from "./config/load.ts";
import type { Config } from "./config/schema.ts";
import { createDockerClient } from "./container/client.ts";
import { LABEL } from "./container/labels.ts";
import { ContainerSweeper } from "./container/sweeper.ts";
import { WarmPool } from "./container/pool.ts";
import { ProjectContainers } from "./container/projects.ts";
import type { ContainerClient } from "./container/types.ts";
import { ConfigError } from "./errors.ts";
import type { Log } from "./log.ts";
import { EventWriter } from "./run/event-writer.ts";
import { RunManager } from "./run/manager.ts";
import { WebhookDispatcher } from "./webhooks/dispatcher.ts";
import { startTelemetry, type Telemetry } from "./telemetry/index.ts";
import { acquireDataDirLock } from "./store/data-lock.ts";
import type { Store } from "./store/types.ts";
import type { Cluster } from "./store/cluster.ts";
import { newWorkerId, openConfiguredStore, startRole, type NodeRole, type RoleHandle } from "./cluster-node.ts";

/** The product version, reported by `/health`, the OpenAPI document and webhooks' User-Agent. */
export const VERSION = "0.1.0";

/** Input of {@link createEngine}. */
export interface EngineOptions {
  config: Config;
  /** The process environment (only a composition root reads process.env). */
  env: Record<string, string | undefined>;
  log: Log;
  /** Extra adapters, registered after the built-in ones. */
  adapters?: AgentAdapter[];
  /** Working directory for relative paths in `config`; default process.cwd(). */
  cwd?: string;
  /** With `database_url` (distributed mode): `api` (default) serves the API, `worker` executes claimed runs. */
  role?: "api" | "worker";
}

/**
 * A started engine. {@link Engine.stopRuns} stops admitting and ends every
 * run (their containers are removed, their events flushed, their subscribers
 * ended); {@link Engine.close} does that and then closes the store and
 * releases the data folder. Both return the same promise when called again.
 */
export interface Engine {
  config: Config;
  paths: ResolvedPaths;
  store: Store;
  bus: Bus;
  registry: AgentRegistry;
  manager: RunManager;
  writer: EventWriter;
  projects: ProjectContainers;
  pool: WarmPool | undefined;
  /** The container engine client, created on first use (no engine call until then). */
  dockerClient: () => ContainerClient;
  /** This data folder's instance id, the label of its containers. */
  instance: string;
  /** The Prometheus registry of the engine's counters (webhooks); the server's `/metrics` exposes it. */
  metricsRegistry: Registry;
  /** The user agent processes run as on the host (`host_run_user`), when set. */
  runAs: RunAs | undefined;
  /** OpenTelemetry traces of runs (`src/telemetry/`), when `telemetry.otlp_endpoint` is set. */
  telemetry: Telemetry | undefined;
  /** `single` (SQLite, one process), or the distributed mode's `api` / `worker` (`cluster-node.ts`). */
  role: NodeRole;
  /** The distributed mode's cluster (PostgreSQL); undefined in the single-process mode. */
  cluster: Cluster | undefined;
  /** What the role started: the worker loop of a `worker`. */
  node: RoleHandle;
  stopRuns(): Promise<void>;
  close(): Promise<void>;
}

/** Environment variables handed to every agent process (besides the agent's own). */
const PASSED_ENV = ["PATH", "LANG", "LC_ALL", "TZ", "TMPDIR"];

const INSTANCE_ID = /^[A-Za-z0-9_.-]{1,64}$/;

/**
 * Reads this data folder's instance id from `instance-id` (creating a random
 * `or-<16 hex>` one on first start). Containers are labelled with it, so two
 * servers on one engine never touch each other's containers.
 * @throws ConfigError when the file holds an invalid id; fs errors otherwise.
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
 * Opens the store (creating the data folder and taking its lock), ends runs a
 * crash left live, sweeps this instance's containers left by an earlier
 * process (adopting running project containers), starts the warm pool and
 * the webhook dispatcher.
 * @throws ConfigError for inconsistent docker settings or a bad instance id;
 *   Error when the data folder is locked by another live process or the
 *   database cannot be opened; the engine's error when `docker.default_isolation`
 *   is `docker` and the engine does not answer.
 */
export async function createEngine(opts: EngineOptions): Promise<Engine> {
  const { config, log } = opts;
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
  const { store, cluster } = await openConfiguredStore(config, paths.data_dir, log);
  const role: NodeRole = cluster ? (opts.role ?? "api") : "single";
  let node: RoleHandle | undefined;
  const bus = new Bus((err, topic) => log.error("bus handler failed", { topic, err: String(err) }));

  const baseEnv: Record<string, string> = {};
  for (const k of PASSED_ENV) if (opts.env[k] !== undefined) baseEnv[k] = opts.env[k]!;
  const agentOpts = (name: string) => (config.agents[name] ??= {}); // the adapter keeps this object: PATCH /api/config updates it in place
  const registry = new AgentRegistry([
    createShellAdapter({ baseEnv }),
    createClaudeCodeAdapter(agentOpts("claude_code"), opts.env),
    createCodexAdapter(agentOpts("codex"), opts.env),
    createOpencodeAdapter(agentOpts("opencode"), opts.env),
    createGeminiAdapter(agentOpts("gemini"), opts.env),
    createTaskAdapter({ client: dockerClient, docker: config.docker }),
    createAcpAdapter(config.acp_agents, opts.env),
    createNativeAdapter({ providers: config.providers, native: config.native, sessions: store.nativeSessions, serverEnv: opts.env }),
    ...(opts.adapters ?? []),
  ], { tested: loadTestedVersions(log) });

  let manager: RunManager | undefined;
  const writer = new EventWriter({
    store,
    project: async (events, tx) => manager?.project(events, tx),
    onStored: (run_id, count) => bus.publish("run.events.stored", { run_id, count }),
    onError: (err) => log.error("event commit failed", { err: String(err) }),
    onDropped: (run_id, count, err) => {
      log.error("events the store refuses dropped (the run is deleted, or ended by another process)", { run_id, count, err: String(err) });
      manager?.eventsRefused(run_id);
    },
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
    ...(cluster && role === "api" ? { cluster: { cluster, role: "api" as const } } : {}),
    ...(cluster && role === "worker" ? { cluster: { cluster, role: "worker" as const, onRunEnded: () => node?.worker?.kick() } } : {}),
  });
  const runs = manager;
  const interrupted = await runs.recover();
  if (interrupted.length > 0) log.warn("ended runs interrupted by the previous shutdown", { count: interrupted.length });

  try {
    await dockerClient().ping({ timeoutMs: 3000 });
    const swept = await sweeper.sweepOrphans({ adopt: (c) => c.labels[LABEL.kind] === "project" && c.state === "running" });
    // Running project containers are kept; processes of their runs that were in flight are killed.
    const interruptedRows = (await Promise.all(interrupted.map((id) => store.runs.get(id)))).filter((r) => r !== undefined);
    await projects.adopt(swept.adopted, interruptedRows);
    await pool?.start();
    if (swept.removed.length > 0) log.info("removed containers of an earlier process", { count: swept.removed.length, instance });
    sweeper.start();
  } catch (err) {
    if (config.docker.default_isolation === "docker") {
      await store.close();
      lock.release();
      throw err;
    }
    log.warn("docker engine unavailable: docker runs fail until it answers", { engine: dockerClient().engine, err: err instanceof Error ? err.message : String(err) });
  }

  // Webhooks hear committed run events on the bus and deliver off the run's path.
  const metricsRegistry = new Registry();
  if (pool) {
    const warmPool = pool;
    new Gauge({
      name: "openrunner_warm_pool_ready",
      help: "Warm pool containers ready to be handed to a run (started, launcher answering), by image.",
      labelNames: ["image"],
      registers: [metricsRegistry],
      collect() {
        for (const [image, n] of Object.entries(warmPool.readyCounts())) this.set({ image }, n);
      },
    });
  }
  const webhooks = new WebhookDispatcher({ store, bus, config: config.webhooks, log, registry: metricsRegistry, version: VERSION, sharedStore: cluster !== undefined });
  await webhooks.start();
  const telemetry = await startTelemetry({ config: config.telemetry, bus, store, log, version: VERSION }); // undefined (nothing loaded) when off

  node = await startRole(role, { ...(cluster ? { cluster } : {}), config, manager: runs, registry, dockerClient, log, workerId: newWorkerId() });
  const roleHandle = node;
  await roleHandle.worker?.start();

  let stopping: Promise<void> | null = null;
  const stopRuns = () =>
    (stopping ??= (async () => {
      await roleHandle.stopClaiming(); // a worker takes no more runs
      await runs.close(); // stop admitting, end runs (their containers are removed), flush events, end subscribers
      await telemetry?.close(); // the last runs' spans exported
      await webhooks.close(); // attempts in flight finish (bounded by webhooks.timeout_ms); the rest is marked abandoned
      await pool?.close(); // warm containers not handed out; project containers stay (adopted at the next start)
      await sweeper.close();
      await roleHandle.close(); // the reaper stopped; a worker removed once its runs ended
    })());
  let closing: Promise<void> | null = null;
  const close = () =>
    (closing ??= (async () => {
      await stopRuns();
      await writer.flush();
      await store.close();
      lock.release();
    })());

  return { config, paths, store, bus, registry, manager: runs, writer, projects, pool, dockerClient, instance, metricsRegistry, runAs, telemetry, role, cluster, node: roleHandle, stopRuns, close };
}
