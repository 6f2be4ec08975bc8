/**
 * The row projection table (`PROJECTIONS`, `src/run/projection.ts`): which row
 * patch and published status each event type yields, and what it keeps in the
 * live run's state (usage, open permission requests, container id).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { NOTIFY_TYPES, projectEvent, type ProjectionState } from "../../src/run/projection.ts";
import type { RunEvent } from "../../src/protocol/events.ts";

let seq = 0;
const ev = (type: string, data: Record<string, unknown>): RunEvent => ({ id: ++seq, run_id: "run_1", ts: `2026-01-01T00:00:0${seq % 10}.000Z`, type, data }) as RunEvent;
const live = (over: Partial<ProjectionState> = {}): ProjectionState => ({ usage: null, pendingPermissions: 0, asksUser: true, ...over });

test("run.started: running with started_at, the container id remembered; without a live run only the row", () => {
  const s = live();
  const e = ev("run.started", { agent: "shell", cwd: "/w", container_id: "c1" });
  assert.deepEqual(projectEvent(s, e), { row: { status: "running", started_at: e.ts }, status: "running" });
  assert.equal(s.containerId, "c1");
  assert.deepEqual(projectEvent(undefined, e)?.row, { status: "running", started_at: e.ts });
});

test("agent.session sets session_id; usage sums into the live run only", () => {
  assert.deepEqual(projectEvent(undefined, ev("agent.session", { session_id: "s1" })), { row: { session_id: "s1" } });
  const s = live();
  assert.equal(projectEvent(s, ev("usage", { input_tokens: 1, output_tokens: 2 })), undefined);
  assert.equal(projectEvent(s, ev("usage", { input_tokens: 3, output_tokens: 4, cost_usd: 0.5 })), undefined);
  assert.deepEqual(s.usage, { input_tokens: 4, output_tokens: 6, cost_usd: 0.5 });
});

test("permission requests: waiting at the first open one (policy ask), running again when the last is decided", () => {
  const s = live();
  const req = ev("permission.request", { request_id: "r", name: "x", input: {}, options: [] });
  const dec = ev("permission.decision", { request_id: "r", decision: "allow", by: "policy" });
  assert.deepEqual(projectEvent(s, req), { row: { status: "waiting" }, status: "waiting" });
  assert.equal(projectEvent(s, req), undefined, "a second open request changes nothing");
  assert.equal(s.pendingPermissions, 2);
  assert.equal(projectEvent(s, dec), undefined);
  assert.deepEqual(projectEvent(s, dec), { row: { status: "running" }, status: "running" });
  assert.equal(projectEvent(s, dec), undefined, "no open request: nothing");
  assert.equal(s.pendingPermissions, 0);
  const allow = live({ asksUser: false });
  assert.equal(projectEvent(allow, req), undefined, "allow/deny policies never block");
  assert.equal(allow.pendingPermissions, 0);
  assert.equal(projectEvent(undefined, req), undefined);
});

test("terminal events: the final row with the accumulated usage unless the event has its own", () => {
  const s = live({ usage: { input_tokens: 1, output_tokens: 1 } });
  const done = ev("run.completed", { result: "ok", exit_code: 0, duration_ms: 5 });
  assert.deepEqual(projectEvent(s, done), { row: { status: "completed", ended_at: done.ts, result: "ok", error: null, exit_code: 0, usage: { input_tokens: 1, output_tokens: 1 } }, status: "completed" });
  const failed = ev("run.failed", { error: { code: "internal", message: "x" }, duration_ms: 1 });
  assert.deepEqual(projectEvent(undefined, failed)?.row, { status: "failed", ended_at: failed.ts, result: null, error: { code: "internal", message: "x" }, exit_code: null, usage: null });
  assert.equal(projectEvent(s, ev("run.cancelled", { reason: "r", duration_ms: 1 }))?.status, "cancelled");
  assert.equal(projectEvent(s, ev("run.timed_out", { timeout_ms: 1, duration_ms: 1 }))?.status, "timed_out");
});

test("other types change nothing; the notified types are permissions and terminal events", () => {
  for (const t of ["message", "message.delta", "log", "tool.call", "run.queued", "container.created"]) assert.equal(projectEvent(live(), ev(t, {})), undefined, t);
  assert.deepEqual([...NOTIFY_TYPES].sort(), ["permission.decision", "permission.request", "run.cancelled", "run.completed", "run.failed", "run.timed_out"]);
});
