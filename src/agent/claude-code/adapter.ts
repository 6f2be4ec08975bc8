/**
 * The Claude Code adapter (`agent_type: "claude_code"`): runs
 * `claude -p --output-format stream-json --verbose --include-partial-messages
 * --dangerously-skip-permissions [--model M] [--resume ID] -- PROMPT` with an isolated
 * `CLAUDE_CONFIG_DIR` under the run's home; the run's MCP servers (`metadata.mcp_servers`) in
 * `--mcp-config <home>/.claude/openrunner-mcp.json --strict-mcp-config`. Verified with Claude Code 2.1.197 (pinned) and 2.1.332.
 */
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { baseUrlOf, cliAdapterFactory, writeHomeFile } from "../cli-support.ts";
import { claudeMcpConfig } from "../mcp-config.ts";
import { createClaudeCodeParser } from "./parse.ts";

/**
 * The environment that keeps Claude Code (and claude-code-acp, which bundles it) quiet and offline
 * apart from its model endpoint: `--dangerously-skip-permissions` allowed as root (`IS_SANDBOX`), no
 * telemetry, error reports, auto-update, bug command or other non-essential traffic.
 */
export const CLAUDE_CODE_QUIET_ENV: Readonly<Record<string, string>> = {
  IS_SANDBOX: "1",
  DISABLE_TELEMETRY: "1",
  DISABLE_ERROR_REPORTING: "1",
  DISABLE_AUTOUPDATER: "1",
  DISABLE_BUG_COMMAND: "1",
  CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: "1",
};

/**
 * Creates the Claude Code adapter.
 * @param options `agents.claude_code` from the configuration (`command`, `base_url`, `api_key`, `model`, `env`, `args`).
 * @param serverEnv the server's environment: PATH, LANG, and the defaults ANTHROPIC_BASE_URL / ANTHROPIC_API_KEY.
 * @example
 * const claude = createClaudeCodeAdapter({ base_url: "http://127.0.0.1:8080" }, process.env);
 * const cmd = await claude.command(ctx); // argv, complete env, cwd
 */
export const createClaudeCodeAdapter = cliAdapterFactory({
  name: "claude_code",
  bin: "claude",
  async build(bin, ctx, options, serverEnv) {
    const configDir = join(ctx.home, ".claude");
    await mkdir(configDir, { recursive: true });
    const model = ctx.model ?? options.model;
    const argv = [bin, "-p", "--output-format", "stream-json", "--verbose", "--include-partial-messages", "--dangerously-skip-permissions"];
    if (model) argv.push("--model", model);
    if (ctx.resume_session_id) argv.push("--resume", ctx.resume_session_id);
    // The run's MCP servers, and only those (--strict-mcp-config: no project or user .mcp.json).
    if (ctx.mcp_servers) argv.push("--mcp-config", await writeHomeFile(ctx.home, ".claude/openrunner-mcp.json", JSON.stringify(claudeMcpConfig(ctx.mcp_servers))), "--strict-mcp-config");
    argv.push(...(options.args ?? []), ...(ctx.extra_args ?? []), "--", ctx.text);
    return { argv, env: {
        CLAUDE_CONFIG_DIR: configDir,
        ANTHROPIC_BASE_URL: baseUrlOf(options, ctx) ?? serverEnv.ANTHROPIC_BASE_URL,
        ANTHROPIC_API_KEY: options.api_key ?? serverEnv.ANTHROPIC_API_KEY,
        ...CLAUDE_CODE_QUIET_ENV,
        CLAUDE_CODE_MAX_RETRIES: options.max_retries === undefined ? undefined : String(options.max_retries),
      } };
  },
  createParser: () => createClaudeCodeParser(),
});
