/**
 * The codex adapter (`agent_type: "codex"`): runs `codex exec --json --skip-git-repo-check
 * --dangerously-bypass-approvals-and-sandbox [-m M] -- PROMPT` (or `codex exec resume … -- ID PROMPT`)
 * with `CODEX_HOME=<home>/.codex` holding a generated `config.toml` whose model provider points at
 * the configured base URL (Responses wire API). Verified with codex-cli 0.169.0 (pinned) and 0.171.0,
 * with a classic model (`gpt-5.5`: tools in `tools`) and a code-mode model (`gpt-6.1-sol`: one `exec`
 * tool in an `additional_tools` input item); the `exec --json` output is the same for both.
 */
import type { McpServers } from "../../protocol/requests.ts";
import { baseUrlOf, cliAdapterFactory, ensureHomeDir, writeHomeFile } from "../cli-support.ts";
import { codexMcpToml } from "../mcp-config.ts";
import { createCodexParser } from "./parse.ts";

/** The name of the generated model provider in config.toml. */
export const CODEX_PROVIDER = "openrunner";

/** TOML basic string (JSON escapes are valid TOML escapes for these values). */
const str = (s: string) => JSON.stringify(s);

/**
 * Renders the isolated `config.toml`: provider `openrunner` with `base_url` (codex appends
 * `/responses`) and `env_key = "OPENAI_API_KEY"`, no update check, no analytics, and the features
 * that reach github.com / chatgpt.com at start-up turned off; the run's MCP servers as `[mcp_servers.<name>]`.
 */
export function renderCodexConfig(opts: { base_url: string; model?: string; max_retries?: number; mcp_servers?: McpServers }): string {
  const lines = [
    ...(opts.model ? [`model = ${str(opts.model)}`] : []),
    `model_provider = ${str(CODEX_PROVIDER)}`,
    "check_for_update_on_startup = false",
    "",
    `[model_providers.${CODEX_PROVIDER}]`,
    `name = "OpenRunner"`,
    `base_url = ${str(opts.base_url)}`,
    `env_key = "OPENAI_API_KEY"`,
    `wire_api = "responses"`,
    ...(opts.max_retries === undefined
      ? []
      : [`request_max_retries = ${opts.max_retries}`, `stream_max_retries = ${opts.max_retries}`]),
    "",
    "[analytics]",
    "enabled = false",
    "",
    "[features]",
    "plugins = false",
    "remote_plugin = false",
    "plugin_sharing = false",
    "apps = false",
    "tool_suggest = false",
    // codex >= 0.169 offers MCP tools behind its `tool_search` (a deferred namespace `mcp__<name>`), always.
    ...(opts.mcp_servers ? codexMcpToml(opts.mcp_servers) : []),
  ];
  return `${lines.join("\n")}\n`;
}

/**
 * Creates the codex adapter.
 * @param options `agents.codex` from the configuration (`command`, `base_url`, `api_key`, `model`, `env`, `args`).
 * @param serverEnv the server's environment: PATH, LANG, and the defaults OPENAI_BASE_URL / OPENAI_API_KEY.
 * @example
 * const codex = createCodexAdapter({ base_url: "http://127.0.0.1:8080/v1", model: "gpt-5.5" }, process.env);
 */
export const createCodexAdapter = cliAdapterFactory({
  name: "codex",
  bin: "codex",
  async build(bin, ctx, options, serverEnv) {
    const codexHome = await ensureHomeDir(ctx.home, ".codex");
    const base_url = baseUrlOf(options, ctx) ?? serverEnv.OPENAI_BASE_URL ?? "https://api.openai.com/v1";
    const model = ctx.model ?? options.model;
    const config: { base_url: string; model?: string; max_retries?: number; mcp_servers?: McpServers } = { base_url };
    if (ctx.mcp_servers) config.mcp_servers = ctx.mcp_servers;
    if (model) config.model = model;
    if (options.max_retries !== undefined) config.max_retries = options.max_retries;
    await writeHomeFile(ctx.home, ".codex/config.toml", renderCodexConfig(config));
    const flags = ["--json", "--skip-git-repo-check", "--dangerously-bypass-approvals-and-sandbox"];
    if (model) flags.push("-m", model);
    flags.push(...(options.args ?? []), ...(ctx.extra_args ?? []));
    const argv = ctx.resume_session_id
      ? [bin, "exec", "resume", ...flags, "--", ctx.resume_session_id, ctx.text]
      : [bin, "exec", ...flags, "-C", ctx.cwd, "--", ctx.text];
    return { argv, env: { CODEX_HOME: codexHome, OPENAI_API_KEY: options.api_key ?? serverEnv.OPENAI_API_KEY } };
  },
  createParser: () => createCodexParser(),
});
