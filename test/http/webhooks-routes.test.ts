/**
 * In-process HTTP tests of `/api/webhooks` (supertest against the real Koa app,
 * in-memory store, a scripted DNS lookup): registration checks the resolved
 * addresses, the secret is returned once (generated or given), each user sees
 * only their own webhooks (admins too), the per-user limit, validation.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import os from "node:os";
import { Value } from "@sinclair/typebox/value";
import supertest from "supertest";
import { Logger, type ILogObj } from "tslog";
import { createApp, createAppDeps } from "../../src/api/app.ts";
import { createWebhookRoutes } from "../../src/api/routes/webhooks.ts";
import { MAX_WEBHOOKS_PER_USER } from "../../src/protocol/webhooks.ts";
import { ensureFirstAdmin } from "../../src/auth/bootstrap.ts";
import { Bus } from "../../src/bus/bus.ts";
import { ConfigSchema, type Config } from "../../src/config/schema.ts";
import { openSqliteStore } from "../../src/store/sqlite.ts";
import type { Store } from "../../src/store/types.ts";
import type { LookupAll } from "../../src/webhooks/target.ts";

const ADMIN_PASSWORD = "admin-password-1";
/** Scripted DNS: names and their answers. */
const DNS: Record<string, string[]> = {
  "hooks.example.com": ["93.184.216.34"],
  "internal.example.com": ["10.0.0.8"],
  "mixed.example.com": ["93.184.216.34", "fd00::1"],
};
const lookup: LookupAll = async (host) => {
  const a = DNS[host];
  if (!a) throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${host}`), { code: "ENOTFOUND" });
  return a.map((address) => ({ address, family: address.includes(":") ? 6 : 4 }));
};

describe("webhook routes", () => {
  let store: Store;
  let request: ReturnType<typeof supertest>;
  let admin = "";
  let alice = "";
  const as = (token: string) => ({ Authorization: `Bearer ${token}` });

  before(async () => {
    store = openSqliteStore({ file: ":memory:" });
    await ensureFirstAdmin({ store, password: ADMIN_PASSWORD, print: () => {} });
    const config: Config = {
      ...Value.Create(ConfigSchema),
      jwt_secret: "http-test-secret-0123456789abcdefghijklmn",
      webhooks: { ...Value.Create(ConfigSchema).webhooks, allowed_hosts: ["*.example.com"] },
    };
    const deps = createAppDeps({ config, store, bus: new Bus(), log: new Logger<ILogObj>({ type: "hidden" }), dataDir: os.tmpdir(), version: "t", listAgentHealth: async () => [] });
    request = supertest(createApp(deps, [createWebhookRoutes(deps, { lookup })]).callback());
    admin = (await request.post("/api/auth/login").send({ username: "admin", password: ADMIN_PASSWORD })).body.token;
    assert.equal((await request.post("/api/users").set(as(admin)).send({ username: "alice", password: "alice-password" })).status, 201);
    alice = (await request.post("/api/auth/login").send({ username: "alice", password: "alice-password" })).body.token;
  });
  after(() => store.close());

  test("registration resolves the host: internal answers are refused, an unknown name is 400", async () => {
    const post = (url: string) => request.post("/api/webhooks").set(as(alice)).send({ url, events: ["run.completed"] });
    for (const [url, code] of [
      ["https://internal.example.com/x", "webhook_target_not_allowed"],
      ["https://mixed.example.com/x", "webhook_target_not_allowed"],
      ["https://nowhere.example.com/x", "webhook_target_unresolvable"],
      ["https://hooks.example.org/x", "webhook_target_not_allowed"],
      ["https://10.0.0.8/x", "webhook_target_not_allowed"],
      ["javascript:alert(1)", "webhook_url_invalid"],
    ] as const) {
      const res = await post(url);
      assert.equal(res.status, 400, url);
      assert.equal(res.body.error.code, code, url);
    }
    const res = await post("https://hooks.example.com/in");
    assert.equal(res.status, 201);
  });

  test("the secret: generated or given, returned once, never listed", async () => {
    const gen = await request.post("/api/webhooks").set(as(admin)).send({ url: "https://hooks.example.com/a", events: ["permission.request", "run.failed"] });
    assert.equal(gen.status, 201);
    assert.match(gen.body.secret, /^whsec_/);
    assert.equal(gen.headers["cache-control"], "no-store");
    assert.equal((await store.webhooks.get(gen.body.id))!.secret, gen.body.secret);
    const given = await request.post("/api/webhooks").set(as(admin)).send({ url: "https://hooks.example.com/b", events: ["run.completed"], secret: "my-own-secret-0123456789" });
    assert.equal(given.body.secret, "my-own-secret-0123456789");
    const one = await request.get(`/api/webhooks/${gen.body.id}`).set(as(admin));
    assert.deepEqual(one.body, { id: gen.body.id, url: "https://hooks.example.com/a", events: ["permission.request", "run.failed"], created_at: gen.body.created_at });
    const list = await request.get("/api/webhooks").set(as(admin));
    assert.deepEqual(list.body.webhooks.map((w: { id: string }) => w.id), [gen.body.id, given.body.id], "an admin lists their own only");
    assert.ok(!JSON.stringify(list.body).includes("secret"));
    assert.equal((await request.get(`/api/webhooks/${gen.body.id}`).set(as(alice))).status, 404, "another user's webhook is not found");
    assert.equal((await request.delete(`/api/webhooks/${gen.body.id}`).set(as(alice))).status, 404);
    assert.deepEqual((await request.get(`/api/webhooks/${gen.body.id}/deliveries`).set(as(admin))).body, { deliveries: [] });
    assert.equal((await request.delete(`/api/webhooks/${gen.body.id}`).set(as(admin))).status, 204);
    assert.equal((await request.get(`/api/webhooks/${gen.body.id}`).set(as(admin))).status, 404);
  });

  test("validation, authentication and the per-user limit", async () => {
    const bad = [
      { url: "https://hooks.example.com/x", events: [] },
      { url: "https://hooks.example.com/x", events: ["run.started"] },
      { url: "https://hooks.example.com/x", events: ["run.failed", "run.failed"] },
      { url: "https://hooks.example.com/x", events: ["run.failed"], secret: "short" },
      { url: "https://hooks.example.com/x", events: ["run.failed"], extra: 1 },
    ];
    for (const body of bad) assert.equal((await request.post("/api/webhooks").set(as(alice)).send(body)).status, 400, JSON.stringify(body));
    assert.equal((await request.get("/api/webhooks")).status, 401);
    assert.equal((await request.get("/api/webhooks/wh_x/deliveries?limit=0").set(as(alice))).status, 400);
    const have = (await store.webhooks.listByUser((await store.users.getByUsername("alice"))!.id)).length;
    for (let i = have; i < MAX_WEBHOOKS_PER_USER; i++) {
      assert.equal((await request.post("/api/webhooks").set(as(alice)).send({ url: `https://hooks.example.com/${i}`, events: ["run.completed"] })).status, 201);
    }
    const over = await request.post("/api/webhooks").set(as(alice)).send({ url: "https://hooks.example.com/over", events: ["run.completed"] });
    assert.equal(over.status, 409);
    assert.equal(over.body.error.code, "webhook_limit_reached");
  });
});
