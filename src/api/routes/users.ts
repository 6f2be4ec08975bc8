/**
 * User administration, admin only (docs/architecture.md#http-api):
 * `POST /api/users` `{username, password, role?}` -> 201 the user (409 `username_taken`);
 * `GET /api/users` -> `{users: [...]}`;
 * `DELETE /api/users/:id` -> 204 (404 when absent; 409 `cannot_delete_self`).
 * Deleting a user deletes their API keys, runs and events (store cascade).
 * Password hashes never leave the server.
 */
import { Router } from "@koa/router";
import { ConflictError, NotFoundError, ValidationError } from "../../errors.ts";
import { requireAdmin } from "../../auth/middleware.ts";
import { hashPassword, isPasswordTooLong } from "../../auth/passwords.ts";
import { CreateUserBody, UserListResponse, UserView } from "../../protocol/api.ts";
import type { UserRow } from "../../store/types.ts";
import type { AppDeps, AppState, RouteModule } from "../context.ts";
import { errorResponses } from "../openapi.ts";
import { validateBody } from "../validate.ts";

function viewUser(u: UserRow) {
  return { id: u.id, username: u.username, role: u.role, created_at: u.created_at };
}

/** Builds the user administration routes (every route: auth, then admin). */
export function createUserRoutes(deps: Pick<AppDeps, "store" | "auth" | "beforeUserDelete">): RouteModule {
  const { store } = deps;
  const router = new Router<AppState>();
  const admin = [deps.auth, requireAdmin()] as const;

  router.post("/api/users", ...admin, async (ctx) => {
    const body = validateBody(CreateUserBody, ctx.request.body);
    if (isPasswordTooLong(body.password)) {
      throw new ValidationError("invalid request body", [{ path: "/password", message: "must not exceed 72 bytes in UTF-8" }]);
    }
    if (await store.users.getByUsername(body.username)) throw new ConflictError(`username ${body.username} is taken`, "username_taken");
    const password_hash = await hashPassword(body.password);
    // The store answers ConflictError(username_taken) too, when a concurrent request won the race.
    const user = await store.users.create({ username: body.username, password_hash, role: body.role ?? "user" });
    ctx.status = 201;
    ctx.set("Location", `/api/users/${user.id}`);
    ctx.body = viewUser(user);
  });

  router.get("/api/users", ...admin, async (ctx) => {
    ctx.body = { users: (await store.users.list()).map(viewUser) };
  });

  router.delete("/api/users/:id", ...admin, async (ctx) => {
    const id = ctx.params.id!;
    if (id === ctx.state.user.id) throw new ConflictError("an administrator cannot delete their own account", "cannot_delete_self");
    if (!(await store.users.getById(id))) throw new NotFoundError("user");
    await deps.beforeUserDelete?.(id);
    if (!(await store.users.delete(id))) throw new NotFoundError("user");
    ctx.status = 204;
  });

  return {
    router,
    operations: [
      {
        method: "post",
        path: "/api/users",
        summary: "Create a user (admin)",
        tags: ["users"],
        auth: true,
        requestBody: CreateUserBody,
        responses: { 201: { description: "The new user", schema: UserView }, ...errorResponses(400, 401, 403, 409, 413, 415) },
      },
      {
        method: "get",
        path: "/api/users",
        summary: "List users (admin)",
        tags: ["users"],
        auth: true,
        responses: { 200: { description: "All users, oldest first", schema: UserListResponse }, ...errorResponses(401, 403) },
      },
      {
        method: "delete",
        path: "/api/users/:id",
        summary: "Delete a user with their API keys, runs and events (admin; not yourself)",
        tags: ["users"],
        auth: true,
        responses: { 204: { description: "Deleted" }, ...errorResponses(401, 403, 404, 409) },
      },
    ],
  };
}
