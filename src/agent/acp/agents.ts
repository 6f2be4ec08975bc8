/**
 * The configured ACP agents (`acp_agents.<name>` in the configuration) merged over the
 * built-in entries, and the per-run command of one of them: argv, the complete isolated
 * environment and the MCP servers for `session/new`.
 *
 * Built-ins (available where their binary is found: the configured `command`, PATH, then
 * `<repo>/.agents/bin`, as for the CLI adapters):
 * - `claude-code-acp` (`@zed-industries/claude-code-acp`, vendor `claude`),
 * - `codex-acp` (`@zed-industries/codex-acp`, vendor `codex`),
 * - `gemini` (`gemini --experimental-acp`, vendor `gemini`),
 * - `opencode` (`opencode acp`, vendor `opencode`).
 * The vendor decides how `base_url`, `api_key` and `model` reach the agent (the same
 * environment and config files as the plain CLI adapter of that vendor).
 *
 * A run in a container (`ctx.in_container`) starts `container_command` (default: the
 * basename of `command`, looked up in the image's PATH) instead of the host binary, and its
 * agent reaches the model at `container_base_url` (default `base_url`).
 */
import { mkdir, writeFile } from "node:fs/promises";
import { join, posix } from "node:path";
import { createGeminiAdapter } from "../gemini/adapter.ts";
import { createOpencodeAdapter } from "../opencode/adapter.ts";
import { renderCodexConfig } from "../codex/adapter.ts";
import { CLAUDE_CODE_QUIET_ENV } from "../claude-code/adapter.ts";
import { buildEnv, findBinary, type AgentCliOptions, type ServerEnv } from "../cli-support.ts";
import type { AgentCommand, AgentRunContext } from "../types.ts";

/** How the agent gets its model endpoint and key. `none`: only `env`. */
export type AcpVendor = "claude" | "codex" | "gemini" | "opencode" | "none";

/** An ACP MCP server as passed in `session/new` (`{name, command, args, env}` or `{type:"http"|"sse", name, url, headers}`). */
export type AcpMcpServer = { name: string } & Record<string, unknown>;

/** One `acp_agents.<name>` entry of the configuration. */
export interface AcpAgentConfig {
  command?: string;
  args?: string[];
  env?: Record<string, string>;
  base_url?: string;
  api_key?: string;
  model?: string;
  mcp_servers?: AcpMcpServer[];
  vendor?: AcpVendor;
  /** Image of this agent's docker runs (default `docker.image`). */
  image?: string;
  /** argv[0] inside a container (default: the basename of `command`, looked up in the image's PATH). */
  container_command?: string;
  /** Model API base URL for this agent's docker runs (the host as seen from `docker.network`); default `base_url`. */
  container_base_url?: string;
}

/** A resolved ACP agent definition. */
export interface AcpAgentSpec {
  name: string;
  /** Executable name or path (looked up like the CLI adapters' binaries). */
  command: string;
  args: string[];
  vendor: AcpVendor;
  options: AcpAgentConfig;
}

/** The built-in entries; see the module comment. */
export const BUILTIN_ACP_AGENTS: Record<string, { command: string; args: string[]; vendor: AcpVendor }> = {
  "claude-code-acp": { command: "claude-code-acp", args: [], vendor: "claude" },
  "codex-acp": { command: "codex-acp", args: [], vendor: "codex" },
  gemini: { command: "gemini", args: ["--experimental-acp"], vendor: "gemini" },
  opencode: { command: "opencode", args: ["acp"], vendor: "opencode" },
};

/**
 * Merges the configured entries over the built-ins. A configured entry with the name of a
 * built-in overrides its fields; a new name needs a `command` (entries without one are
 * left out and reported in `invalid`).
 */
export function resolveAcpAgents(config: Record<string, AcpAgentConfig> = {}): { agents: AcpAgentSpec[]; invalid: string[] } {
  const agents: AcpAgentSpec[] = [];
  const invalid: string[] = [];
  const names = [...new Set([...Object.keys(BUILTIN_ACP_AGENTS), ...Object.keys(config)])];
  for (const name of names) {
    const builtin = BUILTIN_ACP_AGENTS[name];
    const c = config[name] ?? {};
    const command = c.command ?? builtin?.command;
    if (!command) {
      invalid.push(name);
      continue;
    }
    agents.push({ name, command, args: c.args ?? builtin?.args ?? [], vendor: c.vendor ?? builtin?.vendor ?? "none", options: c });
  }
  return { agents, invalid };
}

/** The binary of an agent, or undefined (see {@link findBinary}). */
export function findAcpBinary(spec: AcpAgentSpec, env: ServerEnv): Promise<string | undefined> {
  return findBinary(spec.command, undefined, env);
}

/** The agent's own environment variables for its vendor (config files are written into `ctx.home`). */
async function vendorEnv(spec: AcpAgentSpec, bin: string, ctx: AgentRunContext, serverEnv: ServerEnv): Promise<Record<string, string | undefined>> {
  const o = spec.options;
  const model = ctx.model ?? o.model;
  const baseUrl = (ctx.in_container ? o.container_base_url : undefined) ?? o.base_url;
  const cli: AgentCliOptions = {
    command: bin,
    ...(o.base_url ? { base_url: o.base_url } : {}),
    ...(o.container_base_url ? { container_base_url: o.container_base_url } : {}),
    ...(o.api_key ? { api_key: o.api_key } : {}),
    ...(o.model ? { model: o.model } : {}),
  };
  switch (spec.vendor) {
    case "claude": {
      const configDir = join(ctx.home, ".claude");
      await mkdir(configDir, { recursive: true });
      return {
        CLAUDE_CONFIG_DIR: configDir,
        ANTHROPIC_BASE_URL: baseUrl ?? serverEnv.ANTHROPIC_BASE_URL,
        ANTHROPIC_API_KEY: o.api_key ?? serverEnv.ANTHROPIC_API_KEY,
        ANTHROPIC_MODEL: model,
        ...CLAUDE_CODE_QUIET_ENV,
      };
    }
    case "codex": {
      const codexHome = join(ctx.home, ".codex");
      await mkdir(codexHome, { recursive: true });
      const base_url = baseUrl ?? serverEnv.OPENAI_BASE_URL ?? "https://api.openai.com/v1";
      // No bubblewrap sandbox inside the run (none is installed here, and the run already has its own user and
      // workspace), as the plain codex adapter's --dangerously-bypass-approvals-and-sandbox; approvals still ask.
      const toml = `sandbox_mode = "danger-full-access"\napproval_policy = "untrusted"\n${renderCodexConfig(model ? { base_url, model } : { base_url })}`;
      await writeFile(join(codexHome, "config.toml"), toml);
      return { CODEX_HOME: codexHome, OPENAI_API_KEY: o.api_key ?? serverEnv.OPENAI_API_KEY };
    }
    case "gemini":
      return (await createGeminiAdapter(cli, serverEnv).command(ctx)).env;
    case "opencode":
      return (await createOpencodeAdapter(cli, serverEnv).command(ctx)).env;
    default:
      return {};
  }
}

/** argv[0] of `spec` inside a container: `container_command`, else the basename of `command`. */
export function containerCommandOf(spec: AcpAgentSpec): string {
  return spec.options.container_command ?? posix.basename(spec.command);
}

/**
 * The process to start for one run of `spec`: argv (binary, the entry's args, then the
 * run's admin-allowed `extra_args`), the complete environment (see `buildEnv`), cwd. In a
 * container (`ctx.in_container`) argv[0] is {@link containerCommandOf} (`container_native`:
 * used as is); host paths in the rest are translated by the container exec.
 */
export async function buildAcpCommand(spec: AcpAgentSpec, bin: string, ctx: AgentRunContext, serverEnv: ServerEnv): Promise<AgentCommand> {
  const own = await vendorEnv(spec, bin, ctx, serverEnv);
  const env = await buildEnv(ctx, own, { ...(spec.options.env ? { env: spec.options.env } : {}) });
  const argv0 = ctx.in_container ? containerCommandOf(spec) : bin;
  return { argv: [argv0, ...spec.args, ...(ctx.extra_args ?? [])], env, cwd: ctx.cwd, ...(ctx.in_container ? { container_native: true } : {}) };
}
