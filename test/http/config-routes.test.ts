/**
 * The configuration API in-process (src/api/routes/config.ts over src/config/live.ts): admins only; GET
 * redacts secrets and names each value's source (default, file, env, flag, then api); PATCH takes live
 * settings only (400 config_not_live), validates with the boot schema and relations, applies in place
 * (the same objects the engine holds), publishes `config.changed` without secret values, and with
 * `?persist=true` rewrites only the patched keys of the YAML file (comments kept).
 */
import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync, chmodSync, statSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import supertest from "supertest";
import YAML from "yaml";
import { createApp, createAppDeps } from "../../src/api/app.ts";
import { createConfigRoutes } from "../../src/api/routes/config.ts";
import { ensureFirstAdmin } from "../../src/auth/bootstrap.ts";
import { hashPassword } from "../../src/auth/passwords.ts";
import { Bus, type BusEvents } from "../../src/bus/bus.ts";
import { LiveConfig } from "../../src/config/live.ts";
import { loadConfigWithSources } from "../../src/config/load.ts";
import { isSecretSetting, REDACTED } from "../../src/config/secrets.ts";
import { createSilentLogger } from "../../src/log.ts";
import { openSqliteStore } from "../../src/store/sqlite.ts";
import type { Store } from "../../src/store/types.ts";

const ADMIN_PASSWORD = "admin-password-1";
const JWT_SECRET = "config-test-secret-0123456789abcdefghijk";
const FILE_TEXT = `# OpenRunner test configuration
max_concurrent_runs: 2 # a comment that must survive
kill_grace_ms: 1500
docker:
  image: test-image:1
agents:
  codex:
    api_key: sk-file-key-123
    env:
      CODEX_TOKEN: tok-abc
    model: gpt-file
`;

describe("config routes", () => {
  let tmp: string;
  let file: string;
  let store: Store;
  let bus: Bus;
  let live: LiveConfig;
  let request: ReturnType<typeof supertest>;
  let changedCalls = 0;
  const published: Array<BusEvents["config.changed"]> = [];
  const tokens: Record<string, string> = {};
  const as = (who: string) => ({ Authorization: `Bearer ${tokens[who]}` });

  before(async () => {
    tmp = mkdtempSync(path.join(os.tmpdir(), "openrunner-config-"));
    file = path.join(tmp, "openrunner.yaml");
    writeFileSync(file, FILE_TEXT);
    const loaded = loadConfigWithSources({
      env: { OPENRUNNER_CONFIG: file, OPENRUNNER_MAX_QUEUED_RUNS_PER_USER: "7", OPENRUNNER_JWT_SECRET: JWT_SECRET, OPENRUNNER_DATA_DIR: tmp },
      flags: { logLevel: "warn" },
      cwd: tmp,
    });
    live = new LiveConfig(loaded);
    store = openSqliteStore({ file: ":memory:" });
    bus = new Bus();
    bus.on("config.changed", (e) => published.push(e));
    await ensureFirstAdmin({ store, password: ADMIN_PASSWORD, print: () => {} });
    await store.users.create({ username: "bob", password_hash: await hashPassword("user-password"), role: "user" });
    const log = createSilentLogger();
    const deps = createAppDeps({ config: loaded.config, store, bus, log, dataDir: tmp, version: "test", listAgentHealth: async () => [] });
    request = supertest(createApp(deps, [createConfigRoutes(deps, { live, onChanged: () => changedCalls++ })]).callback());
    for (const [who, password] of [["admin", ADMIN_PASSWORD], ["bob", "user-password"]] as const) {
      tokens[who] = (await request.post("/api/auth/login").send({ username: who, password })).body.token;
    }
  });
  after(async () => {
    await store.close();
    rmSync(tmp, { recursive: true, force: true });
  });

  test("admins only: 401 without a token, 403 for a user", async () => {
    assert.equal((await request.get("/api/config")).status, 401);
    assert.equal((await request.get("/api/config").set(as("bob"))).status, 403);
    assert.equal((await request.patch("/api/config").set(as("bob")).send({ max_concurrent_runs: 9 })).status, 403);
    assert.equal(live.config.max_concurrent_runs, 2);
  });

  test("GET: secrets redacted, every leaf with its source", async () => {
    const res = await request.get("/api/config").set(as("admin"));
    assert.equal(res.status, 200);
    const { config, sources } = res.body;
    assert.equal(config.jwt_secret, REDACTED);
    assert.equal(config.agents.codex.api_key, REDACTED);
    assert.equal(config.agents.codex.env, REDACTED);
    assert.equal(config.agents.codex.model, "gpt-file");
    assert.doesNotMatch(JSON.stringify(res.body), /sk-file-key-123|tok-abc|config-test-secret/);
    assert.equal(config.max_concurrent_runs, 2);
    assert.equal(sources.max_concurrent_runs, "file");
    assert.equal(sources["docker.image"], "file");
    assert.equal(sources["agents.codex.env"], "file");
    assert.equal(sources.max_queued_runs_per_user, "env");
    assert.equal(sources.jwt_secret, "env");
    assert.equal(sources.log_level, "flag");
    assert.equal(sources.max_concurrent_runs_per_user, "default");
    assert.equal(sources["docker.memory_mb"], "default");
    assert.equal(sources["permissions.default_policy"], "default");
    assert.equal(res.body.file, file);
    assert.ok(res.body.live.includes("max_concurrent_runs") && !res.body.live.includes("addr"));
  });

  test("secret settings are those the schema marks, plus secret-looking names", () => {
    for (const p of ["jwt_secret", "admin_password", "agents.x.api_key", "agents.x.env", "acp_agents.y.env.K", "acp_agents.y.mcp_servers", "providers.openai.api_key", "webhooks.signing_secret", "telemetry.headers"]) assert.equal(isSecretSetting(p.split(".")), true, p);
    for (const p of ["max_concurrent_runs", "agents.x.model", "permissions.timeout_secs", "native.max_tokens", "docker.image"]) assert.equal(isSecretSetting(p.split(".")), false, p);
  });

  test("PATCH: a setting that is not live is 400 config_not_live naming it; nothing changes", async () => {
    const res = await request.patch("/api/config").set(as("admin")).send({ max_concurrent_runs: 5, addr: "0.0.0.0:1" });
    assert.equal(res.status, 400);
    assert.equal(res.body.error.code, "config_not_live");
    assert.deepEqual(res.body.error.details, { key: "addr" });
    assert.equal(live.config.max_concurrent_runs, 2);
    const docker = await request.patch("/api/config").set(as("admin")).send({ docker: { image: "x" } });
    assert.equal(docker.body.error.code, "config_not_live");
  });

  test("PATCH: values are validated with the boot schema and its relations; nothing changes on a refusal", async () => {
    const zero = await request.patch("/api/config").set(as("admin")).send({ max_concurrent_runs: 0 });
    assert.equal(zero.status, 400);
    assert.equal(zero.body.error.code, "validation_failed");
    assert.deepEqual(zero.body.error.details, [{ path: "/max_concurrent_runs", message: "must be >= 1" }]);
    const unknown = await request.patch("/api/config").set(as("admin")).send({ permissions: { default_policy: "maybe" } });
    assert.equal(unknown.status, 400);
    const relation = await request.patch("/api/config").set(as("admin")).send({ default_timeout_secs: 100, max_timeout_secs: 50 });
    assert.equal(relation.status, 400);
    assert.equal(relation.body.error.details.setting, "default_timeout_secs");
    const notObject = await request.patch("/api/config").set(as("admin")).send([1]);
    assert.equal(notObject.status, 400);
    assert.equal(live.config.default_timeout_secs, 300);
    assert.equal(changedCalls, 0);
    assert.equal(published.length, 0);
  });

  test("PATCH applies in place, audits without secret values, and marks the source api", async () => {
    const codex = live.config.agents.codex!;
    const permissions = live.config.permissions;
    const res = await request.patch("/api/config").set(as("admin")).send({ max_concurrent_runs: 5, permissions: { default_policy: "deny" }, agents: { codex: { api_key: "sk-new-secret", model: "gpt-new" } } });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.equal(res.body.persisted, false);
    assert.deepEqual(res.body.changed, [
      { key: "max_concurrent_runs", secret: false, from: 2, to: 5 },
      { key: "permissions.default_policy", secret: false, from: "ask", to: "deny" },
      { key: "agents.codex.api_key", secret: true },
      { key: "agents.codex.model", secret: false, from: "gpt-file", to: "gpt-new" },
    ]);
    assert.equal(live.config.max_concurrent_runs, 5);
    assert.equal(live.config.agents.codex, codex, "the adapter's object is updated, not replaced");
    assert.equal(codex.api_key, "sk-new-secret");
    assert.deepEqual(codex.env, { CODEX_TOKEN: "tok-abc" }, "keys the patch leaves alone stay");
    assert.equal(live.config.permissions, permissions);
    assert.equal(permissions.default_policy, "deny");
    assert.equal(changedCalls, 1);
    assert.equal(published.length, 1);
    assert.equal(published[0]!.by, "user:admin");
    assert.doesNotMatch(JSON.stringify(published[0]), /sk-new-secret|sk-file-key/);
    assert.equal(res.body.sources.max_concurrent_runs, "api");
    assert.equal(res.body.sources["agents.codex.model"], "api");
    assert.equal(res.body.sources["agents.codex.env"], "file");
    assert.equal(res.body.config.agents.codex.api_key, REDACTED);
    assert.equal(readFileSync(file, "utf8"), FILE_TEXT, "not persisted unless asked");
    const same = await request.patch("/api/config").set(as("admin")).send({ max_concurrent_runs: 5 });
    assert.deepEqual(same.body.changed, []);
    assert.equal(published.length, 1, "no change, no event");
  });

  test("PATCH of a secret section (an agent's env) replaces it whole and is audited without its values", async () => {
    const before = published.length;
    const res = await request.patch("/api/config").set(as("admin")).send({ agents: { codex: { env: { NEW_TOKEN: "tok-new-xyz" } } } });
    assert.equal(res.status, 200);
    assert.deepEqual(res.body.changed, [{ key: "agents.codex.env", secret: true }]);
    assert.deepEqual(live.config.agents.codex!.env, { NEW_TOKEN: "tok-new-xyz" }, "replaced, not merged");
    assert.equal(res.body.config.agents.codex.env, REDACTED);
    assert.doesNotMatch(JSON.stringify(published.slice(before)), /tok-new-xyz|tok-abc/);
    await request.patch("/api/config").set(as("admin")).send({ agents: { codex: { env: { CODEX_TOKEN: "tok-abc" } } } }); // as before, for the persist test
  });

  test("PATCH null resets a setting to its default", async () => {
    const res = await request.patch("/api/config").set(as("admin")).send({ kill_grace_ms: null });
    assert.equal(res.status, 200);
    assert.equal(live.config.kill_grace_ms, 5000);
    assert.deepEqual(res.body.changed, [{ key: "kill_grace_ms", secret: false, from: 1500, to: 5000 }]);
  });

  test("PATCH ?persist=true writes only the patched keys into the YAML file, keeping the rest and its comments", async () => {
    const res = await request.patch("/api/config?persist=true").set(as("admin")).send({ max_concurrent_runs: 6, permissions: { timeout_secs: 42 } });
    assert.equal(res.status, 200);
    assert.equal(res.body.persisted, true);
    const text = readFileSync(file, "utf8");
    assert.match(text, /^# OpenRunner test configuration/);
    assert.match(text, /max_concurrent_runs: 6 # a comment that must survive/);
    const parsed = YAML.parse(text);
    assert.equal(parsed.max_concurrent_runs, 6);
    assert.deepEqual(parsed.permissions, { timeout_secs: 42 });
    assert.equal(parsed.kill_grace_ms, 1500, "an unpersisted change stays out of the file");
    assert.deepEqual(parsed.agents.codex, { api_key: "sk-file-key-123", env: { CODEX_TOKEN: "tok-abc" }, model: "gpt-file" });
    assert.equal(parsed.docker.image, "test-image:1");
    const reloaded = loadConfigWithSources({ env: { OPENRUNNER_CONFIG: file, OPENRUNNER_JWT_SECRET: JWT_SECRET }, cwd: tmp });
    assert.equal(reloaded.config.max_concurrent_runs, 6, "the file still loads");
    assert.equal(published.at(-1)!.persisted, true);
  });

  test("PATCH ?persist=true of a secret leaves the file readable by its owner only; other patches keep its mode", async () => {
    chmodSync(file, 0o644);
    assert.equal((await request.patch("/api/config?persist=true").set(as("admin")).send({ max_concurrent_runs: 7 })).status, 200);
    assert.equal(statSync(file).mode & 0o777, 0o644);
    assert.equal((await request.patch("/api/config?persist=true").set(as("admin")).send({ agents: { codex: { api_key: "sk-new-key-456" } } })).status, 200);
    assert.equal(statSync(file).mode & 0o777, 0o600);
  });

  test("persist without a configuration file is 409 config_not_persistable, and nothing is applied", async () => {
    const noFile = new LiveConfig(loadConfigWithSources({ env: {}, cwd: tmp + "/none" }));
    assert.throws(() => noFile.apply({ max_concurrent_runs: 3 }, { persist: true }), (err: { code?: string; status?: number }) => err.code === "config_not_persistable" && err.status === 409);
    assert.equal(noFile.config.max_concurrent_runs, 8);
    assert.deepEqual(noFile.apply({ max_concurrent_runs: 3 }, { persist: false }).map((c) => c.key), ["max_concurrent_runs"]);
  });
});
