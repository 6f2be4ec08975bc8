/**
 * Koa authentication: `Authorization: Bearer <token>` or `?access_token=<token>`
 * (EventSource cannot send headers), where the token is a JWT from
 * `/api/auth/login` or an API key (`or_…`). The user is re-read from the store
 * on every request, so a deleted user's token stops working at once, and an
 * API key must be active. Every failure is the same {@link UnauthorizedError}
 * (401); the reason is kept as its `cause` for the log.
 */
import type Koa from "koa";
import { ForbiddenError, UnauthorizedError } from "../errors.ts";
import type { Log } from "../log.ts";
import type { Role, Store } from "../store/types.ts";
import { hashApiKey, isApiKey } from "./api-keys.ts";
import type { JwtService } from "./jwt.ts";

/** The authenticated caller, as re-read from the store on every request. */
export interface AuthUser {
  id: string;
  username: string;
  role: Role;
}

/** The part of `ctx.state` the auth middleware sets. */
export interface AuthState {
  user: AuthUser;
}

/** A Koa middleware that reads or sets {@link AuthState}. */
export type AuthMiddleware = Koa.Middleware<AuthState>;

/** Options of {@link createAuthMiddleware}. */
export interface AuthMiddlewareOptions {
  jwt: JwtService;
  store: Store;
  log: Log;
  /** Accept `?access_token=` when no Authorization header is sent (SSE and the proxy only: EventSource cannot send headers). Default false. */
  allowQueryToken?: boolean;
  /** An API key's `last_used_at` is rewritten at most this often, ms. Default 60000. */
  touchIntervalMs?: number;
}

const BEARER = /^Bearer[ ]+([^\s]+)[ ]*$/i;
/** Tokens longer than this are rejected without parsing. */
const MAX_TOKEN_LENGTH = 4096;

/**
 * Builds the authentication middleware; on success sets
 * `ctx.state.user = {id, username, role}` and calls `next()`.
 * @throws TypeError at build time when `jwt`, `store` or `log` is missing.
 * @throws UnauthorizedError (401) per request: no or malformed credentials,
 *   invalid/expired JWT, unknown or revoked API key, deleted user.
 * @example
 * const auth = createAuthMiddleware({ jwt, store, log });
 * router.get("/api/runs", auth, listRuns);
 */
export function createAuthMiddleware(opts: AuthMiddlewareOptions): AuthMiddleware {
  for (const name of ["jwt", "store", "log"] as const) {
    if (!opts?.[name]) throw new TypeError(`createAuthMiddleware: option ${name} is required`);
  }
  const { jwt, store } = opts;
  const allowQueryToken = opts.allowQueryToken ?? false;
  const touchIntervalMs = opts.touchIntervalMs ?? 60_000;
  if (!Number.isInteger(touchIntervalMs) || touchIntervalMs < 0) {
    throw new TypeError(`createAuthMiddleware: touchIntervalMs must be an integer >= 0, got ${String(touchIntervalMs)}`);
  }

  /** Resolves the caller of `token`; rejects with UnauthorizedError. */
  async function authenticate(token: string): Promise<AuthUser> {
    if (token.length > MAX_TOKEN_LENGTH) throw unauthorized("token too long");
    let userId: string;
    if (isApiKey(token)) {
      const key = await store.apiKeys.getActiveByHash(hashApiKey(token));
      if (!key) throw unauthorized("unknown or revoked API key");
      const now = Date.now();
      if (!key.last_used_at || now - Date.parse(key.last_used_at) >= touchIntervalMs) {
        await store.apiKeys.touch(key.id, new Date(now).toISOString());
      }
      userId = key.user_id;
    } else {
      userId = jwt.verify(token).sub;
    }
    const user = await store.users.getById(userId);
    if (!user) throw unauthorized("user no longer exists");
    return { id: user.id, username: user.username, role: user.role };
  }

  return async (ctx, next) => {
    const header = ctx.get("Authorization");
    let token: string | undefined;
    if (header) {
      token = BEARER.exec(header)?.[1];
      if (!token) throw unauthorized("malformed Authorization header");
    } else if (allowQueryToken) {
      const q = ctx.query.access_token;
      if (typeof q === "string" && q) token = q;
    }
    if (!token) throw unauthorized("no credentials");
    ctx.state.user = await authenticate(token);
    await next();
  };
}

/**
 * Allows only administrators; put it after the auth middleware.
 * @throws UnauthorizedError (401) when no user is set (auth middleware missing).
 * @throws ForbiddenError (403) when the caller is not an admin.
 */
export function requireAdmin(): AuthMiddleware {
  return async (ctx, next) => {
    const user = ctx.state.user as AuthUser | undefined;
    if (!user) throw unauthorized("requireAdmin used without authentication");
    if (user.role !== "admin") throw new ForbiddenError("administrator role required");
    await next();
  };
}

function unauthorized(reason: string): UnauthorizedError {
  return new UnauthorizedError({ cause: new Error(reason) });
}
