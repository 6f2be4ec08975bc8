/**
 * Tunnel framing (src/tunnel/frame.ts): 4-byte big-endian length + JSON; the
 * streaming decoder handles frames split across chunks and packed into one,
 * refuses oversized (from the header alone), empty, non-JSON and unknown frames,
 * and hands back raw bytes following the last frame.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { encodeFrame, FrameDecoder, FrameError, type TunnelMessage } from "../../src/tunnel/frame.ts";

const msgs: TunnelMessage[] = [
  { type: "Register", client_id: "c1", secret: "s", client_key: "k", version: 1 },
  { type: "RegisterResult", ok: true, proxy_port: 17002, heartbeat_ms: 5000 },
  { type: "RequestNewProxyConn", conn_id: "abc" },
  { type: "NewProxyConn", conn_id: "abc", client_id: "c1" },
  { type: "Ping", ts: 1 },
  { type: "Pong", ts: 1 },
];

describe("tunnel frames", () => {
  test("encode: 4-byte big-endian JSON length, then UTF-8 JSON", () => {
    const f = encodeFrame({ type: "Ping", ts: 42 });
    const json = JSON.stringify({ type: "Ping", ts: 42 });
    assert.equal(f.readUInt32BE(0), Buffer.byteLength(json));
    assert.equal(f.subarray(4).toString(), json);
  });

  test("every message round-trips; packed into one chunk", () => {
    const dec = new FrameDecoder();
    assert.deepEqual(dec.push(Buffer.concat(msgs.map((m) => encodeFrame(m)))), msgs);
    assert.equal(dec.buffered, 0);
  });

  test("split at every byte boundary", () => {
    const all = Buffer.concat(msgs.map((m) => encodeFrame(m)));
    for (let cut = 1; cut < all.length; cut++) {
      const dec = new FrameDecoder();
      assert.deepEqual([...dec.push(all.subarray(0, cut)), ...dec.push(all.subarray(cut))], msgs);
    }
    const dec = new FrameDecoder();
    const out: TunnelMessage[] = [];
    for (const b of all) out.push(...dec.push(Buffer.from([b])));
    assert.deepEqual(out, msgs);
  });

  test("multi-byte UTF-8 is counted in bytes", () => {
    const m: TunnelMessage = { type: "RegisterResult", ok: false, error: "é€😀" };
    assert.deepEqual(new FrameDecoder().push(encodeFrame(m)), [m]);
  });

  test("oversized frame refused from its header, before buffering the body", () => {
    const dec = new FrameDecoder(100);
    const head = Buffer.alloc(4);
    head.writeUInt32BE(101);
    assert.throws(() => dec.push(head), (e: unknown) => e instanceof FrameError && e.code === "frame_too_large");
    assert.throws(() => encodeFrame({ type: "RegisterResult", ok: false, error: "x".repeat(200) }, 100), FrameError);
  });

  test("empty, bad JSON and unknown or malformed messages are refused", () => {
    const frame = (json: string) => {
      const b = Buffer.from(json);
      const h = Buffer.alloc(4);
      h.writeUInt32BE(b.length);
      return Buffer.concat([h, b]);
    };
    const code = (buf: Buffer) => {
      try {
        new FrameDecoder().push(buf);
        return "ok";
      } catch (e) {
        return (e as FrameError).code;
      }
    };
    assert.equal(code(Buffer.alloc(4)), "frame_empty");
    assert.equal(code(frame("{not json")), "bad_json");
    assert.equal(code(frame("[1,2]")), "bad_message");
    assert.equal(code(frame('{"type":"Hello"}')), "bad_message");
    assert.equal(code(frame('{"type":"Ping","ts":"x"}')), "bad_message");
    assert.equal(code(frame('{"type":"Register","client_id":"","secret":"s","client_key":"k","version":1}')), "bad_message");
    assert.equal(code(frame(`{"type":"NewProxyConn","conn_id":"${"a".repeat(200)}","client_id":"c"}`)), "bad_message");
  });

  test("limit + takeRest: raw bytes after a frame are handed back untouched", () => {
    const dec = new FrameDecoder();
    const raw = Buffer.from("GET / HTTP/1.1\r\n\r\n");
    const [first] = dec.push(Buffer.concat([encodeFrame(msgs[3]!), raw]), 1);
    assert.deepEqual(first, msgs[3]);
    assert.ok(dec.takeRest().equals(raw));
    assert.equal(dec.buffered, 0);
  });
});
