/**
 * The permission gate and registry (src/run/permissions.ts), driven directly:
 * policies, the owner's answer, a second answer, an unknown option, the
 * deadline, and the run ending while a request is open.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import type { PermissionOption } from "../../src/agent/permissions.ts";
import { AppError } from "../../src/errors.ts";
import type { RunEventInput } from "../../src/protocol/events.ts";
import { createPermissionGate, MAX_OPEN_REQUESTS_PER_RUN, pickOption, PermissionRegistry, storedRequestExists, type PermissionGateOptions } from "../../src/run/permissions.ts";

const OPTIONS: PermissionOption[] = [
  { option_id: "always", name: "Always allow", kind: "allow_always" },
  { option_id: "once", name: "Allow once", kind: "allow_once" },
  { option_id: "no", name: "Reject", kind: "reject_once" },
  { option_id: "never", name: "Never", kind: "reject_always" },
];
const ASK = { call_id: "call_1", name: "Write hello.txt", input: { path: "hello.txt" }, options: OPTIONS };

function setup(over: Partial<PermissionGateOptions> = {}) {
  const events: RunEventInput[] = [];
  const registry = over.registry ?? new PermissionRegistry();
  const gate = createPermissionGate({ runId: "run_A", policy: "ask", timeoutMs: 60_000, timeoutDecision: "reject", emit: (e) => events.push(e), registry, ...over });
  return { events, registry, gate };
}

function requestIdOf(events: RunEventInput[], n = 0): string {
  const reqs = events.filter((e) => e.type === "permission.request");
  return (reqs[n]!.data as { request_id: string }).request_id;
}

async function expectAppError(fn: () => unknown, status: number, code: string): Promise<void> {
  assert.throws(fn, (err: unknown) => err instanceof AppError && err.status === status && err.code === code);
}

describe("pickOption", () => {
  test("prefers the _once option of the wanted kind, then _always", () => {
    assert.equal(pickOption(OPTIONS, "allow")?.option_id, "once");
    assert.equal(pickOption(OPTIONS, "reject")?.option_id, "no");
    assert.equal(pickOption(OPTIONS.filter((o) => o.kind !== "allow_once"), "allow")?.option_id, "always");
    assert.equal(pickOption(OPTIONS.filter((o) => o.kind.startsWith("allow")), "reject"), undefined);
  });
});

describe("permission gate", () => {
  test("allow policy: first allow_once option, decided by policy, request event first", async () => {
    const { events, gate, registry } = setup({ policy: "allow" });
    const answer = await gate.ask(ASK, new AbortController().signal);
    assert.deepEqual(answer, { outcome: "selected", option_id: "once" });
    assert.deepEqual(events.map((e) => e.type), ["permission.request", "permission.decision"]);
    const req = events[0]!.data as Record<string, unknown>;
    assert.match(String(req.request_id), /^perm_[0-9a-f]{32}$/);
    assert.equal(req.call_id, "call_1");
    assert.equal(req.name, "Write hello.txt");
    assert.deepEqual(req.input, { path: "hello.txt" });
    assert.deepEqual(req.options, OPTIONS);
    assert.deepEqual(events[1]!.data, { request_id: req.request_id, decision: "once", by: "policy", option_name: "Allow once", kind: "allow_once" });
    assert.deepEqual(registry.listOpen("run_A"), []);
  });

  test("deny policy: first reject option; without any reject option the request is cancelled", async () => {
    const { events, gate } = setup({ policy: "deny" });
    assert.deepEqual(await gate.ask(ASK, new AbortController().signal), { outcome: "selected", option_id: "no" });
    assert.equal((events[1]!.data as { by: string }).by, "policy");
    const onlyAllow = OPTIONS.filter((o) => o.kind.startsWith("allow"));
    assert.deepEqual(await gate.ask({ ...ASK, options: onlyAllow }, new AbortController().signal), { outcome: "cancelled" });
    assert.deepEqual(events[3]!.data, { request_id: requestIdOf(events, 1), decision: "cancelled", by: "policy" });
  });

  test("request ids are unique per request", async () => {
    const { events, gate } = setup({ policy: "allow" });
    await gate.ask(ASK, new AbortController().signal);
    await gate.ask(ASK, new AbortController().signal);
    assert.notEqual(requestIdOf(events, 0), requestIdOf(events, 1));
  });

  test("ask: waits for the owner's answer; a second answer is a 409, an unknown option a 400, a wrong run a 404", async () => {
    const { events, gate, registry } = setup();
    let settled = false;
    const pending = gate.ask(ASK, new AbortController().signal).then((a) => ((settled = true), a));
    const id = requestIdOf(events);
    await new Promise((r) => setImmediate(r));
    assert.equal(settled, false, "an ask request waits");
    const open = registry.listOpen("run_A");
    assert.equal(open.length, 1);
    assert.equal(open[0]!.request_id, id);
    assert.ok(Date.parse(open[0]!.deadline) - Date.parse(open[0]!.requested_at) === 60_000);

    await expectAppError(() => registry.answer("run_A", id, "bogus", "user:alice"), 400, "unknown_option");
    await expectAppError(() => registry.answer("run_B", id, "once", "user:alice"), 404, "not_found");
    await expectAppError(() => registry.answer("run_A", "perm_nope", "once", "user:alice"), 404, "not_found");

    const d = registry.answer("run_A", id, "never", "user:alice");
    assert.deepEqual(d, { request_id: id, decision: "never", by: "user:alice", option_name: "Never", kind: "reject_always" });
    assert.deepEqual(await pending, { outcome: "selected", option_id: "never" });
    assert.deepEqual(events[1], { type: "permission.decision", data: d });
    await expectAppError(() => registry.answer("run_A", id, "once", "user:alice"), 409, "permission_already_decided");
    assert.equal(events.length, 2, "exactly one decision");
    assert.ok(registry.knows("run_A", id));
    registry.endRun("run_A");
    assert.equal(registry.knows("run_A", id), false, "a finished run's decisions are read from the store");
  });

  test("ask: the deadline applies the configured decision, recorded as timeout", async () => {
    const { events, gate, registry } = setup({ timeoutMs: 20 });
    assert.deepEqual(await gate.ask(ASK, new AbortController().signal), { outcome: "selected", option_id: "no" });
    assert.deepEqual(events[1]!.data, { request_id: requestIdOf(events), decision: "no", by: "timeout", option_name: "Reject", kind: "reject_once" });
    assert.deepEqual(registry.listOpen("run_A"), []);
    await expectAppError(() => registry.answer("run_A", requestIdOf(events), "once", "user:alice"), 409, "permission_already_decided");

    const allowing = setup({ timeoutMs: 20, timeoutDecision: "allow" });
    assert.deepEqual(await allowing.gate.ask(ASK, new AbortController().signal), { outcome: "selected", option_id: "once" });
    assert.equal((allowing.events[1]!.data as { by: string }).by, "timeout");
  });

  test("ask: the actor's signal aborting cancels the request, recorded as run_ended", async () => {
    const { events, gate, registry } = setup();
    const ac = new AbortController();
    const pending = gate.ask(ASK, ac.signal);
    ac.abort();
    assert.deepEqual(await pending, { outcome: "cancelled" });
    assert.deepEqual(events[1]!.data, { request_id: requestIdOf(events), decision: "cancelled", by: "run_ended" });
    assert.deepEqual(registry.listOpen("run_A"), []);
  });

  test("ask with an already aborted signal is cancelled at once", async () => {
    const { events, gate } = setup();
    assert.deepEqual(await gate.ask(ASK, AbortSignal.abort()), { outcome: "cancelled" });
    assert.deepEqual(events.map((e) => e.type), ["permission.request", "permission.decision"]);
  });

  test("the run ending (registry.endRun) cancels the run's open requests only", async () => {
    const registry = new PermissionRegistry();
    const a = setup({ registry, runId: "run_A" } as Partial<PermissionGateOptions>);
    const b = setup({ registry, runId: "run_B" } as Partial<PermissionGateOptions>);
    const pa = a.gate.ask(ASK, new AbortController().signal);
    const pb = b.gate.ask(ASK, new AbortController().signal);
    registry.endRun("run_A");
    assert.deepEqual(await pa, { outcome: "cancelled" });
    assert.equal(registry.listOpen("run_B").length, 1);
    registry.answer("run_B", requestIdOf(b.events), "once", "user:bob");
    assert.deepEqual(await pb, { outcome: "selected", option_id: "once" });
  });

  test("an answer after the run's terminal event is a 409", async () => {
    let over = false;
    const { events, gate, registry } = setup({ runOver: () => over });
    const pending = gate.ask(ASK, new AbortController().signal);
    over = true;
    await expectAppError(() => registry.answer("run_A", requestIdOf(events), "once", "user:alice"), 409, "permission_already_decided");
    registry.endRun("run_A");
    assert.deepEqual(await pending, { outcome: "cancelled" });
  });

  test("past the per-run limit of open requests, new ones are cancelled at once", async () => {
    const { events, gate, registry } = setup();
    const ac = new AbortController();
    const open = Array.from({ length: MAX_OPEN_REQUESTS_PER_RUN }, () => gate.ask(ASK, ac.signal));
    assert.deepEqual(await gate.ask(ASK, ac.signal), { outcome: "cancelled" });
    assert.equal(registry.countOpen("run_A"), MAX_OPEN_REQUESTS_PER_RUN);
    ac.abort();
    await Promise.all(open);
    assert.equal(events.filter((e) => e.type === "permission.decision").length, MAX_OPEN_REQUESTS_PER_RUN + 1);
  });
});

describe("storedRequestExists", () => {
  test("pages through a run's stored events", async () => {
    const stored = Array.from({ length: 2500 }, (_, i) => ({ id: i + 1, run_id: "r", ts: "", type: "log", data: { stream: "stdout", text: "x" } }));
    stored.push({ id: 2501, run_id: "r", ts: "", type: "permission.request", data: { request_id: "perm_x" } as never });
    const events = { list: async (_: string, after: number, limit: number) => stored.filter((e) => e.id > after).slice(0, limit) as never };
    assert.equal(await storedRequestExists(events, "r", "perm_x"), true);
    assert.equal(await storedRequestExists(events, "r", "perm_y"), false);
  });
});
