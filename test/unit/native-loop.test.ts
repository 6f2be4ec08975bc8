/**
 * The native agent's model loop (`src/agent/native/loop.ts`) with a scripted in-process wire:
 * the events of a turn in order, the conversation handed to the model, tool results back,
 * planning (only the plan tool offered and forced first, final plan), the limits (turns,
 * token budget, cost, an answer cut at the output limit, refusal), a model error, and a stop
 * while the model streams. Plus the configuration: `providers` and `native` validated at boot.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { runLoop, type LoopOptions } from "../../src/agent/native/loop.ts";
import type { ResolvedModel } from "../../src/agent/native/providers.ts";
import { createToolRunner } from "../../src/agent/native/tool-runner.ts";
import { createNativeTools, nativeToolSchemas } from "../../src/agent/native/tools/index.ts";
import type { TranscriptItem } from "../../src/agent/native/transcript.ts";
import type { ModelRequest, TurnResult, TurnSink, WireClient } from "../../src/agent/native/wire/types.ts";
import { createWorkspaceFs } from "../../src/agent/native/workspace-fs.ts";
import { loadConfig } from "../../src/config/load.ts";
import { ConfigError } from "../../src/errors.ts";
import type { RunEventInput } from "../../src/protocol/events.ts";

type Step = Partial<TurnResult> | ((req: ModelRequest, sink: TurnSink, signal: AbortSignal) => Promise<TurnResult>);

/** A wire answering each request with the next step; records the requests (conversation copied). */
function scriptedWire(steps: Step[]): WireClient & { requests: ModelRequest[] } {
  const requests: ModelRequest[] = [];
  return {
    requests,
    async turn(req, sink, signal) {
      requests.push({ ...req, transcript: structuredClone([...req.transcript]) });
      const step = steps.shift() ?? { text: "Done." };
      if (typeof step === "function") return step(req, sink, signal);
      if (step.text) sink.text(step.text);
      return { text: "", reasoning: "", tool_calls: [], usage: { input_tokens: 100, output_tokens: 10, input_includes_cache: false }, stop: step.tool_calls?.length ? "tool_use" : "end_turn", ...step };
    },
  };
}

function setup(steps: Step[], o: Partial<LoopOptions> = {}, price?: ResolvedModel["price"]) {
  const root = mkdtempSync(path.join(os.tmpdir(), "native-loop-"));
  writeFileSync(path.join(root, "a.txt"), "alpha\n");
  const wire = scriptedWire(steps);
  const events: RunEventInput[] = [];
  const emit = (e: RunEventInput) => events.push(e);
  const tools = createNativeTools();
  const transcript: TranscriptItem[] = [];
  const saved: number[] = [];
  const opts: LoopOptions = {
    runId: "run_1",
    model: { ref: "p/m", provider: "p", model: "m", api: "anthropic", wire, ...(price ? { price } : {}) },
    maxRetries: 0,
    system: "sys",
    transcript,
    prompt: "do it",
    toolSpecs: nativeToolSchemas(tools),
    runner: createToolRunner({ tools, emit }),
    tools: { fs: createWorkspaceFs({ root }), shell: { run: () => Promise.reject(new Error("no shell here")), dispose: async () => {} } },
    emit,
    limits: { maxTurns: 10, maxOutputTokens: 1000 },
    plan: false,
    signal: new AbortController().signal,
    onTurn: (t) => saved.push(t.length),
    ...o,
  };
  return { wire, events, transcript, saved, run: () => runLoop(opts) };
}

const types = (evs: RunEventInput[]) => evs.map((e) => e.type);

describe("the loop", () => {
  test("text streams as deltas then a message; tool results go back; the last text is the result", async () => {
    const { wire, events, transcript, saved, run } = setup([
      { text: "Reading.", reasoning: "first look", tool_calls: [{ id: "c1", name: "read_file", input: { path: "a.txt" } }] },
      { text: "It says alpha." },
    ]);
    const outcome = await run();
    assert.deepEqual(outcome, { kind: "completed", exit_code: 0, result: "It says alpha.", usage: { input_tokens: 200, output_tokens: 20 } });
    assert.deepEqual(types(events), ["message.delta", "reasoning", "message", "usage", "tool.call", "tool.result", "message.delta", "message", "usage"]);
    assert.deepEqual(events[0]!.data, { message_id: "run_1.1", text: "Reading." });
    assert.deepEqual((events[3]!.data as { raw: unknown }).raw, { turn: 1, model: "p/m" });
    assert.deepEqual(wire.requests[1]!.transcript.at(-1), { role: "tool", results: [{ call_id: "c1", output: "alpha\n", is_error: false }] });
    assert.equal(wire.requests[0]!.forceTool, undefined);
    assert.equal(wire.requests[0]!.tools.length, 8);
    assert.deepEqual(transcript.map((t) => t.role), ["user", "assistant", "tool", "assistant"]);
    assert.deepEqual(saved, [1, 3, 4], "saved after the prompt, after the tool results, at the end");
  });

  test("planning: the first request offers only plan and forces it; plan events; the final plan at the end", async () => {
    const entries = (s: string) => [{ content: "one", status: s }];
    const { wire, events, transcript, run } = setup(
      [{ tool_calls: [{ id: "p1", name: "plan", input: { entries: entries("pending") } }] }, { tool_calls: [{ id: "p2", name: "plan", input: { entries: entries("completed") } }] }, { text: "Done." }],
      { plan: true },
    );
    assert.equal((await run()).kind, "completed");
    assert.deepEqual(wire.requests[0]!.tools.map((t) => t.name), ["plan"]);
    assert.equal(wire.requests[0]!.forceTool, "plan");
    assert.equal(wire.requests[1]!.forceTool, undefined);
    assert.equal(wire.requests[1]!.tools.length, 8);
    assert.match((transcript[0] as { text: string }).text, /^do it\n\nBefore you change anything, call the `plan` tool/);
    const plans = events.filter((e) => e.type === "plan").map((e) => e.data as { entries: Array<{ status: string }>; raw?: { final: boolean } });
    assert.deepEqual(plans.map((p) => [p.entries[0]!.status, p.raw?.final ?? false]), [["pending", false], ["completed", false], ["completed", true]]);
    assert.equal(types(events).at(-1), "plan");
  });

  test("limits: max_turns, the token budget, the cost, an answer cut at the output limit, a refusal", async () => {
    const loopForever = Array.from({ length: 20 }, (_, i) => ({ tool_calls: [{ id: `c${i}`, name: "list_dir", input: {} }] }));
    const turns = setup([...loopForever], { limits: { maxTurns: 3, maxOutputTokens: 1000 } });
    const t = await turns.run();
    assert.deepEqual([t.kind, (t as { code: string }).code], ["failed", "max_turns"]);
    assert.equal(turns.wire.requests.length, 3);
    const budget = await setup([...loopForever], { limits: { maxTurns: 10, maxTokens: 250, maxOutputTokens: 1000 } }).run();
    assert.equal((budget as { code: string }).code, "max_tokens");
    assert.match((budget as { message: string }).message, /330 tokens, over its limit of 250/);
    const cost = setup([...loopForever], { limits: { maxTurns: 10, maxCostUsd: 0.001, maxOutputTokens: 1000 } }, { input_per_mtok: 5, output_per_mtok: 25 });
    const c = await cost.run();
    assert.equal((c as { code: string }).code, "max_cost");
    assert.equal(cost.events.filter((e) => e.type === "usage").length, 2, "0.00075 USD after one turn, 0.0015 after two");
    assert.equal((await setup([{ text: "cut", stop: "max_tokens" }]).run() as { code: string }).code, "max_tokens");
    assert.equal((await setup([{ stop: "refusal" }]).run() as { code: string }).code, "refusal");
  });

  test("a model error is a failed outcome with the provider; a stop mid-stream ends the loop at once", async () => {
    const err = await setup([async () => Promise.reject(Object.assign(new Error("Rate limited"), { status: 429 }))]).run();
    assert.deepEqual(err, { kind: "failed", code: "model_error", message: "provider p answered HTTP 429 after 0 retries: Rate limited" });
    const ac = new AbortController();
    const slow: Step = (_req, sink, signal) =>
      new Promise((_, reject) => {
        sink.text("partial");
        signal.addEventListener("abort", () => reject(new Error("Request was aborted.")), { once: true });
      });
    const s = setup([slow], { signal: ac.signal });
    const p = s.run();
    setTimeout(() => ac.abort(), 20);
    const out = await p; // the step settles only through the abort

    assert.equal(out.kind, "failed");
    assert.deepEqual(types(s.events), ["message.delta"]);
  });
});

describe("configuration", () => {
  const load = (yaml: string) => {
    const cwd = mkdtempSync(path.join(os.tmpdir(), "native-config-"));
    writeFileSync(path.join(cwd, "openrunner.yaml"), yaml);
    return loadConfig({ env: {}, cwd });
  };

  test("providers and native are read from the file, with native's defaults", () => {
    const c = load("providers:\n  oai: { api: responses, api_key_env: OPENAI_API_KEY, prices: { gpt: { input_per_mtok: 1, output_per_mtok: 2 } } }\nnative: { model: oai/gpt, max_cost_usd: 0.5 }\n");
    assert.deepEqual(c.providers.oai, { api: "responses", api_key_env: "OPENAI_API_KEY", prices: { gpt: { input_per_mtok: 1, output_per_mtok: 2 } } });
    assert.equal(c.native.max_turns, 50);
    assert.equal(c.native.max_output_tokens, 8192);
    assert.equal(c.native.bash_output_bytes, 65536);
    assert.equal(c.native.max_cost_usd, 0.5);
    assert.deepEqual(load("addr: 127.0.0.1:1\n").providers, {});
  });

  test("a bad wire API, an unknown provider field or a model without a provider stops the boot, the key not echoed", () => {
    assert.throws(() => load("providers:\n  x: { api: grpc }\n"), ConfigError);
    assert.throws(() => load("providers:\n  x: { api: chat, apikey: k }\n"), ConfigError);
    assert.throws(() => load("native: { model: gpt-5 }\n"), ConfigError);
    assert.throws(
      () => load("providers:\n  x: { api: chat, api_key: sk-very-secret, max_retries: 99 }\n"),
      (e: unknown) => e instanceof ConfigError && !e.message.includes("sk-very-secret"),
    );
  });
});
