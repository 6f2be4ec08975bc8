/**
 * Target resolution for the port proxy, a pure function of the raw request
 * line: the only address it ever yields is `127.0.0.1:<port>` with `port`
 * from the allowlist. The port is read from the raw (undecoded) path segment
 * and must be plain decimal digits without a leading zero, so encodings
 * (`%35173`), signs, decimals, hex, IPv6 literals and host names never name a
 * port; the Host header, an absolute-form request line and redirects play no
 * part. The remainder of the path keeps its encoding but may not contain dot
 * segments (`..`, `%2e%2e`) or backslashes.
 */
import { API_ERROR_CODES, AppError } from "../errors.ts";
import type { ProxyRoute } from "./events.ts";

/** The only host the proxy connects to. */
export const PROXY_HOST = "127.0.0.1";
/** Cookie set by a preview link, and the query parameter that carries the link's token. */
export const PREVIEW_COOKIE = "openrunner_preview";
/** Query parameter carrying an API token (removed before forwarding). */
export const ACCESS_TOKEN_PARAM = "access_token";

/** 400 for a proxy path that is malformed (bad port syntax, dot segments, absolute-form request line). */
export class ProxyPathError extends AppError {
  readonly status = API_ERROR_CODES.invalid_proxy_path;
  constructor(message: string) {
    super("invalid_proxy_path", message);
  }
}

/** 403: the port is well-formed but not in `proxy.allowed_ports`. */
export class PortNotAllowedError extends AppError {
  readonly status = API_ERROR_CODES.port_not_allowed;
  constructor(port: number) {
    super("port_not_allowed", `port ${port} is not in proxy.allowed_ports`);
  }
}

/** A parsed proxy request. */
export interface ProxyRequestTarget {
  route: ProxyRoute;
  /** The run id (route "run"), else null. */
  runId: string | null;
  port: number;
  /** The mount prefix, e.g. `/proxy/5173` or `/api/runs/r1/proxy/5173` (no trailing slash). */
  prefix: string;
  /** Path after the prefix, raw, always starting with `/` ("" when the URL was exactly the prefix). */
  path: string;
  /** Raw query string without `?` ("" when none). */
  query: string;
}

const PORT_RE = /^[1-9][0-9]{0,4}$/;
const RUN_ID_RE = /^[A-Za-z0-9_-]{1,64}$/;

/** True when `url` (a raw request target) is under a proxy mount; cheap, for dispatch. */
export function isProxyPath(url: string): boolean {
  return url.startsWith("/proxy/") || (url.startsWith("/api/runs/") && /^\/api\/runs\/[^/?#]*\/proxy(\/|$|\?)/.test(url));
}

/**
 * Parses a raw request target. Returns null when it is not a proxy path.
 * @throws ProxyPathError (400) for a malformed port, run id or path.
 * Allowlist checks are separate ({@link checkPortAllowed}) so authentication can come first.
 */
export function parseProxyTarget(rawUrl: string): ProxyRequestTarget | null {
  if (!rawUrl.startsWith("/")) {
    // Absolute-form (`GET http://evil/…`), authority-form or `*`: never proxied, whatever the path says.
    if (/^[a-z][a-z0-9+.-]*:\/\//i.test(rawUrl) && isProxyPath(pathOfAbsolute(rawUrl))) throw new ProxyPathError("absolute-form request targets are not proxied");
    return null;
  }
  const q = rawUrl.indexOf("?");
  const pathname = q === -1 ? rawUrl : rawUrl.slice(0, q);
  const query = q === -1 ? "" : rawUrl.slice(q + 1);
  let runId: string | null = null;
  let rest: string;
  if (pathname.startsWith("/proxy/")) {
    rest = pathname.slice("/proxy/".length);
  } else {
    const m = /^\/api\/runs\/([^/]*)\/proxy\/(.*)$/s.exec(pathname);
    if (!m) {
      if (/^\/api\/runs\/[^/]*\/proxy$/.test(pathname)) throw new ProxyPathError("missing port: use /api/runs/:id/proxy/:port/");
      return null;
    }
    if (!RUN_ID_RE.test(m[1]!)) throw new ProxyPathError("malformed run id");
    runId = m[1]!;
    rest = m[2]!;
  }
  const slash = rest.indexOf("/");
  const portText = slash === -1 ? rest : rest.slice(0, slash);
  if (!PORT_RE.test(portText)) throw new ProxyPathError("the port must be a decimal number from 1 to 65535 without leading zeros");
  const port = Number(portText);
  if (port > 65535) throw new ProxyPathError("the port must be a decimal number from 1 to 65535 without leading zeros");
  const path = slash === -1 ? "" : rest.slice(slash);
  checkSafePath(path);
  const prefix = runId === null ? `/proxy/${port}` : `/api/runs/${runId}/proxy/${port}`;
  return { route: runId === null ? "port" : "run", runId, port, prefix, path, query };
}

/**
 * @throws PortNotAllowedError (403) when `port` is not allowed.
 */
export function checkPortAllowed(port: number, allowed: ReadonlySet<number>): void {
  if (!allowed.has(port)) throw new PortNotAllowedError(port);
}

/**
 * The path and query sent to the target: the prefix stripped, `access_token`
 * and `openrunner_preview` removed from the query (other parameters kept byte for byte).
 */
export function buildForwardUrl(t: Pick<ProxyRequestTarget, "path" | "query">): string {
  const query = stripQueryParams(t.query, [ACCESS_TOKEN_PARAM, PREVIEW_COOKIE]);
  return (t.path === "" ? "/" : t.path) + (query === "" ? "" : `?${query}`);
}

/** Removes every parameter named in `names` (compared after decoding) from a raw query string. */
export function stripQueryParams(query: string, names: readonly string[]): string {
  if (query === "") return "";
  const kept: string[] = [];
  for (const part of query.split("&")) {
    const eq = part.indexOf("=");
    const name = safeDecode(eq === -1 ? part : part.slice(0, eq));
    if (!names.includes(name)) kept.push(part);
  }
  return kept.join("&");
}

/** The value of one query parameter in a raw query string (first occurrence), decoded. */
export function readQueryParam(query: string, name: string): string | undefined {
  if (query === "") return undefined;
  for (const part of query.split("&")) {
    const eq = part.indexOf("=");
    if (safeDecode(eq === -1 ? part : part.slice(0, eq)) === name) return eq === -1 ? "" : safeDecode(part.slice(eq + 1));
  }
  return undefined;
}

/** Values of cookie `name` in a Cookie header (a browser may send several). */
export function readCookies(header: string | undefined, name: string): string[] {
  if (!header) return [];
  const out: string[] = [];
  for (const part of header.split(";")) {
    const eq = part.indexOf("=");
    if (eq !== -1 && part.slice(0, eq).trim() === name) out.push(part.slice(eq + 1).trim());
  }
  return out;
}

/** The Cookie header without cookie `name`; undefined when nothing is left. */
export function stripCookie(header: string | undefined, name: string): string | undefined {
  if (!header) return header;
  const kept = header.split(";").filter((part) => {
    const eq = part.indexOf("=");
    return (eq === -1 ? part : part.slice(0, eq)).trim() !== name;
  });
  const joined = kept.map((p) => p.trim()).filter((p) => p !== "").join("; ");
  return joined === "" ? undefined : joined;
}

function checkSafePath(path: string): void {
  if (path === "") return;
  if (path.includes("\\")) throw new ProxyPathError("backslashes are not allowed in proxy paths");
  if (!path.includes(".") && !/%2e/i.test(path)) return;
  for (const seg of path.split("/")) {
    const decoded = safeDecode(seg);
    if (decoded === "." || decoded === ".." || decoded.startsWith("../") || decoded.startsWith("..\\") || decoded.endsWith("/..")) {
      throw new ProxyPathError("dot segments are not allowed in proxy paths");
    }
  }
}

function safeDecode(s: string): string {
  if (!s.includes("%") && !s.includes("+")) return s;
  try {
    return decodeURIComponent(s.replace(/\+/g, " "));
  } catch {
    return s;
  }
}

function pathOfAbsolute(url: string): string {
  const m = /^[a-z][a-z0-9+.-]*:\/\/[^/?#]*(\/[^#]*)?/i.exec(url);
  return m?.[1] ?? "/";
}
