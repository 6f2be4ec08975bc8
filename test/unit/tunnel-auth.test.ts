/**
 * Tunnel authentication and client ids: constant-time compares, tokens files,
 * UUID v5 against the RFC 4122 / Python uuid5 vector, stable default id.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { checkClientSecret, parseTokensFile, safeEqual } from "../../src/tunnel/auth.ts";
import { defaultClientId, uuidV5 } from "../../src/tunnel/client-id.ts";
import { ConfigError } from "../../src/errors.ts";

describe("tunnel auth", () => {
  test("safeEqual: equal, different, different lengths", () => {
    assert.equal(safeEqual("abc", "abc"), true);
    assert.equal(safeEqual("abc", "abd"), false);
    assert.equal(safeEqual("abc", "abcd"), false);
    assert.equal(safeEqual("", ""), true);
  });

  test("shared secret and per-client tokens", () => {
    assert.equal(checkClientSecret({ kind: "secret", secret: "s" }, "any", "s"), true);
    assert.equal(checkClientSecret({ kind: "secret", secret: "s" }, "any", "t"), false);
    const tokens = { kind: "tokens" as const, tokens: new Map([["a", "ta"]]) };
    assert.equal(checkClientSecret(tokens, "a", "ta"), true);
    assert.equal(checkClientSecret(tokens, "b", "ta"), false);
    assert.equal(checkClientSecret(tokens, "b", "\u0000no-such-client"), false);
  });

  test("tokens file: lines, comments, JSON; malformed lines name the line", () => {
    const m = parseTokensFile("# relay tokens\nalpha 0123456789abcdef\n\nbeta:fedcba9876543210\n", "t.txt");
    assert.deepEqual([...m], [["alpha", "0123456789abcdef"], ["beta", "fedcba9876543210"]]);
    assert.deepEqual([...parseTokensFile('{"a":"0123456789abcdef"}')], [["a", "0123456789abcdef"]]);
    assert.throws(() => parseTokensFile("alpha short\n", "t.txt"), (e: unknown) => e instanceof ConfigError && /t\.txt line 1/.test(e.message));
    assert.throws(() => parseTokensFile("a 0123456789abcdef\na 0123456789abcdef\n"), ConfigError);
    assert.throws(() => parseTokensFile("only-one-field\n"), ConfigError);
  });
});

describe("tunnel client id", () => {
  test("uuidV5 matches the known vector (DNS namespace, www.example.com)", () => {
    assert.equal(uuidV5("www.example.com", "6ba7b810-9dad-11d1-80b4-00c04fd430c8"), "2ed6657d-e927-568b-95e1-2665a8aea6a2");
  });

  test("default id: stable, version 5, RFC variant, differs per user", () => {
    const a = defaultClientId({ hostname: "h", machineId: "m", user: "u" });
    assert.equal(a, defaultClientId({ hostname: "h", machineId: "m", user: "u" }));
    assert.match(a, /^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    assert.notEqual(a, defaultClientId({ hostname: "h", machineId: "m", user: "v" }));
    assert.equal(defaultClientId(), defaultClientId());
  });
});
