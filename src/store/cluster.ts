/**
 * The distributed mode's store-side contracts (docs/architecture.md#scale-out): API servers and
 * workers in several processes, on several machines, sharing one PostgreSQL store. The store is
 * the truth; PostgreSQL's LISTEN/NOTIFY only wakes processes up (a lost notification costs
 * latency, never an event: every reader reads the store after its cursor). Implemented by
 * `postgres/cluster.ts`; the single-process default has no cluster at all.
 *
 * - Admission: queued runs are claimed by one worker in one transaction that holds a cluster-wide
 *   lock: it reads the queued runs the worker can run (agent and isolation) and the runs already
 *   claimed, asks the caller's `choose` (the run layer's admission rules: global and per-user
 *   limits, priority with aging, FIFO — `run/worker.ts`) which to take, and marks those claimed.
 *   A claimed run is never claimed again.
 * - Leases: a run's lease is its worker's heartbeat; a run whose worker was not heard from for a
 *   lease is ended `failed` with code `worker_lost` by whichever process reaps first (in the
 *   transaction that checks the lease), its stored events kept.
 * - Control: cancel and permission decisions for a run on a worker travel as notifications; the
 *   worker's run machine and permission gate act on them exactly as on a local call.
 */
import type { RunEvent, RunEventData } from "../protocol/events.ts";
import type { RunRow } from "./types.ts";

/** An agent a worker can run, as `/health/agents` reports it. */
export interface WorkerAgent {
  agent: string;
  version?: string;
}

/** A worker process as registered in the store (`GET /api/workers`). Times ISO 8601 UTC. */
export interface WorkerRow {
  /** `wrk_<ulid>`, new at every start. */
  id: string;
  host: string;
  pid: number;
  agents: WorkerAgent[];
  /** `none` (host) and/or `docker`. */
  isolations: string[];
  /** Most runs it executes at once. */
  capacity: number;
  started_at: string;
  last_heartbeat: string;
  /** How long ago that was by the database's clock, ms (machines' clocks may differ). */
  heartbeat_age_ms: number;
  /** Its runs not yet terminal. */
  running: number;
}

/** A command for the worker that runs a run. */
export type ControlMessage =
  | { type: "cancel"; run_id: string; reason: string; by: string }
  | { type: "permission"; run_id: string; request_id: string; option_id: string; by: string };

/** A queued run offered to {@link ClaimRequest.choose}. */
export interface ClaimCandidate {
  id: string;
  user_id: string;
  /** `metadata.priority` (`low` … `critical`), `normal` when absent. */
  priority: string;
  created_at: string;
}

/** What a worker asks for when it claims. */
export interface ClaimRequest {
  workerId: string;
  /** Agent names it can run. */
  agents: readonly string[];
  /** Isolations it can run (`none`, `docker`). */
  isolations: readonly string[];
  /**
   * Picks the runs to claim, in admission order: `queued` are the unclaimed queued runs this worker
   * can run, oldest first; `running` the owners of every claimed live run (all workers). Called
   * inside the claim's transaction; must not do I/O.
   */
  choose(queued: readonly ClaimCandidate[], running: ReadonlyArray<{ user_id: string }>): string[];
}

/** Handlers of {@link Cluster.listen}; each optional. */
export interface ClusterListeners {
  /** Events up to `lastId` of `runId` are stored (a wake-up: read the store after your cursor). */
  events?: (runId: string, lastId: number) => void;
  /** Batch events up to `lastId` of `batchId` are stored (written by the database: migration 6, `batch_stream`). */
  batches?: (batchId: string, lastId: number) => void;
  /** A run was queued or a slot freed: try to claim. */
  queue?: () => void;
  /** A command for a run (the worker that holds it acts). */
  control?: (msg: ControlMessage) => void;
  /** The listening connection was lost and is back: notifications in between were missed (re-read). */
  reconnected?: () => void;
}

/** The distributed mode's store-side operations (see the module comment). */
export interface Cluster {
  /** Registers (or re-registers) a worker and sets its heartbeat to now. */
  registerWorker(w: Pick<WorkerRow, "id" | "host" | "pid" | "agents" | "isolations" | "capacity">): Promise<void>;
  /** Heartbeat: the worker's `last_heartbeat` set to now (the lease of all its runs). Resolves false when the worker is no longer registered. */
  heartbeat(workerId: string): Promise<boolean>;
  /** Removes a worker (clean stop, after its runs ended). */
  removeWorker(workerId: string): Promise<void>;
  /** Registered workers, oldest first, with their live run counts. */
  listWorkers(): Promise<WorkerRow[]>;
  /** Claims queued runs for a worker (see the module comment); resolves the claimed rows, in admission order. */
  claim(req: ClaimRequest): Promise<RunRow[]>;
  /** Ends a queued run that no worker holds: `run.cancelled` appended and the row ended, atomically. Resolves the event, or null when a worker holds it (or it is over). */
  cancelQueued(runId: string, data: Omit<RunEventData<"run.cancelled">, "duration_ms">): Promise<RunEvent | null>;
  /** Ends every live run whose worker was not heard from for `leaseMs` or is gone (`run.failed`, `worker_lost`), and removes workers silent for twice that. Resolves the runs ended. */
  reapExpired(leaseMs: number): Promise<string[]>;
  /** Of `runIds`, those in this store that are over or held by no registered worker: processes still carrying them are orphans. */
  orphaned(runIds: readonly string[]): Promise<string[]>;
  /** Runs queued and not claimed: all of them, or `userId`'s. */
  queuedCount(userId?: string): Promise<number>;
  /** Wakes workers: runs are queued. */
  notifyQueued(): Promise<void>;
  /** Records a cancel of a claimed live run (so it survives a lost notification) and sends the `cancel` command. */
  requestCancel(runId: string, reason: string, by: string): Promise<void>;
  /** The recorded cancels of a worker's live runs (it acts on them at every heartbeat). */
  cancelRequests(workerId: string): Promise<Array<{ run_id: string; reason: string; by: string }>>;
  /** Sends a command to whichever worker holds the run. */
  publishControl(msg: ControlMessage): Promise<void>;
  /** Starts listening (one connection per process); resolves the function that stops. */
  listen(handlers: ClusterListeners): Promise<() => Promise<void>>;
}
