/**
 * The turn-taking of project runs (`ProjectContainers.claim`): pure, no engine
 * (the client is never called by claim/ready/release). `wait` queues runs
 * FIFO past `max_runs_per_project`; `reject` refuses with 409 `project_busy`;
 * an aborted waiter leaves the queue; release is idempotent; projects and
 * users are independent.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { ProjectContainers } from "../../src/container/projects.ts";
import { ConflictError, ValidationError } from "../../src/errors.ts";

function make(mode: "wait" | "reject", max = 1) {
  return new ProjectContainers({
    client: () => {
      throw new Error("no engine call expected");
    },
    instance: "or-test",
    workspacesRoot: "/nonexistent",
    docker: { image: "img", user: "1000:1000", memory_mb: 256, cpus: 1, pids_limit: 64, max_projects_per_user: 8, max_runs_per_project: max, project_busy: mode },
  });
}

const settled = async (p: Promise<unknown>) => {
  let done = false;
  void p.then(
    () => (done = true),
    () => (done = true),
  );
  await new Promise((r) => setImmediate(r));
  return done;
};

test("wait: runs past the limit wait in order and get their turn when one is released", async () => {
  const p = make("wait");
  const a = p.claim("u1", "site");
  const b = p.claim("u1", "site");
  const c = p.claim("u1", "site");
  await a.ready();
  assert.deepEqual(p.load("u1", "site"), { active: 1, waiting: 2 });
  const rb = b.ready();
  const rc = c.ready();
  assert.equal(await settled(rb), false);
  const released: string[] = [];
  a.onRelease(() => released.push("a"));
  a.release();
  a.release();
  assert.deepEqual(released, ["a"], "release runs its callbacks once");
  await rb;
  assert.equal(await settled(rc), false, "c still waits: FIFO, one at a time");
  assert.deepEqual(p.load("u1", "site"), { active: 1, waiting: 1 });
  b.release();
  await rc;
  c.release();
  assert.deepEqual(p.load("u1", "site"), { active: 0, waiting: 0 });
});

test("wait: an aborted waiter rejects and leaves the queue; the next one moves up", async () => {
  const p = make("wait");
  const a = p.claim("u1", "site");
  const b = p.claim("u1", "site");
  const c = p.claim("u1", "site");
  const ac = new AbortController();
  const rb = b.ready(ac.signal);
  ac.abort(new Error("cancelled"));
  await assert.rejects(rb, /cancelled/);
  b.release();
  assert.deepEqual(p.load("u1", "site"), { active: 1, waiting: 1 });
  a.release();
  await c.ready();
  c.release();
});

test("max_runs_per_project 2 lets two run at once", async () => {
  const p = make("wait", 2);
  const a = p.claim("u1", "site");
  const b = p.claim("u1", "site");
  await Promise.all([a.ready(), b.ready()]);
  assert.deepEqual(p.load("u1", "site"), { active: 2, waiting: 0 });
});

test("reject: a claim past the limit is a 409 project_busy; other projects and users are free; free again after release", () => {
  const p = make("reject");
  const a = p.claim("u1", "site");
  assert.throws(
    () => p.claim("u1", "site"),
    (err: unknown) => err instanceof ConflictError && err.code === "project_busy" && err.status === 409,
  );
  p.claim("u1", "other").release();
  p.claim("u2", "site").release();
  a.release();
  p.claim("u1", "site").release();
});

test("project ids are checked", () => {
  for (const bad of ["", "../x", ".hidden", "a/b", "x".repeat(65), "sp ace"]) assert.throws(() => ProjectContainers.check(bad), ValidationError, bad);
  for (const good of ["site", "A.b_c-1", "x".repeat(64)]) ProjectContainers.check(good);
});
