/**
 * The port proxy's response header rewriting (src/proxy/rewrite.ts): redirects and cookies kept
 * under the run's proxy path, and no service worker allowed to claim a scope above it.
 */
import assert from "node:assert/strict";
import type { IncomingHttpHeaders } from "node:http";
import { test } from "node:test";
import { rewriteResponseHeaders } from "../../src/proxy/rewrite.ts";

const PREFIX = "/api/runs/run_1/proxy/3000";

test("Service-Worker-Allowed is dropped: a proxied page cannot register a worker for the dashboard's scope", () => {
  const headers: IncomingHttpHeaders = { "service-worker-allowed": "/", "content-type": "application/javascript" };
  rewriteResponseHeaders(headers, PREFIX, 3000);
  assert.equal(headers["service-worker-allowed"], undefined);
  assert.equal(headers["content-type"], "application/javascript");
});

test("a root-relative redirect and a cookie stay under the run's proxy path", () => {
  const headers: IncomingHttpHeaders = { location: "/login", "set-cookie": ["sid=1; Path=/"] };
  rewriteResponseHeaders(headers, PREFIX, 3000);
  assert.equal(headers.location, `${PREFIX}/login`);
  assert.match(headers["set-cookie"]![0]!, new RegExp(`Path=${PREFIX.replace(/\//g, "\\/")}`));
});
