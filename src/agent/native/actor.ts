/**
 * The actor of `agent_type: "openrunner"` runs (the xstate `fromCallback` actor the run machine
 * invokes as `agent`, in place of the process actor): no agent process, the model loop
 * (`loop.ts`) runs in the server, and only the tools touch the run's workspace.
 *
 * On the host the tools work on the run's folder (`workspace-fs.ts`) and `bash` runs there in
 * its own process group as the run's user; with a container (`isolation: "docker"`) the file
 * tools work on the mounted workspace as the container sees it (`/workspace`) and `bash` runs
 * through the engine's exec in the container. It emits `run.started`, then `agent.session`
 * (the session's conversation is saved after every turn, so a failed or cancelled run can be
 * resumed too), then the loop's events; a per-run container is stopped and removed before the
 * outcome is reported, so the terminal event stays last.
 *
 * STOP (cancel, timeout) aborts the model stream and kills a running `bash` at once; the outcome
 * follows as soon as the loop has noticed.
 */
import { fromCallback } from "xstate";
import { failureCode } from "../../protocol/events.ts";
import { RunFailure } from "../../protocol/errors.ts";
import { containerFileOwner } from "../acp/actor.ts";
import { ContainerTerminalSet } from "../acp/terminal-container.ts";
import { TerminalSet } from "../acp/terminal.ts";
import { provideRunHome } from "../container-home.ts";
import { teardownRunContainer } from "../container-exec.ts";
import { chownTree } from "../run-as.ts";
import type { NativeSessionRepo } from "../../store/types.ts";
import type { AgentOutcome, ProcessActorEmitted, ProcessActorInput, ProcessActorReceived } from "../types.ts";
import type { NativeAdapter } from "./adapter.ts";
import { runLoop } from "./loop.ts";
import { loadConversation, sessionIdOf, transcriptSerializer } from "./session.ts";
import type { TranscriptItem } from "./transcript.ts";
import { createShellRunner, type ShellRunner } from "./shell.ts";
import { createToolRunner } from "./tool-runner.ts";
import { nativeToolSchemas } from "./tools/index.ts";
import { createWorkspaceFs } from "./workspace-fs.ts";

/** Variables of the server's environment a host `bash` gets (besides HOME and OPENRUNNER_RUN_ID). */
const PASSED_ENV = ["PATH", "LANG", "LC_ALL", "TZ"];

/** The system prompt when `native.system_prompt` is unset. */
export function defaultSystemPrompt(root: string): string {
  return [
    "You are OpenRunner's coding agent. You work in the folder " + root + " (the workspace) and nowhere else.",
    "Use the tools to look at files, change them and run commands; paths are relative to the workspace.",
    "A tool that fails tells you why: read the message and try another way. When the task is done, answer with a short summary of what you did.",
  ].join("\n");
}

/**
 * Saves the conversation off the turn's critical path: `schedule` writes it on the next
 * `setImmediate` (by then the next model request is on its way), several schedules in one tick
 * write once; `flush` writes a pending one at once (the loop ended) and resolves once every
 * write made so far is done. Writes run one after another, in order (a later conversation is
 * never overwritten by an earlier one); a failed write goes to `onError` and never rejects.
 */
export function createDeferredSave<T>(save: (v: T) => Promise<void>, onError: (err: unknown) => void): { schedule(v: T): void; flush(): Promise<void> } {
  let pending: { v: T } | undefined;
  let timer: NodeJS.Immediate | undefined;
  let writes: Promise<void> = Promise.resolve();
  const flush = () => {
    if (timer) clearImmediate(timer);
    timer = undefined;
    const p = pending;
    pending = undefined;
    if (p) writes = writes.then(() => save(p.v)).catch(onError);
    return writes;
  };
  return {
    schedule(v) {
      pending = { v };
      timer ??= setImmediate(flush);
    },
    flush,
  };
}

/** The xstate actor logic; see the module comment. */
export const nativeActor = fromCallback<ProcessActorReceived, ProcessActorInput, ProcessActorEmitted>(({ input, sendBack, receive }) => {
  const { ctx, emit, container } = input;
  const stop = new AbortController();
  let disposed = false;
  let tornDown = false;
  let shell: ShellRunner | undefined;
  receive((e) => {
    if (e.type === "STOP") stop.abort();
  });

  async function run(): Promise<AgentOutcome> {
    const adapter = input.adapter;
    if ((adapter as Partial<NativeAdapter>).kind !== "native") throw new RunFailure("internal", "the native actor needs the openrunner adapter");
    const o = (adapter as NativeAdapter).native;
    const model = o.providers.resolve(ctx.model);
    const transcript = await loadConversation(o.sessions, ctx.resume_session_id);
    if (input.runAs && !container) {
      await chownTree(ctx.home, input.runAs);
      await chownTree(ctx.cwd, input.runAs);
    }
    if (container) await provideRunHome(container, ctx.home);
    const map = container ? { hostRoot: ctx.cwd, containerRoot: container.workdir } : undefined;
    const owner = container ? containerFileOwner(container) : input.runAs;
    const fs = createWorkspaceFs({ root: ctx.cwd, ...(map ? { container: map } : {}), ...(owner ? { owner } : {}) });
    if (container && map) {
      shell = createShellRunner(new ContainerTerminalSet({ container: container.handle, paths: map, env: { HOME: container.home, OPENRUNNER_RUN_ID: ctx.run_id }, onError: (what, err) => input.log?.warn(what, { run_id: ctx.run_id, err: String(err) }) }));
    } else {
      const env: Record<string, string> = { HOME: ctx.home, OPENRUNNER_RUN_ID: ctx.run_id };
      for (const k of PASSED_ENV) if (ctx.server_env[k] !== undefined) env[k] = ctx.server_env[k]!;
      shell = createShellRunner(new TerminalSet({ root: ctx.cwd, env, ...(input.runAs ? { runAs: input.runAs } : {}) }));
    }
    if (disposed) throw new RunFailure("internal", "the run ended");
    emit({ type: "run.started", data: { agent: "openrunner", cwd: ctx.cwd, ...(container ? { container_id: container.handle.id } : {}), raw: { model: model.ref, api: model.api } } });
    const sessionId = sessionIdOf(ctx.run_id);
    emit({ type: "agent.session", data: { session_id: sessionId } });
    const tools = o.tools;
    // Saved turn by turn: serialized incrementally, and written in the transaction that commits the turn's events (`persist`), else on the next setImmediate.
    const json = transcriptSerializer();
    const save = (repo: NativeSessionRepo, t: readonly TranscriptItem[]) => repo.save({ session_id: sessionId, run_id: ctx.run_id, parent_id: ctx.resume_session_id ?? null, model: model.ref, messages_json: json(t) });
    const persist = input.persist;
    const saver = persist
      ? { schedule: (t: readonly TranscriptItem[]) => persist(sessionId, (tx) => save(tx.nativeSessions, t)), flush: async () => {} }
      : createDeferredSave((t: readonly TranscriptItem[]) => save(o.sessions, t), (err) => input.log?.warn("could not save the native agent's conversation", { run_id: ctx.run_id, session_id: sessionId, err: String(err) }));
    return runLoop({
      runId: ctx.run_id,
      model,
      maxRetries: o.maxRetries(model.provider),
      system: o.systemPrompt ?? defaultSystemPrompt(fs.root),
      transcript,
      prompt: ctx.text,
      toolSpecs: nativeToolSchemas(tools),
      runner: createToolRunner({ tools, emit, ...(input.permissions ? { permissions: input.permissions } : {}) }),
      tools: { fs, shell },
      emit,
      limits: o.limits,
      plan: ctx.plan === true,
      signal: stop.signal,
      onTurn: (t) => saver.schedule(t),
    }).finally(() => saver.flush());
  }

  void (async () => {
    let outcome: AgentOutcome;
    try {
      outcome = await run();
    } catch (err) {
      outcome = { kind: "failed", code: failureCode(err, "internal"), message: err instanceof Error ? err.message : String(err) };
    }
    await shell?.dispose().catch(() => {});
    if (container?.perRun && !disposed) {
      tornDown = true;
      await teardownRunContainer(container, emit, input.log);
    }
    if (!disposed) sendBack({ type: "AGENT.EXITED", outcome, exit: { exit_code: outcome.kind === "completed" ? 0 : 1, stderr_tail: "" } });
  })();

  return () => {
    disposed = true;
    stop.abort();
    void shell?.dispose().catch(() => {});
    if (container?.perRun && !tornDown) void container.handle.remove({ force: true }).catch(() => {});
  };
});
