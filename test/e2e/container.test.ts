/**
 * The container layer against the real Docker engine (DOCKER_HOST or
 * /var/run/docker.sock) with the offline agent image (built here when
 * missing): demultiplexed exec output and exit codes, the lock-down applied
 * by `create` (non-root, limits, network none, read-only root, one bind
 * mount), killing an exec's whole process tree, stop/remove, labels, the
 * orphan and idle sweeps, and error mapping.
 *
 * With no engine reachable these tests FAIL with a message saying how to
 * start one (scripts/ci-docker.sh). Set OPENRUNNER_SKIP_DOCKER=1 to skip them
 * explicitly (a visible skip, never a silent one).
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { chownSync, chmodSync, existsSync, mkdtempSync, readFileSync, realpathSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import type { Readable } from "node:stream";
import { createDockerClient } from "../../src/container/client.ts";
import { ContainerError } from "../../src/container/errors.ts";
import { buildAgentImage } from "../../src/container/image.ts";
import { containerLabels, LABEL } from "../../src/container/labels.ts";
import { ContainerSweeper } from "../../src/container/sweeper.ts";
import type { ContainerClient, ContainerHandle, ContainerSpec } from "../../src/container/types.ts";

const SKIP = process.env.OPENRUNNER_SKIP_DOCKER === "1";
const IMAGE = process.env.OPENRUNNER_TEST_IMAGE ?? "openrunner-agent:latest";
const MIB = 1024 * 1024;
const LIMITS = { memoryBytes: 256 * MIB, nanoCpus: 1_000_000_000, pidsLimit: 128 };

if (SKIP) console.warn("# container e2e tests SKIPPED: OPENRUNNER_SKIP_DOCKER=1");

/** Lines of a stream, once it ended. */
function linesOf(s: Readable): Promise<string[]> {
  let text = "";
  s.setEncoding("utf8").on("data", (d: string) => (text += d));
  return new Promise((resolve) => s.once("end", () => resolve(text.split("\n").filter((l) => l !== ""))));
}

async function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([p, new Promise<never>((_, rej) => (timer = setTimeout(() => rej(new Error(`${what} took more than ${ms} ms`)), ms)))]);
  } finally {
    clearTimeout(timer);
  }
}

describe("container layer on the real engine", { skip: SKIP ? "OPENRUNNER_SKIP_DOCKER=1" : false }, () => {
  let client: ContainerClient;
  let workspace: string;
  const instance = `test-${randomBytes(4).toString("hex")}`;
  const runId = `run_test_${randomBytes(4).toString("hex")}`;

  const spec = (over: Partial<ContainerSpec> = {}): ContainerSpec => ({
    image: IMAGE,
    labels: containerLabels({ instance, kind: "run", runId, userId: "usr_test" }),
    workspace,
    user: "1000:1000",
    limits: LIMITS,
    ...over,
  });

  before(async () => {
    client = createDockerClient({ dockerHost: process.env.DOCKER_HOST });
    try {
      await client.ping({ timeoutMs: 5000 });
    } catch (err) {
      throw new Error(
        `Docker engine not reachable (${client.engine}): ${(err as Error).message}. ` +
          "Start one with scripts/ci-docker.sh (installs docker.io, starts dockerd, builds the test image), " +
          "or set OPENRUNNER_SKIP_DOCKER=1 to skip the Docker tests explicitly.",
      );
    }
    if (!(await client.imageInfo(IMAGE))) {
      console.log(`# building ${IMAGE} (offline) for the container tests`);
      await buildAgentImage({ client, offline: true, tag: IMAGE });
    }
    workspace = realpathSync(mkdtempSync(path.join(os.tmpdir(), "openrunner-ct-")));
    // The container user (1000) must be able to write the bind-mounted workspace.
    if (process.getuid?.() === 0) chownSync(workspace, 1000, 1000);
    else chmodSync(workspace, 0o777);
  });

  after(async () => {
    if (!client) return;
    for (const c of await client.list({ [LABEL.instance]: instance }).catch(() => [])) await client.get(c.id).remove();
    if (workspace) rmSync(workspace, { recursive: true, force: true });
  });

  test("exec: demultiplexed stdout/stderr, exit code, non-root, workspace bind mount; cold start measured", async (t) => {
    const t0 = performance.now();
    await using c = await client.create(spec());
    await c.start();
    const x = await c.exec({ argv: ["sh", "-c", "echo hi; echo err >&2; id -u; echo made > /workspace/from-container; exit 3"], env: { OPENRUNNER_RUN_ID: runId } });
    let tFirst = 0;
    x.stdout.once("data", () => (tFirst = performance.now()));
    const [out, err, exit] = await Promise.all([linesOf(x.stdout), linesOf(x.stderr), x.exit]);
    t.diagnostic(`cold start (create + start + exec to first stdout byte): ${(tFirst - t0).toFixed(0)} ms`);
    assert.deepEqual(out, ["hi", "1000"]);
    assert.deepEqual(err, ["err"]);
    assert.equal(exit.exitCode, 3);
    assert.equal(exit.error, undefined);
    assert.notEqual(out[1], "0", "the exec must not run as root");
    assert.equal(readFileSync(path.join(workspace, "from-container"), "utf8"), "made\n");

    // Interleaved, larger output keeps its order per stream and every byte.
    const big = await c.execCollect({ argv: ["sh", "-c", "i=0; while [ $i -lt 2000 ]; do echo out$i; echo err$i >&2; i=$((i+1)); done"] });
    const outLines = big.stdout.trim().split("\n");
    const errLines = big.stderr.trim().split("\n");
    assert.equal(outLines.length, 2000);
    assert.equal(errLines.length, 2000);
    assert.equal(outLines[1999], "out1999");
    assert.equal(errLines[0], "err0");
  });

  test("create locks the container down: limits, network none, read-only root, one bind mount, no capabilities, labels", async () => {
    await using c = await client.create(spec({ limits: { memoryBytes: 128 * MIB, nanoCpus: 500_000_000, pidsLimit: 64 } }));
    await c.start();
    const s = await c.inspect();
    assert.equal(s.running, true);
    assert.equal(s.user, "1000:1000");
    assert.equal(s.hostConfig.memoryBytes, 128 * MIB);
    assert.equal(s.hostConfig.memorySwapBytes, 128 * MIB, "no swap beyond the memory limit");
    assert.equal(s.hostConfig.nanoCpus, 500_000_000);
    assert.equal(s.hostConfig.pidsLimit, 64);
    assert.equal(s.hostConfig.networkMode, "none");
    assert.equal(s.hostConfig.readonlyRootfs, true);
    assert.equal(s.hostConfig.privileged, false);
    assert.deepEqual(s.hostConfig.capDrop, ["ALL"]);
    assert.deepEqual(s.hostConfig.capAdd, []);
    assert.ok(s.hostConfig.securityOpt.some((o) => o.startsWith("no-new-privileges")), JSON.stringify(s.hostConfig.securityOpt));
    assert.equal(s.hostConfig.init, true);
    assert.deepEqual(s.hostConfig.mounts, [{ type: "bind", source: workspace, target: "/workspace", readOnly: false }]);
    assert.deepEqual(Object.keys(s.hostConfig.tmpfs).sort(), ["/home/agent", "/tmp"]);
    assert.equal(s.labels[LABEL.instance], instance);
    assert.equal(s.labels[LABEL.runId], runId);
    assert.equal(s.labels[LABEL.kind], "run");

    // Inside: only the loopback interface, a socket to the host's bridge address fails, the root is read-only, /tmp and HOME are writable.
    const r = await c.execCollect({
      argv: [
        "sh",
        "-c",
        `ls /sys/class/net; node -e "require('net').connect(80,'172.17.0.1').on('connect',()=>{console.log('connected');process.exit(0)}).on('error',e=>{console.log('net:'+e.code);process.exit(0)})"; touch /etc/x 2>/dev/null && echo root-writable || echo root-readonly; touch /tmp/x "$HOME/x" && echo tmp-ok; cat /sys/fs/cgroup/pids/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids.max`,
      ],
    });
    const lines = r.stdout.trim().split("\n");
    assert.deepEqual(lines, ["lo", "net:ENETUNREACH", "root-readonly", "tmp-ok", "64"], r.stderr);
  });

  test("kill ends the exec's whole process tree (children, a setsid'd daemon), not other execs", async (t) => {
    await using c = await client.create(spec());
    await c.start();
    const bystander = await c.exec({ argv: ["sleep", "300"] });
    const x = await c.exec({ argv: ["sh", "-c", "setsid sleep 301 & sleep 302 & sleep 303; echo never"] });
    await new Promise((r) => setTimeout(r, 300));
    const before = await c.execCollect({ argv: ["ps", "-o", "pid,args"] });
    assert.match(before.stdout, /sleep 301/);
    const tKill = performance.now();
    const n = await x.kill("TERM");
    assert.ok(n >= 4, `signalled ${n} processes, expected sh and its three sleeps`);
    const exit = await within(x.exit, 5000, "exit after kill");
    t.diagnostic(`kill TERM -> exec exit: ${(performance.now() - tKill).toFixed(0)} ms`);
    assert.equal(exit.exitCode, 143, "sh ended by SIGTERM (128+15)");
    const after = await c.execCollect({ argv: ["ps", "-o", "pid,args"] });
    assert.doesNotMatch(after.stdout, /sleep 30[123]/, after.stdout);
    assert.match(after.stdout, /sleep 300/, "the other exec is untouched");
    assert.equal(await x.kill("KILL"), 0, "nothing left to kill");
    await bystander[Symbol.asyncDispose]();
    assert.equal((await within(bystander.exit, 5000, "bystander exit")).exitCode, 137);
  });

  test("stop and remove; disposal is idempotent; a vanished container answers container_not_found", async () => {
    const c: ContainerHandle = await client.create(spec());
    await c.start();
    const x = await c.exec({ argv: ["sleep", "300"] });
    const t = performance.now();
    await c.stop({ timeoutS: 5 });
    const stopMs = performance.now() - t;
    assert.ok(stopMs < 4000, `stop took ${stopMs} ms: PID 1 must react to SIGTERM`);
    const exit = await within(x.exit, 5000, "exec exit after stop");
    assert.notEqual(exit.exitCode, 0);
    const s = await c.inspect();
    assert.equal(s.running, false);
    await c.stop(); // already stopped: fine
    assert.equal(await x.kill("TERM"), 0, "kill on a stopped container is a no-op");
    await c.remove();
    await c.remove(); // already gone: fine
    await c[Symbol.asyncDispose]();
    await assert.rejects(c.inspect(), (err: unknown) => err instanceof ContainerError && err.code === "container_not_found" && err.status === 404);
    assert.deepEqual(await client.list({ [LABEL.instance]: instance, [LABEL.runId]: runId }).then((l) => l.filter((x2) => x2.id === c.id)), []);
  });

  test("a process over the memory limit is OOM-killed (exit 137) and counted", async () => {
    await using c = await client.create(spec({ limits: { ...LIMITS, memoryBytes: 64 * MIB } }));
    await c.start();
    assert.equal(await c.oomKills(), 0);
    const r = await c.execCollect({ argv: ["node", "-e", "const a=[];for(;;)a.push(Buffer.alloc(4e6,1))"] });
    assert.equal(r.exitCode, 137, r.stderr.slice(-500));
    assert.equal(await c.oomKills(), 1, "the memory cgroup counted the OOM kill");
    assert.equal((await c.inspect()).running, true, "the container survives its exec's OOM kill");
  });

  test("sweeper: orphans of this instance are removed at start, other instances' and adopted ones kept; idle project containers removed", async () => {
    const other = `test-${randomBytes(4).toString("hex")}`;
    const orphan = await client.create(spec());
    await orphan.start();
    const notStarted = await client.create(spec());
    const project = await client.create(spec({ labels: containerLabels({ instance, kind: "project", projectId: "prj_1", userId: "usr_test" }) }));
    await project.start();
    await using foreign = await client.create(spec({ labels: containerLabels({ instance: other, kind: "run", runId }) }));

    let now = 1_000_000;
    const removedEvents: string[] = [];
    await using sweeper = new ContainerSweeper({ client, instance, idleMs: 60_000, now: () => now, onRemoved: (c, why) => removedEvents.push(`${why}:${c.id}`) });
    const r = await sweeper.sweepOrphans({ adopt: (c) => c.labels[LABEL.kind] === "project" && c.state === "running" });
    assert.deepEqual(r.removed.map((c) => c.id).sort(), [orphan.id, notStarted.id].sort());
    assert.deepEqual(r.adopted.map((c) => c.id), [project.id]);
    assert.deepEqual(r.failed, []);
    const mine = await client.list({ [LABEL.instance]: instance });
    assert.deepEqual(mine.map((c) => c.id), [project.id]);
    assert.equal((await client.list({ [LABEL.instance]: other })).length, 1, "another instance's container is not touched");

    // Idle sweep: held containers stay, released ones go after idleMs.
    const release = sweeper.hold(project.id);
    now += 120_000;
    assert.deepEqual(await sweeper.sweepIdle(), []);
    release();
    now += 59_000;
    assert.deepEqual(await sweeper.sweepIdle(), []);
    now += 1_000;
    assert.deepEqual((await sweeper.sweepIdle()).map((c) => c.id), [project.id]);
    assert.equal((await client.list({ [LABEL.instance]: instance })).length, 0);
    assert.deepEqual(removedEvents.sort(), [`orphan:${orphan.id}`, `orphan:${notStarted.id}`, `idle:${project.id}`].sort());
    assert.ok(!existsSync(path.join(workspace, "nothing")));
  });

  test("errors: unknown image -> image_not_found, root user refused, exec of a missing command -> exec_failed, engine down -> engine_unavailable", async () => {
    await assert.rejects(client.create(spec({ image: `openrunner-missing-${randomBytes(3).toString("hex")}:none` })), (err: unknown) => {
      assert.ok(err instanceof ContainerError);
      assert.equal(err.code, "image_not_found");
      return true;
    });
    await assert.rejects(client.create(spec({ user: "0:0" })), /non-root/);
    {
      await using c = await client.create(spec());
      await c.start();
      const x = await c.exec({ argv: ["no-such-binary", "--flag"] });
      const [out, exit] = await Promise.all([linesOf(x.stdout), x.exit]);
      assert.deepEqual(out, [], "the engine's start error is not passed off as program output");
      assert.ok(exit.error instanceof ContainerError && exit.error.code === "exec_failed", String(exit.error));
      assert.match(exit.error.message, /no-such-binary/);
      assert.ok(exit.exitCode === 126 || exit.exitCode === 127, String(exit.exitCode));
      await assert.rejects(c.execCollect({ argv: ["true"], cwd: "/no/such/dir" }), (err: unknown) => err instanceof ContainerError && err.code === "exec_failed");
    }
    const down = createDockerClient({ dockerHost: `unix://${os.tmpdir()}/openrunner-no-engine-${randomBytes(3).toString("hex")}.sock` });
    await assert.rejects(down.ping({ timeoutMs: 2000 }), (err: unknown) => err instanceof ContainerError && err.code === "engine_unavailable" && err.status === 503);
    await assert.rejects(down.create(spec()), (err: unknown) => err instanceof ContainerError && err.code === "engine_unavailable");
  });
});
