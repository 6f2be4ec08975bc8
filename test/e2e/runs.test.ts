/**
 * End to end: the real server on port 0 (child process), real `shell` runs,
 * SSE over real sockets.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, readFileSync, symlinkSync, mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { spawnServer, type TestServer } from "../helpers/spawn-server.ts";
import { allEvents as readEvents, createRun as postRun, userWorkspaces, type Ev } from "../helpers/events.ts";
import { groupAlive, waitFor as waitUntil } from "../helpers/processes.ts";
import { readSse } from "../helpers/sse.ts";

const createRun = (s: TestServer, token: string, text: string, metadata: Record<string, unknown> = {}) => postRun(s, token, text, { agent_type: "shell", ...metadata });
const allEvents = (s: TestServer, token: string, runId: string) => readEvents(s, token, runId, 60_000);
const waitFor = (cond: () => boolean | Promise<boolean>, ms = 10_000) => waitUntil(cond, ms, "condition", 50);

describe("shell runs end to end", () => {
  let s: TestServer;
  let token: string;
  before(async () => {
    s = await spawnServer({ env: { OPENRUNNER_MAX_CONCURRENT_RUNS: "4", OPENRUNNER_MAX_CONCURRENT_RUNS_PER_USER: "4" } });
    token = await s.login();
  });
  after(async () => {
    await s.stop();
    s.cleanup();
  });

  test("live SSE, disconnect mid-run, reconnect with Last-Event-ID: exact rest, one terminal event", async () => {
    const runId = await createRun(s, token, "echo hello; sleep 1; echo world");
    const first = await readSse(`${s.url}/api/runs/${runId}/events`, {
      token,
      stopAfter: (m) => m.event === "log" && JSON.parse(m.data).data.text === "hello",
    });
    const seen = first.messages.map((m) => JSON.parse(m.data) as Ev);
    assert.deepEqual(seen.map((e) => e.type), ["run.queued", "run.started", "log"]);
    assert.deepEqual(seen.map((e) => e.id), [1, 2, 3]);
    assert.equal(first.messages[2]!.id, "3");
    const lastId = seen[seen.length - 1]!.id;
    const rest = await readSse(`${s.url}/api/runs/${runId}/events`, { token, lastEventId: lastId });
    assert.ok(rest.ended);
    const restEvents = rest.messages.map((m) => JSON.parse(m.data) as Ev);
    assert.deepEqual(restEvents.map((e) => e.id), [4, 5]);
    assert.deepEqual(restEvents.map((e) => e.type), ["log", "run.completed"]);
    assert.equal(restEvents[0]!.data.text, "world");
    assert.equal(restEvents[1]!.data.exit_code, 0);
    // ?after= gives the same replay, and the JSON page agrees with the stream
    const viaQuery = await readSse(`${s.url}/api/runs/${runId}/events?after=${lastId}`, { token });
    assert.deepEqual(viaQuery.messages.map((m) => m.id), ["4", "5"]);
    const page = await s.api(`/api/runs/${runId}/events?after=0`, { token, headers: { Accept: "application/json" } });
    const body = (await page.json()) as { events: Ev[]; done: boolean; next_after: number };
    assert.equal(body.events.length, 5);
    assert.equal(body.done, true);
    assert.equal(body.next_after, 5);
    const run = (await (await s.api(`/api/runs/${runId}`, { token })).json()) as Record<string, any>;
    assert.equal(run.status, "completed");
    assert.equal(run.result, "world");
  });

  test("50 concurrent runs with a limit of 4: all finish, never more than 4 at once, queue order kept", async () => {
    const ids: string[] = [];
    for (let i = 0; i < 50; i++) ids.push(await createRun(s, token, `sleep 0.3; echo run-${i}`));
    const intervals: Array<{ start: number; end: number; i: number }> = [];
    for (const [i, id] of ids.entries()) {
      const events = await allEvents(s, token, id);
      const started = events.find((e) => e.type === "run.started");
      const last = events[events.length - 1]!;
      assert.equal(last.type, "run.completed", `run ${i}: ${JSON.stringify(last)}`);
      assert.ok(started);
      intervals.push({ start: Date.parse(started.ts), end: Date.parse(last.ts), i });
    }
    for (const a of intervals) {
      const overlapping = intervals.filter((b) => b.start <= a.start && b.end > a.start).length;
      assert.ok(overlapping <= 4, `${overlapping} runs overlapped at run ${a.i}`);
    }
    // FIFO admission: run i+4 can only be admitted once run i was (4 slots). run.started is
    // stamped after the spawn, so runs admitted together may swap; nothing 4 places apart may.
    for (const a of intervals)
      for (const b of intervals)
        if (b.i >= a.i + 4) assert.ok(a.start <= b.start, `run ${b.i} started before run ${a.i}`);
  });

  test("cancel a running `sleep 300` ends the whole process group", async () => {
    const runId = await createRun(s, token, "sleep 300 & sleep 300");
    const live = await readSse(`${s.url}/api/runs/${runId}/events`, { token, stopAfter: (m) => m.event === "run.started" });
    const pid = (JSON.parse(live.messages.at(-1)!.data) as Ev).data.pid as number;
    assert.ok(groupAlive(pid));
    const res = await s.api(`/api/runs/${runId}/cancel`, { method: "POST", token });
    assert.equal(res.status, 202);
    const again = await s.api(`/api/runs/${runId}/cancel`, { method: "POST", token });
    assert.equal(again.status, 202, "cancel is idempotent");
    const events = await allEvents(s, token, runId);
    const last = events.at(-1)!;
    assert.equal(last.type, "run.cancelled");
    assert.equal(last.data.by, "user:admin");
    assert.equal(events.filter((e) => e.type.startsWith("run.") && ["run.completed", "run.failed", "run.cancelled", "run.timed_out"].includes(e.type)).length, 1);
    await waitFor(() => !groupAlive(pid), 5000);
  });

  test("timeout ends the run as run.timed_out and kills it", async () => {
    const runId = await createRun(s, token, "echo start; sleep 60", { timeout_secs: 1 });
    const events = await allEvents(s, token, runId);
    const last = events.at(-1)!;
    assert.equal(last.type, "run.timed_out");
    assert.equal(last.data.timeout_ms, 1000);
    const pid = events.find((e) => e.type === "run.started")!.data.pid as number;
    await waitFor(() => !groupAlive(pid), 5000);
  });

  test("a failing command fails the run with exit_nonzero and its exit code", async () => {
    const runId = await createRun(s, token, "echo oops >&2; exit 3");
    const events = await allEvents(s, token, runId);
    const last = events.at(-1)!;
    assert.equal(last.type, "run.failed");
    assert.equal(last.data.exit_code, 3);
    assert.equal(last.data.error.code, "exit_nonzero");
    assert.ok(events.some((e) => e.type === "log" && e.data.stream === "stderr" && e.data.text === "oops"));
  });

  test("bad inputs get their 4xx and create nothing", async () => {
    const before = ((await (await s.api("/api/runs?limit=200", { token })).json()) as { runs: unknown[] }).runs.length;
    const post = (body: string) => s.api("/api/runs", { method: "POST", token, body, headers: { "Content-Type": "application/json" } });
    const cases: Array<[string, number, string]> = [
      ["{not json", 400, "invalid_json"],
      [JSON.stringify({ input: { text: "x" }, metadata: { agent_type: "nope" } }), 400, "unknown_agent"],
      [JSON.stringify({ input: {}, metadata: { agent_type: "shell" } }), 400, "validation_failed"],
      [JSON.stringify({ input: { text: "x" }, metadata: { agent_type: "shell", cwd: "../../etc" } }), 400, "cwd_outside_workspace"],
      [JSON.stringify({ input: { text: "x" }, metadata: { agent_type: "shell", cwd: "/etc" } }), 400, "cwd_outside_workspace"],
    ];
    // a symlink inside the workspaces root that points outside it
    const outside = mkdtempSync(path.join(os.tmpdir(), "openrunner-outside-"));
    const root = await userWorkspaces(s, token); // each user's own workspaces root
    mkdirSync(root, { recursive: true });
    symlinkSync(outside, path.join(root, "escape"));
    cases.push([JSON.stringify({ input: { text: "x" }, metadata: { agent_type: "shell", cwd: "escape/sub" } }), 400, "cwd_outside_workspace"]);
    for (const [body, status, code] of cases) {
      const res = await post(body);
      const json = (await res.json()) as { error: { code: string; message: string } };
      assert.equal(res.status, status, body);
      assert.equal(json.error.code, code, body);
      assert.ok(json.error.message.length > 0);
    }
    const afterCount = ((await (await s.api("/api/runs?limit=200", { token })).json()) as { runs: unknown[] }).runs.length;
    assert.equal(afterCount, before);
    rmSync(outside, { recursive: true, force: true });
  });

  test("Last-Event-ID beyond the end: a live run is clamped (nothing skipped), a finished run just ends", async () => {
    const runId = await createRun(s, token, "echo x; sleep 1; echo y");
    await readSse(`${s.url}/api/runs/${runId}/events`, { token, stopAfter: (m) => m.event === "log" });
    const rest = await readSse(`${s.url}/api/runs/${runId}/events`, { token, lastEventId: 999 });
    assert.ok(rest.ended);
    const types = rest.messages.map((m) => (JSON.parse(m.data) as Ev).type);
    assert.deepEqual(types, ["log", "run.completed"], "events after the clamp point are still delivered");
    const done = await readSse(`${s.url}/api/runs/${runId}/events`, { token, lastEventId: 999 });
    assert.ok(done.ended);
    assert.equal(done.messages.length, 0);
  });

  test("/metrics: runs leave the running gauge when they end", async () => {
    await allEvents(s, token, await createRun(s, token, "true"));
    const text = await (await s.api("/metrics")).text();
    assert.match(text, /^openrunner_runs\{status="running"\} 0$/m);
    assert.match(text, /^openrunner_runs\{status="completed"\} [1-9]\d*$/m);
  });

  test("a second server on the same data folder refuses to start and leaves the live run alone", async () => {
    const runId = await createRun(s, token, "echo a; sleep 2; echo b");
    await readSse(`${s.url}/api/runs/${runId}/events`, { token, stopAfter: (m) => m.event === "log" });
    await assert.rejects(spawnServer({ dataDir: s.dataDir, timeoutMs: 20_000 }), /in use by another OpenRunner server/);
    const events = await allEvents(s, token, runId);
    assert.equal(events.at(-1)!.type, "run.completed");
  });

  test("host runs drop to an unprivileged user: no data-folder secrets, no server environment", { skip: process.getuid?.() !== 0 ? "the server can switch users only as root" : false }, async () => {
    const runId = await createRun(s, token, "id -u; echo hi > made.txt; cat ../../jwt-secret || echo NO-SECRET; tr '\\0' '\\n' < /proc/$PPID/environ || echo NO-ENVIRON");
    const events = await allEvents(s, token, runId);
    const out = events.filter((e) => e.type === "log").map((e) => String(e.data.text));
    assert.equal(out[0], "65534");
    assert.ok(out.includes("NO-SECRET"), out.join("\n"));
    assert.ok(out.includes("NO-ENVIRON"), out.join("\n"));
    assert.ok(!out.some((l) => l.includes("OPENRUNNER_ADMIN_PASSWORD")), "the server environment is not readable");
    const run = (await (await s.api(`/api/runs/${runId}`, { token })).json()) as { cwd: string };
    assert.equal(readFileSync(path.join(run.cwd, "made.txt"), "utf8"), "hi\n");
  });

  test("resume: another user's run 404, another agent 400, a run without an agent session 400", async () => {
    const shellRun = await createRun(s, token, "echo first");
    await allEvents(s, token, shellRun);
    const post = (metadata: Record<string, unknown>, t = token) => s.api("/api/runs", { method: "POST", token: t, json: { input: { text: "again" }, metadata } });
    const noSession = await post({ agent_type: "shell", resume: shellRun });
    assert.equal(noSession.status, 400);
    assert.equal(((await noSession.json()) as { error: { code: string } }).error.code, "resume_no_session");
    const otherAgent = await post({ agent_type: "codex", resume: shellRun });
    assert.ok([400, 503].includes(otherAgent.status), `status ${otherAgent.status}`);
    if (otherAgent.status === 400) assert.equal(((await otherAgent.json()) as { error: { code: string } }).error.code, "resume_agent_mismatch");
    const unknown = await post({ agent_type: "shell", resume: "run_does_not_exist" });
    assert.equal(unknown.status, 404);
    await s.api("/api/users", { method: "POST", token, json: { username: "dave", password: "dave-password-1" } });
    const dave = await s.login("dave", "dave-password-1");
    const foreign = await post({ agent_type: "shell", resume: shellRun }, dave);
    assert.equal(foreign.status, 404);
  });

  test("one live run per folder tree: the same or an overlapping cwd answers 409 workspace_busy until it ends; resuming a live run 409 run_active", async () => {
    const post = (text: string, metadata: Record<string, unknown>) => s.api("/api/runs", { method: "POST", token, json: { input: { text }, metadata: { agent_type: "shell", ...metadata } } });
    const code = async (res: Response) => ((await res.json()) as { error: { code: string } }).error.code;
    const first = await createRun(s, token, "sleep 300", { cwd: "busy/repo" });
    try {
      for (const cwd of ["busy/repo", "busy/repo/sub", "busy"]) {
        const res = await post("true", { cwd });
        assert.equal(res.status, 409, `cwd ${cwd}`);
        assert.equal(await code(res), "workspace_busy");
      }
      const resume = await post("true", { resume: first });
      assert.equal(resume.status, 409);
      assert.equal(await code(resume), "run_active");
      const elsewhere = await createRun(s, token, "true", { cwd: "busy-other" });
      assert.equal((await allEvents(s, token, elsewhere)).at(-1)!.type, "run.completed");
    } finally {
      await s.api(`/api/runs/${first}/cancel`, { method: "POST", token });
    }
    assert.equal((await allEvents(s, token, first)).at(-1)!.type, "run.cancelled");
    const after = await createRun(s, token, "true", { cwd: "busy/repo" });
    assert.equal((await allEvents(s, token, after)).at(-1)!.type, "run.completed");
  });

  test("another user's run answers 404; unauthenticated answers 401", async () => {
    const created = await s.api("/api/users", { method: "POST", token, json: { username: "bob", password: "bob-password-1" } });
    assert.equal(created.status, 201);
    const bob = await s.login("bob", "bob-password-1");
    const hostShell = await s.api("/api/runs", { method: "POST", token: bob, json: { input: { text: "cat /proc/$PPID/environ" }, metadata: { agent_type: "shell" } } });
    assert.equal(hostShell.status, 403, "host shell runs are admin-only by default");
    const runId = await createRun(s, token, "echo mine");
    for (const p of [`/api/runs/${runId}`, `/api/runs/${runId}/events`]) {
      const r = await s.api(p, { token: bob, headers: { Accept: "application/json" } });
      assert.equal(r.status, 404, p);
    }
    assert.equal((await s.api(`/api/runs/${runId}/cancel`, { method: "POST", token: bob })).status, 404);
    assert.equal((await s.api(`/api/runs/${runId}`)).status, 401);
    const sse = await readSse(`${s.url}/api/runs/${runId}/events?access_token=${encodeURIComponent(token)}`, {});
    assert.equal(sse.status, 200);
    assert.equal(JSON.parse(sse.messages.at(-1)!.data).type, "run.completed");
  });
});

describe("queue limit per user", () => {
  test("past max_queued_runs_per_user POST /api/runs answers 429 with Retry-After; cancelled queued runs free the queue", async () => {
    const s = await spawnServer({ env: { OPENRUNNER_MAX_CONCURRENT_RUNS: "1", OPENRUNNER_MAX_QUEUED_RUNS_PER_USER: "2" } });
    try {
      const token = await s.login();
      const running = await createRun(s, token, "sleep 30");
      const q1 = await createRun(s, token, "true");
      const q2 = await createRun(s, token, "true");
      const over = await s.api("/api/runs", { method: "POST", token, json: { input: { text: "true" }, metadata: { agent_type: "shell" } } });
      assert.equal(over.status, 429);
      assert.equal(((await over.json()) as { error: { code: string } }).error.code, "rate_limited");
      assert.ok(over.headers.get("retry-after"));
      assert.equal((await s.api(`/api/runs/${q1}/cancel`, { method: "POST", token })).status, 202);
      const q3 = await createRun(s, token, "true");
      for (const id of [running, q2, q3]) await s.api(`/api/runs/${id}/cancel`, { method: "POST", token });
      for (const id of [running, q1, q2, q3]) assert.equal((await allEvents(s, token, id)).at(-1)!.type, "run.cancelled");
    } finally {
      await s.stop();
      s.cleanup();
    }
  });
});

describe("deleting a user with a live run", () => {
  test("the run is cancelled first, the user and runs are gone, other runs are unaffected", async () => {
    const s = await spawnServer({ env: { OPENRUNNER_ALLOW_SHELL_FOR_USERS: "true" } });
    try {
      const admin = await s.login();
      assert.equal((await s.api("/api/users", { method: "POST", token: admin, json: { username: "carol", password: "carol-password-1" } })).status, 201);
      const carol = await s.login("carol", "carol-password-1");
      // Workspaces are per user: carol cannot name the admin's run directory as her cwd.
      const adminRun = await createRun(s, admin, "echo secret > notes.txt");
      await allEvents(s, admin, adminRun);
      const adminCwd = ((await (await s.api(`/api/runs/${adminRun}`, { token: admin })).json()) as { cwd: string }).cwd;
      const peek = await s.api("/api/runs", {
        method: "POST",
        token: carol,
        json: { input: { text: "cat notes.txt" }, metadata: { agent_type: "shell", cwd: `../${path.basename(path.dirname(adminCwd))}/${path.basename(adminCwd)}` } },
      });
      assert.equal(peek.status, 400);
      assert.equal(((await peek.json()) as { error: { code: string } }).error.code, "cwd_outside_workspace");
      const carolRun = await createRun(s, carol, "echo start; sleep 300");
      const live = await readSse(`${s.url}/api/runs/${carolRun}/events`, { token: carol, stopAfter: (m) => m.event === "run.started" });
      const pid = (JSON.parse(live.messages.at(-1)!.data) as Ev).data.pid as number;
      const users = (await (await s.api("/api/users", { token: admin })).json()) as { users?: Array<{ id: string; username: string }> } | Array<{ id: string; username: string }>;
      const list = Array.isArray(users) ? users : users.users!;
      const carolId = list.find((u) => u.username === "carol")!.id;
      const del = await s.api(`/api/users/${carolId}`, { method: "DELETE", token: admin });
      assert.equal(del.status, 204);
      await waitFor(() => !groupAlive(pid), 5000);
      assert.equal((await s.api(`/api/runs/${carolRun}`, { token: admin })).status, 404);
      assert.equal((await s.api("/api/auth/me", { token: carol })).status, 401);
      const other = await createRun(s, admin, "echo still-fine");
      const events = await allEvents(s, admin, other);
      assert.equal(events.at(-1)!.type, "run.completed");
    } finally {
      await s.stop();
      s.cleanup();
    }
  });
});

describe("server killed with SIGKILL mid-run", () => {
  test("restart ends the run as failed/interrupted and keeps every stored event", async () => {
    const s = await spawnServer();
    const token = await s.login();
    const runId = await createRun(s, token, "for i in 1 2 3; do echo line-$i; done; sleep 300");
    const live = await readSse(`${s.url}/api/runs/${runId}/events`, {
      token,
      stopAfter: (m) => m.event === "log" && JSON.parse(m.data).data.text === "line-3",
    });
    const seen = live.messages.map((m) => JSON.parse(m.data) as Ev);
    const pid = seen.find((e) => e.type === "run.started")!.data.pid as number;
    await s.kill9();
    const s2 = await spawnServer({ dataDir: s.dataDir });
    try {
      const token2 = await s2.login();
      const events = await allEvents(s2, token2, runId);
      assert.deepEqual(events.slice(0, seen.length), seen, "events stored before the kill are unchanged");
      const last = events.at(-1)!;
      assert.equal(last.type, "run.failed");
      assert.equal(last.data.error.code, "interrupted");
      assert.equal(last.id, events.length);
      const run = (await (await s2.api(`/api/runs/${runId}`, { token: token2 })).json()) as Record<string, any>;
      assert.equal(run.status, "failed");
      await waitFor(() => !groupAlive(pid), 5000);
    } finally {
      await s2.stop();
      s2.cleanup();
    }
  });
});

describe("graceful shutdown", () => {
  test("SIGTERM cancels live runs, delivers their last events to SSE, exits 0; the first admin is created once", async () => {
    const s = await spawnServer({ env: { OPENRUNNER_ADMIN_PASSWORD: "" } });
    try {
      const m = /password[^\n]*?:\s*(\S+)/i.exec(s.output());
      assert.ok(m, `generated admin password printed:\n${s.output()}`);
      const token = await s.login("admin", m[1]!);
      const runId = await createRun(s, token, "echo up; sleep 300");
      const stream = readSse(`${s.url}/api/runs/${runId}/events`, { token });
      await waitFor(async () => {
        const r = (await (await s.api(`/api/runs/${runId}`, { token })).json()) as { status: string };
        return r.status === "running";
      });
      const code = await s.stop();
      assert.equal(code, 0);
      const out = await stream;
      assert.ok(out.ended, "SSE stream ended cleanly");
      const last = JSON.parse(out.messages.at(-1)!.data) as Ev;
      assert.equal(last.type, "run.cancelled");
      assert.equal(last.data.by, "server");
      const s2 = await spawnServer({ dataDir: s.dataDir, env: { OPENRUNNER_ADMIN_PASSWORD: "" } });
      assert.doesNotMatch(s2.output(), /password/i, "no second admin password printed");
      const token2 = await s2.login("admin", m[1]!);
      const run = (await (await s2.api(`/api/runs/${runId}`, { token: token2 })).json()) as { status: string };
      assert.equal(run.status, "cancelled");
      await s2.stop();
    } finally {
      await s.stop();
      s.cleanup();
    }
  });
});
