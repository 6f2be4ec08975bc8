/**
 * API keys: `or_` followed by 32 random bytes in base64url (46 characters in
 * all). Only the SHA-256 hex digest is stored; the key itself is shown once,
 * when it is created.
 */
import crypto from "node:crypto";

/** Every API key starts with this; the auth middleware uses it to tell keys from JWTs. */
export const API_KEY_PREFIX = "or_";

/** How many characters of a key are kept as its display `prefix` (`or_` + 6). */
const DISPLAY_PREFIX_LENGTH = API_KEY_PREFIX.length + 6;

/** A freshly generated key: `key` goes to the user once; `hash` and `prefix` go to the store. */
export interface GeneratedApiKey {
  key: string;
  /** SHA-256 hex of `key`. */
  hash: string;
  /** First characters of `key`, for listings (e.g. `or_ab12cd`). */
  prefix: string;
}

/** Generates a new API key with its stored hash and display prefix. */
export function generateApiKey(): GeneratedApiKey {
  const key = API_KEY_PREFIX + crypto.randomBytes(32).toString("base64url");
  return { key, hash: hashApiKey(key), prefix: key.slice(0, DISPLAY_PREFIX_LENGTH) };
}

/** SHA-256 hex digest of an API key, as stored in `api_keys.key_hash`. */
export function hashApiKey(key: string): string {
  return crypto.createHash("sha256").update(key, "utf8").digest("hex");
}

/** True when `token` looks like an API key (starts with {@link API_KEY_PREFIX}). */
export function isApiKey(token: string): boolean {
  return token.startsWith(API_KEY_PREFIX);
}
