/**
 * Benchmark: the real agent CLIs as runs, and the orchestrator's overhead.
 *
 *   node --import tsx bench/agents.ts [--runs N] [--agent claude_code|codex|opencode|gemini]…
 *
 * Per agent, N runs (default 20) of one scripted scenario against the scripted model server
 * (a shell tool call, then a final text): time from POST /api/runs to `run.started`, to the first
 * `message.delta` (or `message` for CLIs that emit whole messages), and to `run.completed`
 * received over SSE. In the same loop, alternating with the server runs, the same CLI command
 * (argv, env and cwd from the adapter's `command()`, with a fresh home and cwd) is run directly
 * with execa: spawn -> first message line on stdout, spawn -> exit. The overhead ratio is
 * median(POST -> run.completed) / median(direct spawn -> exit); target < 1.10.
 * Writes `bench/results/agents.json` and prints a table. CLIs run one at a time.
 */
import http from "node:http";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { execa } from "execa";
import { createClaudeCodeAdapter } from "../src/agent/claude-code/adapter.ts";
import type { AgentCliOptions } from "../src/agent/cli-support.ts";
import { createCodexAdapter } from "../src/agent/codex/adapter.ts";
import { createGeminiAdapter } from "../src/agent/gemini/adapter.ts";
import { createLineSplitter } from "../src/agent/line-splitter.ts";
import { createOpencodeAdapter } from "../src/agent/opencode/adapter.ts";
import type { AgentAdapter } from "../src/agent/types.ts";
import { startModelServer, type ModelServer, type Scenario } from "../test/fixtures/model-server/index.ts";
import { requestJson } from "./lib/http.ts";
import { figure, formatTable, writeResult, type BenchResult, type Figure } from "./lib/result.ts";
import { ROOT, startBenchServer, type BenchServer } from "./lib/server.ts";
import { percentile, round, wallNow } from "./lib/stats.ts";

export const BENCH_AGENTS = ["claude_code", "codex", "opencode", "gemini"] as const;
export type BenchAgent = (typeof BENCH_AGENTS)[number];

export interface AgentsBenchOptions {
  runs: number;
  agents: BenchAgent[];
  quick: boolean;
}

const SETUP: Record<BenchAgent, { model: string; suffix: string; create: (o: AgentCliOptions, env: Record<string, string>) => AgentAdapter }> = {
  claude_code: { model: "claude-sonnet-4-5", suffix: "", create: createClaudeCodeAdapter },
  codex: { model: "gpt-5.5", suffix: "/v1", create: createCodexAdapter },
  opencode: { model: "fake-model", suffix: "/v1", create: createOpencodeAdapter },
  gemini: { model: "gemini-2.5-flash", suffix: "", create: createGeminiAdapter },
};
const PROMPT = "Create bench.txt, then say done.";
const SCENARIO: Scenario = { turns: [{ text: "Creating bench.txt.", tool: { shell: "printf 'bench\\n' > bench.txt" } }, { text: "Created bench.txt." }] };
const RUN_LIMIT_MS = 180_000;

/** One measured run, ms from POST (server) or spawn (direct). */
interface Sample {
  started: number;
  first_message: number;
  completed: number;
}

function agentOptions(model: ModelServer, agent: BenchAgent): AgentCliOptions {
  return { base_url: model.url + SETUP[agent].suffix, api_key: "sk-test", model: SETUP[agent].model };
}

/** Reads a run's SSE stream; each event's arrival time (wall ms). Rejects on run failure. */
export function readRun(server: BenchServer, runId: string): Promise<Array<{ type: string; at: number; data: Record<string, unknown> }>> {
  return new Promise((resolve, reject) => {
    const seen: Array<{ type: string; at: number; data: Record<string, unknown> }> = [];
    let buf = "";
    const req = http.get(`${server.url}/api/runs/${runId}/events`, { headers: { Accept: "text/event-stream", Authorization: `Bearer ${server.token}` } }, (res) => {
      if (res.statusCode !== 200) return reject(new Error(`SSE status ${res.statusCode}`));
      const subscribedAt = wallNow();
      res.setEncoding("utf8");
      res.on("data", (chunk: string) => {
        const at = wallNow();
        buf += chunk;
        let end: number;
        while ((end = buf.indexOf("\n\n")) !== -1) {
          const data = /(?:^|\n)data: (.*)/.exec(buf.slice(0, end))?.[1];
          buf = buf.slice(end + 2);
          if (!data) continue;
          const e = JSON.parse(data) as { type: string; ts: string; data: Record<string, unknown> };
          // Events stored before the subscription arrive in one replay: take their server timestamp.
          const ts = Date.parse(e.ts);
          seen.push({ type: e.type, at: ts < subscribedAt ? ts : at, data: e.data });
        }
      });
      res.on("end", () => resolve(seen));
      res.on("error", reject);
    });
    req.setTimeout(RUN_LIMIT_MS, () => req.destroy(new Error("run took too long")));
    req.on("error", reject);
  });
}

async function measureServerRun(server: BenchServer, model: ModelServer, agent: BenchAgent): Promise<Sample> {
  model.setScenario(SCENARIO);
  const t0 = wallNow();
  const res = await requestJson<{ run_id: string }>(server.url, "POST", "/api/runs", { input: { text: PROMPT }, metadata: { agent_type: agent } }, server.token);
  if (res.status !== 201) throw new Error(`${agent}: POST /api/runs ${res.status} ${JSON.stringify(res.body)}`);
  const events = await readRun(server, res.body.run_id);
  const last = events.at(-1);
  if (last?.type !== "run.completed") throw new Error(`${agent}: run ended with ${last?.type}: ${JSON.stringify(last?.data)}`);
  const at = (pred: (t: string) => boolean) => {
    const e = events.find((x) => pred(x.type));
    if (!e) throw new Error(`${agent}: no ${pred.toString()} event`);
    return e.at - t0;
  };
  return { started: at((t) => t === "run.started"), first_message: at((t) => t === "message.delta" || t === "message"), completed: last.at - t0 };
}

/** The adapter's own command, with a fresh home and cwd, run directly (same spawn options as the process actor). */
async function measureDirectRun(adapter: AgentAdapter, model: ModelServer, serverEnv: Record<string, string>, scratch: string, i: number): Promise<Sample> {
  model.setScenario(SCENARIO);
  const home = mkdtempSync(path.join(scratch, `home-${i}-`));
  const cwd = mkdtempSync(path.join(scratch, `work-${i}-`));
  const ctx = { run_id: `direct_${i}`, text: PROMPT, cwd, home, server_env: serverEnv };
  const parser = adapter.createParser(ctx);
  const t0 = wallNow();
  const cmd = await adapter.command(ctx);
  let firstMessage = Number.NaN;
  const lines = createLineSplitter((line) => {
    const events = parser.parseLine(line);
    if (Number.isNaN(firstMessage) && events.some((e) => e.type === "message.delta" || e.type === "message")) firstMessage = wallNow() - t0;
  });
  const child = execa(cmd.argv[0]!, cmd.argv.slice(1), { cwd: cmd.cwd, env: cmd.env, extendEnv: false, detached: true, stdin: "ignore", buffer: false, reject: false, cleanup: true, timeout: RUN_LIMIT_MS });
  const started = wallNow() - t0;
  child.stdout?.setEncoding("utf8").on("data", lines.push);
  child.stderr?.resume();
  const result = await child;
  lines.end();
  const completed = wallNow() - t0;
  const outcome = parser.outcome({ ...(typeof result.exitCode === "number" ? { exit_code: result.exitCode } : {}), stderr_tail: "" });
  if (outcome.kind !== "completed") throw new Error(`${adapter.name} direct run failed: ${JSON.stringify(outcome)}`);
  return { started, first_message: firstMessage, completed };
}

const med = (xs: number[]) => percentile(xs, 50);

/** Runs the benchmark for each agent, sequentially, alternating server and direct runs. */
export async function benchAgents(opts: AgentsBenchOptions): Promise<BenchResult> {
  const startedAt = new Date().toISOString();
  const models = {} as Record<BenchAgent, ModelServer>;
  for (const a of opts.agents) models[a] = await startModelServer();
  const scratch = mkdtempSync(path.join(os.tmpdir(), "openrunner-bench-agents-"));
  const configFile = path.join(scratch, "openrunner.yaml");
  const agentsConfig: Record<string, AgentCliOptions> = {};
  for (const a of opts.agents) agentsConfig[a] = agentOptions(models[a], a);
  writeFileSync(configFile, JSON.stringify({ agents: agentsConfig }, null, 2));
  // The server's environment, as startBenchServer passes it; the direct runs get the same.
  const serverEnv = { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: process.env.HOME ?? "/root" };
  const server = await startBenchServer({ env: { OPENRUNNER_CONFIG: configFile } });
  const figures: Figure[] = [];
  const details: Record<string, unknown> = {};
  try {
    for (const agent of opts.agents) {
      const adapter = SETUP[agent].create(agentOptions(models[agent], agent), serverEnv);
      const health = await adapter.detect();
      if (!health.available) throw new Error(`${agent} is not available: ${health.reason} (run scripts/install-agents.sh)`);
      // one unmeasured warm-up each way (page cache, first-run migrations)
      await measureServerRun(server, models[agent], agent);
      await measureDirectRun(adapter, models[agent], serverEnv, scratch, -1);
      const viaServer: Sample[] = [];
      const direct: Sample[] = [];
      for (let i = 0; i < opts.runs; i++) {
        // ABBA order, so slow drift of the machine's load hits both sides alike
        if (i % 2 === 0) {
          viaServer.push(await measureServerRun(server, models[agent], agent));
          direct.push(await measureDirectRun(adapter, models[agent], serverEnv, scratch, i));
        } else {
          direct.push(await measureDirectRun(adapter, models[agent], serverEnv, scratch, i));
          viaServer.push(await measureServerRun(server, models[agent], agent));
        }
      }
      const pick = (xs: Sample[], k: keyof Sample) => xs.map((x) => round(x[k], 1));
      const ratio = med(pick(viaServer, "completed")) / med(pick(direct, "completed"));
      console.error(`  ${agent} (${health.version}): POST->completed p50 ${round(med(pick(viaServer, "completed")), 0)} ms, direct ${round(med(pick(direct, "completed")), 0)} ms, ratio ${round(ratio, 3)}`);
      figures.push(
        figure(`${agent} POST -> run.started p50`, "ms", "lower", [med(pick(viaServer, "started"))]),
        figure(`${agent} POST -> first message p50`, "ms", "lower", [med(pick(viaServer, "first_message"))]),
        figure(`${agent} POST -> run.completed p50`, "ms", "lower", [med(pick(viaServer, "completed"))]),
        figure(`${agent} direct spawn -> exit p50`, "ms", "lower", [med(pick(direct, "completed"))]),
        figure(`${agent} overhead ratio (OpenRunner/direct)`, "x", "lower", [ratio], { op: "<", value: 1.1 }),
      );
      details[agent] = {
        version: health.version,
        runs: opts.runs,
        server_ms: { started: pick(viaServer, "started"), first_message: pick(viaServer, "first_message"), completed: pick(viaServer, "completed") },
        direct_ms: { started: pick(direct, "started"), first_message: pick(direct, "first_message"), completed: pick(direct, "completed") },
        p90_ms: { server_completed: percentile(pick(viaServer, "completed"), 90), direct_completed: percentile(pick(direct, "completed"), 90) },
      };
    }
  } finally {
    await server.stop();
    for (const m of Object.values(models)) await m.close();
    rmSync(scratch, { recursive: true, force: true });
  }
  details.machine = { cpus: os.cpus().length, loadavg_at_end: os.loadavg().map((x) => round(x, 2)) };
  return { name: "agents", startedAt, quick: opts.quick, repeats: opts.runs, figures, details };
}

/** The per-agent table: medians in ms, and the ratio. */
export function formatAgentsTable(result: BenchResult): string {
  const rows = [["agent", "runs", "->started", "->1st msg", "->completed", "direct", "ratio", "target"]];
  for (const [agent, d] of Object.entries(result.details as Record<string, { runs: number; server_ms: Record<string, number[]>; direct_ms: Record<string, number[]> }>)) {
    if (!d.server_ms) continue;
    const ratio = result.figures.find((f) => f.metric.startsWith(`${agent} overhead`))!;
    const m = (xs: number[]) => String(Math.round(med(xs)));
    rows.push([agent, String(d.runs), m(d.server_ms.started!), m(d.server_ms.first_message!), m(d.server_ms.completed!), m(d.direct_ms.completed!), ratio.best.toFixed(3), ratio.pass ? "< 1.10 PASS" : "< 1.10 MISS"]);
  }
  const w = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
  return rows.map((r) => r.map((cell, c) => (c === 0 ? cell.padEnd(w[c]!) : cell.padStart(w[c]!))).join("  ")).join("\n");
}

function parseArgs(argv: string[]): AgentsBenchOptions {
  const opts: AgentsBenchOptions = { runs: 20, agents: [], quick: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === "--runs") opts.runs = Number(argv[++i]);
    else if (a === "--agent") opts.agents.push(argv[++i] as BenchAgent);
    else if (a === "--quick") opts.quick = true;
    else throw new Error(`unknown argument ${a}; usage: bench/agents.ts [--runs N] [--agent NAME]… [--quick]`);
  }
  if (!Number.isInteger(opts.runs) || opts.runs < 1) throw new Error(`--runs must be a positive integer, got ${opts.runs}`);
  for (const a of opts.agents) if (!BENCH_AGENTS.includes(a)) throw new Error(`--agent must be one of ${BENCH_AGENTS.join(", ")}, got ${a}`);
  if (opts.agents.length === 0) opts.agents = [...BENCH_AGENTS];
  if (opts.quick && !argv.includes("--runs")) opts.runs = 3;
  return opts;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const opts = parseArgs(process.argv.slice(2));
  console.error(`agents benchmark: ${opts.runs} runs per agent (${opts.agents.join(", ")}), one at a time`);
  const result = await benchAgents(opts);
  const file = writeResult(path.join(ROOT, "bench/results"), result);
  console.log(formatAgentsTable(result));
  console.log();
  console.log(formatTable([result]));
  console.log(`\nwritten ${path.relative(ROOT, file)}`);
}
