/**
 * The configuration API, admins only (docs/architecture.md#configuration):
 * `GET /api/config` answers the effective configuration with secrets redacted
 * and where each value came from (default, file, env, flag, api);
 * `PATCH /api/config[?persist=true]` applies a merge patch of live settings
 * without a restart (see `src/config/live.ts`), tells the engine (`onChanged`:
 * the run manager admits what raised limits allow), publishes
 * `config.changed` on the bus (who and what, never a secret value) and, with
 * `persist=true`, writes the patched keys to the configuration file.
 */
import { Router } from "@koa/router";
import { requireAdmin } from "../../auth/middleware.ts";
import type { LiveConfig } from "../../config/live.ts";
import { ConfigView, PatchConfigBody, PatchConfigQuery, PatchConfigResponse, type ConfigChangedEvent } from "../../protocol/config-api.ts";
import type { AppDeps, AppState, RouteModule } from "../context.ts";
import { errorResponses, type OperationSpec } from "../openapi.ts";
import { validateBody, validateQuery } from "../validate.ts";

declare module "../../bus/bus.ts" {
  interface BusEvents {
    /** An admin changed live settings (`PATCH /api/config`). */
    "config.changed": ConfigChangedEvent;
  }
}

/** What the config routes need besides {@link AppDeps}. */
export interface ConfigRoutesOptions {
  /** The server's live configuration (the same object as `deps.config`). */
  live: LiveConfig;
  /** Called after a patch is applied (before the answer): components that cache settings re-read them. */
  onChanged?: () => void;
}

/** Builds the configuration routes (every route: auth, then admin). */
export function createConfigRoutes(deps: AppDeps, opts: ConfigRoutesOptions): RouteModule {
  const router = new Router<AppState>();
  const admin = [deps.auth, requireAdmin()] as const;
  const log = deps.log.getSubLogger({ name: "api.config" });

  router.get("/api/config", ...admin, (ctx) => {
    ctx.body = opts.live.describe();
  });

  router.patch("/api/config", ...admin, (ctx) => {
    const q = validateQuery(PatchConfigQuery, ctx.query);
    const patch = validateBody(PatchConfigBody, ctx.request.body);
    const persisted = q.persist === "true";
    const changes = opts.live.apply(patch, { persist: persisted });
    const user = ctx.state.user;
    if (changes.length > 0) {
      opts.onChanged?.();
      deps.bus.publish("config.changed", { by: `user:${user.username}`, user_id: user.id, changes, persisted, at: new Date().toISOString() });
      log.info("configuration changed", { by: user.username, keys: changes.map((c) => c.key), persisted });
    }
    ctx.body = { ...opts.live.describe(), changed: changes, persisted };
  });

  return { router, operations: configOperations };
}

const configOperations: OperationSpec[] = [
  {
    method: "get",
    path: "/api/config",
    summary: "The effective configuration, secrets redacted, with each value's source (admin)",
    tags: ["config"],
    auth: true,
    responses: { 200: { description: "The configuration", schema: ConfigView }, ...errorResponses(401, 403) },
  },
  {
    method: "patch",
    path: "/api/config",
    summary: "Change live settings without a restart (admin); ?persist=true also writes them to the configuration file",
    description:
      "A JSON merge patch of live settings (`live` in `GET /api/config`: concurrency and queue limits, timeouts, permission defaults, agent settings …), validated against the configuration schema. 400 `config_not_live` (details.key) for any other setting, 400 `validation_failed` for a value the schema refuses, 409 `config_not_persistable` for persist without a configuration file. Audited as `config.changed` on the bus.",
    tags: ["config"],
    auth: true,
    query: PatchConfigQuery,
    requestBody: PatchConfigBody,
    responses: { 200: { description: "Applied", schema: PatchConfigResponse }, ...errorResponses(400, 401, 403, 409, 413, 415) },
  },
];
