/** Unit: workspace confinement of the ACP fs capability (`src/agent/acp/fs.ts`), on a real temp folder. */
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { closeSync, constants, existsSync, linkSync, lstatSync, mkdirSync, mkdtempSync, openSync, readFileSync, realpathSync, renameSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { MAX_READ_BYTES, readWorkspaceFile, resolveInWorkspace, WorkspacePathError, writeWorkspaceFile } from "../../src/agent/acp/fs.ts";

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

/** Fails (rather than hangs the file) when `p` blocks: the regression a FIFO causes. */
const quickly = <T>(p: Promise<T>, ms = 2000): Promise<T> => {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([p, new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`blocked for ${ms} ms`)), ms)))]).finally(() => clearTimeout(timer));
};
const fifos: string[] = [];
after(() => {
  // Unblock an open a regression left waiting in the thread pool, so the file can end.
  for (const f of fifos) {
    for (const flags of [constants.O_WRONLY | constants.O_NONBLOCK, constants.O_RDONLY | constants.O_NONBLOCK]) {
      try {
        closeSync(openSync(f, flags));
      } catch {
        // no one waiting
      }
    }
  }
});
const reasonIs = (reason: WorkspacePathError["reason"]) => (e: unknown) => e instanceof WorkspacePathError && e.reason === reason;

test("a FIFO is refused at once, for reading and for writing", { timeout: 5000 }, async () => {
  const fifo = path.join(root, "pipe");
  execFileSync("mkfifo", [fifo]);
  fifos.push(fifo);
  await quickly(assert.rejects(readWorkspaceFile(root, fifo), reasonIs("not_a_file")));
  await quickly(assert.rejects(writeWorkspaceFile(root, fifo, "x"), reasonIs("not_a_file")));
});

test("a hard link (maybe to a file from outside) is neither read nor written", async () => {
  linkSync(path.join(outside, "secret"), path.join(root, "hard"));
  await assert.rejects(readWorkspaceFile(root, path.join(root, "hard")), reasonIs("hard_link"));
  await assert.rejects(writeWorkspaceFile(root, path.join(root, "hard"), "pwned"), reasonIs("hard_link"));
  assert.equal(readFileSync(path.join(outside, "secret"), "utf8"), "s");
});

test("a read past MAX_READ_BYTES is refused", async () => {
  writeFileSync(path.join(root, "big"), Buffer.alloc(MAX_READ_BYTES + 1, 97));
  await assert.rejects(readWorkspaceFile(root, path.join(root, "big")), reasonIs("too_large"));
  writeFileSync(path.join(root, "cap"), Buffer.alloc(MAX_READ_BYTES, 97));
  assert.equal((await readWorkspaceFile(root, path.join(root, "cap"))).length, MAX_READ_BYTES);
  rmSync(path.join(root, "big"));
  rmSync(path.join(root, "cap"));
});

test("new parent folders and the file go to the run's user; existing folders and outside stay root's", { skip: process.getuid?.() !== 0 ? "needs root" : false }, async () => {
  const runAs = { uid: 4321, gid: 4321 };
  mkdirSync(path.join(root, "kept"));
  await writeWorkspaceFile(root, path.join(root, "kept/n1/n2/f.txt"), "x", runAs);
  for (const p of ["kept/n1", "kept/n1/n2", "kept/n1/n2/f.txt"]) assert.equal(lstatSync(path.join(root, p)).uid, 4321, p);
  assert.equal(lstatSync(path.join(root, "kept")).uid, 0);
  assert.equal(lstatSync(root).uid, 0);
  // Overwriting keeps no old bytes (the file is truncated after the checks, not by the open).
  await writeWorkspaceFile(root, path.join(root, "kept/n1/n2/f.txt"), "", runAs);
  assert.equal(readFileSync(path.join(root, "kept/n1/n2/f.txt"), "utf8"), "");
  assert.equal(statSync(outside).uid, 0);
});

test("writes racing an agent that swaps a new folder for a symlink out never write or chown outside", { skip: process.getuid?.() !== 0 ? "needs root" : false }, async () => {
  // `mv x y; ln -s <outside> x` while the server creates x/… and hands it to the run's user.
  const runAs = { uid: 4321, gid: 4321 };
  const x = path.join(root, "race");
  let stop = false;
  const swapper = (async () => {
    while (!stop) {
      try {
        renameSync(x, path.join(root, `moved-${Date.now()}-${Math.random()}`));
        symlinkSync(outside, x);
        await new Promise((r) => setImmediate(r));
        rmSync(x);
      } catch {
        // not there yet
      }
      await new Promise((r) => setImmediate(r));
    }
  })();
  const until = Date.now() + 400;
  try {
    while (Date.now() < until) await writeWorkspaceFile(root, path.join(x, "sub/f.txt"), "x", runAs).catch(() => undefined);
  } finally {
    stop = true;
    await swapper;
  }
  assert.equal(statSync(outside).uid, 0);
  assert.ok(!existsSync(path.join(outside, "sub")));
  assert.ok(!existsSync(path.join(outside, "f.txt")));
});
