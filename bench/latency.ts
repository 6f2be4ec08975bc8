/**
 * Benchmark 2, latency: a `shell` run whose command (a small node script)
 * prints one line every 10 ms for D seconds, each carrying the wall-clock time
 * it was written (`performance.timeOrigin + performance.now()`, sub-ms, on the
 * system clock both processes share). The SSE client here stamps each frame on
 * arrival the same way; latency = arrival - stamp. The first lines (warm-up,
 * while the child node starts and the subscription settles) are dropped.
 */
import http from "node:http";
import { createShellRun } from "./lib/http.ts";
import { figure, type BenchResult } from "./lib/result.ts";
import { startBenchServer } from "./lib/server.ts";
import { round, summarize, wallNow } from "./lib/stats.ts";

export interface LatencyOptions {
  durationMs: number;
  intervalMs: number;
  warmupLines: number;
  repeats: number;
  quick: boolean;
  cpuProfDir?: string;
}

/** The emitter: line i is due at start + i*interval (no drift), `i stamp` per line. */
function emitterCommand(count: number, intervalMs: number): string {
  const script =
    `const n=${count},iv=${intervalMs},t0=performance.now();let i=0;` +
    "const tick=()=>{process.stdout.write(i+' '+(performance.timeOrigin+performance.now()).toFixed(3)+'\\n');" +
    "i++;if(i<n)setTimeout(tick,Math.max(0,t0+i*iv-performance.now()));};tick();";
  return `'${process.execPath}' -e "${script}"`;
}

/** Reads the run's SSE stream; returns per-line latency (ms) in line order. */
function readLatencies(url: string, token: string): Promise<{ latencies: Array<[number, number]>; frames: number }> {
  return new Promise((resolve, reject) => {
    const latencies: Array<[number, number]> = [];
    let frames = 0;
    let buf = "";
    const req = http.get(url, { headers: { Accept: "text/event-stream", Authorization: `Bearer ${token}` } }, (res) => {
      if (res.statusCode !== 200) return reject(new Error(`SSE status ${res.statusCode}`));
      res.setEncoding("utf8");
      res.on("data", (chunk: string) => {
        const at = wallNow();
        buf += chunk;
        let end: number;
        while ((end = buf.indexOf("\n\n")) !== -1) {
          const frame = buf.slice(0, end);
          buf = buf.slice(end + 2);
          const data = /(?:^|\n)data: (.*)/.exec(frame)?.[1];
          if (!data) continue;
          frames++;
          const e = JSON.parse(data) as { type: string; data: { stream?: string; text?: string } };
          if (e.type === "log" && e.data.stream === "stdout" && e.data.text) {
            const [i, stamp] = e.data.text.split(" ");
            latencies.push([Number(i), at - Number(stamp)]);
          }
        }
      });
      res.on("end", () => resolve({ latencies, frames }));
      res.on("error", reject);
    });
    req.on("error", reject);
  });
}

async function measureOnce(opts: LatencyOptions, cpuProfDir?: string): Promise<Record<string, number | string>> {
  const server = await startBenchServer(cpuProfDir ? { cpuProfDir } : {});
  try {
    const count = Math.round(opts.durationMs / opts.intervalMs);
    const runId = await createShellRun(server.url, server.token, emitterCommand(count, opts.intervalMs));
    const { latencies } = await readLatencies(`${server.url}/api/runs/${runId}/events`, server.token);
    if (latencies.length !== count) throw new Error(`latency: got ${latencies.length} lines, expected ${count}`);
    const kept = latencies.filter(([i]) => i >= opts.warmupLines).map(([, ms]) => ms);
    const s = summarize(kept);
    const warm = summarize(latencies.filter(([i]) => i < opts.warmupLines).map(([, ms]) => ms));
    const worst = [...latencies].sort((a, b) => b[1] - a[1]).slice(0, 8).map(([i, ms]) => `#${i}:${round(ms, 1)}`).join(" ");
    return { worst_lines: worst, lines: count, measured: s.n, p50_ms: round(s.p50, 3), p99_ms: round(s.p99, 3), max_ms: round(s.max, 3), mean_ms: round(s.mean, 3), warmup_max_ms: round(warm.max, 3) };
  } finally {
    await server.stop();
  }
}

/** Runs the latency benchmark `repeats` times. */
export async function benchLatency(opts: LatencyOptions): Promise<BenchResult> {
  const startedAt = new Date().toISOString();
  const reps: Array<Record<string, number | string>> = [];
  for (let i = 0; i < opts.repeats; i++) {
    const r = await measureOnce(opts, i === 0 ? opts.cpuProfDir : undefined);
    reps.push(r);
    console.error(`  latency #${i + 1}: p50 ${r.p50_ms} ms, p99 ${r.p99_ms} ms, max ${r.max_ms} ms over ${r.measured} lines; worst ${r.worst_lines}`);
  }
  return {
    name: "latency",
    startedAt,
    quick: opts.quick,
    repeats: opts.repeats,
    figures: [
      figure("line written -> SSE received p50", "ms", "lower", reps.map((r) => r.p50_ms as number)),
      figure("line written -> SSE received p99", "ms", "lower", reps.map((r) => r.p99_ms as number), { op: "<", value: 5 }),
      figure("line written -> SSE received max", "ms", "lower", reps.map((r) => r.max_ms as number)),
    ],
    details: { interval_ms: opts.intervalMs, duration_ms: opts.durationMs, warmup_lines_dropped: opts.warmupLines, repetitions: reps },
  };
}
