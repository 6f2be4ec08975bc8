/**
 * The session readers (`src/agent/sessions/`) on records of the shapes Claude Code 2.1, codex 0.169, Gemini CLI
 * and OpenCode 1.18 wrote (trimmed from real files): summaries (title, cwd, times, turns), rendering (Claude Code
 * and OpenCode through their stream parsers, codex and Gemini through the documented mappings), and homes read
 * from disk with files in the wrong places.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { claudeCodeSessions } from "../../src/agent/sessions/claude-code.ts";
import { codexSessions } from "../../src/agent/sessions/codex.ts";
import { jsonLines } from "../../src/agent/sessions/home-fs.ts";
import { listSessions, readSession } from "../../src/agent/sessions/index.ts";
import { geminiSessions } from "../../src/agent/sessions/gemini.ts";
import Database from "better-sqlite3";

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

const GID = "b3b6b27d-ad26-4ed2-baff-c026f10d9c29";
const GEMINI = [
  { sessionId: GID, projectHash: "aa15", startTime: "2026-12-03T09:50:48.910Z", lastUpdated: "2026-12-03T09:50:48.910Z", kind: "main" },
  { $set: { messages: [] } },
  { id: "ctx", timestamp: "2026-12-03T09:50:48.910Z", type: "user", content: [{ text: "<session_context>\nThis is the Gemini CLI." }] },
  { id: "u1", timestamp: "2026-12-03T09:50:48.922Z", type: "user", content: [{ text: "create hi.txt" }] },
  { id: "g1", timestamp: "2026-12-03T09:50:49.006Z", type: "gemini", content: "Creating.", thoughts: [], tokens: { input: 1803, output: 13, cached: 0 } },
  { $set: { lastUpdated: "2026-12-03T09:50:49.006Z" } },
  { id: "g1", timestamp: "2026-12-03T09:50:49.006Z", type: "gemini", content: "Creating.", thoughts: [{ subject: "Plan", description: "write it" }], tokens: { input: 1803, output: 13, cached: 0 }, toolCalls: [{ id: "rsc_1", name: "run_shell_command", args: { command: "echo hi > hi.txt" }, status: "success", result: [{ functionResponse: { id: "rsc_1", name: "run_shell_command", response: { output: "Output: (empty)" } } }] }] },
  { id: "u2", timestamp: "2026-12-03T09:50:49.051Z", type: "user", content: [{ functionResponse: { id: "rsc_1", name: "run_shell_command", response: { output: "Output: (empty)" } } }] },
  { id: "g2", timestamp: "2026-12-03T09:50:49.061Z", type: "gemini", content: "Created hi.txt.", thoughts: [], tokens: { input: 1916, output: 4, cached: 0 } },
  { $set: { lastUpdated: "2026-12-03T09:50:49.061Z" } },
];

test("Gemini CLI: header and growing records (the last version wins, in place), context and tool responses are not prompts", () => {
  assert.deepEqual(geminiSessions.summarize("session-x.jsonl", GEMINI), { session_id: GID, title: "create hi.txt", cwd: null, started_at: "2026-12-03T09:50:48.910Z", updated_at: "2026-12-03T09:50:49.061Z", turns: 1 });
  const events = geminiSessions.render(GEMINI).map(({ type, data }) => ({ type, data: { ...data, raw: undefined } }));
  assert.deepEqual(events, [
    { type: "agent.session", data: { session_id: GID, raw: undefined } },
    { type: "reasoning", data: { text: "Plan: write it", raw: undefined } },
    { type: "message", data: { message_id: "g1", role: "assistant", text: "Creating.", raw: undefined } },
    { type: "tool.call", data: { call_id: "rsc_1", name: "run_shell_command", input: { command: "echo hi > hi.txt" }, raw: undefined } },
    { type: "tool.result", data: { call_id: "rsc_1", output: "Output: (empty)", is_error: false, raw: undefined } },
    { type: "usage", data: { input_tokens: 1803, output_tokens: 13, raw: undefined } },
    { type: "message", data: { message_id: "g2", role: "assistant", text: "Created hi.txt.", raw: undefined } },
    { type: "usage", data: { input_tokens: 1916, output_tokens: 4, raw: undefined } },
  ]);
});

test("Gemini CLI on disk: the chat under tmp/<project>/chats, its cwd from projects.json", async (t) => {
  const root = mkdtempSync(path.join(os.tmpdir(), "sessions-gemini-"));
  t.after(() => rmSync(root, { recursive: true, force: true }));
  const home = path.join(root, "run_01");
  mkdirSync(path.join(home, ".gemini", "tmp", "proj-1", "chats"), { recursive: true });
  writeFileSync(path.join(home, ".gemini", "projects.json"), JSON.stringify({ projects: { "/w/run_3": "proj-1" } }));
  writeFileSync(path.join(home, ".gemini", "tmp", "proj-1", "chats", "session-2026-12-03T09-50-b3b6b27d.jsonl"), GEMINI.map((r) => JSON.stringify(r)).join("\n"));
  const list = await listSessions("gemini", [{ dir: home, runId: "run_01" }]);
  assert.deepEqual(list.map((s) => [s.session_id, s.cwd, s.run_id]), [[GID, "/w/run_3", "run_01"]]);
  assert.equal((await readSession("gemini", GID, [{ dir: home, runId: "run_01" }]))?.events.filter((e) => e.type === "tool.call").length, 1);
});

test("OpenCode: top-level sessions of a copy of its database, parts through its stream parser, user text as prompts", async (t) => {
  const root = mkdtempSync(path.join(os.tmpdir(), "sessions-opencode-"));
  t.after(() => rmSync(root, { recursive: true, force: true }));
  const home = path.join(root, "run_01");
  const dir = path.join(home, ".local", "share", "opencode");
  mkdirSync(dir, { recursive: true });
  const db = new Database(path.join(dir, "opencode.db"));
  db.exec(`CREATE TABLE session (id text PRIMARY KEY, project_id text, parent_id text, directory text, title text, time_created integer, time_updated integer);
    CREATE TABLE message (id text PRIMARY KEY, session_id text, time_created integer, time_updated integer, data text);
    CREATE TABLE part (id text PRIMARY KEY, message_id text, session_id text, time_created integer, time_updated integer, data text);`);
  db.prepare("INSERT INTO session VALUES (?, 'global', NULL, '/w/run_4', 'Make hi', 1796291451601, 1796291453384)").run("ses_1");
  db.prepare("INSERT INTO session VALUES (?, 'global', 'ses_1', '/w/run_4', 'subagent', 1796291451700, 1796291451800)").run("ses_sub");
  const msg = db.prepare("INSERT INTO message VALUES (?, ?, 0, 0, ?)");
  msg.run("msg_u", "ses_1", JSON.stringify({ role: "user" }));
  msg.run("msg_a", "ses_1", JSON.stringify({ role: "assistant" }));
  const part = db.prepare("INSERT INTO part VALUES (?, ?, 'ses_1', ?, 0, ?)");
  part.run("p1", "msg_u", 1, JSON.stringify({ type: "text", text: "create hi.txt" }));
  part.run("p2", "msg_a", 2, JSON.stringify({ type: "step-start" }));
  part.run("p3", "msg_a", 3, JSON.stringify({ type: "text", text: "Creating." }));
  part.run("p4", "msg_a", 4, JSON.stringify({ type: "tool", tool: "bash", callID: "call_1", state: { status: "completed", input: { command: "echo hi > hi.txt" }, output: "(no output)" } }));
  part.run("p5", "msg_a", 5, JSON.stringify({ type: "step-finish", reason: "stop", tokens: { input: 10, output: 2, reasoning: 0, cache: { read: 0, write: 0 } }, cost: 0 }));
  db.close();
  const homes = [{ dir: home, runId: "run_01" }];
  const list = await listSessions("opencode", homes);
  assert.deepEqual(list.map((s) => [s.session_id, s.title, s.cwd, s.turns, s.started_at]), [["ses_1", "Make hi", "/w/run_4", 1, new Date(1796291451601).toISOString()]]);
  const detail = (await readSession("opencode", "ses_1", homes))!;
  assert.deepEqual(detail.prompts, ["create hi.txt"]);
  assert.deepEqual(detail.events.map((e) => e.type), ["agent.session", "message", "tool.call", "tool.result", "usage"]);
  assert.equal(await readSession("opencode", "ses_sub", homes), undefined, "sub-sessions are left out");
});

test("OpenCode: a database whose session table is a view (the file's own query) is not read: no session, no hang", async (t) => {
  const root = mkdtempSync(path.join(os.tmpdir(), "sessions-opencode-view-"));
  t.after(() => rmSync(root, { recursive: true, force: true }));
  const home = path.join(root, "run_01");
  const dir = path.join(home, ".local", "share", "opencode");
  mkdirSync(dir, { recursive: true });
  const db = new Database(path.join(dir, "opencode.db"));
  // Read, this view would never end: the check refuses it before any query touches it.
  db.exec(`CREATE VIEW session AS WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n) SELECT x AS id, NULL AS parent_id, '' AS directory, '' AS title, 0 AS time_created, 0 AS time_updated FROM n;
    CREATE TABLE message (id text PRIMARY KEY, session_id text, time_created integer, time_updated integer, data text);
    CREATE TABLE part (id text PRIMARY KEY, message_id text, session_id text, time_created integer, time_updated integer, data text);`);
  db.close();
  assert.deepEqual(await listSessions("opencode", [{ dir: home, runId: "run_01" }]), []);
});
