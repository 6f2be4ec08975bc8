/**
 * The caller's own API keys (docs/architecture.md#http-api):
 * `POST /api/api-keys` `{name}` -> 201 with `key`, shown this once (only its SHA-256 is stored);
 * `GET /api/api-keys` -> `{api_keys: [...]}` (never the key or its hash);
 * `DELETE /api/api-keys/:id` -> 204, or 404 when absent, not the caller's, or already revoked.
 */
import { Router } from "@koa/router";
import { NotFoundError } from "../../errors.ts";
import { generateApiKey } from "../../auth/api-keys.ts";
import { ApiKeyListResponse, CreateApiKeyBody, CreatedApiKeyResponse } from "../../protocol/api.ts";
import type { ApiKeyRow } from "../../store/types.ts";
import type { AppDeps, AppState, RouteModule } from "../context.ts";
import { errorResponses } from "../openapi.ts";
import { validateBody } from "../validate.ts";

function viewKey(k: ApiKeyRow) {
  return { id: k.id, name: k.name, prefix: k.prefix, created_at: k.created_at, last_used_at: k.last_used_at, revoked_at: k.revoked_at };
}

/** Builds the API key routes (every route authenticated; each user sees only their own keys). */
export function createApiKeyRoutes(deps: Pick<AppDeps, "store" | "auth">): RouteModule {
  const { store } = deps;
  const router = new Router<AppState>();

  router.post("/api/api-keys", deps.auth, async (ctx) => {
    const body = validateBody(CreateApiKeyBody, ctx.request.body);
    const generated = generateApiKey();
    const row = await store.apiKeys.create({ user_id: ctx.state.user.id, name: body.name, prefix: generated.prefix, key_hash: generated.hash });
    ctx.status = 201;
    ctx.set("Cache-Control", "no-store");
    ctx.body = { ...viewKey(row), key: generated.key };
  });

  router.get("/api/api-keys", deps.auth, async (ctx) => {
    ctx.body = { api_keys: (await store.apiKeys.listByUser(ctx.state.user.id)).map(viewKey) };
  });

  router.delete("/api/api-keys/:id", deps.auth, async (ctx) => {
    if (!(await store.apiKeys.revoke(ctx.params.id!, ctx.state.user.id))) throw new NotFoundError("API key");
    ctx.status = 204;
  });

  return {
    router,
    operations: [
      {
        method: "post",
        path: "/api/api-keys",
        summary: "Create an API key for the caller (the key is shown only in this response)",
        tags: ["api-keys"],
        auth: true,
        requestBody: CreateApiKeyBody,
        responses: { 201: { description: "The new key", schema: CreatedApiKeyResponse }, ...errorResponses(400, 401, 413, 415) },
      },
      {
        method: "get",
        path: "/api/api-keys",
        summary: "List the caller's API keys (never the key itself)",
        tags: ["api-keys"],
        auth: true,
        responses: { 200: { description: "The caller's keys", schema: ApiKeyListResponse }, ...errorResponses(401) },
      },
      {
        method: "delete",
        path: "/api/api-keys/:id",
        summary: "Revoke one of the caller's API keys",
        tags: ["api-keys"],
        auth: true,
        responses: { 204: { description: "Revoked" }, ...errorResponses(401, 404) },
      },
    ],
  };
}
