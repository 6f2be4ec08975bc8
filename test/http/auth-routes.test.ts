/**
 * In-process HTTP tests of the built-in routes (supertest against
 * `createApp(...).callback()`, in-memory store): login, me, users, API keys,
 * error shapes, body limits, health, metrics, OpenAPI, docs, and that tokens
 * never reach the log.
 */
import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import os from "node:os";
import { Router } from "@koa/router";
import { Type } from "@sinclair/typebox";
import { Value } from "@sinclair/typebox/value";
import supertest from "supertest";
import { Logger, type ILogObj } from "tslog";
import { createApp, createAppDeps } from "../../src/api/app.ts";
import type { AppDeps, AppState, RouteModule } from "../../src/api/context.ts";
import { errorResponses } from "../../src/api/openapi.ts";
import { LoginBody } from "../../src/protocol/api.ts";
import { validateBody } from "../../src/api/validate.ts";
import { ensureFirstAdmin } from "../../src/auth/bootstrap.ts";
import { Bus } from "../../src/bus/bus.ts";
import { ConfigSchema, type Config } from "../../src/config/schema.ts";
import { SECRET_KEYS } from "../../src/log.ts";
import { RUN_EVENT_TYPES } from "../../src/protocol/events.ts";
import { openSqliteStore } from "../../src/store/sqlite.ts";
import type { Store } from "../../src/store/types.ts";

const ADMIN_PASSWORD = "admin-password-1";
const BODY_LIMIT = 2048;

/** A module like the lead's runs routes: its own router guarded by `deps.auth`, a validated body, a `:id` path. */
function createWidgetRoutes(deps: AppDeps): RouteModule {
  const router = new Router<AppState>();
  const WidgetBody = Type.Object({ size: Type.Integer({ minimum: 1 }) }, { additionalProperties: false });
  router.post("/api/widgets/:id", deps.auth, (ctx) => {
    const body = validateBody(WidgetBody, ctx.request.body);
    ctx.body = { id: ctx.params.id, size: body.size, owner: ctx.state.user.username };
  });
  router.get("/api/boom", () => {
    throw new Error("boom: internal detail that must stay private");
  });
  return {
    router,
    operations: [
      {
        method: "post",
        path: "/api/widgets/:id",
        summary: "test widget",
        tags: ["test"],
        auth: true,
        requestBody: WidgetBody,
        responses: { 200: { description: "ok" }, ...errorResponses(400, 401) },
      },
    ],
  };
}

describe("built-in routes", () => {
  let store: Store;
  let bus: Bus;
  let request: ReturnType<typeof supertest>;
  const logLines: string[] = [];
  let adminToken = "";
  let adminId = "";

  before(async () => {
    store = openSqliteStore({ file: ":memory:" });
    bus = new Bus();
    await ensureFirstAdmin({ store, password: ADMIN_PASSWORD, print: () => {} });
    adminId = (await store.users.getByUsername("admin"))!.id;
    const log = new Logger<ILogObj>({ type: "hidden", minLevel: 0, maskValuesOfKeys: SECRET_KEYS, maskValuesOfKeysCaseInsensitive: true });
    log.attachTransport((obj) => logLines.push(JSON.stringify(obj)));
    const config: Config = {
      ...Value.Create(ConfigSchema),
      jwt_secret: "http-test-secret-0123456789abcdefghijklmn",
      body_limit_bytes: BODY_LIMIT,
      login_max_attempts: 1000,
    };
    const deps = createAppDeps({
      config,
      store,
      bus,
      log,
      dataDir: os.tmpdir(),
      version: "9.9.9-test",
      listAgentHealth: async () => [{ agent: "shell", available: true, path: "/bin/sh" }],
    });
    request = supertest(createApp(deps, [createWidgetRoutes(deps)]).callback());
    const res = await request.post("/api/auth/login").send({ username: "admin", password: ADMIN_PASSWORD });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    adminToken = res.body.token;
  });
  after(() => store.close());

  const as = (token: string) => ({ Authorization: `Bearer ${token}` });

  async function createUserAndLogin(username: string, role?: "admin" | "user"): Promise<{ id: string; token: string }> {
    const created = await request.post("/api/users").set(as(adminToken)).send({ username, password: "user-password", ...(role ? { role } : {}) });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const login = await request.post("/api/auth/login").send({ username, password: "user-password" });
    assert.equal(login.status, 200);
    return { id: created.body.id, token: login.body.token };
  }

  test("login returns a bearer token; me returns the caller", async () => {
    const res = await request.post("/api/auth/login").send({ username: "admin", password: ADMIN_PASSWORD });
    assert.equal(res.status, 200);
    assert.equal(res.body.token_type, "Bearer");
    assert.equal(res.body.expires_in, 86400);
    assert.equal(res.headers["cache-control"], "no-store");
    const me = await request.get("/api/auth/me").set(as(res.body.token));
    assert.deepEqual(me.body, { id: adminId, username: "admin", role: "admin" });
  });

  test("unknown user and wrong password answer the identical 401", async () => {
    const wrong = await request.post("/api/auth/login").send({ username: "admin", password: "nope-nope" });
    const unknown = await request.post("/api/auth/login").send({ username: "nobody", password: "nope-nope" });
    assert.equal(wrong.status, 401);
    assert.equal(unknown.status, 401);
    assert.deepEqual(wrong.body, unknown.body);
    assert.deepEqual(wrong.body, { error: { code: "unauthorized", message: "authentication required" } });
  });

  test("invalid bodies: 400 validation_failed with {path, message} details", async () => {
    const missing = await request.post("/api/auth/login").send({ username: "admin" });
    assert.equal(missing.status, 400);
    assert.equal(missing.body.error.code, "validation_failed");
    assert.deepEqual(missing.body.error.details, [{ path: "/password", message: "is required" }]);
    const extra = await request.post("/api/auth/login").send({ username: "admin", password: "x", admin: true });
    assert.deepEqual(extra.body.error.details, [{ path: "/admin", message: "is not allowed" }]);
    const types = await request.post("/api/auth/login").send({ username: 5, password: ["x"] });
    assert.deepEqual(types.body.error.details.map((d: { path: string }) => d.path).sort(), ["/password", "/username"]);
    const noBody = await request.post("/api/auth/login");
    assert.equal(noBody.status, 400);
    assert.equal(noBody.body.error.code, "validation_failed");
  });

  test("malformed JSON is 400 invalid_json; non-JSON is 415; too large is 413", async () => {
    const bad = await request.post("/api/auth/login").set("Content-Type", "application/json").send('{"username": "admin",');
    assert.equal(bad.status, 400);
    assert.equal(bad.body.error.code, "invalid_json");
    const scalar = await request.post("/api/auth/login").set("Content-Type", "application/json").send('"admin"');
    assert.equal(scalar.body.error.code, "invalid_json");
    const text = await request.post("/api/auth/login").set("Content-Type", "text/plain").send("username=admin");
    assert.equal(text.status, 415);
    assert.equal(text.body.error.code, "unsupported_media_type");
    const big = await request.post("/api/auth/login").send({ username: "admin", password: "x".repeat(BODY_LIMIT) });
    assert.equal(big.status, 413);
    assert.equal(big.body.error.code, "payload_too_large");
  });

  test("users: create, duplicate, invalid, list, role checks, delete", async () => {
    const bob = await createUserAndLogin("bob");
    const dup = await request.post("/api/users").set(as(adminToken)).send({ username: "bob", password: "another-pw" });
    assert.equal(dup.status, 409);
    assert.equal(dup.body.error.code, "username_taken");
    const invalid = await request.post("/api/users").set(as(adminToken)).send({ username: "bad name!", password: "short", role: "root" });
    assert.equal(invalid.status, 400);
    assert.deepEqual(invalid.body.error.details.map((d: { path: string }) => d.path).sort(), ["/password", "/role", "/username"]);
    assert.deepEqual(
      invalid.body.error.details.find((d: { path: string }) => d.path === "/role"),
      { path: "/role", message: 'must be one of: "admin", "user"' },
    );

    const list = await request.get("/api/users").set(as(adminToken));
    assert.equal(list.status, 200);
    assert.deepEqual(list.body.users.map((u: { username: string }) => u.username), ["admin", "bob"]);
    assert.equal(JSON.stringify(list.body).includes("password"), false, "no hashes in listings");

    assert.equal((await request.get("/api/users").set(as(bob.token))).status, 403);
    const forbidden = await request.post("/api/users").set(as(bob.token)).send({ username: "eve", password: "password-1" });
    assert.equal(forbidden.status, 403);
    assert.equal(forbidden.body.error.code, "forbidden");
    assert.equal((await request.get("/api/users")).status, 401);

    const self = await request.delete(`/api/users/${adminId}`).set(as(adminToken));
    assert.equal(self.status, 409);
    assert.equal(self.body.error.code, "cannot_delete_self");
    assert.equal((await request.delete("/api/users/usr_nope").set(as(adminToken))).status, 404);
    assert.equal((await request.delete(`/api/users/${bob.id}`).set(as(adminToken))).status, 204);
    assert.equal((await request.get("/api/auth/me").set(as(bob.token))).status, 401, "a deleted user's token stops working");
  });

  test("api keys: shown once, listed without secrets, usable, revocable, private", async () => {
    const carol = await createUserAndLogin("carol");
    const created = await request.post("/api/api-keys").set(as(carol.token)).send({ name: "ci" });
    assert.equal(created.status, 201);
    const key: string = created.body.key;
    assert.match(key, /^or_[A-Za-z0-9_-]{43}$/);
    assert.equal(created.body.prefix, key.slice(0, 9));

    const me = await request.get("/api/auth/me").set(as(key));
    assert.equal(me.body.username, "carol");
    const list = await request.get("/api/api-keys").set(as(carol.token));
    assert.equal(list.body.api_keys.length, 1);
    assert.ok(list.body.api_keys[0].last_used_at, "last_used_at is set after use");
    assert.equal(JSON.stringify(list.body).includes(key), false);
    assert.equal("key_hash" in list.body.api_keys[0] || "key" in list.body.api_keys[0], false);

    assert.equal((await request.get("/api/api-keys").set(as(adminToken))).body.api_keys.length, 0, "own keys only");
    const notMine = await request.delete(`/api/api-keys/${created.body.id}`).set(as(adminToken));
    assert.equal(notMine.status, 404);
    assert.equal((await request.post("/api/api-keys").set(as(carol.token)).send({ name: "" })).status, 400);

    assert.equal((await request.delete(`/api/api-keys/${created.body.id}`).set(as(carol.token))).status, 204);
    assert.equal((await request.delete(`/api/api-keys/${created.body.id}`).set(as(carol.token))).status, 404);
    assert.equal((await request.get("/api/auth/me").set(as(key))).status, 401);
  });

  test("mounted modules get deps.auth, body validation and the error mapping", async () => {
    assert.equal((await request.post("/api/widgets/w1").send({ size: 3 })).status, 401);
    const ok = await request.post("/api/widgets/w1").set(as(adminToken)).send({ size: 3 });
    assert.deepEqual(ok.body, { id: "w1", size: 3, owner: "admin" });
    const bad = await request.post("/api/widgets/w1").set(as(adminToken)).send({ size: "3" });
    assert.equal(bad.status, 400, "no type coercion");

    const boom = await request.get("/api/boom").set("X-Request-Id", "req-boom-1");
    assert.equal(boom.status, 500);
    assert.deepEqual(boom.body, { error: { code: "internal", message: "internal server error" } });
    assert.equal(boom.text.includes("boom"), false);
    assert.equal(boom.headers["x-request-id"], "req-boom-1");
    assert.ok(logLines.some((l) => l.includes("req-boom-1") && l.includes("boom: internal detail")), "500s are logged with the request id");
  });

  test("unknown routes: 404 not_found JSON; request ids", async () => {
    const res = await request.get("/api/nope").set("X-Request-Id", "bad id with spaces");
    assert.equal(res.status, 404);
    assert.equal(res.body.error.code, "not_found");
    assert.match(res.headers["content-type"] ?? "", /json/);
    assert.match(res.headers["x-request-id"] ?? "", /^[0-9a-f-]{36}$/);
    assert.equal((await request.get("/api/docs/package.json")).status, 404, "only whitelisted UI assets");
  });

  test("health and agents", async () => {
    const res = await request.get("/health");
    assert.equal(res.body.status, "ok");
    assert.equal(res.body.version, "9.9.9-test");
    assert.ok(Number.isInteger(res.body.uptime_s));
    const agents = await request.get("/health/agents");
    assert.deepEqual(agents.body, { agents: [{ agent: "shell", available: true, path: "/bin/sh" }] });
  });

  test("metrics expose the OpenRunner series, fed by the bus", async () => {
    bus.publish("run.status", { run_id: "r1", user_id: "u", agent: "shell", status: "queued", prev: null });
    bus.publish("run.status", { run_id: "r1", user_id: "u", agent: "shell", status: "running", prev: "queued" });
    bus.publish("run.events.stored", { run_id: "r1", count: 5 });
    bus.publish("sse.subscribers", { delta: 1 });
    const res = await request.get("/metrics");
    assert.equal(res.status, 200);
    assert.match(res.headers["content-type"] ?? "", /text\/plain/);
    for (const line of [
      'openrunner_runs{status="queued"} 0',
      'openrunner_runs{status="running"} 1',
      "openrunner_run_events_stored_total 5",
      "openrunner_sse_subscribers 1",
    ]) {
      assert.ok(res.text.includes(line), `missing ${line}`);
    }
    assert.match(res.text, /openrunner_http_request_duration_seconds_bucket\{[^}]*route="\/health"/);
    assert.match(res.text, /process_cpu_user_seconds_total/);
  });

  test("openapi.json is OpenAPI 3.1 with the login body, the RunEvent component and mounted modules", async () => {
    const res = await request.get("/api/openapi.json");
    assert.equal(res.status, 200);
    const doc = res.body;
    assert.equal(doc.openapi, "3.1.0");
    assert.equal(doc.info.version, "9.9.9-test");
    const login = doc.paths["/api/auth/login"].post;
    assert.deepEqual(login.requestBody.content["application/json"].schema, JSON.parse(JSON.stringify(LoginBody)));
    assert.deepEqual(login.security, []);
    assert.equal(doc.components.schemas.RunEvent.oneOf.length, RUN_EVENT_TYPES.length);
    assert.equal(doc.components.schemas.RunEvent.$schema, undefined);
    assert.ok(doc.components.schemas.ErrorResponse);
    assert.equal(doc.components.securitySchemes.bearerAuth.scheme, "bearer");
    const widget = doc.paths["/api/widgets/{id}"].post;
    assert.deepEqual(widget.parameters, [{ name: "id", in: "path", required: true, schema: { type: "string" } }]);
    assert.deepEqual(widget.security, [{ bearerAuth: [] }]);
    for (const p of ["/health", "/health/agents", "/metrics", "/api/users", "/api/users/{id}", "/api/api-keys", "/api/api-keys/{id}", "/api/auth/me", "/api/docs"]) {
      assert.ok(doc.paths[p], `missing path ${p}`);
    }
    assert.equal(JSON.stringify(doc).includes(":id"), false);
    // Every request body that a route validates is in the document.
    for (const [p, item] of Object.entries(doc.paths as Record<string, Record<string, { requestBody?: unknown }>>)) {
      if (item.post && p !== "/api/auth/login") assert.ok(item.post.requestBody, `POST ${p} documents its body`);
    }
  });

  test("docs serve Swagger UI from the installed package", async () => {
    const html = await request.get("/api/docs");
    assert.equal(html.status, 200);
    assert.match(html.headers["content-type"] ?? "", /text\/html/);
    assert.match(html.text, /swagger-ui-bundle\.js/);
    assert.equal(/https?:\/\//.test(html.text), false, "no CDN");
    const init = await request.get("/api/docs/swagger-initializer.js");
    assert.match(init.text, /\/api\/openapi\.json/);
    const bundle = await request.get("/api/docs/swagger-ui-bundle.js");
    assert.equal(bundle.status, 200);
    assert.match(bundle.headers["content-type"] ?? "", /javascript/);
  });

  test("access_token values never reach the log", async () => {
    const token = adminToken;
    const bogus = "eyJhbGciOiJub25lIn0.bogus-token-value-123.";
    logLines.length = 0;
    assert.equal((await request.get(`/api/auth/me?access_token=${token}`)).status, 401, "query tokens only on SSE routes");
    assert.equal((await request.get(`/api/auth/me?x=1&access%5Ftoken=${bogus}`)).status, 401);
    assert.equal((await request.get(`/api/nope?access_token=${bogus}&y=2`)).status, 404);
    assert.equal((await request.get("/api/auth/me").set(as(bogus))).status, 401);
    assert.ok(logLines.length >= 4);
    assert.ok(logLines.some((l) => l.includes("access_token=***")), "the access log ran and redacted");
    assert.ok(logLines.some((l) => l.includes("access%5Ftoken=***")), "percent-encoded parameter names are redacted too");
    for (const line of logLines) {
      assert.equal(line.includes(token), false, `token leaked: ${line}`);
      assert.equal(line.includes("bogus-token-value-123"), false, `token leaked: ${line}`);
    }
    const access = logLines.filter((l) => l.includes("duration_ms"));
    assert.equal(access.length, 4, "one access line per request");
    assert.ok(access.some((l) => l.includes('"status":404') && l.includes('"method":"GET"') && l.includes('"request_id"')));
  });
});
