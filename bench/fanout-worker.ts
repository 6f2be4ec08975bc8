/**
 * A fan-out client process (forked by fanout.ts): opens `count` raw SSE
 * sockets on one run, counts frames ("\nid: "), and for every event received
 * after "go" reads its `ts` straight from the bytes to record receive time - ts. Talks to the parent
 * over IPC: "ready" once every socket received the first `readyFrames` frames
 * (so it is live, past replay), "done" with counts and latencies at the end.
 */
import { openRawSse, type RawSseResult } from "./lib/http.ts";
import { wallNow } from "./lib/stats.ts";

interface WorkerConfig {
  host: string;
  port: number;
  runId: string;
  token: string;
  count: number;
  readyFrames: number;
  timeoutMs: number;
  /** Open at most this many connections at once. */
  concurrency: number;
}

const TS_MARK = Buffer.from(',"ts":"');
const TS_LEN = 24; // 2026-11-22T10:00:00.123Z
const SEAM = TS_MARK.length + TS_LEN;

const cfg = JSON.parse(process.argv[2]!) as WorkerConfig;
const tsCache = new Map<string, number>();
let latencies = new Float32Array(cfg.count * 1024);
let nLat = 0;
let firstBurstByteAt = Number.POSITIVE_INFINITY;
let lastEndAt = 0;

function addLatency(ms: number): void {
  if (nLat === latencies.length) {
    const bigger = new Float32Array(latencies.length * 2);
    bigger.set(latencies);
    latencies = bigger;
  }
  latencies[nLat++] = ms;
}

function parseTs(buf: Buffer, at: number, now: number): void {
  const text = buf.toString("latin1", at, at + TS_LEN);
  let t = tsCache.get(text);
  if (t === undefined) {
    t = Date.parse(text);
    tsCache.set(text, t);
  }
  addLatency(now - t);
}

/** Per-socket ts extraction across chunk boundaries. */
function createTsReader(): (chunk: Buffer, now: number) => void {
  let prev = Buffer.alloc(0);
  return (chunk, now) => {
    if (prev.length > 0) {
      // markers that start in the previous chunk and whose value ends in this one
      const seam = Buffer.concat([prev, chunk.subarray(0, SEAM)]);
      let i = seam.indexOf(TS_MARK);
      while (i !== -1 && i < prev.length) {
        const v = i + TS_MARK.length;
        if (v + TS_LEN > prev.length && v + TS_LEN <= seam.length) parseTs(seam, v, now);
        i = seam.indexOf(TS_MARK, i + 1);
      }
    }
    let i = chunk.indexOf(TS_MARK);
    while (i !== -1) {
      const v = i + TS_MARK.length;
      if (v + TS_LEN <= chunk.length) parseTs(chunk, v, now);
      i = chunk.indexOf(TS_MARK, i + 1);
    }
    prev = Buffer.from(chunk.subarray(Math.max(0, chunk.length - (SEAM - 1))));
  };
}

async function main(): Promise<void> {
  let ready = 0;
  let burst = false;
  process.on("message", (m: { type: string }) => {
    if (m.type === "go") {
      burst = true;
      cpuAtGo = process.cpuUsage();
      process.send!({ type: "go-ack" });
    }
  });
  const results: Array<Promise<RawSseResult>> = [];
  let readySent = false;
  let cpuAtGo: NodeJS.CpuUsage | undefined;
  const markReady = () => {
    ready++;
    if (ready === cfg.count && !readySent) {
      readySent = true;
      process.send!({ type: "ready" });
    }
  };
  for (let i = 0; i < cfg.count; i += cfg.concurrency) {
    const batch: Array<Promise<void>> = [];
    for (let j = i; j < Math.min(cfg.count, i + cfg.concurrency); j++) {
      let frames = 0;
      const readTs = createTsReader();
      const sse = openRawSse({
        host: cfg.host,
        port: cfg.port,
        runId: cfg.runId,
        token: cfg.token,
        timeoutMs: cfg.timeoutMs,
        onData(chunk, n) {
          const now = wallNow();
          if (burst && now < firstBurstByteAt && frames >= cfg.readyFrames) firstBurstByteAt = now;
          if (burst) readTs(chunk, now);
          const before = frames;
          frames += n;
          if (before < cfg.readyFrames && frames >= cfg.readyFrames) markReady();
        },
      });
      results.push(
        sse.done.then((r) => {
          const now = wallNow();
          if (now > lastEndAt) lastEndAt = now;
          return r;
        }),
      );
      batch.push(sse.connected);
    }
    await Promise.all(batch);
  }
  const settled = await Promise.allSettled(results);
  const cpu = process.cpuUsage(cpuAtGo);
  const frames: number[] = [];
  let ended = 0;
  const errors: string[] = [];
  for (const s of settled) {
    if (s.status === "fulfilled") {
      frames.push(s.value.frames);
      if (s.value.ended) ended++;
    } else {
      frames.push(-1);
      if (errors.length < 5) errors.push(String(s.reason));
    }
  }
  process.send!(
    {
      type: "done",
      frames,
      ended,
      errors,
      firstBurstByteAt,
      lastEndAt,
      burstCpuMs: (cpu.user + cpu.system) / 1000,
      latencies: Buffer.from(latencies.buffer, 0, nLat * 4).toString("base64"),
    },
    () => process.exit(0),
  );
}

void main().catch((err: unknown) => {
  process.send!({ type: "error", error: String(err) }, () => process.exit(1));
});
