/**
 * Benchmark 3, admission: POST /api/runs for `true`, then SSE until the
 * terminal event arrives; p50/p99 over R sequential runs (after a few
 * discarded warm-up runs). Baseline in the same repetition: spawning `true`
 * with execa alone, the same number of times, in this process.
 */
import { execa } from "execa";
import { createShellRun, openRawSse } from "./lib/http.ts";
import { figure, type BenchResult } from "./lib/result.ts";
import { startBenchServer } from "./lib/server.ts";
import { round, summarize } from "./lib/stats.ts";

export interface AdmissionOptions {
  runs: number;
  warmup: number;
  repeats: number;
  quick: boolean;
  cpuProfDir?: string;
}

async function timeExeca(file: string, args: string[], count: number, warmup: number): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < warmup + count; i++) {
    const t0 = performance.now();
    await execa(file, args, { timeout: 10_000 });
    if (i >= warmup) out.push(performance.now() - t0);
  }
  return out;
}

async function timeServer(opts: AdmissionOptions, cpuProfDir?: string): Promise<number[]> {
  const server = await startBenchServer(cpuProfDir ? { cpuProfDir } : {});
  try {
    const out: number[] = [];
    for (let i = 0; i < opts.warmup + opts.runs; i++) {
      const t0 = performance.now();
      const runId = await createShellRun(server.url, server.token, "true");
      const res = await openRawSse({ host: server.host, port: server.port, runId, token: server.token, timeoutMs: 30_000 }).done;
      const ms = performance.now() - t0;
      if (!res.ended || res.frames !== 3) throw new Error(`admission: run ${runId} gave ${res.frames} frames (ended=${res.ended})`);
      if (i >= opts.warmup) out.push(ms);
    }
    return out;
  } finally {
    await server.stop();
  }
}

/** Runs the admission benchmark `repeats` times. */
export async function benchAdmission(opts: AdmissionOptions): Promise<BenchResult> {
  const startedAt = new Date().toISOString();
  const reps: Array<Record<string, number>> = [];
  for (let i = 0; i < opts.repeats; i++) {
    const execaTrue = summarize(await timeExeca("true", [], opts.runs, opts.warmup));
    const execaSh = summarize(await timeExeca("/bin/sh", ["-c", "true"], opts.runs, opts.warmup));
    const server = summarize(await timeServer(opts, i === 0 ? opts.cpuProfDir : undefined));
    const r = {
      server_p50_ms: round(server.p50, 3),
      server_p99_ms: round(server.p99, 3),
      server_max_ms: round(server.max, 3),
      execa_true_p50_ms: round(execaTrue.p50, 3),
      execa_true_p99_ms: round(execaTrue.p99, 3),
      execa_sh_true_p50_ms: round(execaSh.p50, 3),
      execa_sh_true_p99_ms: round(execaSh.p99, 3),
      ratio_p50: round(server.p50 / execaTrue.p50, 3),
      ratio_p99: round(server.p99 / execaTrue.p99, 3),
    };
    reps.push(r);
    console.error(`  admission #${i + 1}: POST->run.completed p50 ${r.server_p50_ms} ms p99 ${r.server_p99_ms} ms; execa(true) p50 ${r.execa_true_p50_ms} ms p99 ${r.execa_true_p99_ms} ms; ratio p50 ${r.ratio_p50}x`);
  }
  return {
    name: "admission",
    startedAt,
    quick: opts.quick,
    repeats: opts.repeats,
    figures: [
      figure("POST -> run.completed on SSE p50", "ms", "lower", reps.map((r) => r.server_p50_ms!)),
      figure("POST -> run.completed on SSE p99", "ms", "lower", reps.map((r) => r.server_p99_ms!)),
      figure("execa(true) alone p50", "ms", "lower", reps.map((r) => r.execa_true_p50_ms!)),
      figure("execa(true) alone p99", "ms", "lower", reps.map((r) => r.execa_true_p99_ms!)),
      figure("ratio p50 server/execa", "x", "lower", reps.map((r) => r.ratio_p50!)),
      figure("ratio p99 server/execa", "x", "lower", reps.map((r) => r.ratio_p99!)),
    ],
    details: { runs: opts.runs, warmup_discarded: opts.warmup, sequential: true, command: "true", repetitions: reps },
  };
}
