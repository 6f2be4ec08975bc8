/**
 * Routing of HTTP connections on the relay's public port. The first request's
 * head picks the client, in this order: the `token` query parameter (removed
 * from the request line before forwarding), a header (default
 * `x-openrunner-client`), or the first label of the Host header under a
 * configured domain (`<client-id>.tunnel.example.com`). The value is a client id.
 *
 * Routing is per TCP connection: later requests on a keep-alive connection go
 * to the same client unchanged (their bytes are not parsed).
 */

/** Maximum size of a request head the relay reads before routing, in bytes. */
export const MAX_HEAD_BYTES = 16 * 1024;

/** What routing needs to know. */
export interface HttpRoutingOptions {
  /** Lower-case header name carrying the client id. */
  header: string;
  /** Base domain for Host routing (`id.<domain>`), or undefined to disable it. */
  domain?: string;
}

/** The routing outcome: a client id and the head to forward, or an HTTP status to answer with. */
export type HttpRouteResult = { clientId: string; head: Buffer } | { status: 400 | 404 | 431; reason: string };

/** Index just past the `\r\n\r\n` that ends the head, or -1 when not yet complete. */
export function findHeadEnd(buf: Buffer): number {
  const i = buf.indexOf("\r\n\r\n");
  return i < 0 ? -1 : i + 4;
}

/** Removes every `token` parameter from a request target's query; returns the new target and the token. */
export function stripTokenParam(target: string): { target: string; token?: string } {
  const q = target.indexOf("?");
  if (q < 0) return { target };
  const hashAt = target.indexOf("#", q);
  const query = target.slice(q + 1, hashAt < 0 ? undefined : hashAt);
  let token: string | undefined;
  const kept = query.split("&").filter((part) => {
    const eq = part.indexOf("=");
    let name: string;
    try {
      name = decodeURIComponent((eq < 0 ? part : part.slice(0, eq)).replace(/\+/g, " "));
    } catch {
      return true;
    }
    if (name !== "token") return true;
    if (token === undefined) {
      try {
        token = decodeURIComponent(eq < 0 ? "" : part.slice(eq + 1).replace(/\+/g, " "));
      } catch {
        token = "";
      }
    }
    return false;
  });
  const base = target.slice(0, q);
  const rest = kept.length > 0 ? `${base}?${kept.join("&")}` : base;
  return token === undefined ? { target } : { target: rest, token };
}

/**
 * Routes one buffered request head (`buf` holds at least the complete head; the
 * bytes after it are kept as they are).
 */
export function routeHttpHead(buf: Buffer, headEnd: number, opts: HttpRoutingOptions): HttpRouteResult {
  const head = buf.toString("latin1", 0, headEnd);
  const lineEnd = head.indexOf("\r\n");
  const requestLine = head.slice(0, lineEnd);
  const m = /^([A-Z]+) (\S+) (HTTP\/1\.[01])$/.exec(requestLine);
  if (!m) return { status: 400, reason: "malformed request line" };
  const [, method, rawTarget, version] = m as unknown as [string, string, string, string];
  const headers = head.slice(lineEnd + 2, headEnd - 4).split("\r\n");
  const valueOf = (name: string) => {
    for (const h of headers) {
      const c = h.indexOf(":");
      if (c > 0 && h.slice(0, c).trim().toLowerCase() === name) return h.slice(c + 1).trim();
    }
    return undefined;
  };
  const stripped = stripTokenParam(rawTarget);
  let clientId = stripped.token;
  if (!clientId) clientId = valueOf(opts.header);
  if (!clientId && opts.domain) {
    const host = (valueOf("host") ?? "").toLowerCase().replace(/:\d+$/, "");
    const suffix = `.${opts.domain.toLowerCase()}`;
    if (host.endsWith(suffix)) clientId = host.slice(0, -suffix.length);
  }
  if (!clientId) return { status: 404, reason: "no tunnel route (token, header or host)" };
  if (stripped.target === rawTarget) return { clientId, head: buf };
  const newHead = Buffer.from(`${method} ${stripped.target} ${version}${head.slice(lineEnd)}`, "latin1");
  return { clientId, head: Buffer.concat([newHead, buf.subarray(headEnd)]) };
}

/** A minimal HTTP/1.1 response that closes the connection. */
export function httpErrorResponse(status: number, reason: string): string {
  const text: Record<number, string> = { 400: "Bad Request", 404: "Not Found", 431: "Request Header Fields Too Large", 502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout" };
  const body = `${reason}\n`;
  return `HTTP/1.1 ${status} ${text[status] ?? "Error"}\r\ncontent-type: text/plain\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`;
}
