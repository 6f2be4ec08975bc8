/**
 * `src/container/artifacts.ts` on a real temporary directory: the listing
 * (order, exclusions, links, FIFOs, caps, depth and entry budgets) and
 * `openArtifact`'s refusals (links in any component, escapes, inputs).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { artifactSegments, collectArtifacts, openArtifact } from "../../src/container/artifacts.ts";

function tree(): { root: string; outside: string; done(): void } {
  const base = mkdtempSync(path.join(os.tmpdir(), "openrunner-artifacts-"));
  const root = path.join(base, "ws");
  const outside = path.join(base, "outside");
  mkdirSync(path.join(root, "out/deep"), { recursive: true });
  mkdirSync(path.join(root, "input"));
  mkdirSync(outside);
  writeFileSync(path.join(outside, "secret.txt"), "secret");
  writeFileSync(path.join(root, "task.json"), "{}");
  writeFileSync(path.join(root, "input/in.txt"), "in");
  writeFileSync(path.join(root, "b.txt"), "bb");
  writeFileSync(path.join(root, "out/a.txt"), "a");
  writeFileSync(path.join(root, "out/deep/c.bin"), "ccc");
  symlinkSync(path.join(outside, "secret.txt"), path.join(root, "leak.txt"));
  symlinkSync(outside, path.join(root, "out/outdir"));
  execFileSync("mkfifo", [path.join(root, "pipe")]);
  return { root, outside, done: () => rmSync(base, { recursive: true, force: true }) };
}

test("collectArtifacts lists regular files in order, skips inputs, links and FIFOs", async () => {
  const t = tree();
  try {
    const r = await collectArtifacts(t.root, { maxFiles: 100, maxBytes: 1000 });
    assert.deepEqual(r.artifacts, [
      { path: "b.txt", size_bytes: 2 },
      { path: "out/a.txt", size_bytes: 1 },
      { path: "out/deep/c.bin", size_bytes: 3 },
    ]);
    assert.equal(r.totalBytes, 6);
    assert.deepEqual(r.omitted, { overCap: 0, symlinks: 2, other: 1, truncatedWalk: false });
  } finally {
    t.done();
  }
});

test("collectArtifacts stops at the file, byte, depth and entry caps", async () => {
  const t = tree();
  try {
    assert.deepEqual((await collectArtifacts(t.root, { maxFiles: 2, maxBytes: 1000 })).artifacts.map((a) => a.path), ["b.txt", "out/a.txt"]);
    const bytes = await collectArtifacts(t.root, { maxFiles: 100, maxBytes: 3 });
    assert.deepEqual(bytes.artifacts.map((a) => a.path), ["b.txt", "out/a.txt"]);
    assert.equal(bytes.omitted.overCap, 1);
    const shallow = await collectArtifacts(t.root, { maxFiles: 100, maxBytes: 1000, maxDepth: 1 });
    assert.deepEqual(shallow.artifacts.map((a) => a.path), ["b.txt", "out/a.txt"]);
    assert.equal(shallow.omitted.truncatedWalk, true);
    const budget = await collectArtifacts(t.root, { maxFiles: 100, maxBytes: 1000, maxEntries: 2 });
    assert.equal(budget.omitted.truncatedWalk, true);
    assert.ok(budget.artifacts.length < 3);
  } finally {
    t.done();
  }
});

test("openArtifact serves a listed regular file and refuses links, escapes, inputs and FIFOs", async () => {
  const t = tree();
  try {
    const ok = await openArtifact(t.root, "out/deep/c.bin");
    assert.ok("handle" in ok);
    assert.equal(ok.size, 3);
    assert.equal((await ok.handle.readFile("utf8")), "ccc");
    await ok.handle.close();
    for (const p of ["leak.txt", "out/outdir/secret.txt", "pipe", "missing.txt", "out"]) assert.deepEqual(await openArtifact(t.root, p), { failure: "not_found" }, p);
    for (const p of ["../outside/secret.txt", "/etc/passwd", "out/../b.txt", "out//a.txt", "task.json", "input/in.txt", ""]) {
      assert.deepEqual(await openArtifact(t.root, p), { failure: "invalid_path" }, p);
      assert.equal(artifactSegments(p), undefined, p);
    }
  } finally {
    t.done();
  }
});
