/**
 * The Docker stream demultiplexer (src/container/demux.ts): frames split at
 * any byte, empty frames, interleaving, a non-multiplexed stream, and
 * backpressure (the source is paused while a reader does not read).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { PassThrough, type Readable } from "node:stream";
import { demuxDockerStream } from "../../src/container/demux.ts";

function frame(type: 1 | 2, payload: string | Buffer): Buffer {
  const body = typeof payload === "string" ? Buffer.from(payload) : payload;
  const h = Buffer.alloc(8);
  h[0] = type;
  h.writeUInt32BE(body.length, 4);
  return Buffer.concat([h, body]);
}

function collect(s: Readable): Promise<string> {
  let t = "";
  s.setEncoding("utf8").on("data", (d: string) => (t += d));
  return new Promise((r) => s.once("end", () => r(t)));
}

test("frames split at every possible byte boundary come out whole and in order", async () => {
  const wire = Buffer.concat([frame(1, "hello\n"), frame(2, "oops\n"), frame(1, ""), frame(1, "wörld\n"), frame(2, "x".repeat(1000))]);
  for (let cut = 1; cut < wire.length; cut += 7) {
    const src = new PassThrough();
    const d = demuxDockerStream(src);
    const out = collect(d.stdout);
    const err = collect(d.stderr);
    for (let i = 0; i < wire.length; i += cut) src.write(wire.subarray(i, i + cut));
    src.end();
    assert.equal(await out, "hello\nwörld\n", `cut ${cut}`);
    assert.equal(await err, "oops\n" + "x".repeat(1000), `cut ${cut}`);
    assert.equal(await d.done, undefined);
  }
});

test("a stream that is not multiplexed is passed through as stdout", async () => {
  const src = new PassThrough();
  const d = demuxDockerStream(src);
  const out = collect(d.stdout);
  src.end("plain text output, no headers\n");
  assert.equal(await out, "plain text output, no headers\n");
});

test("source errors end both outputs and resolve done with the error", async () => {
  const src = new PassThrough();
  const d = demuxDockerStream(src);
  const out = collect(d.stdout);
  src.write(frame(1, "partial"));
  src.destroy(new Error("socket reset"));
  assert.equal(await out, "partial");
  assert.equal((await d.done)?.message, "socket reset");
});

test("backpressure: the source is paused while stdout is not read, and nothing is lost", async () => {
  const src = new PassThrough({ highWaterMark: 1024 });
  const d = demuxDockerStream(src, { highWaterMark: 1024 });
  const chunk = frame(1, "y".repeat(4096));
  let writes = 0;
  while (src.write(chunk) && writes < 10_000) writes++;
  await new Promise((r) => setImmediate(r));
  assert.ok(writes < 100, `the source kept accepting data (${writes} frames) while nobody read stdout`);
  assert.equal(src.isPaused(), true);
  const out = collect(d.stdout);
  void collect(d.stderr);
  src.end();
  assert.equal((await out).length, (writes + 1) * 4096);
});

test("holdPrefix: the engine's start error is held back, released or dropped by the caller; other output flows", async () => {
  for (const framed of [true, false]) {
    const src = new PassThrough();
    const d = demuxDockerStream(src, { holdPrefix: "OCI runtime exec failed" });
    const out = collect(d.stdout);
    const msg = 'OCI runtime exec failed: exec failed: exec: "nope": executable file not found in $PATH: unknown\r\n';
    if (framed) {
      src.write(frame(1, msg.slice(0, 10)));
      src.end(frame(1, msg.slice(10)));
    } else src.end(msg);
    await d.done;
    assert.match(d.held(), /^OCI runtime exec failed: .*"nope": executable file not found/);
    d.releaseHeld(false);
    assert.equal(await out, "", `framed=${framed}`);
  }
  const src = new PassThrough();
  const d = demuxDockerStream(src, { holdPrefix: "OCI runtime exec failed" });
  const out = collect(d.stdout);
  src.end(frame(1, "OCI runtime exec failed is what my program prints\n"));
  await d.done;
  d.releaseHeld(true);
  assert.equal(await out, "OCI runtime exec failed is what my program prints\n");
  for (const text of ["OCI", "OCI runtime", "hello\n", "OCX"]) {
    const s2 = new PassThrough();
    const d2 = demuxDockerStream(s2, { holdPrefix: "OCI runtime exec failed" });
    const o2 = collect(d2.stdout);
    s2.end(frame(1, text));
    assert.equal(await o2, text, "output that is not the whole prefix flows and ends without a release");
    assert.equal(d2.held(), "");
  }
});
