import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { ensureHome, resolveRunCwd } from "../../src/run/workspace.ts";
import { ValidationError } from "../../src/errors.ts";

let tmp: string;
let n = 0;
before(() => {
  tmp = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), "openrunner-ws-")));
});
after(() => {
  fs.rmSync(tmp, { recursive: true, force: true });
});

/** A fresh workspaces root and a sibling "outside" directory. */
function dirs(): { root: string; outside: string } {
  const base = path.join(tmp, `case-${++n}`);
  const root = path.join(base, "workspaces");
  const outside = path.join(base, "outside");
  fs.mkdirSync(root, { recursive: true });
  fs.mkdirSync(outside, { recursive: true });
  return { root, outside };
}

function isOutsideError(err: unknown): boolean {
  assert.ok(err instanceof ValidationError, `expected a ValidationError, got ${String(err)}`);
  assert.equal(err.code, "cwd_outside_workspace");
  assert.equal(err.status, 400);
  return true;
}

const isDir = (p: string) => fs.statSync(p).isDirectory();

describe("resolveRunCwd", () => {
  test("default: <root>/<runId>, created, absolute", async () => {
    const { root } = dirs();
    const cwd = await resolveRunCwd(root, "run_01ABC");
    assert.equal(cwd, path.join(root, "run_01ABC"));
    assert.ok(isDir(cwd));
  });

  test("creates a missing root", async () => {
    const { root } = dirs();
    const missingRoot = path.join(root, "not", "yet");
    const cwd = await resolveRunCwd(missingRoot, "r1");
    assert.equal(cwd, path.join(missingRoot, "r1"));
    assert.ok(isDir(cwd));
  });

  test("the result is symlink-free when the root itself is reached through a symlink", async () => {
    const { root, outside } = dirs();
    const alias = path.join(outside, "alias-of-root");
    fs.symlinkSync(root, alias);
    const cwd = await resolveRunCwd(alias, "r1", "proj");
    assert.equal(cwd, path.join(root, "proj"));
  });

  test("relative path inside the root", async () => {
    const { root } = dirs();
    fs.mkdirSync(path.join(root, "repo"));
    assert.equal(await resolveRunCwd(root, "r1", "repo"), path.join(root, "repo"));
    assert.equal(await resolveRunCwd(root, "r1", "./repo/"), path.join(root, "repo"));
    assert.equal(await resolveRunCwd(root, "r1", "repo/../repo"), path.join(root, "repo"));
  });

  test("absolute path inside the root", async () => {
    const { root } = dirs();
    assert.equal(await resolveRunCwd(root, "r1", path.join(root, "abs", "dir")), path.join(root, "abs", "dir"));
    assert.ok(isDir(path.join(root, "abs", "dir")));
  });

  test("a not-yet-existing nested path is created", async () => {
    const { root } = dirs();
    const cwd = await resolveRunCwd(root, "r1", "a/b/c/d");
    assert.equal(cwd, path.join(root, "a", "b", "c", "d"));
    assert.ok(isDir(cwd));
  });

  test("'..' escapes are refused and nothing is created outside", async () => {
    const { root, outside } = dirs();
    for (const req of ["..", "../outside", "../outside/new", "a/../../outside/x", "../../../../../../tmp"]) {
      await assert.rejects(resolveRunCwd(root, "r1", req), isOutsideError, req);
    }
    assert.deepEqual(fs.readdirSync(outside), []);
  });

  test("an absolute path outside the root (or a sibling with the root as prefix) is refused", async () => {
    const { root } = dirs();
    await assert.rejects(resolveRunCwd(root, "r1", "/etc"), isOutsideError);
    await assert.rejects(resolveRunCwd(root, "r1", `${root}-sibling/x`), isOutsideError);
    assert.equal(fs.existsSync(`${root}-sibling`), false);
  });

  test("the root itself is refused", async () => {
    const { root } = dirs();
    for (const req of ["", ".", root, `${root}/`, "a/.."]) {
      await assert.rejects(resolveRunCwd(root, "r1", req), isOutsideError, JSON.stringify(req));
    }
  });

  test("a symlink inside the root pointing outside is refused (itself and below it); nothing created outside", async () => {
    const { root, outside } = dirs();
    fs.symlinkSync(outside, path.join(root, "escape"));
    await assert.rejects(resolveRunCwd(root, "r1", "escape"), isOutsideError);
    await assert.rejects(resolveRunCwd(root, "r1", "escape/sub/dir"), isOutsideError);
    await assert.rejects(resolveRunCwd(root, "r1", path.join(root, "escape", "x")), isOutsideError);
    assert.deepEqual(fs.readdirSync(outside), []);
  });

  test("a symlinked parent directory pointing outside is refused", async () => {
    const { root, outside } = dirs();
    fs.mkdirSync(path.join(root, "inner"));
    fs.symlinkSync(outside, path.join(root, "inner", "up"));
    await assert.rejects(resolveRunCwd(root, "r1", "inner/up/new"), isOutsideError);
    assert.deepEqual(fs.readdirSync(outside), []);
  });

  test("a dangling symlink inside the root pointing outside is refused as outside (400), nothing created", async () => {
    const { root, outside } = dirs();
    fs.symlinkSync(path.join(outside, "not-there"), path.join(root, "dangling"));
    // BUG: realpath() of a dangling link fails with ENOENT, so it is treated as "not created yet";
    // mkdir then fails with a raw ENOENT/ENOTDIR Error (a 500), not the ValidationError.
    await assert.rejects(resolveRunCwd(root, "r1", "dangling"), isOutsideError);
    await assert.rejects(resolveRunCwd(root, "r1", "dangling/sub"), isOutsideError);
    assert.deepEqual(fs.readdirSync(outside), []);
  });

  test("a symlink inside the root pointing inside is fine and resolved to its target", async () => {
    const { root } = dirs();
    fs.mkdirSync(path.join(root, "real"));
    fs.symlinkSync(path.join(root, "real"), path.join(root, "link"));
    assert.equal(await resolveRunCwd(root, "r1", "link"), path.join(root, "real"));
    assert.equal(await resolveRunCwd(root, "r1", "link/sub"), path.join(root, "real", "sub"));
  });

  test("a NUL byte is refused", async () => {
    const { root } = dirs();
    await assert.rejects(resolveRunCwd(root, "r1", "a\0b"), isOutsideError);
    await assert.rejects(resolveRunCwd(root, "r1", "\0"), isOutsideError);
  });

  test("a directory whose name starts with '..' is inside the root", async () => {
    const { root } = dirs();
    // BUG: isInside() tests rel.startsWith("..") so "..cache" or "...x" count as outside.
    assert.equal(await resolveRunCwd(root, "r1", "..cache"), path.join(root, "..cache"));
    assert.equal(await resolveRunCwd(root, "r1", "a/...b"), path.join(root, "a", "...b"));
  });

  test("a cwd naming an existing regular file is refused with a ValidationError (400), not a raw fs error", async () => {
    const { root } = dirs();
    fs.writeFileSync(path.join(root, "file.txt"), "x");
    // BUG (minor): mkdir throws a raw EEXIST/ENOTDIR Error, which the API turns into a 500.
    await assert.rejects(resolveRunCwd(root, "r1", "file.txt"), (err: unknown) => err instanceof ValidationError);
    await assert.rejects(resolveRunCwd(root, "r1", "file.txt/sub"), (err: unknown) => err instanceof ValidationError);
  });
});

describe("ensureHome", () => {
  test("creates <homesRoot>/<key> with mode 0700 and returns it", async () => {
    const { root } = dirs();
    const homes = path.join(root, "homes");
    const home = await ensureHome(homes, "run_1");
    assert.equal(home, path.join(homes, "run_1"));
    assert.ok(isDir(home));
    assert.equal(fs.statSync(home).mode & 0o777, 0o700);
  });

  test("is idempotent and keeps what the home already holds", async () => {
    const { root } = dirs();
    const home = await ensureHome(root, "k");
    fs.writeFileSync(path.join(home, ".config"), "keep");
    assert.equal(await ensureHome(root, "k"), home);
    assert.equal(fs.readFileSync(path.join(home, ".config"), "utf8"), "keep");
    assert.equal(fs.statSync(home).mode & 0o777, 0o700);
  });

  test("mode is 0700 even under a permissive umask", async () => {
    const { root } = dirs();
    const old = process.umask(0);
    try {
      const home = await ensureHome(root, "permissive");
      assert.equal(fs.statSync(home).mode & 0o777, 0o700);
    } finally {
      process.umask(old);
    }
  });
});
