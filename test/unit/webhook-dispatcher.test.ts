/**
 * The webhook dispatcher (src/webhooks/dispatcher.ts) with a real store
 * (SQLite in memory), a real bus and a real HTTP receiver on 127.0.0.1:0:
 * signed deliveries, a retry after a 500, the owner's subscribed hooks only,
 * the delivery-time target check (a DNS answer that turned internal), no
 * redirects, timeouts, the bounded queue and shutdown.
 */
import { after, before, beforeEach, describe, test } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { Registry } from "prom-client";
import { Logger, type ILogObj } from "tslog";
import { Bus } from "../../src/bus/bus.ts";
import type { Config } from "../../src/config/schema.ts";
import type { RunEvent } from "../../src/protocol/events.ts";
import { openSqliteStore } from "../../src/store/sqlite.ts";
import type { Store } from "../../src/store/types.ts";
import { WebhookDispatcher } from "../../src/webhooks/dispatcher.ts";
import { verifyWebhookSignature } from "../../src/webhooks/signing.ts";
import { waitFor } from "../helpers/processes.ts";
import type { LookupAll } from "../../src/webhooks/target.ts";

interface Received {
  headers: http.IncomingHttpHeaders;
  body: string;
  url: string;
}

/** The receiver answers with `respond(n)` for its n-th request (1-based). */
function startReceiver(respond: (n: number, req: http.IncomingMessage, res: http.ServerResponse) => void) {
  const received: Received[] = [];
  const waiters: Array<() => void> = [];
  const server = http.createServer((req, res) => {
    let body = "";
    req.setEncoding("utf8").on("data", (d: string) => (body += d));
    req.on("end", () => {
      received.push({ headers: req.headers, body, url: req.url ?? "" });
      for (const w of waiters.splice(0)) w();
      respond(received.length, req, res);
    });
  });
  return new Promise<{ port: number; received: Received[]; waitFor: (n: number) => Promise<void>; close: () => Promise<void> }>((resolve) =>
    server.listen(0, "127.0.0.1", () =>
      resolve({
        port: (server.address() as AddressInfo).port,
        received,
        async waitFor(n) {
          while (received.length < n) await new Promise<void>((r) => waiters.push(r));
        },
        close: () => new Promise<void>((r) => (server.closeAllConnections(), server.close(() => r()))),
      }),
    ),
  );
}

const log = new Logger<ILogObj>({ type: "hidden" });
const baseConfig: Config["webhooks"] = {
  allowed_hosts: ["127.0.0.1"],
  allow_private: false,
  max_attempts: 3,
  timeout_ms: 2000,
  retry_base_ms: 20,
  retry_max_ms: 50,
  max_queue: 100,
  concurrency: 2,
};

let seq = 0;
function terminalEvent(runId = `run_${++seq}`): RunEvent {
  return { id: 5, run_id: runId, ts: new Date().toISOString(), type: "run.completed", data: { exit_code: 0, duration_ms: 12, result: "ok" } };
}

const until = (cond: () => boolean | Promise<boolean>, ms = 10_000) => waitFor(cond, ms, "delivery status", 10);

describe("webhook dispatcher", () => {
  let store: Store;
  let alice: string;
  let bob: string;
  let bus: Bus;
  const dispatchers: WebhookDispatcher[] = [];
  const make = async (config: Partial<Config["webhooks"]> = {}, lookup?: LookupAll, registry?: Registry) => {
    const d = new WebhookDispatcher({ store, bus, config: { ...baseConfig, ...config }, log, ...(lookup ? { lookup } : {}), ...(registry ? { registry } : {}), version: "test" });
    dispatchers.push(d);
    await d.start();
    return d;
  };
  const statusOf = async (hookId: string) => (await store.webhooks.listDeliveries(hookId, 10))[0]?.status;

  before(async () => {
    store = openSqliteStore({ file: ":memory:" });
    alice = (await store.users.create({ username: "alice", password_hash: "x", role: "user" })).id;
    bob = (await store.users.create({ username: "bob", password_hash: "x", role: "user" })).id;
  });
  beforeEach(async () => {
    await Promise.all(dispatchers.splice(0).map((d) => d.close()));
    bus = new Bus((err) => assert.fail(String(err)));
  });
  after(async () => {
    await Promise.all(dispatchers.splice(0).map((d) => d.close()));
    await store.close();
  });

  test("signed delivery to the owner's subscribed hooks, retried after a 500, every attempt recorded", async () => {
    const rx = await startReceiver((n, _req, res) => res.writeHead(n === 1 ? 500 : 200).end("ok"));
    const secret = "whsec_test_secret_0123456789";
    const hook = await store.webhooks.create({ user_id: alice, url: `http://127.0.0.1:${rx.port}/hook?token=abc`, events: ["run.completed"], secret });
    const other = await store.webhooks.create({ user_id: alice, url: `http://127.0.0.1:${rx.port}/perm`, events: ["permission.request"], secret });
    const bobs = await store.webhooks.create({ user_id: bob, url: `http://127.0.0.1:${rx.port}/bob`, events: ["run.completed"], secret });
    await make();
    const event = terminalEvent();
    bus.publish("run.event", { user_id: alice, event });
    await rx.waitFor(2);
    await until(async () => (await statusOf(hook.id)) === "delivered");

    assert.ok(rx.received.every((r) => r.url === "/hook?token=abc"), "only the owner's hook subscribed to the type");
    const [first, second] = rx.received as [Received, Received];
    for (const r of [first, second]) {
      assert.ok(verifyWebhookSignature(secret, r.headers["x-openrunner-signature"] as string, r.body), "valid signature");
      assert.equal(r.headers["x-openrunner-event"], "run.completed");
      assert.equal(r.headers["content-type"], "application/json");
      assert.equal(r.headers["user-agent"], "OpenRunner-Webhook/test");
    }
    const body = JSON.parse(second.body) as Record<string, unknown>;
    const deliveries = await store.webhooks.listDeliveries(hook.id, 10);
    assert.equal(deliveries.length, 1);
    const d = deliveries[0]!;
    assert.equal(body.id, d.id);
    assert.equal(first.headers["x-openrunner-delivery"], d.id);
    assert.equal(second.headers["x-openrunner-delivery"], d.id, "the same delivery id on a retry");
    assert.equal(body.type, "run.completed");
    assert.equal(body.run_id, event.run_id);
    assert.deepEqual(body.event, JSON.parse(JSON.stringify(event)));
    assert.ok(!Number.isNaN(Date.parse(String(body.delivered_at))));
    assert.equal(d.attempts, 2);
    assert.deepEqual(d.attempt_log.map((a) => [a.attempt, a.status_code, a.error]), [[1, 500, "HTTP 500"], [2, 200, null]]);
    assert.equal((await store.webhooks.listDeliveries(other.id, 10)).length, 0);
    assert.equal((await store.webhooks.listDeliveries(bobs.id, 10)).length, 0);
    await store.webhooks.delete(hook.id, alice);
    await store.webhooks.delete(other.id, alice);
    await store.webhooks.delete(bobs.id, bob);
    await rx.close();
  });

  test("at delivery the target is checked again: a name now resolving to loopback is refused, nothing is sent", async () => {
    const rx = await startReceiver((_n, _req, res) => res.writeHead(200).end());
    const hook = await store.webhooks.create({ user_id: alice, url: `http://rebind.test:${rx.port}/x`, events: ["run.completed"], secret: "whsec_0123456789abcdef" });
    await make({ allowed_hosts: ["rebind.test"] }, async () => [{ address: "127.0.0.1", family: 4 }]);
    bus.publish("run.event", { user_id: alice, event: terminalEvent() });
    await until(async () => (await statusOf(hook.id)) === "failed");
    const d = (await store.webhooks.listDeliveries(hook.id, 10))[0]!;
    assert.equal(d.attempt_log.length, 1, "a refused target is not retried");
    assert.equal(d.attempt_log[0]!.status_code, null);
    assert.match(d.attempt_log[0]!.error!, /^webhook_target_not_allowed: .*loopback/);
    assert.equal(rx.received.length, 0);
    await store.webhooks.delete(hook.id, alice);
    await rx.close();
  });

  test("with allow_private the same rebinding name is delivered to, through the checked address", async () => {
    const rx = await startReceiver((_n, _req, res) => res.writeHead(204).end());
    const hook = await store.webhooks.create({ user_id: alice, url: `http://rebind.test:${rx.port}/x`, events: ["run.completed"], secret: "whsec_0123456789abcdef" });
    await make({ allowed_hosts: ["rebind.test"], allow_private: true }, async () => [{ address: "127.0.0.1", family: 4 }]);
    bus.publish("run.event", { user_id: alice, event: terminalEvent() });
    await until(async () => (await statusOf(hook.id)) === "delivered");
    assert.equal(rx.received[0]!.headers.host, `rebind.test:${rx.port}`, "Host names the URL's host");
    await store.webhooks.delete(hook.id, alice);
    await rx.close();
  });

  test("redirects are not followed and not retried", async () => {
    const rx = await startReceiver((_n, _req, res) => res.writeHead(302, { Location: "/elsewhere" }).end());
    const hook = await store.webhooks.create({ user_id: alice, url: `http://127.0.0.1:${rx.port}/x`, events: ["run.completed"], secret: "whsec_0123456789abcdef" });
    await make();
    bus.publish("run.event", { user_id: alice, event: terminalEvent() });
    await until(async () => (await statusOf(hook.id)) === "failed");
    const d = (await store.webhooks.listDeliveries(hook.id, 10))[0]!;
    assert.deepEqual(d.attempt_log.map((a) => [a.status_code, a.error]), [[302, "redirect not followed"]]);
    assert.deepEqual(rx.received.map((r) => r.url), ["/x"]);
    await store.webhooks.delete(hook.id, alice);
    await rx.close();
  });

  test("a receiver that never answers times out; attempts stop at max_attempts", async () => {
    const rx = await startReceiver(() => {}); // never responds
    const hook = await store.webhooks.create({ user_id: alice, url: `http://127.0.0.1:${rx.port}/slow`, events: ["run.completed"], secret: "whsec_0123456789abcdef" });
    await make({ timeout_ms: 150, max_attempts: 2 });
    bus.publish("run.event", { user_id: alice, event: terminalEvent() });
    await until(async () => (await statusOf(hook.id)) === "failed");
    const d = (await store.webhooks.listDeliveries(hook.id, 10))[0]!;
    assert.deepEqual(d.attempt_log.map((a) => a.error), ["timeout after 150 ms", "timeout after 150 ms"]);
    await store.webhooks.delete(hook.id, alice);
    await rx.close();
  });

  test("a name resolution that hangs counts as an unresolvable target and is retried", async () => {
    const hook = await store.webhooks.create({ user_id: alice, url: "http://slowdns.test/x", events: ["run.completed"], secret: "whsec_0123456789abcdef" });
    await make({ allowed_hosts: ["slowdns.test"], timeout_ms: 100, max_attempts: 2 }, () => new Promise(() => {}));
    bus.publish("run.event", { user_id: alice, event: terminalEvent() });
    await until(async () => (await statusOf(hook.id)) === "failed");
    const d = (await store.webhooks.listDeliveries(hook.id, 10))[0]!;
    assert.deepEqual(d.attempt_log.map((a) => a.error), Array(2).fill("webhook_target_unresolvable: name resolution took over 100 ms"));
    await store.webhooks.delete(hook.id, alice);
  });

  test("close() right after a publish waits for the event to be taken in: the delivery is recorded, then abandoned", async () => {
    const hook = await store.webhooks.create({ user_id: alice, url: "http://127.0.0.1:9/never", events: ["run.completed"], secret: "whsec_0123456789abcdef" });
    const d = await make();
    bus.publish("run.event", { user_id: alice, event: terminalEvent() });
    await d.close();
    assert.deepEqual((await store.webhooks.listDeliveries(hook.id, 10)).map((x) => x.status), ["abandoned"]);
    await store.webhooks.delete(hook.id, alice);
  });

  test("past max_queue deliveries are dropped (recorded, counted) and publishing never waits; close() abandons the rest", async () => {
    const rx = await startReceiver(() => {}); // holds every request
    const hook = await store.webhooks.create({ user_id: alice, url: `http://127.0.0.1:${rx.port}/q`, events: ["run.completed"], secret: "whsec_0123456789abcdef" });
    const registry = new Registry();
    const d = await make({ max_queue: 2, concurrency: 1, timeout_ms: 60_000 }, undefined, registry);
    for (let i = 0; i < 5; i++) bus.publish("run.event", { user_id: alice, event: terminalEvent() });
    await d.whenIdle(); // the events are taken in one after another, off the publisher's path
    assert.equal(d.held, 2);
    const statuses = (await store.webhooks.listDeliveries(hook.id, 10)).map((x) => x.status).sort();
    assert.deepEqual(statuses, ["dropped", "dropped", "dropped", "pending", "pending"]);
    const metric = await registry.getSingleMetricAsString("openrunner_webhook_deliveries_dropped_total");
    assert.match(metric, /openrunner_webhook_deliveries_dropped_total 3$/m);
    await rx.waitFor(1);
    const closing = d.close();
    await rx.close(); // ends the held request, so close() can finish
    await closing;
    const after = (await store.webhooks.listDeliveries(hook.id, 10)).map((x) => x.status).sort();
    assert.ok(!after.includes("pending"), `nothing left pending: ${after}`);
    assert.ok(after.includes("abandoned"), `the queued one is abandoned: ${after}`);
    await store.webhooks.delete(hook.id, alice);
  });
});
