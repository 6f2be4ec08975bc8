/**
 * The proxy actor: forwards an already authorised request to
 * `127.0.0.1:<port>`.
 *
 * Which part uses what: WebSocket upgrades go through http-proxy-3 (the
 * maintained drop-in for http-proxy: same API and events, TypeScript types,
 * fixes for socket leaks on WebSocket errors; http-proxy itself has had no
 * release since 2020). Plain HTTP uses a lean path on `http.request` with the
 * same semantics as http-proxy-3's web passes and less work per request (no
 * per-header `setHeader` copy of the response, no pass pipeline or extra
 * events, a body-less request ended at once instead of piped, three listeners
 * instead of `pipe`'s eight): with the auth cache, it took the proxy's CPU per
 * 1 KB request from about 400 to about 180 us here (`bench/proxy.ts`).
 *
 * - one keep-alive `http.Agent` (LIFO, bounded idle sockets) for every HTTP
 *   request; the client's hop-by-hop headers (including `Connection: close`)
 *   never reach the target, so the client closing its connection does not
 *   close the pooled upstream one;
 * - bodies are piped both ways (never buffered); a `text/event-stream`
 *   response has its headers flushed at once;
 * - `X-Forwarded-For/Proto/Host/Prefix` are set from this hop (client-sent
 *   values are replaced, not trusted); `Host` becomes `127.0.0.1:<port>`;
 * - `Location` and `Set-Cookie` are rewritten under the prefix (`rewrite.ts`),
 *   on a 101 upgrade response too;
 * - target refused/reset -> 502 `upstream_unavailable`; no byte from the
 *   target for `timeoutMs` before its response headers -> 504 `upstream_timeout`;
 * - WebSocket upgrades go through `ws()` on a fresh connection (not pooled).
 * Options are validated at construction.
 */
import http from "node:http";
import type { Duplex } from "node:stream";
import type { Socket } from "node:net";
import { TLSSocket } from "node:tls";
import { createProxyServer, type ProxyServer } from "http-proxy-3";
import type { Log } from "../log.ts";
import type { ApiErrorCode } from "../errors.ts";
import { dropProxyEvents, type ProxyErrorEvent, type ProxyPublish, type ProxyRoute } from "./events.ts";
import { rewriteResponseHeaders, stripHopByHop } from "./rewrite.ts";
import { PROXY_HOST } from "./target.ts";

const KEEP_CONNECTION = ["connection"] as const;
const KEEP_UPGRADE = ["connection", "upgrade"] as const;

/** Options of {@link createForwarder}. */
export interface ForwarderOptions {
  /** No byte from the target for this long before its response headers: 504. Integer 100..3600000. */
  timeoutMs: number;
  /** Idle keep-alive sockets kept per port. Integer 1..4096. Default 256. */
  maxIdleSockets?: number;
  log: Log;
  publish?: ProxyPublish;
}

/** Where one request goes; produced by the gateway from `parseProxyTarget`. */
export interface ForwardTarget {
  route: ProxyRoute;
  port: number;
  /** Mount prefix, e.g. `/proxy/5173`. */
  prefix: string;
  /** Path and query for the target (prefix stripped, credentials removed). */
  url: string;
  /**
   * The target's address: absent for the host (`127.0.0.1`), else the IPv4 address of the run's
   * container as the engine reported it (never taken from the request).
   */
  host?: string;
}

/** The proxy actor. */
export interface Forwarder {
  /** Forwards an HTTP request; the response is written to `res` (target's, or a 502/504 JSON error). */
  web(req: http.IncomingMessage, res: http.ServerResponse, target: ForwardTarget): void;
  /** Forwards a WebSocket upgrade; on failure writes a 502/504 response to the socket and closes it. */
  ws(req: http.IncomingMessage, socket: Duplex, head: Buffer, target: ForwardTarget): void;
  /** Destroys pooled sockets; later calls are refused with 503. Idempotent. */
  close(): void;
}

interface RequestState {
  target: ForwardTarget;
  clientWantsClose: boolean;
  timedOut: boolean;
  upgrade: boolean;
  /** The request failed (the error was handled once). */
  failed: boolean;
}

/**
 * Creates the proxy actor.
 * @throws TypeError when an option is missing or out of range (the option's name, the expected form, the value).
 * @example
 * const fwd = createForwarder({ timeoutMs: 30000, log });
 * fwd.web(req, res, { route: "port", port: 5173, prefix: "/proxy/5173", url: "/" });
 */
export function createForwarder(opts: ForwarderOptions): Forwarder {
  const timeoutMs = opts?.timeoutMs;
  if (!Number.isInteger(timeoutMs) || timeoutMs < 100 || timeoutMs > 3_600_000) {
    throw new TypeError(`createForwarder: timeoutMs must be an integer from 100 to 3600000, got ${String(timeoutMs)}`);
  }
  const maxIdle = opts.maxIdleSockets ?? 256;
  if (!Number.isInteger(maxIdle) || maxIdle < 1 || maxIdle > 4096) {
    throw new TypeError(`createForwarder: maxIdleSockets must be an integer from 1 to 4096, got ${String(maxIdle)}`);
  }
  if (!opts.log) throw new TypeError("createForwarder: log is required");
  const log = opts.log.getSubLogger({ name: "proxy" });
  const publish = opts.publish ?? dropProxyEvents;
  const agent = new http.Agent({ keepAlive: true, keepAliveMsecs: 1000, maxFreeSockets: maxIdle, scheduling: "lifo" });
  const states = new WeakMap<http.IncomingMessage, RequestState>();
  const targets = new Map<string, { protocol: string; host: string; port: number }>();
  const targetFor = (host: string, port: number) => {
    const key = `${host}:${port}`;
    let t = targets.get(key);
    if (!t) {
      if (targets.size >= 4096) targets.clear(); // container addresses come and go
      targets.set(key, (t = Object.freeze({ protocol: "http:", host, port })));
    }
    return t;
  };
  let closed = false;

  const proxy: ProxyServer = createProxyServer({ agent, xfwd: false, changeOrigin: true, ws: true, followRedirects: false, prependPath: false });

  proxy.on("proxyReqWs", (proxyReq, req) => {
    const st = states.get(req);
    if (!st) return;
    proxyReq.setTimeout(timeoutMs, () => {
      st.timedOut = true;
      proxyReq.destroy();
    });
    // Registered before http-proxy-3's own listener, which writes these headers to the client.
    proxyReq.once("upgrade", (r: http.IncomingMessage) => {
      proxyReq.setTimeout(0);
      rewriteResponseHeaders(r.headers, st.target.prefix, st.target.port);
      publish("proxy.request", { route: st.target.route, port: st.target.port, method: "GET", status: 101, upgrade: true });
    });
    proxyReq.once("response", (r: http.IncomingMessage) => {
      proxyReq.setTimeout(0);
      publish("proxy.request", { route: st.target.route, port: st.target.port, method: "GET", status: r.statusCode ?? 0, upgrade: true });
    });
  });

  // Errors without a per-call callback (should not happen): never crash the process.
  proxy.on("error", (err) => log.warn("proxy error", { err: err instanceof Error ? err.message : String(err) }));

  function prepare(req: http.IncomingMessage, target: ForwardTarget, upgrade: boolean): RequestState {
    const headers = req.headers;
    const host = headers.host;
    const clientWantsClose = stripHopByHop(headers, upgrade ? KEEP_UPGRADE : KEEP_CONNECTION);
    // Overwritten, never passed on: the client's `close` must not close the pooled upstream connection.
    headers.connection = upgrade ? "Upgrade" : "keep-alive";
    const encrypted = req.socket instanceof TLSSocket && req.socket.encrypted;
    headers["x-forwarded-for"] = req.socket.remoteAddress ?? "";
    headers["x-forwarded-proto"] = encrypted ? "https" : "http";
    if (host !== undefined) headers["x-forwarded-host"] = host;
    else delete headers["x-forwarded-host"];
    headers["x-forwarded-prefix"] = target.prefix;
    delete headers["x-forwarded-port"];
    delete headers.forwarded;
    req.url = target.url;
    const st: RequestState = { target, clientWantsClose, timedOut: false, upgrade, failed: false };
    if (upgrade) states.set(req, st); // read by the proxyReqWs listener
    return st;
  }

  function classify(_err: unknown, st: RequestState): "upstream_timeout" | "upstream_unavailable" {
    return st.timedOut ? "upstream_timeout" : "upstream_unavailable";
  }

  function errorEvent(st: RequestState, code: ProxyErrorEvent["code"], err: unknown): ProxyErrorEvent {
    const cause = (err as { code?: unknown })?.code;
    return { route: st.target.route, port: st.target.port, code, cause: typeof cause === "string" ? cause : "error", upgrade: st.upgrade };
  }

  return {
    web(req, res, target) {
      if (closed) return writeJsonError(res, 503, "proxy_closed", "the proxy is shutting down");
      // Decided before the hop-by-hop strip removes Transfer-Encoding: a request without
      // Content-Length or Transfer-Encoding has no body (RFC 9112 6.3).
      const cl = req.headers["content-length"];
      const hasBody = req.headers["transfer-encoding"] !== undefined || (cl !== undefined && cl !== "0");
      const st = prepare(req, target, false);
      const host = target.host ?? PROXY_HOST;
      req.headers.host = `${host}:${target.port}`;
      let proxyReq: http.ClientRequest;
      try {
        proxyReq = http.request({ host, port: target.port, method: req.method, path: target.url, headers: req.headers, agent });
      } catch (err) {
        // A header value Node refuses to send (never from a parsed request, but cheap to guard).
        publish("proxy.error", errorEvent(st, "upstream_unavailable", err));
        publish("proxy.request", { route: target.route, port: target.port, method: req.method ?? "GET", status: 502, upgrade: false });
        return writeJsonError(res, 502, "upstream_unavailable", `the request could not be forwarded to port ${target.port}`);
      }
      let responded = false;
      const fail = (err: unknown) => {
        if (st.failed) return;
        st.failed = true;
        proxyReq.destroy();
        // Finished, or the client went away first (its close destroyed proxyReq): nothing to report.
        if (res.writableFinished || res.destroyed || req.socket.destroyed) return;
        if (responded || res.headersSent) {
          // The target failed mid-response: the client sees a cut connection, never a spliced error.
          publish("proxy.error", errorEvent(st, "upstream_aborted", err));
          res.destroy();
          return;
        }
        const code = classify(err, st);
        publish("proxy.error", errorEvent(st, code, err));
        publish("proxy.request", { route: target.route, port: target.port, method: req.method ?? "GET", status: code === "upstream_timeout" ? 504 : 502, upgrade: false });
        log.debug("upstream failed", { port: target.port, code, cause: (err as { code?: unknown })?.code });
        if (code === "upstream_timeout") writeJsonError(res, 504, "upstream_timeout", `the target on port ${target.port} did not answer within ${timeoutMs} ms`);
        else writeJsonError(res, 502, "upstream_unavailable", `the target on port ${target.port} is not reachable`);
      };
      proxyReq.on("error", fail);
      proxyReq.setTimeout(timeoutMs, () => {
        st.timedOut = true;
        fail(new Error("upstream timeout"));
      });
      // The client went away before the response was complete: stop the upstream request too.
      res.once("close", () => {
        if (!res.writableFinished) proxyReq.destroy();
      });
      proxyReq.once("response", (proxyRes: http.IncomingMessage) => {
        responded = true;
        proxyReq.setTimeout(0);
        proxyRes.once("error", fail);
        const headers = proxyRes.headers;
        stripHopByHop(headers, KEEP_CONNECTION);
        rewriteResponseHeaders(headers, target.prefix, target.port);
        if (req.httpVersion !== "1.0") headers.connection = st.clientWantsClose ? "close" : "keep-alive";
        else delete headers.connection; // Node's server decides for an HTTP/1.0 client
        const status = proxyRes.statusCode ?? 502;
        publish("proxy.request", { route: target.route, port: target.port, method: req.method ?? "GET", status, upgrade: false });
        if (res.destroyed) return void proxyRes.destroy();
        try {
          res.writeHead(status, proxyRes.statusMessage || undefined, headers);
        } catch (err) {
          // A response header Node refuses to write: 502 rather than a crash.
          responded = false;
          return fail(err);
        }
        const type = headers["content-type"];
        // SSE: send the headers now, before the first event arrives.
        if (typeof type === "string" && type.startsWith("text/event-stream")) res.flushHeaders();
        // What proxyRes.pipe(res) does, with three listeners instead of eight (per request, it shows).
        proxyRes.on("data", (chunk: Buffer) => {
          if (!res.write(chunk)) {
            proxyRes.pause();
            res.once("drain", () => proxyRes.resume());
          }
        });
        proxyRes.once("end", () => res.end());
      });
      if (hasBody) {
        req.on("error", fail);
        req.pipe(proxyReq);
      } else {
        proxyReq.end();
      }
    },

    ws(req, socket, head, target) {
      if (closed) return writeRawError(socket, 503, "proxy_closed", "the proxy is shutting down");
      const st = prepare(req, target, true);
      proxy.ws(req, socket as Socket, head, { target: targetFor(target.host ?? PROXY_HOST, target.port), agent: false }, (err) => {
        const code = classify(err, st);
        publish("proxy.error", errorEvent(st, code, err));
        publish("proxy.request", { route: target.route, port: target.port, method: "GET", status: code === "upstream_timeout" ? 504 : 502, upgrade: true });
        if (code === "upstream_timeout") writeRawError(socket, 504, "upstream_timeout", `the target on port ${target.port} did not answer within ${timeoutMs} ms`);
        else writeRawError(socket, 502, "upstream_unavailable", `the target on port ${target.port} is not reachable`);
      });
    },

    close() {
      if (closed) return;
      closed = true;
      agent.destroy();
      proxy.removeAllListeners("proxyReq");
    },
  };
}

/** Writes `{error: {code, message}}` with `status` (the code's own status in `API_ERROR_CODES`) to a server response. */
export function writeJsonError(res: http.ServerResponse, status: number, code: ApiErrorCode, message: string, headers: Record<string, string> = {}): void {
  const body = JSON.stringify({ error: { code, message } });
  res.writeHead(status, { ...headers, "content-type": "application/json; charset=utf-8", "content-length": Buffer.byteLength(body) });
  res.end(body);
}

/** Writes an HTTP/1.1 error response with a JSON body to a raw socket (upgrade path) and ends it. */
export function writeRawError(socket: Duplex, status: number, code: ApiErrorCode, message: string, headers: Record<string, string> = {}): void {
  if (socket.destroyed || !socket.writable) return void socket.destroy();
  const body = JSON.stringify({ error: { code, message } });
  const extra = Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join("");
  socket.end(
    `HTTP/1.1 ${status} ${http.STATUS_CODES[status] ?? "Error"}\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\n${extra}Connection: close\r\n\r\n${body}`,
  );
}
