/**
 * Relay authentication: a shared secret, or a file of per-client tokens. Every
 * comparison is constant-time (both sides hashed to SHA-256, then
 * `timingSafeEqual`, so lengths leak nothing either).
 */
import { createHash, timingSafeEqual } from "node:crypto";
import { readFileSync } from "node:fs";
import { ConfigError } from "../errors.ts";

/** How the relay authenticates clients: one shared secret, or a token per client id. */
export type TunnelAuth = { kind: "secret"; secret: string } | { kind: "tokens"; tokens: ReadonlyMap<string, string> };

const digest = (s: string) => createHash("sha256").update(s, "utf8").digest();

/** Constant-time string equality (independent of where the strings differ and of their lengths). */
export function safeEqual(a: string, b: string): boolean {
  return timingSafeEqual(digest(a), digest(b));
}

/** True when `secret` authenticates `clientId` under `auth`. Unknown ids still cost one compare. */
export function checkClientSecret(auth: TunnelAuth, clientId: string, secret: string): boolean {
  if (auth.kind === "secret") return safeEqual(auth.secret, secret);
  const expected = auth.tokens.get(clientId);
  const ok = safeEqual(expected ?? "\u0000no-such-client", secret);
  return ok && expected !== undefined;
}

/**
 * Parses a tokens file: one `client_id token` (or `client_id:token`) per line,
 * `#` comments and blank lines ignored; or a JSON object `{client_id: token}`.
 * @throws ConfigError naming the file and line when a line is malformed, a token
 *   is shorter than 16 characters, or an id repeats.
 */
export function parseTokensFile(text: string, file = "tokens file"): Map<string, string> {
  const map = new Map<string, string>();
  const add = (id: string, token: string, where: string) => {
    if (!id || token.length < 16) throw new ConfigError(`${file}${where}`, "a client id and a token of at least 16 characters", id);
    if (map.has(id)) throw new ConfigError(`${file}${where}`, "each client id once", id);
    map.set(id, token);
  };
  const trimmed = text.trim();
  if (trimmed.startsWith("{")) {
    const obj = JSON.parse(trimmed) as Record<string, unknown>;
    for (const [id, token] of Object.entries(obj)) add(id, typeof token === "string" ? token : "", ` key ${id}`);
    return map;
  }
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) return;
    const m = /^([^\s:]+)\s*[:\s]\s*(\S+)$/.exec(line);
    if (!m) throw new ConfigError(`${file} line ${i + 1}`, "`client_id token`", line.slice(0, 40));
    add(m[1]!, m[2]!, ` line ${i + 1}`);
  });
  return map;
}

/** Reads and parses a tokens file (see {@link parseTokensFile}). @throws ConfigError, or the fs error. */
export function loadTokensFile(file: string): Map<string, string> {
  return parseTokensFile(readFileSync(file, "utf8"), file);
}
