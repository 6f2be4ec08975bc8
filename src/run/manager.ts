/**
 * The RunManager (docs/architecture.md#run-lifecycle): admission with a global and a per-user
 * concurrency limit and a priority queue (`metadata.priority`, raised by waiting, `admission.ts`),
 * batches of runs admitted all or none (`createBatch`), one xstate run machine per run, cancel,
 * timeouts, projections of events onto the run row, recovery at start and an
 * ordered, idempotent shutdown.
 *
 * Path of a prompt: `create()` plans the run (`plan.ts`: pure decisions and
 * refusals), does the I/O the plan needs (agent lookup, engine ping, working
 * directory), checks placement, then launches it (`#launch`: stores the run,
 * creates its channel and machine, appends `run.queued` and queues it);
 * `#pump()` admits it (START), the machine runs `prepare` (home, then the
 * container in one `acquireRunContainer` call, `src/container/acquire.ts`)
 * then the agent's process actor, which streams events into the run's
 * {@link RunChannel}; the EventWriter commits them, projecting each onto the
 * run row (`projection.ts`), and the channel fans them out to SSE
 * subscriptions; the terminal event, committed together with the row's final
 * state, ends the run.
 *
 * Docker isolation (`metadata.isolation: "docker"`, or the server's
 * `docker.default_isolation`): `create()` checks the requested limits against
 * the admin maxima (400) and that the engine answers (503
 * `engine_unavailable`); `prepare` creates and starts the run's container
 * (`src/container/run-container.ts`), or takes a warm one from the pool
 * (`src/container/pool.ts`), both through `acquireRunContainer`, which the
 * process actor runs the agent in and removes at the end. A project run (`metadata.project_id`) claims its turn on
 * the project at `create()` (409 `project_busy` in reject mode), waits for it
 * in `prepare` and runs in the project's long-lived container
 * (`src/container/projects.ts`); the turn is given back at its terminal event.
 *
 * Distributed mode (`deps.cluster`, docs/architecture.md#scale-out): with the `api` role, `create()`
 * plans and checks the run as always, then stores it with its `run.queued` and wakes the workers;
 * reads, cancel and permissions go through {@link RemoteRuns}. With the `worker` role, the worker loop
 * (`worker.ts`) claims stored runs and hands each to {@link RunManager.executeClaimed}, which plans it
 * again from its row and launches it here exactly as a local run (machine, gate, channel, writer).
 */
import { ulid } from "ulid";
import { createActor, fromPromise, type Actor } from "xstate";
import { processActor } from "../agent/process-actor.ts";
import { acpActor } from "../agent/acp/actor.ts";
import { isAcpAdapter, isAcpRunAdapter } from "../agent/acp/adapter.ts";
import type { RunAs } from "../agent/run-as.ts";
import type { AgentRegistry } from "../agent/registry.ts";
import type { ProcessActorInput } from "../agent/types.ts";
import type { Bus } from "../bus/bus.ts";
import type { Config } from "../config/schema.ts";
import type { WarmPool } from "../container/pool.ts";
import type { ProjectContainers } from "../container/projects.ts";
import type { ContainerClient } from "../container/types.ts";
import { AppError, BatchItemError, ConflictError, NotFoundError, ShuttingDownError, TooManyRequestsError, ValidationError } from "../errors.ts";
import type { Cluster } from "../store/cluster.ts";
import { bodyOfRow, plannedCwd, queuedOf, rowOfLaunch } from "./cluster-plan.ts";
import { RemoteRuns } from "./remote.ts";
import type { Log } from "../log.ts";
import type { BatchRow, Repos, RunListQuery, RunRow, Store } from "../store/types.ts";
import { RunChannel } from "./channel.ts";
import type { EventWriter } from "./event-writer.ts";
import { AdmissionQueue } from "./admission.ts";
import { BatchFeed } from "./batch-feed.ts";
import { failureCode, TERMINAL_STATUSES, type RunEvent, type RunEventInput, type RunStatus } from "../protocol/events.ts";
import { NOTIFY_TYPES, projectEvent, type ProjectionState } from "./projection.ts";
import { createPermissionGate, PermissionRegistry, storedRequestExists, type PendingPermission, type PermissionDecision } from "./permissions.ts";
import { recoverInterruptedRuns } from "./recovery.ts";
import { createStallWatchdog } from "./stall.ts";
import { homesOf, readSession } from "../agent/sessions/index.ts";
import { isSessionAgent } from "../protocol/sessions.ts";
import { runMachine, type PrepareOutput } from "./machine.ts";
import { agentRunContext, prepareRun, type Launch } from "./launch.ts";
import type { CreateRunBody } from "../protocol/requests.ts";
import { checkWorkspaceFree, type LivePlacement } from "./placement.ts";
import { planAgent, planContainer, planRun, type Caller, type RunPlan, type WorkspacePlan } from "./plan.ts";
import { resolveRunCwd } from "./workspace.ts";


export interface RunManagerDeps {
  config: Pick<
    Config,
    "max_concurrent_runs" | "max_concurrent_runs_per_user" | "max_queued_runs_per_user" | "allow_shell_for_users" | "default_timeout_secs" | "max_timeout_secs" | "kill_grace_ms" | "sse_buffer_events" | "shutdown_runs" | "shutdown_grace_ms"
  > & { docker?: Config["docker"]; agents?: Config["agents"]; permissions?: Config["permissions"]; mcp?: Config["mcp"] } & Partial<Pick<Config, "batch_max_runs" | "priority_aging_secs" | "stall_secs" | "stall_fail_secs" | "cluster_lease_ms">>;
  store: Store;
  bus: Bus;
  log: Log;
  registry: AgentRegistry;
  writer: EventWriter;
  /** Absolute workspaces root and homes root. */
  dirs: { workspaces: string; homes: string };
  /** Environment of the server, handed to adapters read-only. */
  serverEnv: Readonly<Record<string, string | undefined>>;
  /** The container engine (created on first use) and this server's instance id; absent: docker runs are refused. */
  docker?: { client: () => ContainerClient; instance: string; pool?: WarmPool; projects?: ProjectContainers };
  /** Host runs drop to this unprivileged user (see `src/agent/run-as.ts`); absent: the server's user. */
  runAs?: RunAs;
  /** The admission clock (priority aging), epoch ms; default `Date.now`. */
  now?: () => number;
  /** Distributed mode: the cluster and this process's role (see the module comment); absent: one process does everything. */
  cluster?: { cluster: Cluster; role: "api" } | { cluster: Cluster; role: "worker"; onRunEnded: () => void };
}


interface ActiveRun extends ProjectionState {
  id: string;
  userId: string;
  agent: string;
  channel: RunChannel;
  actor: Actor<typeof runMachine>;
  admitted: boolean;
  /** Last status published for the run (the `prev` of the next change). */
  status: RunStatus | null;
  /** Runs in a container (removed again as a backstop when the machine ends). */
  docker: boolean;
  /** Working directory (absolute) and agent home key: held from create to the terminal event, see `checkWorkspaceFree` (placement.ts). */
  cwd: string;
  homeKey: string;
  /** A project run: its folder is shared by design and serialized by the project's lock. */
  project: boolean;
  /** The batch it was created in (`createBatch`). */
  batchId?: string;
}

const isTerminalStatus = (s: RunStatus) => TERMINAL_STATUSES.includes(s);

/** See the module comment. Create one per server; call `recover()` before serving. */
export class RunManager {
  readonly #d: RunManagerDeps;
  readonly #log: Log;
  readonly #active = new Map<string, ActiveRun>();
  readonly #admission: AdmissionQueue;
  #admitting = true;
  /** Runs placed but not yet started (their rows being stored): placement checks count them as live. */
  readonly #placing = new Map<string, LivePlacement>();
  /** Users being deleted: they may start no new run. */
  readonly #blockedUsers = new Set<string>();
  #closing: Promise<void> | null = null;
  /** Open permission requests of every live run. */
  readonly #permissions = new PermissionRegistry();
  /** The event streams of batches (`GET /api/batches/:id/events`). */
  readonly batches: BatchFeed;
  /** Runs executing on workers (the `api` role only). */
  readonly #remote: RemoteRuns | undefined;

  constructor(deps: RunManagerDeps) {
    this.#d = deps;
    this.#log = deps.log.getSubLogger({ name: "run.manager" });
    const c = deps.config; // read at every admission: PATCH /api/config changes it in place
    this.#admission = new AdmissionQueue(
      () => ({ maxRunning: c.max_concurrent_runs, maxRunningPerUser: c.max_concurrent_runs_per_user, agingMs: (c.priority_aging_secs ?? 60) * 1000 }),
      deps.now,
    );
    this.batches = new BatchFeed({ store: deps.store, onError: (err) => this.#log.error("batch event not stored", { err: String(err) }), storeWritten: deps.cluster !== undefined });
    this.#remote =
      deps.cluster?.role === "api"
        ? new RemoteRuns({
            store: deps.store,
            cluster: deps.cluster.cluster,
            writer: deps.writer,
            bufferLimit: deps.config.sse_buffer_events,
            onSubscribers: (delta) => deps.bus.publish("sse.subscribers", { delta }),
            bus: deps.bus,
            maxQueuedPerUser: () => deps.config.max_queued_runs_per_user,
            leaseMs: deps.config.cluster_lease_ms ?? 15000,
            onBatchEvents: (batchId) => (batchId === undefined ? this.batches.wakeAll() : this.batches.wake(batchId)),
            permissionTimeoutMs: (row) => ((row.metadata.permission_timeout_secs as number | undefined) ?? deps.config.permissions?.timeout_secs ?? 300) * 1000,
            log: this.#log,
          })
        : undefined;
  }

  /** The `api` role: starts listening for the workers' stored events (before serving). */
  async startCluster(): Promise<void> {
    await this.#remote?.start();
  }

  /** The configuration changed (`PATCH /api/config`): admits the queued runs that raised limits now allow. */
  reconfigure(): void {
    this.#pump();
  }

  /** Number of admitted (preparing or running) runs. */
  get runningCount(): number {
    return this.#admission.running;
  }

  /**
   * Row projections (`PROJECTIONS` in projection.ts), called by the EventWriter inside its commit transaction: writes each event's
   * row patch; returns what to publish after the commit (the status change, then `run.event` for {@link NOTIFY_TYPES}).
   */
  async project(events: readonly RunEvent[], tx: Repos): Promise<Array<() => void>> {
    const after: Array<() => void> = [];
    for (const e of events) {
      const active = this.#active.get(e.run_id);
      const patch = projectEvent(active, e);
      if (patch?.row) await tx.runs.update(e.run_id, patch.row);
      const status = patch?.status;
      if (active && status) after.push(() => this.#publish(active, status));
      if (active && NOTIFY_TYPES.has(e.type)) after.push(() => this.#d.bus.publish("run.event", { user_id: active.userId, event: e }));
    }
    return after;
  }

  /**
   * Validates and queues a run: plans it ({@link planRun}, {@link planAgent}, {@link planContainer}: pure), looks up the
   * agent and the engine, resolves its working directory, checks placement, then launches it (row, channel, machine,
   * `run.queued`, admission queue).
   * @throws ValidationError (400: bad cwd, timeout over the maximum, resume of another agent), NotFoundError (404: resume of an unknown or foreign run),
   *   ForbiddenError (403: extra_args by a non-admin), ConflictError (409: `run_active`, `workspace_busy`, `project_busy`),
   *   TooManyRequestsError (429), AgentUnavailableError (503), ShuttingDownError (503), ContainerError (503 `engine_unavailable`)
   */
  async create(caller: Caller, body: CreateRunBody): Promise<RunRow> {
    if (this.#remote) {
      await this.#remote.checkQueueRoom(caller.id, 1);
      const l = await this.#prepareLaunch(caller, body, 0);
      if (!this.#admitting) throw new ShuttingDownError();
      const [row] = await this.#remote.queue([queuedOf(l)]);
      return row!;
    }
    const l = await this.#prepareLaunch(caller, body, 0);
    this.#place([l], false); // counted as live from here (#placing) until #start
    let row: RunRow;
    try {
      row = await this.#insertRow(l, this.#d.store);
    } catch (err) {
      this.#unplace([l]);
      throw err;
    }
    this.#start(l);
    this.#pump();
    return row;
  }

  /**
   * Validates and queues runs as one batch, all or none: every request is planned and placed (against the live
   * runs and the batch's earlier items) before any is stored; the batch and its runs are inserted in one store
   * transaction, then queued together (admission by priority, then request order).
   * @throws ValidationError (400 `batch_too_large`: more than `batch_max_runs`); BatchItemError (the first failing
   *   item's error, with `details.index`: every refusal of {@link create}, and 429 when the batch would take the
   *   caller past `max_queued_runs_per_user`); ShuttingDownError (503)
   */
  async createBatch(caller: Caller, bodies: readonly CreateRunBody[]): Promise<{ batch: BatchRow; runs: RunRow[] }> {
    const max = this.#d.config.batch_max_runs ?? 100;
    if (bodies.length > max) throw new ValidationError(`a batch holds at most ${max} runs (batch_max_runs), got ${bodies.length}`, { max, count: bodies.length }, "batch_too_large");
    if (!this.#admitting) throw new ShuttingDownError();
    if (this.#remote) await this.#remote.checkQueueRoom(caller.id, bodies.length);
    else this.#checkQueueRoom(caller, bodies.length);
    const launches: Launch[] = [];
    for (const [i, body] of bodies.entries()) {
      try {
        launches.push(await this.#prepareLaunch(caller, body, i));
      } catch (err) {
        throw err instanceof AppError ? new BatchItemError(i, err) : err;
      }
    }
    const batch: BatchRow = { id: `bat_${ulid()}`, user_id: caller.id, created_at: new Date().toISOString() };
    if (this.#remote) {
      await this.#remote.checkQueueRoom(caller.id, launches.length);
      const rows = await this.#remote.queue(launches.map((l) => queuedOf(l, batch.id)), batch);
      return { batch, runs: rows };
    }
    this.#checkQueueRoom(caller, launches.length); // again: other requests may have queued runs meanwhile
    this.#place(launches, true); // counted as live from here (#placing) until #start
    let rows: RunRow[];
    try {
      rows = await this.#d.store.transaction(async (tx) => {
        await tx.batches.insert(batch);
        const out: RunRow[] = [];
        for (const l of launches) out.push(await this.#insertRow(l, tx, batch.id));
        return out;
      });
    } catch (err) {
      this.#unplace(launches);
      throw err;
    }
    this.batches.track(batch.id, rows.map((r) => r.id));
    for (const l of launches) this.#start(l, batch.id);
    this.#pump();
    return { batch, runs: rows };
  }

  /** The caller's queue cap (`max_queued_runs_per_user`) counted for `n` more runs. @throws BatchItemError (429) naming the first item past it */
  #checkQueueRoom(caller: Caller, n: number): void {
    const room = this.#d.config.max_queued_runs_per_user - this.#admission.queuedFor(caller.id);
    if (n > room) throw new BatchItemError(Math.max(0, room), new TooManyRequestsError(5));
  }

  /**
   * Plans a run and does the I/O its plan needs (agent, engine, ACP binding, working directory); `queuedAhead`: the caller's
   * runs of the same request queued before it; `runId`: the id of a stored run (a worker launching a claimed run).
   * With the `api` role, the I/O that belongs to the machine that will run it is left to the worker: the agent must be
   * offered by a live worker, and the working directory is checked, not created.
   */
  async #prepareLaunch(caller: Caller, body: CreateRunBody, queuedAhead: number, runId = `run_${ulid()}`): Promise<Launch> {
    if (body.metadata.resume_session !== undefined) body = await this.#bindSession(caller, body);
    const config = this.#d.config;
    const plan = planRun(body, {
      caller,
      runId,
      config,
      workspacesRoot: this.#d.dirs.workspaces,
      ...(this.#d.docker ? { engine: { projects: this.#d.docker.projects !== undefined } } : {}),
      admitting: this.#admitting,
      blocked: this.#blockedUsers.has(caller.id),
      queued: this.#admission.queuedFor(caller.id) + queuedAhead,
      resumed: body.metadata.resume === undefined ? undefined : ((await this.#visible(caller, body.metadata.resume)) ?? null),
    });
    const adapter = this.#remote ? await this.#requireWorkerAgent(plan.agentType, plan.limits !== null) : await this.#d.registry.require(plan.agentType);
    const agent = planAgent(plan, body, adapter.name, caller, config);
    // The adapter's own checks of the request (openrunner: an unknown provider is a 400 here, not a run that fails).
    adapter.checkRun?.(plan.metadata);
    if (plan.limits && !this.#remote) await this.#d.docker!.client().ping({ timeoutMs: 3000 });
    // ACP: bind the adapter to `metadata.acp_agent` (unknown agent, resume without session/load: 400 here, not at run time).
    const runAdapter = isAcpAdapter(adapter)
      ? await adapter.forRun(plan.metadata.acp_agent, { resume: plan.resumed !== undefined, resumedAgent: plan.resumed?.metadata.acp_agent, docker: plan.limits !== null })
      : adapter;
    const container = planContainer(plan, agent, adapter.name, isAcpRunAdapter(runAdapter) ? runAdapter.acp.image : undefined, config);
    const cwd = this.#remote ? plannedCwd(plan) : await this.#resolveCwd(plan);
    return { plan, agent, container, cwd, body, adapter, runAdapter };
  }

  /**
   * The `worker` role: launches a run this worker claimed (`worker.ts`): plans it again from its row (as its
   * owner), then starts it here as a local run, after its stored events. A run that cannot be launched here
   * ends `failed` with the refusal's code. Resolves once it is started (or ended).
   */
  async executeClaimed(row: RunRow): Promise<void> {
    let l: Launch;
    try {
      const user = await this.#d.store.users.getById(row.user_id);
      if (!user) throw new NotFoundError("user");
      const caller: Caller = { id: user.id, username: user.username, role: user.role };
      l = await this.#prepareLaunch(caller, bodyOfRow(row), 0, row.id);
      this.#place([l], false);
    } catch (err) {
      const channel = this.#newChannel(row.id, row.last_event_id);
      const code = failureCode(err, "launch_refused");
      channel.append({ type: "run.failed", data: { error: { code, message: err instanceof Error ? err.message : String(err) }, duration_ms: 0 } });
      this.#log.warn("a claimed run could not be launched", { run_id: row.id, code });
      await this.#d.writer.flush(); // stored, or refused (the run was ended elsewhere meanwhile): either way it is not ours
      this.#d.cluster?.role === "worker" && this.#d.cluster.onRunEnded();
      return;
    }
    if (l.cwd !== row.cwd) this.#d.writer.patchRun(row.id, { cwd: l.cwd });
    this.#start(l, undefined, { lastStoredId: row.last_event_id, queued: false });
    this.#pump();
  }

  /**
   * The store refused a live run's events for good (the EventWriter's `onDropped`): its row is gone, or, in the distributed
   * mode, it was ended elsewhere (reaped as `worker_lost` while this worker was cut off). It cannot go on here: its stream
   * ends, it leaves this process (capacity, placement, permissions) and its process is stopped.
   */
  eventsRefused(runId: string): void {
    const active = this.#active.get(runId);
    if (!active || active.channel.ended && active.channel.terminalId !== null) return;
    this.#log.warn("the store refuses this run's events: it is stopped here", { run_id: runId });
    active.channel.abandon();
    active.actor.send({ type: "CANCEL", reason: "the store refused the run's events", by: "server" });
  }

  /** The `worker` role: a cancel for a run of this worker (a `cancel` command); nothing when it is not here. */
  cancelLocal(runId: string, reason: string, by: string): void {
    this.#cancelActive(runId, reason, by);
  }

  /** The `worker` role: an answer checked by an API server (a `permission` command); a late one is ignored. */
  answerLocal(runId: string, requestId: string, optionId: string, by: string): void {
    try {
      this.#permissions.answer(runId, requestId, optionId, by);
    } catch (err) {
      this.#log.info("permission answer not applied", { run_id: runId, request_id: requestId, err: String(err) });
    }
  }

  /** Runs live in this process (from launch to the terminal event). */
  get liveCount(): number {
    return this.#active.size;
  }

  /**
   * `metadata.resume_session`: the caller's stored session (`src/agent/sessions/`) becomes a resume of the run whose agent home holds it.
   * @throws ValidationError (400 `resume_conflict` with `metadata.resume`, `sessions_unsupported`), NotFoundError (404: no such session in the caller's homes)
   */
  async #bindSession(caller: Caller, body: CreateRunBody): Promise<CreateRunBody> {
    const md = body.metadata;
    if (md.resume !== undefined) throw new ValidationError("give metadata.resume or metadata.resume_session, not both", { field: "metadata.resume_session" }, "resume_conflict");
    if (!isSessionAgent(md.agent_type)) throw new ValidationError(`stored sessions of ${md.agent_type} cannot be resumed`, { field: "metadata.resume_session" }, "sessions_unsupported");
    const found = await readSession(md.agent_type, md.resume_session!, await homesOf(this.#d.store.runs, caller.id, md.agent_type, this.#d.dirs.homes));
    if (!found) throw new NotFoundError("session");
    return { ...body, metadata: { ...md, resume: found.session.run_id } };
  }

  /**
   * Checks placement of `launches` against the live runs, the runs being placed and the earlier launches, then claims
   * their projects' turns (409 `project_busy` in reject mode; released at the terminal event) and counts them as placed
   * until the caller starts them ({@link #start}) or gives them back ({@link #unplace}). On a refusal every turn
   * claimed here is given back; in a batch the error names the item.
   * @throws ShuttingDownError, ConflictError (`workspace_busy`, `project_busy`), as BatchItemError when `batch`
   */
  #place(launches: Launch[], batch: boolean): void {
    if (!this.#admitting) throw new ShuttingDownError();
    const placed: LivePlacement[] = [];
    try {
      for (const [i, l] of launches.entries()) {
        const next = { userId: l.plan.userId, cwd: l.cwd, homeKey: l.plan.homeKey, project: l.plan.projectId !== undefined };
        try {
          checkWorkspaceFree([...this.#active.values(), ...this.#placing.values(), ...placed], next);
          if (l.plan.projectId !== undefined) l.slot = this.#d.docker!.projects!.claim(l.plan.userId, l.plan.projectId);
        } catch (err) {
          throw batch && err instanceof AppError ? new BatchItemError(i, err) : err;
        }
        placed.push({ id: l.plan.runId, ...next });
      }
    } catch (err) {
      for (const l of launches) l.slot?.release();
      throw err;
    }
    for (const p of placed) this.#placing.set(p.id, p);
  }

  /** Gives back placed launches that will not start (their rows could not be stored). */
  #unplace(launches: Launch[]): void {
    for (const l of launches) {
      l.slot?.release();
      this.#placing.delete(l.plan.runId);
    }
  }

  /** The absolute working directory of a planned run, created if missing (see {@link WorkspacePlan}). @throws ValidationError (cwd refusals) */
  async #resolveCwd(plan: RunPlan): Promise<string> {
    const w = plan.workspace;
    let cwd: string;
    if (w.kind === "resumed") cwd = w.cwd;
    else if (w.kind === "project") {
      const projectDir = await this.#d.docker!.projects!.ensureDir(plan.userId, w.projectId);
      cwd = w.cwd === undefined ? projectDir : await resolveRunCwd(projectDir, plan.runId, w.cwd);
    } else cwd = await resolveRunCwd(w.root, plan.runId, w.cwd);
    if (plan.guardProjectsFolder) await this.#d.docker?.projects?.checkNotInProjects(plan.userId, cwd);
    return cwd;
  }

  /** Stores the row of a planned, placed run, through `repos` (the store or a transaction). */
  #insertRow(l: Launch, repos: Pick<Repos, "runs">, batchId?: string): Promise<RunRow> {
    return repos.runs.insert(rowOfLaunch(l, batchId));
  }

  /** The `api` role: the adapter of an agent some live worker offers. @throws what {@link RemoteRuns.requireWorker} and the registry throw */
  async #requireWorkerAgent(name: string, docker: boolean): Promise<NonNullable<ReturnType<AgentRegistry["get"]>>> {
    const adapter = this.#d.registry.get(name);
    if (!adapter) return this.#d.registry.require(name); // its unknown_agent error
    await this.#remote!.requireWorker(adapter.name, docker);
    return adapter;
  }

  /**
   * The launch of a stored run: creates its channel, permission gate and machine, appends `run.queued` and puts
   * it in the admission queue (the caller pumps). No await: placement checked by the caller still holds.
   */
  #start(l: Launch, batchId?: string, stored: { lastStoredId: number; queued: boolean } = { lastStoredId: 0, queued: true }): void {
    const { plan, cwd, body, adapter, slot } = l;
    const id = plan.runId;
    this.#placing.delete(id);
    const channel = this.#newChannel(id, stored.lastStoredId);
    // The stall watchdog (stall.ts; off unless stall_secs) hears every event of the run through `emit`.
    const baseUrl = this.#d.config.agents?.[adapter.name]?.base_url;
    const stall = createStallWatchdog(this.#d.config, { runId: id, emit: (e) => channel.append(e), openRequests: () => this.#permissions.listOpen(id).map((p) => p.request_id), fail: (message) => actor.send({ type: "FAIL", code: "stalled", message }), modelBaseUrls: baseUrl ? [baseUrl] : [], log: this.#log });
    const emit = (e: RunEventInput) => (stall?.observe(e), channel.append(e));
    const permissions = createPermissionGate({
      runId: id,
      ...plan.permissions,
      emit,
      registry: this.#permissions,
      runOver: () => channel.ended,
      log: this.#log,
    });
    const agentInput: ProcessActorInput = {
      permissions,
      adapter: l.runAdapter,
      killGraceMs: this.#d.config.kill_grace_ms,
      emit,
      persist: (key, write) => this.#d.writer.alongside(key, write),
      log: this.#log,
      ...(this.#d.runAs ? { runAs: this.#d.runAs } : {}),
      ctx: agentRunContext(l, { homesRoot: this.#d.dirs.homes, serverEnv: this.#d.serverEnv }),
    };
    const machine = runMachine.provide({
      actors: {
        agent: adapter.actor ?? (isAcpAdapter(adapter) ? acpActor : processActor),
        prepare: fromPromise<PrepareOutput, { runId: string }>(({ signal }) => prepareRun(l, { homesRoot: this.#d.dirs.homes, docker: this.#d.docker, config: this.#d.config, log: this.#log }, emit, signal)),
      },
    });
    const actor = createActor(machine, {
      input: {
        runId: id,
        timeoutMs: plan.timeoutSecs * 1000,
        stopWaitMs: this.#d.config.kill_grace_ms + 5000,
        emit,
        now: () => Date.now(),
        agentInput,
      },
    });
    const active: ActiveRun = { id, userId: plan.userId, agent: adapter.name, channel, actor, admitted: false, status: null, usage: null, docker: plan.limits !== null, pendingPermissions: 0, asksUser: plan.permissions.policy === "ask", cwd, homeKey: plan.homeKey, project: plan.projectId !== undefined, ...(batchId !== undefined ? { batchId } : {}) };
    this.#active.set(id, active);
    actor.subscribe({
      next: (snap) => {
        if (snap.status === "done") this.#onMachineDone(active);
      },
      error: (err) => {
        this.#log.error("run machine error", { run_id: id, err: String(err) });
        this.#onMachineDone(active);
      },
    });
    actor.start();
    const position = this.#admission.enqueue(id, plan.userId, plan.metadata.priority ?? "normal");
    if (stored.queued) {
      channel.append({ type: "run.queued", data: { agent: adapter.name, input: { text: body.input.text }, position } });
      this.#publish(active, "queued");
    } else active.status = "queued"; // a claimed run: queued (and published) by the API server
    void channel.whenTerminal().then(() => {
      stall?.stop();
      slot?.release();
      this.#active.delete(id);
      this.#permissions.endRun(id);
    });
  }



  /** The container a live docker run's agent runs in (from its `run.started`); undefined otherwise. */
  liveContainerId(runId: string): string | undefined {
    return this.#active.get(runId)?.containerId;
  }

  /** Resolves a run the caller may see (admins see all). @throws NotFoundError */
  async get(caller: Caller, runId: string): Promise<RunRow> {
    const row = await this.#visible(caller, runId);
    if (!row) throw new NotFoundError("run");
    return row;
  }

  /** The run if the caller may see it (admins see all), else undefined. */
  async #visible(caller: Caller, runId: string): Promise<RunRow | undefined> {
    const row = await this.#d.store.runs.get(runId);
    return row && (caller.role === "admin" || row.user_id === caller.id) ? row : undefined;
  }

  /** Resolves the caller's runs (admins: all, unless `mine`). */
  list(caller: Caller, q: Omit<RunListQuery, "user_id">, mine = false): ReturnType<Store["runs"]["list"]> {
    return this.#d.store.runs.list({ ...q, ...(caller.role !== "admin" || mine ? { user_id: caller.id } : {}) });
  }

  /**
   * The caller's answer to an open permission request of a run they may see
   * (the owner; admins too, as for cancel: the decision records `user:<name>`).
   * @throws NotFoundError (404: run not visible, or no such request), ConflictError (409
   *   `permission_already_decided`: decided already, or the run has ended), ValidationError (400 `unknown_option`)
   */
  async answerPermission(caller: Caller, runId: string, requestId: string, optionId: string): Promise<PermissionDecision> {
    const row = await this.get(caller, runId);
    if (this.#remote) return this.#remote.answer(row, requestId, optionId, `user:${caller.username}`);
    if (!this.#permissions.knows(runId, requestId) && (await storedRequestExists(this.#d.store.events, runId, requestId)))
      throw new ConflictError("the permission request was already decided", "permission_already_decided");
    return this.#permissions.answer(runId, requestId, optionId, `user:${caller.username}`);
  }

  /** The open permission requests of a run the caller may see, oldest first. @throws NotFoundError */
  async listPermissions(caller: Caller, runId: string): Promise<PendingPermission[]> {
    const row = await this.get(caller, runId);
    if (this.#remote) return this.#remote.listOpen(row);
    return this.#permissions.listOpen(runId);
  }

  /** Requests cancellation; idempotent (a finished run is returned as it is). @throws NotFoundError */
  async cancel(caller: Caller, runId: string, reason = "cancelled by user"): Promise<RunRow> {
    const row = await this.get(caller, runId);
    if (this.#remote) await this.#remote.cancel(row, reason, `user:${caller.username}`);
    else this.#cancelActive(runId, reason, `user:${caller.username}`);
    return row;
  }

  /** Cancels if needed, waits for the terminal event, then deletes the run and its events. @throws NotFoundError */
  async delete(caller: Caller, runId: string): Promise<void> {
    const row = await this.get(caller, runId);
    if (this.#remote) {
      await this.#remote.cancel(row, "run deleted", `user:${caller.username}`);
      await this.#remote.waitForTerminal(row);
      await this.#d.store.runs.delete(runId);
      return;
    }
    const active = this.#active.get(runId);
    if (active) {
      this.#cancelActive(runId, "run deleted", `user:${caller.username}`);
      await active.channel.whenTerminal();
    }
    await this.#d.store.runs.delete(runId);
  }

  /** Cancels every live run of a user and waits for their terminal events (before the user is deleted). */
  async cancelUserRuns(userId: string, by: string): Promise<void> {
    this.#blockedUsers.add(userId); // no new runs while (and after) the user is deleted
    if (this.#remote) return this.#remote.cancelUserRuns(userId, by);
    const mine = [...this.#active.values()].filter((a) => a.userId === userId);
    for (const a of mine) this.#cancelActive(a.id, "user deleted", by);
    await Promise.all(mine.map((a) => a.channel.whenTerminal()));
    await this.#d.writer.flush();
  }

  /** Resolves the channel to read a run's events from: the live one, or a finished one replaying the store (a follower of a worker's run with the `api` role). */
  async channelFor(row: RunRow): Promise<RunChannel> {
    if (this.#remote) return this.#remote.channelFor(row);
    const active = this.#active.get(row.id);
    if (active) return active.channel;
    const lastId = await this.#d.store.events.lastId(row.id);
    const live = this.#active.get(row.id); // it may have started while we read
    if (live) return live.channel;
    return this.#newChannel(row.id, lastId, isTerminalStatus(row.status) ? lastId : null);
  }

  /** Resolves with the final row once the run's terminal event is stored. */
  async waitForTerminal(runId: string): Promise<RunRow | undefined> {
    if (this.#remote) {
      const row = await this.#d.store.runs.get(runId);
      return row && this.#remote.waitForTerminal(row);
    }
    const active = this.#active.get(runId);
    if (active) await active.channel.whenTerminal();
    return this.#d.store.runs.get(runId);
  }

  /**
   * Ends runs left non-terminal by a previous process (see `recovery.ts`).
   * Returns the run ids.
   */
  async recover(): Promise<string[]> {
    if (this.#d.cluster) return []; // distributed mode: a run of a lost process is ended when its lease expires (worker.ts)
    const ids = await recoverInterruptedRuns({ store: this.#d.store, writer: this.#d.writer, log: this.#log, channelOf: (id, last) => this.#newChannel(id, last) });
    await this.batches.recordRecovered(ids);
    return ids;
  }

  /**
   * Ordered shutdown; the second call returns the first call's promise: stop
   * admitting, cancel queued runs, cancel running ones (or wait up to
   * `shutdown_grace_ms` when `shutdown_runs` is `wait`), wait for their
   * terminal events, flush the writer, end every SSE subscription.
   */
  close(): Promise<void> {
    return (this.#closing ??= this.#close());
  }

  async #close(): Promise<void> {
    this.#admitting = false;
    if (this.#remote) {
      await this.#remote.close(); // runs on workers go on; readers reconnect to another API server
      this.batches.closeAll();
      return;
    }
    for (const id of this.#admission.drain()) this.#cancelActive(id, "server shutdown", "server");
    const all = () => Promise.all([...this.#active.values()].map((a) => a.channel.whenTerminal()));
    if (this.#d.config.shutdown_runs === "wait") await withTimeout(all(), this.#d.config.shutdown_grace_ms);
    for (const id of [...this.#active.keys()]) this.#cancelActive(id, "server shutdown", "server");
    await withTimeout(all(), this.#d.config.kill_grace_ms + 6000);
    await this.#d.writer.flush();
    for (const a of this.#active.values()) {
      a.actor.stop();
      a.channel.closeAll();
    }
    await this.batches.idle(); // the batch events of the last status changes stored
    this.batches.closeAll();
  }

  #newChannel(runId: string, lastStoredId: number, terminalId: number | null = null): RunChannel {
    return new RunChannel({
      runId,
      lastStoredId,
      terminalId,
      writer: this.#d.writer,
      events: this.#d.store.events,
      bufferLimit: this.#d.config.sse_buffer_events,
      onSubscribers: (delta) => this.#d.bus.publish("sse.subscribers", { delta }),
    });
  }

  #cancelActive(runId: string, reason: string, by: string): void {
    const active = this.#active.get(runId);
    if (!active) return;
    this.#admission.remove(runId);
    active.actor.send({ type: "CANCEL", reason, by });
  }

  #pump(): void {
    if (!this.#admitting) return;
    for (const { id, userId } of this.#admission.admit()) {
      const active = this.#active.get(id);
      if (active) this.#admit(active);
      else this.#admission.release(userId);
    }
  }

  #admit(active: ActiveRun): void {
    active.admitted = true;
    this.#d.writer.patchRun(active.id, { status: "preparing" }); // ordered with the run's events (before its run.started)
    this.#publish(active, "preparing");
    active.actor.send({ type: "START" });
  }

  #onMachineDone(active: ActiveRun): void {
    if (active.docker) {
      // Backstop: the process actor removes the container on every path it sees; this covers the rest (an agent actor that threw).
      const c = active.actor.getSnapshot().context.prepared?.container;
      if (c?.perRun) void c.handle.remove({ force: true }).catch((err: unknown) => this.#log.warn("could not remove a run's container", { run_id: active.id, container_id: c.handle.id, err: String(err) }));
    }
    if (!active.admitted) return;
    active.admitted = false;
    this.#admission.release(active.userId);
    queueMicrotask(() => this.#pump());
    if (this.#d.cluster?.role === "worker") void active.channel.whenTerminal().then(this.#d.cluster.onRunEnded);
  }

  #publish(active: ActiveRun, status: RunStatus): void {
    const prev = active.status;
    active.status = status;
    this.#d.bus.publish("run.status", { run_id: active.id, user_id: active.userId, agent: active.agent, status, prev });
    if (active.batchId !== undefined) this.batches.onRunStatus(active.batchId, active.id, status, prev);
  }
}



async function withTimeout(p: Promise<unknown>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([p, new Promise((r) => (timer = setTimeout(r, ms)))]);
  clearTimeout(timer);
}

