/**
 * `npm run bench`: runs the benchmarks against the real server (a child
 * process on 127.0.0.1:0 with a temporary data folder), writes
 * `bench/results/<name>.json` for each and prints one table at the end.
 *
 *   npm run bench                          every benchmark, 3 repetitions each
 *   npm run bench -- --only pipeline,fanout
 *   npm run bench -- --quick               scaled-down N, 1 repetition
 *   npm run bench -- --repeats 2
 *   npm run bench -- --profile             V8 CPU profile of the server (first repetition) into bench/results/profiles/<name>/
 *
 * Everything it starts is tracked and stopped by PID at the end, also on Ctrl-C.
 */
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { benchAdmission } from "./admission.ts";
import { benchAgents } from "./agents.ts";
import { benchAcp } from "./acp.ts";
import { benchNative } from "./native.ts";
import { benchDocker } from "./docker.ts";
import { benchDistributed } from "./distributed.ts";
import { benchTunnel } from "./tunnel.ts";
import { benchProxy } from "./proxy.ts";
import { benchFanout } from "./fanout.ts";
import { benchLatency } from "./latency.ts";
import { benchPipeline } from "./pipeline.ts";
import { benchWeb } from "./web.ts";
import { killAllTracked } from "./lib/procs.ts";
import { formatTable, writeResult, type BenchResult } from "./lib/result.ts";

const NAMES = ["pipeline", "latency", "admission", "fanout", "agents", "acp", "tunnel", "proxy", "docker", "web", "native", "distributed"] as const;
type Name = (typeof NAMES)[number];
const RESULTS = path.join(path.dirname(fileURLToPath(import.meta.url)), "results");

const USAGE = `usage: npm run bench -- [--only ${NAMES.join(",")}] [--quick] [--repeats N] [--profile]`;

function parseOptions(): { only: Name[]; quick: boolean; repeats: number; profile: boolean } {
  const { values } = parseArgs({
    options: {
      only: { type: "string" },
      quick: { type: "boolean", default: false },
      repeats: { type: "string" },
      profile: { type: "boolean", default: false },
      help: { type: "boolean", short: "h", default: false },
    },
    allowPositionals: false,
  });
  if (values.help) {
    console.log(USAGE);
    process.exit(0);
  }
  const only = (values.only ? values.only.split(",").map((s) => s.trim()) : [...NAMES]) as Name[];
  for (const n of only) if (!NAMES.includes(n)) throw new Error(`--only: unknown benchmark "${n}" (expected ${NAMES.join(", ")})`);
  const repeats = values.repeats !== undefined ? Number(values.repeats) : values.quick ? 1 : 3;
  if (!Number.isInteger(repeats) || repeats < 1 || repeats > 10) throw new Error(`--repeats: expected an integer from 1 to 10, got ${values.repeats}`);
  return { only, quick: values.quick, repeats, profile: values.profile };
}

async function runOne(name: Name, o: ReturnType<typeof parseOptions>): Promise<BenchResult> {
  const base = { repeats: o.repeats, quick: o.quick, ...(o.profile ? { cpuProfDir: path.join(RESULTS, "profiles", name) } : {}) };
  switch (name) {
    case "pipeline":
      return benchPipeline({ ...base, n: o.quick ? 20_000 : 200_000 });
    case "latency":
      return benchLatency({ ...base, durationMs: o.quick ? 2_000 : 10_000, intervalMs: 10, warmupLines: 20 });
    case "admission":
      return benchAdmission({ ...base, runs: o.quick ? 30 : 200, warmup: o.quick ? 3 : 10 });
    case "fanout":
      return benchFanout({ ...base, subscribers: o.quick ? 100 : 1_000, events: 1_000, workers: 2, pacedLinesPer10ms: 2 });
    case "agents":
      return benchAgents({ runs: o.quick ? 3 : 20, agents: ["claude_code", "codex", "opencode", "gemini"], quick: o.quick });
    case "acp":
      return benchAcp({ runs: o.quick ? 3 : 20, quick: o.quick });
    case "tunnel":
      return benchTunnel({ quick: o.quick, repeats: o.repeats });
    case "proxy":
      return benchProxy({ quick: o.quick, repeats: o.repeats });
    case "docker":
      return benchDocker({ runs: o.quick ? 8 : 30, warmup: 2, repeats: o.repeats, quick: o.quick });
    case "web":
      return benchWeb({ ...base, runs: o.quick ? 10 : 30, streamSecs: o.quick ? 2 : 5, bigEvents: 100_000 });
    case "native":
      return benchNative({ turns: o.quick ? 10 : 40, repeats: o.quick ? 2 : 8, toolCalls: o.quick ? 30 : 200, quick: o.quick, ...(base.cpuProfDir ? { cpuProfDir: base.cpuProfDir } : {}) });
    case "distributed":
      return benchDistributed({ ...base, singleLines: o.quick ? 50_000 : 200_000, runs: 50, linesPerRun: o.quick ? 2_000 : 10_000, latencyRuns: o.quick ? 30 : 100, warmup: o.quick ? 3 : 5, scaling: [1, 2, 4] });
  }
}

async function main(): Promise<number> {
  let o: ReturnType<typeof parseOptions>;
  try {
    o = parseOptions();
  } catch (err) {
    console.error(`${(err as Error).message}\n${USAGE}`);
    return 2;
  }
  const onSignal = () => {
    killAllTracked();
    process.exit(130);
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  const results: BenchResult[] = [];
  let failed = 0;
  try {
    for (const name of o.only) {
      console.error(`${name}: ${o.repeats} repetition(s)${o.quick ? ", quick" : ""}`);
      const t0 = performance.now();
      try {
        const r = await runOne(name, o);
        results.push(r);
        console.error(`${name}: done in ${((performance.now() - t0) / 1000).toFixed(1)} s -> ${path.relative(process.cwd(), writeResult(RESULTS, r))}`);
      } catch (err) {
        failed++;
        console.error(`${name}: FAILED: ${(err as Error).stack ?? String(err)}`);
      }
    }
  } finally {
    killAllTracked();
  }
  console.log(`\n${formatTable(results)}`);
  return failed > 0 ? 1 : 0;
}

process.exitCode = await main();
