/**
 * The dashboard's pure view model (web/src/run/): how a run's events fold into
 * rows (deltas merged, results on their calls, decisions on their requests,
 * usage summed, replays ignored) and what is read out of tool calls (command,
 * exit code, output text, file diffs).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import type { RunEvent } from "../../src/protocol/events.ts";
import { Timeline } from "../../web/src/run/timeline.ts";
import { commandOf, diffLines, exitCodeOf, fileChangesOf, outputText } from "../../web/src/run/tool-detail.ts";

let n = 0;
const ev = (type: string, data: Record<string, unknown>, id = ++n): RunEvent => ({ id, run_id: "run_x", ts: "2026-12-03T10:00:00.000Z", type, data }) as RunEvent;

test("deltas merge into one message; the whole message replaces the text; replays are ignored", () => {
  n = 0;
  const t = new Timeline();
  t.add(ev("run.queued", { agent: "acp", input: { text: "x" }, position: 0 }));
  t.add(ev("message.delta", { message_id: "m1", text: "Hel" }));
  t.add(ev("message.delta", { message_id: "m1", text: "lo" }));
  assert.deepEqual(t.items.filter((i) => i.kind === "message").map((i) => i.kind === "message" && [i.text, i.complete]), [["Hello", false]]);
  t.add(ev("message", { message_id: "m1", role: "assistant", text: "Hello!" }));
  assert.deepEqual(t.items.filter((i) => i.kind === "message").map((i) => i.kind === "message" && [i.text, i.complete]), [["Hello!", true]]);
  assert.equal(t.add(ev("message.delta", { message_id: "m1", text: "again" }, 2)), false, "an id already seen");
  assert.equal(t.count, 4);
  assert.equal(t.lastId, 4);
  assert.equal(t.items.length, 2);
  assert.equal(t.statusCount, 1);
});

test("a result attaches to its call; a decision to its request; usage is summed; the end is kept", () => {
  n = 0;
  const t = new Timeline();
  t.add(ev("run.started", { agent: "shell", cwd: "/w", pid: 42 }));
  t.add(ev("tool.call", { call_id: "c1", name: "Bash", input: { command: "ls" } }));
  t.add(ev("permission.request", { request_id: "p1", name: "Write", input: {}, options: [] }));
  assert.deepEqual(t.openPermissions().map((p) => p.requestId), ["p1"]);
  t.add(ev("tool.result", { call_id: "c1", output: "a\nb", is_error: false }));
  t.add(ev("permission.decision", { request_id: "p1", decision: "allow", by: "user:admin", kind: "allow_once" }));
  t.add(ev("usage", { input_tokens: 10, output_tokens: 5, cost_usd: 0.01 }));
  t.add(ev("usage", { input_tokens: 1, output_tokens: 2, cache_read_tokens: 3 }));
  t.add(ev("run.completed", { exit_code: 0, duration_ms: 5 }));
  const tool = t.items.find((i) => i.kind === "tool");
  assert.ok(tool?.kind === "tool" && tool.result?.output === "a\nb");
  assert.deepEqual(t.openPermissions(), []);
  assert.deepEqual(t.usage, { input_tokens: 11, output_tokens: 7, cache_read_tokens: 3, cache_write_tokens: 0, cost_usd: 0.01, has_cost: true });
  assert.equal(t.pid, 42);
  assert.equal(t.end?.type, "run.completed");
  assert.equal(t.items.filter((i) => i.kind === "tool").length, 1);
});

test("100,000 log events fold in one pass", () => {
  const t = new Timeline();
  for (let i = 1; i <= 100_000; i++) t.add(ev("log", { stream: "stdout", text: `line ${i}` }, i));
  assert.equal(t.items.length, 100_000);
  assert.equal(t.lastId, 100_000);
});

test("tool details: command, exit code, output text, diffs of edits, writes, codex changes and ACP diff blocks", () => {
  assert.equal(commandOf({ command: "ls -la" }), "ls -la");
  assert.equal(commandOf({ cmd: ["git", "status"] }), "git status");
  assert.equal(commandOf({ file_path: "/a" }), undefined);
  assert.equal(exitCodeOf({ exit_code: 2 }, undefined), 2);
  assert.equal(exitCodeOf("text", { item: { exit_code: 1 } }), 1);
  assert.equal(exitCodeOf("text", undefined), undefined);
  assert.equal(outputText("plain"), "plain");
  assert.equal(outputText([{ type: "content", content: { type: "text", text: "a" } }, { type: "content", content: { type: "text", text: "b" } }]), "a\nb");
  assert.equal(outputText({ stdout: "out", stderr: "err" }), "out\nerr");
  assert.deepEqual(diffLines("a\nb\nc\n", "a\nB\nc\n"), [" a", "-b", "+B", " c"]);
  assert.deepEqual(fileChangesOf({ file_path: "/w/x.ts", old_string: "one", new_string: "two" }, "ok"), [{ path: "/w/x.ts", kind: "edit", lines: ["-one", "+two"] }]);
  assert.deepEqual(fileChangesOf({ filePath: "/w/n.txt", content: "a note\n" }, ""), [{ path: "/w/n.txt", kind: "write", lines: ["+a note"] }]);
  assert.deepEqual(fileChangesOf({ changes: [{ path: "/w/n.txt", kind: "add" }] }, [{ path: "/w/n.txt", kind: "add" }]), [{ path: "/w/n.txt", kind: "add", lines: [] }]);
  assert.deepEqual(fileChangesOf(undefined, [{ type: "diff", path: "/w/a", oldText: "x\n", newText: "y\n" }]), [{ path: "/w/a", kind: "update", lines: ["-x", "+y"] }]);
  assert.deepEqual(fileChangesOf({ command: "ls" }, "a"), []);
});
