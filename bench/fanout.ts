/**
 * Benchmark 4, fan-out: S SSE subscribers (raw sockets, spread over W forked
 * client processes) on one `shell` run that emits E events. The run's command
 * first blocks on a FIFO, so every subscriber is attached and live before the
 * burst; then it prints E-3 lines as fast as it can (`seq`), which with
 * run.queued, run.started and the terminal event makes E events. Asserts every
 * subscriber got all E events and an ended stream; reports events/s delivered
 * in total over the burst (go -> last stream ended) and per-event delivery
 * latency (receive time - the event's `ts`) over all subscribers. A burst
 * measures latency under a queue of 1M deliveries; a paced variant (N lines
 * every 10 ms) measures it at a rate the server can sustain. The server
 * loads bench/lib/probe.ts to count how many live deliveries used the batch's
 * shared SSE chunk.
 */
import { fork, spawnSync, type ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { open } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { createShellRun } from "./lib/http.ts";
import { processCpuMs, stopChild, track } from "./lib/procs.ts";
import { figure, type BenchResult } from "./lib/result.ts";
import { ROOT, startBenchServer } from "./lib/server.ts";
import { round, summarize, wallNow } from "./lib/stats.ts";

export interface FanoutOptions {
  subscribers: number;
  events: number;
  workers: number;
  repeats: number;
  quick: boolean;
  cpuProfDir?: string;
  /** Also measure latency with the lines paced: this many lines every 10 ms (0 = burst only). */
  pacedLinesPer10ms: number;
}

/** Prints `lines` lines, `perTick` every 10 ms (scheduled from the start, no drift). */
function pacedCommand(lines: number, perTick: number): string {
  const script =
    `const n=${lines},k=${perTick},t0=performance.now();let i=0,tick=0;` +
    "const go=()=>{let s='';for(let j=0;j<k&&i<n;j++)s+=(i++)+'\\n';process.stdout.write(s);tick++;if(i<n)setTimeout(go,Math.max(0,t0+tick*10-performance.now()));};go();";
  return `'${process.execPath}' -e "${script}"`;
}

type WorkerMsg =
  | { type: "ready" }
  | { type: "go-ack" }
  | { type: "error"; error: string }
  | { type: "done"; frames: number[]; ended: number; errors: string[]; firstBurstByteAt: number; lastEndAt: number; burstCpuMs: number; latencies: string };

function waitFor<T extends WorkerMsg["type"]>(w: ChildProcess, type: T, ms: number): Promise<Extract<WorkerMsg, { type: T }>> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`fan-out worker ${w.pid}: no "${type}" in ${ms} ms`)), ms);
    const onMsg = (m: WorkerMsg) => {
      if (m.type === "error") {
        clearTimeout(timer);
        w.off("message", onMsg);
        reject(new Error(`fan-out worker ${w.pid}: ${m.error}`));
      } else if (m.type === type) {
        clearTimeout(timer);
        w.off("message", onMsg);
        resolve(m as Extract<WorkerMsg, { type: T }>);
      }
    };
    w.on("message", onMsg);
    w.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`fan-out worker ${w.pid} exited with ${code} before "${type}"`));
    });
  });
}

async function measureOnce(opts: FanoutOptions, rep: number, paced: number, cpuProfDir?: string): Promise<Record<string, unknown>> {
  const tmp = mkdtempSync(path.join(os.tmpdir(), "openrunner-bench-fanout-"));
  const fifo = path.join(tmp, "go");
  const probeOut = path.join(tmp, "probe.json");
  const mk = spawnSync("mkfifo", [fifo]);
  if (mk.status !== 0) throw new Error(`mkfifo failed: ${mk.stderr}`);
  const server = await startBenchServer({ probeOut, ...(cpuProfDir ? { cpuProfDir } : {}) });
  const workers: ChildProcess[] = [];
  try {
    const lines = opts.events - 3;
    const emit = paced > 0 ? pacedCommand(lines, paced) : `seq 1 ${lines}`;
    const runId = await createShellRun(server.url, server.token, `read _ < '${fifo}'; ${emit}`);
    const perWorker = Math.ceil(opts.subscribers / opts.workers);
    const tConnect = wallNow();
    for (let w = 0; w < opts.workers; w++) {
      const count = Math.min(perWorker, opts.subscribers - w * perWorker);
      const cfg = { host: server.host, port: server.port, runId, token: server.token, count, readyFrames: 2, timeoutMs: 120_000, concurrency: 100 };
      workers.push(track(fork(path.join(ROOT, "bench/fanout-worker.ts"), [JSON.stringify(cfg)], { execArgv: ["--import", "tsx"], stdio: ["ignore", "inherit", "inherit", "ipc"] })));
    }
    await Promise.all(workers.map((w) => waitFor(w, "ready", 120_000)));
    const connectMs = wallNow() - tConnect;
    const dones = workers.map((w) => waitFor(w, "done", 180_000));
    await Promise.all(workers.map((w) => {
      const ack = waitFor(w, "go-ack", 10_000);
      w.send({ type: "go" });
      return ack;
    }));
    const tGo = wallNow();
    const serverCpuAtGo = processCpuMs(server.pid);
    const fh = await open(fifo, "w");
    await fh.write("go\n");
    await fh.close();
    const results = await Promise.all(dones);
    const serverBurstCpuMs = processCpuMs(server.pid) - serverCpuAtGo;

    const frames = results.flatMap((r) => r.frames);
    const ended = results.reduce((n, r) => n + r.ended, 0);
    const complete = frames.filter((f) => f === opts.events).length;
    const errors = results.flatMap((r) => r.errors);
    if (frames.length !== opts.subscribers || complete !== opts.subscribers || ended !== opts.subscribers) {
      const wrong = frames.filter((f) => f !== opts.events).slice(0, 10);
      throw new Error(`fan-out: ${complete}/${opts.subscribers} subscribers got all ${opts.events} events, ${ended} ended; e.g. ${JSON.stringify(wrong)}; ${errors.join("; ")}`);
    }
    const lastEnd = Math.max(...results.map((r) => r.lastEndAt));
    const firstByte = Math.min(...results.map((r) => r.firstBurstByteAt));
    const burstEvents = opts.subscribers * (opts.events - 2); // everything after run.started
    const latencies: number[] = [];
    for (const r of results) {
      const b = Buffer.from(r.latencies, "base64");
      const f = new Float32Array(b.buffer, b.byteOffset, b.length / 4);
      for (const v of f) latencies.push(v);
    }
    if (latencies.length !== burstEvents) throw new Error(`fan-out: ${latencies.length} latency samples, expected ${burstEvents}`);
    const lat = summarize(latencies);
    const burstMs = lastEnd - tGo;
    await server.stop();
    const probe = JSON.parse(readFileSync(probeOut, "utf8")) as Record<string, number>;
    const r = {
      mode: paced > 0 ? `paced ${paced} lines/10ms` : "burst",
      subscribers: opts.subscribers,
      events: opts.events,
      connect_ms: round(connectMs, 0),
      burst_ms: round(burstMs, 1),
      go_to_first_byte_ms: round(firstByte - tGo, 1),
      delivered_events_per_s: round((burstEvents / burstMs) * 1000, 0),
      latency_p50_ms: round(lat.p50, 2),
      latency_p99_ms: round(lat.p99, 2),
      latency_max_ms: round(lat.max, 2),
      // CPU used during the burst (go -> all ended): is the server or the client the bottleneck?
      server_burst_cpu_ms: round(serverBurstCpuMs, 0),
      clients_burst_cpu_ms: results.map((x) => round(x.burstCpuMs, 0)),
      probe,
    };
    console.error(
      `  fanout #${rep + 1} ${r.mode}: ${r.delivered_events_per_s} ev/s delivered (${r.burst_ms} ms burst), latency p50 ${r.latency_p50_ms} ms p99 ${r.latency_p99_ms} ms; ` +
        `CPU server ${r.server_burst_cpu_ms} ms, clients ${r.clients_burst_cpu_ms.join("+")} ms; batches ${probe.batches}, offers ${probe.offers}, shared ${probe.offersShared}, resumes ${probe.resumes}`,
    );
    return r;
  } finally {
    for (const w of workers) await stopChild(w, 5000);
    await server.stop();
    rmSync(tmp, { recursive: true, force: true });
  }
}

/** Runs the fan-out benchmark `repeats` times. */
export async function benchFanout(opts: FanoutOptions): Promise<BenchResult> {
  const startedAt = new Date().toISOString();
  const ulimit = spawnSync("sh", ["-c", "ulimit -n"], { encoding: "utf8" }).stdout.trim();
  const needed = opts.subscribers + 64;
  if (ulimit !== "unlimited" && Number(ulimit) < needed) throw new Error(`ulimit -n is ${ulimit}; the server needs about ${needed} descriptors for ${opts.subscribers} subscribers`);
  const reps: Array<Record<string, unknown>> = [];
  const pacedReps: Array<Record<string, unknown>> = [];
  for (let i = 0; i < opts.repeats; i++) {
    reps.push(await measureOnce(opts, i, 0, i === 0 ? opts.cpuProfDir : undefined));
    if (opts.pacedLinesPer10ms > 0) pacedReps.push(await measureOnce(opts, i, opts.pacedLinesPer10ms, i === 0 && opts.cpuProfDir ? `${opts.cpuProfDir}-paced` : undefined));
  }
  const num = (k: string) => reps.map((r) => r[k] as number);
  const pacedFigures =
    pacedReps.length === 0
      ? []
      : [
          figure(`paced ${opts.pacedLinesPer10ms}/10ms: latency p50`, "ms", "lower", pacedReps.map((r) => r.latency_p50_ms as number)),
          figure(`paced ${opts.pacedLinesPer10ms}/10ms: latency p99`, "ms", "lower", pacedReps.map((r) => r.latency_p99_ms as number), { op: "<", value: 50 }),
        ];
  return {
    name: "fanout",
    startedAt,
    quick: opts.quick,
    repeats: opts.repeats,
    figures: [
      figure(`events/s delivered total (${opts.subscribers} subs x ${opts.events} ev)`, "ev/s", "higher", num("delivered_events_per_s"), { op: ">=", value: 200_000 }),
      figure("burst: delivery latency p50 (recv - ts)", "ms", "lower", num("latency_p50_ms")),
      figure("burst: delivery latency p99 (recv - ts)", "ms", "lower", num("latency_p99_ms"), { op: "<", value: 50 }),
      ...pacedFigures,
    ],
    details: { ulimit_n: ulimit, workers: opts.workers, all_subscribers_got_all_events: true, repetitions: reps, paced_repetitions: pacedReps },
  };
}
