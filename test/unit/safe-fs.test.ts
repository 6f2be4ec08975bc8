/**
 * Unit: descriptor-walking file system steps (`src/agent/safe-fs.ts`) and their callers that run as
 * root (`chownTree` of run-as.ts / run-container.ts, the task inputs), on real temp folders. Run as
 * root, ownership assertions are real; some tests need root and are skipped otherwise.
 */
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync, linkSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, realpathSync, renameSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { chownTree, openDir, openDirAt, openDirPath, openFileAt, pathAt, readAtMost, removeTreeAt, SafeFsError } from "../../src/agent/safe-fs.ts";
import { chownTree as chownTreeRunAs } from "../../src/agent/run-as.ts";
import { chownTree as chownTreeContainer } from "../../src/container/run-container.ts";
import { writeTaskInputs } from "../../src/agent/task/inputs.ts";

const isRoot = process.getuid?.() === 0;
const needsRoot = { skip: isRoot ? false : "needs root" };
const base = realpathSync(mkdtempSync(path.join(os.tmpdir(), "safe-fs-")));
after(() => rmSync(base, { recursive: true, force: true }));
let n = 0;
/** A fresh workspace and an outside folder (with a file), both root's. */
function fixture(): { ws: string; outside: string; secret: string } {
  const d = path.join(base, `t${n++}`);
  const ws = path.join(d, "ws");
  const outside = path.join(d, "outside");
  mkdirSync(ws, { recursive: true });
  mkdirSync(outside);
  const secret = path.join(outside, "secret");
  writeFileSync(secret, "secret");
  return { ws, outside, secret };
}
const refused = (reason: SafeFsError["reason"]) => (e: unknown) => e instanceof SafeFsError && e.reason === reason;
const owner = { uid: 4321, gid: 4321 };

test("openDirPath walks and creates folders, giving only the new ones to the owner", needsRoot, async () => {
  const { ws } = fixture();
  mkdirSync(path.join(ws, "old"));
  const root = await openDir(ws);
  try {
    const dir = await openDirPath(root, ["old", "a", "b"], { create: true, owner });
    const fh = await openFileAt(dir, "f.txt", { write: true, create: true, owner });
    await fh.writeFile("x");
    await fh.close();
    await dir.close();
  } finally {
    await root.close();
  }
  assert.equal(readFileSync(path.join(ws, "old/a/b/f.txt"), "utf8"), "x");
  assert.equal(lstatSync(path.join(ws, "old")).uid, 0, "an existing folder is left as it is");
  for (const p of ["old/a", "old/a/b", "old/a/b/f.txt"]) assert.equal(lstatSync(path.join(ws, p)).uid, 4321, p);
});

test("a symlinked component is refused, never followed, created into or chowned", async () => {
  const { ws, outside } = fixture();
  mkdirSync(path.join(ws, "x"));
  symlinkSync(outside, path.join(ws, "x", "link"));
  symlinkSync(outside, path.join(ws, "top-link"));
  const root = await openDir(ws);
  try {
    await assert.rejects(openDirPath(root, ["x", "link", "new"], { create: true, owner }), refused("symlink"));
    await assert.rejects(openDirAt(root, "top-link", { create: true, owner }), refused("symlink"));
    await assert.rejects(openFileAt(root, "top-link", { write: true, create: true, owner }), refused("symlink"));
    await assert.rejects(openDirAt(root, "..", { create: true }), refused("bad_name"));
    assert.throws(() => pathAt(root, "a/b"), refused("bad_name"));
  } finally {
    await root.close();
  }
  assert.ok(!existsSync(path.join(outside, "new")));
  assert.equal(statSync(outside).uid, 0);
  await assert.rejects(openDir(path.join(ws, "top-link")), refused("symlink"));
});

test("the swap race: a folder swapped for a symlink after it was opened does not redirect the walk", async () => {
  // What the agent does between the server's check and its use: `mv x y; ln -s <outside> x`. The walk holds
  // x's descriptor, so the file lands in the moved folder (the agent's own), never in <outside>.
  const { ws, outside } = fixture();
  const root = await openDir(ws);
  try {
    const x = await openDirAt(root, "x", { create: true });
    renameSync(path.join(ws, "x"), path.join(ws, "y"));
    symlinkSync(outside, path.join(ws, "x"));
    const fh = await openFileAt(x, "f.txt", { write: true, create: true });
    await fh.close();
    await x.close();
    assert.ok(existsSync(path.join(ws, "y", "f.txt")));
    assert.ok(!existsSync(path.join(outside, "f.txt")));
    // and the next walk by name is refused at x
    await assert.rejects(openDirPath(root, ["x", "z"], { create: true }), refused("symlink"));
  } finally {
    await root.close();
  }
});

test("openFileAt refuses a FIFO (read and write) at once, and a hard link", { timeout: 5000 }, async () => {
  const { ws, secret } = fixture();
  execFileSync("mkfifo", [path.join(ws, "p")]);
  linkSync(secret, path.join(ws, "hl"));
  const root = await openDir(ws);
  try {
    await assert.rejects(openFileAt(root, "p"), refused("not_a_file"));
    await assert.rejects(openFileAt(root, "p", { write: true, create: true }), refused("not_a_file"));
    await assert.rejects(openFileAt(root, "hl"), refused("hard_link"));
    await assert.rejects(openFileAt(root, "hl", { write: true, create: true, owner }), refused("hard_link"));
  } finally {
    await root.close();
  }
  assert.equal(readFileSync(secret, "utf8"), "secret");
  assert.equal(statSync(secret).uid, 0);
});

test("readAtMost stops one byte past the cap", async () => {
  const { ws } = fixture();
  writeFileSync(path.join(ws, "big"), Buffer.alloc(200_000, 97));
  const root = await openDir(ws);
  try {
    for (const [max, over] of [[100, true], [199_999, true], [200_000, false], [300_000, false]] as const) {
      const fh = await openFileAt(root, "big");
      const r = await readAtMost(fh, max).finally(() => fh.close());
      assert.equal(r.over, over, `max ${max}`);
      assert.equal(r.data.length, Math.min(max, 200_000));
    }
  } finally {
    await root.close();
  }
});

test("chownTree gives the tree away but not what a symlink, a hard link or a symlinked top points at", needsRoot, async () => {
  const { ws, outside, secret } = fixture();
  mkdirSync(path.join(ws, "a/b"), { recursive: true });
  writeFileSync(path.join(ws, "a/b/f.txt"), "x");
  symlinkSync(outside, path.join(ws, "a/link"));
  linkSync(secret, path.join(ws, "a/hl"));
  execFileSync("mkfifo", [path.join(ws, "a/fifo")]);
  const count = await chownTree(ws, owner);
  assert.equal(count, 7);
  for (const p of ["", "a", "a/b", "a/b/f.txt", "a/fifo"]) assert.equal(lstatSync(path.join(ws, p)).uid, 4321, p);
  assert.equal(statSync(outside).uid, 0, "a symlink's target is not changed");
  assert.equal(statSync(secret).uid, 0, "a hard-linked file is not changed");
  // A top that is a symlink to outside: nothing below it is touched.
  symlinkSync(outside, path.join(ws, "top-link"));
  for (const f of [chownTree, chownTreeRunAs, (d: string, o: typeof owner) => chownTreeContainer(d, o.uid, o.gid)]) {
    await f(path.join(ws, "top-link"), owner);
    assert.equal(statSync(outside).uid, 0);
    assert.equal(statSync(secret).uid, 0);
  }
});

test("chownTree of run-as.ts and run-container.ts leave hard links alone (they walk descriptors)", needsRoot, async () => {
  const { ws, secret } = fixture();
  linkSync(secret, path.join(ws, "hl"));
  await chownTreeRunAs(ws, owner);
  await chownTreeContainer(ws, owner.uid, owner.gid);
  assert.equal(statSync(secret).uid, 0);
  assert.equal(statSync(ws).uid, 4321);
});

test("chownTree stops at its entry cap", needsRoot, async () => {
  const { ws } = fixture();
  for (let i = 0; i < 10; i++) writeFileSync(path.join(ws, `f${i}`), "");
  assert.equal(await chownTree(ws, owner, 5), 5);
  const changed = [...Array(10).keys()].filter((i) => statSync(path.join(ws, `f${i}`)).uid === 4321).length;
  assert.equal(changed, 4, "the folder and four files");
  assert.equal(await chownTreeRunAs(ws, owner, 3), 3);
});

test("chownTree racing an agent that swaps a folder for a symlink never reaches outside", needsRoot, async () => {
  const { ws, outside } = fixture();
  for (let i = 0; i < 20; i++) writeFileSync(path.join(outside, `o${i}`), "");
  const a = path.join(ws, "a");
  const parked = path.join(ws, "parked");
  mkdirSync(path.join(a, "deep"), { recursive: true });
  for (let i = 0; i < 50; i++) writeFileSync(path.join(a, "deep", `f${i}`), "");
  let stop = false;
  const swapper = (async () => {
    while (!stop) {
      renameSync(a, parked);
      symlinkSync(outside, a);
      await new Promise((r) => setImmediate(r));
      rmSync(a);
      renameSync(parked, a);
      await new Promise((r) => setImmediate(r));
    }
  })();
  const until = Date.now() + 400;
  const errors: unknown[] = [];
  try {
    while (Date.now() < until) {
      await chownTreeContainer(ws, owner.uid, owner.gid).catch((e: unknown) => errors.push(e));
      await chownTreeRunAs(ws, owner).catch((e: unknown) => errors.push(e));
    }
  } finally {
    stop = true;
    await swapper;
  }
  assert.equal(statSync(outside).uid, 0);
  for (let i = 0; i < 20; i++) assert.equal(statSync(path.join(outside, `o${i}`)).uid, 0);
  assert.deepEqual(errors, [], "entries moving meanwhile are skipped, not errors");
});

test("removeTreeAt removes a tree without following links out of it", async () => {
  const { ws, outside, secret } = fixture();
  mkdirSync(path.join(ws, "t/a"), { recursive: true });
  writeFileSync(path.join(ws, "t/a/f"), "");
  symlinkSync(outside, path.join(ws, "t/link"));
  symlinkSync(outside, path.join(ws, "top-link"));
  const root = await openDir(ws);
  try {
    await removeTreeAt(root, "t");
    await removeTreeAt(root, "top-link");
    await removeTreeAt(root, "missing");
  } finally {
    await root.close();
  }
  assert.ok(!existsSync(path.join(ws, "t")));
  assert.ok(!existsSync(path.join(ws, "top-link")));
  assert.equal(readFileSync(secret, "utf8"), "secret");
});

const task = (files: Array<{ path: string; content: string }>) => ({ input: { text: "hi", files }, metadata: {} }) as unknown as Parameters<typeof writeTaskInputs>[2];

test("writeTaskInputs writes task.json and input/ through descriptors, owned by the container user", needsRoot, async () => {
  const { ws, outside, secret } = fixture();
  symlinkSync(outside, path.join(ws, "input")); // planted: removed, not followed
  await writeTaskInputs(ws, "run_1", task([{ path: "a/b.txt", content: "B" }, { path: "c.txt", content: "C" }]), owner);
  assert.equal(JSON.parse(readFileSync(path.join(ws, "task.json"), "utf8")).run_id, "run_1");
  assert.equal(readFileSync(path.join(ws, "input/a/b.txt"), "utf8"), "B");
  for (const p of ["task.json", "input", "input/a", "input/a/b.txt", "input/c.txt"]) assert.equal(lstatSync(path.join(ws, p)).uid, 4321, p);
  assert.ok(lstatSync(path.join(ws, "input")).isDirectory());
  assert.equal(readFileSync(secret, "utf8"), "secret");
  assert.ok(!existsSync(path.join(outside, "a")));
});

test("writeTaskInputs refuses a task.json hard-linked to a file outside, leaving that file whole", needsRoot, async () => {
  const { ws, secret } = fixture();
  linkSync(secret, path.join(ws, "task.json"));
  await assert.rejects(writeTaskInputs(ws, "run_1", task([]), owner), refused("hard_link"));
  assert.equal(readFileSync(secret, "utf8"), "secret");
  assert.equal(statSync(secret).uid, 0);
});
