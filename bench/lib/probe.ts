/**
 * Bench-only instrumentation, loaded into the server child with `--import`
 * (src/ is not edited). Wraps RunChannel.onCommitted and Subscription.offer /
 * resume / pump to count committed batches and how many live deliveries took
 * the batch's shared SSE chunk (serialized once for all subscribers) versus a
 * per-subscriber one (buffered while paused, replayed, or out of step).
 * Writes the counters as JSON to $BENCH_PROBE_OUT when the process exits.
 */
import { writeFileSync } from "node:fs";
import { RunChannel, Subscription } from "../../src/run/channel.ts";
import type { EventChunk } from "../../src/run/channel.ts";
import type { RunEvent } from "../../src/protocol/events.ts";

const counters = {
  batches: 0,
  batchEvents: 0,
  maxBatch: 0,
  offers: 0,
  offersShared: 0,
  sharedChunksBuilt: 0,
  resumes: 0,
  pumps: 0,
};

const origCommitted = RunChannel.prototype.onCommitted;
RunChannel.prototype.onCommitted = function (this: RunChannel, events: RunEvent[]) {
  counters.batches++;
  counters.batchEvents += events.length;
  if (events.length > counters.maxBatch) counters.maxBatch = events.length;
  return origCommitted.call(this, events);
};

const seenChunks = new WeakSet<EventChunk>();
const origOffer = Subscription.prototype.offer;
Subscription.prototype.offer = function (this: Subscription, batch: RunEvent[], shared: () => EventChunk) {
  counters.offers++;
  return origOffer.call(this, batch, () => {
    counters.offersShared++;
    const c = shared();
    if (!seenChunks.has(c)) {
      seenChunks.add(c);
      counters.sharedChunksBuilt++;
    }
    return c;
  });
};

const origResume = Subscription.prototype.resume;
Subscription.prototype.resume = function (this: Subscription) {
  counters.resumes++;
  return origResume.call(this);
};

const origPump = Subscription.prototype.pump;
Subscription.prototype.pump = function (this: Subscription) {
  counters.pumps++;
  return origPump.call(this);
};

process.on("exit", () => {
  const out = process.env.BENCH_PROBE_OUT;
  if (out) writeFileSync(out, JSON.stringify(counters));
});
