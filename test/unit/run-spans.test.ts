/**
 * The run span tree (src/telemetry/run-spans.ts) against a real store (SQLite in memory) and bus,
 * with an in-memory exporter: reads are asynchronous, off the bus handler, one loop per run; a
 * notification that comes after the read already saw the terminal event starts no second trace;
 * close() lets the reads under way finish before it ends what is still open.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from "@opentelemetry/sdk-trace-base";
import { Bus } from "../../src/bus/bus.ts";
import type { RunEvent } from "../../src/protocol/events.ts";
import { openSqliteStore } from "../../src/store/sqlite.ts";
import type { Store } from "../../src/store/types.ts";
import { RunSpans } from "../../src/telemetry/run-spans.ts";

describe("run spans", () => {
  let store: Store;
  let userId: string;
  let seq = 0;

  before(async () => {
    store = openSqliteStore({ file: ":memory:" });
    userId = (await store.users.create({ username: "alice", password_hash: "x", role: "user" })).id;
  });
  after(() => store.close());

  function setup() {
    const exporter = new InMemorySpanExporter();
    const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
    const bus = new Bus((err) => assert.fail(String(err)));
    const spans = new RunSpans({ tracer: provider.getTracer("test"), armIds: () => {}, bus, store });
    return { exporter, bus, spans };
  }

  /** A run row and its events, stored (ids 1…), the last `terminal` when asked. */
  async function storeRun(terminal: boolean): Promise<{ id: string; events: RunEvent[] }> {
    const id = `run_spans${++seq}`;
    await store.runs.insert({ id, user_id: userId, agent: "shell", status: "queued", input: { text: "x" }, metadata: {}, cwd: "/tmp", created_at: new Date().toISOString() });
    const ts = (ms: number) => new Date(Date.UTC(2026, 0, 1, 0, 0, 0, ms)).toISOString();
    const events = [
      { id: 1, run_id: id, ts: ts(0), type: "run.queued", data: { agent: "shell", input: { text: "x" }, position: 0 } },
      { id: 2, run_id: id, ts: ts(10), type: "run.started", data: { agent: "shell", cwd: "/tmp" } },
      ...(terminal ? [{ id: 3, run_id: id, ts: ts(20), type: "run.completed", data: { exit_code: 0, duration_ms: 10, result: "ok" } }] : []),
    ] as RunEvent[];
    await store.events.insertBatch(events);
    return { id, events };
  }

  test("notifications while a read is under way: one trace, ended once, even when the first read saw the terminal event", async () => {
    const { exporter, bus, spans } = setup();
    const run = await storeRun(true);
    // Both batches already stored; the second notification comes while the first read is out.
    bus.publish("run.events.stored", { run_id: run.id, count: 2 });
    bus.publish("run.events.stored", { run_id: run.id, count: 1 });
    await spans.close();
    // A late notification after everything was read starts nothing either.
    const runSpans = exporter.getFinishedSpans().filter((s) => s.name === "run shell");
    assert.equal(runSpans.length, 1, "one run span");
    assert.equal(runSpans[0]!.attributes["openrunner.status"], "completed");
    assert.equal(runSpans[0]!.attributes["openrunner.unfinished"], undefined);
    assert.deepEqual(exporter.getFinishedSpans().map((s) => s.name).sort(), ["agent shell", "run shell"]);
  });

  test("a late notification for a run already ended starts no second trace", async () => {
    const { exporter, bus, spans } = setup();
    const run = await storeRun(true);
    bus.publish("run.events.stored", { run_id: run.id, count: 3 });
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(exporter.getFinishedSpans().filter((s) => s.name === "run shell").length, 1);
    bus.publish("run.events.stored", { run_id: run.id, count: 1 });
    await spans.close();
    assert.equal(exporter.getFinishedSpans().filter((s) => s.name === "run shell").length, 1);
  });

  test("close() applies what is stored before ending live runs as unfinished", async () => {
    const { exporter, bus, spans } = setup();
    const run = await storeRun(false);
    bus.publish("run.events.stored", { run_id: run.id, count: 2 });
    bus.publish("run.status", { run_id: run.id, user_id: userId, agent: "shell", status: "preparing", prev: "queued" });
    await spans.close();
    await spans.close(); // idempotent
    const [runSpan] = exporter.getFinishedSpans().filter((s) => s.name === "run shell");
    assert.ok(runSpan, "the run span ended at close");
    assert.equal(runSpan.attributes["openrunner.unfinished"], true);
    assert.equal(runSpan.attributes["openrunner.user"], "alice", "the owner was read from the store");
    const names = exporter.getFinishedSpans().map((s) => s.name).sort();
    assert.deepEqual(names, ["agent shell", "preparing", "run shell"], "the events read before close were applied");
  });
});
