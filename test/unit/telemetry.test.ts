/**
 * Telemetry's pure parts and its off switch: W3C traceparent parsing and formatting, the run span context
 * derived from a run id (`src/protocol/trace-context.ts`), the armed id generator (`src/telemetry/sdk.ts`),
 * and `startTelemetry` without an endpoint (nothing subscribed, nothing returned).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { ulid } from "ulid";
import { formatTraceparent, parseTraceparent, runSpanContext } from "../../src/protocol/trace-context.ts";
import { startTelemetry } from "../../src/telemetry/index.ts";
import { ArmedIdGenerator } from "../../src/telemetry/sdk.ts";
import { createSilentLogger } from "../../src/log.ts";
import type { Bus } from "../../src/bus/bus.ts";

test("parseTraceparent accepts version 00 and refuses malformed values and all-zero ids", () => {
  const tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
  assert.deepEqual(parseTraceparent(tp), { traceId: "4bf92f3577b34da6a3ce929d0e0e4736", spanId: "00f067aa0ba902b7", flags: 1 });
  assert.equal(formatTraceparent(parseTraceparent(tp.toUpperCase())!), tp, "upper case is read, written lower case");
  for (const bad of [undefined, "", "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01", `00-${"0".repeat(32)}-00f067aa0ba902b7-01`, `00-4bf92f3577b34da6a3ce929d0e0e4736-${"0".repeat(16)}-01`, "00-xyz"])
    assert.equal(parseTraceparent(bad), undefined, String(bad));
});

test("runSpanContext: the parent's trace (or one from the run id) and a span id from the run id, stable and distinct per run", () => {
  const a = `run_${ulid()}`;
  const b = `run_${ulid()}`;
  const own = runSpanContext(a)!;
  assert.match(own.traceId, /^[0-9a-f]{32}$/);
  assert.match(own.spanId, /^[0-9a-f]{16}$/);
  assert.equal(own.flags, 1);
  assert.deepEqual(runSpanContext(a), own, "the same for the same run");
  assert.notEqual(runSpanContext(b)!.spanId, own.spanId);
  const parent = parseTraceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00")!;
  const child = runSpanContext(a, parent)!;
  assert.equal(child.traceId, parent.traceId);
  assert.equal(child.spanId, own.spanId);
  assert.equal(child.flags, 0, "an unsampled parent stays unsampled");
  assert.equal(runSpanContext("run_not-a-ulid"), undefined);
});

test("ArmedIdGenerator hands out the armed ids once, then random ones", () => {
  const g = new ArmedIdGenerator();
  g.arm({ traceId: "4bf92f3577b34da6a3ce929d0e0e4736", spanId: "00f067aa0ba902b7" });
  assert.equal(g.generateSpanId(), "00f067aa0ba902b7");
  assert.equal(g.generateTraceId(), "4bf92f3577b34da6a3ce929d0e0e4736");
  assert.notEqual(g.generateSpanId(), "00f067aa0ba902b7");
  g.arm({ traceId: "4bf92f3577b34da6a3ce929d0e0e4736", spanId: "00f067aa0ba902b7" });
  g.arm(undefined);
  assert.match(g.generateSpanId(), /^[0-9a-f]{16}$/);
  assert.notEqual(g.generateTraceId(), "4bf92f3577b34da6a3ce929d0e0e4736");
});

test("startTelemetry without an endpoint returns undefined and subscribes to nothing", async () => {
  const topics: string[] = [];
  const bus = { on: (topic: string) => (topics.push(topic), () => {}) } as unknown as Bus;
  const store = {} as never;
  const log = createSilentLogger();
  assert.equal(await startTelemetry({ config: { service_name: "x", headers: {} }, bus, store, log, version: "0" }), undefined);
  assert.equal(await startTelemetry({ config: undefined, bus, store, log, version: "0" }), undefined);
  assert.deepEqual(topics, []);
});
