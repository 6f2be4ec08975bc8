/**
 * The ACP actor: the xstate `fromCallback` actor of `agent_type: "acp"` runs, in place of the
 * line-parsing process actor. It spawns the bound agent (`AcpRunAdapter.command`) with execa
 * in its own process group, as the run's user, marked with OPENRUNNER_RUN_ID (as the process
 * actor does; stderr lines become `log` events), and speaks ACP over its stdio:
 *
 * `initialize` (advertising fs and terminal) -> `session/new` (cwd = the run's workspace,
 * the agent's MCP servers) or `session/load` for `metadata.resume` -> `agent.session` ->
 * `session/prompt` with the input, `session/update`s mapped by `map-update.ts` -> the stop
 * reason decides the outcome: `end_turn` completes (result = the last message), `cancelled`
 * after STOP cancels, `max_tokens` / `max_turn_requests` / `refusal` fail with that code.
 *
 * STOP sends `session/cancel` (pending permission asks resolve `cancelled`), waits
 * `killGraceMs` for the prompt to end, then SIGTERMs the group (SIGKILL a second later).
 * The agent exiting mid-turn fails `agent_crashed` with its stderr tail; a stdout line that
 * is not JSON-RPC fails `protocol_error` (the agent is killed; the server is unaffected).
 * Every terminal the agent opened is killed when the run ends.
 */
import { execa } from "execa";
import { fromCallback } from "xstate";
import { PROTOCOL_VERSION } from "@agentclientprotocol/sdk";
import { failureCode, type RunEventInput, type RunFailureCode } from "../../run/events.ts";
import { crashed, modelFailure, statusInMessage } from "../cli-support.ts";
import { createLineSplitter } from "../line-splitter.ts";
import { signalRunProcesses } from "../orphans.ts";
import type { PermissionGate } from "../permissions.ts";
import { killProcessGroup, type ProcessActorEmitted, type ProcessActorInput, type ProcessActorReceived } from "../process-actor.ts";
import { chownTree } from "../run-as.ts";
import type { AgentOutcome, ProcessExit } from "../types.ts";
import { isAcpRunAdapter } from "./adapter.ts";
import { CLIENT_CAPABILITIES, createAcpClient, createStdioStream } from "./connection.ts";
import { createRunHandlers } from "./handlers.ts";
import { createUpdateMapper, usageOf } from "./map-update.ts";
import { TerminalSet } from "./terminal.ts";

/** Input of the ACP actor: the process actor's, with the run's permission gate. */
export type AcpActorInput = ProcessActorInput & { permissions?: PermissionGate };

const STDERR_TAIL_BYTES = 4096;
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

/** The xstate actor logic; see the module comment. */
export const acpActor = fromCallback<ProcessActorReceived, AcpActorInput, ProcessActorEmitted>(({ input, sendBack, receive }) => {
  const { ctx, emit, killGraceMs } = input;
  const stopping = new AbortController();
  let pid: number | undefined;
  let exited = false;
  let disposed = false;
  let graceTimer: NodeJS.Timeout | undefined;
  let killTimer: NodeJS.Timeout | undefined;
  let cancelSession: (() => void) | undefined;
  let terminals: TerminalSet | undefined;

  const endGroup = (delayMs: number) => {
    if (pid === undefined || exited) return;
    graceTimer ??= setTimeout(() => {
      if (pid !== undefined && !exited) killProcessGroup(pid, "SIGTERM");
      signalRunProcesses(ctx.run_id, "SIGTERM");
      killTimer = setTimeout(() => {
        if (pid !== undefined && !exited) killProcessGroup(pid, "SIGKILL");
        signalRunProcesses(ctx.run_id, "SIGKILL");
      }, Math.min(TERM_TO_KILL_MS, killGraceMs));
    }, delayMs);
  };
  const stop = () => {
    if (stopping.signal.aborted) return;
    stopping.abort();
    cancelSession?.();
    endGroup(killGraceMs);
  };
  receive((event) => {
    if (event.type === "STOP") stop();
  });

  const done = (outcome: AgentOutcome, exit: ProcessExit) => {
    if (!disposed) sendBack({ type: "AGENT.EXITED", outcome, exit });
  };

  void run().catch((err: unknown) => {
    done(failed(failureCode(err, "spawn_failed"), err instanceof Error ? err.message : String(err)), { stderr_tail: "" });
  });

  async function run(): Promise<void> {
    if (input.container) throw Object.assign(new Error("ACP agents run on the host only (isolation docker is not supported for agent_type acp yet)"), { code: "isolation_unsupported" });
    const adapter = input.adapter;
    if (!isAcpRunAdapter(adapter)) throw Object.assign(new Error("the acp actor needs an adapter bound to an ACP agent"), { code: "internal" });
    const command = await adapter.command(ctx);
    if (disposed) return;
    const [file, ...args] = command.argv;
    if (!file) throw Object.assign(new Error("empty ACP agent command"), { code: "spawn_failed" });
    if (input.runAs) {
      await chownTree(ctx.home, input.runAs);
      await chownTree(command.cwd, input.runAs);
    }
    if (disposed) return;
    const env = { ...command.env, OPENRUNNER_RUN_ID: ctx.run_id };
    const child = execa(file, args, {
      cwd: command.cwd,
      env,
      extendEnv: false,
      detached: true,
      ...(input.runAs ? { uid: input.runAs.uid, gid: input.runAs.gid } : {}),
      stdin: "pipe",
      buffer: false,
      reject: false,
      cleanup: true,
    });
    pid = child.pid;
    if (pid === undefined) {
      const r = await child;
      throw Object.assign(new Error(`could not start ${file}: ${r.message ?? "spawn failed"}`), { code: "spawn_failed" });
    }
    const version = adapter.acp.health.version;
    emit({ type: "run.started", data: { agent: "acp", pid, cwd: command.cwd, ...(version ? { agent_version: version } : {}), raw: { acp_agent: adapter.acp.agent } } });
    if (stopping.signal.aborted) endGroup(0);

    let stderrTail = "";
    const stderr = createLineSplitter((line) => {
      stderrTail = (stderrTail + line + "\n").slice(-STDERR_TAIL_BYTES);
      emit({ type: "log", data: { stream: "stderr", text: line } });
    });
    child.stderr?.setEncoding("utf8").on("data", stderr.push);
    const streamsDone = Promise.all([child.stdout, child.stderr].map((s) => (s ? new Promise((r) => s.once("close", r)) : null)));
    child.once("exit", () => {
      exited = true;
      if (pid !== undefined) killProcessGroup(pid, "SIGKILL");
      signalRunProcesses(ctx.run_id, "SIGKILL");
    });
    const processDone = child.then(async (r) => {
      await streamsDone;
      stderr.end();
      const exit: ProcessExit = { ...(typeof r.exitCode === "number" ? { exit_code: r.exitCode } : {}), ...(r.signal ? { signal: r.signal } : {}), stderr_tail: stderrTail };
      return exit;
    });

    let protocolError: string | undefined;
    let replaying = false;
    let mapper = createUpdateMapper(ctx.run_id);
    const stream = createStdioStream(child.stdin!, child.stdout!, {
      onMalformed: (line, why) => {
        emit({ type: "log", data: { stream: "stdout", text: line } });
        if (protocolError) return;
        protocolError = `the agent wrote a line that is not JSON-RPC (${why}): ${line.slice(0, 200)}`;
        killProcessGroup(pid!, "SIGKILL");
      },
      onUpdate: (params) => {
        if (replaying) return; // session/load replays history already in the earlier run's events
        for (const e of mapper.map((params as { update?: unknown } | null)?.update)) emit(e);
      },
    });
    terminals = new TerminalSet({ root: ctx.cwd, env, ...(input.runAs ? { runAs: input.runAs } : {}), onStart: (id, line) => emit({ type: "log", data: { stream: "stderr", text: `acp: terminal ${id}: ${line}` } }) });
    const handlers = createRunHandlers({ root: ctx.cwd, emit, terminals, runSignal: stopping.signal, beforePermission: (toolCall) => mapper.flushCalls(toolCall).forEach(emit), ...(input.permissions ? { permissions: input.permissions } : {}), ...(input.runAs ? { runAs: input.runAs } : {}) });
    const conn = createAcpClient(handlers).connect(stream);
    void conn.closed.catch(() => {}); // the outcome comes from the pending requests, never an unhandled rejection
    const agent = conn.agent;

    let step = "initialize";
    let outcome: AgentOutcome;
    try {
      const init = await agent.request("initialize", { protocolVersion: PROTOCOL_VERSION, clientCapabilities: CLIENT_CAPABILITIES, clientInfo: { name: "openrunner", version: "0.1.0" } });
      const mcpServers = adapter.acp.mcpServers as never[];
      let sessionId: string;
      if (ctx.resume_session_id) {
        if (init.agentCapabilities?.loadSession !== true) throw Object.assign(new Error(`ACP agent ${adapter.acp.agent} cannot resume a session (no loadSession capability)`), { outcome: failed("resume_unsupported", `ACP agent ${adapter.acp.agent} cannot resume a session (no loadSession capability)`) });
        step = "session/load";
        replaying = true;
        await agent.request("session/load", { sessionId: ctx.resume_session_id, cwd: ctx.cwd, mcpServers });
        replaying = false;
        sessionId = ctx.resume_session_id;
      } else {
        step = "session/new";
        sessionId = (await agent.request("session/new", { cwd: ctx.cwd, mcpServers })).sessionId;
      }
      mapper = createUpdateMapper(sessionId);
      emit({ type: "agent.session", data: { session_id: sessionId } });
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
      for (const e of mapper.endTurn()) emit(e);
      const given = (err as { outcome?: AgentOutcome }).outcome;
      if (given) outcome = given;
      else if (protocolError) outcome = failed("protocol_error", protocolError);
      else if (typeof (err as { code?: unknown }).code === "number") outcome = outcomeOfRpcError(step, err);
      else {
        // The connection closed under a pending request: the agent is gone.
        const exit = await processDone;
        outcome = protocolError ? failed("protocol_error", protocolError) : crashed(`ACP agent ${adapter.acp.agent}`, exit, `exited during ${step}`);
      }
    }
    // The turn is over: end the agent (its stdin first, then the group) and wait for it.
    stopping.abort();
    terminals.disposeAll();
    child.stdin?.end();
    conn.close();
    clearTimeout(graceTimer);
    clearTimeout(killTimer);
    if (!exited) killProcessGroup(pid, "SIGTERM");
    signalRunProcesses(ctx.run_id, "SIGTERM");
    killTimer = setTimeout(() => {
      if (!exited) killProcessGroup(pid!, "SIGKILL");
      signalRunProcesses(ctx.run_id, "SIGKILL");
    }, Math.min(TERM_TO_KILL_MS, killGraceMs));
    const exit = await processDone;
    clearTimeout(graceTimer);
    clearTimeout(killTimer);
    done(outcome, exit);
  }

  return () => {
    disposed = true;
    stopping.abort();
    terminals?.disposeAll();
    clearTimeout(graceTimer);
    clearTimeout(killTimer);
    if (pid !== undefined && !exited) killProcessGroup(pid, "SIGKILL");
    if (pid !== undefined) signalRunProcesses(ctx.run_id, "SIGKILL");
  };
});
