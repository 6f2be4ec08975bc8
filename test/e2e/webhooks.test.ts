/**
 * Webhooks end to end: the real server (child process, port 0) configured by a
 * YAML file to allow the local receiver (an HTTP server on 127.0.0.1:0, listed
 * by IP), real `shell` runs. The receiver verifies every signature and answers
 * 500 to the first attempt of each delivery; a disallowed target is refused at
 * registration, and — after a restart with a narrower allowlist — at delivery.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import http from "node:http";
import type { AddressInfo } from "node:net";
import os from "node:os";
import path from "node:path";
import { verifyWebhookSignature } from "../../src/webhooks/signing.ts";
import { writeConfig as writeConfigFile } from "../helpers/events.ts";
import { until as waitUntil } from "../helpers/processes.ts";
import { spawnServer, type TestServer } from "../helpers/spawn-server.ts";

interface Received {
  headers: http.IncomingHttpHeaders;
  body: string;
  validSignature: boolean;
  answered: number;
}

const until = <T>(fn: () => Promise<T | undefined> | T | undefined, ms = 20_000): Promise<T> => waitUntil(fn, ms, "condition");
const writeConfig = (dir: string, name: string, webhooks: Record<string, unknown>) => writeConfigFile({ webhooks }, path.join(dir, name));

describe("webhooks end to end", () => {
  let tmp: string;
  let s: TestServer;
  let token: string;
  let secret = "";
  let port = 0;
  let receiver: http.Server;
  const received: Received[] = [];
  const seen = new Set<string>();

  before(async () => {
    tmp = mkdtempSync(path.join(os.tmpdir(), "openrunner-webhooks-"));
    receiver = http.createServer((req, res) => {
      let body = "";
      req.setEncoding("utf8").on("data", (d: string) => (body += d));
      req.on("end", () => {
        const delivery = String(req.headers["x-openrunner-delivery"]);
        const answered = seen.has(delivery) ? 200 : 500; // the first attempt of every delivery fails
        seen.add(delivery);
        received.push({ headers: req.headers, body, validSignature: verifyWebhookSignature(secret, req.headers["x-openrunner-signature"] as string, body), answered });
        res.writeHead(answered).end();
      });
    });
    await new Promise<void>((r) => receiver.listen(0, "127.0.0.1", r));
    port = (receiver.address() as AddressInfo).port;
    const config = writeConfig(tmp, "a.yaml", { allowed_hosts: ["127.0.0.1"], retry_base_ms: 50, retry_max_ms: 200, max_attempts: 3, timeout_ms: 5000 });
    s = await spawnServer({ env: { OPENRUNNER_CONFIG: config } });
    token = await s.login();
  });

  after(async () => {
    await s?.stop();
    s?.cleanup();
    await new Promise<void>((r) => (receiver.closeAllConnections(), receiver.close(() => r())));
    rmSync(tmp, { recursive: true, force: true });
  });

  test("registration checks the target: scheme, allowlist, internal addresses", async () => {
    const refuse = async (url: string, code: string) => {
      const res = await s.api("/api/webhooks", { method: "POST", token, json: { url, events: ["run.completed"] } });
      assert.equal(res.status, 400, url);
      assert.equal(((await res.json()) as { error: { code: string } }).error.code, code, url);
    };
    await refuse(`ftp://127.0.0.1:${port}/x`, "webhook_url_invalid");
    await refuse(`http://user:pw@127.0.0.1:${port}/x`, "webhook_url_invalid");
    await refuse(`http://localhost:${port}/x`, "webhook_target_not_allowed");
    await refuse(`http://[::1]:${port}/x`, "webhook_target_not_allowed");
    await refuse(`http://169.254.169.254/latest/meta-data`, "webhook_target_not_allowed");
    const bad = await s.api("/api/webhooks", { method: "POST", token, json: { url: `http://127.0.0.1:${port}/x`, events: ["run.bogus"] } });
    assert.equal(bad.status, 400);
    assert.equal(((await s.api("/api/webhooks", { token }).then((r) => r.json())) as { webhooks: unknown[] }).webhooks.length, 0);
  });

  test("a run's terminal event is delivered signed, retried after a 500, and every attempt is listed; other users see nothing", async () => {
    const created = await s.api("/api/webhooks", { method: "POST", token, json: { url: `http://127.0.0.1:${port}/hook?k=1`, events: ["run.completed", "run.failed"] } });
    assert.equal(created.status, 201, await created.clone().text());
    const hook = (await created.json()) as { id: string; url: string; events: string[]; secret: string };
    assert.match(hook.secret, /^whsec_/);
    secret = hook.secret;
    const listed = (await (await s.api("/api/webhooks", { token })).json()) as { webhooks: Array<Record<string, unknown>> };
    assert.deepEqual(listed.webhooks.map((w) => w.id), [hook.id]);
    assert.equal(listed.webhooks[0]!.secret, undefined, "the secret is never listed");

    const run = await s.api("/api/runs", { method: "POST", token, json: { input: { text: "echo hello" }, metadata: { agent_type: "shell" } } });
    assert.equal(run.status, 201);
    const runId = ((await run.json()) as { run_id: string }).run_id;

    const deliveries = await until(async () => {
      const r = (await (await s.api(`/api/webhooks/${hook.id}/deliveries`, { token })).json()) as { deliveries: Array<Record<string, any>> };
      return r.deliveries.find((d) => d.run_id === runId && d.status === "delivered") ? r.deliveries : undefined;
    });
    const d = deliveries.find((x) => x.run_id === runId)!;
    assert.equal(d.event_type, "run.completed");
    assert.deepEqual(d.attempts.map((a: { status_code: number }) => a.status_code), [500, 200]);
    const mine = received.filter((r) => r.headers["x-openrunner-delivery"] === d.id);
    assert.equal(mine.length, 2);
    assert.ok(mine.every((r) => r.validSignature), "every attempt carries a valid signature");
    const body = JSON.parse(mine[1]!.body) as { id: string; type: string; run_id: string; event: { type: string; data: { exit_code: number } } };
    assert.equal(body.id, d.id);
    assert.equal(body.type, "run.completed");
    assert.equal(body.run_id, runId);
    assert.equal(body.event.data.exit_code, 0);

    const users = await s.api("/api/users", { method: "POST", token, json: { username: "bob", password: "bob-password-1" } });
    assert.equal(users.status, 201);
    const bob = await s.login("bob", "bob-password-1");
    assert.deepEqual(await (await s.api("/api/webhooks", { token: bob })).json(), { webhooks: [] });
    for (const [method, p] of [["GET", `/api/webhooks/${hook.id}`], ["GET", `/api/webhooks/${hook.id}/deliveries`], ["DELETE", `/api/webhooks/${hook.id}`]] as const) {
      assert.equal((await s.api(p, { method, token: bob })).status, 404, `${method} ${p}`);
    }
    assert.equal((await s.api("/api/webhooks", { token: "" })).status, 401);
    const doc = (await (await s.api("/api/openapi.json")).json()) as { paths: Record<string, Record<string, unknown>> };
    for (const p of ["/api/webhooks", "/api/webhooks/{id}", "/api/webhooks/{id}/deliveries", "/api/runs/{id}/permissions", "/api/runs/{id}/permissions/{request_id}"]) assert.ok(doc.paths[p], `OpenAPI documents ${p}`);
    assert.ok(JSON.stringify(doc.paths["/api/runs/{id}/permissions/{request_id}"]).includes("option_id"), "the answer body schema is in the document");
  });

  test("after a restart with a narrower allowlist, delivery to the registered target is refused and nothing is sent", async () => {
    const hooks = (await (await s.api("/api/webhooks", { token })).json()) as { webhooks: Array<{ id: string }> };
    const hookId = hooks.webhooks[0]!.id;
    await s.stop();
    const narrow = writeConfig(tmp, "b.yaml", { allowed_hosts: ["hooks.example.invalid"], max_attempts: 3, retry_base_ms: 50 });
    s = await spawnServer({ dataDir: s.dataDir, env: { OPENRUNNER_CONFIG: narrow } });
    token = await s.login();
    const before = received.length;
    const run = await s.api("/api/runs", { method: "POST", token, json: { input: { text: "exit 3" }, metadata: { agent_type: "shell" } } });
    const runId = ((await run.json()) as { run_id: string }).run_id;
    const d = await until(async () => {
      const r = (await (await s.api(`/api/webhooks/${hookId}/deliveries`, { token })).json()) as { deliveries: Array<Record<string, any>> };
      return r.deliveries.find((x) => x.run_id === runId && x.status === "failed");
    });
    assert.equal(d.event_type, "run.failed");
    assert.equal(d.attempts.length, 1, "a refused target is not retried");
    assert.match(d.attempts[0].error, /^webhook_target_not_allowed/);
    assert.equal(received.length, before, "the receiver got nothing");
    assert.match(s.output(), /webhook delivery failed/, "the refusal is logged");
    assert.ok(!s.output().includes(secret), "the secret never reaches the log");
    assert.ok(!s.output().includes("/hook?k=1"), "nor the URL's path and query");
    const del = await s.api(`/api/webhooks/${hookId}`, { method: "DELETE", token });
    assert.equal(del.status, 204);
    assert.equal((await s.api(`/api/webhooks/${hookId}`, { token })).status, 404);
  });
});
