/**
 * The in-container launcher without a container: `docker/launcher/openrunner-launcher.mjs` runs
 * on this machine's node on a socket in a temp directory, and the server's side
 * (`withLauncher`, `spawnViaLauncher`, `launcherRequest`) talks to it. Covers output
 * demultiplexing, exit codes (also after a signal), stdin, the environment and cwd, a missing
 * program (exec_failed, 127), kill of a whole tree (also a child in its own session), the kill
 * when the caller's connection drops, the OOM counter request, and the fallback to the engine's
 * exec when no launcher listens.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync, symlinkSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import type { Readable } from "node:stream";
import { connectLauncher, launcherRequest } from "../../src/container/launcher-exec.ts";
import { LAUNCHER_SCRIPT, prepareLauncherDir, withLauncher, type LauncherContainerHandle } from "../../src/container/launcher-handle.ts";
import { createFrameReader, encodeControl, encodeFrame, FRAME, MAX_FRAME_BYTES } from "../../src/container/launcher-protocol.ts";
import type { ContainerHandle, ContainerState, ExecHandle, ExecSpec } from "../../src/container/types.ts";
import { groupAlive, waitFor } from "../helpers/processes.ts";

const text = (s: Readable) => {
  const parts: Buffer[] = [];
  s.on("data", (b: Buffer) => parts.push(b));
  return () => Buffer.concat(parts).toString("utf8");
};

/** An engine-side handle that records execs and answers them with a fixed output (the fallback path). */
function fakeInner(): ContainerHandle & { execs: ExecSpec[] } {
  const execs: ExecSpec[] = [];
  const notUsed = () => Promise.reject(new Error("not used in this test"));
  return {
    id: "c0ffee0000000000",
    execs,
    start: () => Promise.resolve(),
    stop: () => Promise.resolve(),
    remove: () => Promise.resolve(),
    inspect: notUsed as () => Promise<ContainerState>,
    oomKills: () => Promise.resolve(7),
    execCollect: notUsed,
    async exec(spec: ExecSpec): Promise<ExecHandle> {
      execs.push(spec);
      const { PassThrough } = await import("node:stream");
      const stdout = new PassThrough();
      const stderr = new PassThrough();
      stdout.end("from the engine\n");
      stderr.end();
      return { id: "exec1", marker: "m", stdout, stderr, exit: Promise.resolve({ exitCode: 0 }), kill: () => Promise.resolve(0), running: () => Promise.resolve(false), [Symbol.asyncDispose]: () => Promise.resolve() };
    },
    [Symbol.asyncDispose]: () => Promise.resolve(),
  };
}

describe("frames", () => {
  test("a reader splits a stream of frames cut anywhere, and refuses an oversized one", () => {
    const got: Array<[number, string]> = [];
    const feed = createFrameReader((t, p) => got.push([t, p.toString()]));
    const bytes = Buffer.concat([encodeControl({ op: "ping" }), encodeFrame(FRAME.stdout, "hello"), encodeFrame(FRAME.stderr, "")]);
    for (let i = 0; i < bytes.length; i += 3) assert.equal(feed(bytes.subarray(i, i + 3)), true);
    assert.deepEqual(got, [
      [FRAME.ctrl, '{"op":"ping"}'],
      [FRAME.stdout, "hello"],
      [FRAME.stderr, ""],
    ]);
    const bad = Buffer.alloc(5);
    bad.writeUInt8(FRAME.stdout, 0);
    bad.writeUInt32BE(MAX_FRAME_BYTES + 1, 1);
    assert.equal(createFrameReader(() => assert.fail("no frame"))(bad), false);
    assert.throws(() => encodeFrame(FRAME.stdin, Buffer.alloc(MAX_FRAME_BYTES + 1)), RangeError);
  });
});

describe("launcher on this machine", () => {
  let root: string;
  let dir: string;
  let launcher: ChildProcess;
  let h: LauncherContainerHandle;
  let inner: ReturnType<typeof fakeInner>;

  before(async () => {
    root = mkdtempSync(path.join(os.tmpdir(), "orl-"));
    dir = (await prepareLauncherDir(path.join(root, "l"), "c1", `${process.getuid!()}:${process.getgid!()}`))!;
    assert.ok(dir, "a short socket path");
    inner = fakeInner();
    h = withLauncher(inner, dir);
    launcher = spawn(process.execPath, [LAUNCHER_SCRIPT, path.join(dir, "s")], { stdio: ["ignore", "inherit", "inherit"], env: { ...process.env, FROM_LAUNCHER: "yes" } });
    assert.equal(await h.ready(10_000), true, "the launcher answers once its socket appears");
  });

  after(() => {
    launcher?.kill("SIGKILL");
    rmSync(root, { recursive: true, force: true });
  });

  test("a process's stdout and stderr arrive apart, with its exit code, cwd and environment (the launcher's plus the spec's and the marker)", async () => {
    const x = await h.exec({ argv: ["/bin/sh", "-c", 'echo "out $FROM_LAUNCHER $EXTRA $(pwd)"; echo "$OPENRUNNER_EXEC_ID" >&2; exit 3'], env: { EXTRA: "x1" }, cwd: "/tmp" });
    assert.equal(h.lastVia, "launcher");
    const out = text(x.stdout);
    const err = text(x.stderr);
    assert.deepEqual(await x.exit, { exitCode: 3 });
    assert.equal(out(), "out yes x1 /tmp\n");
    assert.equal(err().trim(), x.marker);
    assert.equal(await x.running(), false);
    assert.equal(inner.execs.length, 0, "no engine exec");
  });

  test("a symlink the container put at a launcher's socket path is not followed: that handle falls back to the engine's exec", async () => {
    const other = (await prepareLauncherDir(path.join(root, "l"), "c2", `${process.getuid!()}:${process.getgid!()}`))!;
    symlinkSync(path.join(dir, "s"), path.join(other, "s")); // points at c1's live launcher
    assert.equal(await connectLauncher(path.join(other, "s")), undefined);
    assert.equal(await launcherRequest(path.join(other, "s"), { op: "ping" }), undefined);
    assert.ok(await launcherRequest(path.join(dir, "s"), { op: "ping" }), "the real socket still answers");
  });

  test("stdin reaches the process only when asked; without it the process reads EOF", async () => {
    const x = await h.exec({ argv: ["cat"], stdin: true, cwd: "/tmp" });
    const out = text(x.stdout);
    x.stdin!.write("line one\n");
    x.stdin!.end(Buffer.alloc(3 * 1024 * 1024, 97)); // more than one frame
    assert.deepEqual(await x.exit, { exitCode: 0 });
    assert.equal(out().length, "line one\n".length + 3 * 1024 * 1024);
    const y = await h.exec({ argv: ["cat"], cwd: "/tmp" });
    assert.equal(y.stdin, undefined);
    assert.deepEqual(await y.exit, { exitCode: 0 });
  });

  test("a missing program or cwd is exec_failed with 127, as an engine exec", async () => {
    const x = await h.exec({ argv: ["no-such-program-here"], cwd: "/tmp" });
    const r = await x.exit;
    assert.equal(r.exitCode, 127);
    assert.equal((r.error as { code?: string }).code, "exec_failed");
    assert.match(r.error!.message, /no-such-program-here/);
    const y = await h.exec({ argv: ["true"], cwd: "/no/such/dir" });
    assert.equal((await y.exit).exitCode, 127);
  });

  test("kill reaches the whole tree, also a child in its own session; the exit is 128+15", async () => {
    const x = await h.exec({ argv: ["/bin/sh", "-c", "setsid sleep 300 & sleep 300 & echo started; wait"], cwd: "/tmp" });
    const out = text(x.stdout);
    await waitFor(() => out().includes("started"), 10_000, "started");
    const pid = (x as unknown as { pid: number }).pid;
    assert.equal(await x.running(), true);
    const n = await x.kill("TERM");
    assert.ok(n >= 3, `sh and both sleeps signalled, got ${n}`);
    assert.equal((await x.exit).exitCode, 143);
    await waitFor(() => !groupAlive(pid), 10_000, "the process group is gone");
    assert.deepEqual(await launcherRequest(h.socketPath, { op: "kill", marker: x.marker, signal: "KILL" }), { ok: true, n: 0 }, "nothing with the marker is left (the setsid child too)");
  });

  test("a caller whose connection drops leaves nothing running", async () => {
    const x = await h.exec({ argv: ["/bin/sh", "-c", "sleep 300 & echo up; wait"], cwd: "/tmp" });
    const out = text(x.stdout);
    await waitFor(() => out().includes("up"), 10_000, "up");
    const marker = x.marker;
    await x[Symbol.asyncDispose]();
    await waitFor(async () => ((await launcherRequest(h.socketPath, { op: "kill", marker, signal: "TERM" })) as { n?: number } | undefined)?.n === 0, 10_000, "no process with the marker");
  });

  test("the OOM counter comes from the launcher's cgroup (a number where the memory cgroup has one)", async () => {
    const n = await h.oomKills();
    assert.ok(n === null || Number.isInteger(n), String(n));
    assert.notEqual(n, 7, "not the engine's answer");
  });

  test("without a launcher (another user asked, or nothing listening) the engine's exec runs it", async () => {
    const before = inner.execs.length;
    const x = await h.exec({ argv: ["id"], user: "4242:4242" });
    assert.equal(h.lastVia, "exec");
    assert.equal(inner.execs.length, before + 1);
    await x.exit;
    const none = withLauncher(inner, path.join(root, "nothing-here"));
    assert.equal(await none.ready(50), false);
    const y = await none.exec({ argv: ["echo", "hi"] });
    assert.equal(text(y.stdout) && none.lastVia, "exec");
    assert.equal(await none.oomKills(), 7, "the engine's counter");
  });
});
