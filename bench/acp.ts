/**
 * Benchmark: Claude Code through ACP (`agent_type: "acp"`, `acp_agent: "claude-code-acp"`) vs
 * the plain `claude_code` adapter, on the same scripted scenario (one shell command, then a
 * final text) against the scripted model server, through the real server.
 *
 *   node --import tsx bench/acp.ts [--runs N] [--quick]
 *
 * N runs each (default 20), alternating ABBA so load drift hits both alike. Per run: time from
 * POST /api/runs to the first `message.delta` and to `run.completed` (SSE arrival), plus
 * `run.started` and `agent.session` to show where the time goes. The ACP side
 * runs in claude-code-acp's default mode, so the command goes through one
 * `session/request_permission` (decided by `permission_policy: "allow"`) and the client's
 * `terminal/*`; the plain side runs with --dangerously-skip-permissions and its own Bash. Ratios
 * are median(acp) / median(claude_code). Writes `bench/results/acp.json`.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { startModelServer, type ModelServer, type Scenario } from "../test/fixtures/model-server/index.ts";
import { readRun } from "./agents.ts";
import { requestJson } from "./lib/http.ts";
import { figure, formatTable, writeResult, type BenchResult } from "./lib/result.ts";
import { ROOT, startBenchServer, type BenchServer } from "./lib/server.ts";
import { percentile, round, wallNow } from "./lib/stats.ts";

export interface AcpBenchOptions {
  runs: number;
  quick: boolean;
}

type Side = "claude_code" | "acp";
const PROMPT = "Create bench.txt, then say done.";
const COMMAND = "printf 'bench\\n' > bench.txt";
/** The same two steps for both; only the tool's name differs (claude-code-acp swaps Bash for mcp__acp__Bash). */
const SCENARIO: Record<Side, Scenario> = {
  claude_code: { turns: [{ text: "Creating bench.txt.", tool: { shell: COMMAND } }, { text: "Created bench.txt." }] },
  acp: { turns: [{ text: "Creating bench.txt.", tool: { name: "mcp__acp__Bash", input: { command: COMMAND, description: "Create bench.txt", timeout: 60_000 } } }, { text: "Created bench.txt." }] },
};
const METADATA: Record<Side, Record<string, unknown>> = {
  claude_code: { agent_type: "claude_code" },
  acp: { agent_type: "acp", acp_agent: "claude-code-acp", permission_policy: "allow" },
};

interface Sample {
  started: number;
  /** POST -> `agent.session` (ACP: after initialize + session/new). */
  session: number;
  first_delta: number;
  completed: number;
}

async function measure(server: BenchServer, model: ModelServer, side: Side): Promise<Sample> {
  model.setScenario(SCENARIO[side]);
  const t0 = wallNow();
  const res = await requestJson<{ run_id: string }>(server.url, "POST", "/api/runs", { input: { text: PROMPT }, metadata: METADATA[side] }, server.token);
  if (res.status !== 201) throw new Error(`${side}: POST /api/runs ${res.status} ${JSON.stringify(res.body)}`);
  const events = await readRun(server, res.body.run_id);
  const last = events.at(-1);
  if (last?.type !== "run.completed") throw new Error(`${side}: run ended with ${last?.type}: ${JSON.stringify(last?.data)}`);
  const at = (type: string) => {
    const e = events.find((x) => x.type === type);
    if (!e) throw new Error(`${side}: no ${type}`);
    return e.at - t0;
  };
  return { started: at("run.started"), session: at("agent.session"), first_delta: at("message.delta"), completed: last.at - t0 };
}

const med = (xs: number[]) => percentile(xs, 50);

/** Runs both sides N times each, alternating, through one server. */
export async function benchAcp(opts: AcpBenchOptions): Promise<BenchResult> {
  const startedAt = new Date().toISOString();
  const model = await startModelServer();
  const scratch = mkdtempSync(path.join(os.tmpdir(), "openrunner-bench-acp-"));
  const configFile = path.join(scratch, "openrunner.yaml");
  const vendor = { base_url: model.url, api_key: "sk-test", model: "claude-sonnet-4-5" };
  writeFileSync(configFile, JSON.stringify({ agents: { claude_code: vendor }, acp_agents: { "claude-code-acp": vendor } }));
  const server = await startBenchServer({ env: { OPENRUNNER_CONFIG: configFile } });
  const samples: Record<Side, Sample[]> = { claude_code: [], acp: [] };
  try {
    // one unmeasured warm-up each (page cache; the ACP agent's health probe)
    await measure(server, model, "claude_code");
    await measure(server, model, "acp");
    for (let i = 0; i < opts.runs; i++) {
      const order: Side[] = i % 2 === 0 ? ["claude_code", "acp"] : ["acp", "claude_code"];
      for (const side of order) samples[side].push(await measure(server, model, side));
    }
  } finally {
    await server.stop();
    await model.close();
    rmSync(scratch, { recursive: true, force: true });
  }
  const pick = (side: Side, k: keyof Sample) => samples[side].map((x) => round(x[k], 1));
  const ratio = (k: keyof Sample) => med(pick("acp", k)) / med(pick("claude_code", k));
  const figures = [
    figure("claude_code POST -> run.started p50", "ms", "lower", [med(pick("claude_code", "started"))]),
    figure("claude-code-acp POST -> run.started p50", "ms", "lower", [med(pick("acp", "started"))]),
    figure("claude_code POST -> agent.session p50", "ms", "lower", [med(pick("claude_code", "session"))]),
    figure("claude-code-acp POST -> agent.session p50", "ms", "lower", [med(pick("acp", "session"))]),
    figure("claude_code POST -> first message.delta p50", "ms", "lower", [med(pick("claude_code", "first_delta"))]),
    figure("claude-code-acp POST -> first message.delta p50", "ms", "lower", [med(pick("acp", "first_delta"))]),
    figure("claude_code POST -> run.completed p50", "ms", "lower", [med(pick("claude_code", "completed"))]),
    figure("claude-code-acp POST -> run.completed p50", "ms", "lower", [med(pick("acp", "completed"))]),
    figure("first message.delta ratio (acp/claude_code)", "x", "lower", [ratio("first_delta")]),
    figure("run.completed ratio (acp/claude_code)", "x", "lower", [ratio("completed")]),
  ];
  const details = {
    runs: opts.runs,
    claude_code_ms: { started: pick("claude_code", "started"), session: pick("claude_code", "session"), first_delta: pick("claude_code", "first_delta"), completed: pick("claude_code", "completed") },
    acp_ms: { started: pick("acp", "started"), session: pick("acp", "session"), first_delta: pick("acp", "first_delta"), completed: pick("acp", "completed") },
    p90_ms: { claude_code_completed: percentile(pick("claude_code", "completed"), 90), acp_completed: percentile(pick("acp", "completed"), 90) },
    machine: { cpus: os.cpus().length, loadavg_at_end: os.loadavg().map((x) => round(x, 2)) },
  };
  return { name: "acp", startedAt, quick: opts.quick, repeats: opts.runs, figures, details };
}

function parseArgs(argv: string[]): AcpBenchOptions {
  const opts: AcpBenchOptions = { runs: 20, quick: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === "--runs") opts.runs = Number(argv[++i]);
    else if (a === "--quick") opts.quick = true;
    else throw new Error(`unknown argument ${a}; usage: bench/acp.ts [--runs N] [--quick]`);
  }
  if (!Number.isInteger(opts.runs) || opts.runs < 1) throw new Error(`--runs must be a positive integer, got ${opts.runs}`);
  if (opts.quick && !argv.includes("--runs")) opts.runs = 3;
  return opts;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const opts = parseArgs(process.argv.slice(2));
  console.error(`acp benchmark: claude-code-acp vs claude_code, ${opts.runs} runs each, alternating`);
  const result = await benchAcp(opts);
  const file = writeResult(path.join(ROOT, "bench/results"), result);
  console.log(formatTable([result]));
  console.log(`\nwritten ${path.relative(ROOT, file)}`);
}
