/**
 * `createOpenRunner()`: the run engine as a library, in the calling process,
 * without HTTP. A program starts runs and reads their events with the same
 * request schema, validation, permission gate, store and {@link RunEvent}
 * union as the server; the events are those `GET /api/runs/:id/events`
 * serves, with the same ids (replay from any id, then live, no gap, no
 * duplicate).
 *
 * Every run is owned by one local user (`user`, default `embedded`, created
 * on first use as an admin without a usable password, so nobody can log in
 * as it if the same data folder is later served over HTTP).
 *
 * @example
 * import { createOpenRunner } from "openrunner";
 * const runner = await createOpenRunner({ settings: { data_dir: "./data" } });
 * const run = await runner.startRun({ input: { text: "echo hi" }, metadata: { agent_type: "shell" } });
 * for await (const ev of runner.events(run.id)) console.log(ev.id, ev.type);
 * await runner.close();
 */
import { randomBytes } from "node:crypto";
import type { AgentHealth, AgentAdapter } from "./agent/types.ts";
import { validateBody } from "./api/validate.ts";
import { hashPassword } from "./auth/passwords.ts";
import { loadConfig } from "./config/load.ts";
import type { Config } from "./config/schema.ts";
import { createEngine, type Engine } from "./engine.ts";
import { ConflictError, ValidationError } from "./errors.ts";
import { createRootLogger, LOG_LEVELS, type Log, type LogLevelName } from "./log.ts";
import type { RunEvent } from "./protocol/events.ts";
import { CreateRunBody } from "./protocol/requests.ts";
import type { PendingPermission, PermissionDecision } from "./run/permissions.ts";
import type { Caller } from "./run/plan.ts";
import type { RunListQuery, RunRow, UserRow } from "./store/types.ts";

export type { RunEvent } from "./protocol/events.ts";
export type { CreateRunBody } from "./protocol/requests.ts";

/** Input of {@link createOpenRunner}. */
export interface OpenRunnerOptions {
  /**
   * A complete configuration (for example from `loadConfig`). When absent it
   * is built like the server's: defaults, then `configPath` (or
   * `OPENRUNNER_CONFIG`, or `./openrunner.yaml`), then `OPENRUNNER_*` in
   * `env`, then `settings`.
   */
  config?: Config;
  /** Top-level settings by name (`data_dir`, `max_concurrent_runs`, …), as the CLI flags give them. */
  settings?: Record<string, unknown>;
  /** YAML configuration file to read; it must exist. */
  configPath?: string;
  /** The environment agents inherit their keys from and `OPENRUNNER_*` is read from; default `process.env`. */
  env?: Record<string, string | undefined>;
  /** Logger; default a tslog logger at `config.log_level`. */
  log?: Log;
  /** Username owning the runs; created on first use. Default `embedded`. */
  user?: string;
  /** Extra agent adapters, registered after the built-in ones. */
  adapters?: AgentAdapter[];
  /** Working directory relative paths of the configuration resolve against; default process.cwd(). */
  cwd?: string;
}

/** Options of {@link OpenRunner.events}. */
export interface EmbeddedEventsOptions {
  /** Only events with an id above this (the `Last-Event-ID` of SSE); default 0, the whole run. */
  after?: number;
  /** Ends the iteration (without an error) when aborted. */
  signal?: AbortSignal;
  /** Events buffered for a slow consumer before the engine pauses this reader; default 10,000. */
  highWaterMark?: number;
}

/** The engine as a library. Runs are owned by {@link OpenRunner.user}. */
export interface OpenRunner {
  /** The local user owning every run started here. */
  readonly user: Readonly<Caller>;
  /** The configuration in effect. */
  readonly config: Config;
  /**
   * Validates `body` with the schema of `POST /api/runs` and queues the run.
   * @throws ValidationError (`validation_failed` with `details`, or the plan's 400s),
   *   ConflictError, TooManyRequestsError, AgentUnavailableError, ShuttingDownError:
   *   the same classes (and `code`s) the API maps to HTTP.
   */
  startRun(body: unknown): Promise<RunRow>;
  /** Resolves the run. @throws NotFoundError (rejects) */
  getRun(runId: string): Promise<RunRow>;
  /** Resolves a page of runs, newest first; `next_cursor` is null on the last page. `limit` default 50. */
  listRuns(q?: Partial<Omit<RunListQuery, "user_id">>): Promise<{ runs: RunRow[]; next_cursor: string | null }>;
  /** Requests cancellation; idempotent; resolves the run as it was. @throws NotFoundError (rejects) */
  cancelRun(runId: string, reason?: string): Promise<RunRow>;
  /** Cancels if needed, waits for the end, deletes the run and its events. @throws NotFoundError */
  deleteRun(runId: string): Promise<void>;
  /** Resolves with the final row once the run's terminal event is stored. @throws NotFoundError */
  waitRun(runId: string): Promise<RunRow>;
  /**
   * The run's events from `after`: stored ones first, then live, ending after
   * the terminal event (`run.completed`, `run.failed`, `run.cancelled`).
   * @throws NotFoundError (from the first `next()`) for an unknown run.
   */
  events(runId: string, opts?: EmbeddedEventsOptions): AsyncIterable<RunEvent>;
  /** Resolves the open permission requests of a run, oldest first. @throws NotFoundError (rejects) */
  listPermissions(runId: string): Promise<PendingPermission[]>;
  /** Resolves the decision. @throws NotFoundError, ConflictError (`permission_already_decided`), ValidationError (`unknown_option`) (rejects) */
  answerPermission(runId: string, requestId: string, optionId: string): Promise<PermissionDecision>;
  /** Every registered agent: available or not, version, tested version. */
  agents(): Promise<AgentHealth[]>;
  /** The engine underneath (bus, store, manager) for what this facade does not cover. */
  readonly engine: Engine;
  /** Ends live runs (as the server's shutdown does), flushes and closes the store. Safe to call twice. */
  close(): Promise<void>;
}

const DEFAULT_USER = "embedded";

/**
 * Starts the engine in this process: opens (or creates) the data folder and
 * its SQLite store, ends runs an earlier crash left live, reaches the
 * container engine if there is one, and ensures the owning user.
 * @throws ConfigError for a bad configuration; ValidationError when `user` is
 *   not a valid username; what `createEngine` throws (data folder locked by a
 *   live server, database unusable, docker-by-default without an engine).
 */
export async function createOpenRunner(opts: OpenRunnerOptions = {}): Promise<OpenRunner> {
  const env = opts.env ?? process.env;
  const config =
    opts.config ??
    loadConfig({ env, ...(opts.settings ? { flags: opts.settings } : {}), ...(opts.configPath ? { configPath: opts.configPath } : {}), ...(opts.cwd ? { cwd: opts.cwd } : {}) });
  const username = opts.user ?? DEFAULT_USER;
  if (!/^[A-Za-z0-9_.-]{1,64}$/.test(username)) throw new ValidationError("user: 1-64 characters [A-Za-z0-9_.-]", "validation_failed");
  const level = (config.log_level in LOG_LEVELS ? config.log_level : "info") as LogLevelName;
  const log = opts.log ?? createRootLogger({ level, name: "openrunner" });
  const engine = await createEngine({ config, env, log, ...(opts.adapters ? { adapters: opts.adapters } : {}), ...(opts.cwd ? { cwd: opts.cwd } : {}) });
  let caller: Caller;
  try {
    caller = await ensureUser(engine, username);
  } catch (err) {
    await engine.close();
    throw err;
  }
  const { manager } = engine;
  return {
    user: caller,
    config,
    engine,
    startRun: async (body) => manager.create(caller, validateBody(CreateRunBody, body)),
    getRun: (id) => manager.get(caller, id),
    listRuns: (q = {}) => manager.list(caller, { limit: 50, ...q }, true),
    cancelRun: (id, reason) => manager.cancel(caller, id, reason),
    deleteRun: (id) => manager.delete(caller, id),
    waitRun: async (id) => {
      await manager.get(caller, id);
      return (await manager.waitForTerminal(id)) ?? manager.get(caller, id);
    },
    events: (id, o = {}) => ({ [Symbol.asyncIterator]: () => followRun(engine, caller, id, o) }),
    listPermissions: (id) => manager.listPermissions(caller, id),
    answerPermission: (id, requestId, optionId) => manager.answerPermission(caller, id, requestId, optionId),
    agents: () => engine.registry.health(),
    close: () => engine.close(),
  };
}

/** Resolves the owning user, created (admin, random unusable password) when absent. */
async function ensureUser(engine: Engine, username: string): Promise<Caller> {
  const { store } = engine;
  const existing = await store.users.getByUsername(username);
  if (existing) return { id: existing.id, username: existing.username, role: existing.role };
  const password_hash = await hashPassword(randomBytes(32).toString("base64url"));
  let row: UserRow;
  try {
    row = await store.transaction(async (tx) => (await tx.users.getByUsername(username)) ?? tx.users.create({ username, password_hash, role: "admin" }));
  } catch (err) {
    // Another process sharing the database (PostgreSQL) created it meanwhile: use theirs.
    const raced = err instanceof ConflictError && err.code === "username_taken" ? await store.users.getByUsername(username) : undefined;
    if (!raced) throw err;
    row = raced;
  }
  return { id: row.id, username: row.username, role: row.role };
}

/**
 * One reader of a run's channel as an async iterator: the channel pushes
 * chunks into a queue, paused above `highWaterMark` and resumed as the
 * consumer drains it. A reader detached for lagging subscribes again after
 * the last id it queued once the consumer has drained the queue below half
 * the mark, so the consumer sees no gap and no duplicate and the queue stays
 * bounded.
 */
function followRun(engine: Engine, caller: Caller, runId: string, o: EmbeddedEventsOptions): AsyncIterator<RunEvent> {
  const high = o.highWaterMark ?? 10_000;
  const queue: RunEvent[] = [];
  let head = 0;
  let lastId = Math.max(0, o.after ?? 0);
  let ended = false;
  let failure: unknown;
  let wake: (() => void) | undefined;
  let sub: { close(): void; resume(): void } | undefined;
  let paused = false;
  let lagged = false;
  const notify = () => {
    const w = wake;
    wake = undefined;
    w?.();
  };
  const onAbort = () => finish(true);
  /** Ends the iteration; `discard`: also what is buffered (abort, `return()`). */
  const finish = (discard = false) => {
    ended = true;
    if (discard) queue.length = head = 0;
    sub?.close();
    o.signal?.removeEventListener("abort", onAbort);
    notify();
  };
  const subscribe = async () => {
    const channel = await engine.manager.channelFor(await engine.manager.get(caller, runId));
    if (ended) return; // aborted or returned while the run was looked up
    sub = channel.subscribe(lastId, {
      write(chunk) {
        for (const e of chunk.events) if (e.id > lastId) queue.push((lastId = e.id, e));
        notify();
        paused = queue.length - head >= high;
        return !paused;
      },
      lagged() {
        // Detached for falling behind: subscribe again after lastId once the consumer has drained the buffer (next()).
        lagged = true;
        sub = undefined;
        notify();
      },
      end: () => finish(), // after the terminal event, or at shutdown: the consumer drains what is buffered
    });
  };
  /** Subscribes (again), resolving once subscribed; a run deleted meanwhile, or an engine closing, ends the iteration with that error. */
  const resubscribe = async () => {
    lagged = false;
    paused = false;
    try {
      await subscribe();
    } catch (err) {
      if (ended) return;
      failure = err;
      finish();
    }
  };
  let started = false;
  return {
    async next(): Promise<IteratorResult<RunEvent>> {
      if (!started) {
        started = true;
        if (o.signal?.aborted) finish();
        else {
          o.signal?.addEventListener("abort", onAbort, { once: true });
          await resubscribe();
        }
      }
      for (;;) {
        if (head < queue.length) {
          const ev = queue[head++]!;
          if (head > 1024 && head * 2 > queue.length) queue.splice(0, head), (head = 0);
          if (queue.length - head < high / 2) {
            if (lagged && !ended) await resubscribe();
            else if (paused) {
              paused = false;
              sub?.resume();
            }
          }
          return { value: ev, done: false };
        }
        if (failure !== undefined) {
          const err = failure;
          failure = undefined;
          throw err;
        }
        if (ended) return { value: undefined, done: true };
        if (lagged) {
          await resubscribe();
          continue;
        }
        await new Promise<void>((resolve) => (wake = resolve));
      }
    },
    async return(): Promise<IteratorResult<RunEvent>> {
      finish(true);
      return { value: undefined, done: true };
    },
  };
}
