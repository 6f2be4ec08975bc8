/**
 * Stored sessions end to end (`src/agent/sessions/`, `GET /api/sessions`): the real server (child process,
 * port 0) runs the real Claude Code, codex, Gemini CLI and OpenCode CLIs against the scripted model server; the sessions they
 * wrote into their agent homes are listed with title, cwd, times and turns, rendered as events, and one is
 * resumed with `metadata.resume_session` (the model sees the earlier conversation; the session then has two
 * turns). Another user sees none of them and cannot resume them; a symlink planted in a home is not followed.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readdirSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { startModelServer, type ModelServer } from "../fixtures/model-server/index.ts";
import { spawnServer, type TestServer } from "../helpers/spawn-server.ts";
import { describeEvents, runToEnd, writeConfig, type Ev } from "../helpers/events.ts";

const T = { timeout: 240_000 };
const AGENTS = ["claude_code", "codex", "gemini", "opencode"] as const;

describe("stored agent sessions end to end", () => {
  let model: ModelServer;
  let s: TestServer;
  let token: string;
  let bob: string;
  let outside: string;
  const runs: Record<string, { id: string; evs: Ev[]; sessionId: string }> = {};

  before(async () => {
    model = await startModelServer();
    outside = mkdtempSync(path.join(os.tmpdir(), "sessions-outside-"));
    const config = writeConfig({
      agents: {
        claude_code: { base_url: model.url, api_key: "sk-test", model: "claude-sonnet-4-5", max_retries: 0 },
        codex: { base_url: `${model.url}/v1`, api_key: "sk-test", model: "gpt-5.5", max_retries: 0 },
        gemini: { base_url: model.url, api_key: "sk-test", model: "gemini-2.5-flash", max_retries: 0 },
        opencode: { base_url: `${model.url}/v1`, api_key: "sk-test", model: "fake-model" },
      },
    });
    s = await spawnServer({ env: { OPENRUNNER_CONFIG: config } });
    token = await s.login();
    assert.equal((await s.api("/api/users", { method: "POST", token, json: { username: "bob", password: "bob-password-1" } })).status, 201);
    bob = await s.login("bob", "bob-password-1");
    for (const agent of AGENTS) {
      model.setScenario({ turns: [{ text: "Creating it.", tool: { shell: "echo hi > hi.txt" } }, { text: `Created hi.txt with ${agent}.` }] });
      const r = await runToEnd(s, token, `create hi.txt please (${agent})`, { agent_type: agent }, 200_000);
      assert.equal(r.evs.at(-1)!.type, "run.completed", describeEvents(r.evs));
      runs[agent] = { ...r, sessionId: r.evs.find((e) => e.type === "agent.session")!.data.session_id as string };
    }
  });

  after(async () => {
    await s?.stop();
    s?.cleanup();
    await model?.close();
    rmSync(outside, { recursive: true, force: true });
  });

  const get = async (p: string, t = token) => {
    const res = await s.api(p, { token: t });
    return { status: res.status, body: (await res.json()) as any };
  };

  for (const agent of AGENTS) {
    test(`${agent}: the run's session is listed and rendered`, T, async () => {
      const run = runs[agent]!;
      const list = await get(`/api/sessions?agent=${agent}`);
      assert.equal(list.status, 200, JSON.stringify(list.body));
      assert.equal(list.body.sessions.length, 1, JSON.stringify(list.body));
      const session = list.body.sessions[0];
      assert.equal(session.session_id, run.sessionId);
      assert.equal(session.agent, agent);
      // OpenCode keeps the title its model made (the scripted server's side answer); the others, the first prompt.
      assert.equal(session.title, agent === "opencode" ? "Scripted title" : `create hi.txt please (${agent})`);
      assert.equal(session.cwd, run.evs.find((e) => e.type === "run.started")!.data.cwd);
      assert.equal(session.turns, 1);
      assert.equal(session.run_id, run.id);
      assert.ok(session.started_at && session.updated_at && session.started_at <= session.updated_at);

      const detail = await get(`/api/sessions/${agent}/${run.sessionId}`);
      assert.equal(detail.status, 200);
      assert.deepEqual(detail.body.prompts, [`create hi.txt please (${agent})`]);
      const types = (detail.body.events as Ev[]).map((e) => e.type);
      assert.equal(types[0], "agent.session");
      const call = detail.body.events.find((e: Ev) => e.type === "tool.call");
      assert.ok(call, types.join(", "));
      assert.ok(detail.body.events.some((e: Ev) => e.type === "tool.result" && e.data.call_id === call.data.call_id), types.join(", "));
      assert.ok(detail.body.events.some((e: Ev) => e.type === "message" && e.data.text === `Created hi.txt with ${agent}.`), types.join(", "));
      // Claude Code's records and OpenCode's parts are their streams' (same ids); codex's rollout names calls by the
      // model's call_id where `codex exec --json` numbers items, so there (and for Gemini) the tool is compared by its command.
      const runCall = run.evs.find((e) => e.type === "tool.call")!;
      if (agent === "claude_code" || agent === "opencode") assert.equal(call.data.call_id, runCall.data.call_id, "the same tool call the run streamed");
      else assert.ok(JSON.stringify(call.data.input).includes("echo hi > hi.txt"), JSON.stringify(call.data));
    });
  }

  test("another user sees none of them and cannot read or resume them", T, async () => {
    for (const agent of AGENTS) {
      assert.deepEqual((await get(`/api/sessions?agent=${agent}`, bob)).body, { sessions: [] });
      assert.equal((await get(`/api/sessions/${agent}/${runs[agent]!.sessionId}`, bob)).status, 404);
    }
    const res = await s.api("/api/runs", { method: "POST", token: bob, json: { input: { text: "again" }, metadata: { agent_type: "claude_code", resume_session: runs.claude_code!.sessionId } } });
    assert.equal(res.status, 404);
  });

  test("refusals: an agent without readable sessions, resume together with resume_session, an unknown session", T, async () => {
    assert.equal((await get("/api/sessions?agent=shell")).status, 400);
    const detail = await get(`/api/sessions/shell/${runs.codex!.sessionId}`);
    assert.equal(detail.status, 400);
    assert.equal(detail.body.error.code, "sessions_unsupported");
    const both = await s.api("/api/runs", { method: "POST", token, json: { input: { text: "x" }, metadata: { agent_type: "claude_code", resume: runs.claude_code!.id, resume_session: runs.claude_code!.sessionId } } });
    assert.equal(both.status, 400);
    assert.equal(((await both.json()) as any).error.code, "resume_conflict");
    assert.equal((await get("/api/sessions/claude_code/00000000-0000-0000-0000-000000000000")).status, 404);
  });

  test("a symlink planted in an agent home is not followed", T, async () => {
    const home = path.join(s.dataDir, "homes", runs.claude_code!.id, ".claude", "projects");
    const slug = readdirSync(home)[0]!;
    const secret = path.join(outside, "secret.jsonl");
    writeFileSync(secret, `${JSON.stringify({ type: "user", message: { role: "user", content: "outside the home" }, sessionId: "x", timestamp: "2030-01-01T00:00:00.000Z" })}\n`);
    symlinkSync(secret, path.join(home, slug, "deadbeef-0000-4000-8000-000000000000.jsonl"));
    symlinkSync(outside, path.join(home, "linked-folder"));
    const list = await get("/api/sessions?agent=claude_code");
    assert.deepEqual(list.body.sessions.map((x: { session_id: string }) => x.session_id), [runs.claude_code!.sessionId]);
    assert.equal((await get("/api/sessions/claude_code/deadbeef-0000-4000-8000-000000000000")).status, 404);
  });

  test("a listed Claude Code session is resumed with metadata.resume_session: the model sees the earlier conversation", T, async () => {
    const sessionId = runs.claude_code!.sessionId;
    model.setScenario({ turns: [{ text: "Still here." }] });
    const before = model.requests.length;
    const r = await runToEnd(s, token, "what did you create?", { agent_type: "claude_code", resume_session: sessionId }, 200_000);
    assert.equal(r.evs.at(-1)!.type, "run.completed", describeEvents(r.evs));
    assert.equal(r.evs.find((e) => e.type === "run.started")!.data.cwd, runs.claude_code!.evs.find((e) => e.type === "run.started")!.data.cwd, "in the session's workspace");
    const main = model.requests.slice(before).find((q) => q.kind === "main");
    assert.ok(main, "a model request");
    assert.ok(JSON.stringify(main.body).includes("create hi.txt please (claude_code)"), "the earlier prompt is in the resumed conversation");
    const run = await get(`/api/runs/${r.id}`);
    assert.equal(run.body.metadata.resume_session, sessionId);
    const list = await get("/api/sessions?agent=claude_code");
    const resumed = list.body.sessions.find((x: { session_id: string }) => x.session_id === (r.evs.find((e) => e.type === "agent.session")!.data.session_id as string));
    assert.ok(resumed, JSON.stringify(list.body));
    assert.equal(resumed.run_id, r.id, "the latest run of the home stands for it");
    if (resumed.session_id === sessionId) assert.equal(resumed.turns, 2, "the same session, one more turn");
  });
});
