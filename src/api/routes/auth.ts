/**
 * Login and the caller (docs/architecture.md#http-api):
 * `POST /api/auth/login` `{username, password}` -> `{token, token_type: "Bearer", expires_in}`,
 * throttled per username and per address (429 with Retry-After), and the same
 * 401 for an unknown user and a wrong password (both cost one bcrypt compare);
 * `GET /api/auth/me` -> `{id, username, role}`.
 */
import { Router } from "@koa/router";
import { UnauthorizedError } from "../../errors.ts";
import { verifyPassword } from "../../auth/passwords.ts";
import { LoginBody, LoginResponse, MeResponse } from "../../protocol/api.ts";
import type { AppDeps, AppState, RouteModule } from "../context.ts";
import { errorResponses } from "../openapi.ts";
import { validateBody } from "../validate.ts";

/** Builds the auth routes. */
export function createAuthRoutes(deps: Pick<AppDeps, "store" | "jwt" | "limiter" | "auth">): RouteModule {
  const { store, jwt, limiter } = deps;
  const router = new Router<AppState>();

  router.post("/api/auth/login", async (ctx) => {
    const body = validateBody(LoginBody, ctx.request.body);
    const attempt = { username: body.username, ip: ctx.ip };
    await limiter.consume(attempt);
    const user = await store.users.getByUsername(body.username);
    const ok = await verifyPassword(body.password, user?.password_hash);
    if (!user || !ok) throw new UnauthorizedError({ cause: new Error(user ? "wrong password" : "unknown username") });
    await limiter.recordSuccess(attempt);
    ctx.set("Cache-Control", "no-store");
    ctx.body = { token: jwt.sign(user), token_type: "Bearer", expires_in: jwt.expiresInSecs };
  });

  router.get("/api/auth/me", deps.auth, (ctx) => {
    const { id, username, role } = ctx.state.user;
    ctx.body = { id, username, role };
  });

  return {
    router,
    operations: [
      {
        method: "post",
        path: "/api/auth/login",
        summary: "Exchange a username and password for a bearer token (JWT)",
        tags: ["auth"],
        auth: false,
        requestBody: LoginBody,
        responses: { 200: { description: "A token", schema: LoginResponse }, ...errorResponses(400, 401, 413, 415, 429) },
      },
      {
        method: "get",
        path: "/api/auth/me",
        summary: "The authenticated caller",
        tags: ["auth"],
        auth: true,
        responses: { 200: { description: "The caller", schema: MeResponse }, ...errorResponses(401) },
      },
    ],
  };
}
