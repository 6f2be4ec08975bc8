/**
 * The proxy's front door, on plain `node:http` (so request bodies stream
 * untouched by the JSON body parser, and the per-request cost stays small):
 * parse the target (`target.ts`), authenticate, authorise, strip the
 * caller's credentials, hand over to the {@link Forwarder}.
 *
 * Authentication, first that applies:
 * 1. `GET|HEAD /api/runs/:id/proxy/:port/…?openrunner_preview=<link token>`:
 *    redeems a preview link: sets an HttpOnly, SameSite=Lax cookie scoped to
 *    that proxy path and redirects (302) to the same URL without the token;
 * 2. the `openrunner_preview` cookie, valid for this run and port (the
 *    request's own `Authorization` header is then the app's and is kept);
 * 3. `Authorization: Bearer` or `?access_token=` (the API's JWT or API key),
 *    which are removed before forwarding.
 * Then: another user's run 404; a docker run 409 `proxy_unavailable` (its
 * container has no network yet); a port outside the allowlist 403.
 */
import type http from "node:http";
import type { Duplex } from "node:stream";
import { TLSSocket } from "node:tls";
import type { AuthUser } from "../auth/middleware.ts";
import { mapError } from "../errors-http.ts";
import { ConflictError, UnauthorizedError } from "../errors.ts";
import type { Log } from "../log.ts";
import { dropProxyEvents, type ProxyPublish } from "./events.ts";
import { writeRawError, type Forwarder } from "./forwarder.ts";
import type { PreviewTokens } from "./preview.ts";
import {
  buildForwardUrl,
  checkPortAllowed,
  isProxyPath,
  parseProxyTarget,
  PREVIEW_COOKIE,
  readCookies,
  readQueryParam,
  stripCookie,
  stripQueryParams,
  type ProxyRequestTarget,
} from "./target.ts";

/** The part of a run the gateway needs. */
export interface ProxyRunView {
  id: string;
  metadata: Record<string, unknown>;
}

/** Options of {@link createProxyGateway}. */
export interface ProxyGatewayOptions {
  allowedPorts: readonly number[];
  forwarder: Forwarder;
  /** Bearer header or `?access_token=` (raw query given) to a user. @throws UnauthorizedError */
  authenticate: (req: http.IncomingMessage, query: string) => Promise<AuthUser>;
  /** Re-reads a user (preview cookie); resolves undefined when deleted. */
  findUser: (userId: string) => Promise<AuthUser | undefined>;
  /** Resolves the run if the caller may see it; rejects with NotFoundError (404) otherwise. */
  getRun: (caller: AuthUser, runId: string) => Promise<ProxyRunView>;
  /**
   * The IPv4 address of a docker run's container, from the engine (any port of the run's own
   * container may be proxied). Absent: docker runs answer 409 `proxy_unavailable`.
   * @throws ProxyUnavailableError when the container is gone or has no network
   */
  containerAddress?: (run: ProxyRunView) => Promise<string>;
  previews: PreviewTokens;
  publish?: ProxyPublish;
  log: Log;
}

/** The proxy's HTTP entry points. */
export interface ProxyGateway {
  /** Serves a proxy path and returns true; returns false (touching nothing) for any other path. */
  handleRequest(req: http.IncomingMessage, res: http.ServerResponse): boolean;
  /** Like {@link handleRequest}, resolving when the response is finished or the connection gone. */
  serve(req: http.IncomingMessage, res: http.ServerResponse): Promise<boolean>;
  /** For the HTTP server's `upgrade` event: proxies a WebSocket upgrade on a proxy path and returns true; false otherwise. */
  handleUpgrade(req: http.IncomingMessage, socket: Duplex, head: Buffer): boolean;
}

/** 409: the docker run's container cannot be reached (no network, not running, or no docker here). */
export class ProxyUnavailableError extends ConflictError {
  constructor(why = "this run's container has no network (docker.network is none), so its ports cannot be proxied") {
    super(why, "proxy_unavailable");
  }
}

/**
 * Creates the gateway.
 * @throws TypeError when an option is missing or a port is not an integer 1-65535.
 */
export function createProxyGateway(opts: ProxyGatewayOptions): ProxyGateway {
  for (const name of ["forwarder", "authenticate", "findUser", "getRun", "previews", "log"] as const) {
    if (!opts?.[name]) throw new TypeError(`createProxyGateway: option ${name} is required`);
  }
  if (!Array.isArray(opts.allowedPorts) || opts.allowedPorts.some((p) => !Number.isInteger(p) || p < 1 || p > 65535)) {
    throw new TypeError(`createProxyGateway: allowedPorts must be integers from 1 to 65535, got ${JSON.stringify(opts.allowedPorts)}`);
  }
  const allowed: ReadonlySet<number> = new Set(opts.allowedPorts);
  const { forwarder, previews } = opts;
  const publish = opts.publish ?? dropProxyEvents;
  const log = opts.log.getSubLogger({ name: "proxy.gateway" });

  /** Resolves to the authorised user, or null when the response (a redirect) was already written. */
  async function authorize(req: http.IncomingMessage, t: ProxyRequestTarget, res: http.ServerResponse | null): Promise<AuthUser | null> {
    if (t.runId !== null) {
      const link = readQueryParam(t.query, PREVIEW_COOKIE);
      if (link !== undefined && res && (req.method === "GET" || req.method === "HEAD")) {
        const grant = previews.verify(link, { runId: t.runId, port: t.port });
        const user = grant ? await opts.findUser(grant.userId) : undefined;
        if (!grant || !user) throw new UnauthorizedError({ cause: new Error("invalid or expired preview link") });
        await authorizeRun(user, t);
        const maxAge = Math.max(1, grant.exp - Math.floor(Date.now() / 1000));
        const secure = req.socket instanceof TLSSocket && req.socket.encrypted ? "; Secure" : "";
        const query = stripQueryParams(t.query, [PREVIEW_COOKIE]);
        res.writeHead(302, {
          "set-cookie": `${PREVIEW_COOKIE}=${link}; Path=${t.prefix}; Max-Age=${maxAge}; HttpOnly; SameSite=Lax${secure}`,
          location: `${t.prefix}${t.path === "" ? "/" : t.path}${query === "" ? "" : `?${query}`}`,
          "cache-control": "no-store",
          "referrer-policy": "no-referrer",
          "content-length": "0",
        });
        res.end();
        publish("proxy.request", { route: t.route, port: t.port, method: req.method, status: 302, upgrade: false });
        return null;
      }
      for (const value of readCookies(req.headers.cookie, PREVIEW_COOKIE)) {
        const grant = previews.verify(value, { runId: t.runId, port: t.port });
        const user = grant ? await opts.findUser(grant.userId) : undefined;
        if (user) {
          checkOrigin(req);
          await authorizeRun(user, t);
          return user;
        }
      }
    }
    const user = await opts.authenticate(req, t.query);
    delete req.headers.authorization;
    if (t.runId !== null) await authorizeRun(user, t);
    else checkPortAllowed(t.port, allowed);
    return user;
  }

  async function authorizeRun(user: AuthUser, t: ProxyRequestTarget): Promise<void> {
    const run = await opts.getRun(user, t.runId!);
    if (run.metadata.isolation === "docker") {
      // Any port of the run's own container; the address comes from the engine (hostOf).
      if (!opts.containerAddress) throw new ProxyUnavailableError("docker is not available on this server, so a container's ports cannot be proxied");
      return;
    }
    checkPortAllowed(t.port, allowed);
  }

  /** Where a request goes: undefined for 127.0.0.1, else the run's container address. */
  async function hostOf(user: AuthUser, t: ProxyRequestTarget): Promise<string | undefined> {
    if (t.runId === null) return undefined;
    const run = await opts.getRun(user, t.runId);
    if (run.metadata.isolation !== "docker") return undefined;
    if (!opts.containerAddress) throw new ProxyUnavailableError("docker is not available on this server, so a container's ports cannot be proxied");
    return opts.containerAddress(run);
  }

  /** Parses, or authenticates and then rethrows the parse error (so an anonymous caller learns nothing but 401). */
  async function parseOrRefuse(req: http.IncomingMessage): Promise<ProxyRequestTarget | null> {
    try {
      return parseProxyTarget(req.url ?? "/");
    } catch (err) {
      const q = (req.url ?? "").indexOf("?");
      await opts.authenticate(req, q === -1 ? "" : (req.url ?? "").slice(q + 1));
      throw err;
    }
  }

  async function serveHttp(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    let t: ProxyRequestTarget | null = null;
    try {
      t = await parseOrRefuse(req);
      if (!t) throw new Error("not a proxy path");
      const user = await authorize(req, t, res);
      if (!user) return;
      const host = await hostOf(user, t);
      const cookie = stripCookie(req.headers.cookie, PREVIEW_COOKIE);
      if (cookie === undefined) delete req.headers.cookie;
      else req.headers.cookie = cookie;
      if (t.path === "") {
        // Relative links of an app served at `/` resolve only under `<prefix>/`.
        res.writeHead(308, { location: `${t.prefix}/${t.query === "" ? "" : `?${t.query}`}`, "content-length": "0" });
        res.end();
        return;
      }
      forwarder.web(req, res, { route: t.route, port: t.port, prefix: t.prefix, url: buildForwardUrl(t), ...(host ? { host } : {}) });
    } catch (err) {
      const mapped = mapError(err);
      if (mapped.status >= 500) log.error("proxy request failed", { url: t?.prefix ?? "?", err: err instanceof Error ? err.message : String(err) });
      publish("proxy.request", { route: t?.route ?? routeOf(req.url), port: t?.port ?? null, method: req.method ?? "GET", status: mapped.status, upgrade: false });
      if (res.headersSent) return void res.destroy();
      // The body was not read; close so an unread upload cannot be mistaken for the next request.
      const body = JSON.stringify(mapped.body);
      res.writeHead(mapped.status, { ...mapped.headers, "content-type": "application/json; charset=utf-8", "content-length": Buffer.byteLength(body), connection: "close" });
      res.end(body);
    }
  }

  return {
    handleRequest(req, res) {
      const url = req.url ?? "/";
      if (url.startsWith("/") ? !isProxyPath(url) : !/^[a-z][a-z0-9+.-]*:\/\//i.test(url)) return false;
      if (!url.startsWith("/")) {
        try {
          if (parseProxyTarget(url) === null) return false;
        } catch {
          // Absolute-form on a proxy path: refused below.
        }
      }
      void serveHttp(req, res);
      return true;
    },

    async serve(req, res) {
      if (!this.handleRequest(req, res)) return false;
      if (!res.writableFinished && !res.destroyed) await new Promise<void>((resolve) => res.once("close", resolve));
      return true;
    },

    handleUpgrade(req, socket, head) {
      const url = req.url ?? "/";
      if (url.startsWith("/") && !isProxyPath(url)) return false;
      let parsed: ProxyRequestTarget | null = null;
      try {
        parsed = parseProxyTarget(url);
        if (!parsed) return false;
      } catch {
        // Authenticated below, then refused with the parse error.
      }
      socket.on("error", () => socket.destroy());
      void (async () => {
        let t: ProxyRequestTarget | null = parsed;
        try {
          t = await parseOrRefuse(req);
          if (!t) throw new Error("not a proxy path");
          const user = await authorize(req, t, null);
          const host = user ? await hostOf(user, t) : undefined;
          const cookie = stripCookie(req.headers.cookie, PREVIEW_COOKIE);
          if (cookie === undefined) delete req.headers.cookie;
          else req.headers.cookie = cookie;
          forwarder.ws(req, socket, head, { route: t.route, port: t.port, prefix: t.prefix, url: buildForwardUrl(t), ...(host ? { host } : {}) });
        } catch (err) {
          const mapped = mapError(err);
          publish("proxy.request", { route: t?.route ?? routeOf(url), port: t?.port ?? null, method: req.method ?? "GET", status: mapped.status, upgrade: true });
          writeRawError(socket, mapped.status, mapped.body.error.code, mapped.body.error.message, mapped.headers);
        }
      })();
      return true;
    },
  };
}

/** A cookie-authenticated request from a page of another origin is refused (WebSocket hijacking, CSRF). */
function checkOrigin(req: http.IncomingMessage): void {
  const origin = req.headers.origin;
  if (origin === undefined) return;
  let host: string;
  try {
    host = new URL(origin).host;
  } catch {
    throw new UnauthorizedError({ cause: new Error("malformed Origin") });
  }
  const forwardedHost = req.headers.host;
  if (host !== forwardedHost) throw new UnauthorizedError({ cause: new Error(`cross-origin request with a preview cookie from ${origin}`) });
}

function routeOf(url: string | undefined): "port" | "run" {
  return url !== undefined && url.includes("/api/runs/") ? "run" : "port";
}
