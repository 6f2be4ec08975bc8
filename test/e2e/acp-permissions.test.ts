/**
 * Approvals end to end: the real server (child process on port 0) runs the
 * scripted ACP fixture agent (`test/fixtures/acp-agent`), whose `permission`
 * step sends `session/request_permission`. Covers `ask` answered by the owner
 * (the run shows `waiting` in GET /api/runs/:id and /metrics meanwhile; another
 * user gets 404, an unknown option 400, a second answer 409), the deadline
 * (default decision applied and recorded as `timeout`), the `deny` and `allow`
 * policies, a cancel while waiting, and the `permission.request` webhook.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { spawn } from "node:child_process";
import http from "node:http";
import type { AddressInfo } from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { verifyWebhookSignature } from "../../src/webhooks/signing.ts";
import { spawnServer, type TestServer } from "../helpers/spawn-server.ts";
import { allEvents, createRun, describeEvents, type Ev } from "../helpers/events.ts";
import { until as waitUntil } from "../helpers/processes.ts";
import { readSse } from "../helpers/sse.ts";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const FIXTURE = path.join(ROOT, "test/fixtures/acp-agent/agent.ts");
const TSX = import.meta.resolve("tsx");
const T = { timeout: 120_000 };

const until = <T>(fn: () => Promise<T | undefined> | T | undefined, what: string, ms = 30_000): Promise<T> => waitUntil(fn, ms, what);

const permissionScript = (extra: object[] = []) => JSON.stringify({ steps: [{ permission: { id: "call-1", title: "Write hello.txt" } }, ...extra, { say: "after" }] });

describe("ACP permission requests end to end", () => {
  let tmp: string;
  let s: TestServer;
  let token: string;
  let bob: string;
  let receiver: http.Server;
  const hooked: Array<{ body: any; valid: boolean }> = [];
  let secret = "";

  before(async () => {
    tmp = mkdtempSync(path.join(os.tmpdir(), "acp-perm-"));
    receiver = http.createServer((req, res) => {
      let body = "";
      req.setEncoding("utf8").on("data", (d: string) => (body += d));
      req.on("end", () => {
        hooked.push({ body: JSON.parse(body), valid: verifyWebhookSignature(secret, req.headers["x-openrunner-signature"] as string, body) });
        res.writeHead(204).end();
      });
    });
    await new Promise<void>((r) => receiver.listen(0, "127.0.0.1", r));
    const config = path.join(tmp, "openrunner.yaml");
    writeFileSync(
      config,
      JSON.stringify({
        acp_agents: { fixture: { command: process.execPath, args: ["--import", TSX, FIXTURE], vendor: "none" } },
        permissions: { default_policy: "ask", timeout_secs: 300, timeout_decision: "reject" },
        webhooks: { allowed_hosts: ["127.0.0.1"], retry_base_ms: 50 },
      }),
    );
    s = await spawnServer({ env: { OPENRUNNER_CONFIG: config } });
    token = await s.login();
    assert.equal((await s.api("/api/users", { method: "POST", token, json: { username: "bob", password: "bob-password-1" } })).status, 201);
    bob = await s.login("bob", "bob-password-1");
    const hook = await s.api("/api/webhooks", { method: "POST", token, json: { url: `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/perm`, events: ["permission.request"] } });
    assert.equal(hook.status, 201, await hook.clone().text());
    secret = ((await hook.json()) as { secret: string }).secret;
  });

  after(async () => {
    await s?.stop();
    s?.cleanup();
    await new Promise<void>((r) => (receiver.closeAllConnections(), receiver.close(() => r())));
    rmSync(tmp, { recursive: true, force: true });
  });

  const startRun = (text: string, metadata: Record<string, unknown> = {}) => createRun(s, token, text, { agent_type: "acp", acp_agent: "fixture", ...metadata });
  const events = (runId: string) => allEvents(s, token, runId, 60_000);

  const finalText = (evs: Ev[]) => evs.filter((e) => e.type === "message").map((e) => e.data.text).join("");
  const dump = (evs: Ev[]) => describeEvents(evs, 200);

  async function answer(runId: string, requestId: string, optionId: unknown, t = token): Promise<Response> {
    return s.api(`/api/runs/${runId}/permissions/${requestId}`, { method: "POST", token: t, json: { option_id: optionId } });
  }

  test("ask: the run waits (status and metrics), only the owner may answer, once, with an offered option", T, async () => {
    const runId = await startRun(permissionScript(), { permission_policy: "ask" });
    await until(async () => ((await (await s.api(`/api/runs/${runId}`, { token })).json()) as { status: string }).status === "waiting" || undefined, "run waiting");
    const metrics = await (await s.api("/metrics")).text();
    assert.match(metrics, /^openrunner_runs\{status="waiting"\} 1$/m);

    const open = (await (await s.api(`/api/runs/${runId}/permissions`, { token })).json()) as { permissions: Array<Record<string, any>> };
    assert.equal(open.permissions.length, 1);
    const req = open.permissions[0]!;
    assert.match(req.request_id, /^perm_[0-9a-f]{32}$/);
    assert.equal(req.call_id, "call-1");
    assert.equal(req.name, "Write hello.txt");
    assert.deepEqual(req.options.map((o: { option_id: string; kind: string }) => [o.option_id, o.kind]), [["allow", "allow_once"], ["reject", "reject_once"]]);
    assert.ok(Date.parse(req.deadline) - Date.parse(req.requested_at) === 300_000);

    // Another user: the run does not exist for them.
    assert.equal((await s.api(`/api/runs/${runId}/permissions`, { token: bob })).status, 404);
    const foreign = await answer(runId, req.request_id, "allow", bob);
    assert.equal(foreign.status, 404);
    assert.equal(((await foreign.json()) as { error: { code: string } }).error.code, "not_found");
    assert.equal((await s.api(`/api/runs/${runId}/permissions/${req.request_id}`, { method: "POST", json: { option_id: "allow" } })).status, 401);
    // Bad answers.
    const unknown = await answer(runId, req.request_id, "maybe");
    assert.equal(unknown.status, 400);
    assert.equal(((await unknown.json()) as { error: { code: string } }).error.code, "unknown_option");
    assert.equal((await answer(runId, req.request_id, 42)).status, 400);
    assert.equal((await answer(runId, "perm_0000", "allow")).status, 404);

    const ok = await answer(runId, req.request_id, "allow");
    assert.equal(ok.status, 200);
    assert.deepEqual(await ok.json(), { request_id: req.request_id, decision: "allow", by: "user:admin", option_name: "Allow", kind: "allow_once" });
    const again = await answer(runId, req.request_id, "reject");
    assert.equal(again.status, 409);
    assert.equal(((await again.json()) as { error: { code: string } }).error.code, "permission_already_decided");

    const evs = await events(runId);
    assert.equal(evs.at(-1)!.type, "run.completed", dump(evs));
    const reqEv = evs.find((e) => e.type === "permission.request")!;
    const decEv = evs.find((e) => e.type === "permission.decision")!;
    assert.ok(reqEv.id < decEv.id);
    assert.equal(reqEv.data.request_id, req.request_id);
    assert.deepEqual(decEv.data, { request_id: req.request_id, decision: "allow", by: "user:admin", option_name: "Allow", kind: "allow_once" });
    assert.equal(evs.filter((e) => e.type === "permission.decision").length, 1);
    assert.match(finalText(evs), /permission allow/);
    // After the run: still a 409 (read from the stored events), an unknown id still 404.
    assert.equal((await answer(runId, req.request_id, "allow")).status, 409);
    assert.equal((await answer(runId, "perm_ffff", "allow")).status, 404);
    const row = (await (await s.api(`/api/runs/${runId}`, { token })).json()) as { status: string };
    assert.equal(row.status, "completed");
    assert.doesNotMatch(await (await s.api("/metrics")).text(), /^openrunner_runs\{status="waiting"\} [1-9]/m);

    // The owner's webhook heard the request, signed.
    const delivered = await until(() => hooked.find((h) => h.body.run_id === runId), "permission.request webhook");
    assert.equal(delivered.valid, true);
    assert.equal(delivered.body.type, "permission.request");
    assert.equal(delivered.body.event.data.request_id, req.request_id);
  });

  test("the CLI lists a run's open requests (openrunner permissions) and answers one (openrunner answer); a second answer exits 1 with the 409", T, async () => {
    const cli = (args: string[]) =>
      new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve, reject) => {
        const child = spawn(process.execPath, [path.join(ROOT, "bin/openrunner.js"), ...args], { env: { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: os.tmpdir(), OPENRUNNER_URL: s.url, OPENRUNNER_TOKEN: token } });
        let stdout = "";
        let stderr = "";
        child.stdout.setEncoding("utf8").on("data", (d: string) => (stdout += d));
        child.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d));
        child.once("error", reject);
        child.once("close", (code) => resolve({ code, stdout, stderr }));
      });
    const runId = await startRun(permissionScript(), { permission_policy: "ask" });
    const open = await until(async () => ((await (await s.api(`/api/runs/${runId}/permissions`, { token })).json()) as { permissions: Array<{ request_id: string }> }).permissions[0], "open request");
    const listed = await cli(["permissions", runId]);
    assert.equal(listed.code, 0, listed.stderr);
    assert.match(listed.stdout, new RegExp(`^${open.request_id}  Write hello.txt  \\(deadline `, "m"));
    assert.match(listed.stdout, /^  allow  .* \[allow_once\]$/m);
    const answered = await cli(["answer", runId, open.request_id, "reject"]);
    assert.equal(answered.code, 0, answered.stderr);
    assert.equal(answered.stdout, `${open.request_id}: reject (by user:admin)\n`);
    const again = await cli(["answer", runId, open.request_id, "allow"]);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /^error: permission_already_decided: /);
    const evs = await events(runId);
    assert.equal(evs.at(-1)!.type, "run.completed", dump(evs));
    assert.match(finalText(evs), /permission reject/);
    assert.equal((await cli(["permissions", runId])).stdout, `no open permission requests for ${runId}\n`);
  });

  test("ask: the deadline applies the configured default decision, recorded as timeout", T, async () => {
    const runId = await startRun(permissionScript(), { permission_timeout_secs: 1 });
    const evs = await events(runId);
    assert.equal(evs.at(-1)!.type, "run.completed", dump(evs));
    const dec = evs.find((e) => e.type === "permission.decision")!;
    assert.equal(dec.data.by, "timeout");
    assert.equal(dec.data.decision, "reject");
    assert.match(finalText(evs), /permission reject/);
    const reqId = evs.find((e) => e.type === "permission.request")!.data.request_id as string;
    assert.equal((await answer(runId, reqId, "allow")).status, 409);
  });

  test("deny and allow policies decide at once, recorded as policy", T, async () => {
    for (const [policy, option] of [["deny", "reject"], ["allow", "allow"]] as const) {
      const runId = await startRun(permissionScript(), { permission_policy: policy });
      const evs = await events(runId);
      assert.equal(evs.at(-1)!.type, "run.completed", dump(evs));
      const dec = evs.find((e) => e.type === "permission.decision")!;
      assert.deepEqual([dec.data.decision, dec.data.by], [option, "policy"], policy);
      assert.match(finalText(evs), new RegExp(`permission ${option}`));
    }
  });

  test("a user answers their own run's request; an admin may answer it too (recorded by name)", T, async () => {
    for (const [answerer, by] of [[() => bob, "user:bob"], [() => token, "user:admin"]] as const) {
      const res = await s.api("/api/runs", { method: "POST", token: bob, json: { input: { text: permissionScript() }, metadata: { agent_type: "acp", acp_agent: "fixture" } } });
      assert.equal(res.status, 201);
      const runId = ((await res.json()) as { run_id: string }).run_id;
      const open = await until(async () => {
        const r = (await (await s.api(`/api/runs/${runId}/permissions`, { token: bob })).json()) as { permissions: Array<{ request_id: string }> };
        return r.permissions[0];
      }, "open request");
      const ok = await answer(runId, open.request_id, "reject", answerer());
      assert.equal(ok.status, 200);
      assert.equal(((await ok.json()) as { by: string }).by, by);
      const out = await readSse(`${s.url}/api/runs/${runId}/events`, { token: bob, timeoutMs: 60_000 });
      const evs = out.messages.map((m) => JSON.parse(m.data) as Ev);
      assert.equal(evs.at(-1)!.type, "run.completed", dump(evs));
      assert.match(finalText(evs), /permission reject/);
    }
  });

  test("cancel while waiting: the request is closed (run_ended) and the run is cancelled", T, async () => {
    const runId = await startRun(permissionScript());
    await until(async () => ((await (await s.api(`/api/runs/${runId}/permissions`, { token })).json()) as { permissions: unknown[] }).permissions.length === 1 || undefined, "open request");
    assert.equal((await s.api(`/api/runs/${runId}/cancel`, { method: "POST", token })).status, 202);
    const evs = await events(runId);
    assert.equal(evs.at(-1)!.type, "run.cancelled", dump(evs));
    const dec = evs.find((e) => e.type === "permission.decision");
    assert.ok(dec, dump(evs));
    assert.deepEqual([dec.data.decision, dec.data.by], ["cancelled", "run_ended"]);
    assert.deepEqual(await (await s.api(`/api/runs/${runId}/permissions`, { token })).json(), { permissions: [] });
  });
});
