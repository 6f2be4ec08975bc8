/**
 * In-process HTTP tests of the dashboard route (`src/api/routes/web.ts`):
 * files of a temporary dist folder, the SPA fallback, the API prefixes left
 * to the API, the security and cache headers, path traversal (encoded dots,
 * backslashes, NUL, a link leading out), and 503 `web_not_built` without a build.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, unlinkSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import Koa from "koa";
import supertest from "supertest";
import { Logger, type ILogObj } from "tslog";
import { createErrorMiddleware } from "../../src/api/error-middleware.ts";
import type { AppState } from "../../src/api/context.ts";
import { createWebMiddleware, safeSegments, WEB_CSP } from "../../src/api/routes/web.ts";
import type { Log } from "../../src/log.ts";

const INDEX = '<!doctype html><html><head><script type="module" src="/assets/index-abc123.js"></script></head><body><div id="root"></div></body></html>';

function appFor(distDir: string): Koa<AppState> {
  const app = new Koa<AppState>();
  app.on("error", (err: Error, ctx?: { path?: string; method?: string }) => console.error("KOAERR", ctx?.method, ctx?.path, err.message));
  const log = new Logger<ILogObj>({ type: "hidden" }) as unknown as Log;
  app.use(async (ctx, next) => {
    ctx.state.requestId = "test";
    await next();
  });
  app.use(createErrorMiddleware({ log }));
  app.use(async (ctx, next) => {
    if (ctx.path === "/api/here") ctx.body = { api: true };
    else await next();
  });
  app.use(createWebMiddleware({ distDir }));
  return app;
}

describe("dashboard route", () => {
  let tmp: string;
  let dist: string;
  let request: ReturnType<typeof supertest>;

  before(() => {
    tmp = mkdtempSync(path.join(os.tmpdir(), "web-route-"));
    dist = path.join(tmp, "dist");
    mkdirSync(path.join(dist, "assets"), { recursive: true });
    writeFileSync(path.join(dist, "index.html"), INDEX);
    writeFileSync(path.join(dist, "assets/index-abc123.js"), "console.log('app');\n");
    writeFileSync(path.join(dist, "assets/index-abc123.css"), "body{color:red}\n");
    writeFileSync(path.join(dist, "favicon.svg"), "<svg xmlns='http://www.w3.org/2000/svg'/>");
    writeFileSync(path.join(dist, ".env"), "SECRET=1\n");
    writeFileSync(path.join(tmp, "outside.txt"), "outside the dist folder\n");
    symlinkSync(path.join(tmp, "outside.txt"), path.join(dist, "assets/leak.txt"));
    request = supertest(appFor(dist).callback());
  });
  after(() => rmSync(tmp, { recursive: true, force: true }));

  const assertSecurityHeaders = (res: supertest.Response) => {
    assert.equal(res.headers["content-security-policy"], WEB_CSP);
    for (const d of ["default-src 'self'", "script-src 'self'", "style-src 'self'", "connect-src 'self'", "img-src 'self' data:", "frame-ancestors 'none'", "base-uri 'none'", "object-src 'none'"]) {
      assert.ok(WEB_CSP.split("; ").includes(d), d);
    }
    assert.doesNotMatch(WEB_CSP, /unsafe-inline|unsafe-eval|\*/);
    assert.equal(res.headers["x-content-type-options"], "nosniff");
    assert.equal(res.headers["referrer-policy"], "no-referrer");
  };

  test("/ answers index.html, no-cache, with the security headers", async () => {
    const res = await request.get("/");
    assert.equal(res.status, 200);
    assert.match(res.headers["content-type"] ?? "", /^text\/html/);
    assert.equal(res.text, INDEX);
    assert.equal(res.headers["cache-control"], "no-cache");
    assertSecurityHeaders(res);
  });

  test("hashed assets: their type, an immutable year-long cache; HEAD has no body", async () => {
    const js = await request.get("/assets/index-abc123.js");
    assert.equal(js.status, 200);
    assert.match(js.headers["content-type"] ?? "", /^text\/javascript/);
    assert.equal(js.headers["cache-control"], "public, max-age=31536000, immutable");
    assert.equal(js.text, "console.log('app');\n");
    assertSecurityHeaders(js);
    const css = await request.get("/assets/index-abc123.css");
    assert.match(css.headers["content-type"] ?? "", /^text\/css/);
    const head = await request.head("/assets/index-abc123.js");
    assert.equal(head.status, 200);
    assert.equal(head.headers["content-length"], String("console.log('app');\n".length));
    const icon = await request.get("/favicon.svg");
    assert.equal(icon.headers["cache-control"], "no-cache");
    assert.match(icon.headers["content-type"] ?? "", /^image\/svg\+xml/);
  });

  test("SPA fallback: page paths answer index.html; a missing asset is a 404", async () => {
    for (const p of ["/runs", "/runs/run_01ABC", "/new", "/agents?x=1"]) {
      const res = await request.get(p);
      assert.equal(res.status, 200, p);
      assert.equal(res.text, INDEX, p);
      assert.equal(res.headers["cache-control"], "no-cache", p);
    }
    const missing = await request.get("/assets/nope-123.js");
    assert.equal(missing.status, 404);
    assert.equal(missing.body.error.code, "not_found");
  });

  test("API prefixes and other methods are left to the API", async () => {
    assert.deepEqual((await request.get("/api/here")).body, { api: true });
    for (const p of ["/api/nope", "/health/x", "/metrics/x", "/proxy/5173/", "/mcp", "/api"]) {
      const res = await request.get(p);
      assert.equal(res.status, 404, p);
      assert.equal(res.body.error.code, "not_found", p);
      assert.equal(res.headers["content-security-policy"], undefined, p);
    }
    assert.equal((await request.post("/runs").send({})).status, 404);
    assert.equal((await request.get("/apidocs")).text, INDEX, "only whole prefixes are the API's");
  });

  test("path traversal: dot segments, encoded dots, backslashes, NUL, dot files and links out are never served", async () => {
    for (const p of ["/assets/%2e%2e/%2e%2e/outside.txt", "/%2e%2e/outside.txt", "/assets/..%2f..%2foutside.txt", "/assets/%5c..%5coutside.txt", "/index.html%00.js", "/.env", "/assets/leak.txt", "/%E0%A4%A"]) {
      const res = await request.get(p);
      assert.doesNotMatch(res.text, /outside the dist folder|SECRET=1/, p);
    }
    assert.equal((await request.get("/assets/leak.txt")).status, 404, "a link leading out of the dist folder");
    assert.equal((await request.get("/.env")).status, 404);
    assert.deepEqual(safeSegments("/assets/a.js"), ["assets", "a.js"]);
    assert.deepEqual(safeSegments("/"), []);
    for (const bad of ["/a/../b", "/%2e%2e/x", "/a//b", "/a\\b", "/a%00", "/.git/config", "/%zz"]) assert.equal(safeSegments(bad), undefined, bad);
  });

  test("without a build: 503 web_not_built naming npm run build:web; the API still answers", async () => {
    const empty = path.join(tmp, "empty");
    mkdirSync(empty);
    const bare = supertest(appFor(empty).callback());
    for (const p of ["/", "/runs/x", "/assets/index-abc123.js"]) {
      const res = await bare.get(p);
      assert.equal(res.status, 503, p);
      assert.equal(res.body.error.code, "web_not_built");
      assert.match(res.body.error.message, /npm run build:web/);
    }
    assert.equal((await supertest(appFor(path.join(tmp, "absent")).callback()).get("/")).status, 503);
    assert.deepEqual((await bare.get("/api/here")).body, { api: true });
    // A build that appears later is served without a restart.
    writeFileSync(path.join(empty, "index.html"), INDEX);
    assert.equal((await bare.get("/runs")).text, INDEX);
    unlinkSync(path.join(empty, "index.html"));
    assert.equal((await bare.get("/")).status, 503);
  });
});
