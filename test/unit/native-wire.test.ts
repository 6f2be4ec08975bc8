/**
 * The native agent's pure pieces: the wire mappings (conversation -> vendor request, stream
 * events -> turn result) of Anthropic Messages, OpenAI Responses and Chat Completions, stop
 * reasons, cost from the price table, model references and providers, SDK errors as outcomes,
 * the transcript repair and the session repository, the unified diff and globs.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { outcomeOfModelError } from "../../src/agent/native/model-errors.ts";
import { costOf } from "../../src/agent/native/pricing.ts";
import { createProviderSet, parseModelRef } from "../../src/agent/native/providers.ts";
import { loadConversation, repairTranscript, transcriptSerializer } from "../../src/agent/native/session.ts";
import type { TranscriptItem } from "../../src/agent/native/transcript.ts";
import { anthropicStop, applyAnthropicEvent, newAnthropicTurn, toAnthropicMessages } from "../../src/agent/native/wire/anthropic.ts";
import { applyChatChunk, chatCalls, chatStop, newChatTurn, toChatMessages } from "../../src/agent/native/wire/chat.ts";
import { applyResponsesEvent, newResponsesTurn, responsesStop, toResponsesInput } from "../../src/agent/native/wire/responses.ts";
import { unifiedDiff } from "../../src/agent/native/diff.ts";
import { globToRegExp } from "../../src/agent/native/glob.ts";
import { RunFailure } from "../../src/protocol/errors.ts";
import { openSqliteStore } from "../../src/store/sqlite.ts";
import { EventWriter } from "../../src/run/event-writer.ts";
import type { RunEvent } from "../../src/protocol/events.ts";

const conversation: TranscriptItem[] = [
  { role: "user", text: "fix it" },
  { role: "assistant", text: "Looking.", tool_calls: [{ id: "c1", name: "read_file", input: { path: "a.ts" } }], thinking: [{ text: "hm", signature: "sig" }, { text: "unsigned" }] },
  { role: "tool", results: [{ call_id: "c1", output: "x", is_error: false }] },
  { role: "user", text: "and then?" },
];

const sink = () => {
  const got = { text: [] as string[], reasoning: [] as string[] };
  return { got, sink: { text: (t: string) => got.text.push(t), reasoning: (t: string) => got.reasoning.push(t) } };
};

describe("anthropic", () => {
  test("messages: tool results in a user message merged with the next prompt; signed thinking kept", () => {
    assert.deepEqual(toAnthropicMessages(conversation), [
      { role: "user", content: [{ type: "text", text: "fix it" }] },
      {
        role: "assistant",
        content: [
          { type: "thinking", thinking: "hm", signature: "sig" },
          { type: "text", text: "Looking." },
          { type: "tool_use", id: "c1", name: "read_file", input: { path: "a.ts" } },
        ],
      },
      { role: "user", content: [{ type: "tool_result", tool_use_id: "c1", content: "x" }, { type: "text", text: "and then?" }] },
    ]);
  });

  test("stream events: text, thinking with signature, tool input in pieces, usage, stop", () => {
    const s = newAnthropicTurn();
    const { got, sink: k } = sink();
    const events = [
      { type: "message_start", message: { usage: { input_tokens: 10, output_tokens: 1, cache_read_input_tokens: 4, cache_creation_input_tokens: 2 } } },
      { type: "content_block_start", index: 0, content_block: { type: "thinking", thinking: "" } },
      { type: "content_block_delta", index: 0, delta: { type: "thinking_delta", thinking: "why" } },
      { type: "content_block_delta", index: 0, delta: { type: "signature_delta", signature: "s1" } },
      { type: "content_block_stop", index: 0 },
      { type: "content_block_start", index: 1, content_block: { type: "text", text: "" } },
      { type: "content_block_delta", index: 1, delta: { type: "text_delta", text: "He" } },
      { type: "content_block_delta", index: 1, delta: { type: "text_delta", text: "llo" } },
      { type: "content_block_stop", index: 1 },
      { type: "content_block_start", index: 2, content_block: { type: "tool_use", id: "t1", name: "bash", input: {} } },
      { type: "content_block_delta", index: 2, delta: { type: "input_json_delta", partial_json: '{"comm' } },
      { type: "content_block_delta", index: 2, delta: { type: "input_json_delta", partial_json: 'and":"ls"}' } },
      { type: "content_block_stop", index: 2 },
      { type: "message_delta", delta: { stop_reason: "tool_use" }, usage: { output_tokens: 20 } },
      { type: "message_stop" },
    ];
    for (const e of events) applyAnthropicEvent(s, e, k);
    assert.equal(s.text, "Hello");
    assert.deepEqual(got, { text: ["He", "llo"], reasoning: ["why"] });
    assert.deepEqual(s.thinking, [{ text: "why", signature: "s1" }]);
    assert.deepEqual(s.calls, [{ id: "t1", name: "bash", input: { command: "ls" } }]);
    assert.deepEqual(s.usage, { input_tokens: 10, output_tokens: 20, cache_read_tokens: 4, cache_write_tokens: 2, input_includes_cache: false });
    assert.equal(anthropicStop(s.stopRaw, s.calls.length), "tool_use");
    assert.equal(anthropicStop("end_turn", 0), "end_turn");
    assert.equal(anthropicStop("max_tokens", 1), "max_tokens");
    assert.equal(anthropicStop("refusal", 0), "refusal");
  });
});

describe("openai responses", () => {
  test("input items: messages, function_call with JSON arguments, function_call_output", () => {
    assert.deepEqual(toResponsesInput(conversation), [
      { role: "user", content: "fix it" },
      { role: "assistant", content: "Looking." },
      { type: "function_call", call_id: "c1", name: "read_file", arguments: '{"path":"a.ts"}' },
      { type: "function_call_output", call_id: "c1", output: "x" },
      { role: "user", content: "and then?" },
    ]);
  });

  test("stream events: text deltas, reasoning summary, function_call item, usage with cached tokens, incomplete", () => {
    const s = newResponsesTurn();
    const { got, sink: k } = sink();
    applyResponsesEvent(s, { type: "response.reasoning_summary_text.delta", delta: "think" }, k);
    applyResponsesEvent(s, { type: "response.output_text.delta", delta: "Hi" }, k);
    applyResponsesEvent(s, { type: "response.output_item.done", item: { type: "message", content: [{ type: "output_text", text: "Hi" }] } }, k);
    applyResponsesEvent(s, { type: "response.output_item.done", item: { type: "function_call", call_id: "f1", name: "glob", arguments: '{"pattern":"*"}' } }, k);
    applyResponsesEvent(s, { type: "response.completed", response: { status: "completed", usage: { input_tokens: 50, output_tokens: 5, input_tokens_details: { cached_tokens: 30 } } } }, k);
    assert.equal(s.text, "Hi");
    assert.deepEqual(got, { text: ["Hi"], reasoning: ["think"] });
    assert.deepEqual(s.calls, [{ id: "f1", name: "glob", input: { pattern: "*" } }]);
    assert.deepEqual(s.usage, { input_tokens: 50, output_tokens: 5, cache_read_tokens: 30, input_includes_cache: true });
    assert.equal(responsesStop(s), "tool_use");
    assert.equal(responsesStop({ calls: [], status: "incomplete", incomplete: "max_output_tokens" }), "max_tokens");
    // a finished message without deltas still gives its text
    const t = newResponsesTurn();
    applyResponsesEvent(t, { type: "response.output_item.done", item: { type: "message", content: [{ type: "output_text", text: "whole" }] } }, k);
    assert.equal(t.text, "whole");
  });

  test("response.failed and error events throw with the vendor's message", () => {
    assert.throws(() => applyResponsesEvent(newResponsesTurn(), { type: "response.failed", response: { error: { code: "server_error", message: "boom" } } }, sink().sink), /boom/);
    assert.throws(() => applyResponsesEvent(newResponsesTurn(), { type: "error", message: "bad" }, sink().sink), /bad/);
  });
});

describe("chat completions", () => {
  test("messages: system first, assistant tool_calls, tool messages", () => {
    assert.deepEqual(toChatMessages("sys", conversation), [
      { role: "system", content: "sys" },
      { role: "user", content: "fix it" },
      { role: "assistant", content: "Looking.", tool_calls: [{ id: "c1", type: "function", function: { name: "read_file", arguments: '{"path":"a.ts"}' } }] },
      { role: "tool", tool_call_id: "c1", content: "x" },
      { role: "user", content: "and then?" },
    ]);
  });

  test("chunks: content, reasoning_content / reasoning, tool calls by index in pieces, usage chunk, finish", () => {
    const s = newChatTurn();
    const { got, sink: k } = sink();
    const chunks = [
      { choices: [{ index: 0, delta: { role: "assistant", content: "" } }] },
      { choices: [{ index: 0, delta: { reasoning_content: "r1" } }] },
      { choices: [{ index: 0, delta: { reasoning: "r2" } }] },
      { choices: [{ index: 0, delta: { content: "Ok" } }] },
      { choices: [{ index: 0, delta: { tool_calls: [{ index: 1, id: "b", type: "function", function: { name: "grep", arguments: "" } }] } }] },
      { choices: [{ index: 0, delta: { tool_calls: [{ index: 0, id: "a", type: "function", function: { name: "bash", arguments: '{"command"' } }] } }] },
      { choices: [{ index: 0, delta: { tool_calls: [{ index: 0, function: { arguments: ':"ls"}' } }] } }] },
      { choices: [{ index: 0, delta: {}, finish_reason: "tool_calls" }] },
      { choices: [], usage: { prompt_tokens: 9, completion_tokens: 3, prompt_tokens_details: { cached_tokens: 0 } } },
    ];
    for (const c of chunks) applyChatChunk(s, c, k);
    assert.deepEqual(got, { text: ["Ok"], reasoning: ["r1", "r2"] });
    assert.deepEqual(chatCalls(s), [
      { id: "a", name: "bash", input: { command: "ls" } },
      { id: "b", name: "grep", input: {} },
    ]);
    assert.deepEqual(s.usage, { input_tokens: 9, output_tokens: 3, input_includes_cache: true });
    assert.equal(chatStop(s.finish, 2), "tool_use");
    assert.equal(chatStop("length", 0), "max_tokens");
    assert.equal(chatStop("stop", 0), "end_turn");
  });
});

describe("cost, providers, errors", () => {
  test("costOf: per million tokens; OpenAI's cached tokens are part of input, Anthropic's are not; no price, no cost", () => {
    const price = { input_per_mtok: 2, output_per_mtok: 10, cache_read_per_mtok: 0.5, cache_write_per_mtok: 4 };
    assert.equal(costOf({ input_tokens: 1_000_000, output_tokens: 100_000, cache_read_tokens: 400_000, input_includes_cache: true }, price), 0.6 * 2 + 0.4 * 0.5 + 1);
    assert.equal(costOf({ input_tokens: 1_000_000, output_tokens: 0, cache_read_tokens: 1_000_000, cache_write_tokens: 1_000_000, input_includes_cache: false }, price), 2 + 0.5 + 4);
    assert.equal(costOf({ input_tokens: 5, output_tokens: 5, input_includes_cache: true }, undefined), undefined);
  });

  test("model references and provider resolution", () => {
    assert.deepEqual(parseModelRef("local/qwen/qwen3-coder"), { provider: "local", model: "qwen/qwen3-coder" });
    for (const bad of ["gpt", "/x", "x/"]) assert.throws(() => parseModelRef(bad), (e: unknown) => e instanceof RunFailure && e.code === "model_error");
    const set = createProviderSet(
      { a: { api: "anthropic", api_key_env: "A_KEY", prices: { m: { input_per_mtok: 1, output_per_mtok: 2 } } }, o: { api: "responses" }, l: { api: "chat", base_url: "http://127.0.0.1:1/v1" } },
      { A_KEY: "sk-a" },
      "a/m",
    );
    const d = set.resolve(undefined);
    assert.equal(d.ref, "a/m");
    assert.deepEqual(d.price, { input_per_mtok: 1, output_per_mtok: 2 });
    assert.equal(set.resolve("l/llama").model, "llama", "a chat provider needs no key (local servers)");
    assert.throws(() => set.resolve("o/gpt"), (e: unknown) => e instanceof RunFailure && e.code === "auth_failed" && /providers\.o\.api_key/.test(e.message));
    assert.throws(() => set.resolve("zz/m"), /unknown provider "zz"/);
    assert.throws(() => createProviderSet({}, {}).resolve(undefined), /no model/);
  });

  test("SDK errors: 401/403 auth_failed, statuses with retries named, connection errors model_error", () => {
    assert.deepEqual(outcomeOfModelError(Object.assign(new Error("bad key"), { status: 401 }), "p", 2), { kind: "failed", code: "auth_failed", message: "provider p refused the key (HTTP 401): bad key" });
    const o = outcomeOfModelError(Object.assign(new Error("overloaded"), { status: 529 }), "p", 3) as { code: string; message: string };
    assert.equal(o.code, "model_error");
    assert.match(o.message, /provider p answered HTTP 529 after 3 retries: overloaded/);
    assert.match((outcomeOfModelError(Object.assign(new Error("nope"), { status: 400 }), "p", 3) as { message: string }).message, /HTTP 400: nope/);
    assert.equal((outcomeOfModelError(new RunFailure("max_cost", "m"), "p", 0) as { code: string }).code, "max_cost");
  });
});

describe("sessions", () => {
  test("repairTranscript adds results to calls that never ran", () => {
    const items: TranscriptItem[] = [
      { role: "user", text: "go" },
      { role: "assistant", text: "", tool_calls: [{ id: "a", name: "bash", input: {} }, { id: "b", name: "bash", input: {} }] },
      { role: "tool", results: [{ call_id: "a", output: "ok", is_error: false }] },
      { role: "assistant", text: "", tool_calls: [{ id: "c", name: "bash", input: {} }] },
    ];
    const fixed = repairTranscript(items);
    assert.equal(fixed.length, 5);
    assert.deepEqual((fixed[2] as { results: Array<{ call_id: string; is_error: boolean }> }).results.map((r) => [r.call_id, r.is_error]), [["a", false], ["b", true]]);
    assert.deepEqual((fixed[4] as { results: Array<{ call_id: string }> }).results.map((r) => r.call_id), ["c"]);
    assert.deepEqual(repairTranscript(conversation), conversation);
  });

  test("the store keeps a session's conversation; loading an unknown session fails resume_unsupported", async () => {
    const store = openSqliteStore({ file: ":memory:" });
    try {
      const user = await store.users.create({ username: "u", password_hash: "x", role: "user" });
      await store.runs.insert({ id: "run_1", user_id: user.id, agent: "openrunner", status: "queued", input: { text: "t" }, metadata: {}, cwd: "/tmp", created_at: new Date().toISOString() });
      await store.nativeSessions.save({ session_id: "ns_1", run_id: "run_1", parent_id: null, model: "a/m", messages: conversation });
      await store.nativeSessions.save({ session_id: "ns_1", run_id: "run_1", parent_id: null, model: "a/m", messages: conversation.slice(0, 1) });
      const row = (await store.nativeSessions.get("ns_1"))!;
      assert.deepEqual(row.messages, conversation.slice(0, 1));
      assert.deepEqual(await loadConversation(store.nativeSessions, "ns_1"), conversation.slice(0, 1));
      assert.deepEqual(await loadConversation(store.nativeSessions, undefined), []);
      await assert.rejects(loadConversation(store.nativeSessions, "ns_missing"), (e: unknown) => e instanceof RunFailure && e.code === "resume_unsupported");
      await store.runs.delete("run_1");
      assert.equal(await store.nativeSessions.get("ns_1"), undefined, "a session goes with its run");
    } finally {
      await store.close();
    }
  });
});

describe("conversation saving", () => {
  test("transcriptSerializer gives JSON.stringify of the conversation as it grows, and starts over for another one", () => {
    const json = transcriptSerializer();
    const t: TranscriptItem[] = [];
    assert.equal(json(t), "[]");
    for (const item of conversation) {
      t.push(item);
      assert.equal(json(t), JSON.stringify(t));
    }
    assert.equal(json(conversation.slice(0, 1)), JSON.stringify(conversation.slice(0, 1)));
    const other: TranscriptItem[] = [{ role: "user", text: "other" }];
    assert.equal(json(other), JSON.stringify(other));
  });

  test("EventWriter.alongside: the write is made in the commit of the run's next events; a failing write is rolled back alone", async () => {
    const store = openSqliteStore({ file: ":memory:" });
    const errors: unknown[] = [];
    const committed: number[] = [];
    try {
      const user = await store.users.create({ username: "u", password_hash: "x", role: "user" });
      await store.runs.insert({ id: "run_1", user_id: user.id, agent: "openrunner", status: "queued", input: { text: "t" }, metadata: {}, cwd: "/tmp", created_at: new Date().toISOString() });
      const writer = new EventWriter({ store, onError: (e) => errors.push(e) });
      const ev = (id: number) => ({ id, run_id: "run_1", ts: new Date().toISOString(), type: "message", data: { message_id: "m", role: "assistant", text: "x" } }) as RunEvent;
      const listener = { onCommitted: (events: RunEvent[]) => committed.push(...events.map((e) => e.id)) };
      writer.enqueue(ev(1), listener);
      writer.alongside("ns_1", (tx) => tx.nativeSessions.save({ session_id: "ns_1", run_id: "run_1", parent_id: null, model: "a/m", messages: conversation }));
      writer.alongside("ns_1", (tx) => tx.nativeSessions.save({ session_id: "ns_1", run_id: "run_1", parent_id: null, model: "a/m", messages_json: JSON.stringify(conversation.slice(0, 2)) }));
      writer.alongside("bad", (tx) => tx.nativeSessions.save({ session_id: "ns_2", run_id: "run_missing", parent_id: null, model: "a/m", messages: [] }));
      await writer.flush();
      assert.deepEqual(committed, [1]);
      assert.deepEqual((await store.nativeSessions.get("ns_1"))!.messages, conversation.slice(0, 2), "the later write of a key replaces the pending one");
      assert.equal(await store.nativeSessions.get("ns_2"), undefined);
      assert.equal(errors.length, 1, "the failing write is reported");
      assert.equal(await store.events.lastId("run_1"), 1, "the events are stored all the same");
      writer.alongside("ns_1", (tx) => tx.nativeSessions.save({ session_id: "ns_1", run_id: "run_1", parent_id: null, model: "a/m", messages: conversation }));
      await writer.flush();
      assert.deepEqual((await store.nativeSessions.get("ns_1"))!.messages, conversation, "a write without events is made by the next flush");
    } finally {
      await store.close();
    }
  });
});

describe("diff and glob", () => {
  test("unifiedDiff: one hunk with three lines of context; added and removed lines; no newline at end", () => {
    const before = "1\n2\n3\n4\n5\n6\n7\n8\n9\n";
    assert.equal(unifiedDiff("f", before, before.replace("5\n", "five\n")), "--- a/f\n+++ b/f\n@@ -2,7 +2,7 @@\n 2\n 3\n 4\n-5\n+five\n 6\n 7\n 8\n");
    assert.equal(unifiedDiff("f", "", "a\n"), "--- a/f\n+++ b/f\n@@ -0,0 +1,1 @@\n+a\n");
    assert.equal(unifiedDiff("f", "a", "b"), "--- a/f\n+++ b/f\n@@ -1,1 +1,1 @@\n-a\n\\ No newline at end of file\n+b\n\\ No newline at end of file\n");
    assert.equal(unifiedDiff("f", "same", "same"), "");
  });

  test("globToRegExp", () => {
    const cases: Array<[string, string, boolean]> = [
      ["*.ts", "a.ts", true],
      ["*.ts", "src/deep/a.ts", true],
      ["src/*.ts", "src/deep/a.ts", false],
      ["src/**/*.ts", "src/a.ts", true],
      ["src/**/*.ts", "src/x/y/a.ts", true],
      ["**", "any/thing", true],
      ["a?.md", "ab.md", true],
      ["a?.md", "a/.md", false],
      ["*.{js,json}", "p.json", true],
      ["[!a]*.txt", "b.txt", true],
      ["[!a]*.txt", "a.txt", false],
      ["file.txt", "filextxt", false],
    ];
    for (const [g, p, want] of cases) assert.equal(globToRegExp(g).test(p), want, `${g} ${p}`);
  });
});
