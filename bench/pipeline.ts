/**
 * Benchmark 1, the event pipeline: a `shell` run printing N lines as fast as
 * it can (`seq 1 N`), one SSE subscriber; events stored and delivered per
 * second from POST to the terminal event received. Baseline in the same
 * repetition: the same `seq` piped by a relay process through a loopback TCP
 * socket to a reader here that splits lines, with no server.
 */
import { spawn } from "node:child_process";
import net from "node:net";
import path from "node:path";
import { createLineSplitter } from "../src/agent/line-splitter.ts";
import { createShellRun, openRawSse, requestJson } from "./lib/http.ts";
import { stopChild, track } from "./lib/procs.ts";
import { figure, type BenchResult } from "./lib/result.ts";
import { ROOT, startBenchServer } from "./lib/server.ts";
import { round } from "./lib/stats.ts";

export interface PipelineOptions {
  n: number;
  repeats: number;
  quick: boolean;
  cpuProfDir?: string;
}

/** Lines/s of `seq 1 n` relayed through loopback TCP to a line splitter, no server. */
async function measureBaseline(n: number): Promise<{ ms: number; lines: number; perSec: number }> {
  let lines = 0;
  let doneAt = 0;
  let ended!: () => void;
  const finished = new Promise<void>((r) => (ended = r));
  const server = net.createServer((sock) => {
    const split = createLineSplitter(() => {
      lines++;
    });
    sock.setEncoding("utf8");
    sock.on("data", split.push);
    sock.on("end", () => {
      split.end();
      doneAt = performance.now();
      sock.end();
      ended();
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as net.AddressInfo).port;
  const relay = track(spawn(process.execPath, ["--import", "tsx", path.join(ROOT, "bench/lib/relay-child.ts"), String(port), String(n)], { cwd: ROOT, stdio: ["pipe", "pipe", "inherit"] }));
  try {
    await new Promise<void>((r) => relay.stdout!.once("data", () => r()));
    const startAt = performance.now();
    relay.stdin!.write("go\n");
    await finished;
    const ms = doneAt - startAt;
    if (lines !== n) throw new Error(`baseline read ${lines} lines, expected ${n}`);
    return { ms, lines, perSec: (n / ms) * 1000 };
  } finally {
    server.close();
    await stopChild(relay, 5000);
  }
}

/** Events/s through the server, POST to terminal event received. */
async function measureServer(n: number, cpuProfDir?: string): Promise<Record<string, number | string | boolean>> {
  const server = await startBenchServer(cpuProfDir ? { cpuProfDir } : {});
  try {
    const expected = n + 3; // run.queued, run.started, N x log, run.completed
    const t0 = performance.now();
    const runId = await createShellRun(server.url, server.token, `seq 1 ${n}`);
    const tPosted = performance.now();
    const sse = openRawSse({ host: server.host, port: server.port, runId, token: server.token });
    const res = await sse.done;
    const t1 = performance.now();
    if (!res.ended || res.frames !== expected) throw new Error(`pipeline: got ${res.frames} frames (ended=${res.ended}), expected ${expected}`);
    const row = await requestJson<{ status: string; last_event_id: number }>(server.url, "GET", `/api/runs/${runId}`, undefined, server.token);
    if (row.body.status !== "completed" || row.body.last_event_id !== expected) throw new Error(`pipeline: run row ${JSON.stringify(row.body)}`);
    type Page = { events: Array<{ ts: string }> };
    const first = await requestJson<Page>(server.url, "GET", `/api/runs/${runId}/events?after=0&limit=1`, undefined, server.token);
    const last = await requestJson<Page>(server.url, "GET", `/api/runs/${runId}/events?after=${expected - 1}&limit=1`, undefined, server.token);
    const spanMs = Date.parse(last.body.events[0]!.ts) - Date.parse(first.body.events[0]!.ts);
    const ms = t1 - t0;
    return {
      events: expected,
      ms: round(ms, 1),
      post_ms: round(tPosted - t0, 1),
      bytes: res.bytes,
      events_per_s: round((expected / ms) * 1000, 0),
      server_append_span_ms: spanMs,
    };
  } finally {
    await server.stop();
  }
}

/** Runs the pipeline benchmark `repeats` times (baseline and server each time). */
export async function benchPipeline(opts: PipelineOptions): Promise<BenchResult> {
  const startedAt = new Date().toISOString();
  const reps: Array<{ baseline: Awaited<ReturnType<typeof measureBaseline>>; server: Awaited<ReturnType<typeof measureServer>>; ratio: number }> = [];
  for (let i = 0; i < opts.repeats; i++) {
    const baseline = await measureBaseline(opts.n);
    const server = await measureServer(opts.n, i === 0 ? opts.cpuProfDir : undefined);
    const ratio = (server.events_per_s as number) / baseline.perSec;
    reps.push({ baseline: { ...baseline, ms: round(baseline.ms, 1), perSec: round(baseline.perSec, 0) }, server, ratio: round(ratio, 4) });
    console.error(`  pipeline #${i + 1}: server ${server.events_per_s} ev/s (${server.ms} ms), baseline ${round(baseline.perSec, 0)} lines/s (${round(baseline.ms, 1)} ms), ratio ${round(ratio * 100, 1)}%`);
  }
  return {
    name: "pipeline",
    startedAt,
    quick: opts.quick,
    repeats: opts.repeats,
    figures: [
      figure(`events/s stored+delivered (N=${opts.n})`, "ev/s", "higher", reps.map((r) => r.server.events_per_s as number), { op: ">=", value: 100_000 }),
      figure("baseline seq->TCP->split", "lines/s", "higher", reps.map((r) => r.baseline.perSec)),
      figure("ratio to baseline", "%", "higher", reps.map((r) => r.ratio * 100), { op: ">=", value: 25 }),
    ],
    details: { n: opts.n, repetitions: reps },
  };
}
