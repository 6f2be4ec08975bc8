/**
 * The session readers (`src/agent/sessions/`) on records of the shapes Claude Code 2.1 and codex 0.169 wrote
 * (trimmed from real files): summaries (title, cwd, times, turns), rendering (Claude Code through its stream
 * parser, codex through the documented mapping), and a home read from disk with files in the wrong places.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { claudeCodeSessions } from "../../src/agent/sessions/claude-code.ts";
import { codexSessions } from "../../src/agent/sessions/codex.ts";
import { jsonLines } from "../../src/agent/sessions/home-fs.ts";
import { listSessions } from "../../src/agent/sessions/index.ts";

const SID = "46694214-ee22-4e2c-8c18-bf22891dc161";
const CLAUDE = [
  { type: "queue-operation", operation: "enqueue", timestamp: "2026-12-03T09:42:08.993Z", sessionId: SID, content: "create hi.txt" },
  { type: "user", message: { role: "user", content: "create hi.txt" }, uuid: "u1", timestamp: "2026-12-03T09:42:09.111Z", cwd: "/w/run_1", sessionId: SID, isSidechain: false },
  { type: "assistant", message: { id: "msg_1", type: "message", role: "assistant", content: [{ type: "text", text: "Listing." }], stop_reason: "tool_use" }, timestamp: "2026-12-03T09:42:09.200Z", sessionId: SID },
  { type: "assistant", message: { id: "msg_1", type: "message", role: "assistant", content: [{ type: "tool_use", id: "toolu_1", name: "Bash", input: { command: "echo hi > hi.txt" } }] }, timestamp: "2026-12-03T09:42:09.210Z", sessionId: SID },
  { type: "user", message: { role: "user", content: [{ tool_use_id: "toolu_1", type: "tool_result", content: "(Bash completed with no output)", is_error: false }] }, timestamp: "2026-12-03T09:42:09.300Z", sessionId: SID },
  { type: "assistant", message: { id: "msg_2", type: "message", role: "assistant", content: [{ type: "text", text: "Created hi.txt." }], stop_reason: "end_turn" }, timestamp: "2026-12-03T09:42:09.349Z", sessionId: SID },
  { type: "user", isSidechain: true, message: { role: "user", content: "a subagent's prompt" }, timestamp: "2026-12-03T09:42:09.350Z", sessionId: SID },
  { type: "last-prompt", lastPrompt: "create hi.txt", sessionId: SID },
];

const CID = "01a23b48-65af-7c11-89e3-f8a22645e70e";
const CODEX = [
  { timestamp: "2026-12-03T09:42:10.124Z", type: "session_meta", payload: { id: CID, cwd: "/w/run_2", cli_version: "0.169.0" } },
  { timestamp: "2026-12-03T09:42:10.130Z", type: "event_msg", payload: { type: "task_started", turn_id: "t1" } },
  { timestamp: "2026-12-03T09:42:10.131Z", type: "response_item", payload: { type: "message", role: "developer", content: [{ type: "input_text", text: "<skills_instructions>…" }] } },
  { timestamp: "2026-12-03T09:42:10.132Z", type: "response_item", payload: { type: "message", role: "user", content: [{ type: "input_text", text: "<environment_context>…" }] } },
  { timestamp: "2026-12-03T09:42:10.133Z", type: "response_item", payload: { type: "message", role: "user", content: [{ type: "input_text", text: "create hi.txt" }] } },
  { timestamp: "2026-12-03T09:42:10.190Z", type: "response_item", payload: { type: "message", id: "msg_a", role: "assistant", content: [{ type: "output_text", text: "Listing." }] } },
  { timestamp: "2026-12-03T09:42:10.191Z", type: "response_item", payload: { type: "function_call", name: "exec_command", arguments: '{"cmd":"echo hi > hi.txt"}', call_id: "call_1" } },
  { timestamp: "2026-12-03T09:42:10.200Z", type: "response_item", payload: { type: "function_call_output", call_id: "call_1", output: "Process exited with code 0" } },
  { timestamp: "2026-12-03T09:42:10.201Z", type: "event_msg", payload: { type: "token_count", info: { last_token_usage: { input_tokens: 4563, cached_input_tokens: 10, output_tokens: 12 } } } },
  { timestamp: "2026-12-03T09:42:10.281Z", type: "response_item", payload: { type: "message", id: "msg_b", role: "assistant", content: [{ type: "output_text", text: "Created hi.txt." }] } },
];

test("Claude Code: summary from the records; rendered by the adapter's stream parser; sidechains and bookkeeping left out", () => {
  assert.deepEqual(claudeCodeSessions.summarize(SID, CLAUDE), { session_id: SID, title: "create hi.txt", cwd: "/w/run_1", started_at: "2026-12-03T09:42:08.993Z", updated_at: "2026-12-03T09:42:09.350Z", turns: 1 });
  const events = claudeCodeSessions.render(CLAUDE).map((e) => [e.type, (e.data as { text?: string; call_id?: string }).text ?? (e.data as { call_id?: string }).call_id ?? (e.data as { session_id?: string }).session_id]);
  assert.deepEqual(events, [["agent.session", SID], ["message", "Listing."], ["tool.call", "toolu_1"], ["tool.result", "toolu_1"], ["message", "Created hi.txt."]]);
  assert.deepEqual(claudeCodeSessions.prompts(CLAUDE), ["create hi.txt"]);
  assert.equal(claudeCodeSessions.idOf({ dirs: [], name: `${SID}.jsonl` }), SID);
  assert.equal(claudeCodeSessions.idOf({ dirs: [], name: "notes.txt" }), undefined);
});

test("codex: summary and the documented mapping of rollout records", () => {
  assert.deepEqual(codexSessions.summarize(CID, CODEX), { session_id: CID, title: "create hi.txt", cwd: "/w/run_2", started_at: "2026-12-03T09:42:10.124Z", updated_at: "2026-12-03T09:42:10.281Z", turns: 1 });
  const events = codexSessions.render(CODEX).map(({ type, data }) => ({ type, data: { ...data, raw: undefined } }));
  assert.deepEqual(events, [
    { type: "agent.session", data: { session_id: CID, raw: undefined } },
    { type: "message", data: { message_id: "msg_a", role: "assistant", text: "Listing.", raw: undefined } },
    { type: "tool.call", data: { call_id: "call_1", name: "exec_command", input: { cmd: "echo hi > hi.txt" }, raw: undefined } },
    { type: "tool.result", data: { call_id: "call_1", output: "Process exited with code 0", is_error: false, raw: undefined } },
    { type: "usage", data: { input_tokens: 4563, output_tokens: 12, cache_read_tokens: 10, raw: undefined } },
    { type: "message", data: { message_id: "msg_b", role: "assistant", text: "Created hi.txt.", raw: undefined } },
  ]);
  assert.deepEqual(codexSessions.prompts(CODEX), ["create hi.txt"], "context items are not prompts");
  assert.equal(codexSessions.idOf({ dirs: [], name: `rollout-2026-12-03T09-42-10-${CID}.jsonl` }), CID);
});

test("jsonLines keeps objects and skips torn or foreign lines", () => {
  assert.deepEqual(jsonLines('{"a":1}\n\n[1]\n"x"\n{"b":2}\n{"tor'), [{ a: 1 }, { b: 2 }]);
});

test("listSessions reads only files in their place inside the home: symlinked files and folders are skipped", async (t) => {
  const root = mkdtempSync(path.join(os.tmpdir(), "sessions-unit-"));
  t.after(() => rmSync(root, { recursive: true, force: true }));
  const home = path.join(root, "run_01");
  const project = path.join(home, ".claude", "projects", "-w-run-1");
  mkdirSync(project, { recursive: true });
  const text = CLAUDE.map((r) => JSON.stringify(r)).join("\n");
  writeFileSync(path.join(project, `${SID}.jsonl`), text);
  writeFileSync(path.join(home, ".claude", "projects", `${SID.replace("4669", "9999")}.jsonl`), text); // too shallow
  const elsewhere = path.join(root, "elsewhere");
  mkdirSync(path.join(elsewhere, "p"), { recursive: true });
  writeFileSync(path.join(elsewhere, "p", "aaaaaaaa-0000-4000-8000-000000000000.jsonl"), text);
  symlinkSync(path.join(elsewhere, "p", "aaaaaaaa-0000-4000-8000-000000000000.jsonl"), path.join(project, "bbbbbbbb-0000-4000-8000-000000000000.jsonl"));
  symlinkSync(path.join(elsewhere, "p"), path.join(home, ".claude", "projects", "linked"));
  const list = await listSessions("claude_code", [{ dir: home, runId: "run_01" }, { dir: path.join(root, "missing"), runId: "run_02" }]);
  assert.deepEqual(list.map((s) => [s.session_id, s.run_id]), [[SID, "run_01"]]);
});
