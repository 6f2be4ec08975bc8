/**
 * The CLI renderer (src/cli/render.ts) on a run that uses every event type,
 * plus the pure formatting helpers it relies on.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Ajv } from "ajv";
import { EVENT_DATA_SCHEMAS, RUN_EVENT_TYPES, type RunEvent, type RunEventInput } from "../../src/protocol/events.ts";
import { createRenderer, type RenderableEvent } from "../../src/cli/render.ts";
import {
  formatDuration,
  formatTable,
  summarizeToolInput,
  summarizeToolOutput,
} from "../../src/cli/format.ts";

/** Numbers and stamps event inputs as the server would. */
function number(inputs: RunEventInput[]): RunEvent[] {
  return inputs.map((e, i) => ({ id: i + 1, run_id: "run_1", ts: "2026-11-22T10:00:00.000Z", ...e }) as RunEvent);
}

function renderAll(events: RenderableEvent[], color = false): string {
  const r = createRenderer({ color });
  return events.map((e) => r.render(e)).join("") + r.flush();
}

const EVERY_TYPE: RunEventInput[] = [
  { type: "run.queued", data: { agent: "claude_code", input: { text: "fix it" }, position: 2 } },
  { type: "container.created", data: { container_id: "0123456789abcdef" } },
  { type: "container.started", data: { container_id: "0123456789abcdef" } },
  { type: "run.started", data: { agent: "claude_code", agent_version: "1.0.3", pid: 42, cwd: "/w/run_1" } },
  { type: "agent.session", data: { session_id: "sess-9" } },
  { type: "reasoning", data: { text: "Look at the test.\nThen fix.\n" } },
  { type: "plan", data: { entries: [
    { content: "read", status: "completed" },
    { content: "fix", status: "in_progress" },
    { content: "test", status: "pending" },
  ] } },
  { type: "message.delta", data: { message_id: "m1", text: "Hello" } },
  { type: "message.delta", data: { message_id: "m1", text: ", world" } },
  { type: "message", data: { message_id: "m1", role: "assistant", text: "Hello, world" } },
  { type: "tool.call", data: { call_id: "c1", name: "Bash", input: { command: "npm test", description: "run tests" } } },
  { type: "log", data: { stream: "stderr", text: "warn: slow\n" } },
  { type: "tool.result", data: { call_id: "c1", output: "1 failing\nat foo.ts:3\n", is_error: true } },
  { type: "permission.request", data: { request_id: "p1", name: "Edit", input: { file_path: "src/a.ts" }, options: ["allow", "deny"] } },
  { type: "permission.decision", data: { request_id: "p1", decision: "allow", by: "admin" } },
  { type: "tool.call", data: { call_id: "c2", name: "Edit", input: { file_path: "src/a.ts", old: "x", new: "y" } } },
  { type: "tool.result", data: { call_id: "c2", output: [{ type: "text", text: "ok" }], is_error: false } },
  { type: "log", data: { stream: "stdout", text: "plain" } },
  { type: "message", data: { message_id: "m2", role: "assistant", text: "Fixed.\n" } },
  { type: "usage", data: { input_tokens: 12345, output_tokens: 678, cache_read_tokens: 90, cost_usd: 0.01234 } },
  { type: "container.stopped", data: { container_id: "0123456789abcdef" } },
  { type: "container.removed", data: { container_id: "0123456789abcdef" } },
  { type: "run.completed", data: { result: "Fixed.", exit_code: 0, duration_ms: 12345 } },
  { type: "run.failed", data: { error: { code: "agent_crashed", message: "boom" }, exit_code: 3, duration_ms: 800 } },
  { type: "run.cancelled", data: { reason: "user request", by: "admin", duration_ms: 61000 } },
  { type: "run.timed_out", data: { timeout_ms: 300000, duration_ms: 300100 } },
  { type: "run.stalled", data: { cause: "tool_running", idle_ms: 61000, pid: 42, tool_pids: [43], cpu_busy: false } },
  { type: "run.resumed_activity", data: { stalled_ms: 62000 } },
];

const EXPECTED = [
  "queued (position 2)",
  "container created 0123456789ab",
  "container started 0123456789ab",
  "started claude_code 1.0.3 · pid 42 · /w/run_1",
  "session sess-9",
  "Look at the test.",
  "Then fix.",
  "plan:",
  "  ✓ read",
  "  ▸ fix",
  "  ○ test",
  "Hello, world",
  "→ Bash(npm test)",
  "stderr│ warn: slow",
  "  ✗ 1 failing (+1 line)",
  "? permission requested: Edit(src/a.ts)",
  "  permission allow by admin",
  "→ Edit(src/a.ts)",
  "  ✓ ok",
  "stdout│ plain",
  "Fixed.",
  "usage: 12,345 in · 678 out · 90 cache read · $0.0123",
  "container stopped 0123456789ab",
  "container removed 0123456789ab",
  "✓ completed in 12.3s",
  "✗ failed: agent_crashed: boom (exit 3) after 800ms",
  "■ cancelled: user request (by admin) after 1m 01s",
  "✗ timed out (limit 5m 00s) after 5m 00s",
  "… no event for 1m 01s: tool running, idle",
  "… active again after 1m 02s",
  "",
].join("\n");

describe("cli renderer", () => {
  it("the fixture covers every event type of the contract, with valid data", () => {
    assert.deepEqual(new Set(EVERY_TYPE.map((e) => e.type)), new Set(RUN_EVENT_TYPES));
    const ajv = new Ajv({ strict: false });
    for (const e of EVERY_TYPE) {
      const validate = ajv.compile(EVENT_DATA_SCHEMAS[e.type]);
      assert.ok(validate(e.data), `${e.type}: ${ajv.errorsText(validate.errors)}`);
    }
  });

  it("renders every event type readably, none through the generic fallback", () => {
    const events = number(EVERY_TYPE);
    assert.equal(renderAll(events), EXPECTED);
    const r = createRenderer();
    for (const e of events) {
      const text = r.render(e);
      assert.ok(!text.includes("{"), `${e.type} fell back to JSON: ${text}`);
    }
  });

  it("streams deltas inline and closes the line before other output", () => {
    const r = createRenderer();
    const [a, b, call, done] = number([
      { type: "message.delta", data: { message_id: "m1", text: "Work" } },
      { type: "message.delta", data: { message_id: "m1", text: "ing" } },
      { type: "tool.call", data: { call_id: "c", name: "Read", input: { path: "x" } } },
      { type: "message", data: { message_id: "m1", role: "assistant", text: "Working" } },
    ]);
    assert.equal(r.render(a!), "Work");
    assert.equal(r.midLine, true);
    assert.equal(r.render(b!), "ing");
    assert.equal(r.render(call!), "\n→ Read(x)\n");
    assert.equal(r.midLine, false);
    assert.equal(r.render(done!), "", "a streamed message is not printed twice");
    assert.equal(r.flush(), "");
  });

  it("starts a new line when a second message streams", () => {
    const out = renderAll(
      number([
        { type: "message.delta", data: { message_id: "m1", text: "one" } },
        { type: "message.delta", data: { message_id: "m2", text: "two" } },
      ]),
    );
    assert.equal(out, "one\ntwo\n");
  });

  it("prints the run's result and usage only when nothing showed them", () => {
    const completed: RunEventInput = {
      type: "run.completed",
      data: { result: "42", exit_code: 0, duration_ms: 1500, usage: { input_tokens: 1, output_tokens: 2 } },
    };
    assert.equal(renderAll(number([completed])), "42\nusage: 1 in · 2 out\n✓ completed in 1.5s\n");
    const shown = renderAll(
      number([
        { type: "message", data: { message_id: "m", role: "assistant", text: "42" } },
        { type: "usage", data: { input_tokens: 1, output_tokens: 2 } },
        completed,
      ]),
    );
    assert.equal(shown, "42\nusage: 1 in · 2 out\n✓ completed in 1.5s\n");
    const shell = renderAll(
      number([
        { type: "log", data: { stream: "stdout", text: "42" } },
        { type: "run.completed", data: { result: "42\n", exit_code: 0, duration_ms: 5 } },
      ]),
    );
    assert.equal(shell, "stdout│ 42\n✓ completed in 5ms\n", "a result that repeats stdout is not printed again");
  });

  it("colours on request: reasoning dim, failures red", () => {
    const out = renderAll(number([EVERY_TYPE[5]!, EVERY_TYPE[23]!]), true);
    assert.match(out, /\u001b\[2mLook at the test\.\u001b\[22m/);
    assert.match(out, /\u001b\[31m✗ failed: agent_crashed: boom\u001b\[39m/);
    assert.ok(!renderAll(number([EVERY_TYPE[5]!])).includes("\u001b"), "no escapes without colour");
  });

  it("survives unknown types and malformed data", () => {
    const r = createRenderer();
    assert.equal(r.render({ id: 1, type: "stream.future", data: { a: 1 } }), "stream.future {\"a\":1}\n");
    const broken = { id: 2, type: "run.failed", data: {} } as unknown as RenderableEvent;
    assert.equal(r.render(broken), "run.failed {}\n");
  });
});

describe("cli format helpers", () => {
  it("summarizes tool input by its telling field, else JSON", () => {
    assert.equal(summarizeToolInput({ command: ["ls", "-la"] }), "ls -la");
    assert.equal(summarizeToolInput({ a: 1 }), '{"a":1}');
    assert.equal(summarizeToolInput("x".repeat(100), 10), `${"x".repeat(9)}…`);
    assert.equal(summarizeToolInput(undefined), "");
  });

  it("summarizes tool output to its first line", () => {
    assert.equal(summarizeToolOutput("\n a \nb\nc"), "a (+2 lines)");
    assert.equal(summarizeToolOutput({ stdout: "hi\n", exit_code: 0 }), "hi");
    assert.equal(summarizeToolOutput(null), "");
  });

  it("formats durations and tables", () => {
    assert.deepEqual([0, 999, 1500, 65_000, 3_725_000].map(formatDuration), ["0ms", "999ms", "1.5s", "1m 05s", "1h 02m"]);
    assert.equal(formatTable(["ID", "NAME"], [["1", "alice"], ["22", "b"]]), "ID  NAME\n1   alice\n22  b");
  });
});

describe("openrunner agents table", () => {
  it("says whether each pinned agent runs its tested version", async () => {
    const { formatAgentsTable } = await import("../../src/cli/agents.ts");
    const table = formatAgentsTable([
      { agent: "codex", available: true, version: "0.171.0", path: "/x/codex", tested: false, tested_version: "0.169.0" },
      { agent: "gemini", available: true, version: "0.61.0", path: "/x/gemini", tested: true, tested_version: "0.61.0" },
      { agent: "shell", available: true, path: "/bin/sh" },
    ]);
    const lines = table.split("\n");
    assert.match(lines[0]!, /AGENT\s+AVAILABLE\s+VERSION\s+TESTED\s+PATH \/ REASON/);
    assert.match(lines.find((l) => l.startsWith("codex"))!, /0\.171\.0\s+no \(tested 0\.169\.0\)\s+\/x\/codex/);
    assert.match(lines.find((l) => l.startsWith("gemini"))!, /0\.61\.0\s+yes\s+\/x\/gemini/);
    assert.match(lines.find((l) => l.startsWith("shell"))!, /-\s+-\s+\/bin\/sh/);
  });
});
