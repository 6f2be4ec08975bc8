/**
 * Benchmark: the distributed mode (1 API server + W workers on one PostgreSQL, README
 * "Distributed mode") against the single process (SQLite), both measured in the same repetition
 * with the same limits (max_concurrent_runs 50, per user 50). Every stream is read over SSE from
 * the API server with one raw socket per run (bench/lib/http.ts).
 *
 * 1. One run: a `shell` run printing N lines as fast as it can (`seq 1 N`), POST to the terminal
 *    event received; events/s, distributed ÷ single process (target >= 0.5).
 * 2. 50 concurrent runs, all POSTed at once, each read by its own SSE client; each waits on a
 *    FIFO until all 50 are started, then prints M lines (`seq 1 M`); total events/s of that
 *    burst (go -> last terminal frame), distributed with 2 workers (capacity 25 each) ÷ single
 *    process (target > 1). The whole POST -> end rate is kept in the details.
 * 3. POST -> `run.started` frame on SSE, p50/p99 over sequential `true` runs (each read to its
 *    end before the next), in both modes.
 * 4. Scaling, informational: figure 2 with 1, 2 and 4 workers (capacity ceil(50/W) each, so
 *    every worker takes part). The machine's cores are shared by the bench client, the API server,
 *    the workers, the runs and PostgreSQL: more workers than cores cannot add throughput here.
 *
 * CPU time of every process (API server, workers, PostgreSQL's server, this client) is recorded
 * per measurement, to show where the time goes. PostgreSQL is the tests' throw-away cluster
 * (test/helpers/postgres.ts, fsync off), one per benchmark, a fresh database per cluster.
 */
import { spawnSync } from "node:child_process";
import { chmodSync, mkdtempSync, rmSync } from "node:fs";
import { open, type FileHandle } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import pg from "pg";
import { setTimeout as sleep } from "node:timers/promises";
import { startPostgres, type TestPostgres } from "../test/helpers/postgres.ts";
import { postgresCpuMs, postmasterPid, queryOnce, startBenchCluster, type BenchCluster } from "./lib/cluster.ts";
import { createShellRun, openRawSse, requestJson } from "./lib/http.ts";
import { processCpuMs } from "./lib/procs.ts";
import { figure, type BenchResult, type Figure } from "./lib/result.ts";
import { ROOT, startBenchServer, type BenchServer } from "./lib/server.ts";
import { round, summarize, wallNow } from "./lib/stats.ts";

export interface DistributedOptions {
  repeats: number;
  quick: boolean;
  /** Lines of the one-run measurement (figure 1). */
  singleLines: number;
  /** Concurrent runs (figures 2 and 4). */
  runs: number;
  /** Lines per concurrent run. */
  linesPerRun: number;
  /** Sequential runs of the latency measurement (figure 3), after `warmup` discarded ones. */
  latencyRuns: number;
  warmup: number;
  /** Worker counts of the scaling measurement (figure 4); 2 is figure 2's cluster. */
  scaling: number[];
  cpuProfDir?: string;
}

/** Limits every process gets, in both modes: all of the concurrent runs at once. */
function limitsEnv(runs: number): Record<string, string> {
  return {
    OPENRUNNER_MAX_CONCURRENT_RUNS: String(runs),
    OPENRUNNER_MAX_CONCURRENT_RUNS_PER_USER: String(runs),
    OPENRUNNER_MAX_QUEUED_RUNS_PER_USER: String(Math.max(100, runs * 2)),
    OPENRUNNER_CLUSTER_HEARTBEAT_MS: "500",
  };
}

/** What a measurement runs against: a single-process server or a cluster's API server. */
interface Target {
  mode: string;
  server: BenchServer;
  cluster?: BenchCluster;
  /** PostgreSQL's postmaster, for its CPU time (distributed mode). */
  postmaster?: number;
}

type Cpu = Record<string, number>;

function cpuNow(t: Target): Cpu {
  const c: Cpu = { client: (process.cpuUsage().user + process.cpuUsage().system) / 1000, api: processCpuMs(t.server.pid) };
  t.cluster?.workers.forEach((w, i) => (c[`worker${i + 1}`] = processCpuMs(w.pid)));
  if (t.postmaster !== undefined) c.postgres = postgresCpuMs(t.postmaster);
  return c;
}

function cpuSince(t: Target, before: Cpu): Cpu {
  const now = cpuNow(t);
  const out: Cpu = {};
  for (const k of Object.keys(now)) out[k] = round(now[k]! - (before[k] ?? 0), 0);
  return out;
}

const cpuText = (c: Cpu) => Object.entries(c).map(([k, v]) => `${k} ${v}`).join(", ");

const MARK = Buffer.from("\nevent: run.");
const TERMINAL_AFTER_MARK = ["completed\n", "failed\n", "cancelled\n", "timed_out\n"].map((t) => Buffer.from(t));
const STARTED_AFTER_MARK = Buffer.from("started\n");
/** How long a stream may stay open after its terminal event arrived before it counts as hung. */
const HANG_MS = 3000;

/** One run's SSE stream as read by {@link readRun}. */
interface RunStream {
  frames: number;
  ended: boolean;
  status: number;
  /** performance.now() when the `run.started` / terminal frame arrived (0: not seen). */
  startedAt: number;
  terminalAt: number;
  /** The terminal frame arrived but the server did not end the stream within {@link HANG_MS} (closed by us). */
  hung: boolean;
}

/**
 * Reads a run's SSE stream to its end, noting when `run.started` and the terminal frame arrived.
 * A stream still open {@link HANG_MS} after its terminal frame is closed here and reported as
 * `hung` (a figure with target 0), so one such stream costs 3 s instead of stopping the
 * benchmark. Seen while this benchmark was written: an API server's follower channel made from a
 * run row read just before the worker stored the terminal event never ended its streams (fixed
 * in 9f6a804, RemoteRuns.channelFor). Throughput is timed to the terminal frame, in both modes.
 */
async function readRun(t: Target, runId: string, timeoutMs: number, onStarted?: () => void): Promise<RunStream> {
  let startedAt = 0;
  let terminalAt = 0;
  let tail = Buffer.alloc(0);
  let hangTimer: NodeJS.Timeout | undefined;
  const scan = (buf: Buffer, now: number) => {
    for (let i = buf.indexOf(MARK); i !== -1; i = buf.indexOf(MARK, i + MARK.length)) {
      const rest = buf.subarray(i + MARK.length, i + MARK.length + 12);
      if (startedAt === 0 && rest.subarray(0, STARTED_AFTER_MARK.length).equals(STARTED_AFTER_MARK)) {
        startedAt = now;
        onStarted?.();
      } else if (terminalAt === 0 && TERMINAL_AFTER_MARK.some((m) => rest.subarray(0, m.length).equals(m))) {
        terminalAt = now;
        hangTimer = setTimeout(() => sse.socket.destroy(), HANG_MS);
      }
    }
  };
  const sse = openRawSse({
    host: t.server.host,
    port: t.server.port,
    runId,
    token: t.server.token,
    timeoutMs,
    onData: (chunk) => {
      const now = performance.now();
      if (terminalAt !== 0) return;
      // a mark across the previous chunk and this one (one found twice is harmless: first time wins)
      if (tail.length > 0) scan(Buffer.concat([tail, chunk.subarray(0, 24)]), now);
      scan(chunk, now);
      tail = Buffer.from(chunk.subarray(Math.max(0, chunk.length - 24)));
    },
  });
  try {
    const res = await sse.done;
    return { frames: res.frames, ended: res.ended, status: res.status, startedAt, terminalAt, hung: terminalAt !== 0 && !res.ended };
  } finally {
    clearTimeout(hangTimer);
  }
}

/**
 * Polls the run row's `last_event_id` in PostgreSQL (every ~2 ms, one connection) until it reaches
 * `expected`; resolves the wall-clock time (ms) it was first seen there. Gives up after 120 s.
 */
async function pollStored(url: string, runId: string, expected: number): Promise<number> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const deadline = Date.now() + 120_000;
    while (Date.now() < deadline) {
      const { rows } = await client.query<{ last_event_id: number }>("SELECT last_event_id FROM runs WHERE id = $1", [runId]);
      if (rows[0] && Number(rows[0].last_event_id) >= expected) return wallNow();
      await sleep(2);
    }
    throw new Error(`run ${runId}: the store did not reach event ${expected} in 120 s`);
  } finally {
    await client.end();
  }
}

/** Figure 1: one `seq 1 n` run, POST to terminal event on SSE. */
async function measureOneRun(t: Target, n: number): Promise<Record<string, unknown>> {
  const expected = n + 3; // run.queued, run.started, N x log, run.completed
  const cpu0 = cpuNow(t);
  const t0 = performance.now();
  const runId = await createShellRun(t.server.url, t.server.token, `seq 1 ${n}`);
  // distributed: when the store has all the events (the run row's last_event_id), to split the lag into storing and delivering
  const stored = t.cluster ? pollStored(t.cluster.databaseUrl, runId, expected) : undefined;
  const res = await readRun(t, runId, 300_000);
  const ms = res.terminalAt - t0;
  const storedAt = stored ? await stored : undefined;
  const cpu = cpuSince(t, cpu0);
  if ((!res.ended && !res.hung) || res.frames !== expected) throw new Error(`${t.mode} one run: got ${res.frames} frames (ended=${res.ended}, status ${res.status}), expected ${expected}`);
  const row = await requestJson<{ status: string; last_event_id: number }>(t.server.url, "GET", `/api/runs/${runId}`, undefined, t.server.token);
  if (row.body.status !== "completed" || row.body.last_event_id !== expected) throw new Error(`${t.mode} one run: run row ${JSON.stringify(row.body)}`);
  // Where the time goes: the run's process appends (stamps `ts`) from run.started to the terminal event; what is left is storing and delivering.
  type Page = { events: Array<{ ts: string }> };
  const startedEv = await requestJson<Page>(t.server.url, "GET", `/api/runs/${runId}/events?after=1&limit=1`, undefined, t.server.token);
  const terminalEv = await requestJson<Page>(t.server.url, "GET", `/api/runs/${runId}/events?after=${expected - 1}&limit=1`, undefined, t.server.token);
  const startedTs = Date.parse(startedEv.body.events[0]!.ts);
  const terminalTs = Date.parse(terminalEv.body.events[0]!.ts);
  return {
    events: expected,
    ms: round(ms, 1),
    events_per_s: round((expected / ms) * 1000, 0),
    post_to_started_received_ms: round(res.startedAt - t0, 1),
    // run.started -> terminal event, as stamped by the process that ran it (reading the output and numbering the events)
    append_span_ms: terminalTs - startedTs,
    // terminal event stamped -> its frame received here (storing and delivering what was still queued)
    terminal_delivery_lag_ms: round(performance.timeOrigin + res.terminalAt - terminalTs, 1),
    ...(storedAt !== undefined
      ? {
          // terminal event stamped -> the store had it (worker's commits), then -> its frame received here (API server's reads and SSE)
          terminal_stored_lag_ms: round(storedAt - terminalTs, 1),
          stored_to_received_ms: round(performance.timeOrigin + res.terminalAt - storedAt, 1),
        }
      : {}),
    hung_streams: res.hung ? 1 : 0,
    cpu_ms: cpu,
  };
}

/**
 * Figures 2 and 4: `runs` runs POSTed at once, each read over its own SSE stream. Each run first
 * waits for a line on a FIFO (held open read-write here, so no open() blocks), then prints
 * `lines` lines (`seq`); once every run's `run.started` arrived, one line per run is written:
 * all of them are live when the burst starts. Timed from that write to the last terminal frame;
 * the burst's events are each run's lines and its terminal event.
 */
async function measureConcurrent(t: Target, runs: number, lines: number): Promise<Record<string, unknown>> {
  const expected = lines + 3;
  const tmp = mkdtempSync(path.join(os.tmpdir(), "openrunner-bench-distributed-"));
  const fifo = path.join(tmp, "go");
  let fh: FileHandle | undefined;
  try {
    // host runs execute as host_run_user (nobody when the server is root): let them open the FIFO
    chmodSync(tmp, 0o755);
    const mk = spawnSync("mkfifo", ["-m", "0666", fifo], { encoding: "utf8" });
    if (mk.status !== 0) throw new Error(`mkfifo failed: ${mk.stderr}`);
    fh = await open(fifo, "r+");
    const t0 = performance.now();
    const ids: string[] = [];
    let startedCount = 0;
    let allStarted!: () => void;
    const started = new Promise<void>((r) => (allStarted = r));
    const streams = Promise.all(
      Array.from({ length: runs }, async () => {
        const runId = await createShellRun(t.server.url, t.server.token, `read _ < '${fifo}'; seq 1 ${lines}`);
        ids.push(runId);
        const tPosted = performance.now();
        const res = await readRun(t, runId, 300_000, () => ++startedCount === runs && allStarted());
        return { runId, res, postMs: tPosted - t0 };
      }),
    );
    const giveUp = new AbortController();
    try {
      await Promise.race([
        started,
        streams.then(() => Promise.reject(new Error(`${t.mode} ${runs} runs: streams ended before all runs started (${startedCount} started)`))),
        sleep(120_000, undefined, { signal: giveUp.signal }).then(() => Promise.reject(new Error(`${t.mode} ${runs} runs: ${startedCount} started in 120 s`))),
      ]);
    } finally {
      giveUp.abort(); // no timer left behind (it would keep the process alive)
    }
    const tAllStarted = performance.now();
    const cpu0 = cpuNow(t);
    const tGo = performance.now();
    await fh.write("go\n".repeat(runs));
    const done = await streams;
    const tEnd = Math.max(...done.map((s) => s.res.terminalAt));
    const cpu = cpuSince(t, cpu0);
    const bad = done.filter((s) => (!s.res.ended && !s.res.hung) || s.res.frames !== expected);
    if (bad.length > 0) throw new Error(`${t.mode} ${runs} runs: ${bad.length} streams incomplete, e.g. ${JSON.stringify(bad.slice(0, 3).map((s) => ({ run: s.runId, ...s.res })))}; expected ${expected} frames each`);
    type Row = { status: string; last_event_id: number };
    const rows = await Promise.all(ids.map(async (id) => (await requestJson<Row>(t.server.url, "GET", `/api/runs/${id}`, undefined, t.server.token)).body));
    const notDone = rows.filter((r) => r.status !== "completed" || r.last_event_id !== expected);
    if (notDone.length > 0) throw new Error(`${t.mode} ${runs} runs: ${notDone.length} rows not completed with ${expected} events, e.g. ${JSON.stringify(notDone[0])}`);
    const burstEvents = runs * (lines + 1);
    const burstMs = tEnd - tGo;
    const out: Record<string, unknown> = {
      runs,
      lines_per_run: lines,
      burst_events: burstEvents,
      burst_ms: round(burstMs, 1),
      events_per_s: round((burstEvents / burstMs) * 1000, 0),
      first_run_done_ms: round(Math.min(...done.map((s) => s.res.terminalAt)) - tGo, 1),
      post_to_all_started_ms: round(tAllStarted - t0, 1),
      last_post_ms: round(Math.max(...done.map((s) => s.postMs)), 1),
      // every event of every run, first POST to last terminal frame (includes POSTs, claims, spawns)
      overall_events_per_s: round(((runs * expected) / (tEnd - t0)) * 1000, 0),
      hung_streams: done.filter((x) => x.res.hung).length,
      cpu_ms: cpu,
    };
    if (t.cluster) {
      const per = await queryOnce<{ worker_id: string; n: string }>(t.cluster.databaseUrl, "SELECT worker_id, COUNT(*) AS n FROM runs WHERE id = ANY($1::text[]) GROUP BY worker_id", [ids]);
      const index = new Map(t.cluster.workers.map((w, i) => [w.id, `worker${i + 1}`]));
      out.runs_per_worker = Object.fromEntries(per.map((p) => [index.get(p.worker_id) ?? p.worker_id, Number(p.n)]).sort());
    }
    return out;
  } finally {
    await fh?.close();
    rmSync(tmp, { recursive: true, force: true });
  }
}

/** Figure 3: POST -> run.started frame, sequential `true` runs each read to their end. */
async function measureLatency(t: Target, runs: number, warmup: number): Promise<Record<string, unknown>> {
  const started: number[] = [];
  const completed: number[] = [];
  let hung = 0;
  for (let i = 0; i < warmup + runs; i++) {
    const t0 = performance.now();
    const runId = await createShellRun(t.server.url, t.server.token, "true");
    const res = await readRun(t, runId, 30_000);
    if ((!res.ended && !res.hung) || res.frames !== 3 || res.startedAt === 0) throw new Error(`${t.mode} latency: run ${runId} gave ${res.frames} frames (ended=${res.ended}, run.started seen: ${res.startedAt !== 0})`);
    if (res.hung) hung++;
    if (i >= warmup) {
      started.push(res.startedAt - t0);
      completed.push(res.terminalAt - t0);
    }
  }
  const s = summarize(started);
  const c = summarize(completed);
  return {
    runs,
    warmup_discarded: warmup,
    started_p50_ms: round(s.p50, 2),
    started_p99_ms: round(s.p99, 2),
    started_max_ms: round(s.max, 2),
    started_mean_ms: round(s.mean, 2),
    completed_p50_ms: round(c.p50, 2),
    completed_p99_ms: round(c.p99, 2),
    hung_streams: hung,
  };
}

async function withSingle<T>(o: DistributedOptions, profile: boolean, fn: (t: Target) => Promise<T>): Promise<T> {
  const server = await startBenchServer({ env: limitsEnv(o.runs), ...(profile && o.cpuProfDir ? { cpuProfDir: path.join(o.cpuProfDir, "single") } : {}) });
  try {
    return await fn({ mode: "single", server });
  } finally {
    await server.stop();
  }
}

async function withCluster<T>(pgServer: TestPostgres, postmaster: number, o: DistributedOptions, workers: number, profile: boolean, fn: (t: Target) => Promise<T>): Promise<T> {
  const databaseUrl = await pgServer.createDatabase();
  const cluster = await startBenchCluster({
    databaseUrl,
    workers,
    capacity: Math.ceil(o.runs / workers),
    env: limitsEnv(o.runs),
    ...(profile && o.cpuProfDir ? { cpuProfDir: path.join(o.cpuProfDir, `distributed-${workers}w`) } : {}),
  });
  try {
    return await fn({ mode: `distributed/${workers}w`, server: cluster, cluster, postmaster });
  } finally {
    await cluster.stop();
  }
}

type Rep = {
  single: { one: Record<string, unknown>; latency: Record<string, unknown>; concurrent: Record<string, unknown> };
  distributed: { one: Record<string, unknown>; latency: Record<string, unknown>; concurrent: Record<string, unknown> };
  scaling: Record<string, Record<string, unknown>>;
  ratio_one_run: number;
  ratio_concurrent: number;
  /** Streams that got their terminal event but were not ended by the server (see readRun). */
  hung_streams_single: number;
  hung_streams_distributed: number;
  /** The machine's 1-minute load average at the repetition's start and end (other work on the machine shows here). */
  load_avg_1m: { before: number; after: number };
};

const hungOf = (...ms: Array<Record<string, unknown>>) => ms.reduce((n, m) => n + ((m.hung_streams as number | undefined) ?? 0), 0);

const num = (r: Record<string, unknown>, k: string) => r[k] as number;

/** A strict "higher than" target (figure() has >= and <): passes when the best value exceeds `value`. */
function above(f: Figure, value: number): Figure {
  return { ...f, target: `> ${value}`, pass: f.best > value };
}

/** The commit measured, `+dirty` when src/ has uncommitted changes; undefined outside a git checkout. */
function gitCommit(): string | undefined {
  const head = spawnSync("git", ["rev-parse", "--short", "HEAD"], { cwd: ROOT, encoding: "utf8" });
  if (head.status !== 0) return undefined;
  const dirty = spawnSync("git", ["status", "--porcelain", "--", "src"], { cwd: ROOT, encoding: "utf8" }).stdout.trim() !== "";
  return `${head.stdout.trim()}${dirty ? "+dirty" : ""}`;
}

/** Runs the distributed benchmark `repeats` times (both modes in every repetition). */
export async function benchDistributed(o: DistributedOptions): Promise<BenchResult> {
  const startedAt = new Date().toISOString();
  const pgServer = await startPostgres();
  const reps: Rep[] = [];
  try {
    const postmaster = await postmasterPid(pgServer.url);
    for (let i = 0; i < o.repeats; i++) {
      const profile = i === 0;
      const tag = `  distributed #${i + 1}`;
      const loadBefore = os.loadavg()[0]!;
      const all = async (t: Target) => {
        const one = await measureOneRun(t, o.singleLines);
        console.error(`${tag} ${t.mode}: one run ${one.events_per_s} ev/s (${one.ms} ms: appended in ${one.append_span_ms} ms after run.started, terminal received ${one.terminal_delivery_lag_ms} ms after it was stamped${one.terminal_stored_lag_ms !== undefined ? ` (stored after ${one.terminal_stored_lag_ms} ms, then received ${one.stored_to_received_ms} ms later)` : ""}${one.hung_streams ? ", stream hung" : ""}); CPU ms ${cpuText(one.cpu_ms as Cpu)}`);
        const latency = await measureLatency(t, o.latencyRuns, o.warmup);
        console.error(`${tag} ${t.mode}: POST -> run.started p50 ${latency.started_p50_ms} ms p99 ${latency.started_p99_ms} ms (-> terminal p50 ${latency.completed_p50_ms} ms; ${latency.hung_streams} hung)`);
        const concurrent = await measureConcurrent(t, o.runs, o.linesPerRun);
        console.error(
          `${tag} ${t.mode}: ${o.runs} runs ${concurrent.events_per_s} ev/s total (burst ${concurrent.burst_ms} ms; all started ${concurrent.post_to_all_started_ms} ms after the first POST; ${concurrent.hung_streams} hung${concurrent.runs_per_worker ? `, per worker ${JSON.stringify(concurrent.runs_per_worker)}` : ""}); CPU ms ${cpuText(concurrent.cpu_ms as Cpu)}`,
        );
        return { one, latency, concurrent };
      };
      const single = await withSingle(o, profile, all);
      const distributed = await withCluster(pgServer, postmaster, o, 2, profile, all);
      const scaling: Record<string, Record<string, unknown>> = {};
      for (const w of o.scaling) {
        if (w === 2) {
          scaling["2"] = distributed.concurrent;
          continue;
        }
        scaling[String(w)] = await withCluster(pgServer, postmaster, o, w, false, async (t) => {
          const c = await measureConcurrent(t, o.runs, o.linesPerRun);
          console.error(`${tag} ${t.mode}: ${o.runs} runs ${c.events_per_s} ev/s total (burst ${c.burst_ms} ms; all started ${c.post_to_all_started_ms} ms after the first POST; ${c.hung_streams} hung, per worker ${JSON.stringify(c.runs_per_worker)}); CPU ms ${cpuText(c.cpu_ms as Cpu)}`);
          return c;
        });
      }
      const rep: Rep = {
        single,
        distributed,
        scaling,
        ratio_one_run: round(num(distributed.one, "events_per_s") / num(single.one, "events_per_s"), 4),
        ratio_concurrent: round(num(distributed.concurrent, "events_per_s") / num(single.concurrent, "events_per_s"), 4),
        load_avg_1m: { before: round(loadBefore, 2), after: round(os.loadavg()[0]!, 2) },
        hung_streams_single: hungOf(single.one, single.latency, single.concurrent),
        hung_streams_distributed: hungOf(distributed.one, distributed.latency, ...Object.values(scaling)),
      };
      reps.push(rep);
      console.error(`${tag}: ratios distributed/single: one run ${rep.ratio_one_run}, ${o.runs} runs ${rep.ratio_concurrent}; streams not ended after their terminal event: single ${rep.hung_streams_single}, distributed ${rep.hung_streams_distributed}; load avg ${rep.load_avg_1m.before} -> ${rep.load_avg_1m.after}`);
    }
  } finally {
    await pgServer.stop();
  }
  const col = (f: (r: Rep) => number) => reps.map(f);
  return {
    name: "distributed",
    startedAt,
    quick: o.quick,
    repeats: o.repeats,
    figures: [
      figure(`one run (N=${o.singleLines}): single-process ev/s`, "ev/s", "higher", col((r) => num(r.single.one, "events_per_s"))),
      figure(`one run (N=${o.singleLines}): distributed ev/s`, "ev/s", "higher", col((r) => num(r.distributed.one, "events_per_s"))),
      figure("one run: ratio distributed/single", "x", "higher", col((r) => r.ratio_one_run), { op: ">=", value: 0.5 }),
      figure(`${o.runs} runs x ${o.linesPerRun} lines: single-process ev/s total`, "ev/s", "higher", col((r) => num(r.single.concurrent, "events_per_s"))),
      figure(`${o.runs} runs x ${o.linesPerRun} lines: distributed 2 workers ev/s total`, "ev/s", "higher", col((r) => num(r.distributed.concurrent, "events_per_s"))),
      above(figure(`${o.runs} runs: ratio distributed(2w)/single`, "x", "higher", col((r) => r.ratio_concurrent)), 1),
      figure("POST -> run.started p50: single-process", "ms", "lower", col((r) => num(r.single.latency, "started_p50_ms"))),
      figure("POST -> run.started p99: single-process", "ms", "lower", col((r) => num(r.single.latency, "started_p99_ms"))),
      figure("POST -> run.started p50: distributed", "ms", "lower", col((r) => num(r.distributed.latency, "started_p50_ms"))),
      figure("POST -> run.started p99: distributed", "ms", "lower", col((r) => num(r.distributed.latency, "started_p99_ms"))),
      // one value, the total over the repetitions: a hang in any repetition shows as MISS
      figure("SSE streams left open after the terminal event, total: single", "streams", "lower", [reps.reduce((n, r) => n + r.hung_streams_single, 0)], { op: "<", value: 1 }),
      figure("SSE streams left open after the terminal event, total: distributed", "streams", "lower", [reps.reduce((n, r) => n + r.hung_streams_distributed, 0)], { op: "<", value: 1 }),
      ...o.scaling.map((w) => figure(`scaling: ${o.runs} runs, ${w} worker${w === 1 ? "" : "s"} ev/s total`, "ev/s", "higher", col((r) => num(r.scaling[String(w)]!, "events_per_s")))),
    ],
    details: {
      commit: gitCommit(),
      cpus: os.cpus().length,
      single_lines: o.singleLines,
      runs: o.runs,
      lines_per_run: o.linesPerRun,
      latency_runs: o.latencyRuns,
      limits: limitsEnv(o.runs),
      worker_capacity: Object.fromEntries(o.scaling.map((w) => [w, Math.ceil(o.runs / w)])),
      notes: [
        `${os.cpus().length} CPU cores shared by this client, the API server, the workers, the runs' processes and PostgreSQL: the scaling figure is informational, more worker processes than cores cannot add throughput here.`,
        "PostgreSQL: the tests' throw-away cluster on 127.0.0.1 with fsync, synchronous_commit and full_page_writes off (test/helpers/postgres.ts); a fresh database per cluster.",
        "cpu_ms per measurement: CPU time of each process over it (postgres = postmaster with its backends); the runs' own processes (seq) are not counted.",
      ],
      repetitions: reps,
    },
  };
}
