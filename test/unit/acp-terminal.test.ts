/** Unit: the ACP terminal capability (`src/agent/acp/terminal.ts`) with real child processes. */
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, realpathSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { keepTail, TerminalError, TerminalSet } from "../../src/agent/acp/terminal.ts";

const root = realpathSync(mkdtempSync(path.join(os.tmpdir(), "acp-term-")));
after(() => rmSync(root, { recursive: true, force: true }));
const env = { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: root };

test("a command runs in the workspace; output, exit status and release", async () => {
  const set = new TerminalSet({ root, env });
  const id = await set.create({ command: "sh", args: ["-c", "pwd; echo out; echo err >&2; exit 7"] });
  assert.deepEqual(await set.waitForExit(id), { exitCode: 7, signal: null });
  const out = set.output(id);
  assert.equal(out.truncated, false);
  assert.deepEqual(out.exitStatus, { exitCode: 7, signal: null });
  assert.deepEqual(out.output.split("\n").filter(Boolean).sort(), [root, "err", "out"].sort());
  set.release(id);
  assert.throws(() => set.output(id), (e: unknown) => e instanceof TerminalError && e.reason === "not_found");
});

test("a command line without args runs under sh; the output limit keeps the tail", async () => {
  const set = new TerminalSet({ root, env });
  const id = await set.create({ command: "printf 'a%.0s' $(seq 1 300); printf 'é-END'", outputByteLimit: 50 });
  await set.waitForExit(id);
  const out = set.output(id);
  assert.equal(out.truncated, true);
  assert.ok(out.output.endsWith("é-END"));
  assert.ok(Buffer.byteLength(out.output) <= 50);
});

test("kill, disposeAll, and a cwd outside the workspace", async () => {
  const set = new TerminalSet({ root, env });
  const id = await set.create({ command: "sleep", args: ["30"] });
  set.kill(id);
  assert.deepEqual(await set.waitForExit(id), { exitCode: null, signal: "SIGKILL" });
  const other = await set.create({ command: "sleep", args: ["30"] });
  const exited = set.waitForExit(other);
  set.disposeAll();
  assert.equal((await exited).signal, "SIGKILL");
  await assert.rejects(set.create({ command: "true" }), TerminalError);
  await assert.rejects(new TerminalSet({ root, env }).create({ command: "true", cwd: "/" }), (e: unknown) => e instanceof TerminalError && e.reason === "outside_workspace");
  await assert.rejects(new TerminalSet({ root, env }).create({ command: "/nonexistent/bin" }), (e: unknown) => e instanceof TerminalError && e.reason === "spawn_failed");
});

test("keepTail never splits a UTF-8 character", () => {
  const buf = Buffer.from("aé€b");
  for (let n = 0; n <= buf.length; n++) {
    const { buf: kept } = keepTail(buf, n);
    assert.ok(kept.length <= n);
    assert.equal(Buffer.from(kept.toString("utf8")).length, kept.length, `limit ${n}`);
  }
});
