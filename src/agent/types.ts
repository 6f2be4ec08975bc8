/**
 * The agent adapter contract (docs/architecture.md#agents). An adapter describes how to
 * run one CLI non-interactively and how to read its output; the generic process
 * actor (`src/agent/process-actor.ts`) does the spawning, line splitting,
 * cancellation and exit handling for every adapter.
 *
 * Also the actor protocol (docs/architecture.md#process-actor) between the run
 * machine (`src/run/machine.ts`) and any agent actor (the process actor, the
 * ACP actor `src/agent/acp/actor.ts`): the actor's input
 * {@link ProcessActorInput}, the events it receives ({@link ProcessActorReceived})
 * and the one it sends back ({@link ProcessActorEmitted}).
 */
import type { RunContainer } from "../container/run-container.ts";
import type { Log } from "../log.ts";
import type { CallbackActorLogic } from "xstate";
import type { Artifact, RunEventInput, RunFailureCode, Usage } from "../protocol/events.ts";
import type { McpServers } from "../protocol/requests.ts";
import type { Repos } from "../store/types.ts";
import type { PermissionGate } from "./permissions.ts";
import type { RunAs } from "./run-as.ts";

/** What /health/agents reports for one agent. */
export interface AgentHealth {
  agent: string;
  available: boolean;
  version?: string;
  path?: string;
  /** Why it is not available (when `available` is false). */
  reason?: string;
  /** The version the test suite ran against (`scripts/agents.lock.json`), for agents that have a pin. */
  tested_version?: string;
  /** Whether `version` is exactly `tested_version` (absent for agents without a pin). */
  tested?: boolean;
}

/** Everything an adapter may use to build its command for one run. */
export interface AgentRunContext {
  run_id: string;
  /** The prompt (or, for `shell`, the command line). */
  text: string;
  /** Absolute working directory of the run, inside the workspaces root. */
  cwd: string;
  /** Absolute per-run (or per-session) directory for the agent's isolated HOME/config. */
  home: string;
  model?: string;
  /** Admin-allowed extra CLI arguments. */
  extra_args?: string[];
  /** The agent's own session id to resume (from an earlier run's `agent.session`). */
  resume_session_id?: string;
  /** Environment of the server process (read-only); adapters pass through only what they need. */
  server_env: Readonly<Record<string, string | undefined>>;
  /** `metadata.mcp_servers`, checked against the admin's lists: each adapter offers them to its agent its own way. */
  mcp_servers?: McpServers;
  /** The run executes inside a container (`isolation: "docker"`): adapters use their `container_base_url`. */
  in_container?: boolean;
  /** `agent_type: "task"` runs: the batch image and what goes into `/workspace/task.json` (see `src/agent/task/`). */
  task?: TaskRunSpec;
  /** `metadata.plan`: plan first, then work (the `openrunner` agent). */
  plan?: boolean;
  /** W3C `traceparent` of the run's span (`src/protocol/trace-context.ts`), given to the agent as `TRACEPARENT`. */
  traceparent?: string;
}

/** What a `task` run executes: an admin-allowed batch image, and the run's input and metadata for `task.json`. */
export interface TaskRunSpec {
  image: string;
  input: { text: string; files?: Array<{ path: string; content: string; encoding?: "utf8" | "base64" }> };
  metadata: Record<string, unknown>;
}

/** The process to start: argv[0] is the executable. `env` is the complete environment (nothing else is inherited). */
export interface AgentCommand {
  argv: string[];
  /** argv[0] is a path inside the container image (task entrypoints): used as-is, not translated to its basename. */
  container_native?: boolean;
  env: Record<string, string>;
  cwd: string;
}

/** How a run ends, as decided by an adapter from the process exit and what it parsed. */
export type AgentOutcome =
  | { kind: "completed"; exit_code: number; result?: string; usage?: Usage; artifacts?: Artifact[] }
  | { kind: "failed"; exit_code?: number; code: RunFailureCode; message: string };

/** The process exit as seen by the process actor. */
export interface ProcessExit {
  /** Exit code, or undefined when killed by a signal. */
  exit_code?: number;
  signal?: string;
  /** Last stderr lines (at most ~4 KiB), for error messages. */
  stderr_tail: string;
}

/**
 * A per-run parser of one CLI's output. `parseLine` and `parseStderr` are pure with
 * respect to I/O: they map one line (without its newline) to event inputs and may
 * keep state in the parser object (message accumulation, session id).
 */
export interface LineParser {
  parseLine(line: string): RunEventInput[];
  /** stderr lines; the default adapters turn them into `log` events. */
  parseStderr(line: string): RunEventInput[];
  /** Events to flush at the end of the stream (e.g. a whole `message` built from deltas). */
  end(): RunEventInput[];
  /** Decides the terminal outcome from the exit and what was parsed. */
  outcome(exit: ProcessExit): AgentOutcome;
}

/** One agent adapter. */
export interface AgentAdapter {
  /** The `metadata.agent_type` value, e.g. `"shell"`, `"claude_code"`. */
  readonly name: string;
  /** Whether the agent can run here; cached by the registry. */
  detect(): Promise<AgentHealth>;
  /** Prepares the isolated home (config files) and returns the command. May throw AppError. */
  command(ctx: AgentRunContext): Promise<AgentCommand>;
  /** A fresh parser for one run. */
  createParser(ctx: AgentRunContext): LineParser;
  /**
   * Optional: after the process (and a per-run container) ended, turns the outcome into the final one
   * (the `task` adapter collects artifacts here). May emit events (before the terminal one). Must not throw.
   */
  finalize?(ctx: AgentRunContext, outcome: AgentOutcome, emit: (e: RunEventInput) => void): Promise<AgentOutcome>;
  /**
   * Optional: checks a run's request when it is created, before anything is stored, so what
   * would fail at run time is a 400 instead (the `openrunner` agent's model and provider).
   * @throws ValidationError
   */
  checkRun?(metadata: { model?: string }): void;
  /** Optional: the actor that runs this adapter's runs instead of the process actor (the `openrunner` agent's model loop). */
  readonly actor?: CallbackActorLogic<ProcessActorReceived, ProcessActorInput, ProcessActorEmitted>;
}

/**
 * Input of an agent actor (the process actor, the ACP actor), handed over by the
 * run machine when it enters `running`; `container` is added from `prepare`'s output.
 */
export interface ProcessActorInput {
  adapter: AgentAdapter;
  ctx: AgentRunContext;
  /** Appends an event to the run's channel. */
  emit: (e: RunEventInput) => void;
  /** ms between SIGTERM and SIGKILL of the group on STOP. */
  killGraceMs: number;
  /** Run the command in this container (from `prepare`) instead of on the host. */
  container?: RunContainer;
  /** On the host, run as this unprivileged user; the run's cwd and home are given to it first. */
  runAs?: RunAs;
  log?: Pick<Log, "warn">;
  /** Decides the agent's permission requests (actors of agents that ask, e.g. ACP); the run's policy is inside. */
  permissions?: PermissionGate;
  /**
   * Makes a store write in the transaction that commits the run's next events (the event
   * writer's `alongside`; a later write with the same key replaces a pending one): `write` is
   * called with that transaction's repositories and must write through them (`tx`), never
   * through the store. Absent: the actor writes on its own.
   */
  persist?: (key: string, write: (tx: Repos) => Promise<void>) => void;
}

/**
 * The one event an agent actor sends to the run machine, exactly once: the run's
 * outcome and the process exit. A failure before or around the start is an
 * `AGENT.EXITED` with a failed outcome (its code from a thrown `RunFailure`, see
 * `failureCode()`), never an actor error; an actor that throws anyway fails the
 * run through the machine's `onError` (code `internal` unless the error carries one).
 */
export type ProcessActorEmitted = { type: "AGENT.EXITED"; outcome: AgentOutcome; exit: ProcessExit };

/**
 * Events an agent actor receives from the run machine: `STOP` (cancel or
 * timeout) ends the agent, after which it still sends `AGENT.EXITED`.
 */
export type ProcessActorReceived = { type: "STOP" };
