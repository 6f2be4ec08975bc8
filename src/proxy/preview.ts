/**
 * Preview-link tokens: single-purpose, expiring, HMAC-SHA256-signed grants to
 * one run's one proxied port for one user. Not a JWT and not accepted by the
 * API's auth; the API's tokens are not accepted here. The key is derived with
 * HKDF from a given secret (links survive restarts) or is random per process
 * (links die with it).
 *
 * Format: `v1.<base64url(JSON {p:"preview", r, port, u, exp})>.<base64url(mac)>`.
 */
import crypto from "node:crypto";

/** What a preview token grants. */
export interface PreviewGrant {
  runId: string;
  port: number;
  userId: string;
  /** Expiry, epoch seconds. */
  exp: number;
}

/** Issues and verifies preview tokens. */
export interface PreviewTokens {
  issue(grant: PreviewGrant): string;
  /** The grant when `token` is authentic, unexpired and scoped to exactly `runId` and `port`; else null. */
  verify(token: string, scope: { runId: string; port: number }): PreviewGrant | null;
}

const MAX_TOKEN_LENGTH = 1024;

/**
 * @param opts.secret derive the key from this (e.g. the JWT secret), via HKDF-SHA256 with a
 *   purpose-specific info string, so the key is never the secret itself; absent: a random key.
 * @param opts.now clock, epoch ms (tests).
 * @throws TypeError when `secret` is given but shorter than 16 characters.
 */
export function createPreviewTokens(opts: { secret?: string | Buffer; now?: () => number } = {}): PreviewTokens {
  if (opts.secret !== undefined && opts.secret.length < 16) throw new TypeError("createPreviewTokens: secret must be at least 16 characters");
  const key = opts.secret === undefined
    ? crypto.randomBytes(32)
    : Buffer.from(crypto.hkdfSync("sha256", opts.secret, "openrunner", "openrunner proxy preview link v1", 32));
  const now = opts.now ?? (() => Date.now());
  const mac = (payload: string) => crypto.createHmac("sha256", key).update(`preview.v1.${payload}`).digest();
  return {
    issue(g) {
      const payload = Buffer.from(JSON.stringify({ p: "preview", r: g.runId, port: g.port, u: g.userId, exp: g.exp })).toString("base64url");
      return `v1.${payload}.${mac(payload).toString("base64url")}`;
    },
    verify(token, scope) {
      if (typeof token !== "string" || token.length > MAX_TOKEN_LENGTH) return null;
      const parts = token.split(".");
      if (parts.length !== 3 || parts[0] !== "v1") return null;
      const payload = parts[1]!;
      const given = Buffer.from(parts[2]!, "base64url");
      const expected = mac(payload);
      if (given.length !== expected.length || !crypto.timingSafeEqual(given, expected)) return null;
      let body: { p?: unknown; r?: unknown; port?: unknown; u?: unknown; exp?: unknown };
      try {
        body = JSON.parse(Buffer.from(payload, "base64url").toString("utf8"));
      } catch {
        return null;
      }
      if (body.p !== "preview" || typeof body.r !== "string" || typeof body.u !== "string" || typeof body.port !== "number" || typeof body.exp !== "number") return null;
      if (body.r !== scope.runId || body.port !== scope.port) return null;
      if (body.exp * 1000 <= now()) return null;
      return { runId: body.r, port: body.port, userId: body.u, exp: body.exp };
    },
  };
}
