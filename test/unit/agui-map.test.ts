/**
 * The AG-UI mapping (src/api/agui-map.ts): every AG-UI event it produces is
 * valid for the protocol's own schemas (`EventSchemas` of `@ag-ui/core`), the
 * stream keeps AG-UI's nesting (RUN_STARTED first, text messages started
 * before their content and ended before a tool call or the run's end, tool
 * calls START/ARGS/END), and each RunEvent type lands on its AG-UI type.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { EventType } from "@ag-ui/core";
import { EventSchemas } from "@ag-ui/core/schemas";
import { createAguiMapper, RAW_SOURCE, type AguiEvent } from "../../src/api/agui-map.ts";
import { type RunEvent, type RunEventInput } from "../../src/protocol/events.ts";

const RUN = "run_01TEST";

/** Numbers and stamps events as the channel would. */
function numbered(inputs: RunEventInput[]): RunEvent[] {
  return inputs.map((e, i) => ({ ...e, id: i + 1, run_id: RUN, ts: new Date(Date.UTC(2026, 11, 3, 10, 0, i)).toISOString() }) as RunEvent);
}

function mapAll(events: RunEvent[], threadId?: string): Array<{ from: RunEvent; out: AguiEvent[] }> {
  const m = createAguiMapper(threadId ? { threadId } : {});
  return events.map((e) => ({ from: e, out: m.map(e) }));
}

/** Asserts the nesting rules of AG-UI's event stream (https://docs.ag-ui.com/concepts/events). */
function assertWellNested(events: AguiEvent[]): void {
  assert.equal(events[0]?.type, EventType.RUN_STARTED);
  const openText = new Set<string>();
  const openTool = new Set<string>();
  let ended = false;
  for (const e of events) {
    assert.ok(!ended, `${e.type} after the run ended`);
    const id = (e.messageId ?? e.toolCallId) as string;
    switch (e.type) {
      case EventType.TEXT_MESSAGE_START:
        assert.ok(!openText.has(id));
        openText.add(id);
        break;
      case EventType.TEXT_MESSAGE_CONTENT:
        assert.ok(openText.has(id), `content of a message not started: ${id}`);
        break;
      case EventType.TEXT_MESSAGE_END:
        assert.ok(openText.delete(id), `end of a message not started: ${id}`);
        break;
      case EventType.TOOL_CALL_START:
        assert.equal(openText.size, 0, "a text message is open when a tool call starts");
        openTool.add(id);
        break;
      case EventType.TOOL_CALL_ARGS:
        assert.ok(openTool.has(id));
        break;
      case EventType.TOOL_CALL_END:
        assert.ok(openTool.delete(id));
        break;
      case EventType.RUN_FINISHED:
      case EventType.RUN_ERROR:
        assert.equal(openText.size + openTool.size, 0, "messages or tool calls open at the run's end");
        ended = true;
        break;
    }
  }
  assert.ok(ended, "the stream ends with RUN_FINISHED or RUN_ERROR");
}

const conversation: RunEventInput[] = [
  { type: "run.queued", data: { agent: "claude_code", input: { text: "hi" }, position: 0 } },
  { type: "run.started", data: { agent: "claude_code", cwd: "/w", pid: 7 } },
  { type: "agent.session", data: { session_id: "s1" } },
  { type: "reasoning", data: { text: "thinking" } },
  { type: "message.delta", data: { message_id: "m1", text: "Hel" } },
  { type: "message.delta", data: { message_id: "m1", text: "lo" } },
  { type: "message", data: { message_id: "m1", role: "assistant", text: "Hello" } },
  { type: "plan", data: { entries: [{ content: "write", status: "in_progress" }] } },
  { type: "message.delta", data: { message_id: "m2", text: "Running" } },
  { type: "tool.call", data: { call_id: "c1", name: "Bash", input: { command: "ls" } } },
  { type: "permission.request", data: { request_id: "p1", name: "Bash", input: {}, options: [{ option_id: "allow", name: "Allow", kind: "allow_once" }] } },
  { type: "permission.decision", data: { request_id: "p1", decision: "allow", by: "policy" } },
  { type: "tool.result", data: { call_id: "c1", output: "a\nb", is_error: false } },
  { type: "tool.call", data: { call_id: "c2", name: "mcp__fixture__echo", input: { text: "x" }, server: "fixture" } },
  { type: "tool.result", data: { call_id: "c2", output: [{ type: "text", text: "x" }], is_error: false } },
  { type: "message", data: { message_id: "m3", role: "assistant", text: "Done." } },
  { type: "usage", data: { input_tokens: 3, output_tokens: 4 } },
  { type: "log", data: { stream: "stderr", text: "warn" } },
  { type: "run.completed", data: { result: "Done.", exit_code: 0, duration_ms: 10 } },
];

test("every AG-UI event is valid for @ag-ui/core's schemas and the stream is well nested", () => {
  const all = mapAll(numbered(conversation)).flatMap((x) => x.out);
  for (const e of all) {
    const r = EventSchemas.safeParse(e);
    assert.ok(r.success, `${e.type} ${JSON.stringify(e)}: ${r.success ? "" : r.error.message}`);
  }
  assertWellNested(all);
});

test("each RunEvent type lands on its AG-UI type", () => {
  const byType = new Map(mapAll(numbered(conversation), "thread-1").map((x) => [`${x.from.id}`, x]));
  const types = (id: number) => byType.get(String(id))!.out.map((e) => e.type);
  assert.deepEqual(types(1), [EventType.RUN_STARTED]);
  assert.deepEqual(byType.get("1")!.out[0], { type: EventType.RUN_STARTED, timestamp: Date.UTC(2026, 11, 3, 10, 0, 0), threadId: "thread-1", runId: RUN });
  assert.deepEqual(types(2), [EventType.RAW]);
  assert.equal(byType.get("2")!.out[0]!.source, RAW_SOURCE);
  assert.equal((byType.get("2")!.out[0]!.event as RunEvent).type, "run.started");
  assert.deepEqual(types(4), [EventType.REASONING_START, EventType.REASONING_MESSAGE_START, EventType.REASONING_MESSAGE_CONTENT, EventType.REASONING_MESSAGE_END, EventType.REASONING_END]);
  assert.deepEqual(types(5), [EventType.TEXT_MESSAGE_START, EventType.TEXT_MESSAGE_CONTENT]);
  assert.deepEqual(types(6), [EventType.TEXT_MESSAGE_CONTENT]);
  assert.deepEqual(types(7), [EventType.TEXT_MESSAGE_END]);
  assert.deepEqual(byType.get("8")!.out[0]!.snapshot, { plan: [{ content: "write", status: "in_progress" }] });
  // m2 is still open when the tool call starts: it is closed first.
  assert.deepEqual(types(10), [EventType.TEXT_MESSAGE_END, EventType.TOOL_CALL_START, EventType.TOOL_CALL_ARGS, EventType.TOOL_CALL_END]);
  assert.equal(byType.get("10")!.out[2]!.delta, '{"command":"ls"}');
  assert.deepEqual(types(11), [EventType.CUSTOM]);
  assert.equal(byType.get("11")!.out[0]!.name, "openrunner.permission.request");
  assert.deepEqual(byType.get("13")!.out[0], { type: EventType.TOOL_CALL_RESULT, timestamp: Date.UTC(2026, 11, 3, 10, 0, 12), messageId: "c1:result", toolCallId: "c1", content: "a\nb", role: "tool" });
  assert.equal(byType.get("15")!.out[0]!.content, '[{"type":"text","text":"x"}]');
  assert.deepEqual(types(16), [EventType.TEXT_MESSAGE_START, EventType.TEXT_MESSAGE_CONTENT, EventType.TEXT_MESSAGE_END]);
  assert.deepEqual(byType.get("19")!.out, [{ type: EventType.RUN_FINISHED, timestamp: Date.UTC(2026, 11, 3, 10, 0, 18), threadId: "thread-1", runId: RUN, result: "Done.", outcome: { type: "success" } }]);
});

test("failed, cancelled and timed-out runs end with RUN_ERROR or a cancelled RUN_FINISHED, closing open messages", () => {
  const start: RunEventInput[] = [
    { type: "run.queued", data: { agent: "shell", input: { text: "x" }, position: 0 } },
    { type: "message.delta", data: { message_id: "m1", text: "par" } },
  ];
  const ends: Array<[RunEventInput, Record<string, unknown>]> = [
    [{ type: "run.failed", data: { error: { code: "model_error", message: "HTTP 500" }, duration_ms: 1 } }, { type: EventType.RUN_ERROR, message: "HTTP 500", code: "model_error" }],
    [{ type: "run.timed_out", data: { timeout_ms: 1000, duration_ms: 1000 } }, { type: EventType.RUN_ERROR, message: "the run timed out after 1000 ms", code: "timed_out" }],
    [{ type: "run.cancelled", data: { reason: "cancelled by user", duration_ms: 1 } }, { type: EventType.RUN_FINISHED, threadId: RUN, runId: RUN, outcome: { type: "cancelled" } }],
  ];
  for (const [end, want] of ends) {
    const all = mapAll(numbered([...start, end])).flatMap((x) => x.out);
    for (const e of all) assert.ok(EventSchemas.safeParse(e).success, JSON.stringify(e));
    assertWellNested(all);
    const { timestamp: _t, ...last } = all.at(-1)!;
    assert.deepEqual(last, want);
    assert.equal(all.at(-2)!.type, EventType.TEXT_MESSAGE_END);
  }
});

test("a stream that starts with another event still starts with RUN_STARTED; empty texts make no CONTENT", () => {
  const all = mapAll(numbered([{ type: "message", data: { message_id: "m", role: "assistant", text: "" } }])).flatMap((x) => x.out);
  assert.deepEqual(all.map((e) => e.type), [EventType.RUN_STARTED, EventType.TEXT_MESSAGE_START, EventType.TEXT_MESSAGE_END]);
});
