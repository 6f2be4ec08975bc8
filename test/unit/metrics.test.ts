import { test } from "node:test";
import assert from "node:assert/strict";
import { Bus } from "../../src/bus/bus.ts";
import { createMetrics } from "../../src/api/metrics.ts";

test("metrics follow the bus: run statuses move between gauges; tunnel connections and pools are exported", async () => {
  const bus = new Bus();
  const m = createMetrics(bus);
  const base = { run_id: "run_1", user_id: "u", agent: "shell" };
  bus.publish("run.status", { ...base, status: "queued", prev: null });
  bus.publish("run.status", { ...base, status: "preparing", prev: "queued" });
  bus.publish("run.status", { ...base, status: "running", prev: "preparing" });
  let text = await m.registry.metrics();
  assert.match(text, /^openrunner_runs\{status="running"\} 1$/m);
  bus.publish("run.status", { ...base, status: "completed", prev: "running" });
  bus.publish("tunnel.connected", { role: "relay", client_id: "c1", remote: "127.0.0.1:1" });
  bus.publish("tunnel.pool", { client_id: "c1", idle: 2, requested: 0, waiting: 1, active: 3, target: 2 });
  text = await m.registry.metrics();
  assert.match(text, /^openrunner_runs\{status="running"\} 0$/m);
  assert.match(text, /^openrunner_runs\{status="completed"\} 1$/m);
  assert.match(text, /^openrunner_tunnel_connections\{role="relay"\} 1$/m);
  assert.match(text, /^openrunner_tunnel_pool\{client_id="c1",state="active"\} 3$/m);
  bus.publish("tunnel.disconnected", { role: "relay", client_id: "c1", reason: "closed" });
  assert.match(await m.registry.metrics(), /^openrunner_tunnel_connections\{role="relay"\} 0$/m);
  m.close();
});
