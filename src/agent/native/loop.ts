/**
 * The native agent's model loop (docs/architecture.md#agents): the conversation goes to the
 * model, the answer streams into the run as `message.delta` events (then one `message`, and a
 * `reasoning` event for thinking), each turn's tokens and cost as a `usage` event; the tool
 * calls it makes run one after the other (`tool-runner.ts`: `tool.call`, permission,
 * `tool.result`) and their results go back in the next request, until the model answers without
 * a tool call (the run completes with that text as its result).
 *
 * With `plan` the first request offers only the `plan` tool and makes the model call it; the
 * plan becomes a `plan` event, the model updates it with the same tool as it works, and the
 * final plan is emitted once more (`raw.final`) when the loop ends.
 *
 * Limits, checked after every turn: `maxTurns` (model requests) fails `max_turns`,
 * `maxTokens` (input + output summed over the run) fails `max_tokens`, `maxCostUsd` fails
 * `max_cost`; an answer cut by the output limit fails `max_tokens`, a refusal `refusal`. The
 * signal (cancel, timeout) aborts the model stream and any tool process at once.
 * `onTurn` is called after each turn's tool results and once at the end, so the store keeps the
 * conversation turn by turn (a turn cut short leaves calls without results, which the next run
 * repairs: `session.ts`).
 */
import type { RunEventInput, Usage } from "../../protocol/events.ts";
import type { AgentOutcome } from "../types.ts";
import { outcomeOfModelError } from "./model-errors.ts";
import { planEventOf, PLANNING_INSTRUCTION, type PlanEntry } from "./plan.ts";
import { costOf, usageEventData } from "./pricing.ts";
import type { ResolvedModel } from "./providers.ts";
import type { ToolRunner } from "./tool-runner.ts";
import type { ToolResultItem, TranscriptItem } from "./transcript.ts";
import type { ToolContext } from "./tools/types.ts";
import type { ToolSpec } from "./wire/types.ts";

/** The run's limits. */
export interface LoopLimits {
  maxTurns: number;
  maxTokens?: number;
  maxCostUsd?: number;
  /** Output tokens of one request. */
  maxOutputTokens: number;
}

/** What one loop needs. */
export interface LoopOptions {
  runId: string;
  model: ResolvedModel;
  /** The provider's SDK retries (for error messages). */
  maxRetries: number;
  system: string;
  /** The conversation so far (a resumed session's), appended to in place. */
  transcript: TranscriptItem[];
  prompt: string;
  /** Every tool, as offered to the model (`plan` among them). */
  toolSpecs: readonly ToolSpec[];
  runner: ToolRunner;
  /** Workspace and shell of the tools. */
  tools: Pick<ToolContext, "fs" | "shell">;
  emit: (e: RunEventInput) => void;
  limits: LoopLimits;
  plan: boolean;
  signal: AbortSignal;
  /** The conversation grew: after the prompt, after each turn's tool results, and at the end. */
  onTurn?: (transcript: readonly TranscriptItem[]) => void;
}

const failed = (code: "max_turns" | "max_tokens" | "max_cost" | "refusal" | "model_error", message: string): AgentOutcome => ({ kind: "failed", code, message });

/** Runs the loop to its outcome; never rejects. A stopped run (signal aborted) returns a failed outcome the run machine replaces. */
export async function runLoop(o: LoopOptions): Promise<AgentOutcome> {
  const total: Required<Pick<Usage, "input_tokens" | "output_tokens">> & { cost_usd?: number; cache_read_tokens: number; cache_write_tokens: number } = { input_tokens: 0, output_tokens: 0, cache_read_tokens: 0, cache_write_tokens: 0 };
  let plan: PlanEntry[] | undefined;
  let planning = o.plan;
  const ctx: ToolContext = {
    ...o.tools,
    signal: o.signal,
    setPlan(entries) {
      plan = entries.map((e) => ({ ...e }));
      o.emit(planEventOf(plan));
    },
  };
  const stopped = (): AgentOutcome => ({ kind: "failed", code: "agent_cancelled", message: "the run was stopped" });
  const end = (outcome: AgentOutcome): AgentOutcome => {
    o.onTurn?.(o.transcript);
    if (plan) o.emit(planEventOf(plan, true));
    if (outcome.kind !== "completed") return outcome;
    const usage: Usage = { input_tokens: total.input_tokens, output_tokens: total.output_tokens, ...(total.cache_read_tokens ? { cache_read_tokens: total.cache_read_tokens } : {}), ...(total.cache_write_tokens ? { cache_write_tokens: total.cache_write_tokens } : {}), ...(total.cost_usd !== undefined ? { cost_usd: total.cost_usd } : {}) };
    return { ...outcome, usage };
  };
  o.transcript.push({ role: "user", text: o.plan ? `${o.prompt}\n\n${PLANNING_INSTRUCTION}` : o.prompt });
  o.onTurn?.(o.transcript);
  const planSpec = o.toolSpecs.filter((t) => t.name === "plan");

  for (let turn = 1; ; turn++) {
    if (o.signal.aborted) return end(stopped());
    if (turn > o.limits.maxTurns) return end(failed("max_turns", `the agent made ${o.limits.maxTurns} model requests without finishing (native.max_turns)`));
    const messageId = `${o.runId}.${turn}`;
    let result;
    // A signal of this turn only: the SDKs add an abort listener to the signal of every request and never remove it, which on the run's signal would pile up turn after turn.
    const turnAbort = new AbortController();
    const abortTurn = () => turnAbort.abort(o.signal.reason);
    o.signal.addEventListener("abort", abortTurn, { once: true });
    try {
      result = await o.model.wire.turn(
        {
          model: o.model.model,
          system: o.system,
          transcript: o.transcript,
          tools: planning && planSpec.length > 0 ? planSpec : o.toolSpecs,
          maxOutputTokens: o.limits.maxOutputTokens,
          ...(planning && planSpec.length > 0 ? { forceTool: "plan" } : {}),
        },
        { text: (t) => o.emit({ type: "message.delta", data: { message_id: messageId, text: t } }), reasoning: () => {} },
        turnAbort.signal,
      );
    } catch (err) {
      if (o.signal.aborted) return end(stopped());
      return end(outcomeOfModelError(err, o.model.provider, o.maxRetries));
    } finally {
      o.signal.removeEventListener("abort", abortTurn);
    }
    if (result.reasoning) o.emit({ type: "reasoning", data: { text: result.reasoning } });
    if (result.text) o.emit({ type: "message", data: { message_id: messageId, role: "assistant", text: result.text } });
    const cost = costOf(result.usage, o.model.price);
    // `raw` (allowed on every event) says which turn and model the counts belong to.
    o.emit({ type: "usage", data: { ...usageEventData(result.usage, cost), raw: { turn, model: o.model.ref, ...(result.stop_raw ? { stop: result.stop_raw } : {}) } } as Usage });
    total.input_tokens += result.usage.input_tokens;
    total.output_tokens += result.usage.output_tokens;
    total.cache_read_tokens += result.usage.cache_read_tokens ?? 0;
    total.cache_write_tokens += result.usage.cache_write_tokens ?? 0;
    if (cost !== undefined) total.cost_usd = (total.cost_usd ?? 0) + cost;
    o.transcript.push({ role: "assistant", text: result.text, tool_calls: result.tool_calls, ...(result.thinking ? { thinking: result.thinking } : {}) });

    if (o.limits.maxTokens !== undefined && total.input_tokens + total.output_tokens > o.limits.maxTokens)
      return end(failed("max_tokens", `the run used ${total.input_tokens + total.output_tokens} tokens, over its limit of ${o.limits.maxTokens} (native.max_tokens)`));
    if (o.limits.maxCostUsd !== undefined && (total.cost_usd ?? 0) > o.limits.maxCostUsd)
      return end(failed("max_cost", `the run cost ${(total.cost_usd ?? 0).toFixed(6)} USD, over its limit of ${o.limits.maxCostUsd} USD (native.max_cost_usd)`));

    if (result.tool_calls.length === 0) {
      if (result.stop === "max_tokens") return end(failed("max_tokens", `the model's answer was cut at the output limit of ${o.limits.maxOutputTokens} tokens (native.max_output_tokens)`));
      if (result.stop === "refusal") return end(failed("refusal", "the model refused to continue"));
      return end({ kind: "completed", exit_code: 0, result: result.text });
    }
    const results: ToolResultItem[] = [];
    for (const call of result.tool_calls) {
      if (o.signal.aborted) results.push({ call_id: call.id, output: "not run: the run is ending", is_error: true });
      else results.push(await o.runner.run(call, ctx));
    }
    o.transcript.push({ role: "tool", results });
    o.onTurn?.(o.transcript);
    planning = false;
  }
}
