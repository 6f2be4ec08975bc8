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
 * Warm and project are measured twice in the same run (issue 15): `exec`, the
 * engine's exec (servers whose image has no node, so their containers run no
 * launcher: the fallback path, as before the launcher), and `launcher`, the
 * run's process started by the launcher in the container (the default image).
 * Cold is per-run containers, which start with exec either way.
 *
 * Targets: warm (launcher) p50 to the first output line under 100 ms and at
 * most 3x the host; project (launcher) at most 3x the host.
 */
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { createDockerClient } from "../src/container/client.ts";
import { createTarStream } from "../src/container/tar.ts";
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
/** A measured row: a mode and how its containers start processes. */
type Row = "host" | "cold" | "warm_exec" | "warm_launcher" | "project_exec" | "project_launcher";
const ROWS: Row[] = ["host", "cold", "warm_exec", "warm_launcher", "project_exec", "project_launcher"];
const IMAGE = process.env.OPENRUNNER_TEST_IMAGE ?? "openrunner-agent:latest";
/** The agent image without node: its pooled and project containers cannot run the launcher (exec path). */
const NO_LAUNCHER_IMAGE = "openrunner-agent:bench-no-launcher";
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

/**
 * Whether a running warm container is ready to be handed out: its launcher listens (the socket is renamed into place once
 * it does) or its main process said there will be none (exec path).
 */
const launcherSettled = (server: BenchServer, name: string) =>
  ["s", "none"].some((f) => existsSync(path.join(server.dataDir, "workspaces", ".launch", name, f)));

/** Waits until the server's warm pool holds `size` ready containers again (at most 30 s). */
async function waitForPool(server: BenchServer, size: number): Promise<void> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const r = await requestJson<{ containers: Array<{ kind: string; name: string; run_id?: string | null; state?: string }> }>(server.url, "GET", "/api/containers?limit=100", undefined, server.token);
    const ready = (r.body.containers ?? []).filter((c) => c.kind === "pool" && !c.run_id && c.state === "running" && launcherSettled(server, c.name)).length;
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

/** Builds {@link NO_LAUNCHER_IMAGE} FROM the agent image (one layer removing node; seconds when cached). */
async function buildNoLauncherImage(): Promise<void> {
  const client = createDockerClient({ ...(process.env.DOCKER_HOST ? { dockerHost: process.env.DOCKER_HOST } : {}) });
  const dockerfile = `FROM ${IMAGE}\nUSER 0:0\nRUN rm -f /usr/local/bin/node\nUSER 1000:1000\n`;
  await client.buildImage(createTarStream([{ type: "file", path: "Dockerfile", content: dockerfile }]), { tag: NO_LAUNCHER_IMAGE });
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
  await buildNoLauncherImage();
  try {
    for (let rep = 0; rep < o.repeats; rep++) {
      const samples = {} as Record<Row, Sample[]>;
      // Plain servers: host and cold once; project runs with and without the launcher.
      for (const [image, suffix] of [
        [NO_LAUNCHER_IMAGE, "exec"],
        [IMAGE, "launcher"],
      ] as const) {
        const plain = await startBenchServer({ env: { OPENRUNNER_CONFIG: configFile(dir, { image }) } });
        try {
          if (suffix === "launcher") {
            samples.host = await timeMode(plain, "host", o);
            samples.cold = await timeMode(plain, "cold", o);
          }
          samples[`project_${suffix}`] = await timeMode(plain, "project", o);
        } finally {
          // A project container outlives its runs (and the server): remove it before its data folder goes.
          await requestJson(plain.url, "DELETE", `/api/projects/${METADATA.project.project_id}/container`, undefined, plain.token).catch(() => undefined);
          await plain.stop();
        }
        const pooled = await startBenchServer({ env: { OPENRUNNER_CONFIG: configFile(dir, { image, warm_pool: 2 }) } });
        try {
          samples[`warm_${suffix}`] = await timeMode(pooled, "warm", o);
        } finally {
          await pooled.stop();
        }
      }
      const r: Record<string, number> = {};
      const host = summarize(samples.host.map((s) => s.firstOutputMs));
      for (const m of ROWS) {
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
          `  docker #${rep + 1} ${m.padEnd(16)} n=${fo.n}: run.started p50 ${r[`${m}_started_p50_ms`]} p99 ${r[`${m}_started_p99_ms`]} ms; first line p50 ${r[`${m}_first_output_p50_ms`]} p99 ${r[`${m}_first_output_p99_ms`]} ms; x host p50 ${r[`${m}_ratio_p50`]} p99 ${r[`${m}_ratio_p99`]}`,
        );
      }
      reps.push(r);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const col = (k: string) => reps.map((r) => r[k]!);
  const figures = ROWS.flatMap((m) => [
    figure(`${m}: POST -> run.started p50`, "ms", "lower", col(`${m}_started_p50_ms`)),
    figure(`${m}: POST -> run.started p99`, "ms", "lower", col(`${m}_started_p99_ms`)),
    figure(`${m}: POST -> first output line p50`, "ms", "lower", col(`${m}_first_output_p50_ms`), m === "warm_launcher" ? { op: "<", value: 100 } : undefined),
    figure(`${m}: POST -> first output line p99`, "ms", "lower", col(`${m}_first_output_p99_ms`)),
    ...(m === "host"
      ? []
      : [
          figure(`${m}: first output p50 / host p50`, "x", "lower", col(`${m}_ratio_p50`), m === "warm_launcher" || m === "project_launcher" ? { op: "<", value: 3 } : undefined),
          figure(`${m}: first output p99 / host p99`, "x", "lower", col(`${m}_ratio_p99`)),
        ]),
  ]);
  return {
    name: "docker",
    startedAt,
    quick: o.quick,
    repeats: o.repeats,
    figures,
    details: { exec_image: NO_LAUNCHER_IMAGE, launcher_image: IMAGE, runs: o.runs, warmup_discarded: o.warmup, sequential: true, command: "echo first-line", clock: "server event ts minus client wall time before POST", repetitions: reps },
  };
}
