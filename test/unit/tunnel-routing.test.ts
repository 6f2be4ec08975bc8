/**
 * Public-port HTTP routing (src/tunnel/routing.ts): `?token=` (removed before
 * forwarding), header, Host subdomain, in that order; malformed heads refused.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { findHeadEnd, routeHttpHead, stripTokenParam } from "../../src/tunnel/routing.ts";

const route = (head: string, body = "", domain?: string) => {
  const buf = Buffer.from(head + body, "latin1");
  return routeHttpHead(buf, findHeadEnd(buf), { header: "x-openrunner-client", ...(domain ? { domain } : {}) });
};

describe("tunnel HTTP routing", () => {
  test("stripTokenParam removes every token parameter and keeps the rest in order", () => {
    assert.deepEqual(stripTokenParam("/a?token=t1"), { target: "/a", token: "t1" });
    assert.deepEqual(stripTokenParam("/a?x=1&token=t1&y=2&token=t2"), { target: "/a?x=1&y=2", token: "t1" });
    assert.deepEqual(stripTokenParam("/a?to%6Ben=enc%20id"), { target: "/a", token: "enc id" });
    assert.deepEqual(stripTokenParam("/a?tokens=1"), { target: "/a?tokens=1" });
    assert.deepEqual(stripTokenParam("/a"), { target: "/a" });
  });

  test("by ?token=: the request line is rewritten, headers and body bytes kept", () => {
    const r = route("POST /x?token=app&q=1 HTTP/1.1\r\nHost: relay\r\nContent-Length: 3\r\n\r\n", "abc");
    assert.ok("clientId" in r);
    assert.equal(r.clientId, "app");
    assert.equal(r.head.toString("latin1"), "POST /x?q=1 HTTP/1.1\r\nHost: relay\r\nContent-Length: 3\r\n\r\nabc");
  });

  test("by header, then by Host subdomain (port ignored, case-insensitive)", () => {
    const h = route("GET / HTTP/1.1\r\nX-OpenRunner-Client: c2\r\nHost: c3.tunnel.test\r\n\r\n", "", "tunnel.test");
    assert.ok("clientId" in h && h.clientId === "c2");
    const d = route("GET / HTTP/1.1\r\nHost: C3.Tunnel.Test:8080\r\n\r\n", "", "tunnel.test");
    assert.ok("clientId" in d && d.clientId === "c3");
    const nodomain = route("GET / HTTP/1.1\r\nHost: c3.tunnel.test\r\n\r\n");
    assert.ok("status" in nodomain && nodomain.status === 404);
  });

  test("unchanged head is passed through as the same buffer", () => {
    const buf = Buffer.from("GET / HTTP/1.1\r\nx-openrunner-client: a\r\n\r\n");
    const r = routeHttpHead(buf, findHeadEnd(buf), { header: "x-openrunner-client" });
    assert.ok("head" in r && r.head === buf);
  });

  test("malformed request line: 400", () => {
    const r = route("GARBAGE\r\n\r\n");
    assert.ok("status" in r && r.status === 400);
  });
});
