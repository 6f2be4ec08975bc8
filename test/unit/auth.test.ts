/**
 * Auth units: every bad credential is the same 401, the login limiter (per
 * username and per address), the JWT secret file, the first admin, and the
 * option checks of the factories.
 */
import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import jsonwebtoken from "jsonwebtoken";
import supertest from "supertest";
import { Value } from "@sinclair/typebox/value";
import { createApp, createAppDeps } from "../../src/api/app.ts";
import type { AppDeps } from "../../src/api/context.ts";
import { generateApiKey, hashApiKey, isApiKey } from "../../src/auth/api-keys.ts";
import { ensureFirstAdmin } from "../../src/auth/bootstrap.ts";
import { createJwtService } from "../../src/auth/jwt.ts";
import { createAuthMiddleware } from "../../src/auth/middleware.ts";
import { hashPassword, verifyPassword } from "../../src/auth/passwords.ts";
import { createLoginLimiter } from "../../src/auth/rate-limit.ts";
import { loadOrCreateJwtSecret } from "../../src/auth/secret.ts";
import { Bus } from "../../src/bus/bus.ts";
import { ConfigSchema, type Config } from "../../src/config/schema.ts";
import { ConfigError, TooManyRequestsError, UnauthorizedError } from "../../src/errors.ts";
import { createSilentLogger } from "../../src/log.ts";
import { openSqliteStore } from "../../src/store/sqlite.ts";
import type { Store } from "../../src/store/types.ts";

const SECRET = "unit-test-secret-0123456789abcdefghijklmnop";
const OTHER_SECRET = "another-secret-0123456789abcdefghijklmnopqr";

let tmp: string;
before(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), "openrunner-auth-"));
});
after(() => {
  fs.rmSync(tmp, { recursive: true, force: true });
});

function makeDeps(store: Store, over: Partial<Config> = {}): AppDeps {
  const config: Config = { ...Value.Create(ConfigSchema), jwt_secret: SECRET, login_max_attempts: 1000, ...over };
  return createAppDeps({
    config,
    store,
    bus: new Bus(),
    log: createSilentLogger(),
    dataDir: path.join(tmp, "unused"),
    version: "0.0.0-test",
    listAgentHealth: async () => [],
  });
}

function b64url(value: unknown): string {
  return Buffer.from(JSON.stringify(value)).toString("base64url");
}

describe("every bad credential answers the same 401", () => {
  const store = openSqliteStore({ file: ":memory:" });
  const deps = makeDeps(store);
  const request = supertest(createApp(deps).callback());
  let userId = "";
  let goneId = "";
  let expected: unknown;

  before(async () => {
    const password_hash = await hashPassword("password-123");
    userId = (await store.users.create({ username: "alice", password_hash, role: "user" })).id;
    goneId = (await store.users.create({ username: "gone", password_hash, role: "user" })).id;
    const res = await request.get("/api/auth/me");
    assert.equal(res.status, 401);
    expected = res.body;
    assert.deepEqual(expected, { error: { code: "unauthorized", message: "authentication required" } });
  });
  after(() => store.close());

  async function expect401(headers: Record<string, string>, query = ""): Promise<void> {
    const res = await request.get(`/api/auth/me${query}`).set(headers);
    assert.equal(res.status, 401, JSON.stringify(res.body));
    assert.deepEqual(res.body, expected);
    assert.equal(res.headers["www-authenticate"], 'Bearer realm="openrunner"');
    assert.equal(res.text.includes("stack"), false);
  }
  const bearer = (token: string) => ({ Authorization: `Bearer ${token}` });
  const claims = () => ({ role: "user", username: "alice", sub: userId });

  test("a valid JWT is accepted (control) in the header; ?access_token= only where allowed (SSE)", async () => {
    const token = deps.jwt.sign({ id: userId, username: "alice", role: "user" });
    const res = await request.get("/api/auth/me").set(bearer(token));
    assert.equal(res.status, 200);
    assert.deepEqual(res.body, { id: userId, username: "alice", role: "user" });
    const viaQuery = await request.get(`/api/auth/me?access_token=${encodeURIComponent(token)}`);
    assert.equal(viaQuery.status, 401, "query tokens are refused on ordinary routes");
  });

  test("expired token", async () => {
    const token = jsonwebtoken.sign({ ...claims(), exp: Math.floor(Date.now() / 1000) - 30 }, SECRET, { algorithm: "HS256" });
    await expect401(bearer(token));
  });

  test("HS384 and HS512 signed with the same secret", async () => {
    for (const algorithm of ["HS384", "HS512"] as const) {
      await expect401(bearer(jsonwebtoken.sign(claims(), SECRET, { algorithm, expiresIn: 600 })));
    }
  });

  test("alg none, unsigned", async () => {
    const exp = Math.floor(Date.now() / 1000) + 600;
    const token = `${b64url({ alg: "none", typ: "JWT" })}.${b64url({ ...claims(), exp })}.`;
    await expect401(bearer(token));
    await expect401({}, `?access_token=${token}`);
  });

  test("wrong secret", async () => {
    await expect401(bearer(jsonwebtoken.sign(claims(), OTHER_SECRET, { algorithm: "HS256", expiresIn: 600 })));
  });

  test("tampered payload (role raised to admin)", async () => {
    const [header, , signature] = deps.jwt.sign({ id: userId, username: "alice", role: "user" }).split(".");
    const exp = Math.floor(Date.now() / 1000) + 600;
    await expect401(bearer(`${header}.${b64url({ ...claims(), role: "admin", exp })}.${signature}`));
  });

  test("malformed header, garbage and empty tokens", async () => {
    await expect401({ Authorization: "Basic YWxpY2U6cGFzc3dvcmQ=" });
    await expect401({ Authorization: "Bearer" });
    await expect401(bearer("not.a.jwt"));
    await expect401(bearer("x".repeat(5000)));
    await expect401({}, "?access_token=");
  });

  test("unknown and revoked API keys", async () => {
    await expect401(bearer(generateApiKey().key));
    const k = generateApiKey();
    const row = await store.apiKeys.create({ user_id: userId, name: "ci", prefix: k.prefix, key_hash: k.hash });
    const ok = await request.get("/api/auth/me").set(bearer(k.key));
    assert.equal(ok.status, 200, "an active key works (control)");
    assert.ok((await store.apiKeys.listByUser(userId)).find((r) => r.id === row.id)?.last_used_at, "last_used_at touched");
    assert.equal(await store.apiKeys.revoke(row.id, userId), true);
    await expect401(bearer(k.key));
  });

  test("deleted user: both the JWT and the API key stop working", async () => {
    const token = deps.jwt.sign({ id: goneId, username: "gone", role: "user" });
    const k = generateApiKey();
    await store.apiKeys.create({ user_id: goneId, name: "k", prefix: k.prefix, key_hash: k.hash });
    assert.equal((await request.get("/api/auth/me").set(bearer(token))).status, 200);
    assert.equal(await store.users.delete(goneId), true);
    await expect401(bearer(token));
    await expect401(bearer(k.key));
  });
});

describe("jwt service", () => {
  test("rejects a missing or short secret and a bad lifetime at construction", () => {
    assert.throws(() => createJwtService({ secret: "", expiresInSecs: 60 }), ConfigError);
    assert.throws(() => createJwtService({ secret: "short", expiresInSecs: 60 }), ConfigError);
    assert.throws(() => createJwtService({ secret: undefined as unknown as string, expiresInSecs: 60 }), ConfigError);
    assert.throws(() => createJwtService({ secret: SECRET, expiresInSecs: 0 }), ConfigError);
    const err = (() => {
      try {
        createJwtService({ secret: "a-secret-too-short", expiresInSecs: 60 });
      } catch (e) {
        return e as Error;
      }
    })();
    assert.ok(err && !err.message.includes("a-secret-too-short"), "the secret is never in the message");
  });

  test("sign/verify round trip; failures are UnauthorizedError with the cause kept", () => {
    const jwt = createJwtService({ secret: SECRET, expiresInSecs: 60 });
    const token = jwt.sign({ id: "usr_1", username: "bob", role: "admin" });
    assert.deepEqual(jwt.verify(token), { sub: "usr_1", username: "bob", role: "admin" });
    assert.equal(JSON.parse(Buffer.from(token.split(".")[0]!, "base64url").toString()).alg, "HS256");
    const other = createJwtService({ secret: OTHER_SECRET, expiresInSecs: 60 });
    assert.throws(() => other.verify(token), (e: unknown) => e instanceof UnauthorizedError && e.cause instanceof Error);
  });

  test("createAuthMiddleware validates its options when built", () => {
    const jwt = createJwtService({ secret: SECRET, expiresInSecs: 60 });
    assert.throws(() => createAuthMiddleware({ jwt, store: undefined as unknown as Store, log: createSilentLogger() }), /store/);
  });
});

describe("login limiter", () => {
  test("per username, across addresses", async () => {
    const limiter = createLoginLimiter({ maxAttempts: 3, windowSecs: 60 });
    for (let i = 0; i < 3; i++) await limiter.consume({ username: "alice", ip: `10.0.0.${i}` });
    await assert.rejects(limiter.consume({ username: "alice", ip: "10.0.0.9" }), (e: unknown) => {
      assert.ok(e instanceof TooManyRequestsError);
      assert.ok(e.retryAfterS >= 1 && e.retryAfterS <= 60);
      return true;
    });
    await limiter.consume({ username: "bob", ip: "10.0.0.9" });
  });

  test("per address, across usernames", async () => {
    const limiter = createLoginLimiter({ maxAttempts: 3, windowSecs: 60 });
    for (let i = 0; i < 3; i++) await limiter.consume({ username: `user${i}`, ip: "10.1.1.1" });
    await assert.rejects(limiter.consume({ username: "fresh", ip: "10.1.1.1" }), TooManyRequestsError);
    await limiter.consume({ username: "fresh", ip: "10.1.1.2" });
  });

  test("a successful login resets the username's budget", async () => {
    const limiter = createLoginLimiter({ maxAttempts: 2, windowSecs: 60 });
    await limiter.consume({ username: "carol", ip: "10.2.0.1" });
    await limiter.consume({ username: "carol", ip: "10.2.0.2" });
    await limiter.recordSuccess({ username: "carol", ip: "10.2.0.2" });
    await limiter.consume({ username: "carol", ip: "10.2.0.3" });
  });

  test("rejects bad options", () => {
    assert.throws(() => createLoginLimiter({ maxAttempts: 0, windowSecs: 60 }), ConfigError);
    assert.throws(() => createLoginLimiter({ maxAttempts: 5, windowSecs: 1.5 }), ConfigError);
  });

  test("HTTP: 429 with Retry-After, even for the right password, after too many failures", async () => {
    const store = openSqliteStore({ file: ":memory:" });
    await ensureFirstAdmin({ store, password: "right-password", print: () => {} });
    const request = supertest(createApp(makeDeps(store, { login_max_attempts: 3, login_window_secs: 60 })).callback());
    for (let i = 0; i < 3; i++) {
      const res = await request.post("/api/auth/login").send({ username: "admin", password: "wrong" });
      assert.equal(res.status, 401);
    }
    const limited = await request.post("/api/auth/login").send({ username: "admin", password: "right-password" });
    assert.equal(limited.status, 429);
    assert.equal(limited.body.error.code, "rate_limited");
    assert.match(limited.headers["retry-after"] ?? "", /^[1-9][0-9]*$/);
    await store.close();
  });
});

describe("jwt secret file", () => {
  test("created with mode 0600, then reused", () => {
    const dir = path.join(tmp, "data1");
    const first = loadOrCreateJwtSecret(dir);
    const file = path.join(dir, "jwt-secret");
    assert.equal(first.length, 64);
    if (process.platform !== "win32") assert.equal(fs.statSync(file).mode & 0o777, 0o600);
    assert.equal(loadOrCreateJwtSecret(dir), first);
    assert.equal(fs.readFileSync(file, "utf8"), first);
  });

  test("a configured secret wins and writes nothing", () => {
    const dir = path.join(tmp, "data2");
    assert.equal(loadOrCreateJwtSecret(dir, SECRET), SECRET);
    assert.equal(fs.existsSync(path.join(dir, "jwt-secret")), false);
    assert.throws(() => loadOrCreateJwtSecret(dir, "too-short"), ConfigError);
  });

  test("a file readable by others is narrowed to 0600; a short one is refused", { skip: process.platform === "win32" }, () => {
    const dir = path.join(tmp, "data3");
    fs.mkdirSync(dir);
    const file = path.join(dir, "jwt-secret");
    fs.writeFileSync(file, "k".repeat(40), { mode: 0o644 });
    fs.chmodSync(file, 0o644);
    assert.equal(loadOrCreateJwtSecret(dir), "k".repeat(40));
    assert.equal(fs.statSync(file).mode & 0o777, 0o600);
    fs.writeFileSync(file, "short");
    assert.throws(() => loadOrCreateJwtSecret(dir), ConfigError);
  });
});

describe("first admin and credentials", () => {
  test("generated password is printed once and works; a second call does nothing", async () => {
    const store = openSqliteStore({ file: ":memory:" });
    const printed: string[] = [];
    const outcome = await ensureFirstAdmin({ store, print: (m) => printed.push(m) });
    assert.equal(outcome.created, true);
    assert.equal(printed.length, 1);
    const password = /password: (\S+)/.exec(printed[0]!)?.[1];
    assert.ok(password && password.length >= 16);
    const admin = await store.users.getByUsername("admin");
    assert.equal(admin?.role, "admin");
    assert.equal(await verifyPassword(password, admin?.password_hash), true);
    assert.deepEqual(await ensureFirstAdmin({ store, print: (m) => printed.push(m) }), { created: false });
    assert.equal(printed.length, 1);
    await store.close();
  });

  test("two boots racing on one database (PostgreSQL: both see no users): the second resolves created false", async () => {
    const store = openSqliteStore({ file: ":memory:" });
    assert.equal((await ensureFirstAdmin({ store, password: "first-boot-pw", print: () => {} })).created, true);
    // The other boot counted no users before the first one's insert committed.
    const blind = <R extends Store["users"]>(users: R): R => Object.assign(Object.create(users) as R, { count: async () => 0 });
    const racing: Store = Object.assign(Object.create(store) as Store, {
      users: blind(store.users),
      transaction: <T>(fn: (tx: Parameters<Parameters<Store["transaction"]>[0]>[0]) => Promise<T>) => store.transaction((tx) => fn(Object.assign(Object.create(tx), { users: blind(tx.users) }))),
    });
    const printed: string[] = [];
    assert.deepEqual(await ensureFirstAdmin({ store: racing, print: (m) => printed.push(m) }), { created: false });
    assert.deepEqual(printed, [], "no password is shown for an admin that was not created");
    assert.equal(await verifyPassword("first-boot-pw", (await store.users.getByUsername("admin"))?.password_hash), true);
    await store.close();
  });

  test("configured password: nothing printed", async () => {
    const store = openSqliteStore({ file: ":memory:" });
    const printed: string[] = [];
    const outcome = await ensureFirstAdmin({ store, password: "configured-pw", print: (m) => printed.push(m) });
    assert.deepEqual(printed, []);
    assert.equal(outcome.created && outcome.password_generated, false);
    assert.equal(await verifyPassword("configured-pw", (await store.users.getByUsername("admin"))?.password_hash), true);
    await store.close();
  });

  test("verifyPassword: wrong, unknown user, malformed hash are all false", async () => {
    const hash = await hashPassword("s3cret-pass");
    assert.equal(await verifyPassword("s3cret-pass", hash), true);
    assert.equal(await verifyPassword("wrong", hash), false);
    assert.equal(await verifyPassword("s3cret-pass", undefined), false);
    assert.equal(await verifyPassword("s3cret-pass", "not-a-hash"), false);
  });

  test("API keys: or_ + 43 base64url characters, SHA-256 hex stored", () => {
    const k = generateApiKey();
    assert.match(k.key, /^or_[A-Za-z0-9_-]{43}$/);
    assert.equal(k.hash, hashApiKey(k.key));
    assert.match(k.hash, /^[0-9a-f]{64}$/);
    assert.equal(k.prefix, k.key.slice(0, 9));
    assert.ok(isApiKey(k.key));
    assert.notEqual(generateApiKey().key, k.key);
  });
});
