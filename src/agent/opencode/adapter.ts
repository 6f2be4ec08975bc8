/**
 * The opencode adapter (`agent_type: "opencode"`): runs `opencode run --format json --auto
 * [--session ID]` with the prompt on stdin (as an argument opencode wraps prompts containing
 * spaces in literal quotes), isolated XDG directories under the run's home and a generated
 * `opencode.json` whose provider (`@ai-sdk/openai-compatible`, Chat Completions) points at the
 * configured base URL; the key stays in the environment (`{env:OPENAI_API_KEY}`). Verified with
 * opencode 1.18.33.
 *
 * In a container the `sh` wrapper is the image's `/bin/sh` and opencode is looked up in the
 * image's PATH (or is `container_command`), since the CLI is not argv[0] here.
 */
import { join } from "node:path";
import { baseUrlOf, cliAdapterFactory, ensureHomeDir, writeHomeFile } from "../cli-support.ts";
import { opencodeMcp } from "../mcp-config.ts";
import { createOpencodeParser } from "./parse.ts";

/** The provider id in the generated opencode.json. */
export const OPENCODE_PROVIDER = "openrunner";

/** The isolated `opencode.json`: one OpenAI-compatible provider and model, no autoupdate or sharing. */
export function renderOpencodeConfig(opts: { base_url?: string; model: string }): Record<string, unknown> {
  const common = { $schema: "https://opencode.ai/config.json", autoupdate: false, share: "disabled" };
  if (!opts.base_url) return { ...common, model: `openai/${opts.model}`, small_model: `openai/${opts.model}` };
  const id = `${OPENCODE_PROVIDER}/${opts.model}`;
  return {
    ...common,
    model: id,
    small_model: id,
    provider: {
      [OPENCODE_PROVIDER]: {
        npm: "@ai-sdk/openai-compatible",
        name: "OpenRunner",
        options: { baseURL: opts.base_url, apiKey: "{env:OPENAI_API_KEY}" },
        models: { [opts.model]: { name: opts.model, tool_call: true, limit: { context: 200000, output: 32000 } } },
      },
    },
  };
}

/**
 * Creates the opencode adapter.
 * @param options `agents.opencode` from the configuration (`command`, `base_url`, `api_key`, `model`, `env`, `args`).
 * @param serverEnv the server's environment: PATH, LANG, and the defaults OPENAI_BASE_URL / OPENAI_API_KEY.
 * @example
 * const opencode = createOpencodeAdapter({ base_url: "http://127.0.0.1:8080/v1", model: "fake-model" }, process.env);
 */
export const createOpencodeAdapter = cliAdapterFactory({
  name: "opencode",
  bin: "opencode",
  async build(bin, ctx, options, serverEnv) {
    const dirs = {
      XDG_CONFIG_HOME: await ensureHomeDir(ctx.home, ".config"),
      XDG_DATA_HOME: await ensureHomeDir(ctx.home, ".local/share"),
      XDG_CACHE_HOME: await ensureHomeDir(ctx.home, ".cache"),
      XDG_STATE_HOME: await ensureHomeDir(ctx.home, ".local/state"),
    };
    const base_url = baseUrlOf(options, ctx) ?? serverEnv.OPENAI_BASE_URL;
    const model = ctx.model ?? options.model ?? "gpt-5.5";
    const config = renderOpencodeConfig(base_url ? { base_url, model } : { model });
    if (ctx.mcp_servers) config.mcp = opencodeMcp(ctx.mcp_servers); // the run's MCP servers (tools named `<server>_<tool>`)
    await writeHomeFile(ctx.home, ".config/opencode/opencode.json", `${JSON.stringify(config, null, 2)}\n`);
    const promptFile = await writeHomeFile(ctx.home, `prompt-${ctx.run_id}.txt`, ctx.text);
    const args = ["run", "--format", "json", "--auto"];
    if (ctx.resume_session_id) args.push("--session", ctx.resume_session_id);
    args.push(...(options.args ?? []), ...(ctx.extra_args ?? []));
    // sh only redirects stdin from the prompt file and execs opencode (same pid).
    const cli = ctx.in_container ? (options.container_command ?? "opencode") : bin;
    const argv = ["/bin/sh", "-c", 'f="$1"; shift; exec "$@" < "$f"', "sh", promptFile, cli, ...args];
    return { argv, ...(ctx.in_container ? { container_native: true } : {}), env: {
        ...dirs,
        OPENAI_API_KEY: options.api_key ?? serverEnv.OPENAI_API_KEY,
        OPENCODE_DISABLE_AUTOUPDATE: "1",
        OPENCODE_DISABLE_MODELS_FETCH: "1",
        OPENCODE_DISABLE_LSP_DOWNLOAD: "1",
        OPENCODE_DISABLE_DEFAULT_PLUGINS: "1",
        OPENCODE_DISABLE_SHARE: "1",
        OPENCODE_DISABLE_CLAUDE_CODE: "1",
        OPENCODE_DISABLE_EXTERNAL_SKILLS: "1",
      } };
  },
  createParser: (ctx) => createOpencodeParser({ mcpServers: Object.keys(ctx?.mcp_servers ?? {}) }),
});
