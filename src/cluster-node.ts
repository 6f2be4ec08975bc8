/**
 * The distributed mode's part of the composition (docs/architecture.md#scale-out), used by
 * `engine.ts`: which store a process opens, and what its role runs besides the RunManager.
 *
 * - `database_url` unset: the embedded SQLite store in the data folder (the default, one process).
 * - `database_url` set: the PostgreSQL store and its {@link Cluster}. An `api` process reaps
 *   expired leases every heartbeat interval; a `worker` process registers and claims runs
 *   ({@link WorkerLoop}) with the agents that work on its machine and the isolations it offers.
 */
import { hostname } from "node:os";
import path from "node:path";
import { ulid } from "ulid";
import { findTaggedRunIds, killRunOrphans } from "./agent/orphans.ts";
import type { AgentRegistry } from "./agent/registry.ts";
import type { Config } from "./config/schema.ts";
import type { ContainerClient } from "./container/types.ts";
import { ConfigError } from "./errors.ts";
import type { Log } from "./log.ts";
import type { RunManager } from "./run/manager.ts";
import { WorkerLoop } from "./run/worker.ts";
import type { Cluster, WorkerAgent } from "./store/cluster.ts";
import { openPostgresCluster } from "./store/postgres/index.ts";
import { openSqliteStore } from "./store/sqlite.ts";
import type { Store } from "./store/types.ts";

/** A process's role: `single` (everything in one process), or an `api` server / a `worker` of the distributed mode. */
export type NodeRole = "single" | "api" | "worker";

/**
 * Opens the store the configuration names (see the module comment).
 * @throws ConfigError when the heartbeat does not fit twice in the lease; the driver's Error when PostgreSQL cannot be reached or a migration fails; SQLite's when the file cannot be opened
 */
export async function openConfiguredStore(config: Pick<Config, "database_url" | "cluster_lease_ms" | "cluster_heartbeat_ms">, dataDir: string, log: Log): Promise<{ store: Store; cluster?: Cluster }> {
  if (!config.database_url) return { store: openSqliteStore({ file: path.join(dataDir, "openrunner.db") }) };
  // Two heartbeats fit in a lease, or one late heartbeat loses a healthy worker its runs.
  if (config.cluster_heartbeat_ms * 2 > config.cluster_lease_ms) throw new ConfigError("cluster_heartbeat_ms", `at most half of cluster_lease_ms (${config.cluster_lease_ms})`, config.cluster_heartbeat_ms);
  const pgLog = log.getSubLogger({ name: "store.postgres" });
  // The URL carries a password: never logged, only the error's message.
  return openPostgresCluster({ url: config.database_url, onConnectionError: (err) => pgLog.warn("PostgreSQL connection lost", { err: err.message }) });
}

/** What a role started (see {@link startRole}); `stopClaiming` and `close` are safe to call twice. */
export interface RoleHandle {
  worker: WorkerLoop | undefined;
  /** A worker stops taking runs (before the RunManager's shutdown ends its runs). */
  stopClaiming(): Promise<void>;
  /** After the runs ended: the reaper stopped, the worker removed. */
  close(): Promise<void>;
}

/** Starts what `role` runs besides the RunManager (nothing for `single`). */
export async function startRole(role: NodeRole, d: { cluster?: Cluster; config: Config; manager: RunManager; registry: AgentRegistry; dockerClient: () => ContainerClient; log: Log; workerId: string }): Promise<RoleHandle> {
  const { cluster, config, log } = d;
  if (role === "single" || !cluster) return { worker: undefined, stopClaiming: async () => {}, close: async () => {} };
  if (role === "api") {
    await d.manager.startCluster();
    const reapLog = log.getSubLogger({ name: "cluster.reaper" });
    const timer = setInterval(() => {
      cluster.reapExpired(config.cluster_lease_ms).then(
        (ended) => ended.length > 0 && reapLog.warn("runs of a lost worker ended as worker_lost", { count: ended.length, run_ids: ended }),
        (err: unknown) => reapLog.warn("reaping expired leases failed", { err: String(err) }),
      );
    }, config.cluster_heartbeat_ms);
    timer.unref();
    return { worker: undefined, stopClaiming: async () => {}, close: async () => clearInterval(timer) };
  }
  const health = await d.registry.health();
  const agents: WorkerAgent[] = health.filter((h) => h.available).map((h) => ({ agent: h.agent, ...(h.version ? { version: h.version } : {}) }));
  const isolations = ["none"];
  try {
    await d.dockerClient().ping({ timeoutMs: 3000 });
    isolations.push("docker");
  } catch {
    log.info("docker engine unavailable: this worker offers host runs only");
  }
  const worker = new WorkerLoop({
    cluster,
    manager: d.manager,
    id: d.workerId,
    host: hostname(),
    agents,
    isolations,
    capacity: config.worker_capacity,
    limits: () => ({ maxRunning: config.max_concurrent_runs, maxRunningPerUser: config.max_concurrent_runs_per_user, agingMs: (config.priority_aging_secs ?? 60) * 1000 }),
    heartbeatMs: config.cluster_heartbeat_ms,
    // Processes a killed worker on this machine left behind: their runs were ended worker_lost (or are over); only run ids of this store count.
    sweepOrphans: async () => {
      const sweepLog = log.getSubLogger({ name: "cluster.orphans" });
      for (const id of await cluster.orphaned(findTaggedRunIds())) killRunOrphans(id, sweepLog);
    },
    log: log.getSubLogger({ name: "cluster.worker" }),
  });
  return { worker, stopClaiming: () => worker.stopClaiming(), close: () => worker.close() };
}

/** A new worker id, `wrk_<ulid>`. */
export function newWorkerId(): string {
  return `wrk_${ulid()}`;
}
