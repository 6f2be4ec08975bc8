/**
 * Helpers shared by the four CLI adapters (claude-code, codex, opencode, gemini): adapter
 * options, binary detection, the complete child environment, and the small pieces every
 * parser needs (log events for unknown lines and stderr, failure outcomes).
 */
import { access, constants, lstat, mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { basename, delimiter, dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { execa } from "execa";
import { AgentUnavailableError } from "../errors.ts";
import type { RunEventInput } from "../protocol/events.ts";
import type { AgentAdapter, AgentCommand, AgentHealth, AgentOutcome, AgentRunContext, LineParser, ProcessExit } from "./types.ts";

/** `agents.<name>` from the configuration, plus test-only knobs. */
export interface AgentCliOptions {
  /** Executable path or name; otherwise PATH, then `<repo>/.agents/bin`. */
  command?: string;
  /** Model API base URL (vendor default env var otherwise). */
  base_url?: string;
  /** Model API base URL for runs inside a container (`docker.network`'s view of the model endpoint); default `base_url`. */
  container_base_url?: string;
  /** API key (vendor default env var otherwise). Never put in argv. */
  api_key?: string;
  /** Default model when the run names none. */
  model?: string;
  /** Extra environment for the CLI (admin-set). */
  env?: Record<string, string>;
  /** Extra CLI arguments (admin-set), before the run's `extra_args`. */
  args?: string[];
  /** Caps the CLI's HTTP retries where it has a knob (claude, codex, gemini); unset keeps the CLI default. */
  max_retries?: number;
  /** The CLI's name or path inside the image, for runs in a container (default: the basename of the host binary). */
  container_command?: string;
}

/** The server's environment, read only for PATH, LANG and the vendor-standard variables. */
export type ServerEnv = Readonly<Record<string, string | undefined>>;

/** The repository root (two levels above this file), where `.agents/bin` lives. */
export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");

async function isExecutable(path: string): Promise<boolean> {
  try {
    await access(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * Finds the CLI: the configured `command` (a path, or a name looked up on PATH), else `binName` on
 * PATH, else `<repo>/.agents/bin/<binName>` (where `scripts/install-agents.sh` puts it).
 */
export async function findBinary(binName: string, command: string | undefined, env: ServerEnv): Promise<string | undefined> {
  const name = command ?? binName;
  if (name.includes("/")) return (await isExecutable(resolve(name))) ? resolve(name) : undefined;
  for (const dir of (env.PATH ?? "").split(delimiter).filter(Boolean)) {
    const candidate = join(dir, name);
    if (await isExecutable(candidate)) return candidate;
  }
  if (command) return undefined;
  const local = join(REPO_ROOT, ".agents", "bin", binName);
  return (await isExecutable(local)) ? local : undefined;
}

/**
 * Runs `<bin> --version` (20 s limit) in a throw-away HOME/TMPDIR/XDG folder, removed afterwards:
 * even `--version` writes state (opencode creates `~/.config`, `~/.local/share` and
 * `~/.cache/opencode`; Gemini CLI `~/.gemini/projects.json.*.tmp`), which must not land in the
 * operator's home.
 */
async function runVersion(path: string, env: ServerEnv): Promise<{ exitCode?: number; stdout: string; stderr: string }> {
  const home = await mkdtemp(join(tmpdir(), "openrunner-detect-"));
  try {
    const out = await execa(path, ["--version"], {
      cwd: home,
      env: {
        PATH: env.PATH ?? "/usr/bin:/bin",
        HOME: home,
        TMPDIR: home,
        XDG_CONFIG_HOME: join(home, ".config"),
        XDG_DATA_HOME: join(home, ".local", "share"),
        XDG_CACHE_HOME: join(home, ".cache"),
        XDG_STATE_HOME: join(home, ".local", "state"),
        TERM: "dumb",
        LANG: env.LANG ?? "C.UTF-8",
      },
      extendEnv: false,
      stdin: "ignore",
      timeout: 20_000,
      reject: false,
    });
    return { ...(typeof out.exitCode === "number" ? { exitCode: out.exitCode } : {}), stdout: String(out.stdout), stderr: String(out.stderr) };
  } finally {
    await rm(home, { recursive: true, force: true });
  }
}

/**
 * Returns a cached `detect()`: finds the binary and runs `<bin> --version` (see
 * {@link runVersion}). The version is the first `x.y.z` in the output. A success is cached for
 * the life of the adapter; "not available" is not, so a CLI installed later is found on the
 * next detection (the registry re-detects at most once per its TTL).
 */
export function createDetector(agent: string, binName: string, options: AgentCliOptions, env: ServerEnv): () => Promise<AgentHealth> {
  let cached: Promise<AgentHealth> | undefined;
  const detect = async (): Promise<AgentHealth> => {
    const health = await probe();
    if (!health.available) cached = undefined;
    return health;
  };
  const probe = async (): Promise<AgentHealth> => {
    const path = await findBinary(binName, options.command, env);
    if (!path) return { agent, available: false, reason: `${options.command ?? binName} not found on PATH or in .agents/bin (run scripts/install-agents.sh)` };
    try {
      const out = await runVersion(path, env);
      const version = /\d+\.\d+\.\d+[\w.+-]*/.exec(`${out.stdout}\n${out.stderr}`)?.[0];
      if (out.exitCode !== 0 || !version) return { agent, available: false, path, reason: `${path} --version failed: ${(out.stderr || out.stdout).slice(-300)}` };
      return { agent, available: true, path, version };
    } catch (err) {
      return { agent, available: false, path, reason: `${path} --version failed: ${(err as Error).message}` };
    }
  };
  return () => (cached ??= detect());
}

/**
 * Creates `rel` (`/`-separated, no `..`) below the run's home as real directories (mode 0700 when new) and returns
 * its path. The home may have been written by a container or run-as user since the server last wrote it: a
 * symbolic link or file found on the way is removed first, so nothing the server writes later goes outside the home.
 * @throws Error for a `rel` with `..`; file system errors
 */
export async function ensureHomeDir(home: string, rel: string): Promise<string> {
  const parts = rel.split("/").filter((p) => p !== "" && p !== ".");
  if (parts.includes("..")) throw new Error(`home path must stay inside the home: ${rel}`);
  let cur = home;
  for (const part of parts) {
    cur = join(cur, part);
    const st = await lstat(cur).catch((err: NodeJS.ErrnoException) => {
      if (err.code === "ENOENT") return undefined;
      throw err;
    });
    if (st?.isDirectory()) continue;
    if (st) await rm(cur, { recursive: true, force: true });
    await mkdir(cur, { mode: 0o700 });
  }
  return cur;
}

/**
 * Writes `content` to `rel` below the run's home (mode 0600): the directories as {@link ensureHomeDir}, whatever
 * is at the file's place removed first (a symbolic link is never followed), then the file created exclusively.
 * @returns the file's path
 * @throws file system errors
 */
export async function writeHomeFile(home: string, rel: string, content: string): Promise<string> {
  const dir = await ensureHomeDir(home, dirname(rel));
  const file = join(dir, basename(rel));
  await rm(file, { recursive: true, force: true });
  await writeFile(file, content, { flag: "wx", mode: 0o600 });
  return file;
}

/**
 * The complete child environment: PATH, HOME=ctx.home, TMPDIR=`<home>/tmp` (created here), LANG,
 * TERM=dumb, the agent's own variables, then the admin's `options.env` (which wins). Undefined
 * values are left out.
 *
 * TMPDIR is per home because the CLIs leave files in the temporary folder on every run (opencode's
 * Bun runtime extracts a 5.5 MB `.<hash>.so` each start and never removes it; Gemini CLI writes
 * `gemini-client-error-*.json` reports with request details; Claude Code keeps `claude-<uid>/`
 * task folders): they stay in the run's isolated home instead of the shared /tmp.
 */
export async function buildEnv(ctx: AgentRunContext, own: Record<string, string | undefined>, options: AgentCliOptions): Promise<Record<string, string>> {
  const tmp = await ensureHomeDir(ctx.home, "tmp");
  const env: Record<string, string> = {
    PATH: ctx.server_env.PATH ?? "/usr/local/bin:/usr/bin:/bin",
    HOME: ctx.home,
    TMPDIR: tmp,
    LANG: ctx.server_env.LANG ?? "C.UTF-8",
    TERM: "dumb",
  };
  for (const [k, v] of Object.entries({ ...own, ...options.env })) if (v !== undefined) env[k] = v;
  return env;
}

/** Resolves the binary for `command()`; throws {@link AgentUnavailableError} (code `agent_unavailable`) naming what is missing. */
export async function requireBinary(agent: string, binName: string, options: AgentCliOptions, env: ServerEnv): Promise<string> {
  const path = await findBinary(binName, options.command, env);
  if (!path) throw new AgentUnavailableError(agent, `${options.command ?? binName} not found on PATH or in .agents/bin (run scripts/install-agents.sh)`);
  return path;
}

/** The configured base URL for this run: `container_base_url` inside a container (when set), else `base_url`. */
export function baseUrlOf(options: AgentCliOptions, ctx: Pick<AgentRunContext, "in_container">): string | undefined {
  return (ctx.in_container ? options.container_base_url : undefined) ?? options.base_url;
}

/** A `log` event; `raw` (the parsed line) only when given. */
export function logEvent(stream: "stdout" | "stderr", text: string, raw?: unknown): RunEventInput {
  return raw === undefined ? { type: "log", data: { stream, text } } : { type: "log", data: { stream, text, raw } };
}

/** Parses a stdout line as a JSON object, or returns undefined (the caller then logs it). */
export function parseJsonObject(line: string): Record<string, unknown> | undefined {
  const trimmed = line.trim();
  if (!trimmed.startsWith("{")) return undefined;
  try {
    const value: unknown = JSON.parse(trimmed);
    return value && typeof value === "object" && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

/** The `log` event for a stdout line the parser does not know: never dropped. */
export function unknownLine(line: string, parsed?: unknown): RunEventInput[] {
  return [logEvent("stdout", line, parsed)];
}

/** The last `max` characters of the stderr tail, trimmed. */
export function tailOf(exit: ProcessExit, max = 600): string {
  const t = exit.stderr_tail.trim();
  return t.length > max ? `…${t.slice(-max)}` : t;
}

/** `agent_crashed`: the process ended without a usable terminal event. */
export function crashed(agent: string, exit: ProcessExit, why: string): AgentOutcome {
  const how = exit.signal ? `killed by ${exit.signal}` : `exited with code ${exit.exit_code ?? "unknown"}`;
  const tail = tailOf(exit);
  const out: AgentOutcome = { kind: "failed", code: "agent_crashed", message: `${agent} ${how}: ${why}${tail ? `; stderr: ${tail}` : ""}` };
  if (exit.exit_code !== undefined) out.exit_code = exit.exit_code;
  return out;
}

/** `auth_failed` for 401/403, else `model_error`, with the upstream status in the message when known. */
export function modelFailure(exit: ProcessExit, message: string, status?: number): AgentOutcome {
  const auth = status === 401 || status === 403;
  const out: AgentOutcome = {
    kind: "failed",
    code: auth ? "auth_failed" : "model_error",
    message: status !== undefined && !message.includes(String(status)) ? `HTTP ${status}: ${message}` : message,
  };
  if (exit.exit_code !== undefined) out.exit_code = exit.exit_code;
  return out;
}

/** The first HTTP-looking status (4xx/5xx) in an error message, e.g. "unexpected status 401 Unauthorized". */
export function statusInMessage(message: string): number | undefined {
  const m = /\b(?:status(?: code)?:?\s*|API Error:\s*|HTTP\s*|\[|\()([45]\d\d)\b/i.exec(message) ?? /\b([45]\d\d)\b/.exec(message);
  return m?.[1] ? Number(m[1]) : undefined;
}

/** Maps a todo list (claude TodoWrite, opencode todowrite, gemini write_todos, codex todo_list) to `plan` data. */
export function planEvent(todos: unknown, raw?: unknown): RunEventInput | undefined {
  if (!Array.isArray(todos)) return undefined;
  const entries = todos.map((t: Record<string, unknown>) => {
    const content = String(t.content ?? t.description ?? t.text ?? t.title ?? "");
    const status = typeof t.status === "string" ? t.status : t.completed === true ? "completed" : "pending";
    return typeof t.priority === "string" ? { content, status, priority: t.priority } : { content, status };
  });
  return raw === undefined ? { type: "plan", data: { entries } } : { type: "plan", data: { entries, raw } };
}

/** Non-negative integer or 0, for token counts. */
export function tokens(value: unknown): number {
  return typeof value === "number" && Number.isFinite(value) && value > 0 ? Math.round(value) : 0;
}

/** What an adapter's `build` returns: the argv and the agent's own environment variables (undefined ones are left out). */
export interface CliInvocation {
  argv: string[];
  env: Record<string, string | undefined>;
  /** argv[0] is a path inside the container image, used as-is (see `AgentCommand.container_native`). */
  container_native?: boolean;
}

/**
 * Builds an {@link AgentAdapter} for a CLI from its per-run `build` step: detection,
 * binary resolution (config `command`, PATH, `.agents/bin`) and the complete,
 * isolated environment ({@link buildEnv}) are the same for every CLI. A run in a
 * container does not need the CLI on the host: `build` then gets the host path when
 * there is one, else the bare name (the container looks the basename up in the image).
 * @param spec.bin the executable's name; `spec.build` gets its resolved path and writes the run's config files
 * @throws (from `command()`) AgentUnavailableError when the binary is missing on the host for a host run
 */
export function defineCliAdapter(spec: {
  name: string;
  bin: string;
  options: AgentCliOptions;
  serverEnv: ServerEnv;
  build(bin: string, ctx: AgentRunContext): Promise<CliInvocation>;
  createParser(ctx?: AgentRunContext): LineParser;
}): AgentAdapter {
  return {
    name: spec.name,
    detect: createDetector(spec.name, spec.bin, spec.options, spec.serverEnv),
    async command(ctx: AgentRunContext): Promise<AgentCommand> {
      const bin = ctx.in_container
        ? ((await findBinary(spec.bin, spec.options.command, spec.serverEnv)) ?? spec.bin)
        : await requireBinary(spec.name, spec.bin, spec.options, spec.serverEnv);
      const { argv, env, container_native } = await spec.build(bin, ctx);
      return { argv, env: await buildEnv(ctx, env, spec.options), cwd: ctx.cwd, ...(container_native ? { container_native } : {}) };
    },
    createParser: spec.createParser,
  };
}

/** One CLI's part of an adapter, for {@link cliAdapterFactory}. */
export interface CliAdapterSpec {
  /** The adapter's name (`agent_type`). */
  name: string;
  /** The executable's name. */
  bin: string;
  /** The run's argv and the agent's own variables; writes the run's config files. Gets the resolved binary and the adapter's options. */
  build(bin: string, ctx: AgentRunContext, options: AgentCliOptions, serverEnv: ServerEnv): Promise<CliInvocation>;
  /** A fresh parser for one run (`ctx`: the run, e.g. the names of its MCP servers; absent when replaying transcripts). */
  createParser(ctx?: AgentRunContext): LineParser;
}

/**
 * The `create<Cli>Adapter(options = {}, serverEnv = {})` function of a CLI adapter: each call is
 * {@link defineCliAdapter} with the spec's name, binary and parser, its `build` given the call's
 * options and server environment.
 * @example
 * export const createFooAdapter = cliAdapterFactory({ name: "foo", bin: "foo", build: async (bin, ctx) => ({ argv: [bin, ctx.text], env: {} }), createParser });
 */
export function cliAdapterFactory(spec: CliAdapterSpec): (options?: AgentCliOptions, serverEnv?: ServerEnv) => AgentAdapter {
  return (options = {}, serverEnv = {}) =>
    defineCliAdapter({
      name: spec.name,
      bin: spec.bin,
      options,
      serverEnv,
      build: (bin, ctx) => spec.build(bin, ctx, options, serverEnv),
      createParser: spec.createParser,
    });
}
