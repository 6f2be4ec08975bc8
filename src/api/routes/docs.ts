/**
 * `GET /api/openapi.json` (the OpenAPI 3.1 document of every mounted route)
 * and `GET /api/docs` (Swagger UI, served from the installed swagger-ui-dist
 * package, never a CDN), both unauthenticated.
 */
import fs from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { Router } from "@koa/router";
import { buildRunEventJsonSchema } from "../../protocol/events.ts";
import type { AppState, RouteModule } from "../context.ts";
import { buildOpenApiDocument, type OperationSpec } from "../openapi.ts";

/** The swagger-ui-dist files `/api/docs/<file>` serves; nothing else in that folder is reachable. */
const ASSETS: Record<string, string> = {
  "swagger-ui.css": "text/css; charset=utf-8",
  "swagger-ui-bundle.js": "application/javascript; charset=utf-8",
  "swagger-ui-standalone-preset.js": "application/javascript; charset=utf-8",
  "favicon-32x32.png": "image/png",
  "favicon-16x16.png": "image/png",
};

const DOCS_HTML = `<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>OpenRunner API</title>
  <link rel="stylesheet" href="/api/docs/swagger-ui.css">
  <link rel="icon" type="image/png" href="/api/docs/favicon-32x32.png">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="/api/docs/swagger-ui-bundle.js"></script>
  <script src="/api/docs/swagger-ui-standalone-preset.js"></script>
  <script src="/api/docs/swagger-initializer.js"></script>
</body>
</html>
`;

const INITIALIZER_JS = `window.onload = function () {
  window.ui = SwaggerUIBundle({
    url: "/api/openapi.json",
    dom_id: "#swagger-ui",
    deepLinking: true,
    presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset],
    layout: "StandaloneLayout",
  });
};
`;

/** Absolute path of the installed swagger-ui-dist package. */
function resolveSwaggerUiDir(): string {
  return path.dirname(createRequire(import.meta.url).resolve("swagger-ui-dist/package.json"));
}

/**
 * Builds the documentation routes.
 * @param opts.operations every other mounted operation; this module adds its own.
 * @throws Error when swagger-ui-dist is not installed, or two operations collide.
 */
export function createDocsRoutes(opts: { version: string; operations: readonly OperationSpec[] }): RouteModule {
  const assetsDir = resolveSwaggerUiDir();
  const router = new Router<AppState>();
  const operations: OperationSpec[] = [
    {
      method: "get",
      path: "/api/openapi.json",
      summary: "This OpenAPI 3.1 document",
      tags: ["system"],
      auth: false,
      responses: { 200: { description: "The OpenAPI document (JSON)" } },
    },
    {
      method: "get",
      path: "/api/docs",
      summary: "Swagger UI for this API (HTML)",
      tags: ["system"],
      auth: false,
      responses: { 200: { description: "An HTML page" } },
    },
  ];
  // Built once, at app creation: operations are static, and a broken spec fails the boot.
  const document = buildOpenApiDocument({
    version: opts.version,
    operations: [...opts.operations, ...operations],
    eventSchema: buildRunEventJsonSchema(),
  });

  router.get("/api/openapi.json", (ctx) => {
    ctx.body = document;
  });
  router.get("/api/docs", (ctx) => {
    ctx.type = "text/html; charset=utf-8";
    ctx.set("X-Content-Type-Options", "nosniff");
    ctx.body = DOCS_HTML;
  });
  router.get("/api/docs/swagger-initializer.js", (ctx) => {
    ctx.type = "application/javascript; charset=utf-8";
    ctx.body = INITIALIZER_JS;
  });
  router.get("/api/docs/:file", (ctx) => {
    const file = ctx.params.file!;
    const type = Object.hasOwn(ASSETS, file) ? ASSETS[file] : undefined;
    if (!type) return; // falls through to the 404 of the error middleware
    ctx.type = type;
    ctx.set("Cache-Control", "public, max-age=86400");
    ctx.set("X-Content-Type-Options", "nosniff");
    ctx.body = fs.createReadStream(path.join(assetsDir, file));
  });

  return { router, operations };
}
