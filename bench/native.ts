/**
 * Benchmark: the `openrunner` native agent's overhead per turn, and its tool round trips.
 *
 *   npm run bench -- --only native        (or: node --import tsx bench/native.ts [--turns N] [--repeats R] [--quick])
 *
 * The scripted model server runs in a child process of its own (`lib/model-child.ts`). Each
 * repetition runs, in ABBA order:
 * - a native run on the real server (`metadata.model: "bench/m"`, Responses wire) whose model
 *   asks for `read_file` of a small file N times, then answers: per turn = the interval between the ends
 *   of consecutive turns, from the server's own `usage` event timestamps (each is written right
 *   after its model stream ended), so a turn is the tool call, its events and permission, the
 *   stored conversation and the next streamed model request. Nobody streams the run meanwhile
 *   (its end is polled); a second run of the same shape with a live SSE subscriber is reported
 *   apart (the server then also writes every event to a socket);
 * - the same N requests made directly with the OpenAI SDK from this process (same tools, same
 *   growing conversation), each tool call answered by the same `read_file` tool function on a
 *   workspace of its own: per turn measured the same way. The difference is what the agent adds
 *   around the model and the tool: events numbered, stored and streamed, input validation, the
 *   permission check, the stored conversation.
 * Every turn interval is kept; the figures are interquartile means (the middle half of the
 * intervals: robust to stalls of a loaded machine and to the 1 ms resolution of event
 * timestamps). The overhead ratio is IQM(native) / IQM(direct); target <= 1.10.
 *
 * Tool round trip: `bash true` inside a native run (`tool.call` -> `tool.result` event
 * timestamps, ms resolution; includes the permission gate under policy `allow`), and
 * `read_file` / `bash true` through the tool runner in this process (microseconds).
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { createInterface, type Interface } from "node:readline";
import { pathToFileURL } from "node:url";
import OpenAI from "openai";
import { TerminalSet } from "../src/agent/acp/terminal.ts";
import { createShellRunner } from "../src/agent/native/shell.ts";
import { createToolRunner } from "../src/agent/native/tool-runner.ts";
import { readFileTool } from "../src/agent/native/tools/fs-tools.ts";
import { createNativeTools, nativeToolSchemas } from "../src/agent/native/tools/index.ts";
import type { ToolContext } from "../src/agent/native/tools/types.ts";
import type { TranscriptItem } from "../src/agent/native/transcript.ts";
import { createWorkspaceFs } from "../src/agent/native/workspace-fs.ts";
import { toResponsesInput } from "../src/agent/native/wire/responses.ts";
import type { Scenario } from "../test/fixtures/model-server/index.ts";
import { readRun } from "./agents.ts";
import { requestJson } from "./lib/http.ts";
import { stopChild, track } from "./lib/procs.ts";
import { figure, formatTable, writeResult, type BenchResult } from "./lib/result.ts";
import { ROOT, startBenchServer, type BenchServer } from "./lib/server.ts";
import { percentile, round } from "./lib/stats.ts";

/** Options of {@link benchNative}. */
export interface NativeBenchOptions {
  /** Model turns per measured run. */
  turns: number;
  repeats: number;
  /** In-process tool calls per tool. */
  toolCalls: number;
  quick: boolean;
  /** Write a V8 CPU profile of the server into this folder. */
  cpuProfDir?: string;
}

const med = (xs: number[]) => percentile(xs, 50);
/** Interquartile mean: the mean of the middle half, robust to stalls of a loaded machine and to the native side's 1 ms timestamps. */
function iqm(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.slice(Math.floor(s.length / 4), Math.ceil((s.length * 3) / 4));
  return mid.reduce((a, b) => a + b, 0) / Math.max(1, mid.length);
}
const FILE = "small.txt";
const FILE_TEXT = "a small file\n".repeat(20);

/** The model server child: its URL and a way to set the scenario. */
interface ModelChild {
  url: string;
  setScenario(s: Scenario): Promise<void>;
  stop(): Promise<void>;
}

async function startModelChild(): Promise<ModelChild> {
  const child: ChildProcess = track(spawn(process.execPath, ["--import", "tsx", path.join(ROOT, "bench/lib/model-child.ts")], { cwd: ROOT, stdio: ["pipe", "pipe", "inherit"] }));
  const lines: Interface = createInterface({ input: child.stdout! });
  const waiting: Array<(l: string) => void> = [];
  lines.on("line", (l) => waiting.shift()?.(l));
  const next = () => new Promise<string>((r) => waiting.push(r));
  const url = await next();
  return {
    url,
    async setScenario(s) {
      const ok = next();
      child.stdin!.write(`${JSON.stringify(s)}\n`);
      await ok;
    },
    async stop() {
      child.stdin!.end();
      await stopChild(child, 5000);
    },
  };
}

const readTurns = (n: number): Scenario => ({ turns: [...Array.from({ length: n - 1 }, () => ({ tool: { name: "read_file", input: { path: FILE } } })), { text: "Read it." }] });

/** Per turn of a native run, ms, from its usage event timestamps. */
/**
 * One native run, ms per turn. `watch`: a live SSE subscriber follows the run (as a client would);
 * without, the run's end is polled every 100 ms, so the server writes no stream while it works.
 */
async function nativeRun(server: BenchServer, model: ModelChild, scenario: Scenario, watch = false): Promise<{ perTurn: number; intervals: number[]; toolMs: number[]; turns: number }> {
  await model.setScenario(scenario);
  const res = await requestJson<{ run_id: string }>(server.url, "POST", "/api/runs", { input: { text: "read the file" }, metadata: { agent_type: "openrunner", model: "bench/m", permission_policy: "allow", cwd: "bench" } }, server.token);
  if (res.status !== 201) throw new Error(`POST /api/runs ${res.status} ${JSON.stringify(res.body)}`);
  if (watch) await readRun(server, res.body.run_id);
  else
    for (;;) {
      await new Promise((r) => setTimeout(r, 100));
      const row = await requestJson<{ ended_at: string | null }>(server.url, "GET", `/api/runs/${res.body.run_id}`, undefined, server.token);
      if (row.body.ended_at) break;
    }
  const page = await requestJson<{ events: Array<{ type: string; ts: string; data: Record<string, unknown> }> }>(server.url, "GET", `/api/runs/${res.body.run_id}/events?after=0&limit=1000`, undefined, server.token);
  const evs = page.body.events;
  const last = evs.at(-1)!;
  if (last.type !== "run.completed") throw new Error(`native run ended ${last.type}: ${JSON.stringify(last.data)}`);
  const usage = evs.filter((e) => e.type === "usage").map((e) => Date.parse(e.ts));
  const calls = new Map(evs.filter((e) => e.type === "tool.call").map((e) => [e.data.call_id as string, Date.parse(e.ts)]));
  const toolMs = evs.filter((e) => e.type === "tool.result").map((e) => Date.parse(e.ts) - calls.get(e.data.call_id as string)!);
  return { perTurn: (usage.at(-1)! - usage[0]!) / (usage.length - 1), intervals: usage.slice(1).map((t, i) => t - usage[i]!), toolMs, turns: usage.length };
}

/** The same requests made directly with the SDK: per turn, ms. */
async function directRun(client: OpenAI, model: ModelChild, n: number, toolCtx: ToolContext): Promise<number[]> {
  await model.setScenario(readTurns(n));
  const tools = nativeToolSchemas().map((t) => ({ type: "function", name: t.name, description: t.description, parameters: t.input_schema, strict: false }));
  const transcript: TranscriptItem[] = [{ role: "user", text: "read the file" }];
  const ends: number[] = [];
  for (let turn = 0; turn < n; turn++) {
    const stream = await client.responses.create({ model: "m", instructions: "bench", input: toResponsesInput(transcript), tools, tool_choice: "auto", max_output_tokens: 8192, store: false, stream: true } as never);
    let text = "";
    const calls: Array<{ id: string; name: string; input: unknown }> = [];
    for await (const ev of stream as unknown as AsyncIterable<Record<string, unknown>>) {
      if (ev.type === "response.output_text.delta") text += String(ev.delta);
      else if (ev.type === "response.output_item.done" && (ev.item as { type: string }).type === "function_call") {
        const item = ev.item as { call_id: string; name: string; arguments: string };
        calls.push({ id: item.call_id, name: item.name, input: JSON.parse(item.arguments) });
      }
    }
    ends.push(performance.now());
    transcript.push({ role: "assistant", text, tool_calls: calls });
    if (calls.length === 0) break;
    // The same tool work as the agent's (the read_file tool on the same kind of workspace), without the agent around it.
    const results = [];
    for (const c of calls) results.push({ call_id: c.id, ...(await readFileTool.run(c.input as never, toolCtx)) });
    transcript.push({ role: "tool", results: results.map((r) => ({ call_id: r.call_id, output: r.output, is_error: r.is_error })) });
  }
  return ends.slice(1).map((t, i) => t - ends[i]!);
}

/** In-process tool round trips through the tool runner, µs per call. */
async function toolRoundTrips(calls: number): Promise<{ read_file_us: number[]; bash_true_us: number[] }> {
  const dir = mkdtempSync(path.join(os.tmpdir(), "openrunner-bench-native-tools-"));
  writeFileSync(path.join(dir, FILE), FILE_TEXT);
  const shell = createShellRunner(new TerminalSet({ root: dir, env: { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: dir } }));
  const ctx: ToolContext = { fs: createWorkspaceFs({ root: dir }), shell, setPlan: () => {}, signal: new AbortController().signal };
  const runner = createToolRunner({ tools: createNativeTools(), emit: () => {} });
  const time = async (name: string, input: unknown) => {
    const out: number[] = [];
    for (let i = 0; i < calls; i++) {
      const t0 = performance.now();
      const r = await runner.run({ id: `c${i}`, name, input }, ctx);
      out.push((performance.now() - t0) * 1000);
      if (r.is_error) throw new Error(`${name}: ${r.output}`);
    }
    return out;
  };
  try {
    await time("read_file", { path: FILE }); // warm-up
    return { read_file_us: await time("read_file", { path: FILE }), bash_true_us: await time("bash", { command: "true" }) };
  } finally {
    await shell.dispose();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Runs the benchmark; see the module comment. */
export async function benchNative(opts: NativeBenchOptions): Promise<BenchResult> {
  const startedAt = new Date().toISOString();
  const model = await startModelChild();
  const scratch = mkdtempSync(path.join(os.tmpdir(), "openrunner-bench-native-"));
  const configFile = path.join(scratch, "openrunner.yaml");
  writeFileSync(configFile, JSON.stringify({ providers: { bench: { api: "responses", base_url: `${model.url}/v1`, api_key: "sk-bench", max_retries: 0 } }, native: { max_turns: opts.turns + 5 } }));
  const server = await startBenchServer({ env: { OPENRUNNER_CONFIG: configFile }, ...(opts.cpuProfDir ? { cpuProfDir: opts.cpuProfDir } : {}) });
  const client = new OpenAI({ apiKey: "sk-bench", baseURL: `${model.url}/v1`, maxRetries: 0, organization: null, project: null });
  // The direct loop's tool work happens in a scratch workspace of its own.
  const directWs = path.join(scratch, "direct");
  mkdirSync(directWs);
  writeFileSync(path.join(directWs, FILE), FILE_TEXT);
  const directCtx: ToolContext = { fs: createWorkspaceFs({ root: directWs }), shell: { run: () => Promise.reject(new Error("no shell")), dispose: async () => {} }, setPlan: () => {}, signal: new AbortController().signal };
  const native: number[] = [];
  const direct: number[] = [];
  const bashInRun: number[] = [];
  const watched: number[] = [];
  try {
    // The run's folder and the file it reads (cwd "bench" under the admin's workspaces).
    const me = (await requestJson<{ id: string }>(server.url, "GET", "/api/auth/me", undefined, server.token)).body;
    const ws = path.join(server.dataDir, "workspaces", me.id, "bench");
    mkdirSync(ws, { recursive: true });
    writeFileSync(path.join(ws, FILE), FILE_TEXT);
    await nativeRun(server, model, readTurns(4)); // warm-up both ways
    await directRun(client, model, 4, directCtx);
    for (let r = 0; r < opts.repeats; r++) {
      const nat = async () => native.push(...(await nativeRun(server, model, readTurns(opts.turns))).intervals);
      const dir = async () => direct.push(...(await directRun(client, model, opts.turns, directCtx)));
      if (r % 2 === 0) {
        await nat();
        await dir();
      } else {
        await dir();
        await nat();
      }
      watched.push(...(await nativeRun(server, model, readTurns(opts.turns), true)).intervals);
      const bash = await nativeRun(server, model, { turns: [...Array.from({ length: opts.turns - 1 }, () => ({ tool: { name: "bash", input: { command: "true" } } })), { text: "ok" }] });
      bashInRun.push(...bash.toolMs);
      console.error(`  repetition ${r + 1}: per turn (interquartile mean so far) native ${round(iqm(native), 2)} ms (${round(iqm(watched), 2)} with an SSE subscriber), direct ${round(iqm(direct), 2)} ms`);
    }
  } finally {
    await server.stop();
    await model.stop();
    rmSync(scratch, { recursive: true, force: true });
  }
  const tools = await toolRoundTrips(opts.toolCalls);
  const ratio = iqm(native) / iqm(direct);
  const figures = [
    figure("native agent per turn (IQM)", "ms", "lower", [iqm(native)]),
    figure("direct SDK per turn (IQM)", "ms", "lower", [iqm(direct)]),
    figure("native/direct per-turn ratio", "x", "lower", [ratio], { op: "<", value: 1.1 }),
    figure("native overhead per turn (native - direct)", "ms", "lower", [iqm(native) - iqm(direct)]),
    figure("native per turn with a live SSE subscriber (IQM)", "ms", "lower", [iqm(watched)]),
    figure("native (SSE subscriber)/direct per-turn ratio", "x", "lower", [iqm(watched) / iqm(direct)]),
    figure("bash true in a run (tool.call -> tool.result) p50", "ms", "lower", [med(bashInRun)]),
    figure("read_file round trip (tool runner) p50", "us", "lower", [med(tools.read_file_us)]),
    figure("bash true round trip (tool runner) p50", "us", "lower", [med(tools.bash_true_us)]),
  ];
  return {
    name: "native",
    startedAt,
    quick: opts.quick,
    repeats: opts.repeats,
    figures,
    details: {
      turns: opts.turns,
      per_turn_ms: {
        native: { iqm: round(iqm(native), 3), p50: med(native), p90: percentile(native, 90), n: native.length },
        native_watched: { iqm: round(iqm(watched), 3), p50: med(watched), p90: percentile(watched, 90), n: watched.length },
        direct: { iqm: round(iqm(direct), 3), p50: round(med(direct), 3), p90: round(percentile(direct, 90), 3), n: direct.length },
      },
      bash_in_run_ms: bashInRun,
      read_file_us: { p50: round(med(tools.read_file_us), 1), p90: round(percentile(tools.read_file_us, 90), 1) },
      bash_true_us: { p50: round(med(tools.bash_true_us), 1), p90: round(percentile(tools.bash_true_us, 90), 1) },
      machine: { cpus: os.cpus().length, loadavg_at_end: os.loadavg().map((x) => round(x, 2)) },
    },
  };
}

function parseArgs(argv: string[]): NativeBenchOptions {
  const o: NativeBenchOptions = { turns: 40, repeats: 8, toolCalls: 200, quick: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === "--turns") o.turns = Number(argv[++i]);
    else if (a === "--repeats") o.repeats = Number(argv[++i]);
    else if (a === "--profile") o.cpuProfDir = path.join(ROOT, "bench/results/profiles/native");
    else if (a === "--quick") Object.assign(o, { quick: true, turns: 10, repeats: 2, toolCalls: 30 });
    else throw new Error(`unknown argument ${a}; usage: bench/native.ts [--turns N] [--repeats R] [--quick]`);
  }
  if (!Number.isInteger(o.turns) || o.turns < 3) throw new Error(`--turns must be an integer >= 3, got ${o.turns}`);
  return o;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const result = await benchNative(parseArgs(process.argv.slice(2)));
  const file = writeResult(path.join(ROOT, "bench/results"), result);
  console.log(formatTable([result]));
  console.log(`\nwritten ${path.relative(ROOT, file)}`);
}
