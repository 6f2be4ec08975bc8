/**
 * `GET /api/tools` in-process (src/api/routes/tools.ts): the native agent's registry as served, and the
 * OpenAPI document naming the batch, config and tools operations with their schemas.
 */
import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import os from "node:os";
import supertest from "supertest";
import { nativeToolSchemas } from "../../src/agent/native/tools/index.ts";
import { createApp, createAppDeps } from "../../src/api/app.ts";
import { createBatchRoutes } from "../../src/api/routes/batches.ts";
import { createConfigRoutes } from "../../src/api/routes/config.ts";
import { createToolRoutes } from "../../src/api/routes/tools.ts";
import { ensureFirstAdmin } from "../../src/auth/bootstrap.ts";
import { Bus } from "../../src/bus/bus.ts";
import { LiveConfig } from "../../src/config/live.ts";
import { loadConfigWithSources } from "../../src/config/load.ts";
import { createSilentLogger } from "../../src/log.ts";
import type { RunManager } from "../../src/run/manager.ts";
import { openSqliteStore } from "../../src/store/sqlite.ts";
import type { Store } from "../../src/store/types.ts";

describe("tools route and the OpenAPI document", () => {
  let store: Store;
  let request: ReturnType<typeof supertest>;
  let token = "";

  before(async () => {
    const loaded = loadConfigWithSources({ env: { OPENRUNNER_JWT_SECRET: "tools-test-secret-0123456789abcdefghijkl" }, cwd: os.tmpdir() + "/openrunner-no-such-dir" });
    store = openSqliteStore({ file: ":memory:" });
    await ensureFirstAdmin({ store, password: "admin-password-1", print: () => {} });
    const deps = createAppDeps({ config: loaded.config, store, bus: new Bus(), log: createSilentLogger(), dataDir: os.tmpdir(), version: "test", listAgentHealth: async () => [] });
    const manager = {} as RunManager; // the batch routes only describe themselves here
    request = supertest(createApp(deps, [createBatchRoutes(deps, manager), createConfigRoutes(deps, { live: new LiveConfig(loaded) }), createToolRoutes(deps)]).callback());
    token = (await request.post("/api/auth/login").send({ username: "admin", password: "admin-password-1" })).body.token;
  });
  after(() => store.close());

  test("GET /api/tools needs a caller and serves the native registry's schemas in offer order", async () => {
    assert.equal((await request.get("/api/tools")).status, 401);
    const res = await request.get("/api/tools").set("Authorization", `Bearer ${token}`);
    assert.equal(res.status, 200);
    assert.deepEqual(res.body.tools, JSON.parse(JSON.stringify(nativeToolSchemas())));
    const names = res.body.tools.map((t: { name: string }) => t.name);
    for (const n of ["read_file", "write_file", "edit_file", "list_dir", "glob", "grep", "bash", "plan"]) assert.ok(names.includes(n), n);
    for (const t of res.body.tools) assert.equal(t.input_schema.type, "object", t.name);
    assert.equal(res.body.tools.find((t: { name: string }) => t.name === "bash").mutating, true);
    assert.equal(res.body.tools.find((t: { name: string }) => t.name === "read_file").mutating, false);
  });

  test("the OpenAPI document has the batch, config and tools operations, with the request schemas", async () => {
    const doc = (await request.get("/api/openapi.json")).body;
    assert.ok(doc.paths["/api/runs/batch"].post.requestBody);
    assert.deepEqual(Object.keys(doc.paths["/api/batches/{id}"]), ["get"]);
    assert.ok(doc.paths["/api/batches/{id}/cancel"].post);
    const sse = doc.paths["/api/batches/{id}/events"].get.responses["200"].content["text/event-stream"];
    assert.deepEqual(sse.schema.anyOf.map((b: { properties: { type: { const: string } } }) => b.properties.type.const), ["run.status", "batch.done"], "the batch stream's own frames, not RunEvents");
    assert.ok(doc.paths["/api/config"].get && doc.paths["/api/config"].patch.requestBody);
    assert.ok(doc.paths["/api/tools"].get);
    const item = doc.paths["/api/runs/batch"].post.requestBody.content["application/json"].schema.properties.runs.items;
    assert.deepEqual(item.properties.metadata.properties.priority.anyOf.map((b: { const: string }) => b.const), ["low", "normal", "high", "critical"]);
    const codes = doc.components.schemas.ErrorResponse.properties.error.properties.code.enum as string[];
    for (const c of ["batch_too_large", "config_not_live", "config_not_persistable"]) assert.ok(codes.includes(c), c);
  });
});
