/** Unit: the pure mapping of ACP `session/update` notifications to run events (`src/agent/acp/map-update.ts`). */
import { test } from "node:test";
import assert from "node:assert/strict";
import { createUpdateMapper, toolOutput, usageOf } from "../../src/agent/acp/map-update.ts";
import { outcomeOfRpcError, outcomeOfStop } from "../../src/agent/acp/actor.ts";

const chunk = (text: string) => ({ sessionUpdate: "agent_message_chunk", content: { type: "text", text } });

test("chunks stream as message.delta and become one message at a tool call and at the end of the turn", () => {
  const m = createUpdateMapper("s");
  assert.deepEqual(m.map(chunk("Hel")), [{ type: "message.delta", data: { message_id: "s:0", text: "Hel" } }]);
  m.map(chunk("lo"));
  const atTool = m.map({ sessionUpdate: "tool_call", toolCallId: "c1", title: "Read", kind: "read", rawInput: { path: "/a" }, status: "pending" });
  assert.deepEqual(atTool.map((e) => e.type), ["message", "tool.call"]);
  assert.deepEqual(atTool[0]!.data, { message_id: "s:0", role: "assistant", text: "Hello" });
  assert.deepEqual({ ...atTool[1]!.data, raw: undefined }, { call_id: "c1", name: "Read", input: { path: "/a" }, raw: undefined });
  const res = m.map({ sessionUpdate: "tool_call_update", toolCallId: "c1", status: "completed", content: [{ type: "content", content: { type: "text", text: "data" } }] });
  assert.deepEqual(res.map((e) => [e.type, (e.data as any).output, (e.data as any).is_error]), [["tool.result", "data", false]]);
  assert.deepEqual(m.map({ sessionUpdate: "tool_call_update", toolCallId: "c1", status: "completed" }), [], "a second completion is not a second result");
  m.map(chunk("Bye"));
  assert.deepEqual(m.endTurn(), [{ type: "message", data: { message_id: "s:1", role: "assistant", text: "Bye" } }]);
  assert.equal(m.lastMessage(), "Bye");
  assert.deepEqual(m.endTurn(), []);
});

test("thought, plan, failed tool, empty chunks and unknown kinds", () => {
  const m = createUpdateMapper("s");
  assert.deepEqual((m.map({ sessionUpdate: "agent_thought_chunk", content: { type: "text", text: "hmm" } })[0]!.data as any).text, "hmm");
  const plan = m.map({ sessionUpdate: "plan", entries: [{ content: "a", status: "pending", priority: "low" }, { content: "b", status: "completed" }] });
  assert.deepEqual((plan[0]!.data as any).entries, [{ content: "a", status: "pending", priority: "low" }, { content: "b", status: "completed" }]);
  assert.deepEqual(m.map(chunk("")), []);
  const failed = m.map({ sessionUpdate: "tool_call", toolCallId: "x", title: "Run", rawInput: { c: 1 }, status: "failed", rawOutput: { err: "no" } });
  assert.deepEqual(failed.map((e) => e.type), ["tool.call", "tool.result"]);
  assert.deepEqual((failed[1]!.data as any).output, { err: "no" });
  assert.equal((failed[1]!.data as any).is_error, true);
  const other = m.map({ sessionUpdate: "current_mode_update", currentModeId: "plan" });
  assert.equal(other[0]!.type, "log");
  assert.deepEqual((other[0]!.data as any).raw, { sessionUpdate: "current_mode_update", currentModeId: "plan" });
  assert.equal(m.map(null)[0]!.type, "log");
});

test("a call announced without input is held until its input arrives, a permission names it, or something else happens", () => {
  const m = createUpdateMapper("s");
  assert.deepEqual(m.map({ sessionUpdate: "tool_call", toolCallId: "w", title: "Write", kind: "edit", rawInput: {}, status: "pending" }), []);
  assert.deepEqual(m.map(chunk("")), [], "a silent update does not release it");
  const viaPermission = m.flushCalls({ toolCallId: "w", title: "Write /a.txt", rawInput: { file_path: "/a.txt" } });
  assert.deepEqual(viaPermission.map((e) => [e.type, (e.data as any).name, (e.data as any).input]), [["tool.call", "Write /a.txt", { file_path: "/a.txt" }]]);
  assert.equal((m.map({ sessionUpdate: "tool_call_update", toolCallId: "w", status: "completed", rawOutput: [{ type: "text", text: "ok" }] })[0]!.data as any).output, "ok");

  m.map({ sessionUpdate: "tool_call", toolCallId: "b", title: "Terminal", rawInput: {} });
  const viaUpdate = m.map({ sessionUpdate: "tool_call_update", toolCallId: "b", rawInput: { command: "ls" }, title: "ls" });
  assert.deepEqual(viaUpdate.map((e) => [e.type, (e.data as any).name, (e.data as any).input]), [["tool.call", "ls", { command: "ls" }]]);

  m.map({ sessionUpdate: "tool_call", toolCallId: "c", title: "Other", rawInput: {} });
  const viaOther = m.map(chunk("text"));
  assert.deepEqual(viaOther.map((e) => e.type), ["tool.call", "message.delta"]);

  assert.deepEqual(m.map({ sessionUpdate: "tool_call", toolCallId: "d", title: "Last", rawInput: {} }).map((e) => e.type), ["message"], "the text before the call ends its message");
  assert.deepEqual(m.endTurn().map((e) => e.type), ["tool.call"], "the end of the turn releases a call still held");
});

test("a permission request about a call never announced announces it", () => {
  const m = createUpdateMapper("s");
  const out = m.flushCalls({ toolCallId: "p", title: "rm -rf x", rawInput: { command: "rm -rf x" } });
  assert.deepEqual(out.map((e) => [e.type, (e.data as any).name, (e.data as any).input]), [["tool.call", "rm -rf x", { command: "rm -rf x" }]]);
  assert.deepEqual(m.map({ sessionUpdate: "tool_call", toolCallId: "p", title: "rm", rawInput: { command: "rm -rf x" } }), [], "not announced twice");
  assert.deepEqual(m.map({ sessionUpdate: "tool_call_update", toolCallId: "p", status: "completed" }).map((e) => e.type), ["tool.result"]);
});

test("an update for a call never announced announces it first", () => {
  const m = createUpdateMapper("s");
  const out = m.map({ sessionUpdate: "tool_call_update", toolCallId: "z", status: "completed", title: "Late", content: [] });
  assert.deepEqual(out.map((e) => e.type), ["tool.call", "tool.result"]);
});

test("toolOutput and usageOf", () => {
  assert.equal(toolOutput({ content: [{ type: "content", content: { type: "text", text: "a" } }, { type: "content", content: { type: "text", text: "b" } }] }), "a\nb");
  assert.deepEqual(toolOutput({ content: [{ type: "diff", path: "/x", newText: "n" }] }), [{ type: "diff", path: "/x", newText: "n" }]);
  assert.deepEqual(usageOf({ stopReason: "end_turn", usage: { inputTokens: 10, outputTokens: 5, cachedReadTokens: 2, totalTokens: 17 } }), { input_tokens: 10, output_tokens: 5, cache_read_tokens: 2 });
  assert.equal(usageOf({ stopReason: "end_turn" }), undefined);
});

test("stop reasons and JSON-RPC errors map to outcomes", () => {
  assert.deepEqual(outcomeOfStop("end_turn", "hi"), { kind: "completed", exit_code: 0, result: "hi" });
  for (const r of ["max_tokens", "max_turn_requests", "refusal"]) assert.equal((outcomeOfStop(r, undefined) as { code: string }).code, r);
  assert.equal((outcomeOfStop("weird", undefined) as { code: string }).code, "protocol_error");
  assert.equal((outcomeOfRpcError("session/prompt", { code: -32603, message: 'Internal error: API Error: 500 {"type":"error"}' }) as { code: string }).code, "model_error");
  assert.equal((outcomeOfRpcError("session/prompt", { code: -32603, message: "Internal error: API Error: 401 unauthorized" }) as { code: string }).code, "auth_failed");
  assert.equal((outcomeOfRpcError("session/new", { code: -32000, message: "Authentication required" }) as { code: string }).code, "auth_failed");
  assert.equal((outcomeOfRpcError("session/new", { code: -32602, message: "Invalid params" }) as { code: string }).code, "agent_error");
});
