/**
 * The caller's own webhooks (everyone, admins included, sees only their own):
 * `POST /api/webhooks` `{url, events, secret?}` -> 201 with the `secret` (generated
 * when not given), shown this once; `GET /api/webhooks`; `GET /api/webhooks/:id`;
 * `DELETE /api/webhooks/:id` -> 204; `GET /api/webhooks/:id/deliveries` -> the
 * newest deliveries with every attempt. The target is checked at registration
 * (allowlist, DNS, internal addresses; see `src/webhooks/target.ts`) and again at
 * every delivery. Deliveries are described in `src/webhooks/dispatcher.ts`.
 */
import { Router } from "@koa/router";
import { ConflictError, NotFoundError, ValidationError } from "../../errors.ts";
import type { WebhookRow } from "../../store/types.ts";
import { CreatedWebhookResponse, CreateWebhookBody, DeliveriesQuery, DeliveryListResponse, MAX_WEBHOOKS_PER_USER, WebhookListResponse, WebhookView } from "../../protocol/webhooks.ts";
import { generateWebhookSecret } from "../../webhooks/signing.ts";
import { resolveWebhookTarget, type LookupAll } from "../../webhooks/target.ts";
import type { AppDeps, AppState, RouteModule } from "../context.ts";
import { errorResponses } from "../openapi.ts";
import { validateBody, validateQuery } from "../validate.ts";

function viewHook(h: WebhookRow) {
  return { id: h.id, url: h.url, events: h.events, created_at: h.created_at };
}

/** Builds the webhook routes. `lookup` replaces DNS resolution (tests). */
export function createWebhookRoutes(deps: Pick<AppDeps, "store" | "auth" | "config">, opts: { lookup?: LookupAll } = {}): RouteModule {
  const { store } = deps;
  const router = new Router<AppState>();
  /** Resolves the caller's webhook. @throws NotFoundError */
  const own = async (id: string, userId: string): Promise<WebhookRow> => {
    const h = await store.webhooks.get(id);
    if (!h || h.user_id !== userId) throw new NotFoundError("webhook");
    return h;
  };

  router.post("/api/webhooks", deps.auth, async (ctx) => {
    const body = validateBody(CreateWebhookBody, ctx.request.body);
    if ((await store.webhooks.listByUser(ctx.state.user.id)).length >= MAX_WEBHOOKS_PER_USER) throw new ConflictError(`at most ${MAX_WEBHOOKS_PER_USER} webhooks per user`, "webhook_limit_reached");
    await resolveWebhookTarget(body.url, deps.config.webhooks, opts.lookup);
    const secret = body.secret ?? generateWebhookSecret();
    const row = await store.webhooks.create({ user_id: ctx.state.user.id, url: body.url, events: body.events, secret });
    ctx.status = 201;
    ctx.set("Location", `/api/webhooks/${row.id}`);
    ctx.set("Cache-Control", "no-store");
    ctx.body = { ...viewHook(row), secret };
  });

  router.get("/api/webhooks", deps.auth, async (ctx) => {
    ctx.body = { webhooks: (await store.webhooks.listByUser(ctx.state.user.id)).map(viewHook) };
  });

  router.get("/api/webhooks/:id", deps.auth, async (ctx) => {
    ctx.body = viewHook(await own(ctx.params.id!, ctx.state.user.id));
  });

  router.delete("/api/webhooks/:id", deps.auth, async (ctx) => {
    if (!(await store.webhooks.delete(ctx.params.id!, ctx.state.user.id))) throw new NotFoundError("webhook");
    ctx.status = 204;
  });

  router.get("/api/webhooks/:id/deliveries", deps.auth, async (ctx) => {
    const q = validateQuery(DeliveriesQuery, ctx.query);
    const limit = q.limit === undefined ? 50 : Number(q.limit);
    if (limit < 1 || limit > 500) throw new ValidationError("limit must be from 1 to 500", { value: q.limit });
    const hook = await own(ctx.params.id!, ctx.state.user.id);
    ctx.body = {
      deliveries: (await store.webhooks.listDeliveries(hook.id, limit)).map((d) => ({
        id: d.id,
        run_id: d.run_id,
        event_type: d.event_type,
        event_id: d.event_id,
        status: d.status,
        attempts: d.attempt_log.map((a) => ({ attempt: a.attempt, at: a.at, status_code: a.status_code, error: a.error, duration_ms: a.duration_ms })),
        created_at: d.created_at,
        updated_at: d.updated_at,
      })),
    };
  });

  return {
    router,
    operations: [
      {
        method: "post",
        path: "/api/webhooks",
        summary: "Register a webhook for the caller's runs (the secret is shown only in this response)",
        description:
          "Deliveries: POST JSON `{id, type, run_id, event, delivered_at}` with `X-OpenRunner-Event`, `X-OpenRunner-Delivery` and `X-OpenRunner-Signature: t=<unix s>,v1=<hex HMAC-SHA256 of \"<t>.<body>\">`. 400 `webhook_url_invalid`, `webhook_target_not_allowed` (host not allowed, or an internal address), `webhook_target_unresolvable`; 409 `webhook_limit_reached`.",
        tags: ["webhooks"],
        auth: true,
        requestBody: CreateWebhookBody,
        responses: { 201: { description: "The new webhook and its secret", schema: CreatedWebhookResponse }, ...errorResponses(400, 401, 409, 413, 415) },
      },
      {
        method: "get",
        path: "/api/webhooks",
        summary: "List the caller's webhooks (never their secrets)",
        tags: ["webhooks"],
        auth: true,
        responses: { 200: { description: "The caller's webhooks", schema: WebhookListResponse }, ...errorResponses(401) },
      },
      {
        method: "get",
        path: "/api/webhooks/:id",
        summary: "One of the caller's webhooks",
        tags: ["webhooks"],
        auth: true,
        responses: { 200: { description: "The webhook", schema: WebhookView }, ...errorResponses(401, 404) },
      },
      {
        method: "delete",
        path: "/api/webhooks/:id",
        summary: "Delete one of the caller's webhooks and its delivery history",
        tags: ["webhooks"],
        auth: true,
        responses: { 204: { description: "Deleted" }, ...errorResponses(401, 404) },
      },
      {
        method: "get",
        path: "/api/webhooks/:id/deliveries",
        summary: "A webhook's newest deliveries, each with every attempt (status code or error)",
        tags: ["webhooks"],
        auth: true,
        query: DeliveriesQuery,
        responses: { 200: { description: "Deliveries, newest first", schema: DeliveryListResponse }, ...errorResponses(400, 401, 404) },
      },
    ],
  };
}
