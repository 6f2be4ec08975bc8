/**
 * The proxy's verified-token cache (src/proxy/auth-cache.ts): TTL, the JWT's
 * own expiry as a cap, the LRU bound, tokens held only as hashes, and 0 = off.
 * The clock is injected, so nothing here waits.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { createAuthCache, jwtExpiryMs } from "../../src/proxy/auth-cache.ts";

const alice = { id: "u1", username: "alice", role: "user" as const };
const bob = { id: "u2", username: "bob", role: "admin" as const };

describe("proxy auth cache", () => {
  test("a verified token answers until the TTL passes, then is checked again", () => {
    let now = 1_000_000;
    const cache = createAuthCache({ ttlMs: 5000, now: () => now });
    assert.equal(cache.get("tok-a"), undefined);
    cache.set("tok-a", alice);
    assert.deepEqual(cache.get("tok-a"), alice);
    assert.equal(cache.get("tok-b"), undefined, "another token is not a hit");
    now += 4999;
    assert.deepEqual(cache.get("tok-a"), alice);
    now += 1;
    assert.equal(cache.get("tok-a"), undefined, "expired at the TTL");
    assert.equal(cache.size, 0, "an expired entry is dropped when read");
  });

  test("a scope (the client's connection) remembers its last token: same expiry, another token misses", () => {
    let now = 3_000_000;
    const cache = createAuthCache({ ttlMs: 5000, maxEntries: 1, now: () => now });
    const conn = {};
    cache.set("tok-a", alice, undefined, conn);
    assert.deepEqual(cache.get("tok-a", conn), alice);
    assert.equal(cache.get("tok-b", conn), undefined);
    cache.set("tok-b", bob); // evicts tok-a from the shared map (maxEntries 1)
    assert.deepEqual(cache.get("tok-a", conn), alice, "the connection's memo still holds within the TTL");
    assert.equal(cache.get("tok-a"), undefined, "but not for other connections");
    now += 5000;
    assert.equal(cache.get("tok-a", conn), undefined, "and never past the entry's expiry");
  });

  test("the entry never outlives the token's own expiry", () => {
    let now = 2_000_000;
    const cache = createAuthCache({ ttlMs: 5000, now: () => now });
    cache.set("jwt", alice, now + 1000);
    now += 1000;
    assert.equal(cache.get("jwt"), undefined);
    cache.set("already-expired", alice, now - 1);
    assert.equal(cache.size, 0, "an already expired token is not stored");
  });

  test("bounded: the least recently used entry goes first", () => {
    const cache = createAuthCache({ ttlMs: 5000, maxEntries: 2 });
    cache.set("a", alice);
    cache.set("b", bob);
    assert.deepEqual(cache.get("a"), alice); // a is now the most recently used
    cache.set("c", bob);
    assert.equal(cache.size, 2);
    assert.equal(cache.get("b"), undefined, "b was evicted");
    assert.deepEqual(cache.get("a"), alice);
    assert.deepEqual(cache.get("c"), bob);
  });

  test("ttlMs 0 disables it; options are validated", () => {
    const cache = createAuthCache({ ttlMs: 0 });
    cache.set("a", alice);
    assert.equal(cache.get("a"), undefined);
    assert.equal(cache.size, 0);
    assert.throws(() => createAuthCache({ ttlMs: -1 }), TypeError);
    assert.throws(() => createAuthCache({ ttlMs: 60_001 }), TypeError);
    assert.throws(() => createAuthCache({ maxEntries: 0 }), TypeError);
  });

  test("the cache keeps a copy of the user, not the caller's object", () => {
    const cache = createAuthCache();
    const u = { ...alice };
    cache.set("a", u);
    u.role = "admin" as never;
    assert.equal(cache.get("a")?.role, "user");
  });

  test("jwtExpiryMs reads exp from a token's payload; anything else is undefined", () => {
    const payload = Buffer.from(JSON.stringify({ sub: "u1", exp: 1_700_000_000 })).toString("base64url");
    assert.equal(jwtExpiryMs(`h.${payload}.s`), 1_700_000_000_000);
    assert.equal(jwtExpiryMs(`h.${Buffer.from("{}").toString("base64url")}.s`), undefined);
    assert.equal(jwtExpiryMs("or_apikey"), undefined);
    assert.equal(jwtExpiryMs("a.!!!.c"), undefined);
  });
});
