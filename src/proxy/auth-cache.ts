/**
 * A short-lived cache of verified proxy credentials, so a browser loading a
 * dev server's hundred assets through the proxy does not pay a JWT
 * verification and a user lookup per request.
 *
 * - Keyed by the SHA-256 of the token (the cache never holds a token);
 * - an entry lives `ttlMs` (default 5 s), and never past the JWT's own `exp`;
 * - bounded: at most `maxEntries`, least recently used evicted first;
 * - only successes are cached: a wrong token always takes the full check;
 * - optional `scope` (the client's socket): the last token verified on a
 *   keep-alive connection is remembered for that connection (a WeakMap, gone
 *   with the socket), so its next requests skip even the hash; same entry,
 *   same expiry.
 *
 * Consequence, by design: revoking an API key, deleting a user or changing a
 * role takes effect on the proxy within `ttlMs` instead of at once (the rest
 * of the API re-reads the store on every request).
 */
import crypto from "node:crypto";
import type { AuthUser } from "../auth/middleware.ts";

/** Options of {@link createAuthCache}. */
export interface AuthCacheOptions {
  /** Lifetime of an entry, ms; 0 disables the cache. Integer 0..60000. Default 5000. */
  ttlMs?: number;
  /** Entries kept at most. Integer 1..100000. Default 1024. */
  maxEntries?: number;
  /** Clock, ms since the epoch (tests). Default `Date.now`. */
  now?: () => number;
}

/** The cache. */
export interface AuthCache {
  /** The user a token was verified as, if verified less than `ttlMs` ago and not expired. `scope`: see the module comment. */
  get(token: string, scope?: object): AuthUser | undefined;
  /** Records a verified token; `expiresAtMs` (e.g. a JWT's `exp` * 1000) caps the entry's life. */
  set(token: string, user: AuthUser, expiresAtMs?: number, scope?: object): void;
  /** Number of live and stale entries held (for tests). */
  readonly size: number;
}

interface Entry {
  user: AuthUser;
  until: number;
}

/**
 * Creates a cache.
 * @throws TypeError when `ttlMs` or `maxEntries` is out of range.
 */
export function createAuthCache(opts: AuthCacheOptions = {}): AuthCache {
  const ttlMs = opts.ttlMs ?? 5000;
  const maxEntries = opts.maxEntries ?? 1024;
  if (!Number.isInteger(ttlMs) || ttlMs < 0 || ttlMs > 60_000) throw new TypeError(`createAuthCache: ttlMs must be an integer from 0 to 60000, got ${String(ttlMs)}`);
  if (!Number.isInteger(maxEntries) || maxEntries < 1 || maxEntries > 100_000) {
    throw new TypeError(`createAuthCache: maxEntries must be an integer from 1 to 100000, got ${String(maxEntries)}`);
  }
  const now = opts.now ?? Date.now;
  const entries = new Map<string, Entry>();
  const scoped = new WeakMap<object, { token: string; entry: Entry }>();
  // crypto.hash (Node >= 20.12) is the one-shot form, about twice as fast as a Hash object.
  const oneShot = (crypto as { hash?: (alg: string, data: string, enc: "base64") => string }).hash;
  const keyOf = oneShot ? (token: string) => oneShot("sha256", token, "base64") : (token: string) => crypto.createHash("sha256").update(token, "utf8").digest("base64");

  return {
    get(token, scope) {
      if (ttlMs === 0) return undefined;
      if (scope !== undefined) {
        const memo = scoped.get(scope);
        if (memo !== undefined && memo.token === token) {
          if (now() < memo.entry.until) return memo.entry.user;
          scoped.delete(scope);
        }
      }
      const key = keyOf(token);
      const e = entries.get(key);
      if (!e) return undefined;
      entries.delete(key);
      if (now() >= e.until) return undefined;
      entries.set(key, e); // most recently used last
      if (scope !== undefined) scoped.set(scope, { token, entry: e });
      return e.user;
    },
    set(token, user, expiresAtMs, scope) {
      if (ttlMs === 0) return;
      const until = Math.min(now() + ttlMs, expiresAtMs ?? Infinity);
      if (!(until > now())) return;
      const key = keyOf(token);
      const entry = { user: { id: user.id, username: user.username, role: user.role }, until };
      entries.delete(key);
      entries.set(key, entry);
      while (entries.size > maxEntries) entries.delete(entries.keys().next().value!);
      if (scope !== undefined) scoped.set(scope, { token, entry });
    },
    get size() {
      return entries.size;
    },
  };
}

/**
 * The `exp` claim of a JWT that was already verified, ms since the epoch;
 * undefined when absent or unreadable (the caller then relies on the TTL alone).
 */
export function jwtExpiryMs(token: string): number | undefined {
  const a = token.indexOf(".");
  const b = token.indexOf(".", a + 1);
  if (a === -1 || b === -1) return undefined;
  try {
    const exp = (JSON.parse(Buffer.from(token.slice(a + 1, b), "base64url").toString("utf8")) as { exp?: unknown }).exp;
    return typeof exp === "number" && Number.isFinite(exp) ? exp * 1000 : undefined;
  } catch {
    return undefined;
  }
}
