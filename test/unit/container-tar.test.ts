/**
 * The ustar writer (src/container/tar.ts), checked by the system `tar`:
 * files from memory and from host paths, directories with modes, symlinks,
 * long paths split into prefix and name; invalid paths refused.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { createWriteStream, lstatSync, mkdtempSync, readFileSync, readlinkSync, rmSync, statSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { pipeline } from "node:stream/promises";
import { createTarStream, tarHeader } from "../../src/container/tar.ts";

test("system tar extracts what createTarStream writes", async () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), "openrunner-tar-"));
  try {
    const host = path.join(dir, "host.bin");
    const bytes = Buffer.alloc(70_000, 7);
    bytes.write("start");
    writeFileSync(host, bytes);
    const long = `a/${"d".repeat(90)}/${"e".repeat(90)}/file.txt`;
    const archive = path.join(dir, "ctx.tar");
    await pipeline(
      createTarStream([
        { type: "dir", path: "a", mode: 0o755 },
        { type: "dir", path: "a/tmp", mode: 0o1777 },
        { type: "file", path: "a/hello.txt", content: "hello\n" },
        { type: "file", path: "a/empty", content: "" },
        { type: "file", path: "a/bin", source: host, mode: 0o755 },
        { type: "symlink", path: "a/link", target: "/bin/busybox" },
        { type: "file", path: long, content: "deep\n" },
      ]),
      createWriteStream(archive),
    );
    assert.equal(statSync(archive).size % 512, 0);
    const out = path.join(dir, "out");
    execFileSync("mkdir", [out]);
    execFileSync("tar", ["-xf", archive, "-C", out]);
    assert.equal(readFileSync(path.join(out, "a/hello.txt"), "utf8"), "hello\n");
    assert.equal(readFileSync(path.join(out, "a/empty"), "utf8"), "");
    assert.deepEqual(readFileSync(path.join(out, "a/bin")), bytes);
    assert.equal(statSync(path.join(out, "a/bin")).mode & 0o777, 0o755);
    assert.equal(lstatSync(path.join(out, "a/link")).isSymbolicLink(), true);
    assert.equal(readlinkSync(path.join(out, "a/link")), "/bin/busybox");
    assert.equal(readFileSync(path.join(out, long), "utf8"), "deep\n");
    const listing = execFileSync("tar", ["-tvf", archive], { encoding: "utf8" });
    assert.match(listing, /drwxrwxrwt .* a\/tmp\//);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("paths that are absolute, escape with .., or do not fit ustar are refused", () => {
  assert.throws(() => tarHeader({ path: "/etc/passwd", type: "0", mode: 0o644, size: 0 }), /relative/);
  assert.throws(() => tarHeader({ path: "a/../../x", type: "0", mode: 0o644, size: 0 }), /relative/);
  assert.throws(() => tarHeader({ path: "x".repeat(120), type: "0", mode: 0o644, size: 0 }), /too long/);
});

test("a duplicate entry fails the stream", async () => {
  const s = createTarStream([
    { type: "file", path: "x", content: "1" },
    { type: "file", path: "x", content: "2" },
  ]);
  await assert.rejects(async () => {
    for await (const _ of s) void _;
  }, /duplicate entry x/);
});
