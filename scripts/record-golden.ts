/**
 * Re-records the golden transcripts of the real agent CLIs against the scripted model server.
 *
 *   node --import tsx scripts/record-golden.ts [--agent NAME]… [--case NAME]… [--write-expected]
 *
 * Agents: claude-code, codex, opencode, gemini (default: all installed, run one at a time).
 * Cases: success (a shell tool call creates hello.txt), write (a todo list where the CLI has a todo
 * tool, thinking, text and the write-file tool in one turn, then text), error-400, error-500 (retries capped;
 * not opencode, which has no knob and takes ~80 s), auth (401), cancel (SIGTERM to the process
 * group mid-stream), resume (a second run resumes the first run's session). For each it writes
 * `test/golden/<agent>/<case>.jsonl` (stdout lines) and `<case>.meta.json` (CLI version, exit,
 * stderr tail, requests seen). With `--write-expected` it also writes `<case>.expected.json`
 * (the parser's events and outcome) — review it by hand against the transcript before committing;
 * without the flag it prints the events so they can be compared with the committed file.
 * `--expected-only` re-derives `<case>.expected.json` from the committed `.jsonl` and
 * `.meta.json` without running any CLI (after a parser change; review the diff).
 *
 * `--prefix DIR` runs the CLIs installed in another npm prefix (`DIR/bin/<bin>`, e.g.
 * `scripts/install-agents.sh --latest --prefix DIR`). A CLI whose version is its pin in
 * `scripts/agents.lock.json` writes to `test/golden/<agent>/`, any other version to
 * `test/golden/<agent>@<version>/`. `--model M` configures model M instead of the golden default
 * (`--model default`: none, so the CLI picks its own; codex's default is a code-mode model whose
 * tools arrive as one `exec` tool in an `additional_tools` input item).
 */
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { startModelServer, type ModelServer, type Scenario, type Turn } from "../test/fixtures/model-server/index.ts";
import { GOLDEN_AGENTS, createGoldenAdapter, createGoldenParser, listGoldenFolders, type GoldenAgent } from "../test/golden/agents.ts";
import { readAgentsLock } from "../src/agent/tested-versions.ts";
import type { AgentAdapter, AgentRunContext, ProcessExit } from "../src/agent/types.ts";
import type { RunEventInput } from "../src/protocol/events.ts";

const CASES = ["success", "write", "error-400", "error-500", "auth", "cancel", "resume"] as const;
type Case = (typeof CASES)[number];
const GOLDEN_DIR = new URL("../test/golden/", import.meta.url).pathname;

interface Recorded {
  lines: string[];
  exit: ProcessExit;
  duration_ms: number;
}

/** Spawns the command in its own process group; `onStart` may signal it. */
async function runOnce(adapter: AgentAdapter, ctx: AgentRunContext, onStart?: (pgid: number) => Promise<void>): Promise<Recorded> {
  const cmd = await adapter.command(ctx);
  const started = Date.now();
  const [file, ...args] = cmd.argv;
  const child = spawn(file as string, args, { cwd: cmd.cwd, env: cmd.env, detached: true, stdio: ["ignore", "pipe", "pipe"] });
  const lines: string[] = [];
  let stderr = "";
  const out = createInterface({ input: child.stdout });
  out.on("line", (l) => lines.push(l));
  child.stderr.on("data", (d: Buffer) => {
    stderr = (stderr + d.toString("utf8")).slice(-4096);
  });
  const timer = setTimeout(() => child.pid && process.kill(-child.pid, "SIGKILL"), 240_000);
  if (onStart && child.pid) void onStart(child.pid);
  const exit = await new Promise<ProcessExit>((resolve) => {
    child.on("close", (code, signal) => {
      const e: ProcessExit = { stderr_tail: stderr };
      if (code !== null) e.exit_code = code;
      if (signal) e.signal = signal;
      resolve(e);
    });
  });
  clearTimeout(timer);
  await new Promise((r) => setTimeout(r, 50));
  return { lines, exit, duration_ms: Date.now() - started };
}

/** The todo tool call of CLIs that offer one by a stable name (claude 2.1 has task tools instead). */
function todoTurn(agent: GoldenAgent): Turn[] {
  if (agent === "opencode") return [{ tool: { name: "todowrite", input: { todos: [{ id: "1", content: "Write note.txt", status: "in_progress", priority: "high" }] } } }];
  if (agent === "gemini") return [{ tool: { name: "write_todos", input: { todos: [{ description: "Write note.txt", status: "in_progress" }] } } }];
  return [];
}

function scenarioFor(c: Case, agent: GoldenAgent, cwd: string): { prompt: string; scenario: Scenario; max_retries?: number } {
  switch (c) {
    case "write": {
      const write: Turn = { thinking: "The user wants a note.", text: "Writing note.txt.", tool: { write: { path: join(cwd, "note.txt"), content: "a note\n" } } };
      return { prompt: "Write note.txt.", scenario: { turns: [...todoTurn(agent), write, { text: "Wrote note.txt." }] } };
    }
    case "success":
      return {
        prompt: "Create a file hello.txt containing the word hello.",
        scenario: { turns: [{ tool: { shell: "printf 'hello\\n' > hello.txt" } }, { text: "Created hello.txt." }] },
      };
    case "error-400":
      return { prompt: "Say hi.", scenario: { turns: [{ error: { status: 400 }, times: Infinity }] }, max_retries: 0 };
    case "error-500":
      return { prompt: "Say hi.", scenario: { turns: [{ error: { status: 500 }, times: Infinity }] }, max_retries: 0 };
    case "auth":
      return { prompt: "Say hi.", scenario: { turns: [{ error: { status: 401 }, times: Infinity }] }, max_retries: 0 };
    case "cancel":
      return { prompt: "Write a long story.", scenario: { turns: [{ slow: { text: "Once upon a time ".repeat(60), chunk_ms: 150 } }] } };
    case "resume":
      return { prompt: "What was the word?", scenario: { turns: [{ text: "The word was pineapple." }] } };
  }
}

/** The lock file's package name of a golden agent, and its executable. */
const LOCK_NAME: Record<GoldenAgent, string> = { "claude-code": "claude-code", codex: "codex", opencode: "opencode", gemini: "gemini" };

/** `<agent>` for the pinned version, `<agent>@<version>` for any other. */
function goldenFolder(agent: GoldenAgent, version: string | undefined): string {
  const pinned = readAgentsLock().packages[LOCK_NAME[agent]]?.version;
  return !version || version === pinned ? agent : `${agent}@${version}`;
}

async function recordCase(agent: GoldenAgent, c: Case, server: ModelServer, writeExpected: boolean, prefix?: string, model?: string | null): Promise<void> {
  const root = await mkdtemp(join(tmpdir(), `openrunner-golden-${agent}-`));
  const { prompt, scenario, max_retries } = scenarioFor(c, agent, join(root, "work"));
  const bin = readAgentsLock().packages[LOCK_NAME[agent]]?.bin;
  const adapter = createGoldenAdapter(agent, server.url, max_retries, prefix && bin ? join(prefix, "bin", bin) : undefined, model);
  const health = await adapter.detect();
  if (!health.available) return console.log(`${agent}/${c}: skipped (${health.reason})`);
  const ctx: AgentRunContext = { run_id: `golden-${c}`, text: prompt, cwd: join(root, "work"), home: join(root, "home"), server_env: process.env };
  await mkdir(ctx.cwd, { recursive: true });
  await mkdir(ctx.home, { recursive: true });
  let firstSession: string | undefined;
  if (c === "resume") {
    server.setScenario({ turns: [{ text: "Noted: the word is pineapple." }] });
    const first = await runOnce(adapter, { ...ctx, text: "Remember the word pineapple." });
    const parser = adapter.createParser(ctx);
    const events = first.lines.flatMap((l) => parser.parseLine(l));
    firstSession = events.find((e) => e.type === "agent.session")?.data.session_id as string | undefined;
    if (!firstSession) throw new Error(`${agent}/resume: first run produced no session id (exit ${JSON.stringify(first.exit)})`);
    ctx.resume_session_id = firstSession;
  }
  const before = server.requests.length;
  server.setScenario(scenario);
  const onStart =
    c === "cancel"
      ? async (pgid: number) => {
          await server.waitForRequest((r) => r.kind === "main" && server.requests.indexOf(r) >= before, 120_000);
          await new Promise((r) => setTimeout(r, 1500));
          process.kill(-pgid, "SIGTERM");
        }
      : undefined;
  const rec = await runOnce(adapter, ctx, onStart);
  const requests = server.requests.slice(before).map((r) => ({ method: r.method, path: r.path, kind: r.kind, turn: r.turn, tools: r.tools }));
  const checks: Record<string, boolean> = {};
  if (c === "success") checks.file_created = existsSync(join(ctx.cwd, "hello.txt"));
  if (c === "write") checks.file_created = existsSync(join(ctx.cwd, "note.txt"));
  if (c === "resume") checks.history_sent = server.requests.slice(before).some((r) => r.kind === "main" && JSON.stringify(r.body).includes("pineapple"));
  const dir = join(GOLDEN_DIR, goldenFolder(agent, health.version));
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, `${c}.jsonl`), rec.lines.map((l) => `${l}\n`).join(""));
  const meta = { agent_version: health.version, ...(model === undefined ? {} : { model: model ?? "default" }), case: c, prompt, scenario, exit: rec.exit, duration_ms: rec.duration_ms, resumed_session: firstSession, checks, requests };
  await writeFile(join(dir, `${c}.meta.json`), `${JSON.stringify(meta, null, 2)}\n`);
  const parser = adapter.createParser(ctx);
  const events: RunEventInput[] = [...rec.lines.flatMap((l) => parser.parseLine(l)), ...parser.end()];
  const expected = { events, outcome: parser.outcome(rec.exit) };
  const summary = `${agent}@${health.version}/${c}: exit ${rec.exit.exit_code ?? rec.exit.signal} in ${rec.duration_ms} ms, ${rec.lines.length} lines, ${requests.length} requests, checks ${JSON.stringify(checks)}, outcome ${JSON.stringify(expected.outcome).slice(0, 300)}`;
  console.log(summary);
  if (writeExpected) await writeFile(join(dir, `${c}.expected.json`), `${JSON.stringify(expected, null, 2)}\n`);
  else if (process.env.VERBOSE) console.log(JSON.stringify(expected, null, 2));
  await rm(root, { recursive: true, force: true });
}

/** Re-derives `<case>.expected.json` from a committed transcript in `test/golden/<folder>/`. */
async function rederive(agent: GoldenAgent, folder: string, c: Case): Promise<void> {
  const dir = join(GOLDEN_DIR, folder);
  if (!existsSync(join(dir, `${c}.jsonl`))) return;
  const lines = (await readFile(join(dir, `${c}.jsonl`), "utf8")).split("\n").filter((l) => l !== "");
  const meta = JSON.parse(await readFile(join(dir, `${c}.meta.json`), "utf8")) as { exit: ProcessExit };
  const parser = createGoldenParser(agent);
  const events = [...lines.flatMap((l) => parser.parseLine(l)), ...parser.end()];
  await writeFile(join(dir, `${c}.expected.json`), `${JSON.stringify({ events, outcome: parser.outcome(meta.exit) }, null, 2)}\n`);
  console.log(`${folder}/${c}: ${events.length} events, outcome ${JSON.stringify(parser.outcome(meta.exit)).slice(0, 160)}`);
}

function listArg(flag: string): string[] {
  const out: string[] = [];
  process.argv.forEach((a, i) => a === flag && process.argv[i + 1] && out.push(process.argv[i + 1] as string));
  return out;
}

async function main(): Promise<void> {
  const agents = (listArg("--agent").length ? listArg("--agent") : GOLDEN_AGENTS) as GoldenAgent[];
  const cases = (listArg("--case").length ? listArg("--case") : CASES) as Case[];
  const writeExpected = process.argv.includes("--write-expected");
  if (process.argv.includes("--expected-only")) {
    for (const { agent, folder } of listGoldenFolders(GOLDEN_DIR)) if (agents.includes(agent)) for (const c of cases) await rederive(agent, folder, c);
    return;
  }
  const prefix = listArg("--prefix")[0];
  const modelArg = listArg("--model")[0];
  const model = modelArg === undefined ? undefined : modelArg === "default" ? null : modelArg;
  const server = await startModelServer();
  try {
    for (const agent of agents) {
      if (!GOLDEN_AGENTS.includes(agent)) throw new Error(`unknown agent ${agent}; one of ${GOLDEN_AGENTS.join(", ")}`);
      for (const c of cases) {
        if (!CASES.includes(c)) throw new Error(`unknown case ${c}; one of ${CASES.join(", ")}`);
        if (c === "error-500" && agent === "opencode") continue;
        await recordCase(agent, c, server, writeExpected, prefix, model);
      }
    }
  } finally {
    await server.close();
  }
}

await main();
