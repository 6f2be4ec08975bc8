/**
 * Unit: ACP runs in a container without an engine: the agent's container paths mapped onto
 * the host workspace (`fs.ts`), the owner of files written for it (`actor.ts`), and the
 * container terminals (`terminal-container.ts`) against a fake exec.
 */
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, realpathSync, rmSync, symlinkSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { PassThrough } from "node:stream";
import { containerFileOwner } from "../../src/agent/acp/actor.ts";
import { containerPathToHost, hostPathToContainer, WorkspacePathError } from "../../src/agent/acp/fs.ts";
import { ContainerTerminalSet } from "../../src/agent/acp/terminal-container.ts";
import { TerminalError } from "../../src/agent/acp/terminal-core.ts";
import type { ExecExit, ExecHandle, ExecSignal, ExecSpec } from "../../src/container/types.ts";

const root = realpathSync(mkdtempSync(path.join(os.tmpdir(), "acp-cpaths-")));
after(() => rmSync(root, { recursive: true, force: true }));
const outside = (e: unknown) => e instanceof WorkspacePathError && e.reason === "outside_workspace";

test("container paths under the run's folder map onto the host workspace; anything else is refused", () => {
  const map = { hostRoot: "/data/ws/u1/run_1", containerRoot: "/workspace" };
  assert.equal(containerPathToHost("/workspace", map), "/data/ws/u1/run_1");
  assert.equal(containerPathToHost("/workspace/", map), "/data/ws/u1/run_1");
  assert.equal(containerPathToHost("/workspace/src/a.ts", map), "/data/ws/u1/run_1/src/a.ts");
  assert.equal(containerPathToHost("src/../b.txt", map), "/data/ws/u1/run_1/b.txt", "relative to the container root");
  for (const p of ["/etc/passwd", "/workspace/../etc/passwd", "/workspace2/x", "/", "/home/agent/.claude", "../x"]) assert.throws(() => containerPathToHost(p, map), outside, p);
  // A project run's folder below /workspace: the rest of the project is outside the run.
  const sub = { hostRoot: "/data/ws/u1/projects/p/app", containerRoot: "/workspace/app" };
  assert.equal(containerPathToHost("/workspace/app/x", sub), "/data/ws/u1/projects/p/app/x");
  assert.throws(() => containerPathToHost("/workspace/other/x", sub), outside);
  assert.equal(hostPathToContainer("/data/ws/u1/projects/p/app/x/y", sub), "/workspace/app/x/y");
  assert.equal(hostPathToContainer("/data/ws/u1/projects/p/app", sub), "/workspace/app");
  assert.throws(() => hostPathToContainer("/data/ws/u1/projects/p/other", sub), outside);
});

test("files written for a containerized agent go to the container's user, only when the server can chown", () => {
  assert.deepEqual(containerFileOwner({ user: "1000:1001" }, true), { uid: 1000, gid: 1001 });
  assert.deepEqual(containerFileOwner({ user: "1000" }, true), { uid: 1000, gid: 1000 });
  assert.equal(containerFileOwner({ user: "1000:1000" }, false), undefined);
  assert.equal(containerFileOwner({ user: "agent" }, true), undefined);
});

/** A fake exec: records its spec; the test ends it with `finish(code)`. */
function fakeContainer() {
  const execs: Array<{ spec: ExecSpec; handle: ExecHandle; finish: (code: number | null, error?: Error) => void; kills: ExecSignal[] }> = [];
  return {
    execs,
    async exec(spec: ExecSpec): Promise<ExecHandle> {
      const stdout = new PassThrough();
      const stderr = new PassThrough();
      let resolve!: (e: ExecExit) => void;
      const exit = new Promise<ExecExit>((r) => (resolve = r));
      let running = true;
      const kills: ExecSignal[] = [];
      const finish = (code: number | null, error?: Error) => {
        running = false;
        stdout.end();
        stderr.end();
        resolve(error ? { exitCode: code, error } : { exitCode: code });
      };
      const handle: ExecHandle = {
        id: `exec${execs.length}`,
        marker: "m",
        stdout,
        stderr,
        exit,
        kill: async (sig: ExecSignal = "TERM") => {
          kills.push(sig);
          if (running && sig === "KILL") finish(137);
          return 1;
        },
        running: async () => running,
        [Symbol.asyncDispose]: async () => {},
      };
      execs.push({ spec, handle, finish, kills });
      return handle;
    },
  };
}

test("container terminals: exec'd with container paths and the run's env; output, limits, kill and dispose", async () => {
  mkdirSync(path.join(root, "sub"), { recursive: true });
  symlinkSync("/", path.join(root, "root-link"));
  const c = fakeContainer();
  const started: string[] = [];
  const set = new ContainerTerminalSet({ container: c, paths: { hostRoot: root, containerRoot: "/workspace" }, env: { OPENRUNNER_RUN_ID: "run_1", HOME: "/home/agent" }, onStart: (_id, line) => started.push(line) });

  const id = await set.create({ command: "echo hi && id -u", cwd: "/workspace/sub", env: [{ name: "A", value: "1" }, { name: "OPENRUNNER_RUN_ID", value: "forged" }], outputByteLimit: 8 });
  const x = c.execs[0]!;
  assert.deepEqual(x.spec, { argv: ["/bin/sh", "-c", "echo hi && id -u"], env: { OPENRUNNER_RUN_ID: "run_1", HOME: "/home/agent", A: "1" }, cwd: "/workspace/sub" });
  assert.match(started[0]!, /in the container, cwd \/workspace\/sub/);
  (x.handle.stdout as PassThrough).write("hello ");
  (x.handle.stderr as PassThrough).write("world\n");
  x.finish(0);
  assert.deepEqual(await set.waitForExit(id), { exitCode: 0, signal: null });
  assert.deepEqual(set.output(id), { output: "o world\n", truncated: true, exitStatus: { exitCode: 0, signal: null } });

  const sleeper = await set.create({ command: "sleep", args: ["100"] });
  assert.equal(c.execs[1]!.spec.cwd, "/workspace", "default cwd: the run's folder in the container");
  set.kill(sleeper);
  assert.deepEqual(await set.waitForExit(sleeper), { exitCode: null, signal: "SIGKILL" });

  const missing = await set.create({ command: "nope" });
  c.execs[2]!.finish(127, new Error("exec in container abc failed to start: OCI runtime exec failed: nope: not found"));
  assert.deepEqual(await set.waitForExit(missing), { exitCode: 127, signal: null });
  assert.match(set.output(missing).output, /not found/);

  for (const cwd of ["/", "/workspace/../etc", "/workspace/root-link"]) {
    await assert.rejects(set.create({ command: "pwd", cwd }), (e: unknown) => e instanceof TerminalError && e.reason === "outside_workspace", cwd);
  }
  const last = await set.create({ command: "sleep", args: ["100"] });
  const lastExit = set.waitForExit(last);
  await set.disposeAll();
  assert.equal(c.execs.at(-1)!.kills[0], "KILL", "disposeAll kills the running command's tree (then its leftovers)");
  assert.equal((await lastExit).signal, "SIGKILL");
  await assert.rejects(set.create({ command: "true" }), TerminalError);
});
