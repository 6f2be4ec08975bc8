/**
 * Benchmark `docker`: start latency of a run, host against containers. For
 * each mode, R sequential `shell` runs of `echo first-line` (after W
 * discarded warm-up runs), timed from just before `POST /api/runs` to the
 * server's `ts` of `run.started` and of the first `log` line (the client
 * and the server share the machine's clock; ms resolution):
 *
 * - host: `isolation: "none"` (the baseline of the ratios, same repetition);
 * - cold: `isolation: "docker"`, a per-run container created and started for the run;
 * - warm: the same on a server with `docker.warm_pool: 2` (a pooled container
 *   handed over; the benchmark waits for the pool to refill between runs and
 *   counts only runs that got a pooled container);
 * - project: `metadata.project_id` on a project container that already runs
 *   (the first run, which creates it, is a warm-up).
 *
 * Target (issue 5): warm p50 to the first output line under 100 ms.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { readSse } from "../test/helpers/sse.ts";
import { requestJson } from "./lib/http.ts";
import { figure, type BenchResult } from "./lib/result.ts";
import { startBenchServer, type BenchServer } from "./lib/server.ts";
import { round, summarize, wallNow } from "./lib/stats.ts";

export interface DockerBenchOptions {
  runs: number;
  warmup: number;
  repeats: number;
  quick: boolean;
}

type Mode = "host" | "cold" | "warm" | "project";
const MODES: Mode[] = ["host", "cold", "warm", "project"];
type Ev = { id: number; type: string; ts: string; data: Record<string, unknown> };

interface Sample {
  startedMs: number;
  firstOutputMs: number;
  pooled: boolean;
}

const METADATA: Record<Mode, Record<string, unknown>> = {
  host: { isolation: "none" },
  cold: { isolation: "docker" },
  warm: { isolation: "docker" },
  project: { isolation: "docker", project_id: "bench-docker" },
};

async function timeRun(server: BenchServer, mode: Mode): Promise<Sample> {
  const t0 = wallNow();
  const res = await requestJson<{ run_id: string }>(server.url, "POST", "/api/runs", { input: { text: "echo first-line" }, metadata: { agent_type: "shell", ...METADATA[mode] } }, server.token);
  if (res.status !== 201) throw new Error(`docker bench (${mode}): POST /api/runs ${res.status} ${JSON.stringify(res.body)}`);
  const out = await readSse(`${server.url}/api/runs/${res.body.run_id}/events`, { token: server.token, timeoutMs: 60_000 });
  const events = out.messages.map((m) => JSON.parse(m.data) as Ev);
  const last = events.at(-1);
  if (!out.ended || last?.type !== "run.completed") throw new Error(`docker bench (${mode}): run ${res.body.run_id} ended ${last?.type}: ${JSON.stringify(last?.data)}`);
  const started = events.find((e) => e.type === "run.started");
  const first = events.find((e) => e.type === "log" && e.data.stream === "stdout");
  if (!started || first?.data.text !== "first-line") throw new Error(`docker bench (${mode}): no run.started or first line in ${res.body.run_id}`);
  const created = events.find((e) => e.type === "container.created");
  return { startedMs: Date.parse(started.ts) - t0, firstOutputMs: Date.parse(first.ts) - t0, pooled: created?.data.pool === true };
}

/** Waits until the server's warm pool holds `size` ready containers again (at most 30 s). */
async function waitForPool(server: BenchServer, size: number): Promise<void> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const r = await requestJson<{ containers: Array<{ kind: string; run_id?: string | null; state?: string }> }>(server.url, "GET", "/api/containers?limit=100", undefined, server.token);
    const ready = (r.body.containers ?? []).filter((c) => c.kind === "pool" && !c.run_id && c.state === "running").length;
    if (ready >= size || Date.now() > deadline) return;
    await new Promise((res) => setTimeout(res, 50));
  }
}

async function timeMode(server: BenchServer, mode: Mode, o: DockerBenchOptions): Promise<Sample[]> {
  const out: Sample[] = [];
  for (let i = 0; i < o.warmup + o.runs; i++) {
    if (mode === "warm") await waitForPool(server, 2);
    const s = await timeRun(server, mode);
    if (i >= o.warmup && (mode !== "warm" || s.pooled)) out.push(s);
  }
  return out;
}

function configFile(dir: string, extra: Record<string, unknown>): string {
  const file = path.join(dir, `openrunner-${Math.random().toString(36).slice(2)}.yaml`);
  writeFileSync(file, JSON.stringify({ docker: { ...extra } }));
  return file;
}

/** Runs the docker start-latency benchmark `repeats` times. */
export async function benchDocker(o: DockerBenchOptions): Promise<BenchResult> {
  const startedAt = new Date().toISOString();
  const dir = mkdtempSync(path.join(os.tmpdir(), "openrunner-bench-docker-"));
  const reps: Array<Record<string, number>> = [];
  try {
    for (let rep = 0; rep < o.repeats; rep++) {
      const samples = {} as Record<Mode, Sample[]>;
      const plain = await startBenchServer({ env: { OPENRUNNER_CONFIG: configFile(dir, {}) } });
      try {
        for (const m of ["host", "cold", "project"] as const) samples[m] = await timeMode(plain, m, o);
      } finally {
        // A project container outlives its runs (and the server): remove it before its data folder goes.
        await requestJson(plain.url, "DELETE", `/api/projects/${METADATA.project.project_id}/container`, undefined, plain.token).catch(() => undefined);
        await plain.stop();
      }
      const pooled = await startBenchServer({ env: { OPENRUNNER_CONFIG: configFile(dir, { warm_pool: 2 }) } });
      try {
        samples.warm = await timeMode(pooled, "warm", o);
      } finally {
        await pooled.stop();
      }
      const r: Record<string, number> = {};
      const host = summarize(samples.host.map((s) => s.firstOutputMs));
      for (const m of MODES) {
        const st = summarize(samples[m].map((s) => s.startedMs));
        const fo = summarize(samples[m].map((s) => s.firstOutputMs));
        Object.assign(r, {
          [`${m}_n`]: fo.n,
          [`${m}_started_p50_ms`]: round(st.p50, 1),
          [`${m}_started_p99_ms`]: round(st.p99, 1),
          [`${m}_first_output_p50_ms`]: round(fo.p50, 1),
          [`${m}_first_output_p99_ms`]: round(fo.p99, 1),
          [`${m}_ratio_p50`]: round(fo.p50 / host.p50, 2),
          [`${m}_ratio_p99`]: round(fo.p99 / host.p99, 2),
        });
        console.error(
          `  docker #${rep + 1} ${m.padEnd(7)} n=${fo.n}: run.started p50 ${r[`${m}_started_p50_ms`]} p99 ${r[`${m}_started_p99_ms`]} ms; first line p50 ${r[`${m}_first_output_p50_ms`]} p99 ${r[`${m}_first_output_p99_ms`]} ms; x host p50 ${r[`${m}_ratio_p50`]} p99 ${r[`${m}_ratio_p99`]}`,
        );
      }
      reps.push(r);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const col = (k: string) => reps.map((r) => r[k]!);
  const figures = MODES.flatMap((m) => [
    figure(`${m}: POST -> run.started p50`, "ms", "lower", col(`${m}_started_p50_ms`)),
    figure(`${m}: POST -> run.started p99`, "ms", "lower", col(`${m}_started_p99_ms`)),
    figure(`${m}: POST -> first output line p50`, "ms", "lower", col(`${m}_first_output_p50_ms`), m === "warm" ? { op: "<", value: 100 } : undefined),
    figure(`${m}: POST -> first output line p99`, "ms", "lower", col(`${m}_first_output_p99_ms`)),
    ...(m === "host" ? [] : [figure(`${m}: first output p50 / host p50`, "x", "lower", col(`${m}_ratio_p50`)), figure(`${m}: first output p99 / host p99`, "x", "lower", col(`${m}_ratio_p99`))]),
  ]);
  return {
    name: "docker",
    startedAt,
    quick: o.quick,
    repeats: o.repeats,
    figures,
    details: { runs: o.runs, warmup_discarded: o.warmup, sequential: true, command: "echo first-line", clock: "server event ts minus client wall time before POST", repetitions: reps },
  };
}
