/**
 * The stall watchdog (`src/run/stall.ts`) on a fake procfs folder and a controlled clock: each cause in its
 * order of precedence, CPU use between two looks, one `run.stalled` per silence, `run.resumed_activity`
 * before the event that ends it, the fail after `failMs`, nothing before `run.started` or after the end.
 * Every wait is for the watchdog's own emit, except the short pauses that give it a look in which nothing may happen.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import type { RunEventInput } from "../../src/protocol/events.ts";
import { isRetryNotice, StallWatchdog } from "../../src/run/stall.ts";

const PID = 4242;
const CHILD = 4343;

/** A procfs folder with the agent `PID`; `child` adds a child with these CPU ticks; `socket` an established connection to 127.0.0.1:8080. */
function fakeProc(t: { after: (fn: () => void) => void }) {
  const root = mkdtempSync(path.join(os.tmpdir(), "fake-proc-"));
  t.after(() => rmSync(root, { recursive: true, force: true }));
  const stat = (pid: number, ppid: number, ticks: number, state = "S") => {
    mkdirSync(path.join(root, String(pid)), { recursive: true });
    writeFileSync(path.join(root, String(pid), "stat"), `${pid} (x) ${state} ${ppid} 1 1 0 -1 0 0 0 0 0 ${ticks} 0 0 0 20 0 1 0 1 1 1\n`);
  };
  stat(PID, 1, 5);
  return {
    root,
    child: (ticks: number) => stat(CHILD, PID, ticks),
    noChild: () => rmSync(path.join(root, String(CHILD)), { recursive: true, force: true }),
    socket() {
      mkdirSync(path.join(root, String(PID), "fd"), { recursive: true });
      mkdirSync(path.join(root, String(PID), "net"), { recursive: true });
      symlinkSync("socket:[777]", path.join(root, String(PID), "fd", "3"));
      writeFileSync(path.join(root, String(PID), "net", "tcp"), "  sl  local_address rem_address   st …\n   0: 0100007F:9C40 0100007F:1F90 01 00000000:00000000 00:00000000 00000000  1000        0 777 1\n");
    },
    exit: () => stat(PID, 1, 5, "Z"),
  };
}

function watchdog(root: string, o: { open?: string[]; failMs?: number; urls?: string[] } = {}) {
  let now = 0;
  const emitted: RunEventInput[] = [];
  const failures: string[] = [];
  let wake: (() => void) | undefined;
  const w = new StallWatchdog({
    runId: "run_1",
    stallMs: 1000,
    failMs: o.failMs ?? 0,
    emit: (e) => (emitted.push(e), wake?.()),
    openRequests: () => o.open ?? [],
    fail: (m) => (failures.push(m), wake?.()),
    modelBaseUrls: o.urls ?? ["http://127.0.0.1:8080/v1"],
    procRoot: root,
    checkEveryMs: 5,
    now: () => now,
  });
  return {
    w,
    emitted,
    failures,
    setNow: (ms: number) => (now = ms),
    /** Resolves once `cond` holds, checked after every emit or fail of the watchdog. */
    until: (cond: () => boolean) =>
      new Promise<void>((resolve) => {
        if (cond()) return resolve();
        const keepAlive = setInterval(() => {}, 1000); // the watchdog's own timer is unref'd
        wake = () => {
          if (!cond()) return;
          wake = undefined;
          clearInterval(keepAlive);
          resolve();
        };
      }),
  };
}

const started: RunEventInput = { type: "run.started", data: { agent: "x", pid: PID, cwd: "/w" } };

test("nothing before run.started; then idle_process after stallMs, once; resumed_activity before the next event", async (t) => {
  const p = fakeProc(t);
  const h = watchdog(p.root);
  h.setNow(5000);
  await new Promise((r) => setTimeout(r, 30)); // no timer before run.started: nothing can come
  assert.deepEqual(h.emitted, []);
  h.setNow(0);
  h.w.observe(started);
  h.setNow(1200);
  await h.until(() => h.emitted.length === 1);
  assert.deepEqual(h.emitted[0], { type: "run.stalled", data: { cause: "idle_process", pid: PID, idle_ms: 1200 } });
  h.setNow(1500);
  h.w.observe({ type: "log", data: { stream: "stdout", text: "hi" } });
  assert.deepEqual(h.emitted[1], { type: "run.resumed_activity", data: { stalled_ms: 1500 } });
  h.w.stop();
});

test("precedence: an open permission request over a live child over an open model connection", async (t) => {
  const p = fakeProc(t);
  p.socket();
  p.child(10);
  const a = watchdog(p.root, { open: ["perm_1"] });
  a.w.observe(started);
  a.setNow(1000);
  await a.until(() => a.emitted.length === 1);
  assert.deepEqual(a.emitted[0]!.data, { cause: "waiting_permission", request_ids: ["perm_1"], pid: PID, idle_ms: 1000 });
  a.w.stop();

  const b = watchdog(p.root);
  b.w.observe(started);
  b.setNow(600); // past half of stallMs: a first look samples the child's CPU ticks
  await new Promise((r) => setTimeout(r, 30));
  p.child(12);
  b.setNow(1100);
  await b.until(() => b.emitted.length === 1);
  assert.deepEqual(b.emitted[0]!.data, { cause: "tool_running", pid: PID, tool_pids: [CHILD], cpu_busy: true, idle_ms: 1100 });
  b.w.stop();

  p.noChild();
  const c = watchdog(p.root);
  c.w.observe(started);
  c.setNow(1000);
  await c.until(() => c.emitted.length === 1);
  assert.deepEqual(c.emitted[0]!.data, { cause: "model_request_open", pid: PID, endpoint: "127.0.0.1:8080", idle_ms: 1000 });
  c.w.stop();

  const d = watchdog(p.root, { urls: ["http://127.0.0.1:9999"] });
  d.w.observe(started);
  d.setNow(1000);
  await d.until(() => d.emitted.length === 1);
  assert.equal((d.emitted[0]!.data as { cause?: string }).cause, "idle_process", "a connection to another peer is not the model's");
  d.w.stop();
});

test("a child that used no CPU between looks: cpu_busy false", async (t) => {
  const p = fakeProc(t);
  p.child(10);
  const h = watchdog(p.root);
  h.w.observe(started);
  h.setNow(600);
  await new Promise((r) => setTimeout(r, 30));
  h.setNow(1000);
  await h.until(() => h.emitted.length === 1);
  assert.equal((h.emitted[0]!.data as { cause?: string }).cause, "tool_running");
  assert.equal((h.emitted[0]!.data as { cpu_busy?: boolean }).cpu_busy, false);
  h.w.stop();
});

test("failMs: the run is failed once, naming the cause; a dead process or a terminal event stops it all", async (t) => {
  const p = fakeProc(t);
  const h = watchdog(p.root, { failMs: 3000 });
  h.w.observe(started);
  h.setNow(1000);
  await h.until(() => h.emitted.length === 1);
  h.setNow(3000);
  await h.until(() => h.failures.length === 1);
  assert.match(h.failures[0]!, /idle_process/);
  h.w.stop();

  const dead = watchdog(p.root, { failMs: 2000 });
  p.exit();
  dead.w.observe(started);
  dead.setNow(5000);
  await new Promise((r) => setTimeout(r, 30));
  assert.deepEqual([dead.emitted, dead.failures], [[], []], "a zombie: its exit is on the way");
  dead.w.stop();

  const ended = watchdog(p.root);
  ended.w.observe(started);
  ended.w.observe({ type: "run.completed", data: { exit_code: 0, duration_ms: 1 } });
  ended.setNow(5000);
  await new Promise((r) => setTimeout(r, 30));
  assert.deepEqual(ended.emitted, []);
});

test("the agent's own retry notice as the last event: model_request_open without a connection", async (t) => {
  const p = fakeProc(t);
  const h = watchdog(p.root);
  h.w.observe(started);
  const notice: RunEventInput = { type: "log", data: { stream: "stdout", text: "model request failed (529, overloaded); retry 1/10 in 2000 ms", raw: { type: "system", subtype: "api_retry" } } };
  h.w.observe(notice);
  h.setNow(1000);
  await h.until(() => h.emitted.length === 1);
  assert.deepEqual(h.emitted[0]!.data, { cause: "model_request_open", pid: PID, idle_ms: 1000 });
  h.w.stop();
  assert.equal(isRetryNotice(notice), true);
  assert.equal(isRetryNotice({ type: "log", data: { stream: "stderr", text: "Reconnecting... 2/5" } }), true);
  assert.equal(isRetryNotice({ type: "log", data: { stream: "stdout", text: "all good" } }), false);
  assert.equal(isRetryNotice({ type: "message", data: { message_id: "m", role: "assistant", text: "retrying" } }), false);
});
