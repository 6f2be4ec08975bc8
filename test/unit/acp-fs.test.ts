/** Unit: workspace confinement of the ACP fs capability (`src/agent/acp/fs.ts`), on a real temp folder. */
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { readWorkspaceFile, resolveInWorkspace, WorkspacePathError, writeWorkspaceFile } from "../../src/agent/acp/fs.ts";

const base = realpathSync(mkdtempSync(path.join(os.tmpdir(), "acp-fs-")));
const root = path.join(base, "ws");
const outside = path.join(base, "outside");
mkdirSync(root);
mkdirSync(outside);
writeFileSync(path.join(outside, "secret"), "s");
symlinkSync(outside, path.join(root, "out-link"));
symlinkSync(path.join(root, "sub"), path.join(root, "in-link"));
symlinkSync(path.join(outside, "nope"), path.join(root, "dangling"));
after(() => rmSync(base, { recursive: true, force: true }));

const refused = (p: Promise<unknown>) => assert.rejects(p, (e: unknown) => e instanceof WorkspacePathError && e.reason === "outside_workspace");

test("paths inside resolve, also new ones and links that stay inside", async () => {
  assert.equal(await resolveInWorkspace(root, path.join(root, "a/b/c.txt")), path.join(root, "a/b/c.txt"));
  assert.equal(await resolveInWorkspace(root, "rel.txt"), path.join(root, "rel.txt"));
  mkdirSync(path.join(root, "sub"));
  assert.equal(await resolveInWorkspace(root, path.join(root, "in-link/x")), path.join(root, "sub/x"));
});

test("paths outside, through a symlink out, or a dangling link are refused", async () => {
  await refused(resolveInWorkspace(root, path.join(outside, "x")));
  await refused(resolveInWorkspace(root, path.join(root, "../outside/x")));
  await refused(resolveInWorkspace(root, path.join(root, "out-link/secret")));
  await refused(resolveInWorkspace(root, path.join(root, "out-link/new/deeper.txt")));
  await refused(resolveInWorkspace(root, path.join(root, "dangling")));
  await refused(resolveInWorkspace(root, "/etc/passwd"));
});

test("write creates folders and the file; read returns it, with a line range", async () => {
  await writeWorkspaceFile(root, path.join(root, "d1/d2/f.txt"), "1\n2\n3\n4\n");
  assert.equal(readFileSync(path.join(root, "d1/d2/f.txt"), "utf8"), "1\n2\n3\n4\n");
  assert.equal(await readWorkspaceFile(root, path.join(root, "d1/d2/f.txt")), "1\n2\n3\n4\n");
  assert.equal(await readWorkspaceFile(root, path.join(root, "d1/d2/f.txt"), 2, 2), "2\n3");
  await assert.rejects(readWorkspaceFile(root, path.join(root, "missing.txt")), (e: unknown) => e instanceof WorkspacePathError && e.reason === "not_found");
});

test("writes and reads through links out are refused and leave nothing outside", async () => {
  await refused(writeWorkspaceFile(root, path.join(root, "out-link/planted.txt"), "x"));
  await refused(writeWorkspaceFile(root, path.join(root, "dangling"), "x"));
  await refused(readWorkspaceFile(root, path.join(root, "out-link/secret")));
  assert.ok(!existsSync(path.join(outside, "planted.txt")));
  assert.ok(!existsSync(path.join(outside, "nope")));
});
