/**
 * Unit: the ACP terminal capability (`src/agent/acp/terminal.ts` with real child processes;
 * `terminal-container.ts` with a fake engine; `terminal-core.ts` with a fake binding).
 */
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readdirSync, readFileSync, realpathSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { PassThrough } from "node:stream";
import { TerminalSet } from "../../src/agent/acp/terminal.ts";
import { ContainerTerminalSet } from "../../src/agent/acp/terminal-container.ts";
import { keepTail, MAX_TERMINALS, OutputTail, TerminalCore, TerminalError, type TerminalBinding, type TerminalCommand, type TerminalExit, type TerminalProcess } from "../../src/agent/acp/terminal-core.ts";
import type { ExecHandle } from "../../src/container/types.ts";

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

/** Pids of processes whose command line holds `marker`. */
function pidsWith(marker: string): number[] {
  return readdirSync("/proc")
    .filter((d) => /^\d+$/.test(d))
    .filter((d) => {
      try {
        return readFileSync(`/proc/${d}/cmdline`, "utf8").includes(marker);
      } catch {
        return false;
      }
    })
    .map(Number);
}

test("disposeAll while create awaits: the command is not left running, create fails", async () => {
  const set = new TerminalSet({ root, env });
  const marker = `31.${process.pid}${Date.now() % 100000}`;
  const created = set.create({ command: "sleep", args: [marker] });
  await set.disposeAll(); // runs while create awaits its cwd check
  try {
    await assert.rejects(created, (e: unknown) => e instanceof TerminalError && e.reason === "spawn_failed");
    await new Promise((r) => setTimeout(r, 200));
    assert.deepEqual(pidsWith(`sleep\0${marker}`), []);
  } finally {
    for (const pid of pidsWith(`sleep\0${marker}`)) process.kill(pid, "SIGKILL");
  }
});

test("container terminals: disposeAll while the engine starts the exec disposes of it, create fails", async () => {
  let release!: (e: ExecHandle) => void;
  let disposed = 0;
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  const exec = {
    id: "e1",
    marker: "m1",
    stdout,
    stderr,
    exit: new Promise<never>(() => {}),
    kill: async () => 1,
    running: async () => true,
    [Symbol.asyncDispose]: async () => {
      disposed++;
    },
  } as unknown as ExecHandle;
  let execs = 0;
  const set = new ContainerTerminalSet({
    container: { exec: () => (execs++, new Promise<ExecHandle>((r) => (release = r))) },
    paths: { hostRoot: root, containerRoot: "/workspace" },
    env: {},
  });
  const created = set.create({ command: "sleep", args: ["30"] });
  while (execs === 0) await new Promise((r) => setImmediate(r));
  await set.disposeAll();
  release(exec);
  await assert.rejects(created, (e: unknown) => e instanceof TerminalError && e.reason === "spawn_failed");
  assert.equal(disposed, 1, "the exec started meanwhile is killed and let go");
});

test("OutputTail keeps what keepTail of everything would", () => {
  for (const limit of [0, 1, 7, 64, 1000]) {
    const tail = new OutputTail(limit);
    const all: Buffer[] = [];
    let seed = limit + 1;
    for (let i = 0; i < 200; i++) {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      const chunk = Buffer.from("aé€b".repeat(1 + (seed % 13)));
      all.push(chunk);
      tail.push(chunk);
      if (i % 37 === 0 || i === 199) {
        const want = keepTail(Buffer.concat(all), limit);
        const got = tail.read();
        assert.deepEqual(got.buf, want.buf, `limit ${limit}, chunk ${i}`);
        assert.equal(got.truncated, Buffer.concat(all).length > limit);
      }
    }
  }
});

/** A fake binding: every start is recorded with hooks to feed output, end it, and see what the core called. */
function fakeBinding(opts: { resolveCwd?: TerminalBinding["resolveCwd"]; startGate?: Promise<void> } = {}) {
  const started: Array<{ cmd: TerminalCommand; output: (s: string) => void; end: (e: TerminalExit) => void; calls: string[] }> = [];
  const binding: TerminalBinding = {
    resolveCwd: opts.resolveCwd ?? (async (cwd) => cwd ?? "/ws"),
    async start(cmd, onOutput) {
      await opts.startGate;
      let end!: (e: TerminalExit) => void;
      const exited = new Promise<TerminalExit>((r) => (end = r));
      const calls: string[] = [];
      started.push({ cmd, output: (s) => onOutput(Buffer.from(s)), end, calls });
      const proc: TerminalProcess = {
        exited,
        kill: () => void calls.push("kill"),
        reap: () => void calls.push("reap"),
        close: () => void calls.push("close"),
        discard: async () => void calls.push("discard"),
      };
      return proc;
    },
    describe: (cmd) => `${cmd.file} ${cmd.args.join(" ")} @ ${cmd.cwd}`,
  };
  return { binding, started };
}

test("core: the request's env over the run's (never OPENRUNNER_RUN_ID), the binding's cwd and command line", async () => {
  const { binding, started } = fakeBinding();
  const lines: string[] = [];
  const set = new TerminalCore(binding, { env: { OPENRUNNER_RUN_ID: "run_1", A: "1" }, onStart: (_id, line) => lines.push(line) });
  await set.create({ command: "ls", args: ["-l"], cwd: "/ws/sub", env: [{ name: "A", value: "2" }, { name: "OPENRUNNER_RUN_ID", value: "x" }] });
  assert.deepEqual(started[0]!.cmd, { file: "ls", args: ["-l"], env: { OPENRUNNER_RUN_ID: "run_1", A: "2" }, cwd: "/ws/sub" });
  assert.deepEqual(lines, ["ls -l @ /ws/sub"]);
  const refusing = new TerminalCore(fakeBinding({ resolveCwd: async () => Promise.reject(new Error("nope")) }).binding, { env: {} });
  await assert.rejects(refusing.create({ command: "ls" }), (e: unknown) => e instanceof TerminalError && e.reason === "outside_workspace" && e.message === "nope");
});

test("core: output and exit status; after the exit the leftovers are reaped once and kill no longer reaches the process", async () => {
  const { binding, started } = fakeBinding();
  const set = new TerminalCore(binding, { env: {} });
  const id = await set.create({ command: "x", outputByteLimit: 4 });
  started[0]!.output("abcdef");
  assert.deepEqual(set.output(id), { output: "cdef", truncated: true });
  started[0]!.end({ exitCode: 3, signal: null });
  assert.deepEqual(await set.waitForExit(id), { exitCode: 3, signal: null });
  assert.deepEqual(set.output(id).exitStatus, { exitCode: 3, signal: null });
  set.kill(id);
  set.release(id);
  assert.deepEqual(started[0]!.calls, ["reap"]);
  assert.throws(() => set.waitForExit(id), (e: unknown) => e instanceof TerminalError && e.reason === "not_found");
});

test("core: creates still starting count against the cap; the run ending meanwhile discards what started", async () => {
  let open!: () => void;
  const { binding, started } = fakeBinding({ startGate: new Promise<void>((r) => (open = r)) });
  const set = new TerminalCore(binding, { env: {} });
  const pending = Array.from({ length: MAX_TERMINALS }, () => set.create({ command: "x" }));
  await new Promise((r) => setImmediate(r));
  await assert.rejects(set.create({ command: "x" }), (e: unknown) => e instanceof TerminalError && e.reason === "limit");
  await set.disposeAll();
  open();
  for (const p of pending) await assert.rejects(p, (e: unknown) => e instanceof TerminalError && e.reason === "spawn_failed");
  assert.equal(started.length, MAX_TERMINALS);
  assert.ok(started.every((s) => s.calls.join() === "discard"));
});

test("core: disposeAll closes every terminal and kills the running ones only", async () => {
  const { binding, started } = fakeBinding();
  const set = new TerminalCore(binding, { env: {} });
  await set.create({ command: "a" });
  const done = await set.create({ command: "b" });
  started[1]!.end({ exitCode: 0, signal: null });
  await set.waitForExit(done);
  await set.disposeAll();
  assert.deepEqual(started[0]!.calls, ["close", "kill"]);
  assert.deepEqual(started[1]!.calls, ["reap", "close"]);
  await assert.rejects(set.create({ command: "c" }), (e: unknown) => e instanceof TerminalError && e.reason === "spawn_failed");
});
