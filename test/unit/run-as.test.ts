import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, mkdirSync, writeFileSync, statSync, symlinkSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { ConfigError } from "../../src/errors.ts";
import { chownTree, DEFAULT_RUN_AS, resolveRunAs } from "../../src/agent/run-as.ts";

test("resolveRunAs: nobody by default as root, nothing otherwise; explicit values checked", () => {
  assert.deepEqual(resolveRunAs(undefined, 0), DEFAULT_RUN_AS);
  assert.equal(resolveRunAs(undefined, 1000), undefined);
  assert.equal(resolveRunAs("none", 0), undefined);
  assert.deepEqual(resolveRunAs("1234:5678", 0), { uid: 1234, gid: 5678 });
  assert.throws(() => resolveRunAs("0:0", 0), ConfigError);
  assert.throws(() => resolveRunAs("nobody", 0), ConfigError);
  assert.throws(() => resolveRunAs("1234:5678", 1000), /unless the server runs as root/);
});

test("chownTree gives the tree to the user without following symlinks", { skip: process.getuid?.() !== 0 ? "needs root" : false }, async () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), "openrunner-chown-"));
  const outside = mkdtempSync(path.join(os.tmpdir(), "openrunner-outside-"));
  try {
    mkdirSync(path.join(dir, "a/b"), { recursive: true });
    writeFileSync(path.join(dir, "a/b/f.txt"), "x");
    symlinkSync(outside, path.join(dir, "link"));
    const n = await chownTree(dir, { uid: 4321, gid: 4321 });
    assert.equal(n, 5);
    assert.equal(statSync(path.join(dir, "a/b/f.txt")).uid, 4321);
    assert.equal(statSync(dir).uid, 4321);
    assert.equal(statSync(outside).uid, 0, "the symlink's target is not changed");
  } finally {
    rmSync(dir, { recursive: true, force: true });
    rmSync(outside, { recursive: true, force: true });
  }
});
