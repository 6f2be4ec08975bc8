/**
 * The RunManager (docs/architecture.md#run-lifecycle): admission with a global and a per-user
 * concurrency limit and a FIFO queue, one xstate run machine per run, cancel,
 * timeouts, projections of events onto the run row, recovery at start and an
 * ordered, idempotent shutdown.
 *
 * Path of a prompt: `create()` validates and stores the run, appends
 * `run.queued` and queues it; `#pump()` admits it (START), the machine runs
 * `prepare` then the agent's process actor, which streams events into the
 * run's {@link RunChannel}; the EventWriter commits them and the channel fans
 * them out to SSE subscriptions; the terminal event, committed together with
 * the row's final state, ends the run.
 *
 * Docker isolation (`metadata.isolation: "docker"`, or the server's
 * `docker.default_isolation`): `create()` checks the requested limits against
 * the admin maxima (400) and that the engine answers (503
 * `engine_unavailable`); `prepare` creates and starts the run's container
 * (`src/container/run-container.ts`), or takes a warm one from the pool
 * (`src/container/pool.ts`), which the process actor runs the agent in and
 * removes at the end. A project run (`metadata.project_id`) claims its turn on
 * the project at `create()` (409 `project_busy` in reject mode), waits for it
 * in `prepare` and runs in the project's long-lived container
 * (`src/container/projects.ts`); the turn is given back at its terminal event.
 */
import path from "node:path";
import { ulid } from "ulid";
import { createActor, fromPromise, type Actor } from "xstate";
import { processActor, type ProcessActorInput } from "../agent/process-actor.ts";
import { acpActor } from "../agent/acp/actor.ts";
import { isAcpAdapter, isAcpRunAdapter } from "../agent/acp/adapter.ts";
import type { RunAs } from "../agent/run-as.ts";
import type { AgentRegistry } from "../agent/registry.ts";
import type { Bus } from "../bus/bus.ts";
import type { Config } from "../config/schema.ts";
import { createRunContainer } from "../container/run-container.ts";
import { acquireRunContainer, type WarmPool } from "../container/pool.ts";
import type { ProjectContainers } from "../container/projects.ts";
import type { ContainerClient } from "../container/types.ts";
import { ConflictError, ForbiddenError, NotFoundError, ShuttingDownError, TooManyRequestsError, ValidationError, UnauthorizedError } from "../errors.ts";
import type { Log } from "../log.ts";
import type { RunListQuery, RunRow, Store } from "../store/types.ts";
import { RunChannel } from "./channel.ts";
import type { EventWriter } from "./event-writer.ts";
import { AdmissionQueue } from "./admission.ts";
import { resolveContainerLimits } from "./container-limits.ts";
import { isTerminalType, TERMINAL_STATUSES, type RunEvent, type RunStatus, type Usage } from "../protocol/events.ts";
import { addUsage, terminalPatch } from "./projection.ts";
import { createPermissionGate, PermissionRegistry, storedRequestExists, type PendingPermission, type PermissionDecision } from "./permissions.ts";
import { recoverInterruptedRuns } from "./recovery.ts";
import { runMachine, type PrepareOutput } from "./machine.ts";
import type { CreateRunBody } from "../protocol/requests.ts";
import { checkWorkspaceFree, inheritPlacement } from "./placement.ts";
import { ensureHome, resolveRunCwd } from "./workspace.ts";
import { checkTaskRequest } from "../agent/task/request.ts";

/** The caller of a manager method. */
export interface Caller {
  id: string;
  username: string;
  role: "admin" | "user";
}

export interface RunManagerDeps {
  config: Pick<
    Config,
    "max_concurrent_runs" | "max_concurrent_runs_per_user" | "max_queued_runs_per_user" | "allow_shell_for_users" | "default_timeout_secs" | "max_timeout_secs" | "kill_grace_ms" | "sse_buffer_events" | "shutdown_runs" | "shutdown_grace_ms"
  > & { docker?: Config["docker"]; agents?: Config["agents"]; permissions?: Config["permissions"] };
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
}

interface ActiveRun {
  id: string;
  userId: string;
  agent: string;
  channel: RunChannel;
  actor: Actor<typeof runMachine>;
  admitted: boolean;
  /** Last status published for the run (the `prev` of the next change). */
  status: RunStatus | null;
  usage: Usage | null;
  /** Runs in a container (removed again as a backstop when the machine ends). */
  docker: boolean;
  /** `permission.request` events not yet followed by their `permission.decision`. */
  pendingPermissions: number;
  /** The run's permission policy is `ask`: only then does a request block the run (`waiting`); `allow`/`deny` decide at once. */
  asksUser: boolean;
  /** Working directory (absolute) and agent home key: held from create to the terminal event, see `checkWorkspaceFree` (placement.ts). */
  cwd: string;
  homeKey: string;
  /** A project run: its folder is shared by design and serialized by the project's lock. */
  project: boolean;
  /** The container the run's agent runs in, from its `run.started` (docker runs). */
  containerId?: string;
}

/** Committed event types republished on the bus as `run.event` (for webhooks). */
const NOTIFY_TYPES: ReadonlySet<string> = new Set(["permission.request", "permission.decision", "run.completed", "run.failed", "run.cancelled", "run.timed_out"]);

const isTerminalStatus = (s: RunStatus) => TERMINAL_STATUSES.includes(s);

/** See the module comment. Create one per server; call `recover()` before serving. */
export class RunManager {
  readonly #d: RunManagerDeps;
  readonly #log: Log;
  readonly #active = new Map<string, ActiveRun>();
  readonly #admission: AdmissionQueue;
  #admitting = true;
  /** Users being deleted: they may start no new run. */
  readonly #blockedUsers = new Set<string>();
  #closing: Promise<void> | null = null;
  /** Open permission requests of every live run. */
  readonly #permissions = new PermissionRegistry();

  constructor(deps: RunManagerDeps) {
    this.#d = deps;
    this.#log = deps.log.getSubLogger({ name: "run.manager" });
    this.#admission = new AdmissionQueue({ maxRunning: deps.config.max_concurrent_runs, maxRunningPerUser: deps.config.max_concurrent_runs_per_user });
  }

  /** Number of admitted (preparing or running) runs. */
  get runningCount(): number {
    return this.#admission.running;
  }

  /** Row projections, called by the EventWriter inside its commit transaction. */
  project(events: readonly RunEvent[]): Array<() => void> {
    const after: Array<() => void> = [];
    for (const e of events) {
      const active = this.#active.get(e.run_id);
      if (e.type === "run.started") {
        this.#d.store.runs.update(e.run_id, { status: "running", started_at: e.ts });
        if (active && e.data.container_id) active.containerId = e.data.container_id;
        if (active) after.push(() => this.#publish(active, "running"));
      } else if (e.type === "agent.session") {
        this.#d.store.runs.update(e.run_id, { session_id: e.data.session_id });
      } else if (e.type === "usage" && active) {
        active.usage = addUsage(active.usage, e.data);
      } else if (e.type === "permission.request" && active?.asksUser) {
        // Blocked on a person: `waiting` until every open request is decided.
        if (active.pendingPermissions++ === 0) {
          this.#d.store.runs.update(e.run_id, { status: "waiting" });
          after.push(() => this.#publish(active, "waiting"));
        }
      } else if (e.type === "permission.decision" && active && active.pendingPermissions > 0) {
        if (--active.pendingPermissions === 0) {
          this.#d.store.runs.update(e.run_id, { status: "running" });
          after.push(() => this.#publish(active, "running"));
        }
      } else if (isTerminalType(e.type)) {
        const patch = terminalPatch(e as RunEvent & { type: typeof e.type }, active?.usage ?? null);
        this.#d.store.runs.update(e.run_id, patch);
        if (active) after.push(() => this.#publish(active, patch.status!));
      }
      if (active && NOTIFY_TYPES.has(e.type)) after.push(() => this.#d.bus.publish("run.event", { user_id: active.userId, event: e }));
    }
    return after;
  }

  /**
   * Validates and queues a run.
   * @throws ValidationError (400: bad cwd, timeout over the maximum, resume of another agent), NotFoundError (404: resume of an unknown or foreign run),
   *   ForbiddenError (403: extra_args by a non-admin), AgentUnavailableError (503), ShuttingDownError (503)
   */
  async create(caller: Caller, body: CreateRunBody): Promise<RunRow> {
    if (!this.#admitting) throw new ShuttingDownError();
    if (this.#blockedUsers.has(caller.id)) throw new UnauthorizedError();
    if (this.#admission.queuedFor(caller.id) >= this.#d.config.max_queued_runs_per_user) throw new TooManyRequestsError(5);
    let resumed: RunRow | undefined;
    if (body.metadata.resume !== undefined) {
      resumed = this.get(caller, body.metadata.resume);
      if (!TERMINAL_STATUSES.includes(resumed.status)) throw new ConflictError(`run ${resumed.id} is still ${resumed.status}; resume it once it has ended`, "run_active");
      if (resumed.agent !== body.metadata.agent_type) throw new ValidationError(`run ${body.metadata.resume} used agent ${resumed.agent}, not ${body.metadata.agent_type}`, { field: "metadata.resume" }, "resume_agent_mismatch");
      if (!resumed.session_id) throw new ValidationError(`run ${body.metadata.resume} has no agent session to resume`, { field: "metadata.resume" }, "resume_no_session");
    }
    // A resumed run keeps where the earlier one ran (its isolation and project) unless the request says otherwise.
    const md = resumed ? inheritPlacement(body.metadata, resumed.metadata) : body.metadata;
    if (md.extra_args && caller.role !== "admin") throw new ForbiddenError("metadata.extra_args is allowed for admins only");
    const timeoutSecs = md.timeout_secs ?? this.#d.config.default_timeout_secs;
    if (timeoutSecs > this.#d.config.max_timeout_secs)
      throw new ValidationError(`metadata.timeout_secs must be at most ${this.#d.config.max_timeout_secs}`, { field: "metadata.timeout_secs", value: timeoutSecs });
    // A project run (`metadata.project_id`, see src/container/projects.ts) implies docker isolation.
    const limits = resolveContainerLimits(md.project_id !== undefined && md.isolation === undefined ? { ...md, isolation: "docker" } : md, this.#d.config.docker, this.#d.docker !== undefined);
    const projects = md.project_id !== undefined ? this.#d.docker?.projects : undefined;
    if (md.project_id !== undefined && (!limits || !projects)) throw new ValidationError("metadata.project_id needs docker isolation", { field: "metadata.project_id" });
    const adapter = await this.#d.registry.require(md.agent_type);
    const task = checkTaskRequest(body, this.#d.config.docker, limits !== null); // agent_type "task": the batch image (src/agent/task/)
    if (limits) await this.#d.docker!.client().ping({ timeoutMs: 3000 });
    const id = `run_${ulid()}`;
    // ACP: bind the adapter to `metadata.acp_agent` (unknown agent, resume without session/load: 400 here, not at run time).
    const runAdapter = isAcpAdapter(adapter) ? await adapter.forRun(md.acp_agent, { resume: resumed !== undefined, resumedAgent: resumed?.metadata.acp_agent, docker: limits !== null }) : adapter;
    if (adapter.name === "shell" && caller.role !== "admin" && !this.#d.config.allow_shell_for_users && !limits)
      throw new ForbiddenError("host shell runs are for admins only (use isolation docker, or set allow_shell_for_users)");
    // Each user has a root of their own: a cwd can never name another user's workspace.
    const projectDir = projects && !resumed ? await projects.ensureDir(caller.id, md.project_id!) : undefined;
    const cwd = resumed
      ? resumed.cwd
      : projectDir !== undefined
        ? md.cwd === undefined ? projectDir : await resolveRunCwd(projectDir, id, md.cwd)
        : await resolveRunCwd(path.join(this.#d.dirs.workspaces, caller.id), id, md.cwd);
    if (!projects && md.cwd !== undefined) await this.#d.docker?.projects?.checkNotInProjects(caller.id, cwd);
    const homeKey = resumed ? String(resumed.metadata.home_of ?? resumed.id) : id;
    if (!this.#admitting) throw new ShuttingDownError();
    checkWorkspaceFree(this.#active.values(), { userId: caller.id, cwd, homeKey, project: projects !== undefined }); // from here to #active.set: no await
    const slot = projects?.claim(caller.id, md.project_id!); // 409 project_busy in reject mode; released at the terminal event
    const row = this.#d.store.runs.insert({
      id,
      user_id: caller.id,
      agent: adapter.name,
      status: "queued",
      input: { text: body.input.text },
      metadata: { ...md, timeout_secs: timeoutSecs, home_of: homeKey, isolation: limits ? "docker" : "none" },
      cwd,
      created_at: new Date().toISOString(),
    });
    const channel = this.#newChannel(id, 0);
    const perm = this.#d.config.permissions;
    const policy = md.permission_policy ?? perm?.default_policy ?? "ask";
    const permissions = createPermissionGate({
      runId: id,
      policy,
      timeoutMs: (md.permission_timeout_secs ?? perm?.timeout_secs ?? 300) * 1000,
      timeoutDecision: perm?.timeout_decision ?? "reject",
      emit: (e) => channel.append(e),
      registry: this.#permissions,
      runOver: () => channel.ended,
      log: this.#log,
    });
    const agentInput: ProcessActorInput = {
      permissions,
      adapter: runAdapter,
      killGraceMs: this.#d.config.kill_grace_ms,
      emit: (e) => channel.append(e),
      log: this.#log,
      ...(this.#d.runAs ? { runAs: this.#d.runAs } : {}),
      ctx: {
        run_id: id,
        text: body.input.text,
        cwd,
        home: `${this.#d.dirs.homes}/${homeKey}`,
        ...(md.model ? { model: md.model } : {}),
        ...(md.extra_args ? { extra_args: md.extra_args } : {}),
        ...(resumed?.session_id ? { resume_session_id: resumed.session_id } : {}),
        server_env: this.#d.serverEnv,
        ...(limits ? { in_container: true } : {}),
        ...(task ? { task } : {}),
      },
    };
    const machine = runMachine.provide({
      actors: {
        agent: isAcpAdapter(adapter) ? acpActor : processActor,
        prepare: fromPromise<PrepareOutput, { runId: string }>(async ({ signal }) => {
          const home = { dir: await ensureHome(this.#d.dirs.homes, homeKey), root: this.#d.dirs.homes };
          if (!limits) return {};
          const docker = this.#d.config.docker!;
          const agentCfg = this.#d.config.agents?.[adapter.name];
          const agentImage = (isAcpRunAdapter(runAdapter) ? runAdapter.acp.image : undefined) ?? agentCfg?.image; // acp_agents.<name>.image
          const container = slot
            ? await projects!.acquireForRun({
                userId: caller.id,
                projectId: md.project_id!,
                runId: id,
                image: task?.image ?? agentImage ?? docker.image,
                limits,
                limitsAsked: md.memory_mb !== undefined || md.cpus !== undefined || md.pids_limit !== undefined,
                cwd,
                home,
                ...(agentCfg?.container_command ? { command: agentCfg.container_command } : {}),
                slot,
                emit: (e) => channel.append(e),
                signal,
              })
            : await acquireRunContainer(this.#d.docker!.pool, {
            client: this.#d.docker!.client(),
            instance: this.#d.docker!.instance,
            runId: id,
            userId: caller.id,
            image: task?.image ?? agentImage ?? docker.image,
            user: docker.user,
            ...(docker.network ? { network: docker.network } : {}),
            workspace: cwd,
            home,
            limits,
            ...(agentCfg?.container_command ? { command: agentCfg.container_command } : {}),
            emit: (e) => channel.append(e),
            signal,
            log: this.#log,
          });
          return { container };
        }),
      },
    });
    const actor = createActor(machine, {
      input: {
        runId: id,
        timeoutMs: timeoutSecs * 1000,
        stopWaitMs: this.#d.config.kill_grace_ms + 5000,
        emit: (e) => channel.append(e),
        now: () => Date.now(),
        agentInput,
      },
    });
    const active: ActiveRun = { id, userId: caller.id, agent: adapter.name, channel, actor, admitted: false, status: null, usage: null, docker: limits !== null, pendingPermissions: 0, asksUser: policy === "ask", cwd, homeKey, project: projects !== undefined };
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
    const position = this.#admission.enqueue(id, caller.id);
    channel.append({ type: "run.queued", data: { agent: adapter.name, input: { text: body.input.text }, position } });
    this.#publish(active, "queued");
    void channel.whenTerminal().then(() => {
      slot?.release();
      this.#active.delete(id);
      this.#permissions.endRun(id);
    });
    this.#pump();
    return row;
  }

  /** The container a live docker run's agent runs in (from its `run.started`); undefined otherwise. */
  liveContainerId(runId: string): string | undefined {
    return this.#active.get(runId)?.containerId;
  }

  /** A run the caller may see (admins see all). @throws NotFoundError */
  get(caller: Caller, runId: string): RunRow {
    const row = this.#d.store.runs.get(runId);
    if (!row || (caller.role !== "admin" && row.user_id !== caller.id)) throw new NotFoundError("run");
    return row;
  }

  /** The caller's runs (admins: all, unless `mine`). */
  list(caller: Caller, q: Omit<RunListQuery, "user_id">, mine = false): ReturnType<Store["runs"]["list"]> {
    return this.#d.store.runs.list({ ...q, ...(caller.role !== "admin" || mine ? { user_id: caller.id } : {}) });
  }

  /**
   * The caller's answer to an open permission request of a run they may see
   * (the owner; admins too, as for cancel: the decision records `user:<name>`).
   * @throws NotFoundError (404: run not visible, or no such request), ConflictError (409
   *   `permission_already_decided`: decided already, or the run has ended), ValidationError (400 `unknown_option`)
   */
  answerPermission(caller: Caller, runId: string, requestId: string, optionId: string): PermissionDecision {
    this.get(caller, runId);
    if (!this.#permissions.knows(runId, requestId) && storedRequestExists(this.#d.store.events, runId, requestId))
      throw new ConflictError("the permission request was already decided", "permission_already_decided");
    return this.#permissions.answer(runId, requestId, optionId, `user:${caller.username}`);
  }

  /** The open permission requests of a run the caller may see, oldest first. @throws NotFoundError */
  listPermissions(caller: Caller, runId: string): PendingPermission[] {
    this.get(caller, runId);
    return this.#permissions.listOpen(runId);
  }

  /** Requests cancellation; idempotent (a finished run is returned as it is). @throws NotFoundError */
  cancel(caller: Caller, runId: string, reason = "cancelled by user"): RunRow {
    const row = this.get(caller, runId);
    this.#cancelActive(runId, reason, `user:${caller.username}`);
    return row;
  }

  /** Cancels if needed, waits for the terminal event, then deletes the run and its events. @throws NotFoundError */
  async delete(caller: Caller, runId: string): Promise<void> {
    this.get(caller, runId);
    const active = this.#active.get(runId);
    if (active) {
      this.#cancelActive(runId, "run deleted", `user:${caller.username}`);
      await active.channel.whenTerminal();
    }
    this.#d.store.runs.delete(runId);
  }

  /** Cancels every live run of a user and waits for their terminal events (before the user is deleted). */
  async cancelUserRuns(userId: string, by: string): Promise<void> {
    this.#blockedUsers.add(userId); // no new runs while (and after) the user is deleted
    const mine = [...this.#active.values()].filter((a) => a.userId === userId);
    for (const a of mine) this.#cancelActive(a.id, "user deleted", by);
    await Promise.all(mine.map((a) => a.channel.whenTerminal()));
    this.#d.writer.flush();
  }

  /** The channel to read a run's events from: the live one, or a finished one replaying the store. */
  channelFor(row: RunRow): RunChannel {
    const active = this.#active.get(row.id);
    if (active) return active.channel;
    const lastId = this.#d.store.events.lastId(row.id);
    return this.#newChannel(row.id, lastId, isTerminalStatus(row.status) ? lastId : null);
  }

  /** Resolves with the final row once the run's terminal event is stored. */
  async waitForTerminal(runId: string): Promise<RunRow | undefined> {
    const active = this.#active.get(runId);
    if (active) await active.channel.whenTerminal();
    return this.#d.store.runs.get(runId);
  }

  /**
   * Ends runs left non-terminal by a previous process (see `recovery.ts`).
   * Returns the run ids.
   */
  recover(): string[] {
    return recoverInterruptedRuns({ store: this.#d.store, writer: this.#d.writer, log: this.#log, channelOf: (id, last) => this.#newChannel(id, last) });
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
    for (const id of this.#admission.drain()) this.#cancelActive(id, "server shutdown", "server");
    const all = () => Promise.all([...this.#active.values()].map((a) => a.channel.whenTerminal()));
    if (this.#d.config.shutdown_runs === "wait") await withTimeout(all(), this.#d.config.shutdown_grace_ms);
    for (const id of [...this.#active.keys()]) this.#cancelActive(id, "server shutdown", "server");
    await withTimeout(all(), this.#d.config.kill_grace_ms + 6000);
    this.#d.writer.flush();
    for (const a of this.#active.values()) {
      a.actor.stop();
      a.channel.closeAll();
    }
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
    this.#d.store.runs.update(active.id, { status: "preparing" });
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
  }

  #publish(active: ActiveRun, status: RunStatus): void {
    const prev = active.status;
    active.status = status;
    this.#d.bus.publish("run.status", { run_id: active.id, user_id: active.userId, agent: active.agent, status, prev });
  }
}


async function withTimeout(p: Promise<unknown>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([p, new Promise((r) => (timer = setTimeout(r, ms)))]);
  clearTimeout(timer);
}
