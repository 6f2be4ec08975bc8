/**
 * Orphan processes (src/agent/orphans.ts): every agent process carries `OPENRUNNER_RUN_ID`; the
 * tagged run ids of live processes are found from /proc, and a run's processes are killed by it.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { findRunProcesses, findTaggedRunIds, killRunOrphans } from "../../src/agent/orphans.ts";

const quiet = { warn: () => {} } as never;

test("a process tagged with a run id is found by id and among the tagged ids, and killRunOrphans ends it", async () => {
  const runId = `run_orphan_${process.pid}_${Date.now()}`;
  const child = spawn("sleep", ["30"], { env: { ...process.env, OPENRUNNER_RUN_ID: runId }, stdio: "ignore" });
  await once(child, "spawn");
  try {
    assert.deepEqual(findRunProcesses(runId), [child.pid]);
    assert.ok(findTaggedRunIds().includes(runId));
    const exited = once(child, "exit");
    assert.equal(killRunOrphans(runId, quiet), 1);
    const [, signal] = await exited;
    assert.equal(signal, "SIGKILL");
    assert.ok(!findTaggedRunIds().includes(runId));
  } finally {
    child.kill("SIGKILL");
  }
});
