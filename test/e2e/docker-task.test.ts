/**
 * The task.json contract (OpenAaaS) end to end: the real server (child
 * process, port 0) runs `agent_type: "task"` runs of a batch image built here
 * offline (test/fixtures/task-image: the agent image plus task.js as the
 * ENTRYPOINT) on the real engine. Covers task.json and input/ in, the
 * image's ENTRYPOINT + CMD as the non-root user, output as `log` events,
 * artifacts listed in run.completed (inputs excluded, links never followed,
 * caps), their download (confinement, headers, another user's 404), a
 * failing task, a timeout, an ENTRYPOINT that cannot start (`exec_failed`),
 * the admission checks (host isolation, image not allowed, image missing in
 * the engine), and a docker run filling its workspace's filesystem
 * (`disk_full`, on a 4 MiB tmpfs mounted here: needs root, else it is
 * skipped with a visible message).
 *
 * With no engine reachable these tests FAIL (start one with
 * scripts/ci-docker.sh); OPENRUNNER_SKIP_DOCKER=1 skips them visibly.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { createDockerClient } from "../../src/container/client.ts";
import { buildAgentImage } from "../../src/container/image.ts";
import { LABEL } from "../../src/container/labels.ts";
import { createTarStream } from "../../src/container/tar.ts";
import type { ContainerClient } from "../../src/container/types.ts";
import { connectDocker } from "../helpers/docker.ts";
import { spawnServer, type TestServer } from "../helpers/spawn-server.ts";
import { allEvents, type Ev } from "../helpers/events.ts";
import { readSse } from "../helpers/sse.ts";

const SKIP = process.env.OPENRUNNER_SKIP_DOCKER === "1";
const BASE_IMAGE = process.env.OPENRUNNER_TEST_IMAGE ?? "openrunner-agent:latest";
const TASK_IMAGE = "openrunner-task-test:latest";
const MISSING_IMAGE = "openrunner-task-missing:never-built";
/** A batch image whose ENTRYPOINT does not exist: the exec cannot start. */
const BROKEN_IMAGE = "openrunner-task-broken:latest";
const FIXTURE = path.join(path.dirname(fileURLToPath(import.meta.url)), "../fixtures/task-image");
if (SKIP) console.warn("# docker task e2e tests SKIPPED: OPENRUNNER_SKIP_DOCKER=1");

/** Builds the batch image from the fixture (FROM the agent image), offline. */
async function buildTaskImage(client: ContainerClient): Promise<void> {
  const dockerfile = readFileSync(path.join(FIXTURE, "Dockerfile"), "utf8").replace(/^FROM .*$/m, `FROM ${BASE_IMAGE}`);
  await client.buildImage(
    createTarStream([
      { type: "file", path: "Dockerfile", content: dockerfile },
      { type: "file", path: "task.js", source: path.join(FIXTURE, "task.js"), mode: 0o644 },
    ]),
    { tag: TASK_IMAGE },
  );
  await client.buildImage(createTarStream([{ type: "file", path: "Dockerfile", content: `FROM ${BASE_IMAGE}\nENTRYPOINT ["/opt/task/missing-binary"]\n` }]), { tag: BROKEN_IMAGE });
}

async function createTask(s: TestServer, token: string, text: string, metadata: Record<string, unknown> = {}, files?: unknown[]): Promise<Response> {
  return s.api("/api/runs", {
    method: "POST",
    token,
    json: { input: { text, ...(files ? { files } : {}) }, metadata: { agent_type: "task", isolation: "docker", image: TASK_IMAGE, ...metadata } },
  });
}

async function runTask(s: TestServer, token: string, text: string, metadata: Record<string, unknown> = {}, files?: unknown[]): Promise<{ runId: string; events: Ev[] }> {
  const res = await createTask(s, token, text, metadata, files);
  assert.equal(res.status, 201, await res.clone().text());
  const runId = ((await res.json()) as { run_id: string }).run_id;
  return { runId, events: await allEvents(s, token, runId, 60_000) };
}

const logs = (events: Ev[], stream: string) => events.filter((e) => e.type === "log" && e.data.stream === stream).map((e) => e.data.text as string);

describe("task.json contract end to end", { skip: SKIP ? "OPENRUNNER_SKIP_DOCKER=1" : false }, () => {
  let client: ContainerClient;
  let s: TestServer;
  let admin: string;
  let bob: string;
  let instance: string;
  let confDir: string;

  before(async () => {
    client = await connectDocker();
    if (!(await client.imageInfo(BASE_IMAGE))) await buildAgentImage({ client, offline: true, tag: BASE_IMAGE });
    await buildTaskImage(client);
    confDir = mkdtempSync(path.join(os.tmpdir(), "openrunner-task-conf-"));
    const conf = path.join(confDir, "openrunner.yaml");
    writeFileSync(conf, `docker:\n  image: ${BASE_IMAGE}\n  task_images: ["${TASK_IMAGE}", "${MISSING_IMAGE}", "${BROKEN_IMAGE}"]\n  artifacts_max_files: 20\n`);
    s = await spawnServer({ env: { OPENRUNNER_CONFIG: conf, ...(process.env.DOCKER_HOST ? { DOCKER_HOST: process.env.DOCKER_HOST } : {}) } });
    admin = await s.login();
    const created = await s.api("/api/users", { method: "POST", token: admin, json: { username: "bob", password: "bob-password-1" } });
    assert.equal(created.status, 201, await created.clone().text());
    bob = await s.login("bob", "bob-password-1");
    instance = readFileSync(path.join(s.dataDir, "instance-id"), "utf8").trim();
  });

  after(async () => {
    if (s) {
      await s.stop();
      s.cleanup();
    }
    if (confDir) rmSync(confDir, { recursive: true, force: true });
    if (client && instance) for (const c of await client.list({ [LABEL.instance]: instance }).catch(() => [])) await client.get(c.id).remove();
  });

  test("round trip: task.json and input/ in, ENTRYPOINT+CMD as uid 1000, logs, artifacts without inputs or links, downloads confined", async () => {
    const bytes = Buffer.from([0, 1, 2, 250, 255]);
    const { runId, events } = await runTask(s, admin, "ok", { timeout_secs: 60 }, [
      { path: "a.txt", content: "hello input" },
      { path: "sub/b.bin", content: bytes.toString("base64"), encoding: "base64" },
    ]);
    const types = events.map((e) => e.type);
    assert.equal(types.at(-1), "run.completed", JSON.stringify(events.slice(-2)));
    assert.deepEqual(events.map((e) => e.id), events.map((_, i) => i + 1));
    for (const t of ["run.queued", "container.created", "container.started", "run.started", "container.stopped", "container.removed"]) assert.ok(types.includes(t), `${t} in ${types.join(" ")}`);
    const out = logs(events, "stdout");
    assert.equal(out[0], `argv: ${JSON.stringify(["--from-cmd", "two words"])}`, "the image's ENTRYPOINT runs with its CMD");
    assert.equal(out[1], "uid: 1000 cwd: /workspace");
    assert.equal(out[2], `run_id: ${runId}`, "task.json carries the run id");
    assert.equal(out.at(-1), "done");
    assert.ok(logs(events, "stderr").includes("task-stderr: started"));
    assert.ok(logs(events, "stderr").some((t) => /^openrunner: 3 symbolic link/.test(t)), JSON.stringify(logs(events, "stderr")));

    const completed = events.at(-1)!;
    assert.equal(completed.data.exit_code, 0);
    assert.deepEqual(completed.data.artifacts, [
      { path: "out/nested/deep/data.bin", size_bytes: 256 },
      { path: "out/result.json", size_bytes: completed.data.artifacts[1]?.size_bytes },
      { path: "page.html", size_bytes: 26 },
      { path: "summary.txt", size_bytes: 5 },
    ]);
    const run = (await (await s.api(`/api/runs/${runId}`, { token: admin })).json()) as Record<string, any>;
    const taskJson = JSON.parse(readFileSync(path.join(run.cwd, "task.json"), "utf8"));
    assert.deepEqual(taskJson.input, { text: "ok", files: ["a.txt", "sub/b.bin"] });
    assert.equal(taskJson.metadata.image, TASK_IMAGE);

    const list = await s.api(`/api/runs/${runId}/artifacts`, { token: admin });
    assert.equal(list.status, 200);
    assert.deepEqual(((await list.json()) as { artifacts: unknown }).artifacts, completed.data.artifacts);

    const result = await s.api(`/api/runs/${runId}/artifacts/out/result.json`, { token: admin });
    assert.equal(result.status, 200);
    assert.equal(result.headers.get("content-type"), "application/json");
    assert.match(result.headers.get("content-disposition") ?? "", /^attachment; filename="result.json"/);
    const body = JSON.parse(await result.text());
    assert.equal(body.echo, "ok");
    assert.deepEqual(body.inputs, { "a.txt": Buffer.from("hello input").toString("base64"), "sub/b.bin": bytes.toString("base64") }, "input files reached the container byte for byte");

    const bin = await s.api(`/api/runs/${runId}/artifacts/out/nested/deep/data.bin`, { token: admin });
    assert.equal(bin.headers.get("content-type"), "application/octet-stream");
    assert.deepEqual(Buffer.from(await bin.arrayBuffer()), Buffer.from(Array.from({ length: 256 }, (_, i) => i)));
    const html = await s.api(`/api/runs/${runId}/artifacts/page.html`, { token: admin });
    assert.equal(html.headers.get("x-content-type-options"), "nosniff");
    assert.match(html.headers.get("content-security-policy") ?? "", /sandbox/);
    assert.match(html.headers.get("content-disposition") ?? "", /^attachment/);
    await html.arrayBuffer();

    // Links (outside, to a directory, inside), inputs and escapes are never served.
    for (const p of ["leak", "out/etc-dir/passwd", "out/inside-link", "task.json", "input/a.txt", "nope.txt"]) {
      const r = await s.api(`/api/runs/${runId}/artifacts/${p}`, { token: admin });
      assert.ok(r.status === 404 || r.status === 400, `${p}: ${r.status}`);
      assert.doesNotMatch(await r.text(), /root:x:0:0/);
    }
    for (const p of ["..%2F..%2F..%2Fetc%2Fpasswd", "out%2F..%2F..%2Ftask.json", "%2Fetc%2Fpasswd"]) {
      const r = await s.api(`/api/runs/${runId}/artifacts/${p}`, { token: admin });
      assert.equal(r.status, 400, p);
      assert.equal(((await r.json()) as { error: { code: string } }).error.code, "invalid_path");
    }
    // Another user's run does not exist for them.
    assert.equal((await s.api(`/api/runs/${runId}/artifacts`, { token: bob })).status, 404);
    assert.equal((await s.api(`/api/runs/${runId}/artifacts/summary.txt`, { token: bob })).status, 404);
    assert.deepEqual(await client.list({ [LABEL.runId]: runId }), [], "the per-run container is removed");
  });

  test("a task exiting non-zero fails the run with exit_nonzero and its stderr; no artifacts", async () => {
    const { runId, events } = await runTask(s, admin, "fail");
    const last = events.at(-1)!;
    assert.equal(last.type, "run.failed");
    assert.equal(last.data.error.code, "exit_nonzero");
    assert.equal(last.data.exit_code, 3);
    assert.match(last.data.error.message, /giving up/);
    const list = (await (await s.api(`/api/runs/${runId}/artifacts`, { token: admin })).json()) as { artifacts: unknown[] };
    assert.deepEqual(list.artifacts, []);
    assert.equal((await s.api(`/api/runs/${runId}/artifacts/partial.txt`, { token: admin })).status, 404);
  });

  test("over the file cap: the first files in order are listed, a log warning says how many were left out", async () => {
    const { events } = await runTask(s, bob, "many");
    const last = events.at(-1)!;
    assert.equal(last.type, "run.completed");
    assert.deepEqual(last.data.artifacts.map((a: { path: string }) => a.path), Array.from({ length: 20 }, (_, i) => `many/f${String(i).padStart(2, "0")}.txt`));
    assert.ok(logs(events, "stderr").some((t) => /artifacts over the cap .* 20 listed .* 10 more file\(s\) not listed/.test(t)), JSON.stringify(logs(events, "stderr")));
  });

  test("admission: a task on the host, an image not allowed, task fields on other agents are 400; an allowed image missing in the engine fails the run image_not_found", async () => {
    const host = await createTask(s, admin, "ok", { isolation: "none" });
    assert.equal(host.status, 400);
    assert.equal(((await host.json()) as { error: { code: string } }).error.code, "task_needs_docker");
    const other = await createTask(s, admin, "ok", { image: BASE_IMAGE });
    assert.equal(other.status, 400);
    assert.equal(((await other.json()) as { error: { code: string } }).error.code, "image_not_allowed");
    assert.equal((await createTask(s, admin, "ok", { image: undefined })).status, 400);
    assert.equal((await createTask(s, admin, "ok", { cwd: "somewhere" })).status, 400);
    assert.equal((await createTask(s, admin, "ok", {}, [{ path: "../x", content: "" }])).status, 400);
    const shell = await s.api("/api/runs", { method: "POST", token: admin, json: { input: { text: "true" }, metadata: { agent_type: "shell", isolation: "docker", image: TASK_IMAGE } } });
    assert.equal(shell.status, 400);

    const { events } = await runTask(s, admin, "ok", { image: MISSING_IMAGE });
    const last = events.at(-1)!;
    assert.equal(last.type, "run.failed", JSON.stringify(events));
    assert.equal(last.data.error.code, "image_not_found");
  });

  test("a task past its timeout ends timed_out: no artifacts, no container left", async () => {
    const { runId, events } = await runTask(s, admin, "sleep", { timeout_secs: 2 });
    const last = events.at(-1)!;
    assert.equal(last.type, "run.timed_out", JSON.stringify(events));
    assert.ok(logs(events, "stdout").some((t) => t.startsWith("run_id:")), "the task was running");
    assert.deepEqual(((await (await s.api(`/api/runs/${runId}/artifacts`, { token: admin })).json()) as { artifacts: unknown[] }).artifacts, []);
    assert.equal((await s.api(`/api/runs/${runId}/artifacts/started.txt`, { token: admin })).status, 404);
    assert.deepEqual(await client.list({ [LABEL.runId]: runId }), [], "the per-run container is removed");
  });

  test("an ENTRYPOINT that cannot be executed fails the run exec_failed; nothing is left running", async () => {
    const { runId, events } = await runTask(s, admin, "ok", { image: BROKEN_IMAGE });
    const last = events.at(-1)!;
    assert.equal(last.type, "run.failed", JSON.stringify(events));
    assert.equal(last.data.error.code, "exec_failed");
    assert.match(last.data.error.message, /missing-binary/);
    assert.deepEqual(await client.list({ [LABEL.runId]: runId }), [], "the per-run container is removed");
  });
});

describe("disk full", { skip: SKIP ? "OPENRUNNER_SKIP_DOCKER=1" : false }, () => {
  let client: ContainerClient;
  let mountDir: string;
  let mounted = false;
  let s: TestServer | undefined;

  before(async () => {
    client = createDockerClient({ dockerHost: process.env.DOCKER_HOST });
    if (!(await client.imageInfo(BASE_IMAGE))) await buildAgentImage({ client, offline: true, tag: BASE_IMAGE });
    mountDir = mkdtempSync(path.join(os.tmpdir(), "openrunner-small-fs-"));
    try {
      execFileSync("mount", ["-t", "tmpfs", "-o", "size=4m,mode=0755", "tmpfs", mountDir], { stdio: "pipe" });
      mounted = true;
    } catch (err) {
      console.warn(`# disk full test SKIPPED: cannot mount a small tmpfs (needs root): ${(err as Error).message.split("\n")[0]}`);
    }
  });

  after(async () => {
    if (s) {
      await s.stop();
      s.cleanup();
    }
    if (mounted) execFileSync("umount", [mountDir]);
    rmSync(mountDir, { recursive: true, force: true });
  });

  test("a docker run that fills its workspace's filesystem fails with disk_full", async (t) => {
    if (!mounted) return t.skip("no small tmpfs (needs root)");
    s = await spawnServer({ env: { OPENRUNNER_WORKSPACES_DIR: mountDir, ...(process.env.DOCKER_HOST ? { DOCKER_HOST: process.env.DOCKER_HOST } : {}) } });
    const token = await s.login();
    const res = await s.api("/api/runs", { method: "POST", token, json: { input: { text: "dd if=/dev/zero of=/workspace/big bs=64k count=200" }, metadata: { agent_type: "shell", isolation: "docker" } } });
    assert.equal(res.status, 201, await res.clone().text());
    const runId = ((await res.json()) as { run_id: string }).run_id;
    const out = await readSse(`${s.url}/api/runs/${runId}/events`, { token, timeoutMs: 60_000 });
    const last = JSON.parse(out.messages.at(-1)!.data) as Ev;
    assert.equal(last.type, "run.failed", JSON.stringify(last));
    assert.equal(last.data.error.code, "disk_full");
    assert.match(last.data.error.message, /filesystem is full/);
    // The same failure with room left is an ordinary one.
    rmSync(path.join((await (await s.api(`/api/runs/${runId}`, { token })).json() as { cwd: string }).cwd, "big"));
    const res2 = await s.api("/api/runs", { method: "POST", token, json: { input: { text: "exit 1" }, metadata: { agent_type: "shell", isolation: "docker" } } });
    const run2 = ((await res2.json()) as { run_id: string }).run_id;
    const out2 = await readSse(`${s.url}/api/runs/${run2}/events`, { token, timeoutMs: 60_000 });
    assert.equal((JSON.parse(out2.messages.at(-1)!.data) as Ev).data.error.code, "exit_nonzero");
  });
});
