/**
 * `createOpenRunner()` (src/embed.ts): the engine in this test's own process,
 * no HTTP. Real shell runs, the real SQLite store in a temporary data folder.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { Ajv } from "ajv";
import { createOpenRunner, type OpenRunner, type RunEvent } from "../../src/embed.ts";
import { createSilentLogger } from "../../src/log.ts";
import { buildRunEventJsonSchema } from "../../src/protocol/events.ts";

const env = { PATH: process.env.PATH, HOME: process.env.HOME };

async function collect(it: AsyncIterable<RunEvent>, until?: (e: RunEvent) => boolean): Promise<RunEvent[]> {
  const out: RunEvent[] = [];
  for await (const e of it) {
    out.push(e);
    if (until?.(e)) break;
  }
  return out;
}

describe("createOpenRunner: the engine as a library", () => {
  let dir: string;
  let runner: OpenRunner;
  // A small live buffer per reader (16 events): a slow reader is held back by backpressure.
  const open = () => createOpenRunner({ settings: { data_dir: path.join(dir, "data"), sse_buffer_events: 16 }, env, log: createSilentLogger() });
  before(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), "or-embed-"));
    runner = await open();
  });
  after(async () => {
    await runner.close();
    rmSync(dir, { recursive: true, force: true });
  });

  test("a shell run streams live, replays from any id with the same ids, and every event matches the published schema", async () => {
    const run = await runner.startRun({ input: { text: "echo hello; echo world" }, metadata: { agent_type: "shell" } });
    assert.equal(run.user_id, runner.user.id);
    const live = await collect(runner.events(run.id));
    assert.deepEqual(live.map((e) => e.type), ["run.queued", "run.started", "log", "log", "run.completed"]);
    assert.deepEqual(live.map((e) => e.id), [1, 2, 3, 4, 5]);
    assert.deepEqual(live.filter((e) => e.type === "log").map((e) => (e.data as { text: string }).text), ["hello", "world"]);
    const validate = new Ajv({ strict: false }).compile(buildRunEventJsonSchema());
    for (const e of live) assert.ok(validate(e), `${e.type}: ${JSON.stringify(validate.errors)}`);
    const rest = await collect(runner.events(run.id, { after: 3 }));
    assert.deepEqual(rest, live.slice(3));
    const final = await runner.waitRun(run.id);
    assert.equal(final.status, "completed");
    assert.equal(final.result, "world");
    assert.ok((await runner.listRuns()).runs.some((r) => r.id === run.id));
  });

  test("a body the API would refuse is refused with the same error class and code", async () => {
    await assert.rejects(runner.startRun({ metadata: { agent_type: "shell" } }), (err: Error & { code?: string; status?: number }) => {
      assert.equal(err.name, "ValidationError");
      assert.equal(err.code, "validation_failed");
      return true;
    });
    await assert.rejects(runner.getRun("run_nope"), (err: Error & { code?: string }) => err.code === "run_not_found" || err.name === "NotFoundError");
  });

  test("cancel mid-run ends the stream with run.cancelled; an aborted reader stops without an error", async () => {
    const run = await runner.startRun({ input: { text: "echo started; sleep 30" }, metadata: { agent_type: "shell" } });
    const ac = new AbortController();
    const seen: RunEvent[] = [];
    const reading = (async () => {
      for await (const e of runner.events(run.id, { signal: ac.signal })) seen.push(e);
    })();
    const events = runner.events(run.id);
    const upToLog = await collect(events, (e) => e.type === "log");
    assert.equal(upToLog.at(-1)!.type, "log");
    await runner.cancelRun(run.id);
    const all = await collect(runner.events(run.id));
    assert.equal(all.at(-1)!.type, "run.cancelled");
    ac.abort();
    await reading;
    assert.ok(seen.every((e, i) => e.id === i + 1), "no gap or duplicate before the abort");
    assert.equal((await runner.waitRun(run.id)).status, "cancelled");
  });

  test("a reader slower than the run, with a 16-event queue and a 16-event live buffer, is paused and resumed and still sees every event once, in order", async () => {
    const run = await runner.startRun({ input: { text: "seq 1 3000" }, metadata: { agent_type: "shell" } });
    const seen: RunEvent[] = [];
    for await (const e of runner.events(run.id, { highWaterMark: 16 })) {
      seen.push(e);
      if (seen.length % 8 === 0) await new Promise((r) => setTimeout(r, 1)); // slower than the run writes
    }
    assert.deepEqual(seen.map((e) => e.id), seen.map((_, i) => i + 1));
    assert.equal(seen.filter((e) => e.type === "log").length, 3000);
    assert.equal(seen.at(-1)!.type, "run.completed");
  });

  test("one engine per data folder; reopened, the runs and the owning user are still there", async () => {
    await assert.rejects(open(), /lock|in use|another/i);
    const before = (await runner.listRuns()).runs.map((r) => r.id);
    const userId = runner.user.id;
    await runner.close();
    await runner.close(); // safe twice
    runner = await open();
    assert.equal(runner.user.id, userId);
    assert.deepEqual((await runner.listRuns()).runs.map((r) => r.id), before);
    const events = await collect(runner.events(before.at(-1)!));
    assert.equal(events.at(-1)!.type, "run.completed");
  });
});
