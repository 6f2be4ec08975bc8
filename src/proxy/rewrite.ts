/**
 * Header rewriting for the port proxy, pure functions:
 * - hop-by-hop headers (RFC 9110 7.6.1, plus `proxy-connection` and every
 *   header the Connection header names) are removed both ways;
 * - `Location` pointing at the target (a root-relative path, or an absolute
 *   URL on 127.0.0.1/localhost:<port>) is moved under the mount prefix; other
 *   locations are left alone (the proxy never follows a redirect);
 * - `Set-Cookie` paths are moved under the prefix (no Path: the browser's default
 *   path is already under it), `Domain` is dropped (host-only
 *   cookies), and a target may not set the proxy's own `openrunner_preview` cookie.
 */
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from "node:http";
import { PREVIEW_COOKIE } from "./target.ts";

const HOP_BY_HOP = ["connection", "keep-alive", "proxy-connection", "proxy-authenticate", "proxy-authorization", "te", "trailer", "transfer-encoding", "upgrade"];

/**
 * Deletes hop-by-hop headers from `headers` in place (and those the
 * Connection header lists). `keep` names headers to leave (for an upgrade:
 * `connection`, `upgrade`; a caller that overwrites `connection` keeps it, as
 * deleting a property makes V8 slow the object down). Returns whether the
 * sender asked to close (`Connection: close`).
 */
export function stripHopByHop(headers: IncomingHttpHeaders | OutgoingHttpHeaders, keep: readonly string[] = []): boolean {
  const connection = headers.connection;
  let close = false;
  if (connection !== undefined) {
    const value = typeof connection === "string" ? connection.toLowerCase() : String(connection).toLowerCase();
    // The two values nearly every request and response carry, without a split (this runs twice per proxied request).
    if (value === "close") close = true;
    else if (value !== "keep-alive") {
      for (const token of value.split(",")) {
        const name = token.trim();
        if (name === "close") close = true;
        else if (name !== "" && !keep.includes(name) && name !== "keep-alive") delete headers[name];
      }
    }
  }
  for (let i = 0; i < HOP_BY_HOP.length; i++) {
    const name = HOP_BY_HOP[i]!;
    if (headers[name] !== undefined && !keep.includes(name)) delete headers[name];
  }
  return close;
}

/**
 * Moves a target's `Location` under `prefix` when it points at the target.
 * @example rewriteLocation("/login?next=/", "/proxy/5173", 5173) // "/proxy/5173/login?next=/"
 * @example rewriteLocation("http://127.0.0.1:5173/a", "/proxy/5173", 5173) // "/proxy/5173/a"
 * @example rewriteLocation("https://example.com/", "/proxy/5173", 5173) // unchanged
 */
export function rewriteLocation(location: string, prefix: string, port: number): string {
  if (location.startsWith("/") && !location.startsWith("//") && !location.startsWith("/\\")) {
    return location.startsWith(`${prefix}/`) || location === prefix ? location : prefix + location;
  }
  const m = /^(?:https?|wss?):\/\/([^/?#]*)([^#]*)(#.*)?$/i.exec(location);
  if (!m) return location;
  const host = m[1]!.toLowerCase();
  const onTarget = host === `127.0.0.1:${port}` || host === `localhost:${port}` || (port === 80 && (host === "127.0.0.1" || host === "localhost"));
  if (!onTarget) return location;
  const rest = m[2] === "" ? "/" : m[2]!.startsWith("/") ? m[2]! : `/${m[2]!}`;
  return prefix + rest + (m[3] ?? "");
}

/**
 * Rewrites one Set-Cookie value for the prefix; null drops the cookie.
 * @example rewriteSetCookie("sid=1; Path=/; Domain=localhost; HttpOnly", "/proxy/5173") // "sid=1; Path=/proxy/5173/; HttpOnly"
 */
export function rewriteSetCookie(cookie: string, prefix: string): string | null {
  const parts = cookie.split(";");
  const first = parts[0] ?? "";
  const eq = first.indexOf("=");
  if ((eq === -1 ? first : first.slice(0, eq)).trim() === PREVIEW_COOKIE) return null;
  const out = [first];
  for (const part of parts.slice(1)) {
    const attr = part.trim();
    const aeq = attr.indexOf("=");
    const name = (aeq === -1 ? attr : attr.slice(0, aeq)).trim().toLowerCase();
    if (name === "domain") continue;
    if (name === "path") {
      const value = aeq === -1 ? "" : attr.slice(aeq + 1).trim();
      out.push(` Path=${value.startsWith("/") ? prefix + value : `${prefix}/`}`);
      continue;
    }
    out.push(` ${attr}`);
  }
  return out.join(";");
}

/**
 * Applies {@link rewriteLocation} and {@link rewriteSetCookie} to a response's headers, in place, and drops
 * `Service-Worker-Allowed`: proxied content shares the dashboard's origin, and that header is what would let a page
 * of a run's port register a service worker for `/` (the dashboard) instead of only under its own proxy path.
 */
export function rewriteResponseHeaders(headers: IncomingHttpHeaders, prefix: string, port: number): void {
  delete headers["service-worker-allowed"];
  const location = headers.location;
  if (typeof location === "string") headers.location = rewriteLocation(location, prefix, port);
  const cookies = headers["set-cookie"];
  if (cookies !== undefined) {
    const rewritten = cookies.map((c) => rewriteSetCookie(c, prefix)).filter((c): c is string => c !== null);
    if (rewritten.length === 0) delete headers["set-cookie"];
    else headers["set-cookie"] = rewritten;
  }
}
