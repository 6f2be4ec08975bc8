/**
 * The Gemini CLI adapter (`agent_type: "gemini"`): runs `gemini --prompt=PROMPT --output-format
 * stream-json --yolo [--resume ID]` with `GEMINI_CLI_HOME=<home>` holding a generated
 * `.gemini/settings.json` (API-key auth, no auto-update, no usage statistics or telemetry),
 * `GEMINI_CLI_NO_RELAUNCH=true` (so SIGTERM reaches the real CLI) and the workspace trusted.
 * Verified with Gemini CLI 0.61.0.
 */
import { baseUrlOf, cliAdapterFactory, writeHomeFile } from "../cli-support.ts";
import { geminiMcpServers } from "../mcp-config.ts";
import { createGeminiParser } from "./parse.ts";

/** The isolated `settings.json`; `maxAttempts` (retries + 1, at most 10) only when retries are capped. */
export function renderGeminiSettings(opts: { max_retries?: number }): Record<string, unknown> {
  const general: Record<string, unknown> = { disableAutoUpdate: true, disableUpdateNag: true };
  if (opts.max_retries !== undefined) general.maxAttempts = Math.min(10, Math.max(1, opts.max_retries + 1));
  return {
    security: { auth: { selectedType: "gemini-api-key" } },
    general,
    privacy: { usageStatisticsEnabled: false },
    telemetry: { enabled: false },
  };
}

/**
 * Creates the Gemini CLI adapter.
 * @param options `agents.gemini` from the configuration (`command`, `base_url`, `api_key`, `model`, `env`, `args`).
 * @param serverEnv the server's environment: PATH, LANG, and the defaults GOOGLE_GEMINI_BASE_URL / GEMINI_API_KEY.
 * @example
 * const gemini = createGeminiAdapter({ base_url: "http://127.0.0.1:8080", model: "gemini-2.5-flash" }, process.env);
 */
export const createGeminiAdapter = cliAdapterFactory({
  name: "gemini",
  bin: "gemini",
  async build(bin, ctx, options, serverEnv) {
    const settings = renderGeminiSettings(options.max_retries === undefined ? {} : { max_retries: options.max_retries });
    if (ctx.mcp_servers) settings.mcpServers = geminiMcpServers(ctx.mcp_servers); // the run's MCP servers
    await writeHomeFile(ctx.home, ".gemini/settings.json", `${JSON.stringify(settings, null, 2)}\n`);
    const argv = [bin, `--prompt=${ctx.text}`, "--output-format", "stream-json", "--yolo"];
    if (ctx.resume_session_id) argv.push("--resume", ctx.resume_session_id);
    argv.push(...(options.args ?? []), ...(ctx.extra_args ?? []));
    return { argv, env: {
        GEMINI_CLI_HOME: ctx.home,
        GEMINI_API_KEY: options.api_key ?? serverEnv.GEMINI_API_KEY,
        GOOGLE_GEMINI_BASE_URL: baseUrlOf(options, ctx) ?? serverEnv.GOOGLE_GEMINI_BASE_URL,
        GEMINI_MODEL: ctx.model ?? options.model,
        GEMINI_CLI_TRUST_WORKSPACE: "true",
        GEMINI_CLI_NO_RELAUNCH: "true",
      } };
  },
  createParser: (ctx) => createGeminiParser({ mcpServers: Object.keys(ctx?.mcp_servers ?? {}) }),
});
