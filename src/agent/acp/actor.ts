/**
 * The ACP actor: the xstate `fromCallback` actor of `agent_type: "acp"` runs, in place of the
 * line-parsing process actor. It starts the bound agent (`AcpRunAdapter.command`) on the host
 * with execa in its own process group, as the run's user, marked with OPENRUNNER_RUN_ID (as the
 * process actor does), or, with `input.container` (`isolation: "docker"`), inside the run's
 * container through the engine's exec with stdin attached (`agent-process.ts`,
 * `container-agent.ts`). Its stderr lines become `log` events; ACP goes over its stdin/stdout:
 *
 * `initialize` (advertising fs and terminal) -> `session/new` (cwd = the run's workspace,
 * `/workspace` in a container; the agent's MCP servers) or `session/load` for
 * `metadata.resume` -> `agent.session` (updates sent before it are held until it is out) ->
 * `session/prompt` with the input, `session/update`s mapped by `map-update.ts` -> the stop
 * reason decides the outcome: `end_turn` completes (result = the last message), `cancelled`
 * after STOP cancels, `max_tokens` / `max_turn_requests` / `refusal` fail with that code.
 *
 * STOP sends `session/cancel` (pending permission asks resolve `cancelled`), waits
 * `killGraceMs` for the prompt to end, then SIGTERMs the group (SIGKILL a second later; in a
 * container: the exec's process tree there).
 * The agent exiting mid-turn fails `agent_crashed` with its stderr tail; a stdout line that
 * is not JSON-RPC fails `protocol_error` (the agent is killed; the server is unaffected).
 * Every terminal the agent opened is killed when the run ends.
 *
 * In a container, fs paths are the container's (`/workspace/…`, mapped onto the host
 * workspace with the same confinement), terminals run in the container
 * (`terminal-container.ts`), and a per-run container is stopped and removed (with its
 * events) before the outcome is reported, so the terminal event stays last.
 */
import { fromCallback } from "xstate";
import { PROTOCOL_VERSION } from "@agentclientprotocol/sdk";
import { RunFailure } from "../../protocol/errors.ts";
import { failureCode, type RunEventInput, type RunFailureCode } from "../../protocol/events.ts";
import { crashed, modelFailure, statusInMessage } from "../cli-support.ts";
import { acpMcpServers } from "../mcp-config.ts";
import { teardownRunContainer } from "../container-exec.ts";
import { createLineSplitter } from "../line-splitter.ts";
import type { PermissionGate } from "../permissions.ts";
import { chownTree, type RunAs } from "../run-as.ts";
import type { AgentCommand, AgentOutcome, ProcessActorEmitted, ProcessActorInput, ProcessActorReceived, ProcessExit } from "../types.ts";
import type { RunContainer } from "../../container/run-container.ts";
import { isAcpRunAdapter } from "./adapter.ts";
import { spawnHostAgent, type AcpAgentProcess } from "./agent-process.ts";
import { CLIENT_CAPABILITIES, createAcpClient, createStdioStream } from "./connection.ts";
import { containerAgentEnv, spawnContainerAgent } from "./container-agent.ts";
import type { ContainerPathMap } from "./fs.ts";
import { createRunHandlers } from "./handlers.ts";
import { createUpdateMapper, usageOf } from "./map-update.ts";
import { ContainerTerminalSet } from "./terminal-container.ts";
import { TerminalSet } from "./terminal.ts";
import type { AcpTerminals } from "./terminal-core.ts";

/** Input of the ACP actor: the process actor's, with the run's permission gate. */
export type AcpActorInput = ProcessActorInput & { permissions?: PermissionGate };

const STDERR_TAIL_BYTES = 4096;
/** Updates held back until `agent.session` (past it they go out at once). */
const MAX_EARLY_UPDATES = 256;
/**
 * After a completed turn, how long the agent may take to exit on its own once its stdin is
 * closed (ms). claude-code-acp 0.16 never exits at end of input, so this is also the time its
 * Claude Code gets to finish writing the session transcript before SIGTERM; without it a later
 * `session/load` lost the turn's last message on a busy machine. Added to every completed run.
 */
const EXIT_AT_EOF_MS = 500;
/** After the grace period's SIGTERM, SIGKILL follows this much later (ms). */
const TERM_TO_KILL_MS = 1000;

/** A failed outcome with a code. */
const failed = (code: RunFailureCode, message: string): AgentOutcome => ({ kind: "failed", code, message });

/** The outcome of a stop reason other than `cancelled`. */
export function outcomeOfStop(stopReason: string, result: string | undefined): AgentOutcome {
  if (stopReason === "end_turn") return { kind: "completed", exit_code: 0, ...(result !== undefined ? { result } : {}) };
  if (stopReason === "max_tokens") return failed("max_tokens", "the agent stopped: maximum number of tokens reached");
  if (stopReason === "max_turn_requests") return failed("max_turn_requests", "the agent stopped: maximum number of model requests in one turn reached");
  if (stopReason === "refusal") return failed("refusal", "the agent refused to continue");
  if (stopReason === "cancelled") return failed("agent_cancelled", "the agent cancelled the turn on its own");
  return failed("protocol_error", `unknown stop reason ${JSON.stringify(stopReason)}`);
}

/** The outcome of a JSON-RPC error answered by the agent (e.g. `-32603 Internal error: API Error: 500 …`). */
export function outcomeOfRpcError(method: string, err: unknown): AgentOutcome {
  const e = err as { code?: unknown; message?: unknown; data?: unknown };
  const detail = typeof e.data === "object" && e.data !== null ? JSON.stringify(e.data).slice(0, 500) : typeof e.data === "string" ? e.data : "";
  const message = `${method}: ${String(e.message ?? err)}${detail ? ` ${detail}` : ""}`;
  if (e.code === -32000) return failed("auth_failed", message);
  const status = statusInMessage(message);
  if (status !== undefined) return modelFailure({ stderr_tail: "" }, message, status);
  return failed("agent_error", message);
}

/**
 * Who owns the files the server writes into a container's workspace (fs/write_text_file): the
 * container's user, so the agent can change them; undefined when the server cannot chown (not root).
 */
export function containerFileOwner(container: Pick<RunContainer, "user">, isRoot = process.getuid?.() === 0): RunAs | undefined {
  const m = /^([0-9]+)(?::([0-9]+))?$/.exec(container.user);
  return isRoot && m ? { uid: Number(m[1]), gid: Number(m[2] ?? m[1]) } : undefined;
}

/** Where the agent runs and what it sees: the started process, its environment (terminals inherit it) and its path view. */
interface Placement {
  proc: AcpAgentProcess;
  env: Record<string, string>;
  /** The agent's file system view, for a container. */
  paths?: ContainerPathMap;
  /** Owner of files written for the agent. */
  writeAs?: RunAs;
  /** The run's folder as the agent names it (session/new `cwd`). */
  cwd: string;
}

/** The xstate actor logic; see the module comment. */
export const acpActor = fromCallback<ProcessActorReceived, AcpActorInput, ProcessActorEmitted>(({ input, sendBack, receive }) => {
  const { ctx, emit, killGraceMs, container } = input;
  const stopping = new AbortController();
  let proc: AcpAgentProcess | undefined;
  let disposed = false;
  let graceTimer: NodeJS.Timeout | undefined;
  let killTimer: NodeJS.Timeout | undefined;
  let cancelSession: (() => void) | undefined;
  let terminals: AcpTerminals | undefined;

  /** SIGTERM after `delayMs`, SIGKILL a little later. */
  const endProcess = (delayMs: number) => {
    const p = proc;
    if (!p) return;
    graceTimer ??= setTimeout(() => {
      p.terminate();
      killTimer = setTimeout(() => p.kill(), Math.min(TERM_TO_KILL_MS, killGraceMs));
    }, delayMs);
  };
  const stop = () => {
    if (stopping.signal.aborted) return;
    stopping.abort();
    cancelSession?.();
    endProcess(killGraceMs);
  };
  receive((event) => {
    if (event.type === "STOP") stop();
  });

  const done = (outcome: AgentOutcome, exit: ProcessExit) => {
    if (!disposed) sendBack({ type: "AGENT.EXITED", outcome, exit });
  };

  void run().catch(async (err: unknown) => {
    if (disposed) return;
    // Failed before or around the start: what the run holds goes before the outcome (a per-run container with its events).
    if (proc) {
      proc.kill();
      await proc.finish();
    } else if (container?.perRun) await teardownRunContainer(container, emit, input.log);
    done(failed(failureCode(err, container ? "exec_failed" : "spawn_failed"), err instanceof Error ? err.message : String(err)), { stderr_tail: "" });
  });

  /** Starts the agent on the host or in the container. Undefined when the actor was disposed meanwhile. */
  async function place(command: AgentCommand): Promise<Placement | undefined> {
    if (container) {
      const writeAs = containerFileOwner(container);
      const p = await spawnContainerAgent({ container, command, ctx, emit, ...(input.log ? { log: input.log } : {}) });
      return { proc: p, env: containerAgentEnv({ container, command, ctx }), paths: { hostRoot: ctx.cwd, containerRoot: container.workdir }, cwd: container.workdir, ...(writeAs ? { writeAs } : {}) };
    }
    if (input.runAs) {
      await chownTree(ctx.home, input.runAs);
      await chownTree(command.cwd, input.runAs);
    }
    if (disposed) return undefined;
    const p = await spawnHostAgent(command, ctx.run_id, input.runAs);
    return { proc: p, env: { ...command.env, OPENRUNNER_RUN_ID: ctx.run_id, ...(ctx.traceparent ? { TRACEPARENT: ctx.traceparent } : {}) }, cwd: ctx.cwd, ...(input.runAs ? { writeAs: input.runAs } : {}) };
  }

  async function run(): Promise<void> {
    const adapter = input.adapter;
    if (!isAcpRunAdapter(adapter)) throw new RunFailure("internal", "the acp actor needs an adapter bound to an ACP agent");
    const command = await adapter.command(ctx);
    if (disposed) return;
    const placed = await place(command);
    if (!placed) return;
    const p = placed.proc;
    proc = p;
    if (disposed) return p.dispose();
    const version = container ? undefined : adapter.acp.health.version;
    const image = container ? adapter.acp.image : undefined;
    emit({ type: "run.started", data: { agent: "acp", ...p.started, cwd: command.cwd, ...(version ? { agent_version: version } : {}), raw: { acp_agent: adapter.acp.agent, ...(image ? { image } : {}) } } });
    if (stopping.signal.aborted) endProcess(0);

    let stderrTail = "";
    const stderr = createLineSplitter((line) => {
      stderrTail = (stderrTail + line + "\n").slice(-STDERR_TAIL_BYTES);
      emit({ type: "log", data: { stream: "stderr", text: line } });
    });
    p.stderr.setEncoding("utf8").on("data", stderr.push);
    const processDone = p.done.then((end) => {
      stderr.end();
      const exit: ProcessExit = { ...(end.exit_code !== undefined ? { exit_code: end.exit_code } : {}), ...(end.signal ? { signal: end.signal } : {}), stderr_tail: stderrTail };
      return { end, exit };
    });

    let protocolError: string | undefined;
    let replaying = false;
    let mapper = createUpdateMapper(ctx.run_id);
    // Updates an agent sends before answering session/new (e.g. available_commands_update) wait for `agent.session`.
    let early: unknown[] | undefined = [];
    const flushEarly = () => {
      const queued = early ?? [];
      early = undefined;
      for (const u of queued) for (const e of mapper.map(u)) emit(e);
    };
    const stream = createStdioStream(p.stdin, p.stdout, {
      onMalformed: (line, why) => {
        emit({ type: "log", data: { stream: "stdout", text: line } });
        if (protocolError) return;
        protocolError = `the agent wrote a line that is not JSON-RPC (${why}): ${line.slice(0, 200)}`;
        p.kill();
      },
      onUpdate: (params) => {
        if (replaying) return; // session/load replays history already in the earlier run's events
        const update = (params as { update?: unknown } | null)?.update;
        if (early && early.length < MAX_EARLY_UPDATES) early.push(update);
        else for (const e of mapper.map(update)) emit(e);
      },
    });
    const onStart = (id: string, line: string) => emit({ type: "log", data: { stream: "stderr", text: `acp: terminal ${id}: ${line}` } });
    terminals =
      container && placed.paths
        ? new ContainerTerminalSet({ container: container.handle, paths: placed.paths, env: placed.env, onStart, onError: (what, err) => input.log?.warn(what, { run_id: ctx.run_id, err: String(err) }) })
        : new TerminalSet({ root: ctx.cwd, env: placed.env, ...(input.runAs ? { runAs: input.runAs } : {}), onStart });
    const handlers = createRunHandlers({
      root: ctx.cwd,
      emit,
      terminals,
      runSignal: stopping.signal,
      beforePermission: (toolCall) => mapper.flushCalls(toolCall).forEach(emit),
      ...(placed.paths ? { containerPaths: placed.paths } : {}),
      ...(input.permissions ? { permissions: input.permissions } : {}),
      ...(placed.writeAs ? { runAs: placed.writeAs } : {}),
    });
    const conn = createAcpClient(handlers).connect(stream);
    void conn.closed.catch(() => {}); // the outcome comes from the pending requests, never an unhandled rejection
    const agent = conn.agent;

    let step = "initialize";
    let outcome: AgentOutcome;
    try {
      const init = await agent.request("initialize", { protocolVersion: PROTOCOL_VERSION, clientCapabilities: CLIENT_CAPABILITIES, clientInfo: { name: "openrunner", version: "0.1.0" } });
      // The agent's configured MCP servers, then the run's own (`metadata.mcp_servers`).
      const mcpServers = [...adapter.acp.mcpServers, ...(ctx.mcp_servers ? acpMcpServers(ctx.mcp_servers) : [])] as never[];
      let sessionId: string;
      if (ctx.resume_session_id) {
        if (init.agentCapabilities?.loadSession !== true) throw new RunFailure("resume_unsupported", `ACP agent ${adapter.acp.agent} cannot resume a session (no loadSession capability)`);
        step = "session/load";
        replaying = true;
        await agent.request("session/load", { sessionId: ctx.resume_session_id, cwd: placed.cwd, mcpServers });
        replaying = false;
        sessionId = ctx.resume_session_id;
      } else {
        step = "session/new";
        sessionId = (await agent.request("session/new", { cwd: placed.cwd, mcpServers })).sessionId;
      }
      mapper = createUpdateMapper(sessionId);
      emit({ type: "agent.session", data: { session_id: sessionId } });
      flushEarly();
      cancelSession = () => void agent.notify("session/cancel", { sessionId }).catch(() => {});
      if (stopping.signal.aborted) cancelSession();
      step = "session/prompt";
      const response = await agent.request("session/prompt", { sessionId, prompt: [{ type: "text", text: ctx.text }] });
      for (const e of mapper.endTurn()) emit(e);
      const usage = usageOf(response);
      if (usage) emit({ type: "usage", data: usage });
      outcome = outcomeOfStop(response.stopReason, mapper.lastMessage());
      if (outcome.kind === "completed" && usage) outcome.usage = usage;
    } catch (err) {
      flushEarly();
      for (const e of mapper.endTurn()) emit(e);
      if (err instanceof RunFailure) outcome = failed(err.code, err.message);
      else if (protocolError) outcome = failed("protocol_error", protocolError);
      else if (typeof (err as { code?: unknown }).code === "number") outcome = outcomeOfRpcError(step, err);
      else {
        // The connection closed under a pending request: the agent is gone (or the engine lost it).
        const { end, exit } = await processDone;
        if (protocolError) outcome = failed("protocol_error", protocolError);
        else if (end.error && !stopping.signal.aborted) outcome = failed(failureCode(end.error, "container_failed"), `ACP agent ${adapter.acp.agent}: ${end.error.message}`);
        else outcome = crashed(`ACP agent ${adapter.acp.agent}`, exit, `exited during ${step}`);
      }
    }
    // The turn is over: end the agent (its stdin first, then the process tree) and wait for it.
    stopping.abort();
    const terminalsGone = terminals.disposeAll();
    p.stdin.end();
    conn.close();
    clearTimeout(graceTimer);
    clearTimeout(killTimer);
    // After a completed turn the agent gets a moment to exit on its own at end of input: agents save
    // their session (Claude Code's transcript) asynchronously, and a SIGTERM at once can cut it short,
    // so that a later `session/load` misses the end of the turn.
    if (outcome.kind === "completed") {
      const exitedAlone = await Promise.race([processDone.then(() => true), new Promise<false>((r) => (graceTimer = setTimeout(() => r(false), Math.min(EXIT_AT_EOF_MS, killGraceMs))))]);
      clearTimeout(graceTimer);
      if (!exitedAlone) p.terminate();
    } else p.terminate();
    killTimer = setTimeout(() => p.kill(), Math.min(TERM_TO_KILL_MS, killGraceMs));
    const { exit } = await processDone;
    clearTimeout(graceTimer);
    clearTimeout(killTimer);
    await terminalsGone;
    await p.finish();
    done(outcome, exit);
  }

  return () => {
    disposed = true;
    stopping.abort();
    void terminals?.disposeAll();
    clearTimeout(graceTimer);
    clearTimeout(killTimer);
    if (proc) proc.dispose();
    else if (container?.perRun) void container.handle.remove({ force: true }).catch(() => {});
  };
});
